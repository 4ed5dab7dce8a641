// Small DOM helpers. Text from the API only ever becomes text nodes (textContent), never
// markup: a log line such as "<img onerror=...>" shows as those characters.

/**
 * h("span", {class: "status", dataset: {status: "running"}, title: "..."}, "running")
 * Children are nodes or strings (strings become text nodes); null and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "text") element.textContent = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element) {
  element.replaceChildren();
}

export const byId = (id) => document.getElementById(id);

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/** A job status as a coloured badge. */
export function statusBadge(status, element = h("span")) {
  element.className = "status";
  element.dataset.status = status;
  element.textContent = status;
  return element;
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});
const yearFormat = new Intl.DateTimeFormat(undefined, { year: "numeric" });
const clockFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  const sameYear = date.getFullYear() === new Date().getFullYear();
  return sameYear ? timeFormat.format(date) : `${timeFormat.format(date)}, ${yearFormat.format(date)}`;
}

export function formatClock(iso) {
  return iso ? clockFormat.format(new Date(iso)) : "";
}

export function formatAgo(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return formatTime(iso);
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const hours = Math.floor(s / 3600);
  return `${hours} h ${Math.floor((s % 3600) / 60)} min`;
}

export function formatUsd(amount) {
  if (amount === null || amount === undefined) return "—";
  return `$${amount.toFixed(amount !== 0 && Math.abs(amount) < 0.01 ? 4 : 2)}`;
}

/**
 * Shows an error in a box: the API's code and message, and each detail (`field: message`).
 * `error` is an ApiError, or anything with a message.
 */
export function showError(box, error, { title } = {}) {
  clear(box);
  box.hidden = false;
  const code = error.code ? h("span", { class: "error-code", text: error.code }) : null;
  box.append(
    h("p", { class: "error-title" }, title ? `${title} ` : "", code, " ", error.message ?? ""),
  );
  const details = (error.details ?? []).filter((d) => d && (d.field || d.message));
  if (details.length) {
    box.append(
      h(
        "ul",
        { class: "error-details" },
        details.map((detail) =>
          h("li", {}, detail.field ? h("code", { text: detail.field }) : null, detail.field ? ": " : "",
            detail.message ?? ""),
        ),
      ),
    );
  }
}

export function hideError(box) {
  box.hidden = true;
  clear(box);
}

/** A short notice in the corner that fades away. */
export function toast(message, kind = "info") {
  const note = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  byId("toasts").append(note);
  setTimeout(() => note.classList.add("leaving"), 4000);
  setTimeout(() => note.remove(), 4600);
}

/** Calls `fn` once, `wait` ms after the last of a burst of calls. */
export function debounce(fn, wait) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}
