#!/usr/bin/env bash
# View latency: fills a release server with the demo fleet's traffic from `lakescope loadgen`
# (FILL, default 30s: a few million spans), waits for the last flush, then asks every view
# endpoint RUNS times (default 5) over the last hour and prints the median wall time of each, in
# milliseconds, as JSON. The first run of each is also reported (`first_ms`).
#
# Usage: tests/bench/views.sh [FILL] [RUNS]   (build first: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/../.."
fill="${1:-30s}"
runs="${2:-5}"
bin="${CARGO_TARGET_DIR:-target}/release/lakescope"
data="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

"$bin" serve --data-dir "$data" --otlp-grpc 127.0.0.1:34317 --otlp-http 127.0.0.1:34318 \
  --http 127.0.0.1:38080 --flush-interval 2s 2>"$data.log" &
server=$!
sleep 1
"$bin" loadgen --otlp-grpc 127.0.0.1:34317 --duration "$fill" --connections 4 >"$data.load"
sleep 4
spans=$(curl -s -XPOST 127.0.0.1:38080/api/v1/sql -H 'content-type: application/json' \
  -d '{"query": "SELECT count(*) AS n FROM spans"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["n"])')
trace=$(curl -s '127.0.0.1:38080/api/v1/traces?start=now-1h&limit=1&service=checkout' | python3 -c 'import json,sys; print(json.load(sys.stdin)["traces"][0]["trace_id"])')
python3 - "$runs" "$spans" "$trace" <<'PY'
import json, statistics, sys, time, urllib.request
runs, spans, trace = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
base = "http://127.0.0.1:38080/api/v1/"
endpoints = {
    "services": "services?start=now-1h",
    "service series": "services/frontend/series?start=now-1h",
    "operations": "services/frontend/operations?start=now-1h",
    "latency histogram+heatmap": "latency?service=frontend&start=now-1h",
    "slow-region compare": "latency/compare?service=frontend&min_ms=50&start=now-1h",
    "errors": "errors?start=now-1h",
    "dependencies": "dependencies?start=now-1h",
    "trace search (attribute)": "traces?start=now-1h&attribute=http.route=/checkout&limit=20",
    "trace by id": f"traces/{trace}",
}
out = {"spans": spans, "runs": runs, "ms": {}}
for name, path in endpoints.items():
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        with urllib.request.urlopen(base + path) as res:
            res.read()
        times.append((time.perf_counter() - t) * 1000)
    out["ms"][name] = {"first_ms": round(times[0], 1), "median_ms": round(statistics.median(times), 1)}
print(json.dumps(out, indent=1))
PY
