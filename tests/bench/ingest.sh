#!/usr/bin/env bash
# Ingest benchmark: the release server pinned to CPU 1, `lakescope loadgen` (the demo fleet's
# traffic, flat out over OTLP/gRPC) pinned to CPU 0. Prints one JSON line: accepted spans/s,
# server CPU-seconds per million spans, the server's peak resident memory, and bytes per span
# on disk after the final flush next to the raw OTLP protobuf bytes per span.
#
# Usage: tests/bench/ingest.sh [DURATION]   (default 30s; build first: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${1:-30s}"
bin="${LAKESCOPE_BIN:-${CARGO_TARGET_DIR:-target}/release/lakescope}"
data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT

taskset -c 1 "$bin" serve --data-dir "$data" --otlp-grpc 127.0.0.1:24317 \
  --otlp-http 127.0.0.1:24318 --http 127.0.0.1:28080 ${LAKESCOPE_BENCH_SERVER_ARGS:-} 2>"$data.log" &
server=$!
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
before=$(ticks)
load=$(taskset -c 0 "$bin" loadgen --otlp-grpc 127.0.0.1:24317 --duration "$duration" --connections 4)
after=$(ticks)
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
kill -TERM "$server"
wait "$server"
disk=$(find "$data/spans" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
hz=$(getconf CLK_TCK)
python3 - "$load" "$before" "$after" "$hz" "$peak_kib" "$disk" <<'PY'
import json, sys
load = json.loads(sys.argv[1])
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
spans = load["spans"]
print(json.dumps({
    "spans_per_s": load["spans_per_s"],
    "server_cpu_s": round(cpu, 2),
    "spans_per_server_cpu_s": round(spans / cpu) if cpu else None,
    "server_cpu_s_per_million_spans": round(cpu / spans * 1e6, 2),
    "peak_rss_mib": round(int(sys.argv[5]) / 1024, 1),
    "disk_bytes_per_span": round(int(sys.argv[6]) / spans, 1),
    "otlp_bytes_per_span": load["otlp_bytes_per_span"],
    "export_latency_ms": load["latency_ms"],
    "refused": load["refused"],
}))
PY
