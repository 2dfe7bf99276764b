#!/usr/bin/env bash
# Log search, builds compared by instructions: wall and CPU times on a shared 2-core machine
# move by ±25 % between runs, instruction counts do not. The first BIN fills a server with FILL
# of `lakescope loadgen --signal logs` and merges it as a running server does; then each BIN
# serves that lake under `valgrind --tool=callgrind`, answers one warm-up
# `/api/v1/logs/histogram?q=WORD&start=now-2h`, has its counters zeroed, answers N more and
# dumps them. Prints per build the instructions per request and the ten functions with the most
# instructions of their own (tests/bench/cgsum.py).
#
# With PAGE=1 the request is the first page, `/api/v1/logs?q=WORD&limit=100`, over exactly the
# time span the lake holds (a range the records fill, as a live lake's last hour is filled).
#
# Usage: tests/bench/logsearch_instructions.sh FILL N BIN...   e.g. 20s 3 ./before ./after
#        (WORD=zebra for the other word; needs valgrind: apt-get install valgrind)
set -euo pipefail
fill=$1; n=$2; shift 2
# Absolute paths: the script runs from the repository root.
bins=(); for b in "$@"; do bins+=("$(realpath "$b")"); done
word="${WORD:-declined}"
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh
data=$(mktemp -d); norules=$(mktemp -d); out=$(mktemp -d); server=""
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data" "$data.log" "$norules" "$out"' EXIT
serve() {
  "$@" serve --data-dir "$data" --otlp-grpc 127.0.0.1:34317 --otlp-http 127.0.0.1:34318 \
    --http 127.0.0.1:38080 --compaction-delay 1000d --rules-dir "$norules" $extra >/dev/null 2>>"$data.log" &
  server=$!
  for _ in $(seq 1200); do curl -sf 127.0.0.1:38080/metrics >/dev/null && break; sleep 0.1; done
}
extra="--compaction-live-files 0"; serve "${bins[0]}"
"${bins[0]}" loadgen --otlp-grpc 127.0.0.1:34317 --signal logs --duration "$fill" --connections 4 >/dev/null
kill -TERM "$server"; wait "$server" || true
extra="--compaction-live-files 10 --compaction-interval 1s"; serve "${bins[0]}"
wait_merges "$data.log" "$data/logs"
span=$(curl -sf -XPOST 127.0.0.1:38080/api/v1/sql -H 'content-type: application/json' \
  -d '{"query": "SELECT min(timestamp) AS a, max(timestamp) + INTERVAL 1 MILLISECOND AS b FROM logs"}' |
  python3 -c 'import json,sys; r=json.load(sys.stdin)["rows"][0]; print("start=" + r["a"] + "&end=" + r["b"])')
kill -TERM "$server"; wait "$server" || true
echo "files $files; the records span $span"
url="http://127.0.0.1:38080/api/v1/logs/histogram?q=$word&start=now-2h"
[ "${PAGE:-0}" = 1 ] && url="http://127.0.0.1:38080/api/v1/logs?q=$word&limit=100&$span"
for i in "${!bins[@]}"; do
  bin=${bins[$i]}
  extra="--compaction-live-files 0"
  serve valgrind --tool=callgrind --callgrind-out-file="$out/$i.%p" "$bin"
  vg=$server
  total=$(curl -sf "$url" | python3 -c 'import json,sys; b=json.load(sys.stdin); print(b.get("total", len(b.get("logs", []))))')
  callgrind_control -z "$server" >/dev/null
  for _ in $(seq "$n"); do curl -sf "$url" >/dev/null; done
  callgrind_control -d "$server" >/dev/null
  sleep 1
  kill -TERM "$server"; wait "$server" || true
  python3 tests/bench/cgsum.py "$out/$i.$vg.1" "$n" "$bin ($total matches)" request
done
