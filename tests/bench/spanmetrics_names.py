"""PromQL over span metrics with many span names: sends N requests of 100 SERVER spans whose
names all differ (as tests/disk_full.rs sends them) to a running server's OTLP/HTTP port, then
asks the built-in latency rule's expression as an instant query twice and prints the seconds
each took and the start of the answer (over 5,000,000 samples it is refused at once).

Usage: python3 tests/bench/spanmetrics_names.py OTLP_HTTP_ADDR API_ADDR N
(the test virtualenv's python: it needs the opentelemetry-proto package)
"""
import sys
import time
import urllib.parse
import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
otlp, api, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for seq in range(1, n + 1):
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    a = rs.resource.attributes.add(); a.key = "service.name"; a.value.string_value = "billing"
    ss = rs.scope_spans.add()
    start = time.time_ns() - 1_000_000_000
    for i in range(100):
        s = ss.spans.add()
        s.trace_id = seq.to_bytes(4, "big") + b"\3" * 12
        s.span_id = seq.to_bytes(4, "big") + i.to_bytes(4, "big")
        s.name = f"op {seq} {i} " + "x" * (i % 13)
        s.kind = 2
        s.start_time_unix_nano = start + i
        s.end_time_unix_nano = start + i + 2_000_000
    r = urllib.request.Request(f"http://{otlp}/v1/traces", data=req.SerializeToString(),
                               headers={"content-type": "application/x-protobuf"})
    urllib.request.urlopen(r).read()
q = 'histogram_quantile(0.99, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{span_kind="SPAN_KIND_SERVER"}[5m]))) > 1'
for _ in range(2):
    t = time.time()
    try:
        body = urllib.request.urlopen(f"http://{api}/api/v1/query?" + urllib.parse.urlencode({"query": q})).read()
    except urllib.error.HTTPError as e:
        body = e.read()
    print(f"{time.time() - t:.2f} s", body[:200])
