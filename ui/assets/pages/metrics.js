// Metrics: every metric with its type, unit and dimensions; pick one to chart it with an
// aggregation that fits its type, filtered and grouped by its attributes.
import { api, emptyState, href, rangeParams } from "../app.js";
import { el, table } from "../dom.js";
import { lineChart } from "../charts.js";

const AGGS = {
  counter: ["rate", "increase", "last"],
  gauge: ["last", "avg", "min", "max"],
  histogram: ["quantile", "avg", "count", "sum"],
  summary: ["quantile", "count", "sum"],
};

function family(m) {
  if (m.type === "sum" && m.monotonic) return "counter";
  if (m.type === "gauge" || m.type === "sum") return "gauge";
  if (m.type === "summary") return "summary";
  return "histogram";
}

function number(v) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(2) + "k";
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

export async function render(view, r) {
  return r.args.length ? explore(view, r.args[0], r.params) : list(view);
}

async function list(view) {
  const box = el("div");
  view.append(el("h1", {}, "Metrics"), box);
  const refresh = async () => {
    const { metrics } = await api("metrics", rangeParams());
    box.replaceChildren(metrics.length ? table([
      { title: "Metric", field: "name", cell: (m) => el("a", { href: href(`metrics/${m.name}`) }, m.name) },
      { title: "Type", field: "type", cell: (m) => (m.type === "sum" ? (m.monotonic ? "counter" : "up-down sum") : m.type) },
      { title: "Unit", field: "unit", cell: (m) => m.unit },
      { title: "Dimensions", field: "attribute_keys", cell: (m) => m.attribute_keys.join(", ") },
      { title: "Services", field: "services", cell: (m) => m.services.join(", ") },
      { title: "Points", class: "num", field: "points", cell: (m) => String(m.points) },
    ], metrics, { id: "metrics", rowAttrs: (m) => ({ dataset: { metric: m.name } }) }) : emptyState("metrics"));
  };
  await refresh();
  return refresh;
}

async function explore(view, name, params) {
  const { metrics } = await api("metrics", rangeParams());
  const m = metrics.find((x) => x.name === name);
  view.append(el("h1", {}, el("a", { href: href("metrics") }, "Metrics"), " / ", name));
  if (!m) {
    view.append(emptyState(`points of ${name}`));
    return null;
  }
  const kind = family(m);
  const agg = params.get("agg") || AGGS[kind][0];
  const form = el("form", { class: "search", id: "metric-query" },
    el("label", {}, "Aggregation ", el("select", { name: "agg", id: "metric-agg" },
      AGGS[kind].map((a) => el("option", { value: a, selected: a === agg }, a)))),
    ["histogram", "summary"].includes(kind) ? el("label", {}, "Quantile ", el("input", { name: "q", id: "metric-q", size: 5, value: params.get("q") || "0.99" })) : null,
    el("label", {}, "Group by ", el("select", { name: "group_by", id: "metric-group" },
      [["", "nothing"], ["service.name", "service.name"], ...m.attribute_keys.map((k) => [k, k])].map(([v, l]) =>
        el("option", { value: v, selected: (params.get("group_by") || "") === v }, l)))),
    el("label", {}, "Filter ", el("input", { name: "filter", id: "metric-filter", placeholder: "key=value", value: params.get("filter") || "" })),
    el("button", { type: "submit" }, "Chart"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const key of ["agg", "q", "group_by", "filter"]) if (data.get(key)) next[key] = data.get(key);
    location.hash = href(`metrics/${name}`, next);
  });
  const chart = el("div", { id: "metric-chart" });
  view.append(el("p", { class: "muted" }, `${m.type}${m.monotonic ? " (counter)" : ""}, ${m.unit || "no unit"} — ${m.description}`), form, chart);
  const refresh = async () => {
    const q = { ...rangeParams(), name, agg };
    for (const key of ["q", "group_by", "filter"]) if (params.get(key)) q[key] = params.get(key);
    const data = await api("metrics/query", q);
    const title = `${name}: ${data.agg}${data.quantile !== null ? " " + data.quantile : ""}${data.agg === "rate" ? " per second" : ""}`;
    // el() flattens the optional exemplars and skips null; replaceChildren would print them.
    chart.replaceChildren(el("div", {}, lineChart({
      id: "metric-line", title, times: data.times, format: number,
      series: data.series.map((s) => ({ name: Object.values(s.labels).join(", ") || name, values: s.values })),
    }), data.exemplars.length ? [el("h2", {}, "Exemplars"), table([
      { title: "Time", cell: (e) => new Date(e.time).toLocaleString() },
      { title: "Value", class: "num", cell: (e) => number(e.value) },
      { title: "Service", cell: (e) => e.service },
      { title: "Trace", cell: (e) => el("a", { href: href(`traces/${e.trace_id}`), class: "trace-link" }, e.trace_id) },
    ], data.exemplars.slice(0, 20), { id: "exemplars" })] : null));
  };
  await refresh();
  return refresh;
}
