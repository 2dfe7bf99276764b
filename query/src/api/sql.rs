//! `POST /api/v1/sql`

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use datafusion::arrow::json::WriterBuilder;
use datafusion::arrow::json::writer::JsonArray;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use crate::engine::{QueryEngine, QueryError};

#[derive(Debug, Deserialize)]
pub struct SqlRequest {
    query: String,
}

fn failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::Query(QueryError::Execution(e.to_string()))
}

pub async fn post(
    State(engine): State<QueryEngine>,
    body: Result<Json<SqlRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body
        .map_err(|e| ApiError::BadRequest(format!("body must be {{\"query\": \"...\"}}: {e}")))?;
    let rows = engine.user_query(&request.query, Vec::new()).await?;
    Ok(Json(rows_json(&rows)?))
}

/// Rows as the SQL endpoint answers them: columns, rows as objects, counts, timing.
pub fn rows_json(rows: &crate::engine::Rows) -> Result<Value, ApiError> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, JsonArray>(Vec::new());
    for batch in &rows.batches {
        writer.write(batch).map_err(failed)?;
    }
    writer.finish().map_err(failed)?;
    let body = writer.into_inner();
    let data: Value = if body.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&body).map_err(failed)?
    };
    let columns: Vec<Value> = rows
        .schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect();
    let row_count: usize = rows.batches.iter().map(|b| b.num_rows()).sum();
    Ok(json!({
        "columns": columns,
        "rows": data,
        "row_count": row_count,
        "truncated": rows.truncated,
        "elapsed_ms": rows.elapsed.as_secs_f64() * 1e3,
    }))
}
