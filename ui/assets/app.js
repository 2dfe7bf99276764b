// The dashboard shell: a hash router (#/page/arg?params), the time range every page shares
// through the URL, auto-refresh, and the helpers pages use. Pages live in pages/*.js and export
// `render(view, ctx)`, which may return a refresh function.
import { el } from "./dom.js";

const pages = {
  "": () => import("./pages/overview.js"),
  services: () => import("./pages/services.js"),
  errors: () => import("./pages/errors.js"),
  dependencies: () => import("./pages/dependencies.js"),
  traces: () => import("./pages/traces.js"),
  logs: () => import("./pages/logs.js"),
  metrics: () => import("./pages/metrics.js"),
  dashboards: () => import("./pages/dashboards.js"),
  alerts: () => import("./pages/alerts.js"),
  graph: () => import("./pages/graph.js"),
};

const RANGES = ["5m", "15m", "1h", "6h", "24h", "7d"];

/** The current route: page, the path after it, and the hash's query parameters. */
export function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || "", args: parts.slice(1), params: new URLSearchParams(query) };
}

/** A link to a page, keeping the current time range. */
export function href(path, params = {}) {
  const current = route().params;
  const q = new URLSearchParams();
  for (const key of ["range", "start", "end"]) if (current.get(key)) q.set(key, current.get(key));
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return "#/" + path.split("/").map(encodeURIComponent).join("/").replace(/%2F/g, "/") + (s ? "?" + s : "");
}

export function navigate(path, params) {
  location.hash = href(path, params);
}

/** The shared time range as API parameters. */
export function rangeParams() {
  const p = route().params;
  if (p.get("start")) return { start: p.get("start"), end: p.get("end") || "now" };
  const r = RANGES.includes(p.get("range")) ? p.get("range") : "15m";
  return { start: "now-" + r, end: "now" };
}

const UNIT_MS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000 };
const SLOT_MS = 15000;
const SERIES_STEPS = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800];

/** A time parameter ("now", "now-15m", RFC 3339) in ms, or NaN. */
function timeMs(text, now) {
  if (text === "now") return now;
  const rel = /^now-(\d+)(ms|s|m|h|d|w)$/.exec(text);
  if (rel) return now - Number(rel[1]) * UNIT_MS[rel[2]];
  return Date.parse(text);
}

/**
 * The shared time range for a series (and the latency heatmap): the start moved back to a 15-second boundary and a step
 * of whole 15 seconds (120 points or one more), so that the server sums its per-file rollups
 * instead of aggregating every span (docs/api.md). The range as given when it cannot be read.
 */
export function seriesParams() {
  const range = rangeParams();
  const now = Date.now();
  const start = timeMs(range.start, now);
  const end = timeMs(range.end, now);
  if (!(end > start)) return range;
  const aligned = Math.floor(start / SLOT_MS) * SLOT_MS;
  const step = SERIES_STEPS.find((s) => Math.ceil((end - start) / (s * 1000)) <= 120) ?? 604800;
  return { start: new Date(aligned).toISOString(), end: new Date(end).toISOString(), step: step + "s" };
}

export function query(params) {
  return new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""),
  ).toString();
}

/** GET a JSON API endpoint; throws an Error with the API's message on failure. */
export async function api(path, params = {}) {
  const q = query(params);
  const res = await fetch("/api/v1/" + path + (q ? "?" + q : ""), { headers: { accept: "application/json" } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.status + " " + res.statusText);
  return body;
}

export async function sql(text) {
  const res = await fetch("/api/v1/sql", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: text }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.status + " " + res.statusText);
  return body;
}

export const fmt = {
  ms(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 1000) return (v / 1000).toFixed(2) + " s";
    if (v >= 10) return v.toFixed(0) + " ms";
    if (v >= 1) return v.toFixed(1) + " ms";
    return v.toFixed(2) + " ms";
  },
  rate(v) {
    return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
  },
  pct(ratio) {
    return (ratio * 100).toFixed(2) + " %";
  },
  errorClass(ratio) {
    return ratio >= 0.05 ? "bad" : ratio >= 0.01 ? "warn" : "good";
  },
  time(iso) {
    return new Date(iso).toLocaleTimeString();
  },
  datetime(iso) {
    return new Date(iso).toLocaleString();
  },
};

/** The message shown when a view has nothing to show yet. */
export function emptyState(what) {
  return el("div", { class: "empty" },
    el("p", {}, `No ${what} in this time range yet.`),
    el("p", { class: "muted" },
      "Point an OpenTelemetry exporter at this server (OTLP/gRPC on port 4317, OTLP/HTTP on 4318), ",
      "or start it with `lakescope demo` to see a simulated shop."));
}

export function errorBox(e) {
  return el("p", { class: "error-box", role: "alert" }, "Could not load: " + e.message);
}

// --- the shell ---

let refresher = null;
let timer = null;

function syncRangeControls() {
  const p = route().params;
  const select = document.getElementById("range");
  const custom = document.getElementById("custom-range");
  if (p.get("start")) {
    select.value = "custom";
    custom.hidden = false;
  } else {
    select.value = RANGES.includes(p.get("range")) ? p.get("range") : "15m";
    custom.hidden = true;
  }
}

function setRange(params) {
  const r = route();
  const q = new URLSearchParams(r.params);
  for (const key of ["range", "start", "end"]) q.delete(key);
  for (const [k, v] of Object.entries(params)) q.set(k, v);
  const path = [r.page, ...r.args].map(encodeURIComponent).join("/");
  location.hash = "#/" + path + (q.toString() ? "?" + q : "");
}

async function show() {
  const r = route();
  const load = pages[r.page];
  const view = document.getElementById("view");
  document.querySelectorAll("#nav a").forEach((a) => {
    const active = a.dataset.page === (r.page || "overview");
    a.toggleAttribute("aria-current", active);
    a.href = href(a.dataset.page === "overview" ? "" : a.dataset.page);
  });
  syncRangeControls();
  if (!load) {
    view.replaceChildren(el("p", {}, "No such page. ", el("a", { href: "#/" }, "Back to the overview.")));
    return;
  }
  const module = await load();
  view.replaceChildren();
  refresher = null;
  try {
    refresher = (await module.render(view, r)) || null;
    stamp();
  } catch (e) {
    view.replaceChildren(errorBox(e));
  }
}

function stamp() {
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

function schedule() {
  clearInterval(timer);
  timer = document.getElementById("auto").checked
    ? setInterval(async () => {
        if (refresher) {
          await refresher();
          stamp();
        }
      }, 5000)
    : null;
}

document.getElementById("range").addEventListener("change", (e) => {
  if (e.target.value === "custom") {
    document.getElementById("custom-range").hidden = false;
    const end = new Date();
    const start = new Date(end.getTime() - 3600e3);
    const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 19);
    document.getElementById("custom-start").value = local(start);
    document.getElementById("custom-end").value = local(end);
  } else {
    setRange({ range: e.target.value });
  }
});
document.getElementById("custom-apply").addEventListener("click", () => {
  const start = new Date(document.getElementById("custom-start").value);
  const end = new Date(document.getElementById("custom-end").value);
  if (isNaN(start) || isNaN(end) || start >= end) return;
  setRange({ start: start.toISOString(), end: end.toISOString() });
});
document.getElementById("auto").addEventListener("change", schedule);
window.addEventListener("hashchange", show);
show();
schedule();
