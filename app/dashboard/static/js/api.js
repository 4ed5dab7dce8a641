// The gateway's REST API, as the dashboard uses it. The API key goes in the Authorization
// header and nowhere else; streams get short-lived tokens (see live.js).

export const API_BASE = "/api/plugin-core";

// A request the network dropped is sent again this many times, when sending it twice is
// harmless (reads, stream tokens). Browsers drop every connection when the host's network
// changes, as it does whenever a local container starts or stops.
const NETWORK_RETRIES = 2;
const NETWORK_RETRY_MS = 300;

/** An answer in the error envelope (or no answer at all), with the API's code and message. */
export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = Array.isArray(details) ? details : [];
  }
}

export class Api {
  /**
   * @param {string} key the Bearer API key
   * @param {{onUnauthorized?: (error: ApiError) => void}} hooks called when the key is refused
   */
  constructor(key, { onUnauthorized } = {}) {
    this.key = key;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, { query, body, headers: extra, repeatable = method === "GET" } = {}) {
    const url = new URL(API_BASE + path, window.location.origin);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const headers = { Accept: "application/json", Authorization: `Bearer ${this.key}`, ...extra };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const init = {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    };
    let response;
    for (let attempt = 0; ; attempt += 1) {
      try {
        response = await fetch(url, init);
        break;
      } catch (cause) {
        if (!repeatable || attempt >= NETWORK_RETRIES) {
          throw new ApiError(0, "NETWORK_ERROR", `The gateway cannot be reached (${cause.message}).`);
        }
        await new Promise((resolve) => setTimeout(resolve, NETWORK_RETRY_MS * (attempt + 1)));
      }
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      // Not JSON: reported below from the HTTP status.
    }
    if (!response.ok || !payload || payload.success !== true) {
      const error = payload?.error;
      const failure = new ApiError(
        response.status,
        error?.code ?? `HTTP_${response.status}`,
        error?.message ?? (response.statusText || "The gateway gave no usable answer."),
        error?.details,
      );
      if (response.status === 401 && this.onUnauthorized) this.onUnauthorized(failure);
      throw failure;
    }
    return payload;
  }

  /** One page of jobs: `{data: [...], meta: {pagination}}`. */
  listJobs({ status = [], provider = "", limit = 20, cursor = null } = {}) {
    return this.request("GET", "/jobs", {
      query: { status: status.join(","), provider, limit, cursor },
    });
  }

  async getJob(jobId) {
    return (await this.request("GET", `/jobs/${encodeURIComponent(jobId)}`)).data;
  }

  async cancelJob(jobId) {
    return (await this.request("POST", `/jobs/${encodeURIComponent(jobId)}/cancel`)).data;
  }

  /** Submits once: a resend after a dropped connection carries the same Idempotency-Key. */
  async submitJob(spec) {
    return (await this.request("POST", "/jobs", once({ body: spec }))).data;
  }

  async submitFromTemplate(templateId, overrides) {
    const path = `/jobs/from-template/${encodeURIComponent(templateId)}`;
    return (await this.request("POST", path, once({ body: { overrides } }))).data;
  }

  /** Every template of the account (the listing is paginated). */
  async listTemplates() {
    const templates = [];
    for (let page = 1; ; page += 1) {
      const answer = await this.request("GET", "/jobs/templates", { query: { page, limit: 100 } });
      templates.push(...answer.data);
      const pages = answer.meta?.pagination?.pages ?? 1;
      if (page >= pages) return templates;
    }
  }

  async listProviders() {
    return (await this.request("GET", "/providers")).data;
  }

  /** A token for one job's log and event streams. */
  async jobStreamToken(jobId) {
    const path = `/jobs/${encodeURIComponent(jobId)}/stream-token`;
    return (await this.request("POST", path, { repeatable: true })).data.token;
  }

  /** A token for the account's status stream. */
  async accountStreamToken() {
    const answer = await this.request("POST", "/jobs/events/stream-token", { repeatable: true });
    return answer.data.token;
  }
}

function once(options) {
  // crypto.randomUUID exists only on https or localhost pages; getRandomValues everywhere.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const key = `dashboard-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  return { ...options, headers: { "Idempotency-Key": key }, repeatable: true };
}

/** The URL of a stream route, with a stream token (never the API key) and a resume point. */
export function streamUrl(path, token, lastEventId, params = {}) {
  const url = new URL(API_BASE + path, window.location.origin);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  url.searchParams.set("token", token);
  if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
  return url.toString();
}
