//! The metrics the simulated fleet reports, the way OpenTelemetry SDKs do: cumulative request
//! counters and duration histograms per route (from the spans it produced), and gauges of memory
//! and connection-pool use.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use rand::Rng;
use rand::rngs::SmallRng;

use super::fleet::Fleet;

/// The semantic-convention bounds of `http.server.request.duration`, in seconds.
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Default)]
struct Route {
    requests: u64,
    errors: u64,
    sum: f64,
    buckets: Vec<u64>,
}

/// Cumulative state of every service's instruments.
pub struct FleetMetrics {
    start: u64,
    routes: BTreeMap<(&'static str, String), Route>,
    memory: BTreeMap<&'static str, f64>,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
    }
}

impl FleetMetrics {
    pub fn new(start_unix_nanos: u64) -> Self {
        Self {
            start: start_unix_nanos,
            routes: BTreeMap::new(),
            memory: BTreeMap::new(),
        }
    }

    /// Counts the entry spans of a batch of traces.
    pub fn observe(&mut self, spans: &[(&'static str, Span)]) {
        for (service, span) in spans {
            if span.kind != SpanKind::Server as i32 && span.kind != SpanKind::Consumer as i32 {
                continue;
            }
            let seconds = (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e9;
            let route = self.routes.entry((service, span.name.clone())).or_default();
            if route.buckets.is_empty() {
                route.buckets = vec![0; BOUNDS.len() + 1];
            }
            route.requests += 1;
            route.errors += u64::from(span.status.as_ref().is_some_and(|s| s.code == 2));
            route.sum += seconds;
            let i = BOUNDS
                .iter()
                .position(|b| seconds <= *b)
                .unwrap_or(BOUNDS.len());
            route.buckets[i] += 1;
        }
    }

    /// Everything reported so far, as of `now`.
    pub fn export(&mut self, now: u64, rng: &mut SmallRng) -> ExportMetricsServiceRequest {
        let mut by_service: BTreeMap<&'static str, Vec<Metric>> = BTreeMap::new();
        let point =
            |attrs: Vec<KeyValue>, value: number_data_point::Value, start: u64| NumberDataPoint {
                attributes: attrs,
                start_time_unix_nano: start,
                time_unix_nano: now,
                value: Some(value),
                ..NumberDataPoint::default()
            };
        let mut requests: BTreeMap<&'static str, Vec<NumberDataPoint>> = BTreeMap::new();
        let mut durations: BTreeMap<&'static str, Vec<HistogramDataPoint>> = BTreeMap::new();
        for ((service, route), r) in &self.routes {
            for (outcome, n) in [("ok", r.requests - r.errors), ("error", r.errors)] {
                requests.entry(service).or_default().push(point(
                    vec![kv("http.route", route), kv("outcome", outcome)],
                    number_data_point::Value::AsInt(n as i64),
                    self.start,
                ));
            }
            durations
                .entry(service)
                .or_default()
                .push(HistogramDataPoint {
                    attributes: vec![kv("http.route", route)],
                    start_time_unix_nano: self.start,
                    time_unix_nano: now,
                    count: r.requests,
                    sum: Some(r.sum),
                    bucket_counts: r.buckets.clone(),
                    explicit_bounds: BOUNDS.to_vec(),
                    ..HistogramDataPoint::default()
                });
        }
        for (service, points) in requests {
            by_service.entry(service).or_default().push(Metric {
                name: "app.requests".into(),
                description: "Requests handled, by route and outcome.".into(),
                unit: "{request}".into(),
                metadata: vec![],
                data: Some(Data::Sum(Sum {
                    data_points: points,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                })),
            });
        }
        for (service, points) in durations {
            by_service.entry(service).or_default().push(Metric {
                name: "http.server.request.duration".into(),
                description: "Duration of requests served.".into(),
                unit: "s".into(),
                metadata: vec![],
                data: Some(Data::Histogram(Histogram {
                    data_points: points,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                })),
            });
        }
        for service in Fleet::service_names() {
            let memory = self.memory.entry(service).or_insert(180e6);
            *memory = (*memory + rng.random_range(-4e6..4.5e6)).clamp(120e6, 600e6);
            by_service.entry(service).or_default().push(Metric {
                name: "process.memory.usage".into(),
                description: "Resident memory of the process.".into(),
                unit: "By".into(),
                metadata: vec![],
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![point(
                        vec![],
                        number_data_point::Value::AsDouble(*memory),
                        0,
                    )],
                })),
            });
        }
        let resource_metrics = by_service
            .into_iter()
            .map(|(service, metrics)| ResourceMetrics {
                resource: Some(Fleet::resource_of(service)),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "lakescope.demo".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        attributes: vec![],
                        dropped_attributes_count: 0,
                    }),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        ExportMetricsServiceRequest { resource_metrics }
    }
}
