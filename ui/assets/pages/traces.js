// Traces: search (#/traces?service=&operation=&...) and one trace as a waterfall
// (#/traces/<id>): spans nested by parent on a common time axis, service colours, error marks,
// the critical path, span details. Only the rows in view are in the DOM, so traces of tens of
// thousands of spans scroll smoothly; subtrees collapse.
import { api, emptyState, fmt, href, rangeParams } from "../app.js";
import { el, table } from "../dom.js";
import { logEntry } from "./logs.js";

export async function render(view, r) {
  return r.args.length ? trace(view, r.args[0]) : search(view, r.params);
}

// --- search ---

const FIELDS = ["service", "operation", "min_duration_ms", "max_duration_ms", "status", "attribute", "sort", "limit"];

async function search(view, params) {
  const { services } = await api("services", rangeParams()).catch(() => ({ services: [] }));
  const input = (name, attrs = {}) => el("input", { name, id: `search-${name}`, value: params.get(name) || "", ...attrs });
  const select = (name, options) => el("select", { name, id: `search-${name}` },
    options.map(([value, label]) => el("option", { value, selected: (params.get(name) || "") === value }, label)));
  const form = el("form", { class: "search", id: "trace-search" },
    el("label", {}, "Service ", select("service", [["", "any"], ...services.map((s) => [s.name, s.name])])),
    el("label", {}, "Operation ", input("operation", { placeholder: "span name" })),
    el("label", {}, "Duration ≥ ", input("min_duration_ms", { size: 6, placeholder: "ms" })),
    el("label", {}, "≤ ", input("max_duration_ms", { size: 6, placeholder: "ms" })),
    el("label", {}, "Status ", select("status", [["", "any"], ["error", "error"], ["ok", "ok"], ["unset", "unset"]])),
    el("label", {}, "Attribute ", input("attribute", { placeholder: "key=value" })),
    el("label", {}, "Sort ", select("sort", [["time", "newest"], ["duration", "slowest"]])),
    el("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const key of FIELDS) if (data.get(key)) next[key] = data.get(key);
    location.hash = href("traces", next);
  });
  const results = el("div", { id: "trace-results" });
  view.append(el("h1", {}, "Traces"), form, results);
  const refresh = async () => {
    const q = { ...rangeParams(), limit: 50 };
    for (const key of FIELDS) if (params.get(key)) q[key] = params.get(key);
    const { traces } = await api("traces", q);
    results.replaceChildren(traces.length ? table([
      { title: "Start", field: "start_time", cell: (t) => fmt.datetime(t.start_time) },
      { title: "Root operation", field: "root_operation", cell: (t) => el("a", { href: href(`traces/${t.trace_id}`) }, t.root_operation) },
      { title: "Root service", field: "root_service", cell: (t) => t.root_service },
      { title: "Duration", class: "num", field: "duration_ms", cell: (t) => fmt.ms(t.duration_ms) },
      { title: "Spans", class: "num", field: "span_count", cell: (t) => String(t.span_count) },
      { title: "Status", field: "error", cellClass: (t) => (t.error ? "bad" : "good"), cell: (t) => (t.error ? "error" : "ok") },
    ], traces, { id: "traces", rowAttrs: (t) => ({ dataset: { traceId: t.trace_id } }) }) : emptyState("matching traces"));
  };
  await refresh();
  return refresh;
}

// --- one trace ---

const ROW = 24;

export function serviceColor(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 55% 48%)`;
}

/** Spans as a forest (children sorted by start), with times in ms from the trace start. */
export function buildTree(spans) {
  const t0 = spans.reduce((m, s) => (BigInt(s.start_time_unix_nano) < m ? BigInt(s.start_time_unix_nano) : m), BigInt(spans[0].start_time_unix_nano));
  const nodes = new Map(spans.map((s) => [s.span_id, {
    span: s, children: [], depth: 0,
    start: Number(BigInt(s.start_time_unix_nano) - t0) / 1e6,
    end: Number(BigInt(s.end_time_unix_nano) - t0) / 1e6,
  }]));
  const roots = [];
  for (const n of nodes.values()) {
    const parent = n.span.parent_span_id && nodes.get(n.span.parent_span_id);
    (parent ? parent.children : roots).push(n);
  }
  const byStart = (a, b) => a.start - b.start;
  const stack = [...roots];
  for (const r of roots) r.depth = 0;
  while (stack.length) {
    const n = stack.pop();
    n.children.sort(byStart);
    for (const c of n.children) {
      c.depth = n.depth + 1;
      stack.push(c);
    }
  }
  roots.sort(byStart);
  const total = Math.max(...[...nodes.values()].map((n) => n.end), 1e-6);
  return { roots, nodes, total };
}

/**
 * The critical path: from the end of each root, walk back through the child that finished last
 * before the cursor, then the one before it, recursively.
 */
export function criticalPath(roots) {
  const on = new Set();
  const walk = (n, limit) => {
    on.add(n.span.span_id);
    let cursor = Math.min(n.end, limit);
    const kids = [...n.children].sort((a, b) => b.end - a.end);
    for (const c of kids) {
      if (c.start >= cursor) continue;
      walk(c, cursor);
      cursor = Math.min(cursor, c.start);
    }
  };
  for (const r of roots) walk(r, r.end);
  return on;
}

function flatten(roots, collapsed) {
  const rows = [];
  const stack = [...roots].reverse();
  while (stack.length) {
    const n = stack.pop();
    rows.push(n);
    if (!collapsed.has(n.span.span_id)) for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]);
  }
  return rows;
}

function kv(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return el("p", { class: "muted" }, "none");
  return el("table", { class: "kv" }, el("tbody", {}, entries.map(([k, v]) =>
    el("tr", {}, el("th", {}, k), el("td", {}, typeof v === "string" ? v : JSON.stringify(v))))));
}

function details(span) {
  const exceptions = span.events.filter((e) => e.name === "exception");
  return el("div", { class: "details", id: "span-details" },
    el("h2", {}, span.name, " ", el("span", { class: "muted" }, `${span.service_name} · ${span.kind} · ${fmt.ms(span.duration_ms)}`)),
    span.status.code === "ERROR" ? el("p", { class: "bad" }, "ERROR", span.status.message ? ": " + span.status.message : "") : null,
    exceptions.map((e) => el("div", { class: "exception" },
      el("strong", {}, e.attributes["exception.type"] || "exception"), ": ", e.attributes["exception.message"] || "",
      e.attributes["exception.stacktrace"] ? el("pre", {}, e.attributes["exception.stacktrace"]) : null)),
    el("p", { class: "muted small" }, `span ${span.span_id}`, span.parent_span_id ? ` · parent ${span.parent_span_id}` : " · root", ` · start ${span.start_time}`),
    el("h3", {}, "Attributes"), kv(span.attributes),
    el("h3", {}, "Events"), span.events.length ? el("ul", {}, span.events.map((e) =>
      el("li", {}, `${e.time} ${e.name} `, el("span", { class: "muted" }, JSON.stringify(e.attributes))))) : el("p", { class: "muted" }, "none"),
    el("h3", {}, "Links"), span.links.length ? el("ul", {}, span.links.map((l) =>
      el("li", {}, el("a", { href: href(`traces/${l.trace_id}`) }, `${l.trace_id} / ${l.span_id}`), " ", el("span", { class: "muted" }, JSON.stringify(l.attributes))))) : el("p", { class: "muted" }, "none"),
    el("h3", {}, "Resource"), kv(span.resource.attributes),
    el("h3", {}, "Scope"), el("p", {}, `${span.scope.name} ${span.scope.version}`));
}

async function trace(view, id) {
  const data = await api(`traces/${encodeURIComponent(id)}`);
  const { roots, nodes, total } = buildTree(data.spans);
  const critical = criticalPath(roots);
  const collapsed = new Set();
  const services = new Set(data.spans.map((s) => s.service_name));
  const errors = data.spans.filter((s) => s.status.code === "ERROR").length;
  const root = roots[0].span;

  const viewport = el("div", { class: "waterfall", id: "waterfall", tabindex: 0 });
  const spacer = el("div", { class: "spacer" });
  viewport.append(spacer);
  const panel = el("div", { id: "span-panel" });
  view.append(
    el("h1", {}, el("a", { href: href("traces") }, "Traces"), " / ", `${root.service_name}: ${root.name}`),
    el("p", { class: "trace-summary" },
      el("span", { id: "trace-id" }, data.trace_id), " · ", el("span", { id: "trace-duration" }, fmt.ms(total)), " · ",
      el("span", { id: "trace-span-count" }, `${data.span_count} spans`), " · ", `${services.size} services`, " · ",
      el("span", { class: errors ? "bad" : "good", id: "trace-errors" }, `${errors} errors`), " · ",
      el("span", { class: "critical-key" }, "critical path"), " ",
      el("button", { type: "button", id: "collapse-all", onclick: () => { for (const n of nodes.values()) if (n.children.length && n.depth > 0) collapsed.add(n.span.span_id); draw(true); } }, "collapse all"), " ",
      el("button", { type: "button", id: "expand-all", onclick: () => { collapsed.clear(); draw(true); } }, "expand all")),
    el("div", { class: "legend" }, [...services].map((s) => el("span", {}, el("i", { style: `background:${serviceColor(s)}` }), s))),
    el("div", { class: "axis-row" }, [0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { style: `left:calc(40% + ${f * 58}%)` }, fmt.ms(total * f)))),
    viewport, panel,
    el("section", {}, el("h2", {}, "Logs of this trace"), el("div", { id: "trace-logs" }, el("p", { class: "muted" }, "Loading…"))));
  api("logs", { trace_id: data.trace_id, limit: 500 }).then((page) => {
    const box = document.getElementById("trace-logs");
    if (box) box.replaceChildren(...(page.logs.length ? page.logs.map(logEntry) : [el("p", { class: "muted" }, "No log records carry this trace id.")]));
  }).catch(() => {});

  let rows = [];
  let selected = null;
  const rowEl = (n, i) => {
    const s = n.span;
    const left = (n.start / total) * 100;
    const width = Math.max(((n.end - n.start) / total) * 100, 0.15);
    const isError = s.status.code === "ERROR";
    const toggle = n.children.length
      ? el("button", { class: "toggle", type: "button", "aria-label": collapsed.has(s.span_id) ? "expand" : "collapse",
        onclick: (ev) => { ev.stopPropagation(); collapsed.has(s.span_id) ? collapsed.delete(s.span_id) : collapsed.add(s.span_id); draw(true); } },
        collapsed.has(s.span_id) ? `▸ ${n.children.length}` : "▾")
      : el("span", { class: "toggle" });
    return el("div", {
      class: ["span-row", critical.has(s.span_id) ? "critical" : "", isError ? "error" : "", selected === s.span_id ? "selected" : ""].join(" "),
      style: `top:${i * ROW}px`, dataset: { spanId: s.span_id },
      onclick: () => { selected = s.span_id; panel.replaceChildren(details(s)); draw(false); },
    },
      el("div", { class: "label", style: `padding-left:${Math.min(n.depth, 30) * 12}px` }, toggle,
        el("i", { class: "chip", style: `background:${serviceColor(s.service_name)}` }),
        isError ? el("span", { class: "error-mark", title: "error" }, "!") : null,
        el("span", { class: "name" }, `${s.service_name} ${s.name}`)),
      el("div", { class: "track" },
        el("div", { class: "bar", style: `left:${left}%;width:${width}%;background:${serviceColor(s.service_name)}` }),
        el("span", { class: "dur", style: `left:${Math.min(left + width, 88)}%` }, fmt.ms(n.end - n.start))));
  };
  let drawn = "";
  const draw = (relayout) => {
    if (relayout) rows = flatten(roots, collapsed);
    spacer.style.height = rows.length * ROW + "px";
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - 10);
    const last = Math.min(rows.length, first + Math.ceil(viewport.clientHeight / ROW) + 20);
    const key = `${first}:${last}:${rows.length}:${selected}:${collapsed.size}`;
    if (!relayout && key === drawn) return;
    drawn = key;
    spacer.replaceChildren(...rows.slice(first, last).map((n, k) => rowEl(n, first + k)));
  };
  let pending = false;
  viewport.addEventListener("scroll", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(false); });
  });
  draw(true);
  requestAnimationFrame(() => draw(true));
  selected = root.span_id;
  panel.replaceChildren(details(root));
  draw(true);
  return null;
}
