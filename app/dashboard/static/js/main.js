// The dashboard: asks for an API key, then shows the jobs list, a job, or the submit form,
// following the address's #fragment (#/jobs/<id>, #/new, #/account), or a page of its own
// (#/batches[/<id>], #/providers, #/webhooks[/<id>]).

import { AccountView } from "./account-view.js";
import { Api, streamUrl } from "./api.js";
import { BatchesView } from "./batches-view.js";
import { byId, hideError, showError, toast } from "./dom.js";
import { JobView } from "./job-view.js";
import { JobsList } from "./jobs-list.js";
import { LiveStream } from "./live.js";
import { ProvidersView } from "./providers-view.js";
import { forgetKey, saveKey, savedKey } from "./session.js";
import { SubmitForm } from "./submit-form.js";
import { WebhooksView } from "./webhooks-view.js";

// The built-in providers, for a gateway without GET /providers.
const BUILT_IN_PROVIDERS = ["akash", "golem", "local", "render"];

const LIVE_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  failed: "Offline",
  stopped: "Offline",
};

/** The signed-in page. Built once; each accepted key starts it, signing out stops it. */
class Dashboard {
  constructor() {
    this.api = null;
    this.list = new JobsList();
    this.view = new JobView({
      onJob: (job) => this.list.updateStatus(job.id, job.status),
    });
    this.form = new SubmitForm({
      onSubmitted: (job) => {
        toast(`Submitted ${job.id}`);
        window.location.hash = `#/jobs/${job.id}`;
        this.list.firstPage();
      },
    });
    this.accountView = new AccountView();
    this.pages = {
      batches: new BatchesView(),
      providers: new ProvidersView(),
      webhooks: new WebhooksView(),
    };
    this.account = new LiveStream({
      token: () => this.api.accountStreamToken(),
      url: (token, last) => streamUrl("/jobs/events", token, last, { follow: "true" }),
      onMessage: (event) => {
        this.list.applyEvent(event);
        if (event.jobId === this.view.jobId) this.view.refreshSoon();
        this.pages.batches.jobChanged(event);
        // A job that starts or ends changes what counts against the quotas and the budget.
        if (this.accountView.shown) this.accountView.load();
      },
      onState: (state) => this.showLive(state),
    });
    this.route = this.route.bind(this);
  }

  /** @param {Api} api a key the gateway accepted */
  start(api) {
    this.api = api;
    for (const part of [this.list, this.view, this.form, this.accountView, ...Object.values(this.pages)]) {
      part.api = api;
    }
    byId("login-view").hidden = true;
    byId("app-view").hidden = false;
    byId("session-actions").hidden = false;
    byId("main-nav").hidden = false;
    window.addEventListener("hashchange", this.route);
    this.list.load();
    this.loadProviders();
    this.account.start();
    this.route();
  }

  stop() {
    window.removeEventListener("hashchange", this.route);
    this.account.stop();
    this.view.close();
    this.list.reset();
    this.form.reset();
    this.accountView.reset();
    for (const page of Object.values(this.pages)) page.reset();
    byId("app-view").hidden = true;
    byId("session-actions").hidden = true;
    byId("main-nav").hidden = true;
  }

  route() {
    const hash = window.location.hash;
    // A page of its own: #/batches, #/batches/<id>, #/providers, #/webhooks, #/webhooks/<id>.
    const page = /^#\/(batches|providers|webhooks)(?:\/([A-Za-z0-9_-]+))?$/.exec(hash);
    for (const [name, view] of Object.entries(this.pages)) {
      const current = page?.[1] === name;
      byId(`nav-${name}`).classList.toggle("current", current);
      if (current) view.show(page[2] ?? null);
      else view.hide();
    }
    byId("jobs-layout").hidden = Boolean(page);
    byId("nav-jobs").classList.toggle("current", !page && hash !== "#/account");
    if (page) {
      this.view.close();
      this.form.hide();
      this.accountView.hide();
      byId("account-link").classList.remove("current");
      return;
    }
    const job = /^#\/jobs\/([A-Za-z0-9_-]+)$/.exec(hash);
    const account = hash === "#/account";
    byId("detail-placeholder").hidden = Boolean(job) || hash === "#/new" || account;
    byId("account-link").classList.toggle("current", account);
    if (!account) this.accountView.hide();
    if (account) {
      this.view.close();
      this.form.hide();
      this.list.select(null);
      this.accountView.show();
    } else if (job) {
      this.form.hide();
      this.view.open(job[1]);
      this.list.select(job[1]);
    } else if (hash === "#/new") {
      this.view.close();
      this.list.select(null);
      this.form.show();
    } else {
      this.view.close();
      this.form.hide();
      this.list.select(null);
    }
  }

  async loadProviders() {
    let providers;
    try {
      providers = await this.api.listProviders();
    } catch {
      providers = BUILT_IN_PROVIDERS.map((name) => ({ name }));
    }
    this.list.setProviders(providers.map((p) => p.name));
    this.form.setProviders(providers);
  }

  showLive(state) {
    const indicator = byId("live-indicator");
    const wasDown = indicator.dataset.state === "reconnecting";
    indicator.dataset.state = state;
    byId("live-label").textContent = LIVE_LABELS[state] ?? state;
    // Changes made while the stream was down may not all be replayed: read the list again.
    if (state === "live" && wasDown) this.list.load();
  }
}

const dashboard = new Dashboard();

function showLogin(error) {
  byId("login-view").hidden = false;
  const box = byId("key-error");
  if (error) showError(box, error, { title: "Not connected:" });
  else hideError(box);
  byId("key-input").focus();
}

function signOut(error) {
  forgetKey();
  dashboard.stop();
  window.location.hash = "";
  showLogin(error);
}

/** Tries a key against the API; on success the dashboard opens with it. */
async function connect(key) {
  const api = new Api(key);
  await api.listJobs({ limit: 1 });
  api.onUnauthorized = (error) => signOut(error);
  saveKey(key);
  dashboard.start(api);
}

function init() {
  byId("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = byId("key-input");
    const key = input.value.trim();
    if (!key) {
      showError(byId("key-error"), { message: "Paste an API key first." });
      return;
    }
    const button = byId("key-submit");
    button.disabled = true;
    try {
      await connect(key);
      input.value = "";
      hideError(byId("key-error"));
    } catch (error) {
      showError(byId("key-error"), error, { title: "Not connected:" });
    } finally {
      button.disabled = false;
    }
  });
  byId("forget-key-button").addEventListener("click", () => signOut());
  byId("new-job-button").addEventListener("click", () => {
    window.location.hash = "#/new";
  });
  for (const id of ["submit-close", "account-close"]) {
    byId(id).addEventListener("click", () => {
      window.location.hash = "#/";
    });
  }

  const key = savedKey();
  if (!key) {
    showLogin();
    return;
  }
  connect(key).catch((error) => {
    if (error.status === 401) forgetKey();
    showLogin(error);
  });
}

init();
