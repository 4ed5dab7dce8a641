// The jobs list: filters, cursor paging, and statuses that change live.

import {
  byId,
  clear,
  debounce,
  formatAgo,
  formatTime,
  h,
  hideError,
  showError,
  statusBadge,
} from "./dom.js";

export const STATUSES = [
  "pending",
  "scheduled",
  "running",
  "cancelling",
  "completed",
  "failed",
  "cancelled",
];

export class JobsList {
  constructor() {
    /** @type {import("./api.js").Api | null} set for each signed-in key */
    this.api = null;
    this.selectedId = null;
    this.rows = new Map();
    // The cursor that opened each page visited so far; the first page needs none.
    this.cursors = [null];
    this.generation = 0;
    this.body = byId("jobs-body");
    this.errorBox = byId("jobs-error");
    this.providerFilter = byId("provider-filter");
    this.limitFilter = byId("limit-filter");
    this.reloadSoon = debounce(() => this.load(), 300);

    const chips = byId("status-filter");
    for (const status of STATUSES) {
      chips.append(
        h(
          "label",
          { class: "chip", dataset: { status } },
          h("input", { type: "checkbox", name: "status", value: status }),
          h("span", { text: status }),
        ),
      );
    }
    byId("jobs-filters").addEventListener("change", () => this.firstPage());
    byId("jobs-filters").addEventListener("submit", (event) => event.preventDefault());
    byId("jobs-refresh").addEventListener("click", () => this.load());
    byId("page-next").addEventListener("click", () => this.nextPage());
    byId("page-prev").addEventListener("click", () => this.previousPage());
    this.body.addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-job-id]");
      if (row && !event.target.closest("a")) window.location.hash = `#/jobs/${row.dataset.jobId}`;
    });
    this.clock = setInterval(() => this.refreshTimes(), 15_000);
  }

  /** Forgets what the previous key saw. */
  reset() {
    this.generation += 1;
    this.reloadSoon.cancel();
    this.cursors = [null];
    this.selectedId = null;
    this.rows.clear();
    clear(this.body);
    byId("jobs-filters").reset();
    byId("jobs-total").textContent = "";
    byId("page-label").textContent = "";
    hideError(this.errorBox);
  }

  /** Fills the provider filter with the providers the gateway knows. */
  setProviders(names) {
    const current = this.providerFilter.value;
    this.providerFilter.replaceChildren(
      h("option", { value: "" }, "All"),
      ...names.map((name) => h("option", { value: name }, name)),
    );
    this.providerFilter.value = names.includes(current) ? current : "";
  }

  filters() {
    const status = [...document.querySelectorAll("#status-filter input:checked")].map((i) => i.value);
    return {
      status,
      provider: this.providerFilter.value,
      limit: Number(this.limitFilter.value),
    };
  }

  firstPage() {
    // A cursor belongs to the filters it was issued for.
    this.cursors = [null];
    this.load();
  }

  nextPage() {
    if (!this.nextCursor) return;
    this.cursors.push(this.nextCursor);
    this.load();
  }

  previousPage() {
    if (this.cursors.length < 2) return;
    this.cursors.pop();
    this.load();
  }

  async load() {
    const generation = ++this.generation;
    let answer;
    try {
      answer = await this.api.listJobs({ ...this.filters(), cursor: this.cursors.at(-1) });
    } catch (error) {
      if (generation === this.generation) showError(this.errorBox, error, { title: "Could not list jobs." });
      return;
    }
    if (generation !== this.generation) return; // a newer request is on its way
    hideError(this.errorBox);
    this.render(answer.data, answer.meta?.pagination ?? {});
  }

  render(jobs, pagination) {
    this.rows.clear();
    clear(this.body);
    for (const job of jobs) {
      const row = this.row(job);
      this.rows.set(job.id, row);
      this.body.append(row);
    }
    byId("jobs-empty").hidden = jobs.length > 0;
    const total = pagination.total ?? jobs.length;
    byId("jobs-total").textContent = `${total} ${total === 1 ? "job" : "jobs"}`;
    const page = this.cursors.length;
    const pages = Math.max(1, pagination.pages ?? 1);
    byId("page-label").textContent = `Page ${page} of ${Math.max(pages, page)}`;
    this.nextCursor = pagination.nextCursor ?? null;
    byId("page-next").disabled = !this.nextCursor;
    byId("page-prev").disabled = this.cursors.length < 2;
    this.select(this.selectedId);
  }

  row(job) {
    return h(
      "tr",
      { dataset: { jobId: job.id } },
      h(
        "td",
        { class: "job-cell" },
        h("a", { class: "mono", href: `#/jobs/${job.id}`, text: job.id }),
        h("span", { class: "image mono", title: job.image, text: job.image }),
      ),
      h("td", {}, statusBadge(job.status)),
      h("td", { text: job.provider }),
      h("td", {
        class: "ago",
        title: formatTime(job.createdAt),
        dataset: { time: job.createdAt },
        text: formatAgo(job.createdAt),
      }),
    );
  }

  refreshTimes() {
    for (const cell of this.body.querySelectorAll("td.ago")) {
      cell.textContent = formatAgo(cell.dataset.time);
    }
  }

  select(jobId) {
    this.selectedId = jobId;
    for (const [id, row] of this.rows) row.classList.toggle("selected", id === jobId);
  }

  /** The status a fresher copy of a job shows, if the job is on this page. */
  updateStatus(jobId, status) {
    const badge = this.rows.get(jobId)?.querySelector(".status");
    if (badge && badge.dataset.status !== status) statusBadge(status, badge);
  }

  /** A status change from the account's live stream. */
  applyEvent(event) {
    const row = this.rows.get(event.jobId);
    const { status } = this.filters();
    if (row) {
      statusBadge(event.status, row.querySelector(".status"));
      row.classList.remove("flash");
      void row.offsetWidth; // restart the highlight animation
      row.classList.add("flash");
      if (status.length && !status.includes(event.status)) this.reloadSoon();
    } else if (event.type === "created" || status.includes(event.status)) {
      this.reloadSoon();
    }
  }
}
