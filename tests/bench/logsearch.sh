#!/usr/bin/env bash
# Log search speed: fills a release server with FILL of `lakescope loadgen --signal logs` (the
# demo fleet's log records), restarts it so every record is in Parquet, then asks
# `/api/v1/logs/histogram?q=WORD` (counts every record whose body contains the word, so the
# whole body column is searched) RUNS times for a word that occurs ("declined") and one that does
# not ("zebra"), and the first page `/api/v1/logs?q=declined`. Reports the median wall time, the
# server's CPU-seconds per search, and bytes of log text (sum of body lengths) searched per
# wall second and per server CPU-second. Then DuckDB answers the histogram's question over the
# same files (matching records of the last two hours by time step and severity range, `body
# ILIKE '%word%'`) as the baseline, and, for comparison with earlier runs, only counts them.
#
# Usage: tests/bench/logsearch.sh [FILL] [RUNS]   (default 30s 5; build first: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh
fill="${1:-30s}"
runs="${2:-5}"
bin="${LAKESCOPE_BIN:-${CARGO_TARGET_DIR:-target}/release/lakescope}"
python="${LAKESCOPE_PYTHON:-$HOME/.cache/lakescope/venv/bin/python}"
data="$(mktemp -d)"
server=""
trap 'kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

serve() {
  "$bin" serve --data-dir "$data" --otlp-grpc 127.0.0.1:34317 --otlp-http 127.0.0.1:34318 \
    --http 127.0.0.1:38080 --compaction-delay 1000d "$@" >/dev/null 2>>"$data.log" &
  server=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:38080/metrics >/dev/null && break; sleep 0.1; done
}
serve --compaction-live-files 0
"$bin" loadgen --otlp-grpc 127.0.0.1:34317 --signal logs --duration "$fill" --connections 4 >"$data.load"
# A restart flushes every record to Parquet; live merges then join the flush files as a running
# server does, until the file count is steady.
kill -TERM "$server"
wait "$server" || true
serve --compaction-live-files 10 --compaction-interval 1s
wait_merges "$data.log" "$data/logs"
sql() {
  curl -s -XPOST 127.0.0.1:38080/api/v1/sql -H 'content-type: application/json' -d "{\"query\": \"$1\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["n"])'
}
records=$(sql "SELECT count(*) AS n FROM logs")
text_bytes=$(sql "SELECT sum(octet_length(body)) AS n FROM logs")
ours=$(python3 - "$runs" "$server" "$records" "$text_bytes" "$files" <<'PY'
import json, os, statistics, sys, time, urllib.request
runs, pid, records, text = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
hz = os.sysconf("SC_CLK_TCK")
def ticks():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
base = "http://127.0.0.1:38080/api/v1/"
out = {"records": records, "text_bytes": text, "files": int(sys.argv[5]), "runs": runs, "searches": {}}
for name, path, count_key in [
    ("histogram q=declined", "logs/histogram?q=declined&start=now-2h", "total"),
    ("histogram q=zebra", "logs/histogram?q=zebra&start=now-2h", "total"),
    ("first page q=declined", "logs?q=declined&start=now-2h&limit=100", None),
]:
    urllib.request.urlopen(base + path).read()
    times, before = [], ticks()
    for _ in range(runs):
        t = time.perf_counter()
        body = json.loads(urllib.request.urlopen(base + path).read())
        times.append(time.perf_counter() - t)
    cpu = (ticks() - before) / hz / runs
    median = statistics.median(times)
    entry = {"median_ms": round(median * 1000, 1), "server_cpu_s": round(cpu, 3)}
    if count_key:
        entry["matches"] = body[count_key]
        entry["step_seconds"] = body["step_seconds"]
        entry["gb_per_s"] = round(text / median / 1e9, 2)
        entry["gb_per_cpu_s"] = round(text / cpu / 1e9, 2) if cpu else None
    out["searches"][name] = entry
print(json.dumps(out))
PY
)
kill -TERM "$server"
wait "$server" || true
"$python" - "$data" "$runs" "$ours" <<'PY'
import json, statistics, sys, time
import duckdb
data, runs, ours = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
con = duckdb.connect()
files = f"{data}/logs/**/*.parquet"
# The histogram's own question: matching records in the last two hours, by time step and
# severity range; and, as in earlier sessions, only the count of matching records.
severity = ("CASE WHEN severity_number >= 21 THEN 6 WHEN severity_number >= 17 THEN 5 "
            "WHEN severity_number >= 13 THEN 4 WHEN severity_number >= 9 THEN 3 "
            "WHEN severity_number >= 5 THEN 2 WHEN severity_number >= 1 THEN 1 ELSE 0 END")
def timed(sql):
    sql().fetchall()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        rows = sql().fetchall()
        times.append(time.perf_counter() - t)
    return rows, statistics.median(times)
for word in ["declined", "zebra"]:
    entry = ours["searches"][f"histogram q={word}"]
    step = round(entry["step_seconds"] * 1e9)
    def histogram():
        end = time.time_ns()
        start = end - 2 * 3600 * 10**9
        return con.sql(
            f"SELECT (epoch_ns(timestamp) - {start}) // {step} AS t, {severity} AS s, count(*) AS n "
            f"FROM read_parquet('{files}') WHERE timestamp >= to_timestamp({start / 1e9}) "
            f"AND timestamp < to_timestamp({end / 1e9}) AND body ILIKE '%{word}%' GROUP BY 1, 2")
    rows, median = timed(histogram)
    entry["duckdb_matches"] = sum(r[2] for r in rows)
    entry["duckdb_median_ms"] = round(median * 1000, 1)
    entry["ratio_to_duckdb"] = round(entry["median_ms"] / (median * 1000), 2)
    rows, median = timed(lambda: con.sql(
        f"SELECT count(*) FROM read_parquet('{files}') WHERE body ILIKE '%{word}%'"))
    entry["duckdb_count_matches"] = rows[0][0]
    entry["duckdb_count_median_ms"] = round(median * 1000, 1)
    entry["ratio_to_duckdb_count"] = round(entry["median_ms"] / (median * 1000), 2)
print(json.dumps(ours, indent=1))
PY
