// Graph: one PromQL expression charted over the shared time range through the Prometheus API
// (/api/v1/query_range), with each series' labels and latest value. Alert rules link here, and
// so do the generatorURLs of the alerts Lakescope sends (/graph?g0.expr=… redirects here).
import { href, query, rangeParams, route } from "../app.js";
import { el, table } from "../dom.js";
import { lineChart } from "../charts.js";

const UNIT = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
const MAX_LINES = 12;

/** The shared range's "now-15m" / RFC 3339 bounds as Unix seconds. */
export function seconds(text, now) {
  if (!text || text === "now") return now;
  const m = /^now-(\d+)([smhdw])$/.exec(text);
  if (m) return now - Number(m[1]) * UNIT[m[2]];
  return Date.parse(text) / 1000;
}

function seriesName(metric) {
  const { __name__: name = "", ...labels } = metric;
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(", ");
  return pairs ? `${name}{${pairs}}` : name || "{}";
}

function number(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e6 || (a > 0 && a < 1e-3)) return v.toExponential(3);
  return String(Math.round(v * 1e4) / 1e4);
}

async function promRange(expr, start, end, step) {
  const res = await fetch("/api/v1/query_range?" + query({ query: expr, start, end, step }));
  const body = await res.json().catch(() => ({}));
  if (body.status !== "success") throw new Error(body.error || res.status + " " + res.statusText);
  return body.data;
}

export async function render(view, r) {
  const expr = r.params.get("expr") || r.params.get("g0.expr") || "";
  const input = el("textarea", { name: "expr", id: "graph-expr", rows: 3, cols: 80, spellcheck: "false",
    placeholder: 'sum by (service) (rate(traces_spanmetrics_calls_total{span_kind="SPAN_KIND_SERVER"}[5m]))' }, expr);
  const form = el("form", { class: "search", id: "graph-form" }, input, el("button", { type: "submit" }, "Chart"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = href("graph", { expr: input.value.trim() });
  });
  const out = el("div", { id: "graph-result" });
  view.append(el("h1", {}, "Graph"),
    el("p", { class: "muted" }, "A PromQL expression over the OTLP metrics and the span-derived metrics (",
      el("a", { href: href("alerts") }, "alert rules"), " use the same)."),
    form, out);
  if (!expr) return null;
  const refresh = async () => {
    const { start, end } = rangeParams();
    const now = Date.now() / 1000;
    const s = Math.floor(seconds(start, now)), e = Math.floor(seconds(end, now));
    const step = Math.max(1, Math.ceil((e - s) / 120));
    let data;
    try {
      data = await promRange(expr, s, e, step);
    } catch (err) {
      out.replaceChildren(el("p", { class: "error-box", role: "alert", id: "graph-error" }, err.message));
      return;
    }
    const times = [];
    for (let t = s; t <= e; t += step) times.push(new Date(t * 1000).toISOString());
    const lines = data.result.map((series) => {
      const values = new Array(times.length).fill(null);
      for (const [t, v] of series.values) {
        const i = Math.round((t - s) / step);
        if (i >= 0 && i < times.length) values[i] = Number(v);
      }
      const last = series.values.length ? Number(series.values[series.values.length - 1][1]) : null;
      return { name: seriesName(series.metric), values, last };
    });
    out.replaceChildren(el("div", {},
      lines.length
        ? lineChart({ id: "graph-chart", title: `${lines.length} series, step ${step} s`, times, format: number,
            series: lines.slice(0, MAX_LINES) })
        : el("p", { class: "empty", id: "graph-empty" }, "The expression has no result in this time range."),
      lines.length > MAX_LINES ? el("p", { class: "muted" }, `The chart shows the first ${MAX_LINES}.`) : null,
      lines.length ? table([
        { title: "Series", field: "name", cell: (l) => el("code", {}, l.name) },
        { title: "Latest", class: "num", field: "last", cell: (l) => number(l.last) },
      ], lines, { id: "graph-series" }) : null));
  };
  await refresh();
  return refresh;
}
