//! The JSON API: `/api/v1/...`. Every endpoint is described in `docs/api.md` and `docs/openapi.yaml`.

mod error;
mod params;
mod services;
mod spans;
mod sql;
mod traces;
mod views;

use axum::Router;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::engine::QueryEngine;

/// The API routes, for merging into the dashboard server.
pub fn router(engine: QueryEngine) -> Router {
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
        .route("/api/v1/traces", get(traces::search))
        .route("/api/v1/traces/{trace_id}", get(traces::get))
        .route("/api/v1/sql", post(sql::post))
        .with_state(engine)
}
