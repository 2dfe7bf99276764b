//! `/api/v1/services...`

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::ApiError;
use super::params::Params;
use crate::engine::QueryEngine;
use crate::views::red;
use crate::views::services::services;
use crate::views::traces::rfc3339;

pub async fn list(
    State(engine): State<QueryEngine>,
    query: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let range = Params::from_query(query).range()?;
    let services = services(&engine, range).await?;
    Ok(Json(json!({
        "start": rfc3339(range.start),
        "end": rfc3339(range.end),
        "services": services,
    })))
}

pub async fn series(
    State(engine): State<QueryEngine>,
    Path(service): Path<String>,
    query: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::from_query(query);
    let range = p.range()?;
    let step = p.step(range)?;
    let series = red::series(&engine, &service, p.get("operation"), range, step).await?;
    Ok(Json(serde_json::to_value(series).unwrap_or_default()))
}

pub async fn operations(
    State(engine): State<QueryEngine>,
    Path(service): Path<String>,
    query: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let range = Params::from_query(query).range()?;
    let (measure, operations) = red::operations(&engine, &service, range).await?;
    Ok(Json(json!({
        "service": service,
        "measured_by": measure,
        "start": rfc3339(range.start),
        "end": rfc3339(range.end),
        "operations": operations,
    })))
}
