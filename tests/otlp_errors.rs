//! Bad OTLP input gets the specification's answer in each protocol's own form, and the server
//! keeps serving and keeps what it acknowledged.

mod common;

use std::io::Write;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes};
use common::{Server, proto_status};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn span(i: u8) -> Span {
    let start = now_nanos() - 5_000_000_000;
    Span {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        name: "op".into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        ..Span::default()
    }
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    common::export_request(service, spans)
}

async fn post(
    server: &Server,
    content_type: &str,
    encoding: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, String, Bytes) {
    let mut req = reqwest::Client::new()
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        req = req.header("content-encoding", encoding);
    }
    let res = req.send().await.expect("POST /v1/traces");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, res.bytes().await.unwrap())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_http_requests_get_status_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-request-bytes", "4096"]);
    let good = request("api", vec![span(1)]).encode_to_vec();

    // Unknown content type: 415 with a protobuf Status.
    let (code, ct, body) = post(&server, "text/plain", None, "hello").await;
    assert_eq!((code, ct.as_str()), (415, "application/x-protobuf"));
    assert!(
        proto_status(&body)
            .message
            .contains("unsupported content type")
    );

    // Garbage and truncated protobuf: 400.
    let (code, _, body) = post(
        &server,
        "application/x-protobuf",
        None,
        vec![0xff, 0xff, 0xff, 0x0f],
    )
    .await;
    assert_eq!(code, 400);
    let status = proto_status(&body);
    assert_eq!(status.code, 3);
    assert!(status.message.contains("invalid protobuf"), "{status:?}");
    let (code, _, _) = post(
        &server,
        "application/x-protobuf",
        None,
        good[..good.len() / 2].to_vec(),
    )
    .await;
    assert_eq!(code, 400);

    // Malformed and wrongly typed JSON: 400 with a JSON Status.
    for bad in [
        r#"{"resourceSpans": ["#,
        r#"{"resourceSpans": "spans"}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
    ] {
        let (code, ct, body) = post(&server, "application/json", None, bad).await;
        assert_eq!((code, ct.as_str()), (400, "application/json"), "{bad}");
        let status: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["code"], 3);
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("invalid OTLP/JSON"),
            "{status}"
        );
    }

    // Too large, before and after decompression: 413.
    let (code, _, body) = post(&server, "application/x-protobuf", None, vec![0u8; 10_000]).await;
    assert_eq!(code, 413);
    assert!(proto_status(&body).message.contains("4096"));
    let bomb = gzip(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 4096);
    let (code, _, _) = post(&server, "application/x-protobuf", Some("gzip"), bomb).await;
    assert_eq!(code, 413);

    // Corrupt gzip: 400; unknown encoding: 415.
    let (code, _, _) = post(
        &server,
        "application/x-protobuf",
        Some("gzip"),
        good.clone(),
    )
    .await;
    assert_eq!(code, 400);
    let (code, _, _) = post(&server, "application/x-protobuf", Some("br"), good.clone()).await;
    assert_eq!(code, 415);

    // Wrong method.
    let res = reqwest::get(server.otlp_url("/v1/traces")).await.unwrap();
    assert_eq!(res.status().as_u16(), 405);

    // Still serving: a good request, gzip'd, is acknowledged with an empty response and stored.
    let (code, ct, body) = post(&server, "application/x-protobuf", Some("gzip"), gzip(&good)).await;
    assert_eq!((code, ct.as_str()), (200, "application/x-protobuf"));
    assert_eq!(
        ExportTraceServiceResponse::decode(body).unwrap(),
        ExportTraceServiceResponse::default()
    );
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_spans_are_reported_in_partial_success_and_valid_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let start = now_nanos() - 1_000_000_000;
    // OTLP/JSON as the spec writes it: hex ids, camelCase, enums as numbers, 64-bit integers as
    // strings or numbers.
    let json = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"json-svc"}}}}]}},
        "scopeSpans":[{{"scope":{{"name":"s"}},"spans":[
          {{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok-1","kind":2,
            "startTimeUnixNano":"{start}","endTimeUnixNano":"{end}",
            "attributes":[{{"key":"http.response.status_code","value":{{"intValue":"404"}}}}]}},
          {{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174",
            "name":"ok-2","kind":3,"startTimeUnixNano":{start},"endTimeUnixNano":{end},"status":{{"code":2,"message":"x"}}}},
          {{"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b176","name":"bad","kind":2,
            "startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"}}
        ]}}]}}]}}"#,
        end = start + 2_000_000
    );
    let (code, ct, body) = post(&server, "application/json", None, json).await;
    assert_eq!((code, ct.as_str()), (200, "application/json"));
    let response: Value = serde_json::from_slice(&body).unwrap();
    let partial = &response["partialSuccess"];
    assert_eq!(
        partial["rejectedSpans"].to_string().trim_matches('"'),
        "1",
        "{response}"
    );
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("trace_id"),
        "{response}"
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM spans WHERE service_name = 'json-svc'")
            .await,
        2
    );
    assert_eq!(
        server
            .count(
                "SELECT count(*) FROM spans WHERE http_status_code = 404 AND span_kind = 'SERVER'"
            )
            .await,
        1
    );

    // The same over gRPC.
    let mut client = TraceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let mut bad = span(9);
    bad.end_time_unix_nano = bad.start_time_unix_nano - 1;
    let response = client
        .export(request("grpc-svc", vec![span(7), span(8), bad]))
        .await
        .expect("accepted")
        .into_inner();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("end_time_unix_nano"),
        "{partial:?}"
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM spans WHERE service_name = 'grpc-svc'")
            .await,
        2
    );
}

/// Sends raw bytes as a gRPC request body.
#[derive(Clone)]
struct RawCodec;
struct RawEncoder;
struct ResponseDecoder(PhantomData<ExportTraceServiceResponse>);

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder(PhantomData)
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

async fn grpc_raw(
    server: &Server,
    body: Vec<u8>,
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let channel = tonic::transport::Endpoint::new(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    grpc.unary(tonic::Request::new(Bytes::from(body)), path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_grpc_requests_get_grpc_status_codes_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-request-bytes", "4096"]);

    let err = grpc_raw(&server, vec![0xff, 0xff, 0xff, 0x0f])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("invalid protobuf"));

    let good = request("grpc", vec![span(3)]).encode_to_vec();
    let err = grpc_raw(&server, good[..good.len() - 3].to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // Over the size limit: refused before decoding, by the gRPC layer.
    let err = grpc_raw(&server, vec![0u8; 10_000]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("4096"));

    // A method that does not exist.
    let channel = tonic::transport::Endpoint::new(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let err = grpc
        .unary(
            tonic::Request::new(Bytes::new()),
            http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Nope",
            ),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    // Still serving.
    let response = grpc_raw(&server, good)
        .await
        .expect("a good request is accepted");
    assert_eq!(response, ExportTraceServiceResponse::default());
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 1);
}
