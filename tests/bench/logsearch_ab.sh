#!/usr/bin/env bash
# Log search, builds compared over one lake: the first BIN fills a server with FILL of
# `lakescope loadgen --signal logs` and merges it as a running server does; then, ROUNDS times,
# each BIN in turn serves that lake (no rules, no compaction) and answers
# `/api/v1/logs/histogram?q=declined`, `?q=zebra` and the first page `/api/v1/logs?q=declined`
# 7 times each. Prints per build and round the median ms and the server's CPU-s per request.
#
# Usage: tests/bench/logsearch_ab.sh FILL ROUNDS BIN...   e.g. 20s 3 ./before ./after
set -euo pipefail
fill=$1; rounds=$2; shift 2
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh
data=$(mktemp -d); norules=$(mktemp -d); server=""
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data" "$data.log" "$norules"' EXIT
serve() {
  "$bin" serve --data-dir "$data" --otlp-grpc 127.0.0.1:34317 --otlp-http 127.0.0.1:34318 \
    --http 127.0.0.1:38080 --compaction-delay 1000d --rules-dir "$norules" "$@" >/dev/null 2>>"$data.log" &
  server=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:38080/metrics >/dev/null && break; sleep 0.1; done
}
bin=$1
serve --compaction-live-files 0
"$bin" loadgen --otlp-grpc 127.0.0.1:34317 --signal logs --duration "$fill" --connections 4 >/dev/null
kill -TERM "$server"; wait "$server" || true
serve --compaction-live-files 10 --compaction-interval 1s
wait_merges "$data.log" "$data/logs"
kill -TERM "$server"; wait "$server" || true
echo "files $(find "$data/logs" -name '*.parquet' | wc -l)"
for r in $(seq "$rounds"); do
  for bin in "$@"; do
    serve --compaction-live-files 0
    python3 - "$server" "$bin" "$r" <<'PY'
import json, os, statistics, sys, time, urllib.request
pid = sys.argv[1]
hz = os.sysconf("SC_CLK_TCK")
def ticks():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
base = "http://127.0.0.1:38080/api/v1/"
out = []
for name, path in [("declined", "logs/histogram?q=declined&start=now-2h"),
                   ("zebra", "logs/histogram?q=zebra&start=now-2h"),
                   ("page", "logs?q=declined&start=now-2h&limit=100")]:
    body = json.loads(urllib.request.urlopen(base + path).read())
    times, before = [], ticks()
    for _ in range(7):
        t = time.perf_counter()
        body = json.loads(urllib.request.urlopen(base + path).read())
        times.append(time.perf_counter() - t)
    cpu = (ticks() - before) / hz / 7
    n = body.get("total", len(body.get("records", body.get("logs", []))) if isinstance(body, dict) else 0)
    out.append(f"{name} {statistics.median(times)*1000:.1f} ms {cpu:.3f} cpu-s n={n}")
print(f"round {sys.argv[3]} {os.path.basename(sys.argv[2])}: " + "; ".join(out))
PY
    kill -TERM "$server"; wait "$server" || true
  done
done
