// One job: its details, its events and its logs, both live, and the cancel button.

import { streamUrl } from "./api.js";
import {
  TERMINAL,
  byId,
  clear,
  debounce,
  formatClock,
  formatDuration,
  formatTime,
  h,
  hideError,
  showError,
  statusBadge,
  toast,
} from "./dom.js";
import { JobInsights } from "./job-insights.js";
import { LiveStream } from "./live.js";

// Lines fetched when a job is opened; older ones stay in the API (GET /jobs/{id}/logs).
const LOG_TAIL = 1000;
// Lines kept on the page; the oldest are dropped past this, so a chatty job stays fast.
const MAX_LOG_LINES = 5000;
const CONFIRM_MS = 4000;

const STREAM_LABELS = {
  idle: "",
  connecting: "connecting…",
  reconnecting: "reconnecting…",
  live: "live",
  ended: "ended",
  stopped: "",
  failed: "unavailable",
};

export class JobView {
  /** @param {{onJob?: (job: object) => void}} hooks called with each fresh copy of the job */
  constructor({ onJob } = {}) {
    /** @type {import("./api.js").Api | null} set for each signed-in key */
    this.api = null;
    this.onJob = onJob;
    this.jobId = null;
    this.job = null;
    this.streams = [];
    this.view = byId("job-view");
    this.logs = byId("logs");
    this.events = byId("events");
    this.errorBox = byId("job-error");
    this.cancelButton = byId("cancel-button");
    this.follow = byId("logs-follow");
    this.refreshSoon = debounce(() => this.refresh(), 150);
    this.insights = new JobInsights();

    this.cancelButton.addEventListener("click", () => this.cancelClicked());
    byId("logs-wrap").addEventListener("change", (event) => {
      this.logs.classList.toggle("wrap", event.target.checked);
    });
    this.follow.addEventListener("change", () => {
      if (this.follow.checked) this.scrollToEnd();
    });
    // Scrolling up to read stops following; back at the bottom, following resumes.
    this.logs.addEventListener("scroll", () => {
      this.follow.checked = this.atBottom();
    });
    this.clock = setInterval(() => this.tick(), 1000);
  }

  open(jobId) {
    if (this.jobId === jobId) return;
    this.close();
    this.jobId = jobId;
    this.view.hidden = false;
    hideError(this.errorBox);
    byId("job-id").textContent = jobId;
    byId("job-image").textContent = "";
    statusBadge("loading", byId("job-status"));
    this.cancelButton.hidden = true;
    clear(byId("job-facts"));
    byId("job-config").textContent = "";
    clear(this.logs);
    this.logs.dataset.empty = "Waiting for output…";
    clear(this.events);
    this.lineCount = 0;
    this.dropped = 0;
    this.follow.checked = true;
    this.updateLineCount();
    this.insights.api = this.api;
    this.insights.open();
    this.refresh();

    const token = () => this.api.jobStreamToken(jobId);
    const path = (what) => `/jobs/${encodeURIComponent(jobId)}/${what}`;
    this.streams = [
      new LiveStream({
        token,
        url: (t, last) => streamUrl(path("logs"), t, last, { follow: "true", tail: LOG_TAIL }),
        onMessage: (line) => this.appendLog(line),
        onEnd: () => {
          this.logs.dataset.empty = "This job printed nothing.";
        },
        onState: (state, error) => this.showStreamState("logs-state", state, error),
      }),
      new LiveStream({
        token,
        url: (t, last) => streamUrl(path("events"), t, last, { follow: "true" }),
        onMessage: (event) => {
          this.appendEvent(event);
          this.refreshSoon();
        },
        onEnd: () => this.refreshSoon(),
        onState: (state, error) => this.showStreamState("events-state", state, error),
      }),
    ];
    for (const stream of this.streams) stream.start();
  }

  close() {
    for (const stream of this.streams) stream.stop();
    this.streams = [];
    this.refreshSoon.cancel();
    this.insights.close();
    this.jobId = null;
    this.job = null;
    this.view.hidden = true;
    this.disarmCancel();
  }

  async refresh() {
    const jobId = this.jobId;
    if (!jobId) return;
    try {
      const job = await this.api.getJob(jobId);
      if (jobId === this.jobId) this.render(job);
    } catch (error) {
      if (jobId !== this.jobId) return;
      showError(this.errorBox, error, { title: "Could not load this job." });
      if (error.status === 404) {
        for (const stream of this.streams) stream.stop("failed");
        statusBadge("not found", byId("job-status"));
        this.logs.dataset.empty = "";
      }
    }
  }

  render(job) {
    this.job = job;
    byId("job-image").textContent = job.image;
    statusBadge(job.status, byId("job-status"));
    const cancellable = !TERMINAL.has(job.status) && job.status !== "cancelling";
    this.cancelButton.hidden = !cancellable;
    if (!cancellable) this.disarmCancel();
    this.renderFacts(job);
    this.insights.render(job);
    byId("job-config").textContent = JSON.stringify(job.config, null, 2);
    this.onJob?.(job);
  }

  renderFacts(job) {
    const results = job.results ?? {};
    const facts = [
      ["Provider", job.provider],
      job.templateId ? ["Template", job.templateId] : null,
      job.batchId
        ? ["Batch", h("a", { id: "job-batch", class: "mono", href: `#/batches/${encodeURIComponent(job.batchId)}`, text: job.batchId })]
        : null,
      ["CPU", `${job.cpu} millicores (${(job.cpu / 1000).toLocaleString()} CPU)`],
      ["Memory", job.memory],
      ["Storage", job.storage],
      ["Time limit", formatDuration(job.duration)],
      ["Created", formatTime(job.createdAt)],
      ["Started", formatTime(job.startedAt)],
      ["Ended", formatTime(job.endedAt)],
      ["Run time", h("span", { id: "job-runtime", text: this.runTime(job) })],
    ];
    if (results.exitCode !== null && results.exitCode !== undefined) {
      facts.push(["Exit code", String(results.exitCode)]);
    }
    if (results.reason) facts.push(["Reason", results.reason]);
    if (results.message) facts.push(["Message", results.message]);
    if (results.outputUrl) facts.push(["Output", link(results.outputUrl)]);
    for (const endpoint of job.endpoints ?? []) {
      facts.push([`Port ${endpoint.port}`, link(endpoint.url)]);
    }
    byId("job-facts").replaceChildren(
      ...facts.filter(Boolean).map(([term, value]) =>
        h("div", { class: "fact" }, h("dt", { text: term }), h("dd", {}, value)),
      ),
    );
  }

  runTime(job) {
    if (!job.startedAt) return "—";
    const end = job.endedAt ? Date.parse(job.endedAt) : Date.now();
    return formatDuration((end - Date.parse(job.startedAt)) / 1000);
  }

  tick() {
    if (this.job && this.job.startedAt && !this.job.endedAt) {
      const cell = byId("job-runtime");
      if (cell) cell.textContent = this.runTime(this.job);
    }
  }

  appendLog({ timestamp, line, stream }) {
    const follow = this.follow.checked;
    this.logs.append(
      h(
        "div",
        { class: "line", dataset: { stream } },
        h("span", { class: "ts", title: timestamp, text: formatClock(timestamp) }),
        h("span", { class: "text", text: line }),
      ),
    );
    this.lineCount += 1;
    while (this.logs.childElementCount > MAX_LOG_LINES) {
      this.logs.firstElementChild.remove();
      this.dropped += 1;
    }
    this.updateLineCount();
    if (follow) this.scrollToEnd();
  }

  updateLineCount() {
    const count = this.lineCount ?? 0;
    const note = this.dropped ? ` (the first ${this.dropped} no longer shown)` : "";
    byId("logs-count").textContent = count ? `${count} ${count === 1 ? "line" : "lines"}${note}` : "";
  }

  atBottom() {
    return this.logs.scrollHeight - this.logs.scrollTop - this.logs.clientHeight < 24;
  }

  scrollToEnd() {
    this.logs.scrollTop = this.logs.scrollHeight;
  }

  appendEvent({ type, timestamp, message }) {
    this.events.append(
      h(
        "li",
        { dataset: { type } },
        h("span", { class: "event-type", text: type }),
        h("time", { datetime: timestamp, title: timestamp, text: formatTime(timestamp) }),
        message ? h("p", { class: "event-message", text: message }) : null,
      ),
    );
  }

  showStreamState(id, state, error) {
    const element = byId(id);
    element.dataset.state = state;
    element.textContent = STREAM_LABELS[state] ?? state;
    element.title = error ? `${error.code}: ${error.message}` : "";
  }

  // Cancelling takes two clicks: the first arms the button, the second (within a few
  // seconds) sends the request.
  async cancelClicked() {
    if (!this.cancelArmed) {
      this.cancelArmed = true;
      this.cancelButton.textContent = "Confirm cancel";
      this.cancelButton.classList.add("armed");
      this.disarmTimer = setTimeout(() => this.disarmCancel(), CONFIRM_MS);
      return;
    }
    this.disarmCancel();
    const jobId = this.jobId;
    this.cancelButton.disabled = true;
    try {
      const job = await this.api.cancelJob(jobId);
      if (jobId === this.jobId) {
        hideError(this.errorBox);
        this.render(job);
      }
      toast(job.status === "cancelled" ? `Cancelled ${jobId}` : `Cancelling ${jobId}…`);
    } catch (error) {
      if (jobId === this.jobId) showError(this.errorBox, error, { title: "Could not cancel." });
    } finally {
      this.cancelButton.disabled = false;
    }
  }

  disarmCancel() {
    clearTimeout(this.disarmTimer);
    this.cancelArmed = false;
    this.cancelButton.textContent = "Cancel job";
    this.cancelButton.classList.remove("armed");
  }
}

/** A link for an http(s) URL from the API (a path is on this gateway); anything else stays
 * plain text. */
function link(url) {
  let parsed;
  try {
    parsed = new URL(url, window.location.origin);
  } catch {
    return url;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return url;
  return h("a", { href: parsed.href, target: "_blank", rel: "noopener noreferrer", text: url });
}
