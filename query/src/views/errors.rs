//! Errors: failing spans (status ERROR, as OpenTelemetry defines an error) grouped by service and
//! [`crate::fingerprint`], with counts over time, first and last seen, the operations affected,
//! example traces, and how many failures originated in the service rather than propagated into
//! it. A failing span originated its error when none of its child spans failed; it propagated one
//! when a child failed too.

use std::collections::HashMap;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::common::ScalarValue;
use serde::Serialize;

use super::dependencies::CLOCK_SKEW;
use super::rows;
use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::fingerprint::group_id;
use crate::time_range::TimeRange;
use crate::views::traces::rfc3339;

/// Example traces kept per group.
const EXAMPLES: usize = 5;
/// Most groups returned.
const MAX_GROUPS: usize = 500;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorGroup {
    /// Stable id of the group (service and fingerprint).
    pub id: String,
    /// What the failures have in common (see `fingerprint`).
    pub fingerprint: String,
    pub service: String,
    pub exception_type: Option<String>,
    /// The most recent failure's message, as sent.
    pub message: Option<String>,
    pub count: u64,
    /// Failures whose span had no failing child: the error started here.
    pub originated: u64,
    /// Failures with a failing child: the error came from further down.
    pub propagated: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub operations: Vec<String>,
    pub trace_ids: Vec<String>,
    /// Failures per step, aligned with [`ErrorGroups::times`].
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorGroups {
    pub step_seconds: f64,
    pub times: Vec<String>,
    pub groups: Vec<ErrorGroup>,
}

fn failed_cte(service: bool) -> String {
    format!(
        "failed AS (
  SELECT trace_id, span_id, service_name, name, start_time, exception_type,
         coalesce(exception_message, nullif(status_message, '')) AS message,
         error_fingerprint(exception_type, exception_message, exception_stacktrace,
                           status_message, http_status_code, rpc_grpc_status_code) AS fp,
         (CAST(start_time AS BIGINT) - $5) / $6 AS bucket
  FROM spans
  WHERE status_code = 'ERROR' AND start_time >= $1 AND start_time < $2 {}
)",
        if service { "AND service_name = $7" } else { "" }
    )
}

/// Error groups in `range`, for one service or all; the most frequent first.
pub async fn groups(
    engine: &QueryEngine,
    service: Option<&str>,
    range: TimeRange,
    step: i64,
) -> Result<ErrorGroups, QueryError> {
    let mut params = vec![
        timestamp(range.start),
        timestamp(range.end),
        timestamp(range.start.saturating_sub(CLOCK_SKEW)),
        timestamp(range.end.saturating_add(CLOCK_SKEW)),
        ScalarValue::Int64(Some(range.start)),
        ScalarValue::Int64(Some(step)),
    ];
    if let Some(service) = service {
        params.push(ScalarValue::Utf8(Some(service.to_owned())));
    }
    let failed = failed_cte(service.is_some());

    let summary = format!(
        "WITH {failed},
failing_parents AS (
  SELECT DISTINCT trace_id, parent_span_id FROM spans
  WHERE status_code = 'ERROR' AND parent_span_id IS NOT NULL
    AND start_time >= $3 AND start_time < $4
)
SELECT f.service_name, f.fp, min(f.exception_type) AS exception_type,
  first_value(f.message ORDER BY f.start_time DESC) AS message,
  count(*) AS count,
  count(*) FILTER (WHERE p.parent_span_id IS NULL) AS originated,
  min(f.start_time) AS first_seen, max(f.start_time) AS last_seen,
  array_agg(DISTINCT f.name) AS operations
FROM failed f LEFT JOIN failing_parents p ON p.trace_id = f.trace_id AND p.parent_span_id = f.span_id
GROUP BY f.service_name, f.fp
ORDER BY count DESC, f.service_name, f.fp
LIMIT {MAX_GROUPS}"
    );
    let per_step = format!(
        "WITH {failed} SELECT service_name, fp, bucket, count(*) AS n FROM failed GROUP BY 1, 2, 3"
    );
    let examples = format!(
        "WITH {failed} SELECT service_name, fp, encode(trace_id, 'hex') AS trace_id FROM (
           SELECT service_name, fp, trace_id,
             row_number() OVER (PARTITION BY service_name, fp ORDER BY start_time DESC) AS rn
           FROM failed) WHERE rn <= {EXAMPLES}"
    );
    // Independent scans of the failed spans: run together, on both cores.
    let (summary, per_step, examples) = tokio::try_join!(
        engine.query(&summary, params.clone()),
        engine.query(&per_step, params.clone()),
        engine.query(&examples, params),
    )?;
    let buckets = ((range.end - range.start + step - 1) / step).max(1) as usize;
    let mut groups = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for batch in &summary.batches {
        let service = rows::strings(batch, "service_name")?;
        let fp = rows::strings(batch, "fp")?;
        let ty = rows::strings(batch, "exception_type")?;
        let message = rows::strings(batch, "message")?;
        let (count, originated) = (
            rows::ints(batch, "count")?,
            rows::ints(batch, "originated")?,
        );
        let seen = |name| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
                .ok_or_else(|| QueryError::Execution(format!("errors view: column {name}")))
        };
        let (first, last) = (seen("first_seen")?, seen("last_seen")?);
        let operations = batch
            .column_by_name("operations")
            .and_then(|c| c.as_list_opt::<i32>())
            .ok_or_else(|| QueryError::Execution("errors view: operations".into()))?;
        for row in 0..batch.num_rows() {
            let ops = operations.value(row);
            let mut ops: Vec<String> = ops
                .as_string_opt::<i32>()
                .map(|a| a.iter().flatten().map(str::to_owned).collect())
                .unwrap_or_default();
            ops.sort();
            let (svc, fingerprint) = (service.value(row).to_owned(), fp.value(row).to_owned());
            let count = rows::count(count, row);
            let originated = rows::count(originated, row);
            index.insert((svc.clone(), fingerprint.clone()), groups.len());
            groups.push(ErrorGroup {
                id: group_id(&svc, &fingerprint),
                fingerprint,
                service: svc,
                exception_type: rows::text(ty, row),
                message: rows::text(message, row),
                count,
                originated,
                propagated: count - originated,
                first_seen: rfc3339(first.value(row)),
                last_seen: rfc3339(last.value(row)),
                operations: ops,
                trace_ids: Vec::new(),
                counts: vec![0; buckets],
            });
        }
    }
    if groups.is_empty() {
        return Ok(finish(range, step, buckets, groups));
    }

    for batch in &per_step.batches {
        let (service, fp) = (
            rows::strings(batch, "service_name")?,
            rows::strings(batch, "fp")?,
        );
        let (bucket, n) = (rows::ints(batch, "bucket")?, rows::ints(batch, "n")?);
        for row in 0..batch.num_rows() {
            let key = (service.value(row).to_owned(), fp.value(row).to_owned());
            let (Some(g), Ok(b)) = (index.get(&key), usize::try_from(bucket.value(row))) else {
                continue;
            };
            if let Some(slot) = groups[*g].counts.get_mut(b) {
                *slot += rows::count(n, row);
            }
        }
    }

    for batch in &examples.batches {
        let (service, fp) = (
            rows::strings(batch, "service_name")?,
            rows::strings(batch, "fp")?,
        );
        let trace = rows::strings(batch, "trace_id")?;
        for row in 0..batch.num_rows() {
            let key = (service.value(row).to_owned(), fp.value(row).to_owned());
            if let Some(g) = index.get(&key) {
                let ids = &mut groups[*g].trace_ids;
                let id = trace.value(row).to_owned();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    Ok(finish(range, step, buckets, groups))
}

fn finish(range: TimeRange, step: i64, buckets: usize, groups: Vec<ErrorGroup>) -> ErrorGroups {
    ErrorGroups {
        step_seconds: step as f64 / 1e9,
        times: (0..buckets)
            .map(|i| rfc3339(range.start + i as i64 * step))
            .collect(),
        groups,
    }
}
