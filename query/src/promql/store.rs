//! The OTLP metrics of the lake as Prometheus series: which metrics a selector can match (the
//! catalog), and their points in a time window turned into samples of the series they expose.
//!
//! Cumulative points are samples as they are. Delta points (sums and histograms) are added up
//! from the start of the window, so `rate`, `increase` and `histogram_quantile` over them give
//! what they would over the cumulative form; the absolute value of such a counter counts from
//! the window's start. Exponential histograms expose `_count` and `_sum` only (classic buckets
//! cannot represent them). Points flagged "no recorded value" are skipped.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, TimestampNanosecondType, UInt64Type};
use datafusion::common::ScalarValue;
use lakescope_collector::schema::metrics::col;
use lakescope_collector::schema::rows::text_entries;
use promql_parser::parser::VectorSelector;

use super::eval::selects;
use super::names::{Family, family_name, format_float, job, label_name, series_names};
use super::value::{Labels, NAME, Series, stale_marker};
use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::views::metrics::{f64s, list_col, u64s};
use crate::views::rows;

/// Most samples one query may load, over all its selectors.
pub const MAX_SAMPLES: usize = 5_000_000;

/// One OTLP metric as a Prometheus family.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub otlp_name: String,
    pub metric_type: String,
    pub family: Family,
    pub name: String,
    pub unit: String,
    pub help: String,
}

impl Entry {
    pub fn series_names(&self) -> Vec<String> {
        if self.metric_type == "exponential_histogram" {
            return vec![format!("{}_sum", self.name), format!("{}_count", self.name)];
        }
        series_names(&self.name, self.family)
    }
}

/// The metrics with points in `[from, to]` (nanoseconds).
pub async fn catalog(engine: &QueryEngine, from: i64, to: i64) -> Result<Vec<Entry>, QueryError> {
    let sql = "SELECT metric_name, metric_type, first_value(metric_unit) AS unit, \
               first_value(metric_description) AS help, bool_or(is_monotonic) AS monotonic \
               FROM metrics WHERE time >= $1 AND time <= $2 GROUP BY metric_name, metric_type \
               ORDER BY metric_name";
    let rows_of = engine
        .query(sql, vec![timestamp(from), timestamp(to)])
        .await?;
    let mut out = Vec::new();
    for batch in &rows_of.batches {
        let names = rows::strings(batch, "metric_name")?;
        let types = rows::strings(batch, "metric_type")?;
        let units = rows::strings(batch, "unit")?;
        let help = rows::strings(batch, "help")?;
        let mono = batch
            .column_by_name("monotonic")
            .and_then(|c| c.as_boolean_opt())
            .ok_or_else(|| QueryError::Execution("metrics catalog: monotonic".into()))?;
        for row in 0..batch.num_rows() {
            let monotonic = !mono.is_null(row) && mono.value(row);
            let Some(family) = Family::of(types.value(row), monotonic) else {
                continue;
            };
            let unit = units.value(row).to_owned();
            out.push(Entry {
                otlp_name: names.value(row).to_owned(),
                metric_type: types.value(row).to_owned(),
                family,
                name: family_name(names.value(row), &unit, family),
                unit,
                help: help.value(row).to_owned(),
            });
        }
    }
    Ok(out)
}

/// Whether the selector's name constraints (its name, `__name__` matchers) admit `name`.
pub fn name_admits(vs: &VectorSelector, name: &str) -> bool {
    if vs.name.as_deref().is_some_and(|n| n != name) {
        return false;
    }
    vs.matchers
        .matchers
        .iter()
        .filter(|m| m.name == NAME)
        .all(|m| m.is_match(name))
}

/// Accumulates samples by series, bounded by [`MAX_SAMPLES`].
#[derive(Default)]
pub struct Collector {
    pub series: HashMap<Labels, Vec<(i64, f64)>>,
    pub samples: usize,
}

impl Collector {
    pub fn push(&mut self, mut labels: Labels, t: i64, v: f64) -> Result<(), QueryError> {
        // Prometheus has no empty label values: empty is absent.
        labels.retain(|_, v| !v.is_empty());
        self.samples += 1;
        if self.samples > MAX_SAMPLES {
            return Err(too_many_samples());
        }
        self.series.entry(labels).or_default().push((t, v));
        Ok(())
    }

    /// Whether `more` samples still fit: lets a producer that knows its count refuse before it
    /// builds them.
    pub fn fits(&self, more: usize) -> Result<(), QueryError> {
        if self.samples.saturating_add(more) > MAX_SAMPLES {
            return Err(too_many_samples());
        }
        Ok(())
    }

    /// Adds many samples to one series (one label set, not one per sample).
    pub fn extend(
        &mut self,
        mut labels: Labels,
        samples: Vec<(i64, f64)>,
    ) -> Result<(), QueryError> {
        self.fits(samples.len())?;
        labels.retain(|_, v| !v.is_empty());
        self.samples += samples.len();
        self.series.entry(labels).or_default().extend(samples);
        Ok(())
    }

    /// The series, each in time order with one sample per timestamp (the last one sent), sorted
    /// by labels as Prometheus returns them.
    pub fn finish(self) -> Vec<Series> {
        let mut out: Vec<Series> = self
            .series
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by_key(|(t, _)| *t);
                samples.dedup_by(|later, earlier| {
                    if later.0 == earlier.0 {
                        earlier.1 = later.1;
                        true
                    } else {
                        false
                    }
                });
                Series { labels, samples }
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

pub fn too_many_samples() -> QueryError {
    QueryError::Invalid(
        "query processing would load too many samples into memory in query execution".into(),
    )
}

/// Samples of the series of `entry` that `vs` selects, from points in `[from, to]` (ns).
pub async fn load(
    engine: &QueryEngine,
    entry: &Entry,
    vs: &VectorSelector,
    from: i64,
    to: i64,
    out: &mut Collector,
) -> Result<(), QueryError> {
    let names = entry.series_names();
    if !names.iter().any(|n| name_admits(vs, n)) {
        return Ok(());
    }
    let sql = format!(
        "SELECT {time}, {temporality}, {value}, {count}, {sum}, {buckets}, {bounds}, {quantiles}, \
         {flags}, {service}, {namespace}, {instance}, {attributes}, {scope} FROM metrics \
         WHERE metric_name = $1 AND metric_type = $2 AND time >= $3 AND time <= $4 ORDER BY time",
        time = col::TIME,
        temporality = col::TEMPORALITY,
        value = col::VALUE,
        count = col::COUNT,
        sum = col::SUM,
        buckets = col::BUCKET_COUNTS,
        bounds = col::EXPLICIT_BOUNDS,
        quantiles = col::QUANTILES,
        flags = col::FLAGS,
        service = col::SERVICE_NAME,
        namespace = col::SERVICE_NAMESPACE,
        instance = col::SERVICE_INSTANCE_ID,
        attributes = col::ATTRIBUTES,
        scope = col::SCOPE_NAME,
    );
    let rows_of = engine
        .query(
            &sql,
            vec![
                ScalarValue::Utf8(Some(entry.otlp_name.clone())),
                ScalarValue::Utf8(Some(entry.metric_type.clone())),
                timestamp(from),
                timestamp(to),
            ],
        )
        .await?;
    // Running totals of delta series, by series labels.
    let mut running: HashMap<Labels, f64> = HashMap::new();
    let mut emit = |out: &mut Collector, labels: Labels, t: i64, v: f64, delta: bool| {
        if !selects(vs, &labels) {
            return Ok(());
        }
        let v = if delta {
            let total = running.entry(labels.clone()).or_default();
            *total += v;
            *total
        } else {
            v
        };
        out.push(labels, t, v)
    };
    let name = &entry.name;
    for batch in &rows_of.batches {
        let time = batch
            .column_by_name(col::TIME)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or_else(|| QueryError::Execution("metrics: time".into()))?;
        let temporality = rows::strings(batch, col::TEMPORALITY)?;
        let value = batch
            .column_by_name(col::VALUE)
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| QueryError::Execution("metrics: value".into()))?;
        let count = batch
            .column_by_name(col::COUNT)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| QueryError::Execution("metrics: count".into()))?;
        let sum = batch
            .column_by_name(col::SUM)
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| QueryError::Execution("metrics: sum".into()))?;
        let flags = batch
            .column_by_name(col::FLAGS)
            .and_then(|c| c.as_primitive_opt::<datafusion::arrow::datatypes::UInt32Type>())
            .ok_or_else(|| QueryError::Execution("metrics: flags".into()))?;
        let (buckets, bounds, quantiles) = (
            list_col(batch, col::BUCKET_COUNTS)?,
            list_col(batch, col::EXPLICIT_BOUNDS)?,
            list_col(batch, col::QUANTILES)?,
        );
        let service = rows::strings(batch, col::SERVICE_NAME)?;
        let namespace = rows::strings(batch, col::SERVICE_NAMESPACE)?;
        let instance = rows::strings(batch, col::SERVICE_INSTANCE_ID)?;
        let attrs = batch
            .column_by_name(col::ATTRIBUTES)
            .and_then(|c| c.as_map_opt())
            .ok_or_else(|| QueryError::Execution("metrics: attributes".into()))?;
        let scope = rows::strings(batch, col::SCOPE_NAME)?;
        for row in 0..batch.num_rows() {
            let no_value = flags.value(row) & 1 == 1;
            let t = time.value(row).div_euclid(1_000_000);
            let delta = !temporality.is_null(row) && temporality.value(row) == "delta";
            let mut base = Labels::new();
            for (k, v) in text_entries(attrs, row) {
                base.insert(label_name(&k), v);
            }
            // Recorded series carry exactly the labels of the rule's result.
            if scope.value(row) != crate::rules::RECORDING_SCOPE {
                let ns = (!namespace.is_null(row)).then(|| namespace.value(row));
                base.insert("job".into(), job(ns, service.value(row)));
                if !instance.is_null(row) && !instance.value(row).is_empty() {
                    base.insert("instance".into(), instance.value(row).to_owned());
                }
            }
            let with_name = |suffix: &str| {
                let mut l = base.clone();
                l.insert(NAME.into(), format!("{name}{suffix}"));
                l
            };
            if no_value {
                // Gauges and sums end their series here; other types' points are skipped.
                if matches!(entry.metric_type.as_str(), "gauge" | "sum") {
                    let l = with_name("");
                    if selects(vs, &l) {
                        out.push(l, t, stale_marker())?;
                    }
                }
                continue;
            }
            let count_v = if count.is_null(row) {
                0.0
            } else {
                count.value(row) as f64
            };
            let sum_v = if sum.is_null(row) {
                None
            } else {
                Some(sum.value(row))
            };
            match entry.metric_type.as_str() {
                "gauge" | "sum" => {
                    if value.is_null(row) {
                        continue;
                    }
                    let counter = entry.family == Family::Counter;
                    emit(out, with_name(""), t, value.value(row), delta && counter)?;
                }
                "histogram" | "exponential_histogram" => {
                    emit(out, with_name("_count"), t, count_v, delta)?;
                    if let Some(s) = sum_v {
                        emit(out, with_name("_sum"), t, s, delta)?;
                    }
                    if entry.metric_type == "histogram" {
                        let (bs, cs) = (f64s(bounds, row), u64s(buckets, row));
                        let mut cumulative = 0.0;
                        for (i, c) in cs.iter().enumerate() {
                            cumulative += *c as f64;
                            let le = bs.get(i).copied().unwrap_or(f64::INFINITY);
                            let mut l = with_name("_bucket");
                            l.insert("le".into(), format_float(le));
                            emit(out, l, t, cumulative, delta)?;
                        }
                    }
                }
                _ => {
                    emit(out, with_name("_count"), t, count_v, false)?;
                    if let Some(s) = sum_v {
                        emit(out, with_name("_sum"), t, s, false)?;
                    }
                    if !quantiles.is_null(row) {
                        let list = quantiles.value(row);
                        if let Some(s) = list.as_struct_opt() {
                            let qs = s.column(0).as_primitive::<Float64Type>();
                            let vs_ = s.column(1).as_primitive::<Float64Type>();
                            for i in 0..s.len() {
                                let mut l = with_name("");
                                l.insert("quantile".into(), format_float(qs.value(i)));
                                emit(out, l, t, vs_.value(i), false)?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
