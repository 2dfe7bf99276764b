#!/usr/bin/env bash
# Ingest benchmark: the release server pinned to CPU 1, `lakescope loadgen` (the demo fleet's
# traffic, flat out over OTLP/gRPC unless LOADGEN_ARGS says otherwise) pinned to CPU 0. Prints one
# JSON line: accepted records/s, records per server CPU-second, the server's peak resident
# memory, bytes per record on disk after the final flush and again after compaction (the server
# restarted with live merges of every 2 files, until the file count is steady) next to the raw
# OTLP protobuf bytes per record, and with FRESHNESS=1 (traces) freshness: acknowledgement to
# visible through the trace API, probed once a second during the load (the probe's lookups run
# on the server's core too, so measure throughput without it, and freshness at a fixed rate,
# e.g. LOADGEN_ARGS="--rate 50000").
#
# Usage: tests/bench/ingest.sh [DURATION] [SIGNAL]   (default 30s traces; SIGNAL: traces, logs
# or metrics; build first: cargo build --release). Extra loadgen flags: LOADGEN_ARGS; extra
# server flags: LAKESCOPE_BENCH_SERVER_ARGS. LAKESCOPE_BIN: another server build to measure.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh
duration="${1:-30s}"
signal="${2:-traces}"
table=$(table_of "$signal")
bin="${LAKESCOPE_BIN:-${CARGO_TARGET_DIR:-target}/release/lakescope}"
# The load generator of this checkout's build, so an older server can be measured with it.
loadgen_bin="${LOADGEN_BIN:-${CARGO_TARGET_DIR:-target}/release/lakescope}"
data="$(mktemp -d)"
server=""
trap 'kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

serve() {
  taskset -c 1 "$bin" serve --data-dir "$data" --otlp-grpc 127.0.0.1:24317 \
    --otlp-http 127.0.0.1:24318 --http 127.0.0.1:28080 "$@" ${LAKESCOPE_BENCH_SERVER_ARGS:-} \
    2>>"$data.log" &
  server=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:28080/metrics >/dev/null && break; sleep 0.1; done
}
disk_bytes() { find "$data/$table" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}'; }

serve
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
# Minor page faults: first touches of memory the process was handed (docs/benchmarks.md).
faults() { awk '{print $10}' "/proc/$server/stat"; }
before=$(ticks)
faults_before=$(faults)
fresh=()
[ "$signal" = traces ] && [ -n "${FRESHNESS:-}" ] && fresh=(--freshness 127.0.0.1:28080)
# shellcheck disable=SC2086
load=$(taskset -c 0 "$loadgen_bin" loadgen --otlp-grpc 127.0.0.1:24317 --otlp-http 127.0.0.1:24318 \
  --signal "$signal" --duration "$duration" --connections 4 "${fresh[@]}" ${LOADGEN_ARGS:-})
after=$(ticks)
faults_after=$(faults)
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
kill -TERM "$server"
wait "$server"
flushed=$(disk_bytes)
flush_files=$(find "$data/$table" -name '*.parquet' | wc -l)

# Compaction: merge runs of 2 or more flush files until nothing changes for 5 s.
serve --compaction-live-files 2 --compaction-interval 1s --compaction-delay 0s
wait_merges "$data.log" "$data/$table"
kill -TERM "$server"
wait "$server"
compacted=$(disk_bytes)
hz=$(getconf CLK_TCK)
python3 - "$load" "$before" "$after" "$hz" "$peak_kib" "$flushed" "$flush_files" "$compacted" "$files" \
  "$((faults_after - faults_before))" <<'PY'
import json, sys
load = json.loads(sys.argv[1])
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
n = load["records"]
out = {
    "signal": load["signal"],
    "records_per_s": load["records_per_s"],
    "server_cpu_s": round(cpu, 2),
    "records_per_server_cpu_s": round(n / cpu) if cpu else None,
    "server_cpu_s_per_million": round(cpu / n * 1e6, 2),
    "server_page_faults_per_record": round(int(sys.argv[10]) / n, 3),
    "peak_rss_mib": round(int(sys.argv[5]) / 1024, 1),
    "disk_bytes_per_record_flushed": round(int(sys.argv[6]) / n, 1),
    "files_flushed": int(sys.argv[7]),
    "disk_bytes_per_record_compacted": round(int(sys.argv[8]) / n, 1),
    "files_compacted": int(sys.argv[9]),
    "otlp_bytes_per_record": load["otlp_bytes_per_record"],
    "otlp_over_disk_compacted": round(load["otlp_bytes_per_record"] * n / int(sys.argv[8]), 1),
    "export_latency_ms": load["latency_ms"],
    "refused": load["refused"],
}
if "freshness_ms" in load:
    out["freshness_ms"] = load["freshness_ms"]
print(json.dumps(out))
PY
