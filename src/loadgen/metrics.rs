//! Metric traffic for the load generator: what a fleet of instrumented pods reports. Every
//! series is one (service, pod, instrument, route) combination with cumulative state, so
//! counters and histograms only grow between exports as a real SDK's do; a request carries the
//! next `points` series of the rotation, grouped by resource and instrument as an SDK batches
//! them. A histogram data point counts as one point, as in OTLP.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use rand::Rng;
use rand::rngs::SmallRng;

use lakescope::demo::fleet::Fleet;

/// The semantic-convention bounds of `http.server.request.duration`, in seconds.
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const ROUTES: [&str; 8] = [
    "/",
    "/cart",
    "/checkout",
    "/product/{id}",
    "/search",
    "/login",
    "/orders/{id}",
    "/recommendations",
];
const PODS: usize = 8;

#[derive(Clone, Copy)]
enum Instrument {
    Requests,
    Duration,
    Connections,
}

struct Series {
    service: &'static str,
    pod: usize,
    route: &'static str,
    instrument: Instrument,
    count: u64,
    sum: f64,
    buckets: Vec<u64>,
}

/// The rotation of every series and its cumulative state.
pub struct MetricLoad {
    start: u64,
    series: Vec<Series>,
    next: usize,
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

fn resource(service: &'static str, pod: usize) -> Resource {
    let mut resource = Fleet::resource_of(service);
    for attribute in &mut resource.attributes {
        if attribute.key == "service.instance.id" {
            *attribute = kv("service.instance.id", &format!("{service}-7d9f8-{pod}"));
        }
    }
    resource
}

impl MetricLoad {
    pub fn new(start_unix_nanos: u64) -> Self {
        let mut series = Vec::new();
        for service in Fleet::service_names() {
            for pod in 0..PODS {
                for route in ROUTES {
                    for instrument in [
                        Instrument::Requests,
                        Instrument::Duration,
                        Instrument::Connections,
                    ] {
                        series.push(Series {
                            service,
                            pod,
                            route,
                            instrument,
                            count: 0,
                            sum: 0.0,
                            buckets: vec![0; BOUNDS.len() + 1],
                        });
                    }
                }
            }
        }
        Self {
            start: start_unix_nanos,
            series,
            next: 0,
        }
    }

    /// The next `points` series of the rotation, each advanced by a few requests, as of `now`.
    pub fn request(
        &mut self,
        points: usize,
        now: u64,
        rng: &mut SmallRng,
    ) -> ExportMetricsServiceRequest {
        type Key = (&'static str, usize, u8);
        let mut metrics: BTreeMap<Key, Metric> = BTreeMap::new();
        let len = self.series.len();
        for _ in 0..points {
            let s = &mut self.series[self.next];
            self.next = (self.next + 1) % len;
            let attributes = vec![kv("http.route", s.route), kv("http.request.method", "GET")];
            match s.instrument {
                Instrument::Requests => {
                    s.count += rng.random_range(1..40);
                    let metric = metrics
                        .entry((s.service, s.pod, 0))
                        .or_insert_with(sum_metric);
                    if let Some(Data::Sum(sum)) = &mut metric.data {
                        sum.data_points.push(NumberDataPoint {
                            attributes,
                            start_time_unix_nano: self.start,
                            time_unix_nano: now,
                            value: Some(number_data_point::Value::AsInt(s.count as i64)),
                            ..NumberDataPoint::default()
                        });
                    }
                }
                Instrument::Duration => {
                    for _ in 0..rng.random_range(1..20) {
                        let seconds = rng.random::<f64>().powi(4) * 2.0 + 0.002;
                        s.count += 1;
                        s.sum += seconds;
                        let i = BOUNDS
                            .iter()
                            .position(|b| seconds <= *b)
                            .unwrap_or(BOUNDS.len());
                        s.buckets[i] += 1;
                    }
                    let metric = metrics
                        .entry((s.service, s.pod, 1))
                        .or_insert_with(histogram_metric);
                    if let Some(Data::Histogram(histogram)) = &mut metric.data {
                        histogram.data_points.push(HistogramDataPoint {
                            attributes,
                            start_time_unix_nano: self.start,
                            time_unix_nano: now,
                            count: s.count,
                            sum: Some(s.sum),
                            bucket_counts: s.buckets.clone(),
                            explicit_bounds: BOUNDS.to_vec(),
                            ..HistogramDataPoint::default()
                        });
                    }
                }
                Instrument::Connections => {
                    let metric = metrics
                        .entry((s.service, s.pod, 2))
                        .or_insert_with(gauge_metric);
                    if let Some(Data::Gauge(gauge)) = &mut metric.data {
                        gauge.data_points.push(NumberDataPoint {
                            attributes,
                            time_unix_nano: now,
                            value: Some(number_data_point::Value::AsDouble(
                                rng.random_range(0.0..64.0_f64).floor(),
                            )),
                            ..NumberDataPoint::default()
                        });
                    }
                }
            }
        }
        let mut by_resource: BTreeMap<(&'static str, usize), Vec<Metric>> = BTreeMap::new();
        for ((service, pod, _), metric) in metrics {
            by_resource.entry((service, pod)).or_default().push(metric);
        }
        let resource_metrics = by_resource
            .into_iter()
            .map(|((service, pod), metrics)| ResourceMetrics {
                resource: Some(resource(service, pod)),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "lakescope.loadgen".into(),
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

/// How many data points a request holds.
pub fn points(request: &ExportMetricsServiceRequest) -> u64 {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            _ => 0,
        } as u64)
        .sum()
}

fn sum_metric() -> Metric {
    Metric {
        name: "http.server.requests".into(),
        description: "Requests handled.".into(),
        unit: "{request}".into(),
        metadata: vec![],
        data: Some(Data::Sum(Sum {
            data_points: vec![],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
    }
}

fn histogram_metric() -> Metric {
    Metric {
        name: "http.server.request.duration".into(),
        description: "Duration of requests served.".into(),
        unit: "s".into(),
        metadata: vec![],
        data: Some(Data::Histogram(Histogram {
            data_points: vec![],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
    }
}

fn gauge_metric() -> Metric {
    Metric {
        name: "http.server.active_connections".into(),
        description: "Open connections.".into(),
        unit: "{connection}".into(),
        metadata: vec![],
        data: Some(Data::Gauge(Gauge {
            data_points: vec![],
        })),
    }
}
