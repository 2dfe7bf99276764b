//! OTLP metrics → one Arrow batch of the `metrics` table (a row per data point), with the
//! validation that decides which points are rejected (and reported in `partial_success`). The
//! converter reads a [`view::MetricsView`], of a decoded request or straight from protobuf bytes
//! ([`convert_protobuf`]).
//!
//! NaN and infinite values are kept as sent (OTLP and Prometheus use NaN, e.g. as a staleness
//! marker). A histogram whose buckets do not match its bounds or its count, bounds that are not
//! finite and increasing, a summary quantile outside [0, 1], or an exponential histogram scale
//! outside [-10, 20] rejects that point only.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder,
    ListArray, ListBuilder, StringBuilder, StructArray, TimestampNanosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::Field;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use super::attributes::{Attr, AttributeColumns};
use super::origin::{
    Origin, OriginColumns, attribute_refs_bytes, attributes_bytes, resource_bytes, scope_bytes,
};
use super::rejections::Rejections;
use super::view::BlockView;
use crate::limits::Limits;
use crate::schema::metrics;

mod protobuf;
pub mod view;

use view::{ExemplarView, Kind, MetricRecords, MetricView, MetricsView, Number, PointView};

/// Why one data point was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PointRejection {
    #[error("metric {0:?}: time_unix_nano must be set and before year 2262")]
    Time(String),
    #[error("metric {0:?}: {1} bucket counts for {2} bounds (need one more count than bounds)")]
    Buckets(String, usize, usize),
    #[error("metric {0:?}: explicit bounds must be finite and increasing")]
    Bounds(String),
    #[error("metric {0:?}: bucket counts add up to {1}, not the point's count {2}")]
    Count(String, u64, u64),
    #[error("metric {0:?}: exponential histogram scale {1} is outside [-10, 20]")]
    Scale(String, i32),
    #[error("metric {0:?}: summary quantile {1} is outside [0, 1]")]
    Quantile(String, f64),
    #[error("metric {0:?}: unknown aggregation temporality {1}")]
    Temporality(String, i32),
    #[error("metric {0:?}: a data point has {1} attributes, more than the limit of {2}")]
    TooManyAttributes(String, usize, usize),
}

const TEMPORALITIES: [&str; 3] = ["unspecified", "delta", "cumulative"];

fn temporality(name: &str, t: i32) -> Result<&'static str, PointRejection> {
    usize::try_from(t)
        .ok()
        .and_then(|i| TEMPORALITIES.get(i).copied())
        .ok_or_else(|| PointRejection::Temporality(name.to_owned(), t))
}

fn check_common(name: &str, point: &PointView, limits: &Limits) -> Result<(), PointRejection> {
    let time = point.time_unix_nano;
    if time == 0 || i64::try_from(time).is_err() {
        return Err(PointRejection::Time(name.to_owned()));
    }
    if point.attributes.len() > limits.max_attributes {
        return Err(PointRejection::TooManyAttributes(
            name.to_owned(),
            point.attributes.len(),
            limits.max_attributes,
        ));
    }
    Ok(())
}

fn check_histogram(
    name: &str,
    counts: &[u64],
    bounds: &[f64],
    count: u64,
) -> Result<(), PointRejection> {
    if counts.is_empty() && bounds.is_empty() {
        return Ok(());
    }
    if counts.len() != bounds.len() + 1 {
        return Err(PointRejection::Buckets(
            name.to_owned(),
            counts.len(),
            bounds.len(),
        ));
    }
    let finite = bounds.iter().all(|b| b.is_finite());
    if !finite || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(PointRejection::Bounds(name.to_owned()));
    }
    let total: u64 = counts.iter().fold(0u64, |a, c| a.saturating_add(*c));
    if total != count {
        return Err(PointRejection::Count(name.to_owned(), total, count));
    }
    Ok(())
}

fn check_exponential(name: &str, p: &PointView, counts: &[u64]) -> Result<(), PointRejection> {
    if !(-10..=20).contains(&p.scale) {
        return Err(PointRejection::Scale(name.to_owned(), p.scale));
    }
    let sum = |b: &Option<view::BucketsView>| {
        b.as_ref().map_or(0u64, |b| {
            counts[b.counts.clone()]
                .iter()
                .fold(0u64, |a, c| a.saturating_add(*c))
        })
    };
    let total = p
        .zero_count
        .saturating_add(sum(&p.positive))
        .saturating_add(sum(&p.negative));
    if total != p.count {
        return Err(PointRejection::Count(name.to_owned(), total, p.count));
    }
    Ok(())
}

fn check_summary(name: &str, quantiles: &[(f64, f64)]) -> Result<(), PointRejection> {
    match quantiles.iter().find(|(q, _)| !(0.0..=1.0).contains(q)) {
        Some((q, _)) => Err(PointRejection::Quantile(name.to_owned(), *q)),
        None => Ok(()),
    }
}

/// Per-metric properties repeated on each of its points.
struct MetricInfo {
    kind: &'static str,
    temporality: Option<&'static str>,
    monotonic: Option<bool>,
    /// Whether the metric's own fields let its points in (its temporality).
    check: Result<(), PointRejection>,
}

impl MetricInfo {
    fn of(metric: &MetricView<'_>) -> Self {
        let temporal = |kind| {
            let t = temporality(metric.name, metric.temporality);
            MetricInfo {
                kind,
                temporality: t.as_ref().ok().copied(),
                monotonic: None,
                check: t.map(|_| ()),
            }
        };
        match metric.kind {
            None | Some(Kind::Gauge) => MetricInfo {
                kind: "gauge",
                temporality: None,
                monotonic: None,
                check: Ok(()),
            },
            Some(Kind::Sum) => MetricInfo {
                monotonic: Some(metric.monotonic),
                ..temporal("sum")
            },
            Some(Kind::Histogram) => temporal("histogram"),
            Some(Kind::ExponentialHistogram) => temporal("exponential_histogram"),
            Some(Kind::Summary) => MetricInfo {
                kind: "summary",
                temporality: None,
                monotonic: None,
                check: Ok(()),
            },
        }
    }
}

fn validate_point(
    metric: &MetricView<'_>,
    point: &PointView,
    records: &MetricRecords<'_>,
    limits: &Limits,
) -> Result<(), PointRejection> {
    let name = metric.name;
    check_common(name, point, limits)?;
    match metric.kind {
        None | Some(Kind::Gauge | Kind::Sum) => Ok(()),
        Some(Kind::Histogram) => check_histogram(
            name,
            &records.counts[point.bucket_counts.clone()],
            &records.bounds[point.explicit_bounds.clone()],
            point.count,
        ),
        Some(Kind::ExponentialHistogram) => check_exponential(name, point, &records.counts),
        Some(Kind::Summary) => check_summary(name, &records.quantiles[point.quantiles.clone()]),
    }
}

/// Checks the attributes every point of a block shares: its resource's and its scope's.
/// `Err` holds the larger count.
fn shared_verdict(
    view: &MetricsView<'_>,
    block: &BlockView<'_>,
    limits: &Limits,
) -> Result<(), usize> {
    let (resource, scope) = view.origins.attribute_counts(block);
    if resource > limits.max_attributes || scope > limits.max_attributes {
        Err(resource.max(scope))
    } else {
        Ok(())
    }
}

/// Calls `each` for every point of `block`, in order, with its metric's properties and whether
/// it is accepted.
fn block_points<'v, 'a, F>(
    view: &'v MetricsView<'a>,
    block: &BlockView<'a>,
    limits: &Limits,
    each: &mut F,
) where
    F: FnMut(&'v MetricView<'a>, &MetricInfo, &'v PointView, Result<(), PointRejection>),
{
    let shared = shared_verdict(view, block, limits);
    for metric in &view.records.metrics[block.records.clone()] {
        let info = MetricInfo::of(metric);
        for point in &view.records.points[metric.points.clone()] {
            let verdict = match shared {
                Err(count) => Err(PointRejection::TooManyAttributes(
                    metric.name.to_owned(),
                    count,
                    limits.max_attributes,
                )),
                Ok(()) => info
                    .check
                    .clone()
                    .and_then(|_| validate_point(metric, point, &view.records, limits)),
            };
            each(metric, &info, point, verdict);
        }
    }
}

/// Whether each point of the request is accepted, in the request's order.
fn verdicts(view: &MetricsView<'_>, limits: &Limits) -> Vec<bool> {
    let mut accepted = Vec::with_capacity(view.records.points.len());
    for block in &view.origins.blocks {
        block_points(view, block, limits, &mut |_, _, _, verdict| {
            accepted.push(verdict.is_ok())
        });
    }
    accepted
}

/// Keeps only the points that convert (what is logged is what was acknowledged).
pub fn retain_valid(request: &mut ExportMetricsServiceRequest, limits: &Limits) {
    let mut accepted = verdicts(&MetricsView::from_request(request), limits).into_iter();
    let mut next = || accepted.next().unwrap_or(false);
    for metric in request
        .resource_metrics
        .iter_mut()
        .flat_map(|rm| &mut rm.scope_metrics)
        .flat_map(|sm| &mut sm.metrics)
    {
        match &mut metric.data {
            None => {}
            Some(Data::Gauge(g)) => g.data_points.retain(|_| next()),
            Some(Data::Sum(s)) => s.data_points.retain(|_| next()),
            Some(Data::Histogram(h)) => h.data_points.retain(|_| next()),
            Some(Data::ExponentialHistogram(h)) => h.data_points.retain(|_| next()),
            Some(Data::Summary(s)) => s.data_points.retain(|_| next()),
        }
    }
    // Blocks whose resource or scope has too many attributes lost every point above.
    let too_many = |count: usize| count > limits.max_attributes;
    request.resource_metrics.retain_mut(|rm| {
        rm.scope_metrics
            .retain(|sm| !too_many(sm.scope.as_ref().map_or(0, |s| s.attributes.len())));
        !too_many(rm.resource.as_ref().map_or(0, |r| r.attributes.len()))
    });
}

fn timestamps(rows: usize) -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::with_capacity(rows).with_timezone("UTC")
}

#[derive(Default)]
struct ExemplarColumns {
    lengths: Vec<usize>,
    time: Option<TimestampNanosecondBuilder>,
    value: Float64Builder,
    value_int: Int64Builder,
    trace_id: BinaryBuilder,
    span_id: BinaryBuilder,
    attributes: Option<AttributeColumns>,
}

impl ExemplarColumns {
    fn append(&mut self, exemplars: &[ExemplarView<'_>], attributes_of: &[Attr<'_>]) {
        self.lengths.push(exemplars.len());
        let time = self.time.get_or_insert_with(|| timestamps(0));
        let attributes = self
            .attributes
            .get_or_insert_with(|| AttributeColumns::with_capacity(0));
        for e in exemplars {
            time.append_value(i64::try_from(e.time_unix_nano).unwrap_or(i64::MAX));
            match e.value {
                Some(Number::Double(d)) => {
                    self.value.append_value(d);
                    self.value_int.append_null();
                }
                Some(Number::Int(i)) => {
                    self.value.append_value(i as f64);
                    self.value_int.append_value(i);
                }
                None => {
                    self.value.append_null();
                    self.value_int.append_null();
                }
            }
            let id = |bytes: &[u8], b: &mut BinaryBuilder| {
                if bytes.is_empty() {
                    b.append_null()
                } else {
                    b.append_value(bytes)
                }
            };
            id(e.trace_id, &mut self.trace_id);
            id(e.span_id, &mut self.span_id);
            attributes.append(&attributes_of[e.attributes.clone()]);
        }
    }

    fn finish(mut self) -> Result<ArrayRef, ArrowError> {
        let (attrs, types) = self
            .attributes
            .unwrap_or_else(|| AttributeColumns::with_capacity(0))
            .finish();
        let values = StructArray::try_new(
            metrics::exemplar_fields(),
            vec![
                Arc::new(self.time.unwrap_or_else(|| timestamps(0)).finish()),
                Arc::new(self.value.finish()),
                Arc::new(self.value_int.finish()),
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                attrs,
                types,
            ],
            None,
        )?;
        let field = Arc::new(Field::new("item", Array::data_type(&values).clone(), true));
        Ok(Arc::new(ListArray::try_new(
            field,
            OffsetBuffer::from_lengths(self.lengths),
            Arc::new(values),
            None,
        )?))
    }
}

#[derive(Default)]
struct QuantileColumns {
    lengths: Vec<usize>,
    valid: Vec<bool>,
    quantile: Float64Builder,
    value: Float64Builder,
}

impl QuantileColumns {
    fn append(&mut self, quantiles: Option<&[(f64, f64)]>) {
        let values = quantiles.unwrap_or_default();
        self.lengths.push(values.len());
        self.valid.push(quantiles.is_some());
        for (quantile, value) in values {
            self.quantile.append_value(*quantile);
            self.value.append_value(*value);
        }
    }

    fn finish(mut self) -> Result<ArrayRef, ArrowError> {
        let values = StructArray::try_new(
            metrics::quantile_fields(),
            vec![
                Arc::new(self.quantile.finish()),
                Arc::new(self.value.finish()),
            ],
            None,
        )?;
        let field = Arc::new(Field::new("item", Array::data_type(&values).clone(), true));
        Ok(Arc::new(ListArray::try_new(
            field,
            OffsetBuffer::from_lengths(self.lengths),
            Arc::new(values),
            Some(NullBuffer::from(self.valid)),
        )?))
    }
}

struct MetricColumns {
    time: TimestampNanosecondBuilder,
    start_time: TimestampNanosecondBuilder,
    name: StringBuilder,
    kind: StringBuilder,
    unit: StringBuilder,
    description: StringBuilder,
    metadata: AttributeColumns,
    temporality: StringBuilder,
    monotonic: BooleanBuilder,
    value: Float64Builder,
    value_int: Int64Builder,
    count: UInt64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
    bucket_counts: ListBuilder<UInt64Builder>,
    bounds: ListBuilder<Float64Builder>,
    scale: Int32Builder,
    zero_count: UInt64Builder,
    zero_threshold: Float64Builder,
    positive_offset: Int32Builder,
    positive_counts: ListBuilder<UInt64Builder>,
    negative_offset: Int32Builder,
    negative_counts: ListBuilder<UInt64Builder>,
    quantiles: QuantileColumns,
    flags: UInt32Builder,
    exemplars: ExemplarColumns,
    origin: OriginColumns,
    attributes: AttributeColumns,
}

impl MetricColumns {
    fn with_capacity(rows: usize) -> Self {
        let s = || StringBuilder::with_capacity(rows, rows * 16);
        Self {
            time: timestamps(rows),
            start_time: timestamps(rows),
            name: s(),
            kind: s(),
            unit: s(),
            description: s(),
            metadata: AttributeColumns::with_capacity(rows),
            temporality: s(),
            monotonic: BooleanBuilder::with_capacity(rows),
            value: Float64Builder::with_capacity(rows),
            value_int: Int64Builder::with_capacity(rows),
            count: UInt64Builder::with_capacity(rows),
            sum: Float64Builder::with_capacity(rows),
            min: Float64Builder::with_capacity(rows),
            max: Float64Builder::with_capacity(rows),
            bucket_counts: ListBuilder::new(UInt64Builder::new()),
            bounds: ListBuilder::new(Float64Builder::new()),
            scale: Int32Builder::with_capacity(rows),
            zero_count: UInt64Builder::with_capacity(rows),
            zero_threshold: Float64Builder::with_capacity(rows),
            positive_offset: Int32Builder::with_capacity(rows),
            positive_counts: ListBuilder::new(UInt64Builder::new()),
            negative_offset: Int32Builder::with_capacity(rows),
            negative_counts: ListBuilder::new(UInt64Builder::new()),
            quantiles: QuantileColumns::default(),
            flags: UInt32Builder::with_capacity(rows),
            exemplars: ExemplarColumns::default(),
            origin: OriginColumns::with_capacity(rows),
            attributes: AttributeColumns::with_capacity(rows),
        }
    }

    fn append(
        &mut self,
        info: &MetricInfo,
        m: &MetricView<'_>,
        point: &PointView,
        records: &MetricRecords<'_>,
        origin: &Origin<'_, Attr<'_>>,
    ) {
        self.time
            .append_value(i64::try_from(point.time_unix_nano).unwrap_or(i64::MAX));
        match i64::try_from(point.start_time_unix_nano) {
            Ok(s) if s > 0 => self.start_time.append_value(s),
            _ => self.start_time.append_null(),
        }
        self.name.append_value(m.name);
        self.kind.append_value(info.kind);
        self.unit.append_value(m.unit);
        self.description.append_value(m.description);
        self.metadata
            .append(&records.attributes[m.metadata.clone()]);
        self.temporality.append_option(info.temporality);
        self.monotonic.append_option(info.monotonic);

        let (mut count, mut sum, mut min, mut max) = (None, None, None, None);
        match (m.kind, point.value) {
            (Some(Kind::Gauge | Kind::Sum), Some(Number::Double(d))) => {
                self.value.append_value(d);
                self.value_int.append_null();
            }
            (Some(Kind::Gauge | Kind::Sum), Some(Number::Int(i))) => {
                self.value.append_value(i as f64);
                self.value_int.append_value(i);
            }
            _ => {
                self.value.append_null();
                self.value_int.append_null();
            }
        }
        if m.kind == Some(Kind::Histogram) {
            (count, sum, min, max) = (Some(point.count), point.sum, point.min, point.max);
            self.bucket_counts.append_value(
                records.counts[point.bucket_counts.clone()]
                    .iter()
                    .map(|c| Some(*c)),
            );
            self.bounds.append_value(
                records.bounds[point.explicit_bounds.clone()]
                    .iter()
                    .map(|b| Some(*b)),
            );
        } else {
            self.bucket_counts.append_null();
            self.bounds.append_null();
        }
        if m.kind == Some(Kind::ExponentialHistogram) {
            (count, sum, min, max) = (Some(point.count), point.sum, point.min, point.max);
            self.scale.append_value(point.scale);
            self.zero_count.append_value(point.zero_count);
            self.zero_threshold.append_value(point.zero_threshold);
            for (buckets, offset, counts) in [
                (
                    &point.positive,
                    &mut self.positive_offset,
                    &mut self.positive_counts,
                ),
                (
                    &point.negative,
                    &mut self.negative_offset,
                    &mut self.negative_counts,
                ),
            ] {
                match buckets {
                    Some(b) => {
                        offset.append_value(b.offset);
                        counts.append_value(
                            records.counts[b.counts.clone()].iter().map(|c| Some(*c)),
                        );
                    }
                    None => {
                        offset.append_null();
                        counts.append_null();
                    }
                }
            }
        } else {
            self.scale.append_null();
            self.zero_count.append_null();
            self.zero_threshold.append_null();
            self.positive_offset.append_null();
            self.positive_counts.append_null();
            self.negative_offset.append_null();
            self.negative_counts.append_null();
        }
        if m.kind == Some(Kind::Summary) {
            (count, sum) = (Some(point.count), point.sum);
            self.quantiles
                .append(Some(&records.quantiles[point.quantiles.clone()]));
        } else {
            self.quantiles.append(None);
        }
        self.count.append_option(count);
        self.sum.append_option(sum);
        self.min.append_option(min);
        self.max.append_option(max);
        self.flags.append_value(point.flags);
        self.exemplars.append(
            &records.exemplars[point.exemplars.clone()],
            &records.attributes,
        );
        self.origin.append(origin);
        self.attributes
            .append(&records.attributes[point.attributes.clone()]);
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let o = self.origin.finish();
        let (metadata, metadata_types) = self.metadata.finish();
        let (attributes, attribute_types) = self.attributes.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.start_time.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.description.finish()),
            metadata,
            metadata_types,
            Arc::new(self.temporality.finish()),
            Arc::new(self.monotonic.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.value_int.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.bounds.finish()),
            Arc::new(self.scale.finish()),
            Arc::new(self.zero_count.finish()),
            Arc::new(self.zero_threshold.finish()),
            Arc::new(self.positive_offset.finish()),
            Arc::new(self.positive_counts.finish()),
            Arc::new(self.negative_offset.finish()),
            Arc::new(self.negative_counts.finish()),
            self.quantiles.finish()?,
            Arc::new(self.flags.finish()),
            self.exemplars.finish()?,
            o.service_name,
            o.service_namespace,
            o.service_version,
            o.service_instance_id,
            attributes,
            attribute_types,
            o.resource_attributes,
            o.resource_attribute_types,
            o.resource_dropped,
            o.resource_schema_url,
            o.scope_name,
            o.scope_version,
            o.scope_attributes,
            o.scope_attribute_types,
            o.scope_dropped,
            o.scope_schema_url,
        ];
        // The list builders name their item field "item" and make it nullable, as the schema does.
        RecordBatch::try_new(metrics::schema(), columns)
    }
}

/// Data points of `metric`, of whichever kind.
pub fn point_count(metric: &Metric) -> usize {
    match &metric.data {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    }
}

/// Bytes the request's data points repeat between them (an upper bound): each point stores its
/// resource, its scope and its metric's name, description, unit and metadata. Checked against
/// [`Limits::max_repeated_bytes`] before converting.
pub fn repeated_bytes(request: &ExportMetricsServiceRequest) -> usize {
    let mut total = 0usize;
    for rm in &request.resource_metrics {
        let resource = resource_bytes(rm.resource.as_ref(), &rm.schema_url);
        for sm in &rm.scope_metrics {
            let origin = resource + scope_bytes(sm.scope.as_ref(), &sm.schema_url);
            // A block without points still has its origin encoded once.
            total = total.saturating_add(origin);
            for metric in &sm.metrics {
                let points = point_count(metric);
                let own = metric.name.len()
                    + metric.description.len()
                    + metric.unit.len()
                    + attributes_bytes(&metric.metadata);
                total = total.saturating_add((origin + own).saturating_mul(points));
            }
        }
    }
    total
}

/// [`repeated_bytes`] of a request read straight from its bytes (counted on the view, without
/// building messages; the general path counts on the decoded request without building a view).
fn repeated_bytes_of(view: &MetricsView<'_>) -> usize {
    let mut total = 0usize;
    for block in &view.origins.blocks {
        let origin = view.origins.origin_bytes(block);
        // A block without points still has its origin encoded once.
        total = total.saturating_add(origin);
        for metric in &view.records.metrics[block.records.clone()] {
            let own = metric.name.len()
                + metric.description.len()
                + metric.unit.len()
                + attribute_refs_bytes(&view.records.attributes[metric.metadata.clone()]);
            total = total.saturating_add((origin + own).saturating_mul(metric.points.len()));
        }
    }
    total
}

/// Converts every valid point of `request`; invalid ones are counted and skipped.
pub fn convert(
    request: &ExportMetricsServiceRequest,
    limits: &Limits,
) -> Result<super::Converted, ArrowError> {
    convert_view(&MetricsView::from_request(request), limits)
}

/// Converts a request straight from its protobuf bytes, when every point in it is accepted and
/// it is within [`Limits::max_repeated_bytes`]. `None` leaves the request to the general path.
pub fn convert_protobuf(
    bytes: &[u8],
    limits: &Limits,
) -> Option<Result<super::Converted, ArrowError>> {
    let view = protobuf::read(bytes)?;
    if repeated_bytes_of(&view) > limits.max_repeated_bytes {
        return None;
    }
    if verdicts(&view, limits).contains(&false) {
        return None;
    }
    Some(convert_view(&view, limits))
}

fn convert_view(view: &MetricsView<'_>, limits: &Limits) -> Result<super::Converted, ArrowError> {
    let mut columns = MetricColumns::with_capacity(0);
    let mut rejected = Rejections::new("data point", "data points");
    for block in &view.origins.blocks {
        let origin = view.origins.origin(block);
        block_points(
            view,
            block,
            limits,
            &mut |metric, info, point, verdict| match verdict {
                Ok(()) => columns.append(info, metric, point, &view.records, &origin),
                Err(e) => rejected.add(e),
            },
        );
    }
    Ok(super::Converted {
        batch: columns.finish()?,
        rejected: rejected.count,
        error_message: rejected.message(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Float64Array};
    use datafusion::arrow::datatypes::{Float64Type, UInt64Type};
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
    use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum, Summary,
    };
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
        SummaryDataPoint, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    const T: u64 = 1_795_551_330_000_000_000;

    fn metric(name: &str, data: Data) -> Metric {
        Metric {
            name: name.into(),
            description: format!("{name} description"),
            unit: "ms".into(),
            metadata: vec![],
            data: Some(data),
        }
    }

    fn number(v: number_data_point::Value) -> NumberDataPoint {
        NumberDataPoint {
            time_unix_nano: T,
            start_time_unix_nano: T - 1_000,
            value: Some(v),
            ..NumberDataPoint::default()
        }
    }

    fn histogram(counts: Vec<u64>, bounds: Vec<f64>, count: u64) -> HistogramDataPoint {
        HistogramDataPoint {
            time_unix_nano: T,
            count,
            sum: Some(123.5),
            bucket_counts: counts,
            explicit_bounds: bounds,
            min: Some(1.0),
            max: Some(90.0),
            ..HistogramDataPoint::default()
        }
    }

    fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: None,
                scope_metrics: vec![ScopeMetrics {
                    scope: None,
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn repeated_bytes_count_each_metrics_fields_once_per_point() {
        // No resource or scope: the metric's own name, description ("<name> description") and
        // unit ("ms") and the fixed 64 + 32 bytes of the origin columns, once per point; the
        // origin once more for the block.
        let requests = metric(
            "requests",
            Data::Sum(Sum {
                data_points: vec![number(number_data_point::Value::AsInt(1)); 5],
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
        );
        let per_point = "requests".len() + "requests description".len() + "ms".len();
        let origin = 64 + 32;
        assert_eq!(
            repeated_bytes(&request(vec![requests.clone()])),
            5 * (per_point + origin) + origin
        );

        // A resource is repeated by the points of every metric under it.
        let mut with_resource = request(vec![requests.clone(), requests]);
        with_resource.resource_metrics[0].resource = Some(Resource {
            attributes: vec![KeyValue {
                key: "k".into(),
                key_strindex: 0,
                value: Some(AnyValue {
                    value: Some(Value::StringValue("v".repeat(1000))),
                }),
            }],
            dropped_attributes_count: 0,
            entity_refs: vec![],
        });
        let bytes = repeated_bytes(&with_resource);
        let origin = origin + "k".len() + 1000 + 9;
        assert_eq!(bytes, 10 * (per_point + origin) + origin);
    }

    fn all_types() -> ExportMetricsServiceRequest {
        request(vec![
            metric(
                "queue.depth",
                Data::Gauge(Gauge {
                    data_points: vec![
                        number(number_data_point::Value::AsInt(7)),
                        number(number_data_point::Value::AsDouble(f64::NAN)),
                    ],
                }),
            ),
            metric(
                "requests",
                Data::Sum(Sum {
                    data_points: vec![number(number_data_point::Value::AsDouble(41.5))],
                    aggregation_temporality: 2,
                    is_monotonic: true,
                }),
            ),
            metric(
                "latency",
                Data::Histogram(Histogram {
                    data_points: vec![
                        histogram(vec![1, 2, 3], vec![10.0, 50.0], 6),
                        histogram(vec![1, 2], vec![10.0, 50.0], 3),
                        histogram(vec![1, 2, 3], vec![50.0, 10.0], 6),
                        histogram(vec![1, 2, 3], vec![10.0, 50.0], 7),
                    ],
                    aggregation_temporality: 1,
                }),
            ),
            metric(
                "size",
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        time_unix_nano: T,
                        count: 5,
                        zero_count: 1,
                        scale: 3,
                        positive: Some(Buckets {
                            offset: 2,
                            bucket_counts: vec![1, 3],
                        }),
                        ..ExponentialHistogramDataPoint::default()
                    }],
                    aggregation_temporality: 2,
                }),
            ),
            metric(
                "rpc.duration",
                Data::Summary(Summary {
                    data_points: vec![
                        SummaryDataPoint {
                            time_unix_nano: T,
                            count: 10,
                            sum: 55.0,
                            quantile_values: vec![ValueAtQuantile {
                                quantile: 0.99,
                                value: 9.5,
                            }],
                            ..SummaryDataPoint::default()
                        },
                        SummaryDataPoint {
                            time_unix_nano: T,
                            quantile_values: vec![ValueAtQuantile {
                                quantile: 1.5,
                                value: 1.0,
                            }],
                            ..SummaryDataPoint::default()
                        },
                    ],
                }),
            ),
        ])
    }

    #[test]
    fn every_point_type_becomes_a_row_and_bad_points_are_rejected_alone() {
        let converted = convert(&all_types(), &Limits::default()).unwrap();
        // 2 gauge + 1 sum + 1 valid histogram + 1 exponential + 1 summary.
        assert_eq!(converted.batch.num_rows(), 6);
        assert_eq!(converted.rejected, 4, "{}", converted.error_message);
        assert!(
            converted.error_message.contains("\"latency\""),
            "{}",
            converted.error_message
        );
        let b = &converted.batch;
        let kinds: Vec<&str> = b
            .column_by_name(metrics::col::METRIC_TYPE)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(
            kinds,
            [
                "gauge",
                "gauge",
                "sum",
                "histogram",
                "exponential_histogram",
                "summary"
            ]
        );
        let values = b
            .column_by_name(metrics::col::VALUE)
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(values.value(0), 7.0);
        assert!(values.value(1).is_nan(), "NaN is kept");
        assert_eq!(values.value(2), 41.5);
        assert!(values.is_null(3));
        let buckets = b
            .column_by_name(metrics::col::BUCKET_COUNTS)
            .unwrap()
            .as_list::<i32>();
        let counts: Vec<u64> = buckets
            .value(3)
            .as_primitive::<UInt64Type>()
            .values()
            .to_vec();
        assert_eq!(counts, vec![1, 2, 3]);
        assert!(buckets.is_null(0));
        let bounds = b
            .column_by_name(metrics::col::EXPLICIT_BOUNDS)
            .unwrap()
            .as_list::<i32>();
        assert_eq!(
            bounds
                .value(3)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec(),
            vec![10.0, 50.0]
        );
        let temporality = b
            .column_by_name(metrics::col::TEMPORALITY)
            .unwrap()
            .as_string::<i32>();
        assert_eq!(
            (temporality.value(2), temporality.value(3)),
            ("cumulative", "delta")
        );
        assert!(temporality.is_null(0));
    }

    #[test]
    fn retain_valid_keeps_exactly_the_converted_points() {
        let mut req = all_types();
        retain_valid(&mut req, &Limits::default());
        let again = convert(&req, &Limits::default()).unwrap();
        assert_eq!((again.batch.num_rows(), again.rejected), (6, 0));
    }

    #[test]
    fn a_point_without_time_is_rejected() {
        let req = request(vec![metric(
            "g",
            Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint::default()],
            }),
        )]);
        let converted = convert(&req, &Limits::default()).unwrap();
        assert_eq!((converted.batch.num_rows(), converted.rejected), (0, 1));
    }

    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::metrics::v1::Exemplar;
    use opentelemetry_proto::tonic::metrics::v1::exemplar;
    use proptest::prelude::*;

    fn valid_types() -> ExportMetricsServiceRequest {
        let mut req = all_types();
        retain_valid(&mut req, &Limits::default());
        let point = &mut req.resource_metrics[0].scope_metrics[0].metrics[0];
        if let Some(Data::Gauge(g)) = &mut point.data {
            g.data_points[0].exemplars = vec![Exemplar {
                filtered_attributes: vec![KeyValue {
                    key: "user".into(),
                    key_strindex: 0,
                    value: Some(AnyValue {
                        value: Some(Value::StringValue("ada".into())),
                    }),
                }],
                time_unix_nano: T,
                span_id: vec![1; 8],
                trace_id: vec![2; 16],
                value: Some(exemplar::Value::AsInt(3)),
            }];
            g.data_points[0].attributes = vec![KeyValue {
                key: "queue".into(),
                key_strindex: 0,
                value: Some(AnyValue {
                    value: Some(Value::StringValue("orders".into())),
                }),
            }];
        }
        req
    }

    #[test]
    fn the_direct_reader_converts_every_point_type_as_prost_does() {
        use prost::Message;
        let req = valid_types();
        let direct = convert_protobuf(&req.encode_to_vec(), &Limits::default())
            .expect("the direct reader takes a request of valid points")
            .unwrap();
        let general = convert(&req, &Limits::default()).unwrap();
        assert_eq!(direct.batch.num_rows(), 6);
        // NaN is kept as sent, so compare its row apart.
        assert_eq!(
            direct.batch.slice(2, 4),
            general.batch.slice(2, 4),
            "histogram, exponential histogram, summary"
        );
        assert_eq!(direct.batch.slice(0, 1), general.batch.slice(0, 1));
    }

    /// Rejected points, a metric's data given twice and buckets given twice are left to the
    /// general path; repeated numbers sent unpacked are read as prost reads them.
    #[test]
    fn the_direct_reader_declines_what_the_general_path_handles() {
        use prost::Message;
        let limits = Limits::default();
        assert!(convert_protobuf(&all_types().encode_to_vec(), &limits).is_none());

        let req = valid_types();
        let bytes = req.encode_to_vec();
        let metric = req.resource_metrics[0].scope_metrics[0].metrics[1].clone();
        let sum = metric.encode_to_vec();
        // The sum's data again, appended to the metric: prost merges the two.
        let Some(Data::Sum(data)) = &metric.data else {
            panic!("the second metric is a sum")
        };
        let mut twice = sum.clone();
        let data = data.encode_to_vec();
        twice.push(7 << 3 | 2);
        prost::encoding::encode_varint(data.len() as u64, &mut twice);
        twice.extend_from_slice(&data);
        let doubled = replace(&bytes, &sum, &twice);
        assert!(convert_protobuf(&doubled, &limits).is_none());
        let decoded = ExportMetricsServiceRequest::decode(&doubled[..]).unwrap();
        assert_eq!(convert(&decoded, &limits).unwrap().batch.num_rows(), 7);

        // Bucket counts and bounds unpacked: one field per number.
        let histogram = &req.resource_metrics[0].scope_metrics[0].metrics[2];
        let Some(Data::Histogram(h)) = &histogram.data else {
            panic!("the third metric is a histogram")
        };
        let point = &h.data_points[0];
        let packed = point.encode_to_vec();
        let mut unpacked = HistogramDataPoint {
            bucket_counts: vec![],
            explicit_bounds: vec![],
            ..point.clone()
        }
        .encode_to_vec();
        for c in &point.bucket_counts {
            unpacked.push(6 << 3 | 1);
            unpacked.extend_from_slice(&c.to_le_bytes());
        }
        for b in &point.explicit_bounds {
            unpacked.push(7 << 3 | 1);
            unpacked.extend_from_slice(&b.to_le_bytes());
        }
        let with_unpacked = replace(&bytes, &packed, &unpacked);
        let direct = convert_protobuf(&with_unpacked, &limits)
            .expect("unpacked numbers are read")
            .unwrap();
        let general = convert(
            &ExportMetricsServiceRequest::decode(&with_unpacked[..]).unwrap(),
            &limits,
        )
        .unwrap();
        assert_eq!(direct.batch.slice(2, 4), general.batch.slice(2, 4));
        assert_eq!(
            direct.batch.slice(2, 4),
            convert(&req, &limits).unwrap().batch.slice(2, 4)
        );
    }

    /// `bytes` with `from` (which occurs once) replaced by `to`, and every enclosing length
    /// fixed by re-encoding: only for `from` being a whole message inside the request, found by
    /// decoding what the lengths say.
    fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        fn walk(bytes: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
            if bytes == from {
                return Some(to.to_vec());
            }
            let mut out = Vec::new();
            let mut rest = bytes;
            let mut changed = false;
            while !rest.is_empty() {
                let key = prost::encoding::decode_varint(&mut rest).ok()?;
                prost::encoding::encode_varint(key, &mut out);
                match key & 7 {
                    0 => {
                        let v = prost::encoding::decode_varint(&mut rest).ok()?;
                        prost::encoding::encode_varint(v, &mut out);
                    }
                    1 => {
                        let (v, r) = rest.split_at_checked(8)?;
                        out.extend_from_slice(v);
                        rest = r;
                    }
                    5 => {
                        let (v, r) = rest.split_at_checked(4)?;
                        out.extend_from_slice(v);
                        rest = r;
                    }
                    2 => {
                        let len = prost::encoding::decode_varint(&mut rest).ok()? as usize;
                        let (v, r) = rest.split_at_checked(len)?;
                        rest = r;
                        let inner = if changed { None } else { walk(v, from, to) };
                        let inner = match inner {
                            Some(new) if new != v => {
                                changed = true;
                                new
                            }
                            _ => v.to_vec(),
                        };
                        prost::encoding::encode_varint(inner.len() as u64, &mut out);
                        out.extend_from_slice(&inner);
                    }
                    _ => return None,
                }
            }
            Some(out)
        }
        let out = walk(bytes, from, to).expect("the request is well formed");
        assert_ne!(out, bytes, "the message to replace was found");
        out
    }

    fn wide_point() -> impl Strategy<
        Value = (
            NumberDataPoint,
            HistogramDataPoint,
            ExponentialHistogramDataPoint,
            SummaryDataPoint,
        ),
    > {
        let time = prop_oneof![Just(0u64), Just(T), Just(u64::MAX), any::<u64>()];
        let exemplar = (
            any::<u64>(),
            proptest::option::of(prop_oneof![
                any::<f64>().prop_map(exemplar::Value::AsDouble),
                any::<i64>().prop_map(exemplar::Value::AsInt),
            ]),
            proptest::collection::vec(any::<u8>(), 0..17),
            crate::convert::strategies::wide_attributes(),
        )
            .prop_map(|(time, value, id, filtered_attributes)| Exemplar {
                filtered_attributes,
                time_unix_nano: time,
                span_id: id.iter().take(8).copied().collect(),
                trace_id: id,
                value,
            });
        (
            (time, any::<u64>(), any::<u32>()),
            crate::convert::strategies::wide_attributes(),
            proptest::collection::vec(exemplar, 0..2),
            proptest::option::of(prop_oneof![
                any::<f64>().prop_map(number_data_point::Value::AsDouble),
                any::<i64>().prop_map(number_data_point::Value::AsInt),
            ]),
            (
                proptest::collection::vec(0u64..50, 0..5),
                any::<bool>(),
                proptest::option::of(any::<f64>()),
            ),
            (
                -12i32..23,
                any::<i32>(),
                proptest::collection::vec(0u64..50, 0..4),
                any::<bool>(),
            ),
            proptest::collection::vec((-0.5f64..1.5, any::<f64>()), 0..3),
        )
            .prop_map(
                |(times, attributes, exemplars, value, histogram, exponential, quantiles)| {
                    let (time, start, flags) = times;
                    let (counts, consistent, sum) = histogram;
                    let (scale, offset, positive, with_negative) = exponential;
                    let bounds: Vec<f64> = (1..counts.len()).map(|b| b as f64 * 10.0).collect();
                    let total: u64 = counts.iter().sum();
                    let count = if consistent { total } else { total + 1 };
                    let number = NumberDataPoint {
                        attributes: attributes.clone(),
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        exemplars: exemplars.clone(),
                        flags,
                        value,
                    };
                    let histogram = HistogramDataPoint {
                        attributes: attributes.clone(),
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        count,
                        sum,
                        bucket_counts: counts,
                        explicit_bounds: bounds,
                        exemplars: exemplars.clone(),
                        flags,
                        min: sum.map(|s| s - 1.0),
                        max: sum,
                    };
                    let positive_total: u64 = positive.iter().sum();
                    let exponential = ExponentialHistogramDataPoint {
                        attributes: attributes.clone(),
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        count: if consistent { positive_total + 2 } else { 1 },
                        sum,
                        scale,
                        zero_count: 2,
                        positive: Some(Buckets {
                            offset,
                            bucket_counts: positive,
                        }),
                        negative: with_negative.then(Default::default),
                        flags,
                        exemplars,
                        min: None,
                        max: sum,
                        zero_threshold: 0.5,
                    };
                    let summary = SummaryDataPoint {
                        attributes,
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        count,
                        sum: sum.unwrap_or_default(),
                        quantile_values: quantiles
                            .into_iter()
                            .map(|(quantile, value)| ValueAtQuantile { quantile, value })
                            .collect(),
                        flags,
                    };
                    (number, histogram, exponential, summary)
                },
            )
    }

    fn wide_metric() -> impl Strategy<Value = Metric> {
        (
            (".{0,8}", ".{0,8}", ".{0,3}"),
            crate::convert::strategies::wide_attributes(),
            0u8..6,
            -1i32..4,
            any::<bool>(),
            proptest::collection::vec(wide_point(), 0..3),
        )
            .prop_map(
                |((name, description, unit), metadata, kind, temporality, monotonic, points)| {
                    let mut numbers = vec![];
                    let mut histograms = vec![];
                    let mut exponentials = vec![];
                    let mut summaries = vec![];
                    for (n, h, e, s) in points {
                        numbers.push(n);
                        histograms.push(h);
                        exponentials.push(e);
                        summaries.push(s);
                    }
                    let data = match kind {
                        0 => None,
                        1 => Some(Data::Gauge(Gauge {
                            data_points: numbers,
                        })),
                        2 => Some(Data::Sum(Sum {
                            data_points: numbers,
                            aggregation_temporality: temporality,
                            is_monotonic: monotonic,
                        })),
                        3 => Some(Data::Histogram(Histogram {
                            data_points: histograms,
                            aggregation_temporality: temporality,
                        })),
                        4 => Some(Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: exponentials,
                            aggregation_temporality: temporality,
                        })),
                        _ => Some(Data::Summary(Summary {
                            data_points: summaries,
                        })),
                    };
                    Metric {
                        name,
                        description,
                        unit,
                        metadata,
                        data,
                    }
                },
            )
    }

    fn wide_request() -> impl Strategy<Value = ExportMetricsServiceRequest> {
        let scope = (
            proptest::option::of((".{0,6}", crate::convert::strategies::wide_attributes())),
            proptest::collection::vec(wide_metric(), 0..4),
        )
            .prop_map(|(scope, metrics)| ScopeMetrics {
                scope: scope.map(|(name, attributes)| InstrumentationScope {
                    name,
                    version: String::new(),
                    attributes,
                    dropped_attributes_count: 0,
                }),
                metrics,
                schema_url: String::new(),
            });
        let resource = (
            proptest::option::of(crate::convert::strategies::wide_attributes()),
            proptest::collection::vec(scope, 0..3),
        )
            .prop_map(|(attributes, scope_metrics)| ResourceMetrics {
                resource: attributes.map(|attributes| Resource {
                    attributes,
                    dropped_attributes_count: 0,
                    entity_refs: vec![],
                }),
                scope_metrics,
                schema_url: String::new(),
            });
        proptest::collection::vec(resource, 0..3)
            .prop_map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
    }

    /// Batches compared through their IPC bytes, so NaN equals the same NaN.
    fn same(a: &RecordBatch, b: &RecordBatch) -> bool {
        let bytes = |batch: &RecordBatch| {
            let mut out = Vec::new();
            let mut writer =
                datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
                    .expect("a writer");
            writer.write(batch).expect("writes");
            writer.finish().expect("finishes");
            drop(writer);
            out
        };
        bytes(a) == bytes(b)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The direct reader's batch is the general path's; it declines only requests with
        /// rejected points; its bound of repeated bytes is the same; what `retain_valid` keeps
        /// converts to the same rows with nothing rejected.
        #[test]
        fn the_direct_reader_agrees_with_prost(req in wide_request()) {
            use prost::Message;
            let limits = Limits::default();
            let bytes = req.encode_to_vec();
            // What prost reads back: a double of -0.0 in a plain field is not sent.
            let req = ExportMetricsServiceRequest::decode(&bytes[..]).unwrap();
            let general = convert(&req, &limits).unwrap();
            match convert_protobuf(&bytes, &limits) {
                Some(direct) => {
                    let direct = direct.unwrap();
                    prop_assert_eq!(direct.rejected, 0);
                    prop_assert!(same(&direct.batch, &general.batch));
                }
                None => prop_assert!(general.rejected > 0, "declined a request of valid points"),
            }
            if let Some(view) = protobuf::read(&bytes) {
                prop_assert_eq!(repeated_bytes_of(&view), repeated_bytes(&req));
            }
            let mut kept = req.clone();
            retain_valid(&mut kept, &limits);
            let again = convert(&kept, &limits).unwrap();
            prop_assert_eq!(again.rejected, 0);
            prop_assert!(same(&again.batch, &general.batch));
        }

        /// Damaged bytes: whenever the direct reader takes them, prost decodes them too, to the
        /// same points.
        #[test]
        fn damaged_bytes_are_read_as_prost_reads_them_or_declined(
            req in wide_request(),
            edits in crate::convert::strategies::edits(),
        ) {
            use prost::Message;
            let limits = Limits::default();
            let bytes = crate::convert::strategies::damaged(req.encode_to_vec(), edits);
            if let Some(direct) = convert_protobuf(&bytes, &limits) {
                let decoded = ExportMetricsServiceRequest::decode(&bytes[..]);
                prop_assert!(decoded.is_ok(), "prost refuses what the direct reader took");
                let general = convert(&decoded.unwrap(), &limits).unwrap();
                prop_assert!(same(&direct.unwrap().batch, &general.batch));
            }
        }
    }
}
