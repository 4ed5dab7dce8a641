// Line charts drawn as SVG by this module: no library, nothing inline (the page's CSP), crisp
// at any size. One chart is a few series of {timestamp, value} points sharing a time axis.
// Every point is one vertex of its series' path (and a dot), so a chart shows exactly the
// samples the API returned.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 420;
const HEIGHT = 170;
const PAD = { left: 58, right: 10, top: 10, bottom: 24 };

function svg(tag, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

/** 1 234 567 -> "1.2M"; the unit is added by the caller's `format`. */
export function compact(value) {
  const abs = Math.abs(value);
  for (const [size, suffix] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (abs >= size) return `${trim(value / size)}${suffix}`;
  }
  return trim(value);
}

function trim(value) {
  return Number(value.toFixed(Math.abs(value) >= 10 ? 0 : 1)).toString();
}

/** 1536 -> "1.5 KiB". */
export function bytes(value) {
  if (Math.abs(value) < 1024) return `${Math.round(value)} B`;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let amount = value;
  let unit = 0;
  while (Math.abs(amount) >= 1024 && unit < units.length - 1) {
    amount /= 1024;
    unit += 1;
  }
  return `${trim(amount)} ${units[unit]}`;
}

/** A "nice" bound for the y axis: 1, 2 or 5 times a power of ten, at or beyond `value`
 * (away from zero: a counter that was reset gives a negative rise). With `base` 1024 the
 * power of ten is of KiB, MiB, …, so byte axes step by 100 KiB rather than 97.7 KiB. */
function niceBound(value, base = 1) {
  if (value === 0) return 0;
  if (base > 1) {
    const scale = base ** Math.max(0, Math.floor(Math.log(Math.abs(value)) / Math.log(base)));
    return niceBound(value / scale) * scale;
  }
  const size = Math.abs(value);
  const power = 10 ** Math.floor(Math.log10(size));
  const step = [1, 2, 5, 10].find((s) => s * power >= size) ?? 10;
  return Math.sign(value) * step * power;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

/**
 * Draws a chart into `figure` (replacing what it held).
 * @param {HTMLElement} figure
 * @param {object} chart
 * @param {string} chart.title e.g. "CPU"
 * @param {(value: number) => string} chart.format a value as a person reads it
 * @param {{name: string, key: string, points: {timestamp: string, value: number}[]}[]} chart.series
 * @param {[number, number]} [chart.window] the time axis (ms); defaults to the points' span
 * @param {number} [chart.base] 1024 for bytes: the axis steps in KiB, MiB, …
 */
export function drawChart(figure, { title, format, series, window, base = 1 }) {
  const times = series.flatMap((s) => s.points.map((p) => Date.parse(p.timestamp)));
  const values = series.flatMap((s) => s.points.map((p) => p.value));
  const [start, end] = window ?? [Math.min(...times), Math.max(...times)];
  const span = Math.max(end - start, 1);
  const top = niceBound(Math.max(0, ...values), base) || 1;
  const bottom = niceBound(Math.min(0, ...values), base);
  const innerWidth = WIDTH - PAD.left - PAD.right;
  const innerHeight = HEIGHT - PAD.top - PAD.bottom;
  const x = (time) => PAD.left + (times.length > 1 || window ? ((time - start) / span) * innerWidth : innerWidth / 2);
  const y = (value) => PAD.top + innerHeight - ((value - bottom) / (top - bottom)) * innerHeight;

  const latest = series
    .filter((s) => s.points.length)
    .map((s) => `${s.name} ${format(s.points[s.points.length - 1].value)}`)
    .join(", ");
  const label = values.length
    ? `${title} over time, ${values.length} samples; latest: ${latest}`
    : `${title}: no samples yet`;
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart",
    role: "img",
    "aria-label": label,
  });
  root.append(svg("title", {}, label));

  // Round steps: a range of 1 or 5 (times a power of ten) in fifths, of 2 in quarters.
  const range = top - bottom;
  const scale = base > 1 ? base ** Math.max(0, Math.floor(Math.log(range) / Math.log(base))) : 1;
  const lines = Number((range / scale).toExponential().charAt(0)) === 2 ? 4 : 5;
  let previous = null;
  for (let i = 0; i <= lines; i += 1) {
    const value = bottom + (range / lines) * i;
    const lineY = y(value);
    root.append(svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: lineY, y2: lineY }));
    // Small ranges round to the same label: each label once.
    const text = format(value);
    if (text !== previous) {
      root.append(svg("text", { class: "axis", x: PAD.left - 8, y: lineY + 4, "text-anchor": "end" }, text));
    }
    previous = text;
  }
  if (times.length || window) {
    root.append(
      svg("text", { class: "axis", x: PAD.left, y: HEIGHT - 8 }, clock.format(new Date(start))),
      svg("text", { class: "axis", x: WIDTH - PAD.right, y: HEIGHT - 8, "text-anchor": "end" },
        clock.format(new Date(end))),
    );
  }

  for (const { name, key, points } of series) {
    if (!points.length) continue;
    const vertices = points.map((p) => [x(Date.parse(p.timestamp)), y(p.value)]);
    const d = vertices.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
    const group = svg("g", { class: `series series-${key}`, "data-series": key });
    group.append(svg("path", { class: "line", d, "data-points": points.length }));
    for (const [index, [px, py]] of vertices.entries()) {
      const dot = svg("circle", { class: "dot", cx: px.toFixed(1), cy: py.toFixed(1), r: 2.5 });
      const point = points[index];
      dot.append(svg("title", {}, `${name} ${format(point.value)} at ${clock.format(new Date(point.timestamp))}`));
      group.append(dot);
    }
    root.append(group);
  }
  if (!values.length) {
    root.append(
      svg("text", { class: "empty", x: PAD.left + innerWidth / 2, y: PAD.top + innerHeight / 2, "text-anchor": "middle" },
        "No samples yet"),
    );
  }

  const legend = document.createElement("figcaption");
  const heading = document.createElement("strong");
  heading.textContent = title;
  legend.append(heading);
  for (const { name, key, points } of series) {
    const item = document.createElement("span");
    item.className = `legend legend-${key}`;
    item.textContent = points.length ? `${name} ${format(points[points.length - 1].value)}` : `${name} —`;
    legend.append(item);
  }
  figure.replaceChildren(legend, root);
  figure.dataset.points = String(values.length);
}
