//! The JSON API: `/api/v1/...`. Every endpoint is described in `docs/api.md` and `docs/openapi.yaml`.

mod dashboards;
mod error;
mod logs;
mod metrics;
mod params;
mod prometheus;
mod services;
mod spans;
mod sql;
mod traces;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::dashboards::Dashboards;
use crate::engine::QueryEngine;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub engine: QueryEngine,
    pub dashboards: Arc<Dashboards>,
}

impl FromRef<ApiState> for QueryEngine {
    fn from_ref(state: &ApiState) -> Self {
        state.engine.clone()
    }
}

impl FromRef<ApiState> for Arc<Dashboards> {
    fn from_ref(state: &ApiState) -> Self {
        Arc::clone(&state.dashboards)
    }
}

/// The API routes, for merging into the dashboard server.
pub fn router(engine: QueryEngine, dashboards: Dashboards) -> Router {
    Router::new()
        .route("/api/v1/services", get(services::list))
        .route("/api/v1/services/{service}/series", get(services::series))
        .route(
            "/api/v1/services/{service}/operations",
            get(services::operations),
        )
        .route("/api/v1/latency", get(views::latency))
        .route("/api/v1/latency/compare", get(views::compare))
        .route("/api/v1/errors", get(views::errors))
        .route("/api/v1/dependencies", get(views::dependencies))
        .route("/api/v1/logs", get(logs::search))
        .route("/api/v1/logs/histogram", get(logs::histogram))
        .route("/api/v1/metrics", get(metrics::list))
        .route("/api/v1/metrics/query", get(metrics::query))
        .route("/api/v1/traces", get(traces::search))
        .route("/api/v1/traces/{trace_id}", get(traces::get))
        .route("/api/v1/sql", post(sql::post))
        .route(
            "/api/v1/query",
            get(prometheus::query).post(prometheus::query),
        )
        .route(
            "/api/v1/query_range",
            get(prometheus::query_range).post(prometheus::query_range),
        )
        .route(
            "/api/v1/series",
            get(prometheus::series).post(prometheus::series),
        )
        .route(
            "/api/v1/labels",
            get(prometheus::labels).post(prometheus::labels),
        )
        .route("/api/v1/label/{name}/values", get(prometheus::label_values))
        .route(
            "/api/v1/metadata",
            get(prometheus::metadata).post(prometheus::metadata),
        )
        .route("/api/v1/status/buildinfo", get(prometheus::buildinfo))
        .route("/api/v1/dashboards", get(dashboards::list))
        .route("/api/v1/dashboards/{id}", get(dashboards::get))
        .route(
            "/api/v1/dashboards/{id}/panels/{index}",
            get(dashboards::panel),
        )
        .with_state(ApiState {
            engine,
            dashboards: Arc::new(dashboards),
        })
}
