// The batches pages: #/batches lists the account's batches with how far each has got;
// #/batches/<id> shows one batch, its jobs per status and each job's status and progress (the
// batch from GET /jobs/batch/{id}, its jobs from GET /jobs?batchId=). Both follow the
// account's status stream: main.js calls `jobChanged` for every status change.

import { STATUSES } from "./jobs-list.js";
import {
  TERMINAL,
  byId,
  clear,
  formatTime,
  formatUsd,
  h,
  hideError,
  showError,
  statusBadge,
  toast,
} from "./dom.js";

const PAGE = 100;
// Status changes of a busy batch arrive in bursts: read it again at most this often.
const RELOAD_MS = 1000;
const CONFIRM_MS = 4000;

function finished(counts) {
  return [...TERMINAL].reduce((sum, status) => sum + (counts[status] ?? 0), 0);
}

function progressCell(job) {
  if (typeof job.progress !== "number") return h("td", { class: "muted", text: TERMINAL.has(job.status) ? "" : "—" });
  const value = Math.max(0, Math.min(100, job.progress));
  return h("td", { class: "job-progress" },
    h("progress", { max: 100, value, "aria-label": `${job.id} progress` }),
    h("span", { class: "mono small", text: `${Number(value.toFixed(1))} %` }),
    job.statusMessage ? h("span", { class: "muted small block", text: job.statusMessage }) : null);
}

export class BatchesView {
  constructor() {
    /** @type {import("./api.js").Api | null} */
    this.api = null;
    this.section = byId("batches-page");
    this.batchId = null;
    this.jobIds = new Set();
    this.generation = 0;
    this.reloadTimer = null;
    byId("batches-refresh").addEventListener("click", () => this.load());
    byId("batch-cancel").addEventListener("click", () => this.cancelClicked());
    byId("batches-body").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-batch-id]");
      if (row && !event.target.closest("a")) window.location.hash = `#/batches/${row.dataset.batchId}`;
    });
    byId("batch-jobs-body").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-job-id]");
      if (row && !event.target.closest("a")) window.location.hash = `#/jobs/${row.dataset.jobId}`;
    });
  }

  get shown() {
    return !this.section.hidden;
  }

  /** @param {string|null} batchId one batch, or null for the list */
  show(batchId) {
    this.section.hidden = false;
    if (batchId !== this.batchId) {
      clear(byId("batch-jobs-body"));
      clear(byId("batch-counts"));
    }
    this.batchId = batchId;
    byId("batches-list").hidden = batchId !== null;
    byId("batch-view").hidden = batchId === null;
    this.load();
  }

  hide() {
    this.section.hidden = true;
    this.generation += 1;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = null;
  }

  reset() {
    this.hide();
    this.batchId = null;
    this.jobIds = new Set();
    for (const id of ["batches-body", "batch-jobs-body", "batch-counts", "batch-facts"]) clear(byId(id));
    hideError(byId("batches-error"));
  }

  /** A job's status changed (from the account's stream). */
  jobChanged(event) {
    if (!this.shown) return;
    if (this.batchId !== null && !this.jobIds.has(event.jobId)) return;
    // Throttled, not debounced: a batch that never stops changing is still read each second.
    if (this.reloadTimer === null) {
      this.reloadTimer = setTimeout(() => {
        this.reloadTimer = null;
        this.load();
      }, RELOAD_MS);
    }
  }

  async load() {
    const api = this.api;
    const generation = (this.generation += 1);
    try {
      if (this.batchId === null) await this.loadList(api, generation);
      else await this.loadBatch(api, generation, this.batchId);
      if (generation === this.generation) hideError(byId("batches-error"));
    } catch (error) {
      if (generation === this.generation) showError(byId("batches-error"), error, { title: "Cannot show the batches:" });
    }
  }

  async loadList(api, generation) {
    const batches = (await api.request("GET", "/jobs/batch", { query: { limit: PAGE } })).data;
    if (generation !== this.generation) return;
    byId("batches-empty").hidden = batches.length > 0;
    byId("batches-body").replaceChildren(
      ...batches.map((batch) =>
        h("tr", { dataset: { batchId: batch.id } },
          h("td", {}, h("a", { class: "mono", href: `#/batches/${batch.id}`, text: batch.id })),
          h("td", {}, h("span", { class: "batch-status", dataset: { status: batch.status }, text: batch.status })),
          h("td", { text: String(batch.total) }),
          h("td", {}, h("progress", { max: batch.total, value: finished(batch.counts), "aria-label": `${batch.id} finished` }),
            h("span", { class: "mono small", text: ` ${finished(batch.counts)} / ${batch.total}` })),
          h("td", { text: String(batch.concurrency) }),
          h("td", { class: "small", text: formatTime(batch.createdAt) })),
      ),
    );
  }

  async loadBatch(api, generation, batchId) {
    const batch = (await api.request("GET", `/jobs/batch/${encodeURIComponent(batchId)}`)).data;
    const jobs = new Map();
    for (let cursor = null; ; ) {
      const answer = await api.request("GET", "/jobs", { query: { batchId, limit: PAGE, cursor } });
      for (const job of answer.data) jobs.set(job.id, job);
      cursor = answer.meta?.pagination?.nextCursor;
      if (!cursor) break;
    }
    if (generation !== this.generation) return;
    this.jobIds = new Set(batch.jobIds);
    this.renderBatch(batch, batch.jobIds.map((id) => jobs.get(id)).filter(Boolean));
  }

  // Cancelling takes two clicks, as a job's does: the first arms the button.
  async cancelClicked() {
    const button = byId("batch-cancel");
    if (!this.cancelArmed) {
      this.cancelArmed = true;
      button.textContent = "Confirm cancel";
      button.classList.add("armed");
      this.disarmTimer = setTimeout(() => this.disarmCancel(), CONFIRM_MS);
      return;
    }
    this.disarmCancel();
    const batchId = this.batchId;
    button.disabled = true;
    try {
      await this.api.request("POST", `/jobs/batch/${encodeURIComponent(batchId)}/cancel`);
      toast(`Cancelling ${batchId}…`);
      if (batchId === this.batchId) this.load();
    } catch (error) {
      showError(byId("batches-error"), error, { title: "Could not cancel." });
    } finally {
      button.disabled = false;
    }
  }

  disarmCancel() {
    clearTimeout(this.disarmTimer);
    this.cancelArmed = false;
    const button = byId("batch-cancel");
    button.textContent = "Cancel batch";
    button.classList.remove("armed");
  }

  renderBatch(batch, jobs) {
    byId("batch-id").textContent = batch.id;
    byId("batch-cancel").hidden = batch.status !== "active";
    const badge = byId("batch-status");
    badge.className = "batch-status";
    badge.dataset.status = batch.status;
    badge.textContent = batch.status;
    const facts = [
      ["Jobs", String(batch.total)],
      ["At most running", String(batch.concurrency)],
      ["Created", formatTime(batch.createdAt)],
      batch.cancelledAt ? ["Cancelled", formatTime(batch.cancelledAt)] : null,
      ["Cost so far", formatUsd(jobs.reduce((sum, job) => sum + (job.cost?.current ?? 0), 0))],
    ];
    byId("batch-facts").replaceChildren(
      ...facts.filter(Boolean).map(([term, value]) =>
        h("div", { class: "fact" }, h("dt", { text: term }), h("dd", { text: value }))),
    );
    const done = finished(batch.counts);
    const bar = byId("batch-progress");
    bar.max = Math.max(batch.total, 1);
    bar.value = done;
    byId("batch-done").textContent = `${done} of ${batch.total} jobs`;
    byId("batch-counts").replaceChildren(
      ...STATUSES.filter((status) => batch.counts[status]).map((status) =>
        h("li", { dataset: { status } }, statusBadge(status), h("span", { class: "mono", text: String(batch.counts[status]) }))),
    );
    byId("batch-jobs-body").replaceChildren(
      ...jobs.map((job, index) =>
        h("tr", { dataset: { jobId: job.id, status: job.status } },
          h("td", { class: "muted", text: String(index + 1) }),
          h("td", {}, h("a", { class: "mono", href: `#/jobs/${job.id}`, text: job.id }),
            h("span", { class: "muted small block mono", text: job.image })),
          h("td", {}, statusBadge(job.status)),
          progressCell(job),
          h("td", { text: job.provider }),
          h("td", { class: "mono small", text: formatUsd(job.cost?.current) })),
      ),
    );
  }
}
