// Alerts: every rule group loaded from the rules directory, each rule's state, health and last
// evaluation, the alerts now pending or firing with their labels, and a link that charts the
// rule's expression. The same data as Prometheus's /api/v1/rules, which this page reads.
import { api, emptyState, href } from "../app.js";
import { el, table } from "../dom.js";

const STATE_CLASS = { firing: "bad", pending: "warn", inactive: "good" };

/** "12 s ago" for an RFC 3339 time; Prometheus's zero time means never. */
function ago(iso) {
  const t = Date.parse(iso);
  if (!(t > 0)) return "never";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return new Date(t).toLocaleString();
}

function labelList(labels, skip = []) {
  return Object.entries(labels || {}).filter(([k]) => !skip.includes(k)).map(([k, v]) =>
    el("span", { class: "label-pair" }, `${k}="${v}"`));
}


function alertsTable(alerts) {
  return table([
    { title: "Labels", field: "labels", cell: (a) => labelList(a.labels, ["alertname"]) },
    { title: "State", field: "state", cell: (a) => el("span", { class: STATE_CLASS[a.state] }, a.state) },
    { title: "Active since", field: "activeAt", cell: (a) => new Date(a.activeAt).toLocaleString() },
    { title: "Value", class: "num", field: "value", cell: (a) => Number(a.value).toPrecision(4) },
    { title: "Summary", field: "summary", cell: (a) => (a.annotations || {}).summary || "" },
  ], alerts, { rowAttrs: (a) => ({ class: "alert-row", dataset: { state: a.state } }) });
}

function ruleBlock(rule) {
  const alerting = rule.type === "alerting";
  const state = alerting ? rule.state : "recording";
  return el("section", { class: "rule", dataset: { rule: rule.name, state, health: rule.health } },
    el("h3", {},
      el("span", { class: "rule-name" }, rule.name), " ",
      el("span", { class: "rule-state " + (STATE_CLASS[state] || "muted") }, state), " ",
      rule.health === "err" ? el("span", { class: "bad" }, "evaluation failed") : null),
    el("pre", { class: "rule-expr" }, rule.query),
    el("p", { class: "muted small" },
      alerting && rule.duration ? `for ${rule.duration} s · ` : "",
      alerting && rule.keepFiringFor ? `keep firing for ${rule.keepFiringFor} s · ` : "",
      "last evaluation ", el("span", { class: "rule-last" }, ago(rule.lastEvaluation)),
      ` (${(rule.evaluationTime * 1000).toFixed(0)} ms) · `,
      el("a", { class: "rule-chart", href: href("graph", { expr: rule.query }) }, "chart the expression")),
    Object.keys(rule.labels || {}).length ? el("p", { class: "small" }, "labels ", labelList(rule.labels)) : null,
    rule.lastError ? el("p", { class: "error-box" }, rule.lastError) : null,
    alerting && rule.alerts.length ? alertsTable(rule.alerts) : null);
}

export async function render(view) {
  const box = el("div");
  view.append(el("h1", {}, "Alerts"),
    el("p", { class: "muted" },
      "Alerting and recording rules in Prometheus's rule-file format, loaded from the rules directory ",
      "(--rules-dir, default dashboards/rules) and evaluated over the Prometheus API's PromQL. ",
      "A rule is pending while its condition holds for less than its “for”, firing after, and inactive otherwise."),
    box);
  const refresh = async () => {
    const { data } = await api("rules");
    const rules = data.groups.flatMap((g) => g.rules);
    if (!rules.length) {
      box.replaceChildren(emptyState("rules"));
      return;
    }
    const count = (s) => rules.filter((r) => r.type === "alerting" && r.state === s).length;
    box.replaceChildren(
      el("p", { id: "alert-summary" },
        el("span", { class: "bad" }, `${count("firing")} firing`), " · ",
        el("span", { class: "warn" }, `${count("pending")} pending`), " · ",
        el("span", { class: "good" }, `${count("inactive")} inactive`), " · ",
        ((n) => `${n} recording rule${n === 1 ? "" : "s"}`)(rules.filter((r) => r.type === "recording").length)),
      ...data.groups.map((g) => el("div", { class: "rule-group details", dataset: { group: g.name } },
        el("h2", {}, g.name, " ", el("span", { class: "muted small" },
          `${g.file} · every ${g.interval} s · last evaluation ${ago(g.lastEvaluation)}`)),
        g.rules.map(ruleBlock))));
  };
  await refresh();
  return refresh;
}
