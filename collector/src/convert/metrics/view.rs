//! A metrics export request as the metrics converter reads it: every string, id and attribute
//! borrowed, from a decoded message ([`MetricsView::from_request`]) or straight from the
//! request's protobuf bytes ([`super::protobuf`]). Lists are ranges into per-request arrays.

use std::ops::Range;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Exemplar, exemplar, number_data_point};

use crate::convert::attributes::Attr;
use crate::convert::view::{Origins, push_attributes};

/// Which of OTLP's five kinds of data a metric holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricView<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub unit: &'a str,
    /// Into [`MetricRecords::attributes`].
    pub metadata: Range<usize>,
    /// `None` for a metric without data.
    pub kind: Option<Kind>,
    /// Of sums and histograms; 0 (unspecified) for the others.
    pub temporality: i32,
    /// Of sums.
    pub monotonic: bool,
    /// Into [`MetricRecords::points`].
    pub points: Range<usize>,
}

impl Default for MetricView<'_> {
    fn default() -> Self {
        Self {
            name: "",
            description: "",
            unit: "",
            metadata: 0..0,
            kind: None,
            temporality: 0,
            monotonic: false,
            points: 0..0,
        }
    }
}

/// A number point's or an exemplar's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Double(f64),
    Int(i64),
}

/// An exponential histogram's positive or negative buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketsView {
    pub offset: i32,
    /// Into [`MetricRecords::counts`].
    pub counts: Range<usize>,
}

/// A data point of any kind: the fields its metric's kind has are set, the others left at
/// their defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointView {
    pub time_unix_nano: u64,
    pub start_time_unix_nano: u64,
    /// Into [`MetricRecords::attributes`].
    pub attributes: Range<usize>,
    pub flags: u32,
    /// Into [`MetricRecords::exemplars`].
    pub exemplars: Range<usize>,
    /// Gauges and sums.
    pub value: Option<Number>,
    /// Histograms, exponential histograms and summaries.
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Histograms: into [`MetricRecords::counts`] and [`MetricRecords::bounds`].
    pub bucket_counts: Range<usize>,
    pub explicit_bounds: Range<usize>,
    /// Exponential histograms.
    pub scale: i32,
    pub zero_count: u64,
    pub zero_threshold: f64,
    pub positive: Option<BucketsView>,
    pub negative: Option<BucketsView>,
    /// Summaries: into [`MetricRecords::quantiles`], (quantile, value) pairs.
    pub quantiles: Range<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarView<'a> {
    pub time_unix_nano: u64,
    pub value: Option<Number>,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    /// Into [`MetricRecords::attributes`].
    pub attributes: Range<usize>,
}

impl Default for ExemplarView<'_> {
    fn default() -> Self {
        Self {
            time_unix_nano: 0,
            value: None,
            trace_id: &[],
            span_id: &[],
            attributes: 0..0,
        }
    }
}

/// A request's metrics, their points and everything the points list.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MetricRecords<'a> {
    pub metrics: Vec<MetricView<'a>>,
    pub points: Vec<PointView>,
    /// Metadata, point and exemplar attributes.
    pub attributes: Vec<Attr<'a>>,
    pub exemplars: Vec<ExemplarView<'a>>,
    /// Bucket counts of histograms and exponential histograms.
    pub counts: Vec<u64>,
    pub bounds: Vec<f64>,
    pub quantiles: Vec<(f64, f64)>,
}

/// A whole request: its blocks (whose records index [`MetricRecords::metrics`]) and its metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MetricsView<'a> {
    pub origins: Origins<'a>,
    pub records: MetricRecords<'a>,
}

fn number_of(value: Option<&number_data_point::Value>) -> Option<Number> {
    match value? {
        number_data_point::Value::AsDouble(d) => Some(Number::Double(*d)),
        number_data_point::Value::AsInt(i) => Some(Number::Int(*i)),
    }
}

impl<'a> MetricRecords<'a> {
    fn push_exemplars(&mut self, exemplars: &'a [Exemplar]) -> Range<usize> {
        let start = self.exemplars.len();
        for e in exemplars {
            let attributes = push_attributes(&mut self.attributes, &e.filtered_attributes);
            self.exemplars.push(ExemplarView {
                time_unix_nano: e.time_unix_nano,
                value: e.value.as_ref().map(|v| match v {
                    exemplar::Value::AsDouble(d) => Number::Double(*d),
                    exemplar::Value::AsInt(i) => Number::Int(*i),
                }),
                trace_id: &e.trace_id,
                span_id: &e.span_id,
                attributes,
            });
        }
        start..self.exemplars.len()
    }

    fn push_counts(&mut self, counts: &[u64]) -> Range<usize> {
        let start = self.counts.len();
        self.counts.extend_from_slice(counts);
        start..self.counts.len()
    }

    fn push_buckets(&mut self, buckets: Option<&Buckets>) -> Option<BucketsView> {
        buckets.map(|b| BucketsView {
            offset: b.offset,
            counts: self.push_counts(&b.bucket_counts),
        })
    }
}

impl<'a> MetricsView<'a> {
    /// The view of a decoded request (OTLP/JSON, or protobuf the direct reader left to prost).
    pub fn from_request(request: &'a ExportMetricsServiceRequest) -> Self {
        let mut origins = Origins::default();
        let mut v = MetricRecords::default();
        for rm in &request.resource_metrics {
            let resource = origins.push_resource(rm.resource.as_ref(), &rm.schema_url);
            for sm in &rm.scope_metrics {
                let first = v.metrics.len();
                for m in &sm.metrics {
                    let metadata = push_attributes(&mut v.attributes, &m.metadata);
                    let start = v.points.len();
                    let (kind, temporality, monotonic) = match &m.data {
                        None => (None, 0, false),
                        Some(Data::Gauge(g)) => {
                            for p in &g.data_points {
                                let point = number_point(&mut v, p);
                                v.points.push(point);
                            }
                            (Some(Kind::Gauge), 0, false)
                        }
                        Some(Data::Sum(s)) => {
                            for p in &s.data_points {
                                let point = number_point(&mut v, p);
                                v.points.push(point);
                            }
                            (Some(Kind::Sum), s.aggregation_temporality, s.is_monotonic)
                        }
                        Some(Data::Histogram(h)) => {
                            for p in &h.data_points {
                                let attributes = push_attributes(&mut v.attributes, &p.attributes);
                                let exemplars = v.push_exemplars(&p.exemplars);
                                let bucket_counts = v.push_counts(&p.bucket_counts);
                                let b = v.bounds.len();
                                v.bounds.extend_from_slice(&p.explicit_bounds);
                                v.points.push(PointView {
                                    time_unix_nano: p.time_unix_nano,
                                    start_time_unix_nano: p.start_time_unix_nano,
                                    attributes,
                                    flags: p.flags,
                                    exemplars,
                                    count: p.count,
                                    sum: p.sum,
                                    min: p.min,
                                    max: p.max,
                                    bucket_counts,
                                    explicit_bounds: b..v.bounds.len(),
                                    ..PointView::default()
                                });
                            }
                            (Some(Kind::Histogram), h.aggregation_temporality, false)
                        }
                        Some(Data::ExponentialHistogram(h)) => {
                            for p in &h.data_points {
                                let attributes = push_attributes(&mut v.attributes, &p.attributes);
                                let exemplars = v.push_exemplars(&p.exemplars);
                                let positive = v.push_buckets(p.positive.as_ref());
                                let negative = v.push_buckets(p.negative.as_ref());
                                v.points.push(PointView {
                                    time_unix_nano: p.time_unix_nano,
                                    start_time_unix_nano: p.start_time_unix_nano,
                                    attributes,
                                    flags: p.flags,
                                    exemplars,
                                    count: p.count,
                                    sum: p.sum,
                                    min: p.min,
                                    max: p.max,
                                    scale: p.scale,
                                    zero_count: p.zero_count,
                                    zero_threshold: p.zero_threshold,
                                    positive,
                                    negative,
                                    ..PointView::default()
                                });
                            }
                            (
                                Some(Kind::ExponentialHistogram),
                                h.aggregation_temporality,
                                false,
                            )
                        }
                        Some(Data::Summary(s)) => {
                            for p in &s.data_points {
                                let attributes = push_attributes(&mut v.attributes, &p.attributes);
                                let q = v.quantiles.len();
                                v.quantiles.extend(
                                    p.quantile_values.iter().map(|q| (q.quantile, q.value)),
                                );
                                v.points.push(PointView {
                                    time_unix_nano: p.time_unix_nano,
                                    start_time_unix_nano: p.start_time_unix_nano,
                                    attributes,
                                    flags: p.flags,
                                    count: p.count,
                                    sum: Some(p.sum),
                                    quantiles: q..v.quantiles.len(),
                                    ..PointView::default()
                                });
                            }
                            (Some(Kind::Summary), 0, false)
                        }
                    };
                    v.metrics.push(MetricView {
                        name: &m.name,
                        description: &m.description,
                        unit: &m.unit,
                        metadata,
                        kind,
                        temporality,
                        monotonic,
                        points: start..v.points.len(),
                    });
                }
                origins.push_block(
                    resource,
                    sm.scope.as_ref(),
                    &sm.schema_url,
                    first..v.metrics.len(),
                );
            }
        }
        MetricsView {
            origins,
            records: v,
        }
    }
}

fn number_point<'a>(
    v: &mut MetricRecords<'a>,
    p: &'a opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
) -> PointView {
    let attributes = push_attributes(&mut v.attributes, &p.attributes);
    let exemplars = v.push_exemplars(&p.exemplars);
    PointView {
        time_unix_nano: p.time_unix_nano,
        start_time_unix_nano: p.start_time_unix_nano,
        attributes,
        flags: p.flags,
        exemplars,
        value: number_of(p.value.as_ref()),
        ..PointView::default()
    }
}
