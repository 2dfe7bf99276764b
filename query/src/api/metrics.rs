//! `/api/v1/metrics` and `/api/v1/metrics/query`.

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::ApiError;
use super::params::Params;
use crate::engine::QueryEngine;
use crate::views::metrics::{self, Agg, MetricQuery};
use crate::views::traces::rfc3339;

pub async fn list(
    State(engine): State<QueryEngine>,
    raw: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let range = Params::from_query(raw).range()?;
    let metrics = metrics::list(&engine, range).await?;
    Ok(Json(json!({
        "start": rfc3339(range.start),
        "end": rfc3339(range.end),
        "metrics": metrics,
    })))
}

fn pairs(p: &Params, key: &str) -> Result<Vec<(String, String)>, ApiError> {
    p.all(key)
        .into_iter()
        .map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| ApiError::BadRequest(format!("{key} {kv:?}: use key=value")))
        })
        .collect()
}

pub async fn query(
    State(engine): State<QueryEngine>,
    raw: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::from_query(raw);
    let name = p
        .text("name")
        .ok_or_else(|| ApiError::BadRequest("name (the metric) is required".into()))?;
    let range = p.range()?;
    let agg = p
        .get("agg")
        .map(|a| {
            Agg::parse(a).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "agg {a:?}: use rate, increase, last, avg, min, max, quantile, count or sum"
                ))
            })
        })
        .transpose()?;
    let quantile = match p.get("q") {
        None => 0.99,
        Some(q) => q
            .parse::<f64>()
            .ok()
            .filter(|q| (0.0..=1.0).contains(q))
            .ok_or_else(|| ApiError::BadRequest(format!("q {q:?} must be between 0 and 1")))?,
    };
    let group_by = p
        .all("group_by")
        .into_iter()
        .flat_map(|g| g.split(','))
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    let q = MetricQuery {
        name,
        range,
        step: p.step(range)?,
        filters: pairs(&p, "filter")?,
        group_by,
        agg,
        quantile,
    };
    let series = metrics::query(&engine, &q).await?;
    Ok(Json(serde_json::to_value(series).unwrap_or_default()))
}
