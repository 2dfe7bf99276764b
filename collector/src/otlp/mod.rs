//! OTLP receivers: gRPC (`grpc`) and HTTP (`http`), sharing body decoding (`decode`) and the
//! mapping of failures to each protocol's status.

pub mod decode;
pub mod grpc;
pub mod http;
pub mod json;
pub mod records;
pub mod utf8;

use decode::DecodeError;

use std::future::Future;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::ingest::{ExportOutcome, IN_FLIGHT_BYTES_PER_RECORD, Ingest, IngestError, Reservation};

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

/// Counts one export's result in Lakescope's own metrics.
pub fn count<S: Signal>(protocol: &'static str, result: &Result<ExportOutcome, ReceiveError>) {
    let stats = crate::stats::stats();
    let labels = crate::stats::Receive {
        signal: S::NAME,
        protocol,
    };
    match result {
        Ok(outcome) => {
            stats
                .records_accepted
                .get_or_create(&labels)
                .inc_by(outcome.accepted as u64);
            stats
                .records_rejected
                .get_or_create(&labels)
                .inc_by(outcome.rejected as u64);
        }
        Err(error) => {
            let reason = match error {
                ReceiveError::Decode(DecodeError::TooLarge { .. }) => "too_large",
                ReceiveError::Decode(DecodeError::TooManyRecords { .. }) => "too_many_records",
                ReceiveError::Ingest(IngestError::RepeatsTooMuch { .. }) => "repeats_too_much",
                ReceiveError::Decode(_) => "invalid",
                ReceiveError::Ingest(IngestError::Overloaded { .. }) => "overloaded",
                ReceiveError::Ingest(IngestError::DiskLow { .. }) => "disk_low",
                ReceiveError::Ingest(IngestError::Unavailable(_)) => "unavailable",
                ReceiveError::Ingest(IngestError::ShuttingDown) => "shutting_down",
                ReceiveError::Ingest(IngestError::Internal(_)) => "internal",
            };
            stats
                .requests_refused
                .get_or_create(&crate::stats::Refusal {
                    signal: S::NAME,
                    protocol,
                    reason,
                })
                .inc();
        }
    }
}

/// Admits a request (its decompressed body) to decoding: refuses one holding more records than
/// `--max-request-records`, counted on its bytes (see [`records`]), and reserves the memory it
/// is reckoned to take until its batch is buffered; hold the reservation until then.
pub fn admit<S: Signal>(
    ingest: &Ingest,
    body: &[u8],
    encoding: decode::Encoding,
) -> Result<Reservation, ReceiveError> {
    let records = match encoding {
        decode::Encoding::Protobuf => records::in_protobuf(body, S::RECORDS),
        decode::Encoding::Json => records::in_json(body, S::RECORDS),
    };
    let limit = ingest.limits().max_request_records;
    if records > limit {
        return Err(DecodeError::TooManyRecords { records, limit }.into());
    }
    let bytes = body
        .len()
        .saturating_add(records.saturating_mul(IN_FLIGHT_BYTES_PER_RECORD));
    Ok(ingest.reserve(bytes)?)
}

/// Seconds a sender should wait before retrying a request refused for lack of capacity.
pub const RETRY_AFTER_SECS: u64 = 1;

/// One OTLP signal as both receivers see it: its messages, its gRPC service, its HTTP path.
pub trait Signal: Send + Sync + 'static {
    /// The gRPC service name.
    const SERVICE: &'static str;
    /// The OTLP/HTTP path.
    const PATH: &'static str;
    /// The signal's name in Lakescope's own metrics: `traces`, `logs` or `metrics`.
    const NAME: &'static str;
    /// The string fields of the request, for repairing invalid UTF-8.
    const SCHEMA: &'static utf8::Schema;
    /// Where the request's records are, for counting them before decoding.
    const RECORDS: &'static records::Path;
    type Request: prost::Message + Default + Send + 'static;
    type Response: prost::Message + serde::Serialize + Default + Send + 'static;

    fn export(
        ingest: &Ingest,
        request: Self::Request,
        raw: Option<Bytes>,
    ) -> impl Future<Output = Result<ExportOutcome, IngestError>> + Send;

    /// Accepts a protobuf request converted straight from its bytes, for a signal with such a
    /// path; `Ok(None)` (the default) sends it down the general one, [`Self::export`].
    fn export_protobuf(
        ingest: &Ingest,
        raw: &Bytes,
    ) -> impl Future<Output = Result<Option<ExportOutcome>, IngestError>> + Send {
        let _ = (ingest, raw);
        std::future::ready(Ok(None))
    }

    /// The response to an accepted export: `partial_success` only when records were rejected.
    fn response(outcome: ExportOutcome) -> Self::Response;

    /// Reads the request from OTLP/JSON.
    fn from_json(body: &[u8]) -> Result<Self::Request, json::JsonError>;
}

pub struct Traces;
pub struct Logs;
pub struct Metrics;

impl Signal for Traces {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/v1/traces";
    const NAME: &'static str = "traces";
    const SCHEMA: &'static utf8::Schema = &utf8::TRACES;
    const RECORDS: &'static records::Path = &records::SPANS;
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;

    async fn export(
        ingest: &Ingest,
        request: Self::Request,
        raw: Option<Bytes>,
    ) -> Result<ExportOutcome, IngestError> {
        ingest.export_traces(request, raw).await
    }

    async fn export_protobuf(
        ingest: &Ingest,
        raw: &Bytes,
    ) -> Result<Option<ExportOutcome>, IngestError> {
        ingest.export_traces_protobuf(raw).await
    }

    fn from_json(body: &[u8]) -> Result<Self::Request, json::JsonError> {
        json::traces(body)
    }

    fn response(outcome: ExportOutcome) -> Self::Response {
        let rejected = outcome.rejected > 0 || !outcome.error_message.is_empty();
        ExportTraceServiceResponse {
            partial_success: rejected.then_some(ExportTracePartialSuccess {
                rejected_spans: outcome.rejected as i64,
                error_message: outcome.error_message,
            }),
        }
    }
}

impl Signal for Logs {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/v1/logs";
    const NAME: &'static str = "logs";
    const SCHEMA: &'static utf8::Schema = &utf8::LOGS;
    const RECORDS: &'static records::Path = &records::LOG_RECORDS;
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;

    async fn export(
        ingest: &Ingest,
        request: Self::Request,
        raw: Option<Bytes>,
    ) -> Result<ExportOutcome, IngestError> {
        ingest.export_logs(request, raw).await
    }

    async fn export_protobuf(
        ingest: &Ingest,
        raw: &Bytes,
    ) -> Result<Option<ExportOutcome>, IngestError> {
        ingest.export_logs_protobuf(raw).await
    }

    fn from_json(body: &[u8]) -> Result<Self::Request, json::JsonError> {
        json::logs(body)
    }

    fn response(outcome: ExportOutcome) -> Self::Response {
        let rejected = outcome.rejected > 0 || !outcome.error_message.is_empty();
        ExportLogsServiceResponse {
            partial_success: rejected.then_some(ExportLogsPartialSuccess {
                rejected_log_records: outcome.rejected as i64,
                error_message: outcome.error_message,
            }),
        }
    }
}

impl Signal for Metrics {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/v1/metrics";
    const NAME: &'static str = "metrics";
    const SCHEMA: &'static utf8::Schema = &utf8::METRICS;
    const RECORDS: &'static records::Path = &records::DATA_POINTS;
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;

    async fn export(
        ingest: &Ingest,
        request: Self::Request,
        raw: Option<Bytes>,
    ) -> Result<ExportOutcome, IngestError> {
        ingest.export_metrics(request, raw).await
    }

    async fn export_protobuf(
        ingest: &Ingest,
        raw: &Bytes,
    ) -> Result<Option<ExportOutcome>, IngestError> {
        ingest.export_metrics_protobuf(raw).await
    }

    fn from_json(body: &[u8]) -> Result<Self::Request, json::JsonError> {
        json::metrics(body)
    }

    fn response(outcome: ExportOutcome) -> Self::Response {
        let rejected = outcome.rejected > 0 || !outcome.error_message.is_empty();
        ExportMetricsServiceResponse {
            partial_success: rejected.then_some(ExportMetricsPartialSuccess {
                rejected_data_points: outcome.rejected as i64,
                error_message: outcome.error_message,
            }),
        }
    }
}

/// Adds the note about repaired strings to an export's outcome (a warning in `partial_success`).
pub fn note_repairs(mut outcome: ExportOutcome, repaired: usize) -> ExportOutcome {
    if outcome.rejected > 0 {
        tracing::debug!(rejected = outcome.rejected, message = %outcome.error_message, "records rejected");
    }
    if repaired > 0 {
        let note = format!(
            "{repaired} string field(s) had invalid UTF-8; stored with U+FFFD replacement characters"
        );
        outcome.error_message = if outcome.error_message.is_empty() {
            note
        } else {
            format!("{}; {note}", outcome.error_message)
        };
    }
    outcome
}
