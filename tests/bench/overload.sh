#!/usr/bin/env bash
# Overload benchmark: the release server (pinned to CPU 1) with a tight buffer bound, and
# `lakescope loadgen` (CPU 0) in three phases against the same process:
#   before   — 4 connections flat out (the baseline rate),
#   overload — many more connections flat out for longer (offered load above what the flushes
#              can drain within the bound: requests are refused with UNAVAILABLE + RetryInfo,
#              and the load generator waits the retry delay as the SDKs do),
#   after    — 4 connections again: ingestion must be back at the baseline rate.
# Prints one JSON line: accepted spans/s and refusals per phase, the after/before ratio, the
# server's peak resident memory next to its buffer bound, and whether every acknowledged span is
# on disk after a clean shutdown.
#
# Usage: tests/bench/overload.sh [OVERLOAD_DURATION] [CONNECTIONS] [BUFFER_BOUND]
#        (defaults: 60s, 32, 100663296 bytes = 96 MiB; build first: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/../.."
overload="${1:-60s}"
connections="${2:-32}"
bound="${3:-100663296}"
bin="${LAKESCOPE_BIN:-${CARGO_TARGET_DIR:-target}/release/lakescope}"
data="$(mktemp -d)"
trap 'rm -rf "$data" "$data.log"' EXIT

taskset -c 1 "$bin" serve --data-dir "$data" --otlp-grpc 127.0.0.1:24317 \
  --otlp-http 127.0.0.1:24318 --http 127.0.0.1:28080 --max-buffer-bytes "$bound" \
  ${LAKESCOPE_BENCH_SERVER_ARGS:-} 2>"$data.log" &
server=$!
sleep 1
load() { taskset -c 0 "$bin" loadgen --otlp-grpc 127.0.0.1:24317 --duration "$1" --connections "$2"; }
before=$(load 20s 4)
during=$(load "$overload" "$connections")
after=$(load 20s 4)
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
kill -TERM "$server"
wait "$server"
stored=$("${LAKESCOPE_PYTHON:-$HOME/.cache/lakescope/venv/bin/python}" - "$data" <<'PY' 2>/dev/null || echo null
import sys, pyarrow.dataset as ds
print(ds.dataset(sys.argv[1] + "/spans", format="parquet", partitioning="hive").count_rows())
PY
)
python3 - "$before" "$during" "$after" "$peak_kib" "$bound" "$stored" <<'PY'
import json, sys
phases = {name: json.loads(arg) for name, arg in zip(("before", "overload", "after"), sys.argv[1:4])}
acked = sum(p["spans"] for p in phases.values())
stored = None if sys.argv[6] == "null" else int(sys.argv[6])
print(json.dumps({
    **{name: {"spans_per_s": p["spans_per_s"], "refused": p["refused"],
              "export_latency_ms": p["latency_ms"]} for name, p in phases.items()},
    "after_over_before": round(phases["after"]["spans_per_s"] / phases["before"]["spans_per_s"], 3),
    "peak_rss_mib": round(int(sys.argv[4]) / 1024, 1),
    "buffer_bound": sys.argv[5],
    "acknowledged_spans": acked,
    "stored_spans": stored,
}))
PY
