//! Logs: search (time range, service, minimum severity, text in the body, attributes, trace id),
//! newest first and paginated, and the count over time of the same search by severity.

use datafusion::common::ScalarValue;
use lakescope_collector::schema::log_rows::{StoredLog, read_logs};
use lakescope_collector::schema::logs::SEVERITIES;
use serde::Serialize;

use super::rows;
use super::traces::TraceId;
use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::time_range::TimeRange;
use crate::views::traces::rfc3339;

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// `None` only with a trace id: a trace's logs need no range.
    pub range: Option<TimeRange>,
    pub service: Option<String>,
    pub min_severity: Option<i32>,
    /// Case-insensitive text the body contains.
    pub text: Option<String>,
    pub attributes: Vec<(String, String)>,
    pub trace_id: Option<TraceId>,
    pub limit: usize,
    pub offset: usize,
}

/// The severity number a name or number means: `warn` → 13, `17` → 17.
pub fn parse_severity(text: &str) -> Option<i32> {
    if let Ok(n) = text.parse::<i32>() {
        return (0..=24).contains(&n).then_some(n);
    }
    let upper = text.to_ascii_uppercase();
    let upper = if upper == "WARNING" {
        "WARN".to_owned()
    } else {
        upper
    };
    SEVERITIES
        .iter()
        .find(|(name, _)| *name == upper)
        .map(|(_, n)| *n)
}

/// The name of a severity number's range (`UNSPECIFIED` for 0).
pub fn severity_name(n: i32) -> &'static str {
    SEVERITIES
        .iter()
        .rev()
        .find(|(_, first)| n >= *first)
        .map_or("UNSPECIFIED", |(name, _)| name)
}

/// The SQL filter of a query and its parameters.
fn filter(q: &LogQuery) -> (String, Vec<ScalarValue>) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    let mut add = |condition: &str, value: ScalarValue| {
        params.push(value);
        conditions.push(condition.replace('?', &format!("${}", params.len())));
    };
    if let Some(range) = q.range {
        add("timestamp >= ?", timestamp(range.start));
        add("timestamp < ?", timestamp(range.end));
    }
    if let Some(service) = &q.service {
        add("service_name = ?", ScalarValue::Utf8(Some(service.clone())));
    }
    if let Some(min) = q.min_severity {
        add("severity_number >= ?", ScalarValue::Int32(Some(min)));
    }
    if let Some(text) = &q.text {
        add("icontains(body, ?)", ScalarValue::Utf8(Some(text.clone())));
    }
    if let Some(id) = &q.trace_id {
        add("trace_id = ?", id.param());
    }
    for (key, value) in &q.attributes {
        let key = key.replace('\'', "''");
        add(
            &format!("(attributes['{key}'] = ? OR resource_attributes['{key}'] = ?)"),
            ScalarValue::Utf8(Some(value.clone())),
        );
    }
    // The attribute condition uses its value twice: `?` was replaced by the same number both times.
    let sql = if conditions.is_empty() {
        "TRUE".to_owned()
    } else {
        conditions.join(" AND ")
    };
    (sql, params)
}

/// The newest part of a word search's range searched first, as a fraction of the range.
const RECENT_SLICE: i64 = 16;

/// One page of matching records, newest first, and whether more follow.
pub async fn search(
    engine: &QueryEngine,
    q: &LogQuery,
) -> Result<(Vec<StoredLog>, bool), QueryError> {
    // A common word occurs in records all over the range, and decoding every column of each of
    // them to keep the newest page was most of the search's cost. So the first page of a word
    // search looks in the newest sixteenth of the range first (pages of older records are
    // skipped by their time statistics), and in the rest only if that held too few. Every
    // record of the newer slice is newer than any of the older one, so the page is the same.
    let wanted = q.limit + 1;
    let slices = match q.range {
        Some(range)
            if q.text.is_some()
                && q.offset == 0
                && i128::from(range.end) - i128::from(range.start) >= i128::from(RECENT_SLICE) =>
        {
            // In i128: a range from far before to far after the epoch spans more than i64.
            let span = i128::from(range.end) - i128::from(range.start);
            let cut = range.end - i64::try_from(span / i128::from(RECENT_SLICE)).unwrap_or(0);
            vec![
                Some(TimeRange {
                    start: cut,
                    end: range.end,
                }),
                Some(TimeRange {
                    start: range.start,
                    end: cut,
                }),
            ]
        }
        range => vec![range],
    };
    let mut out = Vec::new();
    for range in slices {
        let q = LogQuery { range, ..q.clone() };
        let (filter, params) = filter(&q);
        let sql = format!(
            "SELECT * FROM logs WHERE {filter} ORDER BY timestamp DESC, observed_timestamp DESC \
             LIMIT {} OFFSET {}",
            wanted - out.len(),
            q.offset
        );
        // A word, a trace or an attribute selects few records: with the filter evaluated
        // while decoding, only those records' other columns (attribute maps, resource) are
        // decoded.
        let selective = q.text.is_some() || q.trace_id.is_some() || !q.attributes.is_empty();
        let rows = if selective {
            engine.lookup(&sql, params).await?
        } else {
            engine.query(&sql, params).await?
        };
        for batch in &rows.batches {
            out.extend(read_logs(batch).map_err(|e| QueryError::Execution(e.to_string()))?);
        }
        if out.len() >= wanted {
            break;
        }
    }
    let more = out.len() > q.limit;
    out.truncate(q.limit);
    Ok((out, more))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeverityCounts {
    pub severity: &'static str,
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogHistogram {
    pub step_seconds: f64,
    pub times: Vec<String>,
    pub total: u64,
    /// One series per severity range present, from UNSPECIFIED to FATAL.
    pub series: Vec<SeverityCounts>,
}

/// Matching records per time step and severity range.
pub async fn histogram(
    engine: &QueryEngine,
    q: &LogQuery,
    range: TimeRange,
    step: i64,
) -> Result<LogHistogram, QueryError> {
    let q = LogQuery {
        range: Some(range),
        ..q.clone()
    };
    let (filter, mut params) = filter(&q);
    params.push(ScalarValue::Int64(Some(range.start)));
    params.push(ScalarValue::Int64(Some(step)));
    let (origin, width) = (params.len() - 1, params.len());
    let sql = format!(
        "SELECT (CAST(timestamp AS BIGINT) - ${origin}) / ${width} AS t, \
           CASE WHEN severity_number >= 21 THEN 6 WHEN severity_number >= 17 THEN 5 \
                WHEN severity_number >= 13 THEN 4 WHEN severity_number >= 9 THEN 3 \
                WHEN severity_number >= 5 THEN 2 WHEN severity_number >= 1 THEN 1 ELSE 0 END AS s, \
           count(*) AS n \
         FROM logs WHERE {filter} GROUP BY 1, 2"
    );
    let steps = ((range.end - range.start + step - 1) / step).max(1) as usize;
    let mut grid = vec![vec![0u64; steps]; 7];
    for batch in &engine.query(&sql, params).await?.batches {
        let (t, s, n) = (
            rows::ints(batch, "t")?,
            rows::ints(batch, "s")?,
            rows::ints(batch, "n")?,
        );
        for row in 0..batch.num_rows() {
            let (Ok(t), Ok(s)) = (usize::try_from(t.value(row)), usize::try_from(s.value(row)))
            else {
                continue;
            };
            if let Some(cell) = grid.get_mut(s).and_then(|r| r.get_mut(t)) {
                *cell += rows::count(n, row);
            }
        }
    }
    let names = [
        "UNSPECIFIED",
        "TRACE",
        "DEBUG",
        "INFO",
        "WARN",
        "ERROR",
        "FATAL",
    ];
    let total = grid.iter().flatten().sum();
    Ok(LogHistogram {
        step_seconds: step as f64 / 1e9,
        times: (0..steps)
            .map(|i| rfc3339(range.start + i as i64 * step))
            .collect(),
        total,
        series: grid
            .into_iter()
            .zip(names)
            .filter(|(counts, _)| counts.iter().any(|c| *c > 0))
            .map(|(counts, severity)| SeverityCounts { severity, counts })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_by_name_or_number() {
        assert_eq!(parse_severity("warn"), Some(13));
        assert_eq!(parse_severity("WARNING"), Some(13));
        assert_eq!(parse_severity("error"), Some(17));
        assert_eq!(parse_severity("9"), Some(9));
        assert_eq!(parse_severity("25"), None);
        assert_eq!(parse_severity("loud"), None);
        assert_eq!(severity_name(0), "UNSPECIFIED");
        assert_eq!(severity_name(12), "INFO");
        assert_eq!(severity_name(17), "ERROR");
        assert_eq!(severity_name(24), "FATAL");
    }
}
