//! Rate, errors and duration (RED) of a service: as one set of numbers, per operation, and as a
//! time series.
//!
//! A service's requests are its entry spans, SERVER and CONSUMER; a service with none in the range
//! (a batch job, a client-only process) is measured by its root spans instead.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use serde::Serialize;

use super::rollup::{self, Cell, Name};
use super::rows;
use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::sketch::Sketch;
use crate::time_range::TimeRange;
use crate::views::traces::rfc3339;

/// SQL predicate of entry spans.
pub const ENTRY: &str = "span_kind IN ('SERVER', 'CONSUMER')";
/// SQL predicate of root spans.
pub const ROOT: &str = "parent_span_id IS NULL";

/// Which spans stand for a service's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    Entry,
    Root,
}

impl Measure {
    /// Entry spans when the service has any in the range, else root spans.
    pub fn of(entry_requests: u64) -> Self {
        if entry_requests > 0 {
            Measure::Entry
        } else {
            Measure::Root
        }
    }

    pub fn predicate(self) -> &'static str {
        match self {
            Measure::Entry => ENTRY,
            Measure::Root => ROOT,
        }
    }
}

/// The numbers every view reports for a set of requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Red {
    pub requests: u64,
    pub errors: u64,
    pub error_ratio: f64,
    pub rate_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Red {
    /// From counts and a latency sketch of durations in nanoseconds, over `seconds`.
    pub fn new(requests: u64, errors: u64, latency: &Sketch, seconds: f64) -> Self {
        let ms = |q| latency.quantile(q).map(|ns| ns / 1e6);
        Self {
            requests,
            errors,
            error_ratio: if requests > 0 {
                errors as f64 / requests as f64
            } else {
                0.0
            },
            rate_per_s: if seconds > 0.0 {
                requests as f64 / seconds
            } else {
                0.0
            },
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
        }
    }
}

fn text(value: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(value.to_owned()))
}

/// Entry spans when the service has any in the range, else root spans.
pub async fn measure_of(
    engine: &QueryEngine,
    service: &str,
    range: TimeRange,
) -> Result<Measure, QueryError> {
    let sql = format!(
        "SELECT count(*) AS n FROM spans \
         WHERE service_name = $3 AND start_time >= $1 AND start_time < $2 AND {ENTRY}"
    );
    let rows = engine
        .query(
            &sql,
            vec![timestamp(range.start), timestamp(range.end), text(service)],
        )
        .await?;
    let mut n = 0;
    for batch in &rows.batches {
        let c = rows::ints(batch, "n")?;
        n += (0..batch.num_rows())
            .map(|i| rows::count(c, i))
            .sum::<u64>();
    }
    Ok(Measure::of(n))
}

/// `a / b` rounded up, for positive `b`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// The time-series step: `requested` (at least a second, at most 10,000 points), else the
/// smallest round step giving at most 120 points.
pub fn choose_step(range: TimeRange, requested: Option<i64>) -> Result<i64, String> {
    const S: i64 = 1_000_000_000;
    let span = range.end - range.start;
    if let Some(step) = requested {
        if step < S {
            return Err("step must be at least 1s".into());
        }
        if span / step > 10_000 {
            return Err("step too small for the range: more than 10,000 points".into());
        }
        return Ok(step);
    }
    const NICE: [i64; 19] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
        604800,
    ];
    Ok(NICE
        .iter()
        .map(|s| s * S)
        .find(|step| ceil_div(span, *step) <= 120)
        .unwrap_or(604_800 * S))
}

/// One point of a series: the requests that started in `[time, time + step)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub time: String,
    pub time_unix_nano: String,
    #[serde(flatten)]
    pub red: Red,
}

/// A service's (or one of its operations') numbers over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub service: String,
    pub operation: Option<String>,
    pub measured_by: Measure,
    pub step_seconds: f64,
    pub points: Vec<Point>,
}

/// Rate, errors and percentiles per step; steps without requests are present with zeros.
pub async fn series(
    engine: &QueryEngine,
    service: &str,
    operation: Option<&str>,
    range: TimeRange,
    step: i64,
) -> Result<Series, QueryError> {
    let buckets = ceil_div(range.end - range.start, step).max(1) as usize;
    let seconds = step as f64 / 1e9;
    let mut points: Vec<Point> = (0..buckets)
        .map(|i| {
            let t = range.start + i as i64 * step;
            Point {
                time: rfc3339(t),
                time_unix_nano: t.to_string(),
                red: Red::new(0, 0, &Sketch::default(), seconds),
            }
        })
        .collect();
    // The rollups' slots fit in the steps when the steps start on slot boundaries.
    let aligned = range.start.rem_euclid(rollup::SLOT) == 0 && step % rollup::SLOT == 0;
    let mut entry_requests = 0;
    let mut per_bucket: BTreeMap<i64, Cell> = BTreeMap::new();
    let rolled = aligned
        && rollup::visit(engine, range, Some(service), |row| {
            entry_requests += row.cell.entry.requests;
            if operation.is_none_or(|op| row.operation.as_deref() == Some(op)) {
                per_bucket
                    .entry((row.slot * rollup::SLOT - range.start) / step)
                    .or_default()
                    .merge(&row.cell);
            }
        })
        .await?;
    let measure = if rolled {
        let measure = Measure::of(entry_requests);
        for (bucket, cell) in per_bucket {
            let counts = cell.measured(measure);
            if let Some(point) = usize::try_from(bucket).ok().and_then(|b| points.get_mut(b)) {
                point.red = Red::new(counts.requests, counts.errors, &counts.latency, seconds);
            }
        }
        measure
    } else {
        aggregated_series(engine, service, operation, range, step, &mut points).await?
    };
    Ok(Series {
        service: service.to_owned(),
        operation: operation.map(str::to_owned),
        measured_by: measure,
        step_seconds: seconds,
        points,
    })
}

/// [`series`] aggregated from the spans; returns the measure.
async fn aggregated_series(
    engine: &QueryEngine,
    service: &str,
    operation: Option<&str>,
    range: TimeRange,
    step: i64,
    points: &mut [Point],
) -> Result<Measure, QueryError> {
    let measure = measure_of(engine, service, range).await?;
    let mut params = vec![
        timestamp(range.start),
        timestamp(range.end),
        ScalarValue::Int64(Some(range.start)),
        ScalarValue::Int64(Some(step)),
        text(service),
    ];
    let mut filter = format!(
        "service_name = $5 AND start_time >= $1 AND start_time < $2 AND {}",
        measure.predicate()
    );
    if let Some(op) = operation {
        params.push(text(op));
        filter.push_str(" AND name = $6");
    }
    let sql = format!(
        "SELECT (CAST(start_time AS BIGINT) - $3) / $4 AS bucket, count(*) AS requests, \
           count(*) FILTER (WHERE status_code = 'ERROR') AS errors, \
           latency_sketch(duration_ns) AS latency \
         FROM spans WHERE {filter} GROUP BY bucket ORDER BY bucket"
    );
    let rows = engine.query(&sql, params).await?;
    let seconds = step as f64 / 1e9;
    for batch in &rows.batches {
        let bucket = rows::ints(batch, "bucket")?;
        let requests = rows::ints(batch, "requests")?;
        let errors = rows::ints(batch, "errors")?;
        let latency = rows::binaries(batch, "latency")?;
        for row in 0..batch.num_rows() {
            let Some(point) = usize::try_from(bucket.value(row))
                .ok()
                .and_then(|b| points.get_mut(b))
            else {
                continue;
            };
            point.red = Red::new(
                rows::count(requests, row),
                rows::count(errors, row),
                &rows::sketch(latency, row)?,
                seconds,
            );
        }
    }
    Ok(measure)
}

/// One operation (span name) of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    pub name: String,
    #[serde(flatten)]
    pub red: Red,
}

/// The service's operations, the busiest first.
pub async fn operations(
    engine: &QueryEngine,
    service: &str,
    range: TimeRange,
) -> Result<(Measure, Vec<Operation>), QueryError> {
    let mut entry_requests = 0;
    let mut per_operation: BTreeMap<Name, Cell> = BTreeMap::new();
    let rolled = rollup::visit(engine, range, Some(service), |row| {
        entry_requests += row.cell.entry.requests;
        if let Some(op) = &row.operation {
            per_operation
                .entry(Arc::clone(op))
                .or_default()
                .merge(&row.cell);
        }
    })
    .await?;
    if !rolled {
        return aggregated_operations(engine, service, range).await;
    }
    let measure = Measure::of(entry_requests);
    let mut out: Vec<Operation> = per_operation
        .into_iter()
        .filter_map(|(name, cell)| {
            let counts = cell.measured(measure);
            (counts.requests > 0).then(|| Operation {
                name: name.to_string(),
                red: Red::new(
                    counts.requests,
                    counts.errors,
                    &counts.latency,
                    range.seconds(),
                ),
            })
        })
        .collect();
    // The busiest first, then by name, as the aggregation orders them.
    out.sort_by(|a, b| {
        b.red
            .requests
            .cmp(&a.red.requests)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok((measure, out))
}

/// [`operations`] aggregated from the spans.
async fn aggregated_operations(
    engine: &QueryEngine,
    service: &str,
    range: TimeRange,
) -> Result<(Measure, Vec<Operation>), QueryError> {
    let measure = measure_of(engine, service, range).await?;

    let sql = format!(
        "SELECT name, count(*) AS requests, count(*) FILTER (WHERE status_code = 'ERROR') AS errors, \
           latency_sketch(duration_ns) AS latency \
         FROM spans WHERE service_name = $3 AND start_time >= $1 AND start_time < $2 AND {} \
         GROUP BY name ORDER BY requests DESC, name",
        measure.predicate()
    );
    let rows = engine
        .query(
            &sql,
            vec![timestamp(range.start), timestamp(range.end), text(service)],
        )
        .await?;
    let mut out = Vec::new();
    for batch in &rows.batches {
        let name = rows::strings(batch, "name")?;
        let requests = rows::ints(batch, "requests")?;
        let errors = rows::ints(batch, "errors")?;
        let latency = rows::binaries(batch, "latency")?;
        for row in 0..batch.num_rows() {
            out.push(Operation {
                name: name.value(row).to_owned(),
                red: Red::new(
                    rows::count(requests, row),
                    rows::count(errors, row),
                    &rows::sketch(latency, row)?,
                    range.seconds(),
                ),
            });
        }
    }
    Ok((measure, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn steps_are_round_and_give_at_most_120_points() {
        let r = |secs| TimeRange {
            start: 0,
            end: secs * S,
        };
        assert_eq!(choose_step(r(900), None), Ok(10 * S));
        assert_eq!(choose_step(r(3600), None), Ok(30 * S));
        assert_eq!(choose_step(r(86400), None), Ok(900 * S));
        assert_eq!(choose_step(r(60), None), Ok(S));
        assert_eq!(choose_step(r(3600), Some(60 * S)), Ok(60 * S));
        assert!(choose_step(r(3600), Some(S / 2)).is_err());
        assert!(choose_step(r(86400 * 7), Some(S)).is_err());
    }

    #[test]
    fn red_numbers_from_counts_and_a_sketch() {
        let mut sketch = Sketch::default();
        for ms in 1..=100 {
            sketch.add(ms as f64 * 1e6);
        }
        let red = Red::new(100, 5, &sketch, 50.0);
        assert_eq!(red.error_ratio, 0.05);
        assert_eq!(red.rate_per_s, 2.0);
        assert!((red.p99_ms.unwrap() - 99.0).abs() < 0.5);
        let empty = Red::new(0, 0, &Sketch::default(), 10.0);
        assert_eq!((empty.error_ratio, empty.p50_ms), (0.0, None));
    }
}
