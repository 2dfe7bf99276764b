//! OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs` with protobuf or JSON bodies, optionally gzip
//! or zstd encoded.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use prost::Message;
use serde::Serialize;

use super::decode::{self, DecodeError, Encoding};
use super::{Logs, Metrics, RETRY_AFTER_SECS, ReceiveError, Signal, Status, Traces};
use crate::ingest::{Ingest, IngestError};

/// The OTLP/HTTP routes.
pub fn router(ingest: Ingest) -> Router {
    Router::new()
        .route(Traces::PATH, post(export::<Traces>))
        .route(Logs::PATH, post(export::<Logs>))
        .route(Metrics::PATH, post(export::<Metrics>))
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}

fn encode<M: Message + Serialize>(message: &M, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        Encoding::Json => {
            // Absent message fields are left out (the protobuf JSON mapping), not written as null.
            let mut value = serde_json::to_value(message).unwrap_or_default();
            if let serde_json::Value::Object(map) = &mut value {
                map.retain(|_, v| !v.is_null());
            }
            serde_json::to_vec(&value).unwrap_or_default()
        }
    }
}

fn respond<M: Message + Serialize>(code: StatusCode, message: &M, encoding: Encoding) -> Response {
    let mut response = (code, encode(message, encoding)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    response
}

/// The one place HTTP status codes are chosen. The body is a `google.rpc.Status` in the request's
/// encoding (protobuf when the request's own encoding is unknown).
pub fn error_response(error: &ReceiveError, encoding: Encoding) -> Response {
    let (code, grpc_code) = match error {
        ReceiveError::Decode(DecodeError::TooLarge { .. } | DecodeError::TooManyRecords { .. })
        | ReceiveError::Ingest(IngestError::RepeatsTooMuch { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, 8)
        }
        ReceiveError::Decode(
            DecodeError::UnsupportedMediaType(_) | DecodeError::UnsupportedEncoding(_),
        ) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, 3),
        ReceiveError::Decode(_) => (StatusCode::BAD_REQUEST, 3),
        ReceiveError::Ingest(
            IngestError::Unavailable(_)
            | IngestError::ShuttingDown
            | IngestError::Overloaded { .. }
            | IngestError::DiskLow { .. },
        ) => (StatusCode::SERVICE_UNAVAILABLE, 14),
        ReceiveError::Ingest(IngestError::Internal(_)) => (StatusCode::INTERNAL_SERVER_ERROR, 13),
    };
    let status = Status {
        code: grpc_code,
        message: error.to_string(),
    };
    let mut response = respond(code, &status, encoding);
    if code == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, DecodeError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| DecodeError::TooLarge { limit })
}

async fn export<S: Signal>(State(ingest): State<Ingest>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let encoding = match decode::encoding(&parts.headers) {
        Ok(encoding) => encoding,
        Err(e) => return error_response(&e.into(), Encoding::Protobuf),
    };
    let result = async {
        ingest.check_admission()?;
        let limit = ingest.limits().max_request_bytes;
        let body = read_body(body, limit).await?;
        let body = decode::decompress(&parts.headers, body, limit)?;
        let _reservation = super::admit::<S>(&ingest, &body, encoding)?;
        if encoding == Encoding::Protobuf
            && let Some(outcome) = S::export_protobuf(&ingest, &body).await?
        {
            return Ok(outcome);
        }
        let decoded = decode::decode::<S::Request>(body, encoding, S::SCHEMA, S::from_json)?;
        let outcome = S::export(&ingest, decoded.message, decoded.protobuf).await?;
        Ok::<_, ReceiveError>(super::note_repairs(outcome, decoded.repaired))
    }
    .await;
    super::count::<S>("http", &result);
    match result {
        Ok(outcome) => respond(StatusCode::OK, &S::response(outcome), encoding),
        Err(error) => {
            tracing::debug!(%error, "OTLP/HTTP export refused");
            error_response(&error, encoding)
        }
    }
}
