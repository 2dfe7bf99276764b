// The services page: the services overview table, refreshed every 5 s, and the recent traces of
// the service a user clicks. Everything comes from the JSON API documented in docs/api.md.
"use strict";

const state = { services: [], sort: "name", asc: true, selected: null, timer: null };

const $ = (sel) => document.querySelector(sel);

function range() {
  return { start: "now-" + $("#range").value, end: "now" };
}

function query(params) {
  return new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString();
}

async function getJSON(url) {
  const res = await fetch(url, { headers: { accept: "application/json" } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.status + " " + res.statusText);
  return body;
}

function fmtMs(v) {
  if (v === null || v === undefined) return "–";
  if (v >= 1000) return (v / 1000).toFixed(2) + " s";
  if (v >= 10) return v.toFixed(0) + " ms";
  if (v >= 1) return v.toFixed(1) + " ms";
  return v.toFixed(2) + " ms";
}

function fmtRate(v) {
  return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
}

function errorClass(ratio) {
  return ratio >= 0.05 ? "bad" : ratio >= 0.01 ? "warn" : "good";
}

function cell(text, field, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  td.dataset.field = field;
  if (cls) td.className = cls;
  return td;
}

function renderServices() {
  const rows = [...state.services].sort((a, b) => {
    const x = a[state.sort], y = b[state.sort];
    const c = typeof x === "string" ? x.localeCompare(y) : (x ?? -1) - (y ?? -1);
    return state.asc ? c : -c;
  });
  const body = $("#services tbody");
  body.replaceChildren(...rows.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.service = s.name;
    if (s.name === state.selected) tr.className = "selected";
    tr.append(
      cell(s.name, "name"),
      cell(String(s.requests), "requests", "num"),
      cell(fmtRate(s.rate_per_s), "rate_per_s", "num"),
      cell(String(s.errors), "errors", "num"),
      cell((s.error_ratio * 100).toFixed(2) + " %", "error_ratio", "num " + errorClass(s.error_ratio)),
      cell(fmtMs(s.p50_ms), "p50_ms", "num"),
      cell(fmtMs(s.p95_ms), "p95_ms", "num"),
      cell(fmtMs(s.p99_ms), "p99_ms", "num"),
    );
    tr.addEventListener("click", () => selectService(s.name));
    return tr;
  }));
  document.querySelectorAll("#services th[data-sort]").forEach((th) => {
    th.classList.toggle("sorted", th.dataset.sort === state.sort);
    th.classList.toggle("asc", th.dataset.sort === state.sort && state.asc);
  });
}

async function loadServices() {
  const status = $("#status");
  try {
    const data = await getJSON("/api/v1/services?" + query(range()));
    state.services = data.services;
    $("#services").hidden = data.services.length === 0;
    status.textContent = data.services.length === 0
      ? "No spans in this range yet. Point an OpenTelemetry exporter at this server, or run `lakescope demo`."
      : data.services.length + " services";
    renderServices();
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    status.textContent = "Could not load services: " + e.message;
  }
}

async function loadTraces() {
  if (!state.selected) return;
  const params = { ...range(), service: state.selected, limit: 20, status: $("#errors-only").checked ? "error" : "" };
  const body = $("#traces tbody");
  try {
    const data = await getJSON("/api/v1/traces?" + query(params));
    body.replaceChildren(...data.traces.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.traceId = t.trace_id;
      const link = document.createElement("a");
      link.href = "/api/v1/traces/" + t.trace_id;
      link.textContent = t.root_operation;
      const op = document.createElement("td");
      op.append(link);
      tr.append(
        cell(new Date(t.start_time).toLocaleTimeString(), "start_time"),
        op,
        cell(t.root_service, "root_service"),
        cell(fmtMs(t.duration_ms), "duration_ms", "num"),
        cell(String(t.span_count), "span_count", "num"),
        cell(t.error ? "error" : "ok", "error", t.error ? "bad" : "good"),
      );
      return tr;
    }));
  } catch (e) {
    body.replaceChildren();
    $("#traces-service").textContent = state.selected + " (" + e.message + ")";
  }
}

function selectService(name) {
  state.selected = name;
  $("#traces-panel").hidden = false;
  $("#traces-service").textContent = name;
  renderServices();
  loadTraces();
}

function refresh() {
  loadServices();
  loadTraces();
}

function schedule() {
  clearInterval(state.timer);
  state.timer = $("#auto").checked ? setInterval(refresh, 5000) : null;
}

document.querySelectorAll("#services th[data-sort]").forEach((th) => {
  th.addEventListener("click", () => {
    const key = th.dataset.sort;
    state.asc = state.sort === key ? !state.asc : key === "name";
    state.sort = key;
    renderServices();
  });
});
$("#range").addEventListener("change", refresh);
$("#auto").addEventListener("change", schedule);
$("#errors-only").addEventListener("change", loadTraces);
refresh();
schedule();
