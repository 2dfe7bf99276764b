#!/usr/bin/env bash
# A large lake through the real write path, then the questions whose targets are set at tens of
# millions of spans: fills a release server running its default flags (live merges and built-in
# rules on) with `lakescope loadgen` flat out for DURATION (default 24m: ~49 M spans on this
# machine), waits until the merges settle, reports the server's peak resident memory, then
# restarts it with no rules and no compaction and times the services overview and one
# service's series (once right after the restart, then, SETTLE seconds later — default 60 — RUNS
# requests each, default 6) and GET /api/v1/traces/{id} for 200 random traces
# (tests/bench/tracebyid.py). Also reports the seconds the built-in rules' queries took during
# the fill. Prints one JSON object. Needs ~50 B of disk per span. KEEP=DIR keeps the lake.
#
# Usage: tests/bench/bigfill.sh [DURATION] [RUNS]   (build first: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh
duration="${1:-24m}"
runs="${2:-6}"
bin="${LAKESCOPE_BIN:-${CARGO_TARGET_DIR:-target}/release/lakescope}"
data="$(mktemp -d)"
norules="$(mktemp -d)"
server=""
# KEEP=DIR keeps the filled lake there (for comparing builds over it) instead of removing it.
cleanup() {
  kill "$server" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then mv "$data" "$KEEP"; else rm -rf "$data"; fi
  rm -rf "$norules"
}
trap cleanup EXIT

serve() {
  "$bin" serve --data-dir "$data" --otlp-grpc 127.0.0.1:35317 --otlp-http 127.0.0.1:35318 \
    --http 127.0.0.1:39080 "$@" 2>>"$data.log" &
  server=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:39080/metrics >/dev/null && break; sleep 0.1; done
}

serve
load=$("$bin" loadgen --otlp-grpc 127.0.0.1:35317 --duration "$duration" --connections 4)
fill_end=$(date +%s)
# Each figure also goes to stderr as soon as it is known, so a late failure loses none.
echo "bigfill: load $load" >&2
# Longer than the default --compaction-interval (30 s): merges run in rounds.
wait_merges "$data.log" "$data/spans" 40
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
# No user asked anything: the view queries so far are the built-in rules' (wall seconds summed).
rules_cpu=$(curl -s 127.0.0.1:39080/metrics |
  awk '/^lakescope_query_duration_seconds_sum\{kind="view"\}/ {print $2}')
echo "bigfill: peak RSS ${peak_kib} KiB, rules' queries ${rules_cpu:-0} s" >&2
kill -TERM "$server"
wait "$server" || true
bytes=$(find "$data/spans" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}')
files=$(find "$data/spans" -name '*.parquet' | wc -l)
echo "bigfill: $files span files, $bytes bytes" >&2

serve --rules-dir "$norules" --compaction-delay 1000d --compaction-live-files 0
times() {
  for _ in $(seq "$runs"); do
    curl -s -o /dev/null -w '%{time_total}\n' "127.0.0.1:39080/api/v1/$1"
  done | awk '{printf "%s%.0f", (NR > 1 ? ", " : ""), $1 * 1000}'
}
# The series as the dashboard asks it (ui/assets/app.js, seriesParams: start on a 15-second
# boundary) over the fill's own hour: ending at the restart's "now" would make the answer depend
# on whether the clock has left the fill's last hour partition by then.
series_end=$(( (fill_end + 14) / 15 * 15 ))
series_q="services/frontend/series?start=$(date -u -d "@$(( (series_end - 3600) / 15 * 15 ))" +%Y-%m-%dT%H:%M:%SZ)&end=$(date -u -d "@$series_end" +%Y-%m-%dT%H:%M:%SZ)&step=30s"
# The first request of each after the restart aggregates the spans unless the per-file
# summaries are on disk already; the server then makes them in the background (SETTLE s).
services_first=$(runs=1 times "services?start=now-1h")
series_first=$(runs=1 times "$series_q")
sleep "${SETTLE:-60}"
services=$(times "services?start=now-1h")
series=$(times "$series_q")
echo "bigfill: services first $services_first, then $services; series first $series_first, then $series (ms)" >&2
lookups=$(python3 tests/bench/tracebyid.py 39080 200)
python3 - "$load" "$peak_kib" "$bytes" "$files" "$services" "$series" "$lookups" \
  "$services_first" "$series_first" "${rules_cpu:-0}" <<'PY'
import json, sys
load = json.loads(sys.argv[1])
print(json.dumps({
    "spans": load["spans"],
    "fill_spans_per_s": load["spans_per_s"],
    "fill_latency_ms": load["latency_ms"],
    "peak_rss_mib_during_fill": round(int(sys.argv[2]) / 1024),
    "parquet_bytes": int(sys.argv[3]),
    "files": int(sys.argv[4]),
    "rule_query_seconds_during_fill": float(sys.argv[10]),
    "services_1h_first_ms": int(sys.argv[8]),
    "services_1h_ms": [int(x) for x in sys.argv[5].split(", ")],
    "service_series_first_ms": int(sys.argv[9]),
    "service_series_ms": [int(x) for x in sys.argv[6].split(", ")],
    "trace_by_id": json.loads(sys.argv[7]),
}))
PY
