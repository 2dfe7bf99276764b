//! Deliberately hostile OTLP: absurd nesting, a million attributes, huge strings, a gRPC gzip
//! bomb, timestamps at the edges. Each gets a clear answer in its protocol's form, memory stays
//! bounded, and the server keeps serving.

mod common;

use common::Server;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
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
    post_to(server, "/v1/traces", body).await
}

async fn post_to(server: &Server, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let res = reqwest::Client::new()
        .post(server.otlp_url(path))
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

/// A resource carrying `bytes` of attribute text besides the service name.
fn heavy_resource(service: &str, bytes: usize) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", text(service.into())),
            kv("k8s.annotations", text("a".repeat(bytes))),
        ],
        dropped_attributes_count: 0,
        entity_refs: vec![],
    }
}

/// Every span, log record and data point stores its resource and scope, so a request well within
/// the size limit can ask for far more memory than it takes on the wire: 1 MiB of resource
/// attributes over 250 spans is 250 MiB of columns. Such requests are refused whole, in each
/// protocol's form, before anything is converted; a heavy resource over a few spans is kept.
#[tokio::test(flavor = "multi_thread")]
async fn records_repeating_a_huge_resource_are_refused_before_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let now = now_nanos() - 1_000_000_000;
    let baseline = server.peak_rss();
    let mib = 1024 * 1024;

    // Traces over HTTP: 413 with a google.rpc.Status saying what to change.
    let mut traces = request((0..250).map(|i| span(i as u8 + 1, now)).collect());
    traces.resource_spans[0].resource = Some(heavy_resource("heavy", mib));
    let wire = traces.encoded_len();
    assert!(wire < 2 * mib, "the request itself is small: {wire}");
    let (code, body) = post_to(&server, "/v1/traces", traces.encode_to_vec()).await;
    assert_eq!(code, 413);
    let status = common::proto_status(&body);
    assert_eq!(status.code, 8);
    assert!(
        status.message.contains("--max-repeated-bytes")
            && status.message.contains("send fewer records per request"),
        "{}",
        status.message
    );

    // Logs over gRPC: RESOURCE_EXHAUSTED.
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(heavy_resource("heavy", mib)),
            scope_logs: vec![ScopeLogs {
                log_records: (0..200)
                    .map(|i| LogRecord {
                        time_unix_nano: now + i,
                        observed_time_unix_nano: now + i,
                        body: text(format!("line {i}")),
                        ..LogRecord::default()
                    })
                    .collect(),
                ..ScopeLogs::default()
            }],
            schema_url: String::new(),
        }],
    };
    let mut client = LogsServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let err = client.export(logs).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("repeat"), "{err:?}");

    // Metrics over HTTP: a 1 MiB description is stored with each of 200 points.
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(heavy_resource("heavy", 0)),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".into(),
                    description: "d".repeat(mib),
                    data: Some(Data::Gauge(Gauge {
                        data_points: (0..200)
                            .map(|i| NumberDataPoint {
                                time_unix_nano: now + i,
                                value: Some(number_data_point::Value::AsInt(i as i64)),
                                ..NumberDataPoint::default()
                            })
                            .collect(),
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            schema_url: String::new(),
        }],
    };
    let (code, _) = post_to(&server, "/v1/metrics", metrics.encode_to_vec()).await;
    assert_eq!(code, 413);

    // A heavy resource over a few spans (64 KiB × 100 = 6.4 MiB) is an ordinary request: kept,
    // with its resource on every span.
    let mut kept = request((0..100).map(|i| span(i as u8 + 1, now)).collect());
    kept.resource_spans[0].resource = Some(heavy_resource("kept", 64 * 1024));
    let (code, _) = post_to(&server, "/v1/traces", kept.encode_to_vec()).await;
    assert_eq!(code, 200);
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 100);
    assert_eq!(
        server
            .count(
                "SELECT count(*) FROM spans WHERE service_name = 'kept' \
                 AND length(resource_attributes['k8s.annotations']) = 65536"
            )
            .await,
        100
    );
    assert_eq!(server.count("SELECT count(*) FROM logs").await, 0);
    assert_eq!(server.count("SELECT count(*) FROM metrics").await, 0);

    for (signal, protocol) in [("traces", "http"), ("logs", "grpc"), ("metrics", "http")] {
        let series = format!(
            r#"lakescope_requests_refused_total{{signal="{signal}",protocol="{protocol}",reason="repeats_too_much"}}"#
        );
        assert_eq!(server.metric(&series).await, 1.0, "{series}");
    }
    let grown = server.peak_rss().saturating_sub(baseline);
    eprintln!("peak RSS grew by {} MiB", grown / mib as u64);
    assert!(
        grown < 150 * mib as u64,
        "peak RSS grew by {} MiB",
        grown / mib as u64
    );
    server.stop();
}

/// `field` (a length-delimited protobuf field, number < 16) holding `inner`.
fn field(number: u8, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut len = inner.len();
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(inner);
    out
}

/// A record costs memory once decoded however little of the body it takes: an empty log record
/// is 2 bytes of protobuf, so 16 MB of them is 8 million records, which took 1.5 GB to decode
/// before any limit looked at them. Requests over `--max-request-records` are refused from a
/// count made on their bytes, before decoding, in each protocol and encoding; a request at the
/// limit is kept whole.
#[tokio::test(flavor = "multi_thread")]
async fn requests_of_millions_of_tiny_records_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let baseline = server.peak_rss();
    let mib = 1024 * 1024;

    // Protobuf over HTTP: 8,000,000 empty log records.
    let records = b"\x12\x00".repeat(8_000_000);
    let body = field(1, &field(2, &records));
    let (code, body) = post_to(&server, "/v1/logs", body).await;
    assert_eq!(code, 413);
    let status = common::proto_status(&body);
    assert_eq!(status.code, 8);
    assert!(
        status.message.contains("8000000 records")
            && status
                .message
                .contains("limit of 262144 (--max-request-records)"),
        "{}",
        status.message
    );

    // OTLP/JSON over HTTP: 5,000,000 empty spans, the answer in JSON.
    let json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}{{}}]}}]}}]}}"#,
        "{},".repeat(4_999_999)
    );
    let res = reqwest::Client::new()
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    let status: serde_json::Value = res.json().await.unwrap();
    assert_eq!(status["code"], 8);
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("5000000 records")),
        "{status}"
    );

    // gRPC: 300,000 empty data points, RESOURCE_EXHAUSTED.
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "tiny".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint::default(); 300_000],
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    };
    let mut client = opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient::connect(
        format!("http://{}", server.grpc),
    )
    .await
    .unwrap();
    let err = client.export(metrics).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("300000 records"), "{err:?}");

    for (signal, protocol) in [("logs", "http"), ("traces", "http"), ("metrics", "grpc")] {
        let series = format!(
            r#"lakescope_requests_refused_total{{signal="{signal}",protocol="{protocol}",reason="too_many_records"}}"#
        );
        assert_eq!(server.metric(&series).await, 1.0, "{series}");
    }
    let grown = server.peak_rss().saturating_sub(baseline);
    eprintln!("peak RSS grew by {} MiB", grown / mib);
    assert!(grown < 150 * mib, "peak RSS grew by {} MiB", grown / mib);

    // Still serving.
    let now = now_nanos() - 1_000_000_000;
    let (code, _) = post(&server, request(vec![span(1, now)]).encode_to_vec()).await;
    assert_eq!(code, 200);
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 1);
    assert_eq!(server.count("SELECT count(*) FROM logs").await, 0);
    assert_eq!(server.count("SELECT count(*) FROM metrics").await, 0);
    server.stop();

    // The limit is a flag: at it, a request is kept whole; one record over, refused.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-request-records", "1000"]);
    let spans = |n: u32| {
        request(
            (0..n)
                .map(|i| {
                    let mut s = span(1, now);
                    s.span_id = (u64::from(i) + 1).to_be_bytes().to_vec();
                    s
                })
                .collect(),
        )
        .encode_to_vec()
    };
    let (code, body) = post(&server, spans(1001)).await;
    assert_eq!(code, 413, "{}", String::from_utf8_lossy(&body));
    let (code, _) = post(&server, spans(1000)).await;
    assert_eq!(code, 200);
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 1000);
    server.stop();
}

/// Requests received at once were each checked against what was already buffered, so together
/// they could take the buffers far past `--max-buffer-bytes`: 16 requests of 262,000 empty log
/// records at once left 971 MB buffered against the 256 MiB limit. Each request now reserves
/// its share of the limit before it is decoded; those that do not fit are refused as retryable
/// (HTTP 503 + Retry-After), and every accepted one is stored whole.
#[tokio::test(flavor = "multi_thread")]
async fn requests_received_at_once_share_the_buffer_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let baseline = server.peak_rss();
    let mib = 1024 * 1024;
    let records = 262_000;
    let body = field(1, &field(2, &b"\x12\x00".repeat(records)));
    let client = reqwest::Client::new();
    let sends = (0..24).map(|_| {
        let request = client
            .post(server.otlp_url("/v1/logs"))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send();
        tokio::spawn(async move {
            let res = request.await.expect("the server answers");
            let retry = res.headers().get("retry-after").cloned();
            (res.status().as_u16(), retry)
        })
    });
    let mut accepted = 0;
    let mut refused = 0;
    for send in sends.collect::<Vec<_>>() {
        match send.await.unwrap() {
            (200, _) => accepted += 1,
            (503, Some(retry)) if retry == "1" => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    eprintln!("{accepted} accepted, {refused} refused");
    assert!(
        accepted >= 1 && refused >= 1,
        "{accepted} accepted, {refused} refused"
    );
    let grown = server.peak_rss().saturating_sub(baseline);
    eprintln!("peak RSS grew by {} MiB", grown / mib);
    assert!(grown < 600 * mib, "peak RSS grew by {} MiB", grown / mib);
    assert_eq!(
        server.count("SELECT count(*) FROM logs").await,
        accepted * records as i64
    );
    let series =
        r#"lakescope_requests_refused_total{signal="logs",protocol="http",reason="overloaded"}"#;
    assert_eq!(server.metric(series).await, refused as f64);
    server.stop();

    // A request with no other in flight is taken even if it alone reserves more than the limit
    // (140,000 spans reckon 72 MB against 64 MiB), so it is not refused for ever.
    let dir = tempfile::tempdir().unwrap();
    let limits = [
        "--max-buffer-bytes",
        "67108864",
        "--flush-bytes",
        "33554432",
    ];
    let server = Server::start(dir.path(), &limits);
    let now = now_nanos() - 1_000_000_000;
    let spans = (0..140_000u64)
        .map(|i| {
            let mut s = span(1, now);
            s.span_id = (i + 1).to_be_bytes().to_vec();
            s
        })
        .collect();
    let (code, body) = post(&server, request(spans).encode_to_vec()).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 140_000);
    server.stop();
}
