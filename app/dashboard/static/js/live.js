// Server-Sent Event streams through the browser's EventSource, which cannot send an
// Authorization header: each connection asks the API for a fresh short-lived stream token and
// puts that in the URL. After a dropped connection (or a token that expired meanwhile) it
// reconnects with a new token and `lastEventId`, so the gateway resumes exactly after the
// last event received: nothing lost, nothing twice.

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;
// Errors that no retry can fix: the key or the job is gone.
const FINAL_STATUSES = new Set([401, 403, 404]);

export class LiveStream {
  /**
   * @param {object} options
   * @param {() => Promise<string>} options.token asks the API for a stream token
   * @param {(token: string, lastEventId: string|null) => string} options.url the stream's URL
   * @param {(data: any, event: MessageEvent) => void} options.onMessage each event's JSON data
   * @param {(data: any) => void} [options.onEnd] the final `end` event (job streams)
   * @param {(state: string, error?: Error) => void} [options.onState]
   *   "connecting", "live", "reconnecting", "ended", "failed" or "stopped"
   */
  constructor({ token, url, onMessage, onEnd, onState }) {
    Object.assign(this, { token, url, onMessage, onEnd, onState });
    this.source = null;
    this.lastEventId = null;
    this.stopped = true;
    this.retryMs = RETRY_MIN_MS;
    this.timer = null;
    // Bumped by every stop: a connection attempt still waiting for its token when the
    // stream stops (and perhaps starts again) must not open anything.
    this.run = 0;
  }

  /** Follows the stream from its start (job streams) or from now (the account's). */
  start() {
    this.stop();
    this.stopped = false;
    this.lastEventId = null;
    this.retryMs = RETRY_MIN_MS;
    this.open();
    return this;
  }

  stop(state = "stopped") {
    const wasRunning = !this.stopped;
    this.stopped = true;
    this.run += 1;
    clearTimeout(this.timer);
    if (this.source) {
      this.source.close();
      this.source = null;
    }
    if (wasRunning) this.setState(state);
  }

  setState(state, error) {
    this.state = state;
    this.onState?.(state, error);
  }

  async open() {
    const run = this.run;
    this.setState(this.lastEventId ? "reconnecting" : "connecting");
    let token;
    try {
      token = await this.token();
    } catch (error) {
      if (run !== this.run) return;
      if (FINAL_STATUSES.has(error.status)) {
        this.stopped = true;
        this.setState("failed", error);
        return;
      }
      this.retry();
      return;
    }
    if (run !== this.run) return;
    const source = new EventSource(this.url(token, this.lastEventId));
    this.source = source;
    source.onopen = () => {
      this.retryMs = RETRY_MIN_MS;
      this.setState("live");
    };
    source.onmessage = (event) => {
      if (event.lastEventId) this.lastEventId = event.lastEventId;
      this.onMessage(JSON.parse(event.data), event);
    };
    source.addEventListener("end", (event) => {
      this.stop("ended");
      this.onEnd?.(JSON.parse(event.data));
    });
    source.onerror = () => {
      // Take over from the browser's own reconnection: its URL holds a token that may have
      // expired, so every new connection gets a fresh one.
      if (this.source !== source) return;
      source.close();
      this.source = null;
      if (!this.stopped) this.retry();
    };
  }

  retry() {
    this.setState("reconnecting");
    clearTimeout(this.timer);
    const run = this.run;
    this.timer = setTimeout(() => run === this.run && this.open(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }
}
