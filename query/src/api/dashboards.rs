//! `/api/v1/dashboards...`

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::ApiError;
use super::params::Params;
use super::sql::rows_json;
use crate::dashboards::Dashboards;
use crate::engine::{QueryEngine, timestamp};

pub async fn list(State(dashboards): State<Arc<Dashboards>>) -> Json<Value> {
    let (all, errors) = dashboards.load();
    let summaries: Vec<Value> = all
        .iter()
        .map(|d| json!({ "id": d.id, "title": d.title, "description": d.description, "source": d.source, "panels": d.panels.len() }))
        .collect();
    Json(json!({ "dashboards": summaries, "errors": errors }))
}

pub async fn get(
    State(dashboards): State<Arc<Dashboards>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let d = dashboards
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no dashboard {id:?}")))?;
    Ok(Json(serde_json::to_value(d).unwrap_or_default()))
}

/// Runs a SQL panel over the time range, with the SQL endpoint's read-only rules and limits.
pub async fn panel(
    State(dashboards): State<Arc<Dashboards>>,
    State(engine): State<QueryEngine>,
    Path((id, index)): Path<(String, usize)>,
    query: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let range = Params::from_query(query).range()?;
    let d = dashboards
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no dashboard {id:?}")))?;
    let panel = d
        .panels
        .get(index)
        .ok_or_else(|| ApiError::NotFound(format!("dashboard {id:?} has no panel {index}")))?;
    let sql = panel
        .sql
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest(format!("panel {index} is not a SQL panel")))?;
    let rows = engine
        .user_query(sql, vec![timestamp(range.start), timestamp(range.end)])
        .await?;
    Ok(Json(rows_json(&rows)?))
}
