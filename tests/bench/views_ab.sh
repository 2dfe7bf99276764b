#!/usr/bin/env bash
# Same-run A/B of the view endpoints: two builds, each over its own copy of a lake (e.g. the same
# spans before and after a lake-format change), alternating ROUNDS times. Each round restarts the
# server on the lake (compaction off, so the files stay as they are), asks every view over the last
# RANGE once to warm up and 5 times more, and prints one JSON line of medians in ms per build
# (with the HTTP statuses of answers that were errors, as VIEW_refused). The series and the latency
# view are asked both as given and on the dashboard's 15-second-aligned steps (from the rollups).
# The lakes are not modified except by the server's own start (a format upgrade, if any: copy
# the lake first).
#
# Usage: tests/bench/views_ab.sh BIN_A LAKE_A BIN_B LAKE_B [ROUNDS] [RANGE]   (RANGE: e.g. now-4h)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 4 ] || { sed -n 2,10p "$0"; exit 2; }
rounds="${5:-3}"
range="${6:-now-4h}"
server=""
trap 'kill "$server" 2>/dev/null || true' EXIT

views() { # BIN LAKE
  "$1" serve --data-dir "$2" --otlp-grpc 127.0.0.1:34317 --otlp-http 127.0.0.1:34318 \
    --http 127.0.0.1:38080 --compaction-delay 1000d --compaction-live-files 0 \
    >/dev/null 2>>"$2.log" &
  server=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:38080/api/v1/services >/dev/null && break; sleep 0.2; done
  python3 - "$range" <<'PY'
import datetime, json, math, re, statistics, sys, time, urllib.error, urllib.request
r = sys.argv[1]
base = "http://127.0.0.1:38080/api/v1/"
# The dashboard's steps (ui/assets/app.js, seriesParams): the start on a 15-second boundary and
# the smallest step of whole 15 seconds giving at most 120 points. `series` and `latency` are
# asked as given instead (not on those steps: aggregated from the spans).
m = re.fullmatch(r"now-(\d+)([mh])", r)
span = int(m.group(1)) * (60 if m.group(2) == "m" else 3600) if m else 3600
now = time.time()
step = next(s for s in [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
            if math.ceil(span / s) <= 120)
iso = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat().replace("+", "%2B")
steps = f"start={iso((now - span) // 15 * 15)}&end={iso(now)}&step={step}s"
endpoints = {
    "services": f"services?start={r}",
    "series": f"services/frontend/series?start={r}",
    "series on steps": f"services/frontend/series?{steps}",
    "operations": f"services/frontend/operations?start={r}",
    "latency": f"latency?service=frontend&start={r}",
    "latency on steps": f"latency?service=frontend&{steps}",
    "compare": f"latency/compare?service=frontend&min_ms=50&start={r}",
    "errors": f"errors?start={r}",
    "dependencies": f"dependencies?start={r}",
    "search": f"traces?start={r}&attribute=http.route=/checkout&limit=20",
}
out = {}
for name, path in endpoints.items():
    times, refused = [], []
    for _ in range(6):
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(base + path) as res:
                res.read()
        except urllib.error.HTTPError as e:
            # Recorded, not fatal: e.g. 503 while a view's summaries are being made.
            refused.append(e.code)
        times.append((time.perf_counter() - t) * 1000)
    out[name] = round(statistics.median(times[1:]))
    if refused:
        out[name + "_refused"] = refused
print(json.dumps(out))
PY
  kill -TERM "$server"
  wait "$server" || true
}

for round in $(seq "$rounds"); do
  echo "{\"round\": $round, \"build\": \"A\", \"ms\": $(views "$1" "$2")}"
  echo "{\"round\": $round, \"build\": \"B\", \"ms\": $(views "$3" "$4")}"
done
