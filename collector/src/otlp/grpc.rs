//! OTLP/gRPC: `TraceService/Export` and `LogsService/Export`.
//!
//! A hand-written service instead of the generated one, so that the request arrives as raw bytes:
//! a decode failure becomes INVALID_ARGUMENT (the generated codec says INTERNAL), and a fully
//! valid request is logged without re-encoding.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use prost::Message;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::decode::DecodeError;
use super::{ReceiveError, Signal};
use crate::ingest::{Ingest, IngestError};

/// Decodes nothing (the request stays bytes); encodes a prost response.
struct RawCodec<T>(PhantomData<T>);

struct RawDecoder;
struct ProstEncoder<T>(PhantomData<T>);

impl<T: Message + Send + 'static> Codec for RawCodec<T> {
    type Encode = T;
    type Decode = Bytes;
    type Encoder = ProstEncoder<T>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl<T: Message> Encoder for ProstEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

/// The one place gRPC status codes are chosen.
pub fn status(error: &ReceiveError) -> Status {
    let code = match error {
        ReceiveError::Decode(DecodeError::TooLarge { .. } | DecodeError::TooManyRecords { .. })
        | ReceiveError::Ingest(IngestError::RepeatsTooMuch { .. }) => Code::ResourceExhausted,
        ReceiveError::Decode(_) => Code::InvalidArgument,
        ReceiveError::Ingest(
            IngestError::Unavailable(_)
            | IngestError::ShuttingDown
            | IngestError::Overloaded { .. }
            | IngestError::DiskLow { .. },
        ) => {
            // Retryable: the OTLP exporters honour the RetryInfo delay when one is given.
            let details =
                ErrorDetails::with_retry_info(Some(Duration::from_secs(super::RETRY_AFTER_SECS)));
            return Status::with_error_details(Code::Unavailable, error.to_string(), details);
        }
        ReceiveError::Ingest(IngestError::Internal(_)) => Code::Internal,
    };
    Status::new(code, error.to_string())
}

/// The OTLP gRPC service of one signal.
pub struct OtlpService<S> {
    ingest: Ingest,
    signal: PhantomData<fn() -> S>,
}

impl<S> Clone for OtlpService<S> {
    fn clone(&self) -> Self {
        Self {
            ingest: self.ingest.clone(),
            signal: PhantomData,
        }
    }
}

impl<S: Signal> OtlpService<S> {
    pub fn new(ingest: Ingest) -> Self {
        Self {
            ingest,
            signal: PhantomData,
        }
    }
}

impl<S: Signal> NamedService for OtlpService<S> {
    const NAME: &'static str = S::SERVICE;
}

struct Export<S>(Ingest, PhantomData<fn() -> S>);

impl<S: Signal> UnaryService<Bytes> for Export<S> {
    type Response = S::Response;
    type Future = BoxFuture<tonic::Response<Self::Response>, Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            let raw = request.into_inner();
            let result = async {
                let _reservation =
                    super::admit::<S>(&ingest, &raw, super::decode::Encoding::Protobuf)?;
                if let Some(outcome) = S::export_protobuf(&ingest, &raw).await? {
                    return Ok(outcome);
                }
                let decoded = super::decode::decode_protobuf::<S::Request>(raw, S::SCHEMA)?;
                let outcome = S::export(&ingest, decoded.message, decoded.protobuf).await?;
                Ok::<_, ReceiveError>(super::note_repairs(outcome, decoded.repaired))
            }
            .await;
            super::count::<S>("grpc", &result);
            match result {
                Ok(outcome) => Ok(tonic::Response::new(S::response(outcome))),
                Err(error) => {
                    tracing::debug!(%error, "OTLP/gRPC export refused");
                    Err(status(&error))
                }
            }
        })
    }
}

impl<S: Signal, B> Service<http::Request<B>> for OtlpService<S>
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let ingest = self.ingest.clone();
        let export_path = format!("/{}/Export", Self::NAME);
        Box::pin(async move {
            if req.uri().path() != export_path {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            if let Err(e) = ingest.check_admission() {
                // Refused before the body is read.
                let error = ReceiveError::Ingest(e);
                let refused = status(&error);
                super::count::<S>("grpc", &Err(error));
                return Ok(refused.into_http());
            }
            let limit = ingest.limits().max_request_bytes;
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            accept.enable(CompressionEncoding::Zstd);
            let mut grpc = tonic::server::Grpc::new(RawCodec::<S::Response>(PhantomData))
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(limit), None);
            Ok(grpc.unary(Export::<S>(ingest, PhantomData), req).await)
        })
    }
}
