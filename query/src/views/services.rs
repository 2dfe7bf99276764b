//! The services overview: per service, its requests, errors and latency over a time range.
//!
//! A service's requests are its entry spans, SERVER and CONSUMER; a service that has none in the
//! range (a batch job, a client-only process) is measured by its root spans instead.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use serde::Serialize;

use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::sketch::Sketch;
use crate::time_range::TimeRange;

/// One row of the services overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSummary {
    pub name: String,
    /// `entry` (SERVER and CONSUMER spans) or `root` (root spans, for services with no entry spans).
    pub measured_by: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub error_ratio: f64,
    pub rate_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

const SQL: &str = "
SELECT service_name,
  count(*) FILTER (WHERE span_kind IN ('SERVER', 'CONSUMER')) AS entry_requests,
  count(*) FILTER (WHERE span_kind IN ('SERVER', 'CONSUMER') AND status_code = 'ERROR') AS entry_errors,
  latency_sketch(duration_ns) FILTER (WHERE span_kind IN ('SERVER', 'CONSUMER')) AS entry_latency,
  count(*) FILTER (WHERE parent_span_id IS NULL) AS root_requests,
  count(*) FILTER (WHERE parent_span_id IS NULL AND status_code = 'ERROR') AS root_errors,
  latency_sketch(duration_ns) FILTER (WHERE parent_span_id IS NULL) AS root_latency
FROM spans
WHERE start_time >= $1 AND start_time < $2
GROUP BY service_name
ORDER BY service_name";

fn ms(sketch: &Sketch, q: f64) -> Option<f64> {
    sketch.quantile(q).map(|ns| ns / 1e6)
}

/// Every service with spans that started in `range`, by name.
pub async fn services(
    engine: &QueryEngine,
    range: TimeRange,
) -> Result<Vec<ServiceSummary>, QueryError> {
    let rows = engine
        .query(SQL, vec![timestamp(range.start), timestamp(range.end)])
        .await?;
    let bad = |c: &str| QueryError::Execution(format!("services query: unexpected column {c}"));
    let mut out = Vec::new();
    for batch in &rows.batches {
        let name = batch
            .column(0)
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("name"))?;
        let count = |i: usize| {
            batch
                .column(i)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| bad("count"))
        };
        let sketch = |i: usize| {
            batch
                .column(i)
                .as_binary_opt::<i32>()
                .ok_or_else(|| bad("latency"))
        };
        let (entry_n, entry_e, entry_l) = (count(1)?, count(2)?, sketch(3)?);
        let (root_n, root_e, root_l) = (count(4)?, count(5)?, sketch(6)?);
        for row in 0..batch.num_rows() {
            let (measured_by, requests, errors, latency) = if entry_n.value(row) > 0 {
                ("entry", entry_n.value(row), entry_e.value(row), entry_l)
            } else {
                ("root", root_n.value(row), root_e.value(row), root_l)
            };
            let sketch = if latency.is_null(row) {
                Sketch::default()
            } else {
                Sketch::from_bytes(latency.value(row)).ok_or_else(|| bad("latency"))?
            };
            let requests = requests.max(0) as u64;
            let errors = errors.max(0) as u64;
            out.push(ServiceSummary {
                name: name.value(row).to_owned(),
                measured_by,
                requests,
                errors,
                error_ratio: if requests > 0 {
                    errors as f64 / requests as f64
                } else {
                    0.0
                },
                rate_per_s: requests as f64 / range.seconds(),
                p50_ms: ms(&sketch, 0.50),
                p95_ms: ms(&sketch, 0.95),
                p99_ms: ms(&sketch, 0.99),
            });
        }
    }
    Ok(out)
}
