//! Deliberately hostile OTLP: absurd nesting, a million attributes, huge strings, a gRPC gzip
//! bomb, timestamps at the edges. Each gets a clear answer in its protocol's form, memory stays
//! bounded, and the server keeps serving.

mod common;

use common::Server;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn span(id: u8, start: u64) -> Span {
    Span {
        trace_id: vec![id; 16],
        span_id: vec![id; 8],
        name: "hostile".into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        ..Span::default()
    }
}

fn text(value: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(value)),
    })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value,
    }
}

async fn post(server: &Server, body: Vec<u8>) -> (u16, Vec<u8>) {
    let res = reqwest::Client::new()
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("the server answers");
    let code = res.status().as_u16();
    (code, res.bytes().await.unwrap().to_vec())
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    common::export_request("hostile", spans)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_clear_answers_and_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let now = now_nanos() - 1_000_000_000;
    let baseline = server.peak_rss();

    // Attribute values nested 500 deep (the decoder allows 100): refused whole, HTTP 400.
    let mut value = text("leaf".into());
    for _ in 0..500 {
        value = Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![kv("k", value)],
            })),
        });
    }
    let mut deep = span(1, now);
    deep.attributes = vec![kv("deep", value)];
    let (code, _) = post(&server, request(vec![deep]).encode_to_vec()).await;
    assert_eq!(code, 400);

    // A million attributes on one span (12 MB, under the request limit): that span is rejected
    // in partial_success, its neighbour is stored.
    let mut crowded = span(2, now);
    crowded.attributes = (0..1_000_000)
        .map(|i| kv(&format!("a{i}"), text("v".into())))
        .collect();
    let (code, body) = post(
        &server,
        request(vec![crowded, span(3, now)]).encode_to_vec(),
    )
    .await;
    assert_eq!(code, 200);
    let response = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    let partial = response.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("attributes"),
        "{}",
        partial.error_message
    );

    // A 100 MB string: over the 16 MiB request limit. The server answers 413 as soon as the
    // limit is passed and closes the connection without reading the rest; a client still
    // writing the body may see the connection close before it reads the 413.
    let mut huge = span(4, now);
    huge.attributes = vec![kv("blob", text("x".repeat(100 * 1024 * 1024)))];
    let res = reqwest::Client::new()
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request(vec![huge]).encode_to_vec())
        .send()
        .await;
    match res {
        Ok(res) => assert_eq!(res.status().as_u16(), 413),
        Err(e) => assert!(e.is_request(), "{e:?}"),
    }

    // A gRPC gzip bomb: 256 MiB of one letter compresses to well under the limit; decompressed it
    // is far over it, and is refused without the server holding it.
    let mut bomb = span(5, now);
    bomb.attributes = vec![kv("bomb", text("y".repeat(256 * 1024 * 1024)))];
    let mut client = TraceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_encoding_message_size(usize::MAX);
    let err = client
        .export(request(vec![bomb]))
        .await
        .expect_err("the bomb is refused");
    assert!(
        matches!(
            err.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{err:?}"
    );

    // Timestamps at the edges: 0 is rejected; the far future (2200) is kept and can be found.
    let far = 7_258_118_400_000_000_000; // 2200-01-01
    let (code, body) = post(
        &server,
        request(vec![span(6, 0), span(7, far)]).encode_to_vec(),
    )
    .await;
    assert_eq!(code, 200);
    let response = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    assert_eq!(response.partial_success.unwrap().rejected_spans, 1);
    let trace = server
        .get("/api/v1/traces/07070707070707070707070707070707")
        .await;
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(1));

    // Still serving, and memory did not follow the attacks.
    let (code, _) = post(&server, request(vec![span(8, now)]).encode_to_vec()).await;
    assert_eq!(code, 200);
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 3);
    let grown = server.peak_rss().saturating_sub(baseline);
    eprintln!("peak RSS grew by {} MiB", grown / (1024 * 1024));
    assert!(
        grown < 300 * 1024 * 1024,
        "peak RSS grew by {} MiB",
        grown / (1024 * 1024)
    );
    server.stop();
}
