// The service graph, laid out left to right in call order: a node's column is the length of the
// longest call chain leading to it (cycles broken where they close), edges are weighted by rate
// and coloured by error ratio.
import { el, svg } from "./dom.js";

const KIND_COLORS = { service: "#2f6fde", database: "#6d4c41", cache: "#00838f", queue: "#7b1fa2", external: "#546e7a" };

export function errorColor(ratio) {
  if (ratio >= 0.05) return "#c62828";
  if (ratio >= 0.01) return "#e08a00";
  if (ratio > 0) return "#9e9d24";
  return "#43a047";
}

/** Column of every node: longest path from a node nobody calls. */
export function layers(nodes, edges) {
  const out = new Map(nodes.map((n) => [n.id, []]));
  const indegree = new Map(nodes.map((n) => [n.id, 0]));
  for (const e of edges) {
    if (!out.has(e.source) || !out.has(e.target) || e.source === e.target) continue;
    out.get(e.source).push(e.target);
    indegree.set(e.target, indegree.get(e.target) + 1);
  }
  const layer = new Map();
  const visiting = new Set();
  const visit = (id, depth) => {
    if (visiting.has(id)) return; // a cycle: stop here
    if ((layer.get(id) ?? -1) >= depth) return;
    layer.set(id, depth);
    visiting.add(id);
    for (const next of out.get(id)) visit(next, depth + 1);
    visiting.delete(id);
  };
  const roots = nodes.filter((n) => indegree.get(n.id) === 0);
  for (const r of roots.length ? roots : nodes.slice(0, 1)) visit(r.id, 0);
  for (const n of nodes) if (!layer.has(n.id)) visit(n.id, 0);
  return layer;
}

/**
 * Draws the graph. onNode(node) and onEdge(edge) are called on clicks. `compact` draws a small
 * version for the overview.
 */
export function serviceGraph({ nodes, edges }, { onNode, onEdge, compact = false } = {}) {
  const layer = layers(nodes, edges);
  const columns = [];
  for (const n of nodes) (columns[layer.get(n.id)] ||= []).push(n);
  const colW = compact ? 150 : 210, rowH = compact ? 44 : 64, nodeW = compact ? 118 : 160, nodeH = compact ? 26 : 36;
  const height = Math.max(...columns.map((c) => c.length), 1) * rowH + 20;
  const width = columns.length * colW + 20;
  const pos = new Map();
  columns.forEach((col, i) => {
    const offset = (height - col.length * rowH) / 2;
    col.sort((a, b) => a.id.localeCompare(b.id)).forEach((n, j) => pos.set(n.id, { x: 10 + i * colW, y: offset + j * rowH + (rowH - nodeH) / 2 }));
  });
  const maxRate = Math.max(...edges.map((e) => e.rate_per_s), 1e-9);
  const edgeEls = edges.filter((e) => pos.has(e.source) && pos.has(e.target)).map((e) => {
    const a = pos.get(e.source), b = pos.get(e.target);
    const x1 = a.x + nodeW, y1 = a.y + nodeH / 2, x2 = b.x, y2 = b.y + nodeH / 2;
    const back = x2 <= x1;
    const d = back
      ? `M${x1},${y1} C${x1 + 60},${y1 - 70} ${x2 - 60},${y2 - 70} ${x2},${y2}`
      : `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}`;
    const w = 1.2 + 6 * Math.sqrt(e.rate_per_s / maxRate);
    return svg("path", {
      d, class: "edge", fill: "none", stroke: errorColor(e.error_ratio), "stroke-width": w.toFixed(2),
      "marker-end": "url(#arrow)", "data-source": e.source, "data-target": e.target,
      onclick: onEdge ? () => onEdge(e) : undefined,
    }, svg("title", {}, `${e.source} → ${e.target}: ${e.calls} calls, ${(e.error_ratio * 100).toFixed(2)} % errors, p99 ${e.p99_ms?.toFixed(1) ?? "–"} ms`));
  });
  const nodeEls = nodes.filter((n) => pos.has(n.id)).map((n) => {
    const p = pos.get(n.id);
    return svg("g", { class: "node", transform: `translate(${p.x},${p.y})`, "data-id": n.id, "data-kind": n.kind, onclick: onNode ? () => onNode(n) : undefined },
      svg("rect", { width: nodeW, height: nodeH, rx: 6, fill: "#fff", stroke: KIND_COLORS[n.kind] || "#999", "stroke-width": 2 }),
      svg("text", { x: 8, y: compact ? 17 : 15, class: "node-label" }, n.id.length > 20 ? n.id.slice(0, 19) + "…" : n.id),
      compact ? null : svg("text", { x: 8, y: 29, class: "node-kind", fill: KIND_COLORS[n.kind] }, n.kind),
      svg("title", {}, `${n.id} (${n.kind})`));
  });
  const defs = svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" },
    svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#888" })));
  return el("div", { class: compact ? "graph compact" : "graph" },
    svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "service graph" }, defs, edgeEls, nodeEls));
}
