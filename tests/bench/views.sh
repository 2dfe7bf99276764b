#!/usr/bin/env bash
# View latency: fills a release server with the demo fleet's traffic from `lakescope loadgen`
# (FILL, default 30s: a few million spans), waits for the last flush, then asks every view
# endpoint once (reported as `first_ms`: no per-file summary made yet), waits SETTLE seconds
# (default 15) for the server to summarise the files of the ranges asked for, as it does in the
# background, and asks RUNS times more (default 5) over the last hour, and prints the median wall
# time of those RUNS for each, in milliseconds, as JSON. The series and the latency views are
# asked as the dashboard asks them: on 15-second boundaries. Then, with the server
# stopped, DuckDB (tests/bench/duckdb_views.py, from the test virtualenv) answers the same
# questions over the same Parquet files RUNS times, and each view gets its ratio to DuckDB.
#
# With BACKDATE (e.g. 2h) the traffic is dated that far back, into an hour that has ended, the
# server compacts it (merges every file of the hour into one) before the views are asked, and
# the views ask for the last 3 hours: the same questions over a compacted lake.
#
# With BACKDATE `live` the traffic is current and the server, restarted, merges the current
# hour's flush files in runs of 10 as a running server does (--compaction-live-files) before the
# views are asked.
#
# With COLD=1 (as root), each endpoint is also asked once cold: the server restarted and the
# kernel's page cache dropped (/proc/sys/vm/drop_caches) before the request (`cold_ms`). The
# per-file summaries the server kept on disk (<data-dir>/summaries/) stay, as they would for
# a restarted server.
#
# Usage: tests/bench/views.sh [FILL] [RUNS] [BACKDATE]   (build first: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh
fill="${1:-30s}"
runs="${2:-5}"
backdate="${3:-}"
live=""
if [ "$backdate" = "live" ]; then live=1; backdate=""; fi
range="now-1h"
[ -n "$backdate" ] && range="now-3h"
bin="${LAKESCOPE_BIN:-${CARGO_TARGET_DIR:-target}/release/lakescope}"
data="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

serve() {
  "$bin" serve --data-dir "$data" --otlp-grpc 127.0.0.1:34317 --otlp-http 127.0.0.1:34318 \
    --http 127.0.0.1:38080 --flush-interval 2s "$@" 2>>"$data.log" &
  server=$!
  sleep 1
}
# No compaction while filling, so both variants hold the same number of spans.
serve --compaction-delay 1000d --compaction-live-files 0
"$bin" loadgen --otlp-grpc 127.0.0.1:34317 --duration "$fill" --connections 4 \
  --backdate "${backdate:-0s}" >"$data.load"
sleep 4
if [ -n "$backdate" ]; then
  # Restart with compaction due at once, and wait until it has merged the ended hour's files.
  kill -TERM "$server"
  wait "$server" || true
  serve --compaction-delay 0s --compaction-interval 1s
  for _ in $(seq 600); do
    files=$(curl -s 127.0.0.1:38080/metrics | awk '/^lakescope_files\{table="spans"\}/ {print $2}')
    # One file per hour partition (the backdated minute may straddle two hours).
    [ "${files:-99}" -le 2 ] && break
    sleep 1
  done
fi
if [ -n "$live" ]; then
  kill -TERM "$server"
  wait "$server" || true
  serve --compaction-delay 1000d --compaction-live-files 10 --compaction-interval 1s
  # Until no merge is running and the number of files has not changed for 5 s.
  wait_merges "$data.log" "$data/spans"
  echo "views.sh: $files span files after live merges" >&2
fi
spans=$(curl -s -XPOST 127.0.0.1:38080/api/v1/sql -H 'content-type: application/json' \
  -d '{"query": "SELECT count(*) AS n FROM spans"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["n"])')
trace=$(curl -s "127.0.0.1:38080/api/v1/traces?start=$range&limit=1&service=checkout" | python3 -c 'import json,sys; print(json.load(sys.stdin)["traces"][0]["trace_id"])')
lakescope=$(python3 - "$runs" "$spans" "$trace" "$range" <<'PY'
import datetime, json, statistics, sys, time, urllib.error, urllib.request
runs, spans, trace, r = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
base = "http://127.0.0.1:38080/api/v1/"
# The series and the latency heatmap as the dashboard asks for them (ui/assets/app.js,
# seriesParams): the start moved back to a 15-second boundary, a step of whole 15 seconds.
now = time.time()
hours = 3 if r == "now-3h" else 1
iso = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat()
series = f"start={iso((now - hours * 3600) // 15 * 15)}&end={iso(now)}&step={30 * hours}s".replace("+", "%2B")
endpoints = {
    "services": f"services?start={r}",
    "services 24h": "services?start=now-24h",
    "service series": f"services/frontend/series?{series}",
    "operations": f"services/frontend/operations?start={r}",
    "latency histogram+heatmap": f"latency?service=frontend&{series}",
    "operation histogram": f"latency?service=frontend&operation=GET%20/product/%7Bid%7D&{series}",
    "slow-region compare": f"latency/compare?service=frontend&min_ms=50&start={r}",
    "errors": f"errors?start={r}",
    "dependencies": f"dependencies?start={r}",
    "trace search (attribute)": f"traces?start={r}&attribute=http.route=/checkout&limit=20",
    "trace by id": f"traces/{trace}",
}
out = {"spans": spans, "runs": runs, "ms": {}}
def ask(path):
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(base + path) as res:
            res.read()
    except urllib.error.HTTPError as e:
        # Say which view failed and why (e.g. 422: the query-memory limit), not just a traceback.
        sys.exit(f"views.sh: {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:500]}")
    return (time.perf_counter() - t) * 1000
# Every endpoint once first (the first request after the fill: no per-file summaries made yet),
# then, once the summaries of the ranges asked for are made in the background, RUNS more.
first = {name: ask(path) for name, path in endpoints.items()}
settle = float(__import__("os").environ.get("SETTLE", "15"))
time.sleep(settle)
for name, path in endpoints.items():
    times = [ask(path) for _ in range(runs)]
    out["ms"][name] = {"first_ms": round(first[name], 1), "median_ms": round(statistics.median(times), 1)}
print(json.dumps(out))
PY
)
cold="{}"
if [ -n "${COLD:-}" ]; then
  names=("services" "services 24h" "service series" "operations" "latency histogram+heatmap"
    "operation histogram" "slow-region compare" "errors" "dependencies"
    "trace search (attribute)" "trace by id")
  # The series on 15-second boundaries, as above.
  hours=1
  [ -n "$backdate" ] && hours=3
  now=$(date +%s)
  series="start=$(date -u -d "@$(( (now - hours * 3600) / 15 * 15 ))" +%Y-%m-%dT%H:%M:%SZ)&end=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)&step=$((30 * hours))s"
  paths=("services?start=$range" "services?start=now-24h" "services/frontend/series?$series"
    "services/frontend/operations?start=$range" "latency?service=frontend&$series"
    "latency?service=frontend&operation=GET%20/product/%7Bid%7D&$series"
    "latency/compare?service=frontend&min_ms=50&start=$range" "errors?start=$range"
    "dependencies?start=$range" "traces?start=$range&attribute=http.route=/checkout&limit=20"
    "traces/$trace")
  cold="{"
  for i in "${!paths[@]}"; do
    kill -TERM "$server"
    wait "$server" || true
    sync
    echo 3 >/proc/sys/vm/drop_caches
    serve --compaction-delay 1000d --compaction-live-files 0
    for _ in $(seq 100); do curl -sf 127.0.0.1:38080/metrics >/dev/null && break; sleep 0.1; done
    t=$(curl -s -o /dev/null -w '%{time_total}' "127.0.0.1:38080/api/v1/${paths[$i]}")
    [ "$i" -gt 0 ] && cold+=", "
    cold+="\"${names[$i]}\": $t"
  done
  cold+="}"
fi
# The baseline: DuckDB asked the same questions over the same files, the server stopped so the
# files no longer change.
end_ns=$(date +%s%N)
hours=1
[ -n "$backdate" ] && hours=3
start_ns=$((end_ns - hours * 3600 * 1000000000))
kill -TERM "$server"
wait "$server" || true
python="${LAKESCOPE_PYTHON:-$HOME/.cache/lakescope/venv/bin/python}"
duckdb=$("$python" tests/bench/duckdb_views.py "$data" "$runs" "$start_ns" "$end_ns" "$trace")
python3 - "$lakescope" "$duckdb" "$cold" <<'PY'
import json, sys
ours, theirs, cold = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
for name, m in ours["ms"].items():
    if name in cold:
        m["cold_ms"] = round(cold[name] * 1000, 1)
    base = theirs["ms"].get(name, {}).get("median_ms")
    m["duckdb_median_ms"] = base
    m["ratio_to_duckdb"] = round(m["median_ms"] / base, 2) if base else None
print(json.dumps(ours, indent=1))
PY
