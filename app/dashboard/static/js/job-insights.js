// What a job is doing, beyond its status: its progress bar and status message (when the job
// reports them), its cost so far against the projection, and its CPU, memory and network
// over time from GET /jobs/{id}/metrics, read again every few seconds while it runs.

import { bytes, compact, drawChart } from "./chart.js";
import { TERMINAL, byId, formatUsd } from "./dom.js";

// Samples arrive every CORTEX_METRICS_INTERVAL (10 s by default): look a little more often.
const POLL_MS = 5000;

// The metrics API's windows, smallest first: the first that holds the whole run is asked for
// (period, resolution; at most a few hundred points each).
const WINDOWS = [
  ["1h", "1m", 3600],
  ["6h", "1m", 6 * 3600],
  ["24h", "5m", 24 * 3600],
  ["7d", "1h", 7 * 24 * 3600],
];

const CHARTS = [
  { id: "chart-cpu", title: "CPU", format: cpu, series: (m) => [["used", "cpu", m.cpu]] },
  { id: "chart-memory", title: "Memory", format: bytes, base: 1024, series: (m) => [["used", "memory", m.memory]] },
  {
    id: "chart-network",
    title: "Network",
    format: bytes,
    base: 1024,
    series: (m) => [["in", "rx", m.network.rx], ["out", "tx", m.network.tx]],
  },
];

/** Millicores as a person reads them: 250m, 1.5 CPU. */
function cpu(millicores) {
  if (millicores === 0) return "0";
  return Math.abs(millicores) >= 1000 ? `${compact(millicores / 1000)} CPU` : `${compact(millicores)}m`;
}

function windowFor(job, now = Date.now()) {
  const since = Date.parse(job.startedAt ?? job.createdAt);
  const age = (now - since) / 1000;
  return WINDOWS.find(([, , seconds]) => age <= seconds) ?? WINDOWS[WINDOWS.length - 1];
}

export class JobInsights {
  constructor() {
    /** @type {import("./api.js").Api | null} */
    this.api = null;
    this.job = null;
    this.timer = null;
    this.generation = 0;
  }

  /** Starts showing one job; `render` gives it each fresh copy. */
  open() {
    this.close();
    for (const { id } of CHARTS) byId(id).replaceChildren();
    byId("metrics-note").textContent = "";
  }

  close() {
    this.generation += 1;
    clearTimeout(this.timer);
    this.timer = null;
    this.job = null;
    byId("job-progress").hidden = true;
    byId("job-status-message").hidden = true;
  }

  render(job) {
    const first = this.job === null;
    const ended = TERMINAL.has(job.status) && (first || !TERMINAL.has(this.job.status));
    this.job = job;
    this.renderProgress(job);
    this.renderCost(job);
    // Once more when it ends: the last samples, and the polling stops.
    if (first || ended) this.loadMetrics();
  }

  renderProgress(job) {
    const message = byId("job-status-message");
    const text = job.statusMessage ?? null;
    message.hidden = text === null || text === "";
    message.textContent = text ?? "";
    const block = byId("job-progress");
    const progress = typeof job.progress === "number" ? Math.max(0, Math.min(100, job.progress)) : null;
    block.hidden = progress === null;
    if (progress !== null) {
      byId("job-progress-bar").value = progress;
      byId("job-progress-value").textContent = `${Number(progress.toFixed(1))} %`;
    }
  }

  renderCost(job) {
    const cost = job.cost ?? {};
    const current = cost.current ?? 0;
    const projected = cost.projected ?? 0;
    byId("job-cost-line").textContent = `${formatUsd(current)} so far of ${formatUsd(projected)} projected`;
    const bar = byId("job-cost-bar");
    bar.hidden = !(projected > 0);
    bar.max = projected > 0 ? projected : 1;
    bar.value = Math.min(current, projected);
  }

  async loadMetrics() {
    const job = this.job;
    if (!job) return;
    const generation = this.generation;
    clearTimeout(this.timer);
    this.timer = null;
    const [period, resolution] = windowFor(job);
    try {
      const answer = await this.api.request("GET", `/jobs/${encodeURIComponent(job.id)}/metrics`, {
        query: { period, resolution },
      });
      if (generation !== this.generation) return;
      this.drawAll(answer.data, resolution);
    } catch (error) {
      if (generation !== this.generation) return;
      byId("metrics-note").textContent = `Metrics unavailable: ${error.code ?? ""} ${error.message}`;
    }
    if (generation === this.generation && !TERMINAL.has(this.job?.status)) {
      this.timer = setTimeout(() => this.loadMetrics(), POLL_MS);
    }
  }

  drawAll(metrics, resolution) {
    const job = this.job;
    const start = Date.parse(job.startedAt ?? job.createdAt);
    const end = job.endedAt ? Date.parse(job.endedAt) : Date.now();
    const samples = metrics.cpu.length;
    byId("metrics-note").textContent = samples
      ? `averaged per ${resolution === "1m" ? "minute" : resolution}; ${TERMINAL.has(job.status) ? "final" : "updated live"}`
      : TERMINAL.has(job.status) ? "no samples were taken" : "waiting for the first sample";
    const charts = CHARTS.map((chart) => ({
      chart,
      series: chart.series(metrics).map(([name, key, points]) => ({ name, key, points })),
    }));
    // One time axis for all: the run, and every bucket (stamped with its start, which may
    // precede the job's own start).
    const times = charts.flatMap(({ series }) => series.flatMap((s) => s.points.map((p) => Date.parse(p.timestamp))));
    const window = [Math.min(start, ...times), Math.max(end, ...times)];
    for (const { chart, series } of charts) {
      drawChart(byId(chart.id), { ...chart, series, window });
    }
  }
}
