// Errors: failing spans grouped by what went wrong, with counts over time, first and last seen,
// where they originated, the operations affected and example traces.
import { api, emptyState, fmt, href, rangeParams } from "../app.js";
import { el, table } from "../dom.js";
import { sparkline } from "../charts.js";

export async function render(view, r) {
  const service = r.params.get("service");
  const focus = r.params.get("group");
  const box = el("div");
  view.append(
    el("h1", {}, "Errors", service ? [" of ", service, " ", el("a", { href: href("errors"), class: "small" }, "all services")] : null),
    el("p", { class: "muted" },
      "A span is an error when its status is ERROR. Failures are grouped by exception type and stack (or a message with its numbers and ids removed); ",
      "“originated” counts failing spans with no failing child — where the error started — and “propagated” the ones that only passed it on."),
    box);
  const refresh = async () => {
    const data = await api("errors", { ...rangeParams(), service });
    if (!data.groups.length) {
      box.replaceChildren(emptyState("errors"));
      return;
    }
    box.replaceChildren(table([
      { title: "Error", field: "fingerprint", cell: (g) => el("div", {},
        el("strong", {}, g.exception_type || "status"), el("div", { class: "fingerprint" }, g.fingerprint),
        g.message ? el("div", { class: "muted small" }, "latest: ", g.message) : null) },
      { title: "Service", field: "service", cell: (g) => el("a", { href: href(`services/${g.service}`) }, g.service) },
      { title: "Count", class: "num", field: "count", cell: (g) => String(g.count) },
      { title: "Over time", field: "counts", cell: (g) => sparkline(g.counts, { color: "#c62828", label: "errors over time" }) },
      { title: "Originated", class: "num", field: "originated", cell: (g) => String(g.originated) },
      { title: "Propagated", class: "num", field: "propagated", cell: (g) => String(g.propagated) },
      { title: "First seen", field: "first_seen", cell: (g) => fmt.datetime(g.first_seen) },
      { title: "Last seen", field: "last_seen", cell: (g) => fmt.datetime(g.last_seen) },
      { title: "Operations", field: "operations", cell: (g) => g.operations.join(", ") },
      { title: "Traces", field: "trace_ids", cell: (g) => g.trace_ids.map((t, i) => [i ? " " : "", el("a", { href: href(`traces/${t}`), class: "trace-link" }, t.slice(0, 8))]) },
    ], data.groups, { id: "error-groups", rowAttrs: (g) => ({ dataset: { group: g.id }, class: g.id === focus ? "selected" : undefined }) }));
  };
  await refresh();
  return refresh;
}
