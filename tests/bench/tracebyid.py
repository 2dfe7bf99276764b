"""Trace-by-id latency: picks N random root spans' trace ids with one SQL query, then fetches
each trace with GET /api/v1/traces/{id}, one after the other, and prints the percentiles as JSON.
After each lookup it also times a fixed piece of CPU work in this process (SHA-256 of 4 MiB,
~10 ms): its percentiles ("reference_ms") show how much of the lookups' tail this machine's own
jitter explains, measured in the same run.

Usage: python3 tests/bench/tracebyid.py HTTP_PORT N

With IDS=FILE, the ids are read from FILE when it exists (one per line) and written to it when it
does not, so that runs against several builds over one lake look up the same traces.
"""
import hashlib
import json
import os
import statistics
import sys
import time
import urllib.request

port, n = sys.argv[1], int(sys.argv[2])
base = f"http://127.0.0.1:{port}/api/v1/"


def sql(query):
    req = urllib.request.Request(
        base + "sql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=600) as res:
        return json.load(res)["rows"]


total = sql(
    "SELECT count(*) AS n, count(*) FILTER (WHERE parent_span_id IS NULL) AS roots FROM spans"
)[0]
kept = os.environ.get("IDS")
if kept and os.path.exists(kept):
    with open(kept) as f:
        ids = [line.strip() for line in f if line.strip()][:n]
else:
    share = min(1.0, 3.0 * n / max(1, total["roots"]))
    ids = [
        r["id"]
        for r in sql(
            "SELECT encode(trace_id, 'hex') AS id FROM spans "
            f"WHERE parent_span_id IS NULL AND random() < {share} LIMIT {n}"
        )
    ]
    if kept:
        with open(kept, "w") as f:
            f.write("".join(i + "\n" for i in ids))
if not ids:
    sys.exit("tracebyid.py: the lake holds no root spans to look up")
times, sizes, reference = [], [], []
work = bytes(4 << 20)
for trace in ids:
    started = time.perf_counter()
    with urllib.request.urlopen(base + "traces/" + trace) as res:
        body = json.load(res)
    times.append((time.perf_counter() - started) * 1000)
    sizes.append(len(body.get("spans", [])))
    started = time.perf_counter()
    hashlib.sha256(work).digest()
    reference.append((time.perf_counter() - started) * 1000)
times.sort()
reference.sort()


def at(q, values=times):
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


print(
    json.dumps(
        {
            "spans_in_lake": total["n"],
            "lookups": len(times),
            "spans_per_trace_median": statistics.median(sizes) if sizes else None,
            "ms": {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(times[-1], 1)},
            "reference_ms": {
                "p50": at(0.5, reference),
                "p90": at(0.9, reference),
                "p99": at(0.99, reference),
                "max": round(reference[-1], 1),
            },
        }
    )
)
