// Services: the list (#/services) and one service in detail (#/services/<name>): its rate, errors
// and percentiles over time, its operations, its latency distribution and heatmap (drag a slow
// region to see what is different about it), and its slowest and failing traces.
import { api, emptyState, fmt, href, rangeParams, seriesParams } from "../app.js";
import { el, table } from "../dom.js";
import { heatmap, histogram, lineChart } from "../charts.js";

export async function render(view, r) {
  return r.args.length ? detail(view, r.args[0], r.params.get("operation")) : list(view);
}

function redColumns(nameCell) {
  return [
    { title: "Name", field: "name", cell: nameCell },
    { title: "Requests", class: "num", field: "requests", cell: (s) => String(s.requests) },
    { title: "Rate /s", class: "num", field: "rate_per_s", cell: (s) => fmt.rate(s.rate_per_s) },
    { title: "Errors", class: "num", field: "errors", cell: (s) => String(s.errors) },
    { title: "Error %", class: "num", field: "error_ratio", cellClass: (s) => fmt.errorClass(s.error_ratio), cell: (s) => fmt.pct(s.error_ratio) },
    { title: "p50", class: "num", field: "p50_ms", cell: (s) => fmt.ms(s.p50_ms) },
    { title: "p95", class: "num", field: "p95_ms", cell: (s) => fmt.ms(s.p95_ms) },
    { title: "p99", class: "num", field: "p99_ms", cell: (s) => fmt.ms(s.p99_ms) },
  ];
}

async function list(view) {
  const box = el("div");
  view.append(el("h1", {}, "Services"), box);
  const refresh = async () => {
    const { services } = await api("services", rangeParams());
    box.replaceChildren(services.length
      ? table(redColumns((s) => el("a", { href: href(`services/${s.name}`) }, s.name)), services,
        { id: "services", rowAttrs: (s) => ({ dataset: { service: s.name } }) })
      : emptyState("spans"));
  };
  await refresh();
  return refresh;
}

async function detail(view, service, operation) {
  const charts = el("div", { class: "charts", id: "service-charts" });
  const ops = el("div", { id: "operations" });
  const dist = el("div", { class: "charts", id: "latency" });
  const compare = el("div", { id: "compare" });
  const heading = el("h1", {}, el("a", { href: href("services") }, "Services"), " / ", service,
    operation ? [" / ", operation, " ", el("a", { href: href(`services/${service}`), class: "small" }, "all operations")] : null);
  view.append(heading,
    el("p", { class: "links" },
      el("a", { id: "slowest-traces", href: href("traces", { service, operation, sort: "duration" }) }, "Slowest traces"), " · ",
      el("a", { id: "failing-traces", href: href("traces", { service, operation, status: "error" }) }, "Failing traces"), " · ",
      el("a", { href: href("errors", { service }) }, "Errors of this service")),
    charts,
    el("section", {}, el("h2", {}, "Operations"), ops),
    el("section", {}, el("h2", {}, "Latency"), dist, compare));

  const refresh = async () => {
    const range = rangeParams();
    // The series and the heatmap on the same 15-second-aligned steps: both are then summed from
    // the server's per-file rollups.
    const steps = seriesParams();
    const [series, operations, latency] = await Promise.all([
      api(`services/${encodeURIComponent(service)}/series`, { ...steps, operation }),
      api(`services/${encodeURIComponent(service)}/operations`, range),
      api("latency", { ...steps, service, operation }),
    ]);
    const times = series.points.map((p) => p.time);
    charts.replaceChildren(
      lineChart({ id: "chart-rate", title: "Requests per second", times, series: [{ name: "rate", values: series.points.map((p) => p.rate_per_s) }], format: fmt.rate }),
      lineChart({ id: "chart-errors", title: "Error ratio", times, series: [{ name: "errors", color: "#c62828", values: series.points.map((p) => (p.requests ? p.error_ratio : null)) }], format: fmt.pct }),
      lineChart({ id: "chart-latency", title: "Latency", times, format: fmt.ms, series: [
        { name: "p50", values: series.points.map((p) => p.p50_ms) },
        { name: "p95", values: series.points.map((p) => p.p95_ms) },
        { name: "p99", values: series.points.map((p) => p.p99_ms) },
      ] }));
    ops.replaceChildren(operations.operations.length
      ? table(redColumns((o) => el("a", { href: href(`services/${service}`, { operation: o.name }) }, o.name)), operations.operations,
        { id: "operations-table", rowAttrs: (o) => ({ dataset: { operation: o.name } }) })
      : emptyState(`requests of ${service}`));
    const bounds = latency.histogram.map((b) => b.le_ms).filter((b) => b !== null);
    dist.replaceChildren(
      histogram(latency.histogram, { id: "histogram" }),
      heatmap({ times: latency.times, rows: latency.heatmap, bounds }, (sel) => compareRegion(sel, latency, bounds)));
  };

  async function compareRegion(sel, latency, bounds) {
    const step = latency.step_seconds * 1000;
    const start = new Date(new Date(latency.times[sel.startIndex]).getTime());
    const end = new Date(new Date(latency.times[sel.endIndex]).getTime() + step);
    const min = sel.minBucket === 0 ? 0 : bounds[sel.minBucket - 1];
    const max = bounds[sel.maxBucket];
    compare.replaceChildren(el("p", { class: "muted" }, "Comparing…"));
    const result = await api("latency/compare", {
      service, operation, start: start.toISOString(), end: end.toISOString(), min_ms: min, max_ms: max ?? "",
    });
    compare.replaceChildren(
      el("h3", {}, `${result.selected} requests between ${fmt.ms(min)} and ${max === undefined ? "∞" : fmt.ms(max)} vs ${result.rest} others`),
      el("p", {}, el("a", { href: href("traces", { service, operation, min_duration_ms: min, max_duration_ms: max, start: start.toISOString(), end: end.toISOString(), sort: "duration" }) }, "Traces in this region")),
      table([
        { title: "Dimension", field: "dimension", cell: (c) => c.dimension },
        { title: "Value", field: "value", cell: (c) => c.value },
        { title: "Share of selected", class: "num", field: "selected_share", cell: (c) => fmt.pct(c.selected_share) },
        { title: "Share of the rest", class: "num", field: "rest_share", cell: (c) => fmt.pct(c.rest_share) },
        { title: "Difference", class: "num", field: "difference", cell: (c) => (c.difference >= 0 ? "+" : "") + fmt.pct(c.difference) },
      ], result.contrasts.filter((c) => c.difference > 0).slice(0, 12), { id: "compare-table" }));
  }

  await refresh();
  return refresh;
}

