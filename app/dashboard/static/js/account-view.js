// The account page (#/account): what the key's account may do and how much of it is in use,
// as GET /account reports it. Read again each time it is opened or refreshed.

import { byId, clear, h, hideError, showError } from "./dom.js";

const QUOTA_LABELS = {
  max_active_jobs: "Active jobs",
  max_jobs_per_batch: "Jobs per batch",
  max_streams_per_key: "Open streams of this key",
  max_webhook_endpoints: "Webhook endpoints",
  max_templates: "Templates",
};

const PERIODS = { day: "per day (UTC)", month: "per month (UTC)", total: "in total" };

function usd(amount) {
  return `$${amount.toFixed(2)}`;
}

/** A used / limit line with its bar; a quota without a limit or a count has no bar. */
function quotaRow(quota) {
  const label = QUOTA_LABELS[quota.name] ?? quota.name;
  const limit = quota.limit === null ? "unlimited" : String(quota.limit);
  const use = quota.current === null ? `${limit} per batch` : `${quota.current} / ${limit}`;
  const bar =
    quota.current !== null && quota.limit !== null
      ? h("progress", { max: quota.limit, value: Math.min(quota.current, quota.limit) })
      : null;
  const full = quota.current !== null && quota.limit !== null && quota.current >= quota.limit;
  return h(
    "li",
    { class: "quota", dataset: { quota: quota.name, full: full ? "true" : "false" } },
    h("span", { class: "quota-name", text: label, title: quota.name }),
    h("span", { class: "quota-use mono", text: use }),
    bar,
  );
}

function budgetBlock(budget) {
  if (budget === null) return h("p", { class: "muted", text: "No budget: spending is not limited." });
  const spentShare = budget.usd > 0 ? Math.min(budget.spent, budget.usd) : 0;
  return h(
    "div",
    { class: "budget", dataset: { exhausted: budget.left <= 0 ? "true" : "false" } },
    h("p", { id: "account-budget-line" },
      `${usd(budget.spent)} spent of ${usd(budget.usd)} ${PERIODS[budget.period] ?? budget.period}`,
      " · ", h("strong", { text: `${usd(budget.left)} left` })),
    budget.usd > 0 ? h("progress", { max: budget.usd, value: spentShare }) : null,
  );
}

export class AccountView {
  constructor() {
    this.api = null;
    this.section = byId("account-view");
    this.errorBox = byId("account-error");
    this.loading = null;
    byId("account-refresh").addEventListener("click", () => this.load());
  }

  get shown() {
    return !this.section.hidden;
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
    for (const id of ["account-facts", "account-quotas", "account-budget"]) clear(byId(id));
    byId("account-name").textContent = "";
    hideError(this.errorBox);
  }

  async load() {
    const api = this.api;
    try {
      const account = (await api.request("GET", "/account")).data;
      if (api !== this.api) return; // signed out meanwhile
      hideError(this.errorBox);
      this.render(account);
    } catch (error) {
      if (api === this.api) showError(this.errorBox, error, { title: "Cannot show the account:" });
    }
  }

  render(account) {
    byId("account-name").textContent = account.name;
    const rate = account.rateLimit;
    const facts = [
      ["Rate limit", rate.requestsPerSecond === null
        ? "unlimited"
        : `${rate.requestsPerSecond} requests/s per key${rate.burst === null ? "" : `, bursts of ${rate.burst}`}`],
      ["Engine slots", account.maxEngineSlots === null ? "its fair share" : `at most ${account.maxEngineSlots}`],
      ["Providers", account.allowedProviders === null ? "all" : account.allowedProviders.join(", ")],
    ];
    byId("account-facts").replaceChildren(
      ...facts.map(([term, value]) =>
        h("div", { class: "fact", dataset: { fact: term } }, h("dt", { text: term }), h("dd", { text: value })),
      ),
    );
    byId("account-quotas").replaceChildren(...account.quotas.map(quotaRow));
    byId("account-budget").replaceChildren(budgetBlock(account.budget));
  }
}
