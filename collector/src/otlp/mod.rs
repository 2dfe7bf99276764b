//! OTLP receivers: gRPC (`grpc`) and HTTP (`http`), sharing body decoding (`decode`) and the
//! mapping of failures to each protocol's status.

pub mod decode;
pub mod grpc;
pub mod http;

use decode::DecodeError;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::ingest::{ExportOutcome, IngestError};

/// A request that could not be accepted, in terms both protocols can express.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Seconds a sender should wait before retrying a request refused for lack of capacity.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The response to an accepted trace export: `partial_success` only when spans were rejected.
pub fn trace_response(outcome: ExportOutcome) -> ExportTraceServiceResponse {
    let rejected = outcome.rejected > 0;
    ExportTraceServiceResponse {
        partial_success: rejected.then_some(ExportTracePartialSuccess {
            rejected_spans: outcome.rejected as i64,
            error_message: outcome.error_message,
        }),
    }
}
