// Dashboards as data: the list of dashboards (built-in and the user's own files) and one
// dashboard's panels, each drawn from SQL or a view endpoint over the shared time range.
import { api, errorBox, href, rangeParams } from "../app.js";
import { el, table } from "../dom.js";
import { lineChart } from "../charts.js";

export async function render(view, r) {
  return r.args.length ? dashboard(view, r.args[0]) : list(view);
}

async function list(view) {
  const { dashboards, errors } = await api("dashboards");
  view.append(el("h1", {}, "Dashboards"),
    table([
      { title: "Dashboard", field: "title", cell: (d) => el("a", { href: href(`dashboards/${d.id}`) }, d.title) },
      { title: "Description", field: "description", cell: (d) => d.description },
      { title: "Panels", class: "num", field: "panels", cell: (d) => String(d.panels) },
      { title: "Source", field: "source", cell: (d) => d.source },
    ], dashboards, { id: "dashboards", rowAttrs: (d) => ({ dataset: { id: d.id } }) }),
    errors.length ? [el("h2", {}, "Files that could not be used"),
      table([{ title: "File", cell: (e) => e.file }, { title: "Problem", cell: (e) => e.error }], errors, { id: "dashboard-errors" })] : null,
    el("p", { class: "muted" }, "Add your own: a JSON file in the dashboards directory (see docs/dashboards.md), then reload."));
  return null;
}

function cellText(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3).replace(/\.?0+$/, "");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function draw(panel, rows, order) {
  if (!rows.length) return el("p", { class: "muted" }, "No rows in this range.");
  const columns = panel.columns?.length ? panel.columns : order?.length ? order : Object.keys(rows[0]);
  switch (panel.kind) {
    case "stat":
      return el("div", { class: "stat" }, cellText(Object.values(rows[0])[0]));
    case "bar": {
      const [label, value] = columns;
      const max = Math.max(...rows.map((r) => Number(r[value]) || 0), 1);
      return el("div", { class: "bars" }, rows.map((r) => el("div", { class: "bar-row" },
        el("span", { class: "bar-label" }, cellText(r[label])),
        el("span", { class: "bar-fill", style: `width:${((Number(r[value]) || 0) / max) * 70}%` }),
        el("span", { class: "bar-value" }, cellText(r[value])))));
    }
    case "line": {
      const x = panel.x || "time";
      const ys = panel.y?.length ? panel.y : columns.filter((c) => c !== x && c !== panel.series && typeof rows[0][c] === "number");
      const times = [...new Set(rows.map((r) => r[x]))].sort();
      const index = new Map(times.map((t, i) => [t, i]));
      const lines = new Map();
      for (const r of rows) for (const y of ys) {
        const name = panel.series ? `${r[panel.series]}${ys.length > 1 ? " " + y : ""}` : y;
        if (!lines.has(name)) lines.set(name, new Array(times.length).fill(null));
        lines.get(name)[index.get(r[x])] = r[y];
      }
      return lineChart({ title: "", times: times.map((t) => new Date(String(t).replace(" ", "T")).toISOString?.() ?? t),
        series: [...lines].map(([name, values]) => ({ name, values })), format: (v) => cellText(v) });
    }
    default:
      return table(columns.map((c) => ({ title: c, field: c, cell: (r) => cellText(r[c]), class: typeof rows[0][c] === "number" ? "num" : undefined })), rows);
  }
}

async function dashboard(view, id) {
  const d = await api(`dashboards/${encodeURIComponent(id)}`);
  const slots = d.panels.map((p, i) => el("section", { class: "panel", dataset: { panel: i, kind: p.kind } }, el("h2", {}, p.title), el("div", { class: "panel-body" })));
  view.append(el("h1", {}, el("a", { href: href("dashboards") }, "Dashboards"), " / ", d.title),
    d.description ? el("p", { class: "muted" }, d.description) : null,
    el("div", { class: "panels" }, slots));
  const refresh = () => Promise.all(d.panels.map(async (p, i) => {
    const body = slots[i].querySelector(".panel-body");
    try {
      if (p.sql) {
        const answer = await api(`dashboards/${encodeURIComponent(id)}/panels/${i}`, rangeParams());
        body.replaceChildren(draw(p, answer.rows, answer.columns.map((c) => c.name)));
      } else {
        body.replaceChildren(draw(p, (await api(p.endpoint, rangeParams()))[p.path] || []));
      }
    } catch (e) {
      body.replaceChildren(errorBox(e));
    }
  }));
  await refresh();
  return refresh;
}

