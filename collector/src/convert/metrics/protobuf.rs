//! The metrics of a metrics export request, read straight from its protobuf bytes (see
//! [`crate::convert::protobuf`] for what every reader shares and what it declines). Besides
//! what every reader declines, a metric's data given twice (prost merges two of one kind) and
//! an exponential histogram's buckets given twice are left to prost. Repeated numbers are read
//! packed or not, as prost reads them.

use super::view::{
    BucketsView, ExemplarView, Kind, MetricRecords, MetricView, MetricsView, Number, PointView,
};
use crate::convert::protobuf::{Fields, I64, LEN, VARINT, attribute, read_blocks};

/// Reads `bytes` as an `ExportMetricsServiceRequest`, or declines.
pub fn read(bytes: &[u8]) -> Option<MetricsView<'_>> {
    let mut view = MetricsView::default();
    let MetricsView { origins, records } = &mut view;
    read_blocks(bytes, origins, |bytes| metric(records, bytes))?;
    Some(view)
}

fn double(fields: &mut Fields<'_>) -> Option<f64> {
    fields.fixed64().map(f64::from_bits)
}

/// A `sint32`, zigzag-encoded, truncated to 32 bits first as prost does.
fn sint32(fields: &mut Fields<'_>) -> Option<i32> {
    let value = fields.varint()? as u32;
    Some(((value >> 1) as i32) ^ -((value & 1) as i32))
}

/// One element of a `repeated fixed64`/`double` field, or all of a packed run of them.
fn fixed64s(fields: &mut Fields<'_>, wire: u8, to: &mut Vec<u64>) -> Option<()> {
    match wire {
        I64 => to.push(fields.fixed64()?),
        LEN => {
            let packed = fields.bytes()?;
            if packed.len() % 8 != 0 {
                return None;
            }
            to.extend(
                packed
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())),
            );
        }
        _ => return None,
    }
    Some(())
}

/// One element of a `repeated uint64` field, or all of a packed run of them.
fn varints(fields: &mut Fields<'_>, wire: u8, to: &mut Vec<u64>) -> Option<()> {
    match wire {
        VARINT => to.push(fields.varint()?),
        LEN => {
            let mut packed = Fields::new(fields.bytes()?);
            while !packed.done() {
                to.push(packed.varint()?);
            }
        }
        _ => return None,
    }
    Some(())
}

fn metric<'a>(v: &mut MetricRecords<'a>, bytes: &'a [u8]) -> Option<()> {
    let mut metric = MetricView {
        metadata: v.attributes.len()..v.attributes.len(),
        ..MetricView::default()
    };
    let mut metadata = Vec::new();
    let points_start = v.points.len();
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        match fields.key()? {
            (1, LEN) => metric.name = fields.str()?,
            (2, LEN) => metric.description = fields.str()?,
            (3, LEN) => metric.unit = fields.str()?,
            (tag @ (5 | 7 | 9 | 10 | 11), LEN) => {
                // A second data would replace the first, or be merged into it.
                if metric.kind.is_some() {
                    return None;
                }
                let kind = match tag {
                    5 => Kind::Gauge,
                    7 => Kind::Sum,
                    9 => Kind::Histogram,
                    10 => Kind::ExponentialHistogram,
                    _ => Kind::Summary,
                };
                metric.kind = Some(kind);
                data(v, &mut metric, kind, fields.bytes()?)?;
            }
            // Metadata is read after the points, so the points' attributes stay together.
            (12, LEN) => metadata.push(attribute(fields.bytes()?)?),
            (1..=3 | 5 | 7 | 9..=12, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    let start = v.attributes.len();
    v.attributes.extend(metadata);
    metric.metadata = start..v.attributes.len();
    metric.points = points_start..v.points.len();
    v.metrics.push(metric);
    Some(())
}

/// A `Gauge`, `Sum`, `Histogram`, `ExponentialHistogram` or `Summary`: its points (field 1),
/// and for some a temporality (2) and whether it is monotonic (3).
fn data<'a>(
    v: &mut MetricRecords<'a>,
    metric: &mut MetricView<'a>,
    kind: Kind,
    bytes: &'a [u8],
) -> Option<()> {
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        match (kind, fields.key()?) {
            (_, (1, LEN)) => {
                let point = fields.bytes()?;
                let point = match kind {
                    Kind::Gauge | Kind::Sum => number_point(v, point)?,
                    Kind::Histogram => histogram_point(v, point)?,
                    Kind::ExponentialHistogram => exponential_point(v, point)?,
                    Kind::Summary => summary_point(v, point)?,
                };
                v.points.push(point);
            }
            (Kind::Sum | Kind::Histogram | Kind::ExponentialHistogram, (2, VARINT)) => {
                metric.temporality = fields.varint()? as i32;
            }
            (Kind::Sum, (3, VARINT)) => metric.monotonic = fields.varint()? != 0,
            (_, (1, _)) => return None,
            (Kind::Sum | Kind::Histogram | Kind::ExponentialHistogram, (2, _)) => return None,
            (Kind::Sum, (3, _)) => return None,
            (_, (_, wire)) => fields.skip(wire)?,
        }
    }
    Some(())
}

/// The fields every point kind has: attributes (`attributes_tag`), start time 2, time 3.
/// Returns whether it was one of them.
fn common<'a>(
    v: &mut MetricRecords<'a>,
    point: &mut PointView,
    fields: &mut Fields<'a>,
    key: (u32, u8),
    attributes_tag: u32,
) -> Option<bool> {
    match key {
        (tag, LEN) if tag == attributes_tag => v.attributes.push(attribute(fields.bytes()?)?),
        (2, I64) => point.start_time_unix_nano = fields.fixed64()?,
        (3, I64) => point.time_unix_nano = fields.fixed64()?,
        (tag, _) if tag == attributes_tag || tag == 2 || tag == 3 => return None,
        _ => return Some(false),
    }
    Some(true)
}

/// Exemplars are read after their point's attributes, so each list stays together.
fn push_exemplars<'a>(
    v: &mut MetricRecords<'a>,
    exemplars: &[&'a [u8]],
) -> Option<std::ops::Range<usize>> {
    let start = v.exemplars.len();
    for bytes in exemplars {
        let exemplar = exemplar(v, bytes)?;
        v.exemplars.push(exemplar);
    }
    Some(start..v.exemplars.len())
}

fn exemplar<'a>(v: &mut MetricRecords<'a>, bytes: &'a [u8]) -> Option<ExemplarView<'a>> {
    let first = v.attributes.len();
    let mut e = ExemplarView::default();
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        match fields.key()? {
            (7, LEN) => v.attributes.push(attribute(fields.bytes()?)?),
            (2, I64) => e.time_unix_nano = fields.fixed64()?,
            (3, I64) => e.value = Some(Number::Double(double(&mut fields)?)),
            (6, I64) => e.value = Some(Number::Int(fields.fixed64()? as i64)),
            (4, LEN) => e.span_id = fields.bytes()?,
            (5, LEN) => e.trace_id = fields.bytes()?,
            (2..=7, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    e.attributes = first..v.attributes.len();
    Some(e)
}

/// A `NumberDataPoint`: attributes 7, value 4 (double) or 6 (sfixed64), exemplars 5, flags 8.
fn number_point<'a>(v: &mut MetricRecords<'a>, bytes: &'a [u8]) -> Option<PointView> {
    let first = v.attributes.len();
    let mut point = PointView::default();
    let mut exemplars = Vec::new();
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        let key = fields.key()?;
        if common(v, &mut point, &mut fields, key, 7)? {
            continue;
        }
        match key {
            (4, I64) => point.value = Some(Number::Double(double(&mut fields)?)),
            (6, I64) => point.value = Some(Number::Int(fields.fixed64()? as i64)),
            (5, LEN) => exemplars.push(fields.bytes()?),
            (8, VARINT) => point.flags = fields.varint()? as u32,
            (4..=8, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    point.attributes = first..v.attributes.len();
    point.exemplars = push_exemplars(v, &exemplars)?;
    Some(point)
}

/// A `HistogramDataPoint`: attributes 9, count 4, sum 5, bucket counts 6, bounds 7,
/// exemplars 8, flags 10, min 11, max 12.
fn histogram_point<'a>(v: &mut MetricRecords<'a>, bytes: &'a [u8]) -> Option<PointView> {
    let first = v.attributes.len();
    let mut point = PointView::default();
    let mut exemplars = Vec::new();
    let mut counts = Vec::new();
    let mut bounds = Vec::new();
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        let key = fields.key()?;
        if common(v, &mut point, &mut fields, key, 9)? {
            continue;
        }
        match key {
            (4, I64) => point.count = fields.fixed64()?,
            (5, I64) => point.sum = Some(double(&mut fields)?),
            (6, wire) => fixed64s(&mut fields, wire, &mut counts)?,
            (7, wire) => fixed64s(&mut fields, wire, &mut bounds)?,
            (8, LEN) => exemplars.push(fields.bytes()?),
            (10, VARINT) => point.flags = fields.varint()? as u32,
            (11, I64) => point.min = Some(double(&mut fields)?),
            (12, I64) => point.max = Some(double(&mut fields)?),
            (4..=12, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    point.attributes = first..v.attributes.len();
    point.exemplars = push_exemplars(v, &exemplars)?;
    let c = v.counts.len();
    v.counts.extend(counts);
    point.bucket_counts = c..v.counts.len();
    let b = v.bounds.len();
    v.bounds.extend(bounds.into_iter().map(f64::from_bits));
    point.explicit_bounds = b..v.bounds.len();
    Some(point)
}

/// An `ExponentialHistogramDataPoint`: attributes 1, count 4, sum 5, scale 6, zero count 7,
/// positive 8 and negative 9 buckets, flags 10, exemplars 11, min 12, max 13, zero threshold 14.
fn exponential_point<'a>(v: &mut MetricRecords<'a>, bytes: &'a [u8]) -> Option<PointView> {
    let first = v.attributes.len();
    let mut point = PointView::default();
    let mut exemplars = Vec::new();
    let mut positive = None;
    let mut negative = None;
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        let key = fields.key()?;
        if common(v, &mut point, &mut fields, key, 1)? {
            continue;
        }
        match key {
            (4, I64) => point.count = fields.fixed64()?,
            (5, I64) => point.sum = Some(double(&mut fields)?),
            (6, VARINT) => point.scale = sint32(&mut fields)?,
            (7, I64) => point.zero_count = fields.fixed64()?,
            (tag @ (8 | 9), LEN) => {
                let slot = if tag == 8 {
                    &mut positive
                } else {
                    &mut negative
                };
                // Buckets given twice would be merged by prost.
                if slot.is_some() {
                    return None;
                }
                *slot = Some(buckets(fields.bytes()?)?);
            }
            (10, VARINT) => point.flags = fields.varint()? as u32,
            (11, LEN) => exemplars.push(fields.bytes()?),
            (12, I64) => point.min = Some(double(&mut fields)?),
            (13, I64) => point.max = Some(double(&mut fields)?),
            (14, I64) => point.zero_threshold = double(&mut fields)?,
            (4..=14, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    point.attributes = first..v.attributes.len();
    point.exemplars = push_exemplars(v, &exemplars)?;
    let mut place = |b: Option<(i32, Vec<u64>)>| {
        b.map(|(offset, counts)| {
            let c = v.counts.len();
            v.counts.extend(counts);
            BucketsView {
                offset,
                counts: c..v.counts.len(),
            }
        })
    };
    point.positive = place(positive);
    point.negative = place(negative);
    Some(point)
}

/// A `Buckets`: offset 1 (sint32), counts 2 (uint64).
fn buckets(bytes: &[u8]) -> Option<(i32, Vec<u64>)> {
    let mut offset = 0;
    let mut counts = Vec::new();
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        match fields.key()? {
            (1, VARINT) => offset = sint32(&mut fields)?,
            (2, wire) => varints(&mut fields, wire, &mut counts)?,
            (1, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    Some((offset, counts))
}

/// A `SummaryDataPoint`: attributes 7, count 4, sum 5, quantile values 6, flags 8.
fn summary_point<'a>(v: &mut MetricRecords<'a>, bytes: &'a [u8]) -> Option<PointView> {
    let first = v.attributes.len();
    let mut point = PointView {
        sum: Some(0.0),
        ..PointView::default()
    };
    let mut quantiles = Vec::new();
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        let key = fields.key()?;
        if common(v, &mut point, &mut fields, key, 7)? {
            continue;
        }
        match key {
            (4, I64) => point.count = fields.fixed64()?,
            (5, I64) => point.sum = Some(double(&mut fields)?),
            (6, LEN) => {
                let mut q = Fields::new(fields.bytes()?);
                let (mut quantile, mut value) = (0.0, 0.0);
                while !q.done() {
                    match q.key()? {
                        (1, I64) => quantile = double(&mut q)?,
                        (2, I64) => value = double(&mut q)?,
                        (1 | 2, _) => return None,
                        (_, wire) => q.skip(wire)?,
                    }
                }
                quantiles.push((quantile, value));
            }
            (8, VARINT) => point.flags = fields.varint()? as u32,
            (4..=8, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    point.attributes = first..v.attributes.len();
    let q = v.quantiles.len();
    v.quantiles.extend(quantiles);
    point.quantiles = q..v.quantiles.len();
    Some(point)
}
