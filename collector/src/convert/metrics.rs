//! OTLP metrics → one Arrow batch of the `metrics` table (a row per data point), with the
//! validation that decides which points are rejected (and reported in `partial_success`).
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
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
    SummaryDataPoint, exemplar, number_data_point,
};

use super::attributes::AttributeColumns;
use super::origin::{Origin, OriginColumns, attributes_bytes, resource_bytes, scope_bytes};
use super::rejections::Rejections;
use crate::limits::Limits;
use crate::schema::metrics;

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

fn check_common(
    name: &str,
    time: u64,
    attributes: &[KeyValue],
    limits: &Limits,
) -> Result<(), PointRejection> {
    if time == 0 || i64::try_from(time).is_err() {
        return Err(PointRejection::Time(name.to_owned()));
    }
    if attributes.len() > limits.max_attributes {
        return Err(PointRejection::TooManyAttributes(
            name.to_owned(),
            attributes.len(),
            limits.max_attributes,
        ));
    }
    Ok(())
}

fn check_histogram(name: &str, p: &HistogramDataPoint) -> Result<(), PointRejection> {
    if p.bucket_counts.is_empty() && p.explicit_bounds.is_empty() {
        return Ok(());
    }
    if p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
        return Err(PointRejection::Buckets(
            name.to_owned(),
            p.bucket_counts.len(),
            p.explicit_bounds.len(),
        ));
    }
    let finite = p.explicit_bounds.iter().all(|b| b.is_finite());
    if !finite || p.explicit_bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(PointRejection::Bounds(name.to_owned()));
    }
    let total: u64 = p
        .bucket_counts
        .iter()
        .fold(0u64, |a, c| a.saturating_add(*c));
    if total != p.count {
        return Err(PointRejection::Count(name.to_owned(), total, p.count));
    }
    Ok(())
}

fn check_exponential(name: &str, p: &ExponentialHistogramDataPoint) -> Result<(), PointRejection> {
    if !(-10..=20).contains(&p.scale) {
        return Err(PointRejection::Scale(name.to_owned(), p.scale));
    }
    let sum = |b: &Option<_>| {
        b.as_ref()
            .map_or(0u64, |b: &opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets| {
                b.bucket_counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
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

fn check_summary(name: &str, p: &SummaryDataPoint) -> Result<(), PointRejection> {
    match p
        .quantile_values
        .iter()
        .find(|q| !(0.0..=1.0).contains(&q.quantile))
    {
        Some(q) => Err(PointRejection::Quantile(name.to_owned(), q.quantile)),
        None => Ok(()),
    }
}

/// Per-metric properties repeated on each of its points.
struct MetricInfo<'a> {
    metric: &'a Metric,
    kind: &'static str,
    temporality: Option<&'static str>,
    monotonic: Option<bool>,
}

/// What kind of point a row holds, with its payload.
enum Point<'a> {
    Number(&'a NumberDataPoint),
    Histogram(&'a HistogramDataPoint),
    Exponential(&'a ExponentialHistogramDataPoint),
    Summary(&'a SummaryDataPoint),
}

impl Point<'_> {
    fn times(&self) -> (u64, u64) {
        match self {
            Point::Number(p) => (p.time_unix_nano, p.start_time_unix_nano),
            Point::Histogram(p) => (p.time_unix_nano, p.start_time_unix_nano),
            Point::Exponential(p) => (p.time_unix_nano, p.start_time_unix_nano),
            Point::Summary(p) => (p.time_unix_nano, p.start_time_unix_nano),
        }
    }

    fn attributes(&self) -> &[KeyValue] {
        match self {
            Point::Number(p) => &p.attributes,
            Point::Histogram(p) => &p.attributes,
            Point::Exponential(p) => &p.attributes,
            Point::Summary(p) => &p.attributes,
        }
    }

    fn flags(&self) -> u32 {
        match self {
            Point::Number(p) => p.flags,
            Point::Histogram(p) => p.flags,
            Point::Exponential(p) => p.flags,
            Point::Summary(p) => p.flags,
        }
    }

    fn exemplars(&self) -> &[Exemplar] {
        match self {
            Point::Number(p) => &p.exemplars,
            Point::Histogram(p) => &p.exemplars,
            Point::Exponential(p) => &p.exemplars,
            Point::Summary(_) => &[],
        }
    }

    fn validate(&self, name: &str, limits: &Limits) -> Result<(), PointRejection> {
        check_common(name, self.times().0, self.attributes(), limits)?;
        match self {
            Point::Number(_) => Ok(()),
            Point::Histogram(p) => check_histogram(name, p),
            Point::Exponential(p) => check_exponential(name, p),
            Point::Summary(p) => check_summary(name, p),
        }
    }
}

/// Calls `each` for every point of a metric, with the metric's per-type properties.
fn points<'a>(
    metric: &'a Metric,
    mut each: impl FnMut(&MetricInfo<'a>, Point<'a>, Result<(), PointRejection>),
) {
    let name = metric.name.as_str();
    let info = |kind, temporality, monotonic| MetricInfo {
        metric,
        kind,
        temporality,
        monotonic,
    };
    match &metric.data {
        None => {}
        Some(Data::Gauge(g)) => {
            let i = info("gauge", None, None);
            for p in &g.data_points {
                each(&i, Point::Number(p), Ok(()));
            }
        }
        Some(Data::Sum(s)) => {
            let t = temporality(name, s.aggregation_temporality);
            let i = info("sum", t.as_ref().ok().copied(), Some(s.is_monotonic));
            for p in &s.data_points {
                each(&i, Point::Number(p), t.clone().map(|_| ()));
            }
        }
        Some(Data::Histogram(h)) => {
            let t = temporality(name, h.aggregation_temporality);
            let i = info("histogram", t.as_ref().ok().copied(), None);
            for p in &h.data_points {
                each(&i, Point::Histogram(p), t.clone().map(|_| ()));
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            let t = temporality(name, h.aggregation_temporality);
            let i = info("exponential_histogram", t.as_ref().ok().copied(), None);
            for p in &h.data_points {
                each(&i, Point::Exponential(p), t.clone().map(|_| ()));
            }
        }
        Some(Data::Summary(s)) => {
            let i = info("summary", None, None);
            for p in &s.data_points {
                each(&i, Point::Summary(p), Ok(()));
            }
        }
    }
}

/// Keeps only the points that convert (what is logged is what was acknowledged).
pub fn retain_valid(request: &mut ExportMetricsServiceRequest, limits: &Limits) {
    let too_many = |attrs: &[KeyValue]| attrs.len() > limits.max_attributes;
    request.resource_metrics.retain_mut(|rm| {
        rm.scope_metrics
            .retain(|sm| !too_many(sm.scope.as_ref().map_or(&[][..], |s| &s.attributes[..])));
        !too_many(rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]))
    });
    for sm in request
        .resource_metrics
        .iter_mut()
        .flat_map(|rm| &mut rm.scope_metrics)
    {
        for metric in &mut sm.metrics {
            let name = metric.name.clone();
            let keep = |p: &Point<'_>| p.validate(&name, limits).is_ok();
            let valid_temporality = |t: i32| temporality(&name, t).is_ok();
            match &mut metric.data {
                None => {}
                Some(Data::Gauge(g)) => g.data_points.retain(|p| keep(&Point::Number(p))),
                Some(Data::Sum(s)) => {
                    let ok = valid_temporality(s.aggregation_temporality);
                    s.data_points.retain(|p| ok && keep(&Point::Number(p)));
                }
                Some(Data::Histogram(h)) => {
                    let ok = valid_temporality(h.aggregation_temporality);
                    h.data_points.retain(|p| ok && keep(&Point::Histogram(p)));
                }
                Some(Data::ExponentialHistogram(h)) => {
                    let ok = valid_temporality(h.aggregation_temporality);
                    h.data_points.retain(|p| ok && keep(&Point::Exponential(p)));
                }
                Some(Data::Summary(s)) => s.data_points.retain(|p| keep(&Point::Summary(p))),
            }
        }
    }
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
    fn append(&mut self, exemplars: &[Exemplar]) {
        self.lengths.push(exemplars.len());
        let time = self.time.get_or_insert_with(|| timestamps(0));
        let attributes = self
            .attributes
            .get_or_insert_with(|| AttributeColumns::with_capacity(0));
        for e in exemplars {
            time.append_value(i64::try_from(e.time_unix_nano).unwrap_or(i64::MAX));
            match e.value {
                Some(exemplar::Value::AsDouble(d)) => {
                    self.value.append_value(d);
                    self.value_int.append_null();
                }
                Some(exemplar::Value::AsInt(i)) => {
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
            id(&e.trace_id, &mut self.trace_id);
            id(&e.span_id, &mut self.span_id);
            attributes.append(&e.filtered_attributes);
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
    fn append(&mut self, point: Option<&SummaryDataPoint>) {
        let values = point.map_or(&[][..], |p| &p.quantile_values[..]);
        self.lengths.push(values.len());
        self.valid.push(point.is_some());
        for q in values {
            self.quantile.append_value(q.quantile);
            self.value.append_value(q.value);
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

    fn append(&mut self, info: &MetricInfo<'_>, point: &Point<'_>, origin: &Origin<'_>) {
        let (time, start) = point.times();
        self.time
            .append_value(i64::try_from(time).unwrap_or(i64::MAX));
        match i64::try_from(start) {
            Ok(s) if s > 0 => self.start_time.append_value(s),
            _ => self.start_time.append_null(),
        }
        let m = info.metric;
        self.name.append_value(&m.name);
        self.kind.append_value(info.kind);
        self.unit.append_value(&m.unit);
        self.description.append_value(&m.description);
        self.metadata.append(&m.metadata);
        self.temporality.append_option(info.temporality);
        self.monotonic.append_option(info.monotonic);

        let (mut count, mut sum, mut min, mut max) = (None, None, None, None);
        match point {
            Point::Number(p) => match p.value {
                Some(number_data_point::Value::AsDouble(d)) => {
                    self.value.append_value(d);
                    self.value_int.append_null();
                }
                Some(number_data_point::Value::AsInt(i)) => {
                    self.value.append_value(i as f64);
                    self.value_int.append_value(i);
                }
                None => {
                    self.value.append_null();
                    self.value_int.append_null();
                }
            },
            _ => {
                self.value.append_null();
                self.value_int.append_null();
            }
        }
        match point {
            Point::Histogram(p) => {
                (count, sum, min, max) = (Some(p.count), p.sum, p.min, p.max);
                self.bucket_counts
                    .append_value(p.bucket_counts.iter().map(|c| Some(*c)));
                self.bounds
                    .append_value(p.explicit_bounds.iter().map(|b| Some(*b)));
            }
            _ => {
                self.bucket_counts.append_null();
                self.bounds.append_null();
            }
        }
        match point {
            Point::Exponential(p) => {
                (count, sum, min, max) = (Some(p.count), p.sum, p.min, p.max);
                self.scale.append_value(p.scale);
                self.zero_count.append_value(p.zero_count);
                self.zero_threshold.append_value(p.zero_threshold);
                for (buckets, offset, counts) in [
                    (
                        &p.positive,
                        &mut self.positive_offset,
                        &mut self.positive_counts,
                    ),
                    (
                        &p.negative,
                        &mut self.negative_offset,
                        &mut self.negative_counts,
                    ),
                ] {
                    match buckets {
                        Some(b) => {
                            offset.append_value(b.offset);
                            counts.append_value(b.bucket_counts.iter().map(|c| Some(*c)));
                        }
                        None => {
                            offset.append_null();
                            counts.append_null();
                        }
                    }
                }
            }
            _ => {
                self.scale.append_null();
                self.zero_count.append_null();
                self.zero_threshold.append_null();
                self.positive_offset.append_null();
                self.positive_counts.append_null();
                self.negative_offset.append_null();
                self.negative_counts.append_null();
            }
        }
        match point {
            Point::Summary(p) => {
                (count, sum) = (Some(p.count), Some(p.sum));
                self.quantiles.append(Some(p));
            }
            _ => self.quantiles.append(None),
        }
        self.count.append_option(count);
        self.sum.append_option(sum);
        self.min.append_option(min);
        self.max.append_option(max);
        self.flags.append_value(point.flags());
        self.exemplars.append(point.exemplars());
        self.origin.append(origin);
        self.attributes.append(point.attributes());
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
                let points = match &metric.data {
                    None => 0,
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(Data::Summary(s)) => s.data_points.len(),
                };
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

/// Converts every valid point of `request`; invalid ones are counted and skipped.
pub fn convert(
    request: &ExportMetricsServiceRequest,
    limits: &Limits,
) -> Result<super::Converted, ArrowError> {
    let mut columns = MetricColumns::with_capacity(0);
    let mut rejected = Rejections::new("data point", "data points");
    for rm in &request.resource_metrics {
        for sm in &rm.scope_metrics {
            let origin = Origin::new(
                rm.resource.as_ref(),
                &rm.schema_url,
                sm.scope.as_ref(),
                &sm.schema_url,
            );
            let shared = if origin.resource_attributes.len() > limits.max_attributes
                || origin.scope_attributes.len() > limits.max_attributes
            {
                Err(())
            } else {
                Ok(())
            };
            for metric in &sm.metrics {
                points(metric, |info, point, type_check| {
                    let result = type_check.and_then(|_| point.validate(&metric.name, limits));
                    match (shared, result) {
                        (Ok(()), Ok(())) => columns.append(info, &point, &origin),
                        (Err(()), _) => rejected.add(PointRejection::TooManyAttributes(
                            metric.name.clone(),
                            origin
                                .resource_attributes
                                .len()
                                .max(origin.scope_attributes.len()),
                            limits.max_attributes,
                        )),
                        (_, Err(e)) => rejected.add(e),
                    }
                });
            }
        }
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
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
    use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum, Summary,
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
}
