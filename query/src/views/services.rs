//! The services overview: per service, its requests, errors and latency over a time range (see
//! [`super::red`] for which spans count as requests).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::red::{Measure, Red};
use super::rollup::{self, Cell, CellColumns, MEASURES, Name};
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
    let mut by_service: BTreeMap<Name, Cell> = BTreeMap::new();
    let rolled = rollup::visit(engine, range, None, |row| {
        by_service
            .entry(Arc::clone(&row.service))
            .or_default()
            .merge(&row.cell);
    })
    .await?;
    if !rolled {
        by_service = aggregated(engine, range).await?;
    }
    Ok(by_service
        .into_iter()
        .map(|(name, cell)| {
            let measure = Measure::of(cell.entry.requests);
            let counts = cell.measured(measure);
            ServiceSummary {
                name: name.to_string(),
                measured_by: measure,
                red: Red::new(
                    counts.requests,
                    counts.errors,
                    &counts.latency,
                    range.seconds(),
                ),
            }
        })
        .collect())
}

/// Both measures of every service, aggregated from the spans.
async fn aggregated(
    engine: &QueryEngine,
    range: TimeRange,
) -> Result<BTreeMap<Name, Cell>, QueryError> {
    let sql = format!(
        "SELECT service_name, {measures} FROM spans
         WHERE start_time >= $1 AND start_time < $2
         GROUP BY service_name",
        measures = *MEASURES
    );
    let rows = engine
        .query(&sql, vec![timestamp(range.start), timestamp(range.end)])
        .await?;
    let mut out = BTreeMap::new();
    for batch in &rows.batches {
        let name = rows::strings(batch, "service_name")?;
        let cells = CellColumns::of(batch)?;
        for row in 0..batch.num_rows() {
            out.insert(Name::from(name.value(row)), cells.cell(row)?);
        }
    }
    Ok(out)
}
