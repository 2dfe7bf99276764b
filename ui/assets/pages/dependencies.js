// Dependencies: the service graph; click a node or an edge for its numbers and where to go next.
import { api, emptyState, fmt, href, rangeParams } from "../app.js";
import { el, table } from "../dom.js";
import { serviceGraph } from "../graph.js";

function edgeDetails(e) {
  const row = (label, side) => side ? el("tr", {}, el("th", {}, label), el("td", {}, String(side.calls ?? side.requests)), el("td", {}, String(side.errors)),
    el("td", {}, fmt.pct(side.error_ratio)), el("td", {}, fmt.ms(side.p50_ms)), el("td", {}, fmt.ms(side.p95_ms)), el("td", {}, fmt.ms(side.p99_ms))) : null;
  return el("div", { class: "details", id: "edge-details" },
    el("h2", {}, `${e.source} → ${e.target}`, el("span", { class: "muted" }, ` (${e.target_kind})`)),
    el("table", {}, el("thead", {}, el("tr", {}, ["", "calls", "errors", "error %", "p50", "p95", "p99"].map((t) => el("th", {}, t)))),
      el("tbody", {}, row("as the caller sees it", e), row("as the callee sees it", e.callee))),
    el("p", {}, el("a", { href: href("traces", { service: e.source }) }, `Traces of ${e.source}`),
      e.target_kind === "service" ? [" · ", el("a", { href: href(`services/${e.target}`) }, `Service ${e.target}`)] : null));
}

export async function render(view) {
  const box = el("div");
  const details = el("div");
  const list = el("div");
  view.append(el("h1", {}, "Dependencies"),
    el("p", { class: "muted" }, "Who calls whom, left to right in call order. Edge width: calls per second; colour: error ratio (green none, amber ≥ 1 %, red ≥ 5 %). Click a node or an edge."),
    box, details, el("h2", {}, "Edges"), list);
  const refresh = async () => {
    const graph = await api("dependencies", rangeParams());
    if (!graph.nodes.length) {
      box.replaceChildren(emptyState("calls"));
      list.replaceChildren();
      return;
    }
    box.replaceChildren(serviceGraph(graph, {
      onNode: (n) => {
        if (n.kind === "service") location.hash = href(`services/${n.id}`);
        else details.replaceChildren(el("div", { class: "details" }, el("h2", {}, n.id, el("span", { class: "muted" }, ` (${n.kind})`)),
          table([{ title: "Caller", cell: (e) => e.source }, { title: "Calls", class: "num", cell: (e) => String(e.calls) },
            { title: "Error %", class: "num", cell: (e) => fmt.pct(e.error_ratio) }, { title: "p99", class: "num", cell: (e) => fmt.ms(e.p99_ms) }],
          graph.edges.filter((e) => e.target === n.id))));
      },
      onEdge: (e) => details.replaceChildren(edgeDetails(e)),
    }));
    list.replaceChildren(table([
      { title: "Caller", field: "source", cell: (e) => e.source },
      { title: "Callee", field: "target", cell: (e) => e.target },
      { title: "Kind", field: "target_kind", cell: (e) => e.target_kind },
      { title: "Calls", class: "num", field: "calls", cell: (e) => String(e.calls) },
      { title: "Errors", class: "num", field: "errors", cell: (e) => String(e.errors) },
      { title: "Error %", class: "num", field: "error_ratio", cellClass: (e) => fmt.errorClass(e.error_ratio), cell: (e) => fmt.pct(e.error_ratio) },
      { title: "p50", class: "num", field: "p50_ms", cell: (e) => fmt.ms(e.p50_ms) },
      { title: "p99", class: "num", field: "p99_ms", cell: (e) => fmt.ms(e.p99_ms) },
    ], graph.edges, { id: "edges", rowAttrs: (e) => ({ dataset: { source: e.source, target: e.target }, onclick: () => details.replaceChildren(edgeDetails(e)) }) }));
  };
  await refresh();
  return refresh;
}
