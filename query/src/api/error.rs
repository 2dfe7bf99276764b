//! API errors and the one place their HTTP statuses are chosen.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::engine::QueryError;
use crate::time_range::TimeError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl From<TimeError> for ApiError {
    fn from(e: TimeError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

/// `Retry-After` of an answer still being prepared ([`QueryError::Preparing`]).
pub const PREPARING_RETRY_SECONDS: u32 = 30;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) | ApiError::Query(QueryError::Invalid(_)) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Query(QueryError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Query(QueryError::Execution(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Query(QueryError::Busy { .. } | QueryError::Preparing(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Query(QueryError::Memory(_)) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        if status.is_server_error() {
            tracing::warn!(error = %self, "API request failed");
        }
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A free query slot comes within seconds; summaries of a busy hour take a minute.
            let seconds: u32 = match &self {
                ApiError::Query(QueryError::Preparing(_)) => PREPARING_RETRY_SECONDS,
                _ => 1,
            };
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_and_retry(e: QueryError) -> (StatusCode, Option<String>) {
        let response = ApiError::Query(e).into_response();
        let retry = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), retry)
    }

    #[test]
    fn an_answer_being_prepared_is_503_with_a_longer_retry_than_a_busy_server() {
        assert_eq!(
            status_and_retry(QueryError::Preparing("summarising".into())),
            (StatusCode::SERVICE_UNAVAILABLE, Some("30".into()))
        );
        assert_eq!(
            status_and_retry(QueryError::Busy { running: 8 }),
            (StatusCode::SERVICE_UNAVAILABLE, Some("1".into()))
        );
        assert_eq!(
            status_and_retry(QueryError::Memory("join".into())),
            (StatusCode::UNPROCESSABLE_ENTITY, None)
        );
    }
}
