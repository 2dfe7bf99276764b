"""Sends spans with the OpenTelemetry Python SDK (from PyPI) to a Lakescope server, over OTLP/gRPC
or OTLP/HTTP, and prints the trace ids it created as JSON.

Usage: OTEL_EXPORTER_OTLP_ENDPOINT=... OTEL_EXPORTER_OTLP_PROTOCOL=grpc|http/protobuf send_with_sdk.py SERVICE COUNT

Each trace is a SERVER span (duration 10 + i ms, every fifth one failing) with a CLIENT child.
"""

import json
import os
import sys
import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context


def exporter():
    """The exporter configured only by OTEL_EXPORTER_OTLP_ENDPOINT and
    OTEL_EXPORTER_OTLP_PROTOCOL, as a service would be."""
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def main() -> None:
    service, count = sys.argv[1], int(sys.argv[2])
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter()))
    tracer = provider.get_tracer("lakescope-e2e")
    base = time.time_ns() - 60 * 10**9
    trace_ids = []
    for i in range(count):
        start = base + i * 10**6
        root = tracer.start_span(
            "GET /items/{id}",
            kind=SpanKind.SERVER,
            start_time=start,
            attributes={"http.request.method": "GET", "http.route": "/items/{id}", "http.response.status_code": 200},
        )
        child = tracer.start_span(
            "SELECT items", context=set_span_in_context(root), kind=SpanKind.CLIENT, start_time=start + 10**5,
            attributes={"db.system.name": "postgresql", "server.address": "items-db"},
        )
        child.end(end_time=start + 2 * 10**6)
        if i % 5 == 0:
            root.set_status(Status(StatusCode.ERROR, "boom"))
        root.end(end_time=start + (10 + i) * 10**6)
        trace_ids.append(format(root.get_span_context().trace_id, "032x"))
    if not provider.force_flush(30_000):
        sys.exit("force_flush timed out")
    provider.shutdown()
    print(json.dumps(trace_ids))


if __name__ == "__main__":
    main()
