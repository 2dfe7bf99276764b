//! The services overview: per service, its requests, errors and latency over a time range (see
//! [`super::red`] for which spans count as requests).

use serde::Serialize;

use super::red::{ENTRY, Measure, ROOT, Red};
use super::rows;
use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::time_range::TimeRange;

/// One row of the services overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSummary {
    pub name: String,
    pub measured_by: Measure,
    #[serde(flatten)]
    pub red: Red,
}

/// Every service with spans that started in `range`, by name.
pub async fn services(
    engine: &QueryEngine,
    range: TimeRange,
) -> Result<Vec<ServiceSummary>, QueryError> {
    // Both candidate measures in one pass; each service then uses the one that applies to it.
    let sql = format!(
        "SELECT service_name,
           count(*) FILTER (WHERE {ENTRY}) AS entry_requests,
           count(*) FILTER (WHERE {ENTRY} AND status_code = 'ERROR') AS entry_errors,
           latency_sketch(duration_ns) FILTER (WHERE {ENTRY}) AS entry_latency,
           count(*) FILTER (WHERE {ROOT}) AS root_requests,
           count(*) FILTER (WHERE {ROOT} AND status_code = 'ERROR') AS root_errors,
           latency_sketch(duration_ns) FILTER (WHERE {ROOT}) AS root_latency
         FROM spans
         WHERE start_time >= $1 AND start_time < $2
         GROUP BY service_name
         ORDER BY service_name"
    );
    let rows = engine
        .query(&sql, vec![timestamp(range.start), timestamp(range.end)])
        .await?;
    let mut out = Vec::new();
    for batch in &rows.batches {
        let name = rows::strings(batch, "service_name")?;
        let measures = [
            (
                Measure::Entry,
                rows::ints(batch, "entry_requests")?,
                rows::ints(batch, "entry_errors")?,
                rows::binaries(batch, "entry_latency")?,
            ),
            (
                Measure::Root,
                rows::ints(batch, "root_requests")?,
                rows::ints(batch, "root_errors")?,
                rows::binaries(batch, "root_latency")?,
            ),
        ];
        for row in 0..batch.num_rows() {
            let entry_has_requests = rows::count(measures[0].1, row) > 0;
            let (measure, requests, errors, latency) =
                &measures[if entry_has_requests { 0 } else { 1 }];
            out.push(ServiceSummary {
                name: name.value(row).to_owned(),
                measured_by: *measure,
                red: Red::new(
                    rows::count(requests, row),
                    rows::count(errors, row),
                    &rows::sketch(latency, row)?,
                    range.seconds(),
                ),
            });
        }
    }
    Ok(out)
}
