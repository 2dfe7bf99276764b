#!/usr/bin/env bash
# Ingest, builds compared by instructions: the ingest CPU figures of tests/bench/ingest.sh move
# by ±10–25 % between runs on a shared 2-core machine; instruction counts do not (two runs of
# one build agree within 0.1 %). The first BIN receives DURATION of `lakescope loadgen` traffic
# at RATE records/s (default 20000) with flushing held off, and is killed, so its write-ahead
# log holds every request and no Parquet file exists. Then each BIN starts on a copy of that
# data directory under `valgrind --tool=callgrind`: it replays the log (protobuf decoding,
# conversion to Arrow, buffering), is stopped, and writes the final flush (concatenation, the
# storage order, Parquet encoding, fsync). Everything but the gRPC receiver of live ingest.
# Prints per build the instructions per record and the ten functions with the most
# instructions of their own (tests/bench/cgsum.py), and the flushed bytes per record.
#
# Usage: tests/bench/ingest_instructions.sh DURATION BIN...   e.g. 5s ./before ./after
#        (SIGNAL=logs|metrics for the other signals, RATE=…, KEEP=DIR to keep the callgrind
#        dumps as DIR/N.callgrind for callgrind_annotate; needs valgrind)
set -euo pipefail
duration=$1; shift
# Absolute paths: the script runs from the repository root.
bins=(); for b in "$@"; do bins+=("$(realpath "$b")"); done
signal="${SIGNAL:-traces}"
rate="${RATE:-20000}"
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh
table=$(table_of "$signal")
wal=$(mktemp -d); norules=$(mktemp -d); out=$(mktemp -d); data=""; server=""
trap 'kill "$server" 2>/dev/null || true; rm -rf "$wal" "$wal.log" "$norules" "$out" "$data"' EXIT
serve() {
  local dir="$1"; shift
  "$@" serve --data-dir "$dir" --otlp-grpc 127.0.0.1:34317 --otlp-http 127.0.0.1:34318 \
    --http 127.0.0.1:38080 --compaction-delay 1000d --compaction-live-files 0 \
    --rules-dir "$norules" --flush-interval 100d --flush-bytes 100000000000 >/dev/null 2>>"$wal.log" &
  server=$!
  for _ in $(seq 3000); do
    curl -sf 127.0.0.1:38080/metrics >/dev/null && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not start; its log ends:" >&2
  grep -v '^==' "$wal.log" | tail -5 >&2
  exit 1
}
serve "$wal" "${bins[0]}"
records=$("${bins[0]}" loadgen --otlp-grpc 127.0.0.1:34317 --signal "$signal" --duration "$duration" \
  --rate "$rate" --connections 2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["records"])')
kill -KILL "$server"; wait "$server" 2>/dev/null || true
echo "$records $signal records in the log ($(du -sh "$wal/wal" | cut -f1))"
for n in "${!bins[@]}"; do
  bin=${bins[$n]}
  data=$(mktemp -d); cp -r "$wal"/. "$data"/
  serve "$data" valgrind --tool=callgrind --callgrind-out-file="$out/$n.%p" "$bin"
  vg=$server
  kill -TERM "$server"; wait "$server" || true
  bytes=$(find "$data/$table" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  python3 tests/bench/cgsum.py "$out/$n.$vg" "$records" "$bin" record
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$out/$n.$vg" "$KEEP/$n.callgrind"; fi
  python3 -c "import sys; print(f'  flushed: {int(sys.argv[1]) / int(sys.argv[2]):.1f} bytes per record')" "$bytes" "$records"
  rm -rf "$data"
done
