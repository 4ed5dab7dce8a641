// The providers page (#/providers): each provider's health with its reason, what it can run
// and how it prices (GET /providers), and a form that prices one job spec on every provider
// side by side (POST /providers/quote, which submits nothing).

import { byId, clear, formatDuration, formatUsd, h, hideError, showError } from "./dom.js";

const HEALTH_LABELS = { healthy: "healthy", unhealthy: "unhealthy", not_configured: "not configured" };
const VERDICT_LABELS = {
  chosen: "cheapest: auto picks it",
  eligible: "can run it",
  incapable: "cannot run it",
  unhealthy: "unavailable",
  too_dear: "over your maximum",
  tried: "tried",
};

function yesNo(value) {
  return value ? "yes" : "no";
}

function providerCard(provider) {
  const health = provider.health;
  const caps = provider.capabilities;
  const facts = caps
    ? [
        ["Exposed ports", yesNo(caps.ports)],
        ["Command override", yesNo(caps.commandOverride)],
        ["Volumes", yesNo(caps.volumes)],
        ["GPUs", yesNo(caps.gpus)],
        ["Duration", `${formatDuration(caps.minDuration)} to ${caps.maxDuration === null ? "unlimited" : formatDuration(caps.maxDuration)}`],
      ]
    : [];
  return h(
    "article",
    { class: "provider-card", dataset: { provider: provider.name, health: health.status } },
    h("header", {},
      h("h3", { class: "provider-name", text: provider.name }),
      h("span", { class: "health", dataset: { health: health.status }, text: HEALTH_LABELS[health.status] ?? health.status })),
    health.reason ? h("p", { class: "health-reason", text: health.reason }) : null,
    caps
      ? h("dl", { class: "capabilities" },
          facts.map(([term, value]) => h("div", {}, h("dt", { text: term }), h("dd", { text: value }))))
      : h("p", { class: "muted", text: "No adapter: nothing to describe." }),
    provider.pricing ? h("p", { class: "pricing muted small", text: provider.pricing.description }) : null,
  );
}

function numberField(id) {
  const raw = byId(id).value.trim();
  return raw === "" ? null : Number(raw);
}

export class ProvidersView {
  constructor() {
    /** @type {import("./api.js").Api | null} */
    this.api = null;
    this.section = byId("providers-page");
    byId("providers-refresh").addEventListener("click", () => this.load());
    byId("quote-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.quote();
    });
  }

  show() {
    this.section.hidden = false;
    this.load();
  }

  hide() {
    this.section.hidden = true;
  }

  reset() {
    this.hide();
    clear(byId("provider-cards"));
    clear(byId("quote-body"));
    byId("quote-result").hidden = true;
    hideError(byId("providers-error"));
    hideError(byId("quote-error"));
  }

  async load() {
    const api = this.api;
    try {
      const providers = await api.listProviders();
      if (api !== this.api) return;
      hideError(byId("providers-error"));
      byId("provider-cards").replaceChildren(...providers.map(providerCard));
    } catch (error) {
      if (api === this.api) showError(byId("providers-error"), error, { title: "Cannot list the providers:" });
    }
  }

  /** The form as a job spec: the quote API takes what POST /jobs takes. */
  spec() {
    const spec = {
      image: byId("quote-image").value.trim(),
      cpu: numberField("quote-cpu"),
      memory: byId("quote-memory").value.trim(),
      storage: byId("quote-storage").value.trim(),
      duration: numberField("quote-duration"),
    };
    const gpus = numberField("quote-gpu-count");
    const model = byId("quote-gpu-model").value.trim();
    if (gpus) spec.gpu = model ? { count: gpus, model } : { count: gpus };
    const maxPrice = numberField("quote-max-price");
    if (maxPrice !== null) spec.maxPricePerHour = maxPrice;
    return spec;
  }

  async quote() {
    const api = this.api;
    const spec = this.spec();
    const button = byId("quote-button");
    button.disabled = true;
    try {
      const answer = await api.request("POST", "/providers/quote", { body: spec, repeatable: true });
      if (api !== this.api) return;
      hideError(byId("quote-error"));
      this.renderQuote(answer.data, spec.duration);
    } catch (error) {
      if (api === this.api) {
        byId("quote-result").hidden = true;
        showError(byId("quote-error"), error, { title: "No quote:" });
      }
    } finally {
      button.disabled = false;
    }
  }

  renderQuote(comparison, duration) {
    byId("quote-result").hidden = false;
    byId("quote-summary").replaceChildren(
      comparison.chosen
        ? h("span", {}, "With ", h("code", { text: '"provider": "auto"' }), " this job would run on ",
            h("strong", { text: comparison.chosen }), ` at ${formatUsd(comparison.usdPerHour)}/hour.`)
        : h("span", { text: "No provider can run this job now." }),
    );
    byId("quote-body").replaceChildren(
      ...comparison.candidates.map((candidate) => {
        const rate = candidate.usdPerHour;
        const native =
          candidate.nativeAmount === null || candidate.nativeAmount === undefined
            ? "—"
            : `${candidate.nativeAmount} ${candidate.nativeUnit ?? ""}`.trim();
        // The reason often quotes the refusals already: each one once.
        const refusals = candidate.refusals
          .map((r) => `${r.field}: ${r.message}`)
          .filter((text) => !candidate.reason?.includes(text));
        const why = [candidate.reason, ...refusals].filter(Boolean).join("; ");
        return h(
          "tr",
          { dataset: { provider: candidate.provider, verdict: candidate.verdict } },
          h("td", { class: "mono", text: candidate.provider }),
          h("td", {}, h("span", { class: "verdict", dataset: { verdict: candidate.verdict },
            text: VERDICT_LABELS[candidate.verdict] ?? candidate.verdict })),
          h("td", { class: "price mono", text: rate === null || rate === undefined ? "—" : formatUsd(rate) }),
          h("td", { class: "mono", text: rate === null || rate === undefined ? "—" : formatUsd((rate * duration) / 3600) }),
          h("td", { class: "mono small", text: native }),
          h("td", { class: "why small", text: why }),
        );
      }),
    );
  }
}
