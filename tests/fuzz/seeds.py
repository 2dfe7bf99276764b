"""Writes the starting corpus of the fuzz targets (tests/fuzz/corpus/<target>/).

Run with the test virtualenv's Python (it has the OpenTelemetry protobuf classes):
    ~/.cache/lakescope/venv/bin/python tests/fuzz/seeds.py
The files are committed; libFuzzer adds what it finds next to them.
"""

import base64
import gzip
import hashlib
import json
import pathlib

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

HERE = pathlib.Path(__file__).parent
NOW = 1_764_000_000_000_000_000


def kv(key, value):
    return KeyValue(key=key, value=value)


def s(text):
    return AnyValue(string_value=text)


def attributes():
    nested = AnyValue()
    nested.kvlist_value.values.append(kv("inner", s("x")))
    array = AnyValue()
    array.array_value.values.extend([AnyValue(int_value=1), AnyValue(double_value=2.5)])
    return [
        kv("http.request.method", s("GET")),
        kv("http.response.status_code", AnyValue(int_value=503)),
        kv("retry", AnyValue(bool_value=True)),
        kv("ratio", AnyValue(double_value=0.25)),
        kv("blob", AnyValue(bytes_value=b"\x00\x01\xff")),
        kv("list", array),
        kv("map", nested),
    ]


def resource(target, service):
    target.attributes.extend([kv("service.name", s(service)), kv("host.name", s("node-1"))])


def traces(trace_id=bytes(range(16)), span_id=bytes(range(8)), start=NOW, end=NOW + 5_000_000):
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    resource(rs.resource, "checkout")
    ss = rs.scope_spans.add()
    ss.scope.name = "seed"
    span = ss.spans.add()
    span.trace_id = trace_id
    span.span_id = span_id
    span.parent_span_id = bytes(8)
    span.name = "POST /checkout"
    span.kind = 2
    span.start_time_unix_nano = start
    span.end_time_unix_nano = end
    span.attributes.extend(attributes())
    span.status.code = 2
    span.status.message = "upstream timeout after 30 s"
    event = span.events.add()
    event.name = "exception"
    event.time_unix_nano = start + 1
    event.attributes.extend(
        [
            kv("exception.type", s("TimeoutError")),
            kv("exception.message", s("deadline exceeded")),
            kv("exception.stacktrace", s("at a.b(c.py:1)\nat d.e(f.py:2)")),
        ]
    )
    link = span.links.add()
    link.trace_id = bytes(16)
    link.span_id = bytes(8)
    return req


def logs(time=NOW):
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    resource(rl.resource, "checkout")
    record = rl.scope_logs.add().log_records.add()
    record.time_unix_nano = time
    record.severity_number = 17
    record.severity_text = "ERROR"
    record.body.string_value = "payment 4242 declined for order 17"
    record.attributes.extend(attributes())
    record.trace_id = bytes(range(16))
    record.span_id = bytes(range(8))
    return req


def metrics():
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    resource(rm.resource, "checkout")
    sm = rm.scope_metrics.add()
    gauge = sm.metrics.add(name="queue.depth", unit="1")
    p = gauge.gauge.data_points.add(time_unix_nano=NOW, as_int=7)
    p.attributes.extend([kv("queue", s("orders"))])
    total = sm.metrics.add(name="http.server.requests", unit="1")
    total.sum.aggregation_temporality = 2
    total.sum.is_monotonic = True
    total.sum.data_points.add(start_time_unix_nano=NOW - 10, time_unix_nano=NOW, as_double=12.5)
    hist = sm.metrics.add(name="http.server.request.duration", unit="s")
    hist.histogram.aggregation_temporality = 2
    hist.histogram.data_points.add(
        time_unix_nano=NOW, count=3, sum=0.6, bucket_counts=[1, 1, 1], explicit_bounds=[0.1, 0.5]
    )
    exp = sm.metrics.add(name="rpc.duration", unit="ms")
    exp.exponential_histogram.aggregation_temporality = 1
    ep = exp.exponential_histogram.data_points.add(time_unix_nano=NOW, count=4, sum=10, scale=2)
    ep.positive.offset = -1
    ep.positive.bucket_counts.extend([1, 2])
    ep.zero_count = 1
    summary = sm.metrics.add(name="gc.pause", unit="s")
    sp = summary.summary.data_points.add(time_unix_nano=NOW, count=2, sum=0.3)
    sp.quantile_values.add(quantile=0.5, value=0.1)
    return req


def otlp_json(message):
    """OTLP/JSON: lowerCamelCase names, enums as numbers, ids as hex (not base64)."""
    data = MessageToDict(message, use_integers_for_enums=True)

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(item, str):
                    value[key] = base64.b64decode(item).hex()
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(data)
    return json.dumps(data).encode()


def write(target, data):
    out = HERE / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main():
    # Selector byte: bits 0-1 signal (0 traces, 1 logs, 2 metrics), bit 2 JSON, bits 3-4
    # content encoding (0 identity, 1 gzip).
    deep = ExportTraceServiceRequest()
    deep.CopyFrom(traces())
    value = deep.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="deep").value
    for _ in range(60):
        value = value.array_value.values.add()
    value.string_value = "bottom"
    bad_utf8 = traces().SerializeToString().replace(b"POST /checkout", b"POST /\xff\xfeout!")
    messages = [
        (0, traces()),
        (0, traces(trace_id=b"\x01" * 5, span_id=b"")),  # ids of the wrong length
        (0, traces(start=0, end=0)),  # timestamps at zero
        (0, traces(start=2**64 - 2, end=2**64 - 1)),  # the far future
        (0, deep),
        (1, logs()),
        (1, logs(time=0)),
        (2, metrics()),
    ]
    for signal, message in messages:
        binary = message.SerializeToString()
        write("otlp_decode", bytes([signal]) + binary)
        write("otlp_decode", bytes([signal | 4]) + otlp_json(message))
        write("otlp_decode", bytes([signal | 8]) + gzip.compress(binary))
    write("otlp_decode", bytes([0]) + bad_utf8)
    write("otlp_decode", bytes([8]) + gzip.compress(bytes(4 << 20)))  # a gzip bomb

    day = "start=now-24h&end=now"
    requests = [
        "GET /api/v1/services",
        f"GET /api/v1/services?{day}",
        "GET /api/v1/services/checkout/series?start=now-1h&end=now&step=60s",
        "GET /api/v1/services/frontend/series?operation=POST%20/buy&step=1m",
        "GET /api/v1/services/checkout/operations?start=now-30m",
        "GET /api/v1/latency?service=checkout&operation=POST%20/checkout",
        "GET /api/v1/latency/compare?service=frontend&min_ms=45&max_ms=1000",
        "GET /api/v1/errors?service=checkout",
        "GET /api/v1/errors",
        "GET /api/v1/dependencies?start=2026-01-01T00:00:00Z&end=now",
        "GET /api/v1/logs?q=declined&min_severity=ERROR&limit=10&service=checkout",
        "GET /api/v1/logs/histogram?q=order&step=5m",
        "GET /api/v1/metrics",
        "GET /api/v1/metrics/query?name=queue.depth&step=1m&agg=max&group_by=queue",
        "GET /api/v1/traces?service=checkout&attribute=db.system%3Dpostgresql&operation=SELECT%20orders",
        "GET /api/v1/traces?min_duration_ms=10&max_duration_ms=100&status=error&limit=5&sort=duration",
        "GET /api/v1/traces/00000000000000010000000000000000",
        "GET /api/v1/traces/zz",
        "GET /api/v1/dashboards",
        "GET /api/v1/dashboards/overview/panels/0?start=now-1h",
        'POST /api/v1/sql\n{"query":"SELECT service_name, count(*) FROM spans GROUP BY 1"}',
        'POST /api/v1/sql\n{"query":"SELECT body FROM logs WHERE body LIKE \'%order%\' LIMIT 3"}',
        'POST /api/v1/sql\n{"query":"SELECT 1/0"}',
        'POST /api/v1/sql\n{"query":"DROP TABLE spans"}',
        'POST /api/v1/sql\n{"query":"SELECT * FROM metrics ORDER BY time DESC LIMIT 1"}',
    ]
    for request in requests:
        write("query_api", request.encode())


if __name__ == "__main__":
    main()
