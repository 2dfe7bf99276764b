#!/usr/bin/env bash
# Peak resident memory of a release server ingesting flat out with live merges: `lakescope
# loadgen` for DURATION (default 90s), then until the merges settle; prints one JSON line with
# the peak RSS (VmHWM), the number of merges and the largest merge's input. Server flags through
# the environment, e.g. LAKESCOPE_COMPACTION_MAX_INPUT_BYTES, LAKESCOPE_COMPACTION_MAX_INPUT_FILES.
#
# Usage: tests/bench/mergemem.sh [DURATION]   (build first: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh
duration="${1:-90s}"
bin="${LAKESCOPE_BIN:-${CARGO_TARGET_DIR:-target}/release/lakescope}"
data="$(mktemp -d)"
server=""
trap 'kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; rm -rf "$data" "$data.log"' EXIT
"$bin" serve --data-dir "$data" --otlp-grpc 127.0.0.1:36317 --otlp-http 127.0.0.1:36318 \
  --http 127.0.0.1:36080 --compaction-interval 5s 2>>"$data.log" &
server=$!
for _ in $(seq 100); do curl -sf 127.0.0.1:36080/metrics >/dev/null && break; sleep 0.1; done
load=$("$bin" loadgen --otlp-grpc 127.0.0.1:36317 --duration "$duration" --connections 4)
wait_merges "$data.log" "$data/spans"
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
merges=$(grep -c "compacted a partition" "$data.log" || true)
largest=$(grep "compacted a partition" "$data.log" | grep -o "input_bytes=[0-9]*" | cut -d= -f2 | sort -n | tail -1)
python3 - "$load" "$peak_kib" "$merges" "${largest:-0}" "$files" <<'PY'
import json, sys
load = json.loads(sys.argv[1])
print(json.dumps({
    "spans": load["spans"],
    "peak_rss_mib": round(int(sys.argv[2]) / 1024),
    "merges": int(sys.argv[3]),
    "largest_merge_input_bytes": int(sys.argv[4]),
    "files": int(sys.argv[5]),
}))
PY
