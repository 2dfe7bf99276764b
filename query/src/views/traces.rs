//! Traces: one trace by id, and a search that returns trace summaries.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Int64Type, TimestampNanosecondType};
use datafusion::common::ScalarValue;
use lakescope_collector::schema::span_rows::{StoredSpan, read_spans};
use serde::Serialize;

use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::time_range::TimeRange;

/// A trace id as the API accepts it: 32 hex digits, any case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceId(String);

impl TraceId {
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_ascii_lowercase()))
    }

    /// The id as the API shows it: 32 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as the lake stores it: 16 bytes.
    pub fn bytes(&self) -> Vec<u8> {
        const_hex::decode(&self.0).unwrap_or_default()
    }

    /// A parameter comparing equal to the stored `trace_id` column.
    pub fn param(&self) -> ScalarValue {
        ScalarValue::Binary(Some(self.bytes()))
    }

    /// A SQL literal comparing equal to the stored `trace_id` column (`X'…'`).
    pub fn literal(&self) -> String {
        format!("X'{}'", self.0)
    }
}

/// Every span of a trace, in start order; empty when the trace is unknown.
pub async fn trace(engine: &QueryEngine, id: &TraceId) -> Result<Vec<StoredSpan>, QueryError> {
    let rows = engine.trace_rows(&id.bytes()).await?;
    let mut spans = Vec::new();
    for batch in &rows.batches {
        spans.extend(read_spans(batch).map_err(|e| QueryError::Execution(e.to_string()))?);
    }
    spans.sort_by(|a, b| {
        (a.span.start_time_unix_nano, &a.span.span_id)
            .cmp(&(b.span.start_time_unix_nano, &b.span.span_id))
    });
    Ok(spans)
}

/// Span status filter of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Error,
    Ok,
    Unset,
}

impl StatusFilter {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "error" => Some(Self::Error),
            "ok" => Some(Self::Ok),
            "unset" => Some(Self::Unset),
            _ => None,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Ok => "OK",
            Self::Unset => "UNSET",
        }
    }
}

/// What to look for: traces with at least one span, started in `range`, matching every filter.
#[derive(Debug, Clone)]
pub struct TraceQuery {
    pub range: TimeRange,
    pub service: Option<String>,
    pub operation: Option<String>,
    pub min_duration_ns: Option<i64>,
    pub max_duration_ns: Option<i64>,
    pub status: Option<StatusFilter>,
    /// `(key, value)`: the span or its resource has this attribute with this value (compared as
    /// text, as stored).
    pub attributes: Vec<(String, String)>,
    pub order: TraceOrder,
    pub limit: usize,
}

/// How search results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceOrder {
    /// Most recent first.
    #[default]
    Time,
    /// Longest matching span first.
    Duration,
}

/// One trace in search results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_service: String,
    pub root_operation: String,
    /// RFC 3339 with nanoseconds.
    pub start_time: String,
    pub start_time_unix_nano: String,
    pub duration_ms: f64,
    pub span_count: u64,
    pub error: bool,
}

/// The most recent matching traces, newest first.
pub async fn search(engine: &QueryEngine, q: &TraceQuery) -> Result<Vec<TraceSummary>, QueryError> {
    let mut params = vec![timestamp(q.range.start), timestamp(q.range.end)];
    let mut conditions = vec!["start_time >= $1".to_owned(), "start_time < $2".to_owned()];
    let mut add = |condition: &str, value: ScalarValue| {
        params.push(value);
        conditions.push(condition.replace('?', &format!("${}", params.len())));
    };
    if let Some(service) = &q.service {
        add("service_name = ?", ScalarValue::Utf8(Some(service.clone())));
    }
    if let Some(operation) = &q.operation {
        add("name = ?", ScalarValue::Utf8(Some(operation.clone())));
    }
    if let Some(min) = q.min_duration_ns {
        add("duration_ns >= ?", ScalarValue::Int64(Some(min)));
    }
    if let Some(status) = q.status {
        add(
            "status_code = ?",
            ScalarValue::Utf8(Some(status.code().to_owned())),
        );
    }
    if let Some(max) = q.max_duration_ns {
        add("duration_ns <= ?", ScalarValue::Int64(Some(max)));
    }
    for (key, value) in &q.attributes {
        params.push(ScalarValue::Utf8(Some(value.clone())));
        conditions.push(attribute_condition(key, params.len()));
    }
    let order = match q.order {
        TraceOrder::Time => "latest DESC",
        TraceOrder::Duration => "longest DESC",
    };
    let sql = format!(
        "SELECT encode(trace_id, 'hex') AS id, max(start_time) AS latest, \
         max(duration_ns) AS longest FROM spans \
         WHERE {} GROUP BY trace_id ORDER BY {order}, trace_id LIMIT {}",
        conditions.join(" AND "),
        q.limit
    );
    let rows = engine.query(&sql, params).await?;
    let mut ids = Vec::new();
    for batch in &rows.batches {
        let col = batch
            .column(0)
            .as_string_opt::<i32>()
            .ok_or_else(|| QueryError::Execution("trace search: trace_id".into()))?;
        // Only well-formed ids are placed into the summary query below.
        ids.extend(col.iter().flatten().filter_map(TraceId::parse));
    }
    let mut found = summaries(engine, &ids).await?;
    // Keep the search's order (the summary query orders by start time).
    found.sort_by_key(|t| ids.iter().position(|id| id.as_str() == t.trace_id));
    Ok(found)
}

/// Semantic-convention attributes with columns of their own, and whether the column is an
/// integer. A column also holds the older or newer name of the same attribute.
const PROMOTED: [(&str, &str, bool); 21] = [
    ("service.name", "service_name", false),
    ("service.namespace", "service_namespace", false),
    ("service.version", "service_version", false),
    ("service.instance.id", "service_instance_id", false),
    ("http.request.method", "http_method", false),
    ("http.method", "http_method", false),
    ("http.route", "http_route", false),
    ("http.response.status_code", "http_status_code", true),
    ("http.status_code", "http_status_code", true),
    ("rpc.system", "rpc_system", false),
    ("rpc.service", "rpc_service", false),
    ("rpc.method", "rpc_method", false),
    ("rpc.grpc.status_code", "rpc_grpc_status_code", true),
    ("db.system.name", "db_system", false),
    ("db.system", "db_system", false),
    ("messaging.system", "messaging_system", false),
    ("messaging.destination.name", "messaging_destination", false),
    ("server.address", "server_address", false),
    ("server.port", "server_port", true),
    ("peer.service", "peer_service", false),
    ("exception.type", "exception_type", false),
];

/// The SQL condition "the span (or its resource) has attribute `key` = parameter `$value`".
/// Promoted attributes compare their column (fast: statistics and no map decoding); others look
/// the key up in the span's and the resource's attribute maps.
fn attribute_condition(key: &str, value: usize) -> String {
    if let Some((_, column, int)) = PROMOTED.iter().find(|(k, _, _)| *k == key) {
        return if *int {
            format!("CAST({column} AS VARCHAR) = ${value}")
        } else {
            format!("{column} = ${value}")
        };
    }
    let key = key.replace('\'', "''");
    format!("(attributes['{key}'] = ${value} OR resource_attributes['{key}'] = ${value})")
}

/// Summaries of the given traces, over all their spans, newest first.
async fn summaries(engine: &QueryEngine, ids: &[TraceId]) -> Result<Vec<TraceSummary>, QueryError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = ids
        .iter()
        .map(TraceId::literal)
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT encode(trace_id, 'hex') AS id,
           first_value(service_name ORDER BY parent_span_id IS NULL DESC, start_time) AS root_service,
           first_value(name ORDER BY parent_span_id IS NULL DESC, start_time) AS root_operation,
           min(start_time) AS start,
           CAST(max(end_time) AS BIGINT) - CAST(min(start_time) AS BIGINT) AS duration_ns,
           count(*) AS spans,
           bool_or(status_code = 'ERROR') AS error
         FROM spans WHERE trace_id IN ({list})
         GROUP BY trace_id ORDER BY start DESC, trace_id"
    );
    let rows = engine.lookup(&sql, Vec::new()).await?;
    let bad = |c: &str| QueryError::Execution(format!("trace summaries: unexpected column {c}"));
    let mut out = Vec::new();
    for batch in &rows.batches {
        let id = batch
            .column(0)
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("trace_id"))?;
        let service = batch
            .column(1)
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("root_service"))?;
        let operation = batch
            .column(2)
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("root_operation"))?;
        let start = batch
            .column(3)
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| bad("start"))?;
        let duration = batch
            .column(4)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| bad("duration"))?;
        let spans = batch
            .column(5)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| bad("spans"))?;
        let error = batch
            .column(6)
            .as_boolean_opt()
            .ok_or_else(|| bad("error"))?;
        for row in 0..batch.num_rows() {
            out.push(TraceSummary {
                trace_id: id.value(row).to_owned(),
                root_service: service.value(row).to_owned(),
                root_operation: operation.value(row).to_owned(),
                start_time: rfc3339(start.value(row)),
                start_time_unix_nano: start.value(row).to_string(),
                duration_ms: duration.value(row) as f64 / 1e6,
                span_count: spans.value(row).max(0) as u64,
                error: !error.is_null(row) && error.value(row),
            });
        }
    }
    Ok(out)
}

/// RFC 3339 with nanoseconds, in UTC.
pub fn rfc3339(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
