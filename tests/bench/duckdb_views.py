"""DuckDB baseline for tests/bench/views.sh.

Asks DuckDB the questions Lakescope's view endpoints answer (services, series, operations,
latency, compare, errors, dependencies, trace search, trace by id), over the same Parquet files,
with SQL kept as close as possible to the views' SQL in query/src/views/*.rs. Each question is
asked once as a warm-up (its time is first_ms, left out of the median), then RUNS times; prints
one JSON object with, per question (keys as in views.sh), first_ms, median_ms and the rows
DuckDB returned. START_NS/END_NS are the range in Unix nanoseconds (views.sh asks for now-1h..now);
the step of series, heatmap and error counts is chosen from it as the endpoints do (30 s for 1 h).

Usage (on a stopped server's data directory):
    ~/.cache/lakescope/venv/bin/python tests/bench/duckdb_views.py DATA_DIR RUNS START_NS END_NS TRACE_ID

Like Lakescope, an endpoint's work is one or more queries, run in the same order; the Rust-side
post-processing (padding empty steps, picking the measure per service, keeping the top 30
contrasts) is not done, so `rows` counts what the SQL returned. Latency percentiles use DuckDB's
quantile_cont: exact (interpolated) where Lakescope's latency_sketch is within 0.5 % (nearest
rank), and on the 1.4 M-span test lake faster than approx_quantile's t-digest; set
LAKESCOPE_DUCKDB_QUANTILE=approx to use approx_quantile, the streaming sketch closer in kind.
"""

import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import duckdb

SECOND = 1_000_000_000
# dependencies.rs CLOCK_SKEW: how far outside the range a callee's or trace's span may start.
CLOCK_SKEW = 3600 * SECOND
# latency.rs BOUNDS_MS, inclusive upper bounds; a last bucket holds the rest.
BOUNDS_MS = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0,
             1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 50000.0]
ENTRY = "span_kind IN ('SERVER', 'CONSUMER')"
ROOT = "parent_span_id IS NULL"
QUANTILE = ("approx_quantile" if os.environ.get("LAKESCOPE_DUCKDB_QUANTILE") == "approx"
            else "quantile_cont")
# Stands for latency_sketch(x) and the p50/p95/p99 Red::new reads from it: one list per group.
LATENCY = QUANTILE + "({}, [0.5, 0.95, 0.99])"
SERVICE = "frontend"  # the service views.sh asks about
SLOW_MS = 50  # views.sh: latency/compare?min_ms=50 (no max_ms: unbounded)
SEARCH_ROUTE = "/checkout"  # views.sh: traces?attribute=http.route=/checkout&limit=20
SEARCH_LIMIT = 20
WS = " \t\n\r\x0b\x0c"  # what Rust's str::trim removes (ASCII part)

# fingerprint.rs, as DuckDB macros. RE2's \b, \d and \s are ASCII-only where Rust's regex
# crate is Unicode-aware; the demo fleet's messages are ASCII.
MACROS = rf"""
CREATE TEMP MACRO fp_normalize(m) AS left(trim(
  regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(m,
    '(?i)\b[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}\b', '<uuid>', 'g'),
    '(?i)\b0x[0-9a-f]+\b', '<hex>', 'g'),
    '(?i)\b[0-9a-f]*[0-9][0-9a-f]*[a-f][0-9a-f]*\b|\b[0-9a-f]*[a-f][0-9a-f]*[0-9][0-9a-f]*\b', '<hex>', 'g'),
    '"[^"]*"|''[^'']*''', '<str>', 'g'),
    '\d+(\.\d+)?', '<n>', 'g'),
    '\s+', ' ', 'g')), 200);
CREATE TEMP MACRO fp_frames(st, ty, msg) AS list_transform(
  list_filter(list_transform(string_split(st, chr(10)), lambda l: trim(l, '{WS}')),
    lambda l: l <> '' AND NOT starts_with(l, 'Traceback')
      AND NOT (ty <> '' AND starts_with(l, ty)) AND NOT (msg <> '' AND contains(l, msg)))[1:3],
  lambda l: regexp_replace(l, '(:\d+)+|,? line \d+|\+0x[0-9a-fA-F]+', '', 'g'));
CREATE TEMP MACRO fp_of(ty, msg, st, status, http, grpc) AS CASE
  WHEN trim(coalesce(st, ''), '{WS}') <> '' AND len(fp_frames(st, ty, msg)) > 0
    THEN (CASE WHEN ty = '' THEN 'exception' ELSE ty END) || ' | '
         || array_to_string(fp_frames(st, ty, msg), ' | ')
  WHEN ty <> '' AND msg <> '' THEN ty || ': ' || fp_normalize(msg)
  WHEN ty <> '' THEN ty
  WHEN msg <> '' THEN fp_normalize(msg)
  WHEN trim(coalesce(status, ''), '{WS}') <> '' THEN fp_normalize(status)
  WHEN http >= 400 THEN 'HTTP ' || CAST(http AS VARCHAR)
  WHEN grpc <> 0 THEN 'gRPC status ' || CAST(grpc AS VARCHAR)
  ELSE 'ERROR' END;
CREATE TEMP MACRO error_fingerprint(ty, msg, st, status, http, grpc) AS
  fp_of(trim(coalesce(ty, ''), '{WS}'), trim(coalesce(msg, ''), '{WS}'), st, status, http, grpc);
"""


def choose_step(span):
    """red.rs choose_step without a requested step: the smallest round step giving <= 120 points."""
    nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
            86400, 604800]
    return next((s * SECOND for s in nice if -(-span // (s * SECOND)) <= 120), 604800 * SECOND)


def ts(ns):
    """A TIMESTAMPTZ_NS literal (the columns' type in DuckDB), exact to the nanosecond."""
    return f"CAST(make_timestamp_ns({int(ns)}) AS TIMESTAMPTZ_NS)"


def check_live_set(data_dir):
    """Refuses a directory where the glob would read rows twice or unfinished flushes (lake.md)."""
    cp = data_dir / "wal" / "checkpoint"
    checkpoint = int(cp.read_text().strip()) if cp.exists() else None
    for part in {f.parent for f in (data_dir / "spans").rglob("*.parquet")}:
        files = []  # (path, first seq, last seq, compacted)
        for f in part.glob("*.parquet"):
            m = re.fullmatch(r"(\d+)-(c?)(\d+)\.parquet", f.name)
            if m:
                last = int(m[1])
                files.append((f, int(m[3]) if m[2] else last, last, bool(m[2])))
        for f, first, last, _ in files:
            if checkpoint is not None and last > checkpoint:
                sys.exit(f"{f}: above wal/checkpoint (unfinished flush); start and stop Lakescope")
            if any(c != f and lo <= first and last <= hi for c, lo, hi, comp in files if comp):
                sys.exit(f"{f}: covered by a compacted file; start and stop Lakescope")


class Views:
    """One method per view endpoint: runs the endpoint's queries, returns the answer's rows."""

    def __init__(self, con, start, end, trace_id):
        self.con, self.trace_id = con, trace_id
        self.start, self.end, self.step = start, end, choose_step(end - start)
        self.range = self.within()
        self.skew = self.within(skew=CLOCK_SKEW)
        self.bucket = f"(epoch_ns(start_time) - {start}) // {self.step}"

    def within(self, col="start_time", skew=0):
        """The range filter on `col`, widened by `skew` on both sides."""
        return f"{col} >= {ts(self.start - skew)} AND {col} < {ts(self.end + skew)}"

    def q(self, sql):
        """Runs a query and materialises its answer as Arrow, as Lakescope's engine does."""
        rel = self.con.sql(sql)
        return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()

    def measure(self, service):
        # Same as red.rs measure_of: entry spans when the service has any in the range, else roots.
        n = self.q(f"SELECT count(*) AS n FROM spans WHERE service_name = '{service}' "
                   f"AND {self.range} AND {ENTRY}").column("n")[0].as_py()
        return ENTRY if n > 0 else ROOT

    def services(self):
        # Same as services.rs; the per-service choice of entry or root numbers is left undone.
        return self.q(f"""
SELECT service_name,
  count(*) FILTER (WHERE {ENTRY}) AS entry_requests,
  count(*) FILTER (WHERE {ENTRY} AND status_code = 'ERROR') AS entry_errors,
  {LATENCY.format('duration_ns')} FILTER (WHERE {ENTRY}) AS entry_latency,
  count(*) FILTER (WHERE {ROOT}) AS root_requests,
  count(*) FILTER (WHERE {ROOT} AND status_code = 'ERROR') AS root_errors,
  {LATENCY.format('duration_ns')} FILTER (WHERE {ROOT}) AS root_latency
FROM spans WHERE {self.range}
GROUP BY service_name ORDER BY service_name""").num_rows

    def series(self):
        pred = self.measure(SERVICE)
        # Same as red.rs series; steps without requests are absent (Lakescope pads them in Rust).
        return self.q(f"""
SELECT {self.bucket} AS bucket, count(*) AS requests,
  count(*) FILTER (WHERE status_code = 'ERROR') AS errors,
  {LATENCY.format('duration_ns')} AS latency
FROM spans WHERE service_name = '{SERVICE}' AND {self.range} AND {pred}
GROUP BY bucket ORDER BY bucket""").num_rows

    def operations(self):
        pred = self.measure(SERVICE)
        # Same as red.rs operations but for the quantile function.
        return self.q(f"""
SELECT name, count(*) AS requests, count(*) FILTER (WHERE status_code = 'ERROR') AS errors,
  {LATENCY.format('duration_ns')} AS latency
FROM spans WHERE service_name = '{SERVICE}' AND {self.range} AND {pred}
GROUP BY name ORDER BY requests DESC, name""").num_rows

    def latency(self):
        pred = self.measure(SERVICE)
        case = "CASE" + "".join(f" WHEN duration_ns <= {int(ms * 1e6)} THEN {i}"
                                for i, ms in enumerate(BOUNDS_MS)) + f" ELSE {len(BOUNDS_MS)} END"
        # Same as latency.rs distribution: (step, bucket) cells; the overall histogram is their
        # per-bucket sum, done in Rust there and not here.
        return self.q(f"""
SELECT {self.bucket} AS t, {case} AS b, count(*) AS n
FROM spans WHERE {self.range} AND service_name = '{SERVICE}' AND {pred} GROUP BY 1, 2""").num_rows

    def compare(self):
        pred = self.measure(SERVICE)
        dims = ["name", "http_route", "CAST(http_status_code AS VARCHAR)", "rpc_method",
                "status_code", "service_version", "service_instance_id", "server_address"]
        cols = ", ".join(f"{e} AS d{i}" for i, e in enumerate(dims))
        m = (f"m AS (SELECT trace_id, service_name, {cols}, "
             f"(duration_ns >= {SLOW_MS * 1_000_000} AND duration_ns < {2**63 - 1}) AS sel "
             f"FROM spans WHERE {self.range} AND service_name = '{SERVICE}' AND {pred})")
        d = [f"d{i}" for i in range(len(dims))]
        # Same as latency.rs compare's two queries (run one after the other, not concurrently);
        # shares and the top-30 cut are computed in Rust there and not here.
        grouped = self.q(f"""
WITH {m} SELECT {', '.join(d)}, {', '.join(f'grouping({x}) AS g{i}' for i, x in enumerate(d))},
  count(*) FILTER (WHERE sel) AS s, count(*) FILTER (WHERE NOT sel) AS r
FROM m GROUP BY GROUPING SETS ((), {', '.join(f'({x})' for x in d)})""").num_rows
        # Same as latency.rs compare's "service in trace" join.
        traces = self.q(f"""
WITH {m} SELECT x.service_name AS value,
  count(DISTINCT m.trace_id) FILTER (WHERE m.sel) AS s,
  count(DISTINCT m.trace_id) FILTER (WHERE NOT m.sel) AS r
FROM m JOIN spans x ON x.trace_id = m.trace_id
WHERE {self.within("x.start_time", CLOCK_SKEW)} AND x.service_name <> m.service_name
GROUP BY x.service_name""").num_rows
        return grouped + traces

    def errors(self):
        failed = f"""failed AS (
  SELECT trace_id, span_id, service_name, name, start_time, exception_type,
    coalesce(exception_message, nullif(status_message, '')) AS message,
    error_fingerprint(exception_type, exception_message, exception_stacktrace,
                      status_message, http_status_code, rpc_grpc_status_code) AS fp,
    {self.bucket} AS bucket
  FROM spans WHERE status_code = 'ERROR' AND {self.range})"""
        # Same as errors.rs summary; error_fingerprint is the SQL macro above (RE2, not Rust regex).
        groups = self.q(f"""
WITH {failed},
failing_parents AS (
  SELECT DISTINCT trace_id, parent_span_id FROM spans
  WHERE status_code = 'ERROR' AND parent_span_id IS NOT NULL AND {self.skew}
)
SELECT f.service_name, f.fp, min(f.exception_type) AS exception_type,
  first(f.message ORDER BY f.start_time DESC) AS message,
  count(*) AS count,
  count(*) FILTER (WHERE p.parent_span_id IS NULL) AS originated,
  min(f.start_time) AS first_seen, max(f.start_time) AS last_seen,
  array_agg(DISTINCT f.name) AS operations
FROM failed f LEFT JOIN failing_parents p
  ON p.trace_id = f.trace_id AND p.parent_span_id = f.span_id
GROUP BY f.service_name, f.fp
ORDER BY count DESC, f.service_name, f.fp
LIMIT 500""").num_rows
        if groups:
            # Same as errors.rs per-step counts.
            self.q(f"WITH {failed} SELECT service_name, fp, bucket, count(*) AS n "
                   "FROM failed GROUP BY 1, 2, 3")
            # Same as errors.rs example traces (5 most recent per group).
            self.q(f"""
WITH {failed} SELECT service_name, fp, lower(hex(trace_id)) AS trace_id FROM (
  SELECT service_name, fp, trace_id,
    row_number() OVER (PARTITION BY service_name, fp ORDER BY start_time DESC) AS rn
  FROM failed) WHERE rn <= 5""")
        return groups

    def dependencies(self):
        # GRAPH_SQL of dependencies.rs verbatim but for the quantile function and literals.
        edges = self.q(f"""
WITH callers AS (
  SELECT trace_id, span_id, service_name, status_code, duration_ns,
    CASE
      WHEN messaging_system IS NOT NULL THEN coalesce(messaging_destination, server_address, messaging_system)
      WHEN db_system IS NOT NULL THEN coalesce(peer_service, server_address, db_system)
      ELSE coalesce(peer_service, server_address)
    END AS peer,
    CASE
      WHEN messaging_system IS NOT NULL THEN 'queue'
      WHEN lower(db_system) IN ('redis', 'memcached', 'valkey') THEN 'cache'
      WHEN db_system IS NOT NULL THEN 'database'
      ELSE 'external'
    END AS peer_kind
  FROM spans
  WHERE {self.range} AND span_kind IN ('CLIENT', 'PRODUCER')
),
callees AS (
  SELECT trace_id AS callee_trace, parent_span_id AS callee_parent, service_name AS callee,
    status_code AS callee_status, duration_ns AS callee_ns
  FROM spans
  WHERE {self.skew} AND span_kind IN ('SERVER', 'CONSUMER') AND parent_span_id IS NOT NULL
),
calls AS (
  SELECT c.service_name AS source, coalesce(s.callee, c.peer) AS target,
    CASE WHEN s.callee IS NULL THEN c.peer_kind ELSE 'service' END AS target_kind,
    c.status_code AS caller_status, c.duration_ns AS caller_ns,
    s.callee, s.callee_status, s.callee_ns
  FROM callees s RIGHT JOIN callers c ON s.callee_parent = c.span_id AND s.callee_trace = c.trace_id
)
SELECT source, target, target_kind, count(*) AS calls,
  count(*) FILTER (WHERE caller_status = 'ERROR') AS errors,
  {LATENCY.format('caller_ns')} AS latency,
  count(callee) AS callee_requests,
  count(*) FILTER (WHERE callee_status = 'ERROR') AS callee_errors,
  {LATENCY.format('callee_ns')} AS callee_latency
FROM calls
WHERE target IS NOT NULL AND (callee IS NULL OR callee <> source)
GROUP BY source, target, target_kind""").num_rows
        # Same as dependencies.rs node list (run after the graph, not concurrently).
        self.q(f"SELECT DISTINCT service_name FROM spans WHERE {self.range}")
        return edges

    def search(self):
        # Same as traces.rs search: http.route is a promoted attribute, so its column is compared.
        ids = self.q(f"""
SELECT lower(hex(trace_id)) AS id, max(start_time) AS latest, max(duration_ns) AS longest
FROM spans WHERE {self.range} AND http_route = '{SEARCH_ROUTE}'
GROUP BY trace_id ORDER BY latest DESC, trace_id LIMIT {SEARCH_LIMIT}""").column("id")
        ids = [i for i in ids.to_pylist() if re.fullmatch(r"[0-9a-f]{32}", i)]
        if not ids:
            return 0
        # Same as traces.rs summaries: over all the traces' spans, no time filter.
        return self.q(f"""
SELECT lower(hex(trace_id)) AS id,
  first(service_name ORDER BY parent_span_id IS NULL DESC, start_time) AS root_service,
  first(name ORDER BY parent_span_id IS NULL DESC, start_time) AS root_operation,
  min(start_time) AS start,
  max(epoch_ns(start_time) + duration_ns) - epoch_ns(min(start_time)) AS duration_ns,
  count(*) AS spans,
  bool_or(status_code = 'ERROR') AS error
FROM spans WHERE trace_id IN ({', '.join(f"unhex('{i}')" for i in ids)})
GROUP BY trace_id ORDER BY start DESC, trace_id""").num_rows

    def trace(self):
        # Same as traces.rs trace: every column of every span of the trace, no time filter.
        return self.q(f"SELECT * FROM spans WHERE trace_id = unhex('{self.trace_id}') "
                      "ORDER BY start_time, span_id").num_rows


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    data_dir, runs = Path(sys.argv[1]), int(sys.argv[2])
    start, end, trace_id = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].lower()
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
        sys.exit(f"{trace_id!r} is not a trace id (32 hex digits)")
    check_live_set(data_dir)
    con = duckdb.connect()  # in memory, default threads
    con.execute("SET TimeZone = 'UTC'")  # make_timestamp_ns -> TIMESTAMPTZ_NS reads it as UTC
    glob = str(data_dir / "spans" / "**" / "*.parquet").replace("'", "''")
    # hive_partitioning off: date/hour are not span columns; start_time filters prune by stats.
    con.execute(f"CREATE TEMP VIEW spans AS SELECT * FROM "
                f"read_parquet('{glob}', hive_partitioning = false)")
    con.execute(MACROS)
    v = Views(con, start, end, trace_id)
    questions = {
        "services": v.services,
        "service series": v.series,
        "operations": v.operations,
        "latency histogram+heatmap": v.latency,
        "slow-region compare": v.compare,
        "errors": v.errors,
        "dependencies": v.dependencies,
        "trace search (attribute)": v.search,
        "trace by id": v.trace,
    }
    out = {
        "engine": f"duckdb {duckdb.__version__}",
        "quantile": QUANTILE,
        "spans": con.sql("SELECT count(*) FROM spans").fetchall()[0][0],
        "runs": runs,
        "step_seconds": v.step / SECOND,
        "ms": {},
    }
    for name, ask in questions.items():
        t = time.perf_counter()
        rows = ask()
        first = (time.perf_counter() - t) * 1000
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            ask()
            times.append((time.perf_counter() - t) * 1000)
        out["ms"][name] = {"first_ms": round(first, 1),
                           "median_ms": round(statistics.median(times), 1) if times else None,
                           "rows": rows}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
