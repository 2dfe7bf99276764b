//! Endpoints for operators and orchestrators: Lakescope's own metrics (`/metrics`, Prometheus
//! text format), liveness (`/healthz`) and readiness to take data (`/readyz`).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lakescope_collector::{Ingest, Lake, stats};
use serde_json::json;

#[derive(Clone)]
struct Ops {
    lake: Arc<Lake>,
    ingest: Ingest,
}

pub fn router(lake: Arc<Lake>, ingest: Ingest) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Ops { lake, ingest })
}

async fn metrics(State(ops): State<Ops>) -> Response {
    stats::refresh(&ops.lake);
    stats::stats()
        .buffer_limit_bytes
        .set(ops.ingest.readiness().buffer_limit_bytes as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        stats::encode(),
    )
        .into_response()
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when OTLP data would be accepted now; 503 with the reasons when it would be refused.
async fn readyz(State(ops): State<Ops>) -> Response {
    let r = ops.ingest.readiness();
    let status = if r.problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": r.problems.is_empty(),
        "buffered_bytes": r.buffered_bytes,
        "buffer_limit_bytes": r.buffer_limit_bytes,
        "problems": r.problems,
    });
    (status, Json(body)).into_response()
}
