// The webhooks page (#/webhooks, #/webhooks/<id>): the account's endpoints, one endpoint's
// recent deliveries with their status and the receiver's last answer, "Retry" on a delivery
// and "Send test" on an endpoint. Read again every few seconds while shown, so a delivery's
// status changes as the gateway sends it.

import { byId, clear, formatTime, h, hideError, showError, toast } from "./dom.js";

const POLL_MS = 2000;
const DELIVERIES_SHOWN = 20;

function lastAttempt(delivery) {
  return delivery.attempts.length ? delivery.attempts[delivery.attempts.length - 1] : null;
}

function response(attempt) {
  if (!attempt) return "not sent yet";
  const parts = [];
  if (attempt.statusCode !== null) parts.push(`HTTP ${attempt.statusCode}`);
  if (attempt.error) parts.push(attempt.error);
  parts.push(`${attempt.durationMs} ms`);
  return parts.join(" · ");
}

function endpointState(endpoint) {
  if (!endpoint.active) return endpoint.disabledReason ? `disabled: ${endpoint.disabledReason}` : "paused";
  if (endpoint.failingSince) return `failing since ${formatTime(endpoint.failingSince)}`;
  return "active";
}

export class WebhooksView {
  constructor() {
    /** @type {import("./api.js").Api | null} */
    this.api = null;
    this.section = byId("webhooks-page");
    this.endpointId = null;
    this.timer = null;
    this.generation = 0;
    byId("webhooks-refresh").addEventListener("click", () => this.load());
    byId("endpoints-body").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button) this.act(button);
    });
    byId("deliveries-body").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button) this.act(button);
    });
  }

  get shown() {
    return !this.section.hidden;
  }

  /** @param {string|null} endpointId the endpoint whose deliveries to show; null: the first */
  show(endpointId) {
    this.section.hidden = false;
    this.endpointId = endpointId;
    this.load();
  }

  hide() {
    this.section.hidden = true;
    this.generation += 1;
    clearTimeout(this.timer);
  }

  reset() {
    this.hide();
    this.endpointId = null;
    for (const id of ["endpoints-body", "deliveries-body"]) clear(byId(id));
    byId("deliveries-endpoint").textContent = "";
    hideError(byId("webhooks-error"));
  }

  async load() {
    const api = this.api;
    const generation = (this.generation += 1);
    clearTimeout(this.timer);
    try {
      const endpoints = (await api.request("GET", "/webhooks", { query: { limit: 100 } })).data;
      if (generation !== this.generation) return;
      const selected = endpoints.find((e) => e.id === this.endpointId) ?? endpoints[0] ?? null;
      this.renderEndpoints(endpoints, selected);
      let deliveries = [];
      if (selected) {
        const path = `/webhooks/${encodeURIComponent(selected.id)}/deliveries`;
        deliveries = (await api.request("GET", path, { query: { limit: DELIVERIES_SHOWN } })).data;
        if (generation !== this.generation) return;
      }
      this.renderDeliveries(selected, deliveries);
      hideError(byId("webhooks-error"));
    } catch (error) {
      if (generation !== this.generation) return;
      showError(byId("webhooks-error"), error, { title: "Cannot show the webhooks:" });
      // A refusal (no webhooks:read scope, say) stays one until the key changes: no polling.
      if (error.status >= 400 && error.status < 500) return;
    }
    if (generation === this.generation && this.shown) {
      this.timer = setTimeout(() => this.load(), POLL_MS);
    }
  }

  renderEndpoints(endpoints, selected) {
    byId("endpoints-empty").hidden = endpoints.length > 0;
    byId("endpoints-body").replaceChildren(
      ...endpoints.map((endpoint) =>
        h(
          "tr",
          {
            class: endpoint === selected ? "selected" : null,
            dataset: { endpointId: endpoint.id, state: endpoint.active ? (endpoint.failingSince ? "failing" : "active") : "disabled" },
          },
          h("td", {},
            h("a", { class: "mono", href: `#/webhooks/${endpoint.id}`, text: endpoint.url,
              "aria-current": endpoint === selected ? "true" : null }),
            endpoint.description ? h("span", { class: "muted small block", text: endpoint.description }) : null),
          h("td", { class: "mono small", text: endpoint.events.join(", ") }),
          h("td", { class: "endpoint-state", text: endpointState(endpoint) }),
          h("td", {}, h("button", { type: "button", dataset: { action: "test", endpointId: endpoint.id },
            text: "Send test" })),
        ),
      ),
    );
  }

  renderDeliveries(endpoint, deliveries) {
    byId("deliveries-endpoint").textContent = endpoint ? `to ${endpoint.url}` : "";
    byId("deliveries-empty").hidden = !endpoint || deliveries.length > 0;
    byId("deliveries-body").replaceChildren(
      ...deliveries.map((delivery) => {
        const attempt = lastAttempt(delivery);
        return h(
          "tr",
          { dataset: { deliveryId: delivery.id, status: delivery.status } },
          h("td", { class: "mono small", title: formatTime(delivery.createdAt), text: delivery.id }),
          h("td", {}, h("span", { class: "mono", text: delivery.eventType }),
            delivery.jobId ? h("a", { class: "block small mono", href: `#/jobs/${delivery.jobId}`, text: delivery.jobId }) : null),
          h("td", {}, h("span", { class: "delivery-status", dataset: { status: delivery.status }, text: delivery.status })),
          h("td", { class: "response small", text: response(attempt) }),
          h("td", { class: "attempts" },
            h("span", { class: "attempt-count", text: String(delivery.attempts.length) }),
            delivery.attempts.length
              ? h("span", { class: "attempt-codes muted small mono",
                  text: ` (${delivery.attempts.map((a) => a.statusCode ?? "error").join(" → ")})` })
              : null),
          h("td", { class: "small", text: delivery.nextAttemptAt ? formatTime(delivery.nextAttemptAt) : "—" }),
          h("td", {}, delivery.status === "succeeded"
            ? null
            : h("button", { type: "button", dataset: { action: "retry", endpointId: endpoint.id, deliveryId: delivery.id },
                text: "Retry now" })),
        );
      }),
    );
  }

  async act(button) {
    const { action, endpointId, deliveryId } = button.dataset;
    const base = `/webhooks/${encodeURIComponent(endpointId)}`;
    const path = action === "test" ? `${base}/test` : `${base}/deliveries/${encodeURIComponent(deliveryId)}/retry`;
    button.disabled = true;
    try {
      const delivery = (await this.api.request("POST", path)).data;
      toast(action === "test" ? `Test event ${delivery.id} queued` : `Sending ${delivery.id} again`);
      if (action === "test" && endpointId !== this.endpointId) {
        window.location.hash = `#/webhooks/${endpointId}`;
      } else {
        this.load();
      }
    } catch (error) {
      showError(byId("webhooks-error"), error, { title: action === "test" ? "Cannot send a test:" : "Cannot retry:" });
      button.disabled = false;
    }
  }
}
