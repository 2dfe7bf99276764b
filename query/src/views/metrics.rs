//! Metrics: the list of metrics, and time series of one metric, filtered and grouped by
//! attributes, with an aggregation fitting its type.
//!
//! A *series* is one metric from one resource (its service, instance and resource attributes)
//! with one set of point attributes. Per step:
//! - counters (monotonic sums): `increase` and `rate` (per second) — for cumulative series the
//!   difference between consecutive points, a drop or a new start time counting as a reset (the
//!   new value is then the increase); for delta series the values themselves; summed over the
//!   group's series. A series' first point counts from zero when its start time is in the range.
//! - gauges and non-monotonic sums: `last` (each series' latest value, summed over the group),
//!   `avg`, `min`, `max` (over every point of the group).
//! - histograms (explicit and exponential): `quantile` (with `q`, default 0.99) estimated by
//!   linear interpolation inside the bucket that holds the rank, `avg` (sum / count), `count` and
//!   `sum` — all from the increase of the buckets, count and sum over the step, as for counters.
//! - summaries: `quantile` (the series' latest reported value for `q`, averaged over the group),
//!   `count`, `sum` (increases).

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::array::{Array, AsArray, ListArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int32Type, TimestampNanosecondType, UInt64Type};
use datafusion::common::ScalarValue;
use lakescope_collector::schema::metrics::col;
use lakescope_collector::schema::rows::text_entries;
use serde::Serialize;

use super::rows;
use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::time_range::TimeRange;
use crate::views::traces::rfc3339;

/// One metric in the list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub unit: String,
    pub description: String,
    pub monotonic: Option<bool>,
    pub temporality: Option<String>,
    pub services: Vec<String>,
    pub attribute_keys: Vec<String>,
    pub points: u64,
}

fn strings_of(list: &ListArray, row: usize) -> Vec<String> {
    let values = list.value(row);
    let mut out: Vec<String> = values
        .as_string_opt::<i32>()
        .map(|a| a.iter().flatten().map(str::to_owned).collect())
        .or_else(|| {
            values
                .as_string_view_opt()
                .map(|a| a.iter().flatten().map(str::to_owned).collect())
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

/// Every metric with points in `range`, by name.
pub async fn list(
    engine: &QueryEngine,
    range: TimeRange,
) -> Result<Vec<MetricSummary>, QueryError> {
    let params = || vec![timestamp(range.start), timestamp(range.end)];
    let summary = "SELECT metric_name, metric_type, first_value(metric_unit) AS unit, \
           first_value(metric_description) AS description, bool_or(is_monotonic) AS monotonic, \
           first_value(temporality) AS temporality, array_agg(DISTINCT service_name) AS services, \
           count(*) AS points \
         FROM metrics WHERE time >= $1 AND time < $2 GROUP BY metric_name, metric_type ORDER BY metric_name";
    let keys = "SELECT metric_name, array_agg(DISTINCT k) AS keys FROM \
           (SELECT metric_name, unnest(map_keys(attributes)) AS k FROM metrics WHERE time >= $1 AND time < $2) \
         GROUP BY metric_name";
    let (summary, keys) = tokio::try_join!(
        engine.query(summary, params()),
        engine.query(keys, params())
    )?;
    let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
    for batch in &keys.batches {
        let name = rows::strings(batch, "metric_name")?;
        let list = batch
            .column_by_name("keys")
            .and_then(|c| c.as_list_opt::<i32>())
            .ok_or_else(|| QueryError::Execution("metrics list: keys".into()))?;
        for row in 0..batch.num_rows() {
            by_name.insert(name.value(row).to_owned(), strings_of(list, row));
        }
    }
    let mut out = Vec::new();
    for batch in &summary.batches {
        let name = rows::strings(batch, "metric_name")?;
        let kind = rows::strings(batch, "metric_type")?;
        let unit = rows::strings(batch, "unit")?;
        let description = rows::strings(batch, "description")?;
        let temporality = rows::strings(batch, "temporality")?;
        let monotonic = batch
            .column_by_name("monotonic")
            .and_then(|c| c.as_boolean_opt())
            .ok_or_else(|| QueryError::Execution("metrics list: monotonic".into()))?;
        let services = batch
            .column_by_name("services")
            .and_then(|c| c.as_list_opt::<i32>())
            .ok_or_else(|| QueryError::Execution("metrics list: services".into()))?;
        let points = rows::ints(batch, "points")?;
        for row in 0..batch.num_rows() {
            let name = name.value(row).to_owned();
            out.push(MetricSummary {
                attribute_keys: by_name.remove(&name).unwrap_or_default(),
                name,
                kind: kind.value(row).to_owned(),
                unit: unit.value(row).to_owned(),
                description: description.value(row).to_owned(),
                monotonic: (!monotonic.is_null(row)).then(|| monotonic.value(row)),
                temporality: rows::text(temporality, row),
                services: strings_of(services, row),
                points: rows::count(points, row),
            });
        }
    }
    Ok(out)
}

/// How to aggregate a metric's points per step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Agg {
    Rate,
    Increase,
    Last,
    Avg,
    Min,
    Max,
    Quantile,
    Count,
    Sum,
}

impl Agg {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "rate" => Agg::Rate,
            "increase" => Agg::Increase,
            "last" => Agg::Last,
            "avg" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "quantile" => Agg::Quantile,
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            _ => return None,
        })
    }

    /// The aggregations that fit a metric type.
    fn fits(self, kind: &str, monotonic: bool) -> bool {
        use Agg::*;
        match kind {
            "sum" if monotonic => matches!(self, Rate | Increase | Last),
            "gauge" | "sum" => matches!(self, Last | Avg | Min | Max),
            "histogram" | "exponential_histogram" => matches!(self, Quantile | Avg | Count | Sum),
            "summary" => matches!(self, Quantile | Count | Sum),
            _ => false,
        }
    }

    fn default_for(kind: &str, monotonic: bool) -> Self {
        match kind {
            "sum" if monotonic => Agg::Rate,
            "gauge" | "sum" => Agg::Last,
            _ => Agg::Quantile,
        }
    }
}

/// Most points one metric query reads (they are aggregated in memory).
pub const MAX_POINTS: usize = 2_000_000;

/// What to chart.
#[derive(Debug, Clone)]
pub struct MetricQuery {
    pub name: String,
    pub range: TimeRange,
    pub step: i64,
    /// `key=value` on point attributes, resource attributes or `service.name`.
    pub filters: Vec<(String, String)>,
    pub group_by: Vec<String>,
    pub agg: Option<Agg>,
    pub quantile: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub labels: BTreeMap<String, String>,
    pub values: Vec<Option<f64>>,
}

/// A measurement the SDK kept as an example, with the trace it happened in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExemplarRef {
    pub time: String,
    pub value: Option<f64>,
    pub trace_id: String,
    pub span_id: Option<String>,
    pub service: String,
}

/// Up to 100 of the metric's most recent exemplars that carry a trace id.
pub async fn exemplars(
    engine: &QueryEngine,
    name: &str,
    range: TimeRange,
) -> Result<Vec<ExemplarRef>, QueryError> {
    let sql = "SELECT e['time'] AS t, e['value'] AS v, encode(e['trace_id'], 'hex') AS trace_id, \
           encode(e['span_id'], 'hex') AS span_id, service_name FROM \
           (SELECT unnest(exemplars) AS e, service_name FROM metrics \
            WHERE metric_name = $1 AND time >= $2 AND time < $3) \
         WHERE e['trace_id'] IS NOT NULL ORDER BY t DESC LIMIT 100";
    let rows_of = engine
        .query(
            sql,
            vec![
                ScalarValue::Utf8(Some(name.to_owned())),
                timestamp(range.start),
                timestamp(range.end),
            ],
        )
        .await?;
    let mut out = Vec::new();
    for batch in &rows_of.batches {
        let t = batch
            .column_by_name("t")
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or_else(|| QueryError::Execution("exemplars: t".into()))?;
        let v = batch
            .column_by_name("v")
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| QueryError::Execution("exemplars: v".into()))?;
        let trace = rows::strings(batch, "trace_id")?;
        let span = rows::strings(batch, "span_id")?;
        let service = rows::strings(batch, "service_name")?;
        for row in 0..batch.num_rows() {
            out.push(ExemplarRef {
                time: rfc3339(t.value(row)),
                value: (!v.is_null(row)).then(|| v.value(row)),
                trace_id: trace.value(row).to_owned(),
                span_id: rows::text(span, row),
                service: service.value(row).to_owned(),
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSeries {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub unit: String,
    pub agg: Agg,
    pub quantile: Option<f64>,
    pub step_seconds: f64,
    pub times: Vec<String>,
    pub series: Vec<Line>,
    pub exemplars: Vec<ExemplarRef>,
}

/// The payload of one point.
#[derive(Debug, Clone)]
enum Payload {
    Number(f64),
    Histogram {
        count: u64,
        sum: f64,
        bounds: Vec<f64>,
        counts: Vec<u64>,
    },
    Exponential {
        count: u64,
        sum: f64,
        scale: i32,
        zero: u64,
        positive: (i32, Vec<u64>),
        negative: (i32, Vec<u64>),
    },
    Summary {
        count: u64,
        sum: f64,
        quantiles: Vec<(f64, f64)>,
    },
}

#[derive(Debug, Clone)]
struct Sample {
    time: i64,
    start: Option<i64>,
    payload: Payload,
}

/// Per-group, per-step accumulators.
#[derive(Debug, Clone, Default)]
struct Cell {
    increase: f64,
    last: Vec<f64>,
    values: Vec<f64>,
    count: f64,
    sum: f64,
    /// Explicit buckets: bounds and summed count increases.
    buckets: Option<(Vec<f64>, Vec<f64>)>,
    exp: Option<ExpBuckets>,
    quantiles: Vec<f64>,
    seen: bool,
}

/// Exponential buckets at a common scale: counts by bucket index.
#[derive(Debug, Clone, Default)]
struct ExpBuckets {
    scale: i32,
    zero: f64,
    positive: BTreeMap<i32, f64>,
    negative: BTreeMap<i32, f64>,
}

pub(crate) fn u64s(list: &ListArray, row: usize) -> Vec<u64> {
    if list.is_null(row) {
        return Vec::new();
    }
    list.value(row)
        .as_primitive_opt::<UInt64Type>()
        .map(|a| a.values().to_vec())
        .unwrap_or_default()
}

pub(crate) fn f64s(list: &ListArray, row: usize) -> Vec<f64> {
    if list.is_null(row) {
        return Vec::new();
    }
    list.value(row)
        .as_primitive_opt::<Float64Type>()
        .map(|a| a.values().to_vec())
        .unwrap_or_default()
}

pub(crate) fn list_col<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a ListArray, QueryError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_list_opt::<i32>())
        .ok_or_else(|| QueryError::Execution(format!("metrics query: column {name}")))
}

/// The value of a group-by key for a point: its attributes, then its resource's, then service.
fn label(
    key: &str,
    attrs: &[(String, String)],
    resource: &[(String, String)],
    service: &str,
) -> String {
    attrs
        .iter()
        .chain(resource)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| {
            if key == "service.name" {
                service.to_owned()
            } else {
                String::new()
            }
        })
}

/// The increase of a cumulative quantity from `prev` to `cur`, treating a drop or a new start
/// time as a reset.
fn increase(
    prev: Option<(&Sample, f64)>,
    cur: &Sample,
    value: f64,
    lookback_start: i64,
) -> Option<f64> {
    match prev {
        Some((p, before)) if p.start == cur.start && value >= before => Some(value - before),
        Some(_) => Some(value),
        None => cur.start.filter(|s| *s >= lookback_start).map(|_| value),
    }
}

/// Linear interpolation of the `q` quantile inside explicit buckets (upper bounds inclusive;
/// the last bucket unbounded, reported at the highest finite bound).
pub fn bucket_quantile(q: f64, bounds: &[f64], counts: &[f64]) -> Option<f64> {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 || bounds.is_empty() {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut seen = 0.0;
    for (i, c) in counts.iter().enumerate() {
        if *c > 0.0 && seen + c >= rank {
            let Some(upper) = bounds.get(i) else {
                return bounds.last().copied();
            };
            let lower = if i == 0 {
                upper.min(0.0)
            } else {
                bounds[i - 1]
            };
            return Some(lower + (upper - lower) * ((rank - seen) / c).clamp(0.0, 1.0));
        }
        seen += c;
    }
    bounds.last().copied()
}

/// The `q` quantile of exponential buckets at `scale` (bucket `i` holds (base^i, base^(i+1)]).
fn exponential_quantile(
    q: f64,
    scale: i32,
    zero: f64,
    positive: &BTreeMap<i32, f64>,
    negative: &BTreeMap<i32, f64>,
) -> Option<f64> {
    let base = 2f64.powf(2f64.powi(-scale));
    let total = zero + positive.values().sum::<f64>() + negative.values().sum::<f64>();
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut seen = 0.0;
    // Negative buckets from the most negative up.
    for (i, c) in negative.iter().rev() {
        if *c > 0.0 && seen + c >= rank {
            let (lo, hi) = (-base.powi(i + 1), -base.powi(*i));
            return Some(lo + (hi - lo) * ((rank - seen) / c));
        }
        seen += c;
    }
    if zero > 0.0 && seen + zero >= rank {
        return Some(0.0);
    }
    seen += zero;
    for (i, c) in positive {
        if *c > 0.0 && seen + c >= rank {
            let (lo, hi) = (base.powi(*i), base.powi(i + 1));
            return Some(lo + (hi - lo) * ((rank - seen) / c).clamp(0.0, 1.0));
        }
        seen += c;
    }
    None
}

/// Adds exponential buckets to a cell, bringing both to the lower of the two scales.
fn add_exponential(
    cell: &mut Cell,
    scale: i32,
    zero: f64,
    pos: &BTreeMap<i32, f64>,
    neg: &BTreeMap<i32, f64>,
) {
    let e = cell.exp.get_or_insert_with(|| ExpBuckets {
        scale,
        ..ExpBuckets::default()
    });
    let (s, z, p, n) = (&mut e.scale, &mut e.zero, &mut e.positive, &mut e.negative);
    let target = (*s).min(scale);
    let rescale = |m: &BTreeMap<i32, f64>, from: i32| -> BTreeMap<i32, f64> {
        let mut out = BTreeMap::new();
        for (i, c) in m {
            *out.entry(i >> (from - target)).or_insert(0.0) += c;
        }
        out
    };
    if target < *s {
        *p = rescale(p, *s);
        *n = rescale(n, *s);
        *s = target;
    }
    *z += zero;
    for (i, c) in rescale(pos, scale) {
        *p.entry(i).or_insert(0.0) += c;
    }
    for (i, c) in rescale(neg, scale) {
        *n.entry(i).or_insert(0.0) += c;
    }
}

fn exp_map(offset: i32, counts: &[u64]) -> BTreeMap<i32, f64> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(k, c)| (offset + k as i32, *c as f64))
        .collect()
}

/// Time series of one metric.
pub async fn query(engine: &QueryEngine, q: &MetricQuery) -> Result<MetricSeries, QueryError> {
    let lookback = q.step.max(300_000_000_000);
    let lookback_start = q.range.start.saturating_sub(lookback);
    let mut params = vec![
        ScalarValue::Utf8(Some(q.name.clone())),
        timestamp(lookback_start),
        timestamp(q.range.end),
    ];
    let mut filter = String::new();
    for (k, v) in &q.filters {
        params.push(ScalarValue::Utf8(Some(v.clone())));
        let n = params.len();
        if k == "service.name" {
            filter.push_str(&format!(" AND service_name = ${n}"));
        } else {
            let key = k.replace('\'', "''");
            filter.push_str(&format!(
                " AND (attributes['{key}'] = ${n} OR resource_attributes['{key}'] = ${n})"
            ));
        }
    }
    let sql = format!(
        "SELECT {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {} \
         FROM metrics WHERE metric_name = $1 AND time >= $2 AND time < $3{filter} \
         ORDER BY time LIMIT {}",
        col::TIME,
        col::START_TIME,
        col::METRIC_TYPE,
        col::METRIC_UNIT,
        col::TEMPORALITY,
        col::IS_MONOTONIC,
        col::VALUE,
        col::COUNT,
        col::SUM,
        col::BUCKET_COUNTS,
        col::EXPLICIT_BOUNDS,
        col::EXP_SCALE,
        col::EXP_ZERO_COUNT,
        col::EXP_POSITIVE_OFFSET,
        col::EXP_POSITIVE_BUCKET_COUNTS,
        col::EXP_NEGATIVE_OFFSET,
        col::EXP_NEGATIVE_BUCKET_COUNTS,
        col::QUANTILES,
        col::SERVICE_NAME,
        col::SERVICE_INSTANCE_ID,
        col::ATTRIBUTES,
        col::RESOURCE_ATTRIBUTES,
        MAX_POINTS + 1,
    );
    let rows_of = engine.query(&sql, params).await?;
    let fetched: usize = rows_of.batches.iter().map(|b| b.num_rows()).sum();
    if fetched > MAX_POINTS {
        return Err(QueryError::Invalid(format!(
            "more than {MAX_POINTS} points of {:?} in this range: narrow the range or filter",
            q.name
        )));
    }

    let mut kind = String::new();
    let mut unit = String::new();
    let mut monotonic = false;
    let mut delta = false;
    // Series key → (group labels, samples in time order).
    let mut series: HashMap<String, (Vec<String>, Vec<Sample>)> = HashMap::new();
    for batch in &rows_of.batches {
        let time = batch
            .column_by_name(col::TIME)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or_else(|| QueryError::Execution("metrics query: time".into()))?;
        let start = batch
            .column_by_name(col::START_TIME)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or_else(|| QueryError::Execution("metrics query: start_time".into()))?;
        let kinds = rows::strings(batch, col::METRIC_TYPE)?;
        let units = rows::strings(batch, col::METRIC_UNIT)?;
        let temporality = rows::strings(batch, col::TEMPORALITY)?;
        let mono = batch
            .column_by_name(col::IS_MONOTONIC)
            .and_then(|c| c.as_boolean_opt())
            .ok_or_else(|| QueryError::Execution("metrics query: is_monotonic".into()))?;
        let value = batch
            .column_by_name(col::VALUE)
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| QueryError::Execution("metrics query: value".into()))?;
        let count = batch
            .column_by_name(col::COUNT)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| QueryError::Execution("metrics query: count".into()))?;
        let sum = batch
            .column_by_name(col::SUM)
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| QueryError::Execution("metrics query: sum".into()))?;
        let int32 = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int32Type>())
                .ok_or_else(|| QueryError::Execution(format!("metrics query: {name}")))
        };
        let (scale, pos_off, neg_off) = (
            int32(col::EXP_SCALE)?,
            int32(col::EXP_POSITIVE_OFFSET)?,
            int32(col::EXP_NEGATIVE_OFFSET)?,
        );
        let zero = batch
            .column_by_name(col::EXP_ZERO_COUNT)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| QueryError::Execution("metrics query: exp_zero_count".into()))?;
        let (buckets, bounds) = (
            list_col(batch, col::BUCKET_COUNTS)?,
            list_col(batch, col::EXPLICIT_BOUNDS)?,
        );
        let (pos, neg) = (
            list_col(batch, col::EXP_POSITIVE_BUCKET_COUNTS)?,
            list_col(batch, col::EXP_NEGATIVE_BUCKET_COUNTS)?,
        );
        let quantiles = list_col(batch, col::QUANTILES)?;
        let service = rows::strings(batch, col::SERVICE_NAME)?;
        let instance = rows::strings(batch, col::SERVICE_INSTANCE_ID)?;
        let attrs = batch
            .column_by_name(col::ATTRIBUTES)
            .and_then(|c| c.as_map_opt())
            .ok_or_else(|| QueryError::Execution("metrics query: attributes".into()))?;
        let res = batch
            .column_by_name(col::RESOURCE_ATTRIBUTES)
            .and_then(|c| c.as_map_opt())
            .ok_or_else(|| QueryError::Execution("metrics query: resource_attributes".into()))?;
        for row in 0..batch.num_rows() {
            let k = kinds.value(row);
            if kind.is_empty() {
                kind = k.to_owned();
                unit = units.value(row).to_owned();
                monotonic = !mono.is_null(row) && mono.value(row);
                delta = !temporality.is_null(row) && temporality.value(row) == "delta";
            } else if k != kind {
                continue;
            }
            let n = |a: &datafusion::arrow::array::UInt64Array| {
                if a.is_null(row) { 0 } else { a.value(row) }
            };
            let f = |a: &datafusion::arrow::array::Float64Array| {
                if a.is_null(row) { 0.0 } else { a.value(row) }
            };
            let payload = match k {
                "gauge" | "sum" => Payload::Number(f(value)),
                "histogram" => Payload::Histogram {
                    count: n(count),
                    sum: f(sum),
                    bounds: f64s(bounds, row),
                    counts: u64s(buckets, row),
                },
                "exponential_histogram" => Payload::Exponential {
                    count: n(count),
                    sum: f(sum),
                    scale: if scale.is_null(row) {
                        0
                    } else {
                        scale.value(row)
                    },
                    zero: n(zero),
                    positive: (
                        if pos_off.is_null(row) {
                            0
                        } else {
                            pos_off.value(row)
                        },
                        u64s(pos, row),
                    ),
                    negative: (
                        if neg_off.is_null(row) {
                            0
                        } else {
                            neg_off.value(row)
                        },
                        u64s(neg, row),
                    ),
                },
                _ => {
                    let list = if quantiles.is_null(row) {
                        None
                    } else {
                        Some(quantiles.value(row))
                    };
                    let pairs = list
                        .as_ref()
                        .and_then(|l| l.as_struct_opt())
                        .map(|s| {
                            let qs = s.column(0).as_primitive::<Float64Type>();
                            let vs = s.column(1).as_primitive::<Float64Type>();
                            (0..s.len()).map(|i| (qs.value(i), vs.value(i))).collect()
                        })
                        .unwrap_or_default();
                    Payload::Summary {
                        count: n(count),
                        sum: f(sum),
                        quantiles: pairs,
                    }
                }
            };
            let attributes = text_entries(attrs, row);
            let resource = text_entries(res, row);
            let svc = service.value(row);
            let key = format!(
                "{svc}\u{1}{}\u{1}{resource:?}\u{1}{attributes:?}",
                rows::text(instance, row).unwrap_or_default()
            );
            let group: Vec<String> = q
                .group_by
                .iter()
                .map(|g| label(g, &attributes, &resource, svc))
                .collect();
            let entry = series.entry(key).or_insert_with(|| (group, Vec::new()));
            entry.1.push(Sample {
                time: time.value(row),
                start: (!start.is_null(row)).then(|| start.value(row)),
                payload,
            });
        }
    }
    if kind.is_empty() {
        return Err(QueryError::Invalid(format!(
            "no points of metric {:?} in this range",
            q.name
        )));
    }
    let agg = q.agg.unwrap_or_else(|| Agg::default_for(&kind, monotonic));
    if !agg.fits(&kind, monotonic) {
        return Err(QueryError::Invalid(format!(
            "aggregation {agg:?} does not fit a {}{kind}",
            if monotonic { "monotonic " } else { "" }
        )));
    }

    let steps = ((q.range.end - q.range.start + q.step - 1) / q.step).max(1) as usize;
    let mut groups: BTreeMap<Vec<String>, Vec<Cell>> = BTreeMap::new();
    for (group, samples) in series.values() {
        let cells = groups
            .entry(group.clone())
            .or_insert_with(|| vec![Cell::default(); steps]);
        let mut last_in_step: BTreeMap<usize, f64> = BTreeMap::new();
        for (i, cur) in samples.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| &samples[p]);
            let step = if cur.time >= q.range.start {
                usize::try_from((cur.time - q.range.start) / q.step).ok()
            } else {
                None
            };
            let Some(cell) = step.and_then(|s| cells.get_mut(s)) else {
                continue;
            };
            cell.seen = true;
            let grow = |now: f64, then: Option<f64>| -> Option<f64> {
                if delta {
                    Some(now)
                } else {
                    increase(prev.zip(then), cur, now, lookback_start)
                }
            };
            match &cur.payload {
                Payload::Number(v) => {
                    cell.values.push(*v);
                    if let Some(s) = step {
                        last_in_step.insert(s, *v);
                    }
                    let before = prev.and_then(|p| match p.payload {
                        Payload::Number(x) => Some(x),
                        _ => None,
                    });
                    if let Some(inc) = grow(*v, before) {
                        cell.increase += inc;
                    }
                }
                Payload::Histogram {
                    count,
                    sum,
                    bounds,
                    counts,
                } => {
                    let before = prev.and_then(|p| match &p.payload {
                        Payload::Histogram {
                            count, sum, counts, ..
                        } => Some((*count, *sum, counts.clone())),
                        _ => None,
                    });
                    let reset = delta
                        || before.as_ref().is_none_or(|b| {
                            b.0 > *count || prev.map(|p| p.start) != Some(cur.start)
                        });
                    let first_counts = before.is_none() && !delta;
                    if first_counts && increase(None, cur, 0.0, lookback_start).is_none() {
                        continue;
                    }
                    let (dc, ds, dcounts): (f64, f64, Vec<f64>) = match (&before, reset) {
                        (Some((bc, bs, bcounts)), false) if bcounts.len() == counts.len() => (
                            (*count - bc) as f64,
                            sum - bs,
                            counts
                                .iter()
                                .zip(bcounts)
                                .map(|(a, b)| a.saturating_sub(*b) as f64)
                                .collect(),
                        ),
                        _ => (
                            *count as f64,
                            *sum,
                            counts.iter().map(|c| *c as f64).collect(),
                        ),
                    };
                    cell.count += dc;
                    cell.sum += ds;
                    match &mut cell.buckets {
                        None => cell.buckets = Some((bounds.clone(), dcounts)),
                        Some((b, c)) if b == bounds => {
                            for (x, y) in c.iter_mut().zip(dcounts) {
                                *x += y;
                            }
                        }
                        // Points with other bounds than the first seen in the step are left out of
                        // the quantile (their count and sum still count).
                        Some(_) => {}
                    }
                }
                Payload::Exponential {
                    count,
                    sum,
                    scale,
                    zero,
                    positive,
                    negative,
                } => {
                    let before = prev.and_then(|p| match &p.payload {
                        Payload::Exponential {
                            count,
                            sum,
                            scale,
                            zero,
                            positive,
                            negative,
                        } => Some((
                            *count,
                            *sum,
                            *scale,
                            *zero,
                            positive.clone(),
                            negative.clone(),
                        )),
                        _ => None,
                    });
                    if before.is_none()
                        && !delta
                        && increase(None, cur, 0.0, lookback_start).is_none()
                    {
                        continue;
                    }
                    let pos = exp_map(positive.0, &positive.1);
                    let neg = exp_map(negative.0, &negative.1);
                    match before {
                        Some((bc, bs, bscale, bzero, bpos, bneg))
                            if !delta
                                && bc <= *count
                                && bscale == *scale
                                && prev.map(|p| p.start) == Some(cur.start) =>
                        {
                            let sub = |now: &BTreeMap<i32, f64>, then: &BTreeMap<i32, f64>| {
                                now.iter()
                                    .map(|(i, c)| {
                                        (*i, (c - then.get(i).copied().unwrap_or(0.0)).max(0.0))
                                    })
                                    .collect::<BTreeMap<_, _>>()
                            };
                            cell.count += (*count - bc) as f64;
                            cell.sum += sum - bs;
                            let (p, n) = (
                                sub(&pos, &exp_map(bpos.0, &bpos.1)),
                                sub(&neg, &exp_map(bneg.0, &bneg.1)),
                            );
                            add_exponential(
                                cell,
                                *scale,
                                zero.saturating_sub(bzero) as f64,
                                &p,
                                &n,
                            );
                        }
                        _ => {
                            cell.count += *count as f64;
                            cell.sum += *sum;
                            add_exponential(cell, *scale, *zero as f64, &pos, &neg);
                        }
                    }
                }
                Payload::Summary {
                    count,
                    sum,
                    quantiles,
                } => {
                    let before = prev.and_then(|p| match &p.payload {
                        Payload::Summary { count, sum, .. } => Some((*count as f64, *sum)),
                        _ => None,
                    });
                    if let Some(inc) = grow(*count as f64, before.map(|b| b.0)) {
                        cell.count += inc;
                    }
                    if let Some(inc) = grow(*sum, before.map(|b| b.1)) {
                        cell.sum += inc;
                    }
                    if let (Some((_, v)), Some(s)) = (
                        quantiles
                            .iter()
                            .find(|(qq, _)| (qq - q.quantile).abs() < 1e-9),
                        step,
                    ) {
                        last_in_step.insert(s, *v);
                    }
                }
            }
        }
        for (s, v) in last_in_step {
            if let Some(cell) = cells.get_mut(s) {
                if kind == "summary" {
                    cell.quantiles.push(v);
                } else {
                    cell.last.push(v);
                }
            }
        }
    }

    let seconds = q.step as f64 / 1e9;
    let value = |c: &Cell| -> Option<f64> {
        if !c.seen {
            return None;
        }
        match agg {
            Agg::Increase => Some(c.increase),
            Agg::Rate => Some(c.increase / seconds),
            Agg::Last => (!c.last.is_empty()).then(|| c.last.iter().sum()),
            Agg::Avg if kind == "gauge" || kind == "sum" => {
                (!c.values.is_empty()).then(|| c.values.iter().sum::<f64>() / c.values.len() as f64)
            }
            Agg::Avg => (c.count > 0.0).then(|| c.sum / c.count),
            Agg::Min => c.values.iter().copied().reduce(f64::min),
            Agg::Max => c.values.iter().copied().reduce(f64::max),
            Agg::Count => Some(c.count),
            Agg::Sum => Some(c.sum),
            Agg::Quantile => match (&c.buckets, &c.exp) {
                (Some((bounds, counts)), _) => bucket_quantile(q.quantile, bounds, counts),
                (_, Some(e)) => {
                    exponential_quantile(q.quantile, e.scale, e.zero, &e.positive, &e.negative)
                }
                _ => (!c.quantiles.is_empty())
                    .then(|| c.quantiles.iter().sum::<f64>() / c.quantiles.len() as f64),
            },
        }
    };
    let exemplars = exemplars(engine, &q.name, q.range).await?;
    let lines = groups
        .into_iter()
        .map(|(group, cells)| Line {
            labels: q.group_by.iter().cloned().zip(group).collect(),
            values: cells.iter().map(value).collect(),
        })
        .collect();
    Ok(MetricSeries {
        name: q.name.clone(),
        kind,
        unit,
        agg,
        quantile: (agg == Agg::Quantile).then_some(q.quantile),
        step_seconds: seconds,
        times: (0..steps)
            .map(|i| rfc3339(q.range.start + i as i64 * q.step))
            .collect(),
        series: lines,
        exemplars,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        // 10 values ≤ 10, 10 in (10, 20]: the median is the top of the first bucket.
        let bounds = [10.0, 20.0];
        let counts = [10.0, 10.0, 0.0];
        assert_eq!(bucket_quantile(0.5, &bounds, &counts), Some(10.0));
        assert_eq!(bucket_quantile(0.75, &bounds, &counts), Some(15.0));
        // Everything above the last bound: reported at that bound.
        assert_eq!(bucket_quantile(0.5, &bounds, &[0.0, 0.0, 4.0]), Some(20.0));
        assert_eq!(bucket_quantile(0.5, &bounds, &[0.0, 0.0, 0.0]), None);
    }

    #[test]
    fn exponential_quantiles_fall_in_the_right_bucket() {
        // Scale 0: bucket i is (2^i, 2^(i+1)].
        let pos: BTreeMap<i32, f64> = [(3, 4.0)].into();
        let v = exponential_quantile(0.5, 0, 0.0, &pos, &BTreeMap::new()).unwrap();
        assert!((8.0..=16.0).contains(&v), "{v}");
        assert_eq!(
            exponential_quantile(0.1, 0, 5.0, &pos, &BTreeMap::new()),
            Some(0.0)
        );
    }

    #[test]
    fn resets_count_the_new_value() {
        let s = |time, start, v| Sample {
            time,
            start: Some(start),
            payload: Payload::Number(v),
        };
        let a = s(10, 0, 5.0);
        assert_eq!(increase(Some((&a, 5.0)), &s(20, 0, 8.0), 8.0, 0), Some(3.0));
        assert_eq!(
            increase(Some((&a, 5.0)), &s(20, 0, 2.0), 2.0, 0),
            Some(2.0),
            "a drop is a reset"
        );
        assert_eq!(
            increase(Some((&a, 5.0)), &s(20, 15, 9.0), 9.0, 0),
            Some(9.0),
            "a new start is a reset"
        );
        assert_eq!(
            increase(None, &s(20, 15, 9.0), 9.0, 0),
            Some(9.0),
            "started in range"
        );
        assert_eq!(
            increase(None, &s(20, 0, 9.0), 9.0, 5),
            None,
            "started before: a baseline"
        );
    }
}
