"""Sends log records with the OpenTelemetry Python SDK (from PyPI), through the standard `logging`
module, to a Lakescope server over OTLP/gRPC or OTLP/HTTP, and prints the trace id the error
records were written under, as JSON.

Usage: OTEL_EXPORTER_OTLP_ENDPOINT=... OTEL_EXPORTER_OTLP_PROTOCOL=grpc|http/protobuf send_logs_with_sdk.py SERVICE

Writes 10 INFO, 3 WARNING and 2 ERROR records; the errors inside a span.
"""

import json
import os
import logging
import sys

from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


def exporter():
    """The exporter configured only by OTEL_EXPORTER_OTLP_ENDPOINT and
    OTEL_EXPORTER_OTLP_PROTOCOL, as a service would be."""
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter()


def main() -> None:
    service = sys.argv[1]
    resource = Resource.create({"service.name": service})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter()))
    set_logger_provider(provider)
    trace.set_tracer_provider(TracerProvider(resource=resource))
    log = logging.getLogger(f"lakescope.e2e.{service}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
    for i in range(10):
        log.info("order %d accepted", i)
    for i in range(3):
        log.warning("inventory low for item %d", i)
    with trace.get_tracer("e2e").start_as_current_span("charge") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        log.error("payment declined for order %d", 7)
        log.error("payment declined for order %d", 8)
    if not provider.force_flush(30_000):
        sys.exit("force_flush timed out")
    provider.shutdown()
    print(json.dumps(trace_id))


if __name__ == "__main__":
    main()
