// Logs: search by text, severity, service, attributes and trace id; the count over time by
// severity; expandable entries, each linking to its trace.
import { api, emptyState, fmt, href, rangeParams } from "../app.js";
import { el, svg } from "../dom.js";

const FIELDS = ["q", "min_severity", "service", "attribute", "trace_id"];
const COLORS = { UNSPECIFIED: "#9e9e9e", TRACE: "#b0bec5", DEBUG: "#78909c", INFO: "#2f6fde", WARN: "#e08a00", ERROR: "#c62828", FATAL: "#6a1b9a" };

function stacked(h) {
  const width = 560, height = 110, bottom = 16;
  const totals = h.times.map((_, i) => h.series.reduce((s, x) => s + x.counts[i], 0));
  const max = Math.max(1, ...totals);
  const w = width / Math.max(h.times.length, 1);
  const bars = h.times.flatMap((t, i) => {
    let y = height - bottom;
    return h.series.map((s) => {
      const hgt = (s.counts[i] / max) * (height - bottom - 4);
      y -= hgt;
      return s.counts[i] ? svg("rect", { x: i * w + 0.5, y, width: Math.max(w - 1, 0.5), height: hgt, fill: COLORS[s.severity] },
        svg("title", {}, `${new Date(t).toLocaleTimeString()} ${s.severity}: ${s.counts[i]}`)) : null;
    });
  });
  return el("figure", { class: "chart", id: "log-histogram" },
    el("figcaption", {}, `${h.total} log records`, el("div", { class: "legend" }, h.series.map((s) => el("span", {}, el("i", { style: `background:${COLORS[s.severity]}` }), s.severity)))),
    svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img", "aria-label": "log records over time" }, bars));
}

function bodyText(body) {
  return typeof body === "string" ? body : JSON.stringify(body);
}

/** One log record as an expandable row. */
export function logEntry(log) {
  const details = el("div", { class: "log-details", hidden: true },
    el("table", { class: "kv" }, el("tbody", {},
      Object.entries({ ...log.attributes, "service.name": log.service_name, trace_id: log.trace_id, span_id: log.span_id, event_name: log.event_name || null })
        .filter(([, v]) => v !== null && v !== undefined)
        .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, typeof v === "string" ? v : JSON.stringify(v)))))),
    el("p", { class: "muted small" }, "resource: ", JSON.stringify(log.resource.attributes)));
  const row = el("div", { class: "log-entry", dataset: { severity: log.severity } },
    el("div", { class: "log-line", onclick: () => { details.hidden = !details.hidden; } },
      el("span", { class: "log-time" }, fmt.datetime(log.timestamp)),
      el("span", { class: "severity", style: `background:${COLORS[log.severity]}` }, log.severity_text || log.severity),
      el("span", { class: "log-service" }, log.service_name),
      el("span", { class: "log-body" }, bodyText(log.body)),
      log.trace_id ? el("a", { class: "trace-link", href: href(`traces/${log.trace_id}`), onclick: (e) => e.stopPropagation() }, "trace") : null),
    details);
  return row;
}

export async function render(view, r) {
  const params = r.params;
  const { services } = await api("services", rangeParams()).catch(() => ({ services: [] }));
  const input = (name, attrs = {}) => el("input", { name, id: `logs-${name}`, value: params.get(name) || "", ...attrs });
  const form = el("form", { class: "search", id: "log-search" },
    el("label", {}, "Search ", input("q", { placeholder: "text in the message", size: 28 })),
    el("label", {}, "Severity ≥ ", el("select", { name: "min_severity", id: "logs-min_severity" },
      [["", "any"], ["debug", "DEBUG"], ["info", "INFO"], ["warn", "WARN"], ["error", "ERROR"], ["fatal", "FATAL"]].map(([v, l]) =>
        el("option", { value: v, selected: (params.get("min_severity") || "") === v }, l)))),
    el("label", {}, "Service ", el("select", { name: "service", id: "logs-service" },
      [["", "any"], ...services.map((s) => [s.name, s.name])].map(([v, l]) => el("option", { value: v, selected: (params.get("service") || "") === v }, l)))),
    el("label", {}, "Attribute ", input("attribute", { placeholder: "key=value" })),
    el("label", {}, "Trace ", input("trace_id", { placeholder: "trace id", size: 34 })),
    el("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const key of FIELDS) if (data.get(key)) next[key] = data.get(key);
    location.hash = href("logs", next);
  });
  const chart = el("div");
  const list = el("div", { id: "log-list" });
  const more = el("button", { type: "button", id: "older-logs", hidden: true }, "Older");
  view.append(el("h1", {}, "Logs"), form, chart, list, more);
  const filters = () => {
    const q = { ...rangeParams() };
    for (const key of FIELDS) if (params.get(key)) q[key] = params.get(key);
    return q;
  };
  let offset = 0;
  more.addEventListener("click", async () => {
    offset += 100;
    const page = await api("logs", { ...filters(), limit: 100, offset });
    list.append(...page.logs.map(logEntry));
    more.hidden = !page.has_more;
  });
  const refresh = async () => {
    offset = 0;
    const [page, h] = await Promise.all([api("logs", { ...filters(), limit: 100 }), api("logs/histogram", filters())]);
    chart.replaceChildren(stacked(h));
    list.replaceChildren(...(page.logs.length ? page.logs.map(logEntry) : [emptyState("matching log records")]));
    more.hidden = !page.has_more;
  };
  await refresh();
  return refresh;
}
