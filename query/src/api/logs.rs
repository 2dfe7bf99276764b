//! `/api/v1/logs` and `/api/v1/logs/histogram`.

use axum::Json;
use axum::extract::{Query, State};
use lakescope_collector::convert::spans::hex;
use lakescope_collector::schema::attributes::to_json;
use lakescope_collector::schema::log_rows::StoredLog;
use serde_json::{Value, json};

use super::ApiError;
use super::params::Params;
use super::spans::attributes;
use crate::engine::QueryEngine;
use crate::views::logs::{self, LogQuery, parse_severity, severity_name};
use crate::views::traces::{TraceId, rfc3339};

/// Largest page of logs.
const MAX_LOGS: usize = 1000;
/// Furthest a page may start.
const MAX_OFFSET: usize = 100_000;

fn query(p: &Params) -> Result<LogQuery, ApiError> {
    let trace_id = p
        .get("trace_id")
        .map(|t| {
            TraceId::parse(t)
                .ok_or_else(|| ApiError::BadRequest(format!("trace_id {t:?} is not 32 hex digits")))
        })
        .transpose()?;
    // A trace's logs need no range; anything else defaults to the last 15 minutes.
    let range = if trace_id.is_some() && p.get("start").is_none() && p.get("end").is_none() {
        None
    } else {
        Some(p.range()?)
    };
    let number = |key: &str, default: usize, max: usize| match p.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| ApiError::BadRequest(format!("{key} must be a number up to {max}"))),
    };
    let limit = number("limit", 100, MAX_LOGS)?.max(1);
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
    Ok(LogQuery {
        range,
        service: p.text("service"),
        min_severity: p
            .get("min_severity")
            .map(|s| {
                parse_severity(s).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "min_severity {s:?}: use trace, debug, info, warn, error, fatal or 0-24"
                    ))
                })
            })
            .transpose()?,
        text: p.text("q"),
        attributes,
        trace_id,
        limit,
        offset: number("offset", 0, MAX_OFFSET)?,
    })
}

/// A stored record as the API returns it.
pub fn log_json(stored: &StoredLog) -> Value {
    let r = &stored.record;
    let time = if r.time_unix_nano == 0 {
        r.observed_time_unix_nano
    } else {
        r.time_unix_nano
    };
    let service = stored
        .resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .map(to_json)
        .unwrap_or(Value::String("unknown_service".into()));
    json!({
        "timestamp": rfc3339(time as i64),
        "timestamp_unix_nano": time.to_string(),
        "time_unix_nano": r.time_unix_nano.to_string(),
        "observed_timestamp": rfc3339(r.observed_time_unix_nano as i64),
        "severity_number": r.severity_number,
        "severity": severity_name(r.severity_number),
        "severity_text": r.severity_text,
        "body": r.body.as_ref().map(to_json).unwrap_or(Value::Null),
        "event_name": r.event_name,
        "trace_id": (!r.trace_id.is_empty()).then(|| hex(&r.trace_id)),
        "span_id": (!r.span_id.is_empty()).then(|| hex(&r.span_id)),
        "flags": r.flags,
        "service_name": service,
        "attributes": attributes(&r.attributes),
        "dropped_attributes_count": r.dropped_attributes_count,
        "resource": {
            "attributes": attributes(&stored.resource.attributes),
            "dropped_attributes_count": stored.resource.dropped_attributes_count,
            "schema_url": stored.resource_schema_url,
        },
        "scope": {
            "name": stored.scope.name,
            "version": stored.scope.version,
            "attributes": attributes(&stored.scope.attributes),
            "dropped_attributes_count": stored.scope.dropped_attributes_count,
            "schema_url": stored.scope_schema_url,
        },
    })
}

pub async fn search(
    State(engine): State<QueryEngine>,
    raw: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let q = query(&Params::from_query(raw))?;
    let (found, more) = logs::search(&engine, &q).await?;
    Ok(Json(json!({
        "logs": found.iter().map(log_json).collect::<Vec<_>>(),
        "limit": q.limit,
        "offset": q.offset,
        "has_more": more,
    })))
}

pub async fn histogram(
    State(engine): State<QueryEngine>,
    raw: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::from_query(raw);
    let q = query(&p)?;
    let range = p.range()?;
    let step = p.step(range)?;
    let h = logs::histogram(&engine, &q, range, step).await?;
    Ok(Json(serde_json::to_value(h).unwrap_or_default()))
}
