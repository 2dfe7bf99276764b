//! `/api/v1/latency`, `/api/v1/latency/compare`, `/api/v1/errors`, `/api/v1/dependencies`.

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::ApiError;
use super::params::Params;
use crate::engine::QueryEngine;
use crate::views::latency::{self, Selection};
use crate::views::traces::rfc3339;
use crate::views::{dependencies, errors};

fn to_json(value: impl serde::Serialize) -> Json<Value> {
    Json(serde_json::to_value(value).unwrap_or_default())
}

fn selection(p: &Params) -> Result<Selection, ApiError> {
    Ok(Selection {
        service: p.text("service"),
        operation: p.text("operation"),
        range: p.range()?,
    })
}

pub async fn latency(
    State(engine): State<QueryEngine>,
    query: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::from_query(query);
    let sel = selection(&p)?;
    let step = p.step(sel.range)?;
    Ok(to_json(latency::distribution(&engine, &sel, step).await?))
}

pub async fn compare(
    State(engine): State<QueryEngine>,
    query: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::from_query(query);
    let sel = selection(&p)?;
    let min = p.millis("min_ms")?.unwrap_or(0) as f64 / 1e6;
    let max = p
        .millis("max_ms")?
        .map_or(f64::INFINITY, |ns| ns as f64 / 1e6);
    if min >= max {
        return Err(ApiError::BadRequest("min_ms must be below max_ms".into()));
    }
    Ok(to_json(latency::compare(&engine, &sel, min, max).await?))
}

pub async fn errors(
    State(engine): State<QueryEngine>,
    query: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::from_query(query);
    let range = p.range()?;
    let step = p.step(range)?;
    let groups = errors::groups(&engine, p.get("service"), range, step).await?;
    let mut value = serde_json::to_value(groups).unwrap_or_default();
    value["start"] = json!(rfc3339(range.start));
    value["end"] = json!(rfc3339(range.end));
    Ok(Json(value))
}

pub async fn dependencies(
    State(engine): State<QueryEngine>,
    query: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    // The graph counts whole minutes: the answer says which.
    let range = dependencies::whole_minutes(Params::from_query(query).range()?);
    let mut value =
        serde_json::to_value(dependencies::graph(&engine, range).await?).unwrap_or_default();
    value["start"] = json!(rfc3339(range.start));
    value["end"] = json!(rfc3339(range.end));
    Ok(Json(value))
}
