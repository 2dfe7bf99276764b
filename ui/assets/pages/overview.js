// The landing page: every service with sparklines, the top errors, and the call graph in small.
import { api, emptyState, errorBox, fmt, href, navigate, rangeParams, seriesParams } from "../app.js";
import { el, table } from "../dom.js";
import { sparkline } from "../charts.js";
import { serviceGraph } from "../graph.js";

async function servicesPanel() {
  const range = rangeParams();
  const { services } = await api("services", range);
  if (!services.length) return emptyState("spans");
  const seriesRange = seriesParams();
  const series = await Promise.all(services.map((s) =>
    api(`services/${encodeURIComponent(s.name)}/series`, seriesRange).catch(() => ({ points: [] }))));
  const byName = new Map(services.map((s, i) => [s.name, series[i].points]));
  return table([
    { title: "Service", field: "name", cell: (s) => el("a", { href: href(`services/${s.name}`) }, s.name) },
    { title: "Requests", class: "num", field: "requests", cell: (s) => String(s.requests) },
    { title: "Rate /s", class: "num", field: "rate_per_s", cell: (s) => fmt.rate(s.rate_per_s) },
    { title: "", field: "rate_spark", cell: (s) => sparkline(byName.get(s.name).map((p) => p.rate_per_s), { label: `${s.name} rate` }) },
    { title: "Error %", class: "num", field: "error_ratio", cellClass: (s) => fmt.errorClass(s.error_ratio), cell: (s) => fmt.pct(s.error_ratio) },
    { title: "p50", class: "num", field: "p50_ms", cell: (s) => fmt.ms(s.p50_ms) },
    { title: "p95", class: "num", field: "p95_ms", cell: (s) => fmt.ms(s.p95_ms) },
    { title: "p99", class: "num", field: "p99_ms", cell: (s) => fmt.ms(s.p99_ms) },
    { title: "", field: "p99_spark", cell: (s) => sparkline(byName.get(s.name).map((p) => p.p99_ms), { color: "#e08a00", label: `${s.name} p99` }) },
  ], services, { id: "services", rowAttrs: (s) => ({ dataset: { service: s.name } }) });
}

async function errorsPanel() {
  const { groups } = await api("errors", rangeParams());
  if (!groups.length) return el("p", { class: "muted" }, "No errors in this range.");
  return table([
    { title: "Error", field: "fingerprint", cell: (g) => el("a", { href: href("errors", { service: g.service, group: g.id }) }, g.fingerprint) },
    { title: "Service", field: "service", cell: (g) => g.service },
    { title: "Count", class: "num", field: "count", cell: (g) => String(g.count) },
    { title: "Last seen", field: "last_seen", cell: (g) => fmt.time(g.last_seen) },
  ], groups.slice(0, 5), { id: "top-errors", rowAttrs: (g) => ({ dataset: { group: g.id } }) });
}

async function graphPanel() {
  const graph = await api("dependencies", rangeParams());
  if (!graph.nodes.length) return el("p", { class: "muted" }, "No calls in this range.");
  return serviceGraph(graph, {
    compact: true,
    onNode: (n) => navigate(n.kind === "service" ? `services/${n.id}` : "dependencies"),
  });
}

export async function render(view) {
  const slots = {
    services: el("div", { id: "overview-services" }),
    errors: el("div", { id: "overview-errors" }),
    graph: el("div", { id: "overview-graph" }),
  };
  view.append(
    el("h1", {}, "Overview"),
    el("section", {}, el("h2", {}, "Services"), slots.services),
    el("div", { class: "two-columns" },
      el("section", {}, el("h2", {}, "Top errors ", el("a", { href: href("errors"), class: "small" }, "all errors")), slots.errors),
      el("section", {}, el("h2", {}, "Dependencies ", el("a", { href: href("dependencies"), class: "small" }, "full graph")), slots.graph)),
  );
  const fill = async (slot, panel) => {
    try {
      slot.replaceChildren(await panel());
    } catch (e) {
      slot.replaceChildren(errorBox(e));
    }
  };
  const refresh = () => Promise.all([fill(slots.services, servicesPanel), fill(slots.errors, errorsPanel), fill(slots.graph, graphPanel)]);
  await refresh();
  return refresh;
}
