//! `/api/v1/traces...`

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::params::Params;
use super::{ApiError, spans};
use crate::engine::QueryEngine;
use crate::views::traces::{self, StatusFilter, TraceId, TraceOrder, TraceQuery};

/// Largest `limit` of a trace search.
const MAX_TRACES: usize = 1000;

pub async fn get(
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

pub async fn search(
    State(engine): State<QueryEngine>,
    query: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::from_query(query);
    let limit = match p.get("limit") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_TRACES).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1 to {MAX_TRACES}")))?,
    };
    let status = p
        .get("status")
        .map(|s| {
            StatusFilter::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!("status {s:?}: use error, ok or unset"))
            })
        })
        .transpose()?;
    let order = match p.get("sort") {
        None | Some("time") => TraceOrder::Time,
        Some("duration") => TraceOrder::Duration,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "sort {other:?}: use time or duration"
            )));
        }
    };
    let attributes = p
        .all("attribute")
        .into_iter()
        .map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| ApiError::BadRequest(format!("attribute {kv:?}: use key=value")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let query = TraceQuery {
        range: p.range()?,
        service: p.text("service"),
        operation: p.text("operation"),
        min_duration_ns: p.millis("min_duration_ms")?,
        max_duration_ns: p.millis("max_duration_ms")?,
        status,
        attributes,
        order,
        limit,
    };
    let found = traces::search(&engine, &query).await?;
    Ok(Json(json!({ "traces": found })))
}
