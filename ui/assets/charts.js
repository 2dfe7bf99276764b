// Small SVG charts: time-series lines, sparklines, a histogram and a selectable heatmap.
import { el, svg } from "./dom.js";

const COLORS = ["#2f6fde", "#e08a00", "#c62828", "#2e7d32", "#7b1fa2", "#00838f"];

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * A line chart over time. series: [{name, values: (number|null)[]}]; times: ISO strings;
 * format: y-axis label formatter.
 */
export function lineChart({ title, times, series, format = String, height = 160, id }) {
  const width = 560, left = 56, right = 8, top = 8, bottom = 22;
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  const max = niceMax(Math.max(0, ...all));
  const n = Math.max(times.length - 1, 1);
  const x = (i) => left + (i / n) * (width - left - right);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  const grid = [0, 0.5, 1].map((f) => [
    svg("line", { x1: left, x2: width - right, y1: y(max * f), y2: y(max * f), class: "grid" }),
    svg("text", { x: left - 6, y: y(max * f) + 4, class: "axis", "text-anchor": "end" }, format(max * f)),
  ]);
  const ticks = [0, Math.floor(n / 2), n].filter((i, k, a) => a.indexOf(i) === k && times[i]).map((i) =>
    svg("text", { x: x(i), y: height - 6, class: "axis", "text-anchor": i === 0 ? "start" : i === n ? "end" : "middle" },
      new Date(times[i]).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  const lines = series.map((s, k) => {
    let d = "";
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      d += (d && s.values[i - 1] !== null && s.values[i - 1] !== undefined ? "L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1);
    });
    const color = s.color || COLORS[k % COLORS.length];
    const dots = s.values.map((v, i) => (v === null || v === undefined) ? null :
      svg("circle", { cx: x(i), cy: y(v), r: 2.2, fill: color },
        svg("title", {}, `${s.name} ${new Date(times[i]).toLocaleTimeString()}: ${format(v)}`)));
    return [svg("path", { d, fill: "none", stroke: color, "stroke-width": 1.6 }), dots];
  });
  const legend = el("div", { class: "legend" }, series.map((s, k) =>
    el("span", {}, el("i", { style: `background:${s.color || COLORS[k % COLORS.length]}` }), s.name)));
  return el("figure", { class: "chart", id },
    el("figcaption", {}, title, legend),
    svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img", "aria-label": title },
      grid, ticks, lines));
}

/** A tiny line of values, no axes. */
export function sparkline(values, { width = 100, height = 24, color = "#2f6fde", label = "" } = {}) {
  const max = Math.max(...values.map((v) => v || 0), 0) || 1;
  const n = Math.max(values.length - 1, 1);
  const pts = values.map((v, i) => `${((i / n) * width).toFixed(1)},${(height - 2 - ((v || 0) / max) * (height - 4)).toFixed(1)}`);
  return svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label },
    svg("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 1.4 }));
}

function bucketLabel(le) {
  return le === null ? "more" : le >= 1000 ? le / 1000 + " s" : le + " ms";
}

/** A histogram of latency buckets [{le_ms, count}]. */
export function histogram(buckets, { id } = {}) {
  const width = 560, height = 150, bottom = 30, top = 6;
  const first = buckets.findIndex((b) => b.count > 0);
  let last = buckets.length - 1;
  while (last > 0 && buckets[last].count === 0) last--;
  const shown = first < 0 ? buckets.slice(0, 1) : buckets.slice(Math.max(0, first - 1), Math.min(buckets.length, last + 2));
  const max = Math.max(1, ...shown.map((b) => b.count));
  const w = width / shown.length;
  return el("figure", { class: "chart", id },
    el("figcaption", {}, "Latency distribution"),
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "latency histogram" },
      shown.map((b, i) => {
        const h = (b.count / max) * (height - bottom - top);
        return [
          svg("rect", { x: i * w + 2, y: height - bottom - h, width: w - 4, height: h, class: "bar" },
            svg("title", {}, `≤ ${bucketLabel(b.le_ms)}: ${b.count}`)),
          svg("text", { x: i * w + w / 2, y: height - 12, class: "axis", "text-anchor": "middle" }, bucketLabel(b.le_ms)),
        ];
      })));
}

/**
 * A heatmap of requests per (time step, latency bucket). Dragging selects a region and calls
 * onSelect({startIndex, endIndex, minBucket, maxBucket}).
 */
export function heatmap({ times, rows, bounds }, onSelect) {
  const width = 560, height = 180, left = 56, bottom = 20;
  const nb = bounds.length + 1;
  const cw = (width - left) / Math.max(times.length, 1);
  const ch = (height - bottom) / nb;
  const max = Math.max(1, ...rows.flat());
  const cells = [];
  rows.forEach((row, t) => row.forEach((c, b) => {
    if (!c) return;
    const a = 0.15 + 0.85 * Math.sqrt(c / max);
    cells.push(svg("rect", { x: left + t * cw, y: (nb - 1 - b) * ch, width: cw + 0.3, height: ch + 0.3, fill: `rgba(198,40,40,${a.toFixed(2)})` },
      svg("title", {}, `${new Date(times[t]).toLocaleTimeString()}, ≤ ${bucketLabel(bounds[b] ?? null)}: ${c}`)));
  }));
  const labels = [0, 4, 8, 12, 16].filter((b) => b < nb).map((b) =>
    svg("text", { x: left - 6, y: (nb - 1 - b) * ch + ch, class: "axis", "text-anchor": "end" }, bucketLabel(bounds[b] ?? null)));
  const selection = svg("rect", { class: "selection", x: 0, y: 0, width: 0, height: 0, visibility: "hidden" });
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "latency heatmap", class: "heatmap" },
    cells, labels, selection);
  let start = null;
  const cellAt = (ev) => {
    const r = root.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * width;
    const py = ((ev.clientY - r.top) / r.height) * height;
    return {
      t: Math.min(times.length - 1, Math.max(0, Math.floor((px - left) / cw))),
      b: Math.min(nb - 1, Math.max(0, nb - 1 - Math.floor(py / ch))),
    };
  };
  const draw = (a, z) => {
    const t0 = Math.min(a.t, z.t), t1 = Math.max(a.t, z.t), b0 = Math.min(a.b, z.b), b1 = Math.max(a.b, z.b);
    Object.entries({ x: left + t0 * cw, width: (t1 - t0 + 1) * cw, y: (nb - 1 - b1) * ch, height: (b1 - b0 + 1) * ch, visibility: "visible" })
      .forEach(([k, v]) => selection.setAttribute(k, v));
    return { startIndex: t0, endIndex: t1, minBucket: b0, maxBucket: b1 };
  };
  root.addEventListener("mousedown", (ev) => { start = cellAt(ev); draw(start, start); ev.preventDefault(); });
  root.addEventListener("mousemove", (ev) => { if (start) draw(start, cellAt(ev)); });
  root.addEventListener("mouseup", (ev) => {
    if (!start) return;
    const sel = draw(start, cellAt(ev));
    start = null;
    onSelect && onSelect(sel);
  });
  return el("figure", { class: "chart" },
    el("figcaption", {}, "Latency heatmap ", el("span", { class: "muted" }, "(drag over a slow region to compare it with the rest)")),
    root);
}
