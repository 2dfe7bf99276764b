"""Records metrics with the OpenTelemetry Python SDK (from PyPI) and exports them once to a
Lakescope server over OTLP/gRPC or OTLP/HTTP.

Usage: OTEL_EXPORTER_OTLP_ENDPOINT=... OTEL_EXPORTER_OTLP_PROTOCOL=grpc|http/protobuf send_metrics_with_sdk.py SERVICE

A counter `jobs.done` (7 with queue=fast, 3 with queue=slow), a histogram `job.duration` of
1, 2, 3, 40 and 500 ms, an exponential histogram `payload.size` of 100, 200, 300, 400 and
5000 bytes, and a gauge `workers.busy` last set to 4.
"""

import os
import sys

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource


def exporter():
    """The exporter configured only by OTEL_EXPORTER_OTLP_ENDPOINT and
    OTEL_EXPORTER_OTLP_PROTOCOL, as a service would be."""
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


def main() -> None:
    service = sys.argv[1]
    # A long interval: only the explicit flush below exports.
    reader = PeriodicExportingMetricReader(exporter(), export_interval_millis=3_600_000)
    # payload.size uses the SDK's base-2 exponential histogram.
    views = [View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation())]
    provider = MeterProvider(resource=Resource.create({"service.name": service}), metric_readers=[reader], views=views)
    meter = provider.get_meter("lakescope-e2e")
    done = meter.create_counter("jobs.done", unit="{job}")
    done.add(7, {"queue": "fast"})
    done.add(3, {"queue": "slow"})
    duration = meter.create_histogram("job.duration", unit="ms")
    for v in (1, 2, 3, 40, 500):
        duration.record(v)
    size = meter.create_histogram("payload.size", unit="By")
    for v in (100, 200, 300, 400, 5000):
        size.record(v)
    busy = meter.create_gauge("workers.busy")
    busy.set(2)
    busy.set(4)
    if not provider.force_flush(30_000):
        sys.exit("force_flush timed out")
    provider.shutdown()
    print("ok")


if __name__ == "__main__":
    main()
