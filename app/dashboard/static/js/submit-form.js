// The "New job" form: a job specification typed in, or a template with changes.

import { byId, h, hideError, showError } from "./dom.js";

const SPEC_FIELDS = ["provider", "image", "cpu", "memory", "storage", "duration"];

export class SubmitForm {
  /** @param {{onSubmitted: (job: object) => void}} hooks */
  constructor({ onSubmitted }) {
    /** @type {import("./api.js").Api | null} set for each signed-in key */
    this.api = null;
    this.onSubmitted = onSubmitted;
    this.form = byId("submit-form");
    this.errorBox = byId("submit-error");
    this.templatePicker = byId("template-select");
    this.templates = null;
    this.template = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.form.addEventListener("input", (event) => {
      event.target.closest("label")?.classList.remove("invalid");
    });
    this.templatePicker.addEventListener("change", () => this.useTemplate(this.templatePicker.value));
  }

  show() {
    this.form.hidden = false;
    hideError(this.errorBox);
    if (this.templates === null) this.loadTemplates();
    this.input("image").focus();
  }

  hide() {
    this.form.hidden = true;
  }

  /** Forgets what the previous key typed and could use. */
  reset() {
    this.hide();
    this.form.reset();
    this.templates = null;
    this.template = null;
    byId("template-field").hidden = true;
    byId("template-description").textContent = "";
    hideError(this.errorBox);
  }

  input(name) {
    return this.form.elements.namedItem(name);
  }

  /** Providers as `GET /providers` describes them (name, health), or plain names. */
  setProviders(providers) {
    const select = this.input("provider");
    const current = select.value;
    select.replaceChildren(
      ...providers.map(({ name, health }) => {
        const note = health && health.status !== "healthy" ? ` (${health.status.replace("_", " ")})` : "";
        return h("option", { value: name, title: health?.reason ?? "" }, `${name}${note}`);
      }),
    );
    const names = providers.map((p) => p.name);
    const healthy = providers.find((p) => p.health?.status === "healthy");
    if (names.includes(current)) select.value = current;
    else if (healthy) select.value = healthy.name;
  }

  async loadTemplates() {
    this.templates = [];
    try {
      this.templates = await this.api.listTemplates();
    } catch {
      // No templates API on this gateway, or this key may not read templates: the form alone.
    }
    this.templatePicker.replaceChildren(
      h("option", { value: "" }, "None: fill in the form"),
      ...this.templates.map((t) => h("option", { value: t.id }, t.name)),
    );
    byId("template-field").hidden = this.templates.length === 0;
  }

  useTemplate(templateId) {
    this.template = this.templates.find((t) => t.id === templateId) ?? null;
    byId("template-description").textContent = this.template?.description ?? "";
    if (this.template) this.fill(this.template.config);
  }

  /** Puts a job specification into the form. */
  fill(config) {
    for (const name of SPEC_FIELDS) {
      if (config[name] !== undefined) this.input(name).value = config[name];
    }
    this.input("command").value = (config.command ?? []).map(quote).join(" ");
    this.input("args").value = (config.args ?? []).map(quote).join(" ");
    this.input("env").value = Object.entries(config.env ?? {})
      .map(([name, value]) => `${name}=${value}`)
      .join("\n");
    this.input("ports").value = (config.ports ?? [])
      .filter((p) => p.expose)
      .map((p) => (p.protocol === "udp" ? `${p.port}/udp` : String(p.port)))
      .join(", ");
  }

  /** The form as a job specification, and what in it cannot be one. */
  read() {
    const problems = [];
    const spec = {};
    for (const name of SPEC_FIELDS) {
      const raw = this.input(name).value.trim();
      if (raw === "") continue; // the API names each missing field
      const number = Number(raw);
      spec[name] = ["cpu", "duration"].includes(name) && Number.isFinite(number) ? number : raw;
    }
    for (const name of ["command", "args"]) {
      const text = this.input(name).value.trim();
      if (!text) continue;
      try {
        spec[name] = splitWords(text);
      } catch (error) {
        problems.push({ field: name, message: error.message });
      }
    }
    const env = {};
    this.input("env")
      .value.split("\n")
      .forEach((line, index) => {
        if (!line.trim()) return;
        const at = line.indexOf("=");
        if (at < 1) {
          problems.push({ field: "env", message: `line ${index + 1}: write NAME=value` });
        } else {
          env[line.slice(0, at).trim()] = line.slice(at + 1);
        }
      });
    if (Object.keys(env).length) spec.env = env;
    const ports = [];
    for (const item of this.input("ports").value.split(/[\s,]+/).filter(Boolean)) {
      const match = /^(\d+)(?:\/(tcp|udp))?$/i.exec(item);
      if (!match) {
        problems.push({ field: "ports", message: `'${item}' is not a port: write 80 or 53/udp` });
      } else {
        ports.push({ port: Number(match[1]), expose: true, protocol: (match[2] ?? "tcp").toLowerCase() });
      }
    }
    if (ports.length) spec.ports = ports;
    return { spec, problems };
  }

  async submit() {
    hideError(this.errorBox);
    for (const label of this.form.querySelectorAll("label.invalid")) label.classList.remove("invalid");
    const { spec, problems } = this.read();
    if (problems.length) {
      this.showProblems({ message: "Check the form.", details: problems });
      return;
    }
    const button = byId("submit-button");
    button.disabled = true;
    try {
      const job = this.template
        ? await this.api.submitFromTemplate(this.template.id, changes(this.template.config, spec))
        : await this.api.submitJob(spec);
      this.onSubmitted(job);
    } catch (error) {
      this.showProblems(error);
    } finally {
      button.disabled = false;
    }
  }

  showProblems(error) {
    showError(this.errorBox, error, { title: "The job was not submitted." });
    for (const detail of error.details ?? []) {
      // "ports[0].port" and "env.DEBUG" belong to the ports and env inputs.
      const name = String(detail.field ?? "").split(/[.[]/)[0];
      const input = name && this.input(name);
      if (input instanceof HTMLElement) input.closest("label")?.classList.add("invalid");
    }
  }
}

/**
 * What the form changes in a template, as the overrides of POST /jobs/from-template: a JSON
 * merge patch, where null removes. Only what the form shows is compared, so a template's
 * volumes or unexposed ports are kept.
 */
export function changes(config, spec) {
  const overrides = {};
  for (const name of SPEC_FIELDS) {
    if (spec[name] !== undefined && spec[name] !== config[name]) overrides[name] = spec[name];
  }
  for (const name of ["command", "args"]) {
    const before = config[name] ?? null;
    const after = spec[name] ?? null;
    if (JSON.stringify(before) !== JSON.stringify(after)) overrides[name] = after;
  }
  const env = {};
  const before = config.env ?? {};
  const after = spec.env ?? {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (!(key in after)) env[key] = null;
    else if (before[key] !== after[key]) env[key] = after[key];
  }
  if (Object.keys(env).length) overrides.env = env;
  const templatePorts = config.ports ?? [];
  const exposed = templatePorts.filter((p) => p.expose);
  const formPorts = spec.ports ?? [];
  if (JSON.stringify(portKeys(exposed)) !== JSON.stringify(portKeys(formPorts))) {
    overrides.ports = [...templatePorts.filter((p) => !p.expose), ...formPorts];
  }
  return overrides;
}

function portKeys(ports) {
  return ports.map((p) => `${p.port}/${p.protocol ?? "tcp"}`).sort();
}

/** Splits a command line into words as a POSIX shell would quote them (no expansion). */
export function splitWords(text) {
  const words = [];
  let word = null;
  let quoteChar = null;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoteChar === "'") {
      if (c === "'") quoteChar = null;
      else word += c;
    } else if (quoteChar === '"') {
      if (c === '"') quoteChar = null;
      else if (c === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) word += text[++i];
      else word += c;
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word ??= "";
      if (c === "'" || c === '"') quoteChar = c;
      else if (c === "\\" && i + 1 < text.length) word += text[++i];
      else word += c;
    }
  }
  if (quoteChar) throw new Error(`a ${quoteChar} quote is not closed`);
  if (word !== null) words.push(word);
  return words;
}

/** A word quoted so that splitWords gives it back. */
function quote(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`;
}
