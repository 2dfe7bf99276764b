//! The JSON API: `/api/v1/...`. Every endpoint is described in `docs/api.md`.

mod error;
mod spans;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use datafusion::arrow::json::WriterBuilder;
use datafusion::arrow::json::writer::JsonArray;
use serde::Deserialize;
use serde_json::{Value, json};

pub use error::ApiError;

use crate::engine::QueryEngine;
use crate::time_range::{TimeRange, parse_duration};
use crate::views::services::services;
use crate::views::traces::{self, StatusFilter, TraceId, TraceQuery};

/// Default time range of the views: the last 15 minutes.
const DEFAULT_RANGE_NANOS: i64 = 15 * 60 * 1_000_000_000;
/// Largest `limit` of a trace search.
const MAX_TRACES: usize = 1000;

/// The API routes, for merging into the dashboard server.
pub fn router(engine: QueryEngine) -> Router {
    Router::new()
        .route("/api/v1/services", get(get_services))
        .route("/api/v1/traces", get(search_traces))
        .route("/api/v1/traces/{trace_id}", get(get_trace))
        .route("/api/v1/sql", post(post_sql))
        .with_state(engine)
}

#[derive(Debug, Deserialize)]
struct RangeParams {
    start: Option<String>,
    end: Option<String>,
}

async fn get_services(
    State(engine): State<QueryEngine>,
    Query(p): Query<RangeParams>,
) -> Result<Json<Value>, ApiError> {
    let range = TimeRange::parse(p.start.as_deref(), p.end.as_deref(), DEFAULT_RANGE_NANOS)?;
    let services = services(&engine, range).await?;
    Ok(Json(json!({
        "start": traces::rfc3339(range.start),
        "end": traces::rfc3339(range.end),
        "services": services,
    })))
}

async fn get_trace(
    State(engine): State<QueryEngine>,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = TraceId::parse(&trace_id).ok_or_else(|| {
        ApiError::BadRequest(format!("{trace_id:?} is not a trace id (32 hex digits)"))
    })?;
    let spans = traces::trace(&engine, &id).await?;
    if spans.is_empty() {
        return Err(ApiError::NotFound(format!(
            "trace {} not found",
            id.as_str()
        )));
    }
    Ok(Json(json!({
        "trace_id": id.as_str(),
        "span_count": spans.len(),
        "spans": spans.iter().map(spans::span_json).collect::<Vec<_>>(),
    })))
}

fn parse_min_duration(text: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "min_duration_ms {text:?} is not a number of milliseconds"
        ))
    };
    if let Ok(ms) = text.parse::<f64>() {
        if ms.is_finite() && ms >= 0.0 {
            return Ok((ms * 1e6) as i64);
        }
        return Err(bad());
    }
    parse_duration(text).ok_or_else(bad)
}

async fn search_traces(
    State(engine): State<QueryEngine>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let range = TimeRange::parse(get("start"), get("end"), DEFAULT_RANGE_NANOS)?;
    let limit = match get("limit") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_TRACES).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1 to {MAX_TRACES}")))?,
    };
    let status = get("status")
        .map(|s| {
            StatusFilter::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!("status {s:?}: use error, ok or unset"))
            })
        })
        .transpose()?;
    let query = TraceQuery {
        range,
        service: get("service").map(str::to_owned),
        operation: get("operation").map(str::to_owned),
        min_duration_ns: get("min_duration_ms").map(parse_min_duration).transpose()?,
        status,
        limit,
    };
    let found = traces::search(&engine, &query).await?;
    Ok(Json(json!({ "traces": found })))
}

#[derive(Debug, Deserialize)]
struct SqlRequest {
    query: String,
}

async fn post_sql(
    State(engine): State<QueryEngine>,
    body: Result<Json<SqlRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body
        .map_err(|e| ApiError::BadRequest(format!("body must be {{\"query\": \"...\"}}: {e}")))?;
    let rows = engine.user_query(&request.query).await?;
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, JsonArray>(Vec::new());
    for batch in &rows.batches {
        writer
            .write(batch)
            .map_err(|e| ApiError::Query(crate::engine::QueryError::Execution(e.to_string())))?;
    }
    writer
        .finish()
        .map_err(|e| ApiError::Query(crate::engine::QueryError::Execution(e.to_string())))?;
    let body = writer.into_inner();
    let data: Value = if body.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::Query(crate::engine::QueryError::Execution(e.to_string())))?
    };
    let columns: Vec<Value> = rows
        .schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect();
    let row_count: usize = rows.batches.iter().map(|b| b.num_rows()).sum();
    Ok(Json(json!({
        "columns": columns,
        "rows": data,
        "row_count": row_count,
        "truncated": rows.truncated,
        "elapsed_ms": rows.elapsed.as_secs_f64() * 1e3,
    })))
}
