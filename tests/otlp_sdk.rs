//! The Rust OpenTelemetry SDK (`opentelemetry-otlp`) sending to the real binary over gRPC and
//! HTTP (protobuf and JSON, plain and gzip); the answers checked through the JSON API.

mod common;

use std::time::{Duration, SystemTime};

use common::{Server, assert_within_1pct, nearest_rank};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState,
    Tracer, TracerProvider as _,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_otlp::{
    Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

#[derive(Clone, Copy, Debug)]
enum Transport {
    Grpc,
    GrpcGzip,
    HttpProtobuf,
    HttpJson,
    HttpProtobufGzip,
}

fn exporter(server: &Server, transport: Transport) -> SpanExporter {
    let grpc = || {
        SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{}", server.grpc))
    };
    let http = |protocol| {
        SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(server.otlp_url("/v1/traces"))
    };
    match transport {
        Transport::Grpc => grpc().build(),
        Transport::GrpcGzip => grpc()
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .build(),
        Transport::HttpProtobuf => http(Protocol::HttpBinary).build(),
        Transport::HttpJson => http(Protocol::HttpJson).build(),
        Transport::HttpProtobufGzip => http(Protocol::HttpBinary)
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .build(),
    }
    .expect("build exporter")
}

fn provider(server: &Server, transport: Transport, service: &str) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .with_batch_exporter(exporter(server, transport))
        .build()
}

/// The workload of one service: SERVER spans with known durations, every tenth failing, plus
/// CLIENT spans that must not count as requests. Returns the SERVER durations in ms.
fn send_workload(provider: &SdkTracerProvider, base: SystemTime) -> Vec<f64> {
    let tracer = provider.tracer("e2e");
    let mut durations = Vec::new();
    for i in 0..200u64 {
        // Distinct, spread durations: 1.5 ms .. ~600 ms.
        let ms = 1.5 + ((i * 37) % 200) as f64 * 3.0;
        durations.push(ms);
        let start = base + Duration::from_millis(i * 50);
        let mut span = tracer
            .span_builder("POST /checkout")
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .start(&tracer);
        if i % 10 == 0 {
            span.set_status(Status::error("payment declined"));
        }
        span.end_with_timestamp(start + Duration::from_secs_f64(ms / 1e3));

        let mut client = tracer
            .span_builder("GET inventory")
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .start(&tracer);
        client.set_status(Status::error("not counted"));
        client.end_with_timestamp(start + Duration::from_millis(1));
    }
    durations
}

async fn counts_and_percentiles_are_exact(transport: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let base = SystemTime::now() - Duration::from_secs(120);
    let (durations, provider) = {
        let server_ref = &server;
        let runtime = tokio::runtime::Handle::current();
        // The HTTP exporter's blocking client must live outside the async runtime's workers; the
        // gRPC exporter needs the runtime entered.
        std::thread::scope(|s| {
            s.spawn(|| {
                let _runtime = runtime.enter();
                let provider = provider(server_ref, transport, "checkout");
                let durations = send_workload(&provider, base);
                provider.force_flush().expect("export acknowledged");
                (durations, provider)
            })
            .join()
            .unwrap()
        })
    };
    // Acknowledged means queryable: no waiting, no retries.
    let s = server.service("checkout", "start=now-10m").await;
    assert_eq!(s["requests"], 200, "{transport:?}: {s}");
    assert_eq!(s["errors"], 20, "{transport:?}: {s}");
    assert_eq!(s["measured_by"], "entry");
    assert!((s["error_ratio"].as_f64().unwrap() - 0.1).abs() < 1e-12);
    // 200 requests over the 10 minute window.
    assert!(
        (s["rate_per_s"].as_f64().unwrap() - 200.0 / 600.0).abs() < 1e-3,
        "{s}"
    );
    for (q, key) in [(0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")] {
        assert_within_1pct(&s[key], nearest_rank(&durations, q), key);
    }
    std::thread::spawn(move || provider.shutdown().expect("shutdown"))
        .join()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_over_grpc_gives_exact_counts_and_percentiles() {
    counts_and_percentiles_are_exact(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_over_grpc_with_gzip_gives_exact_counts_and_percentiles() {
    counts_and_percentiles_are_exact(Transport::GrpcGzip).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_over_http_protobuf_gives_exact_counts_and_percentiles() {
    counts_and_percentiles_are_exact(Transport::HttpProtobuf).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_over_http_json_gives_exact_counts_and_percentiles() {
    counts_and_percentiles_are_exact(Transport::HttpJson).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_over_http_protobuf_with_gzip_gives_exact_counts_and_percentiles() {
    counts_and_percentiles_are_exact(Transport::HttpProtobufGzip).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_without_entry_spans_is_measured_by_its_root_spans() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let provider = provider(&server, Transport::Grpc, "nightly-report");
    let tracer = provider.tracer("e2e");
    let base = SystemTime::now() - Duration::from_secs(30);
    for i in 0..10u64 {
        let start = base + Duration::from_millis(i);
        let root = tracer
            .span_builder("build report")
            .with_start_time(start)
            .start(&tracer);
        let cx = Context::current_with_span(root);
        let mut child = tracer
            .span_builder("query")
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .start_with_context(&tracer, &cx);
        child.end_with_timestamp(start + Duration::from_millis(5));
        let root = cx.span();
        if i < 3 {
            root.set_status(Status::error("no data"));
        }
        root.end_with_timestamp(start + Duration::from_millis(100 + i * 10));
    }
    provider.force_flush().unwrap();
    let s = server.service("nightly-report", "start=now-5m").await;
    assert_eq!(s["measured_by"], "root", "{s}");
    assert_eq!(s["requests"], 10);
    assert_eq!(s["errors"], 3);
    let durations: Vec<f64> = (0..10).map(|i| 100.0 + i as f64 * 10.0).collect();
    assert_within_1pct(&s["p50_ms"], nearest_rank(&durations, 0.5), "p50");
    assert_within_1pct(&s["p99_ms"], nearest_rank(&durations, 0.99), "p99");
    provider.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trace_fetched_by_id_has_every_field_the_sdk_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name("cart")
                .with_attribute(KeyValue::new("service.version", "3.1.4"))
                .with_attribute(KeyValue::new("host.cpus", 8i64))
                .build(),
        )
        .with_batch_exporter(exporter(&server, Transport::Grpc))
        .build();
    let tracer = provider.tracer_with_scope(
        opentelemetry::InstrumentationScope::builder("cart-instrumentation")
            .with_version("2.0.1")
            .with_attributes([KeyValue::new("scope.kind", "manual")])
            .build(),
    );
    let start = SystemTime::now() - Duration::from_secs(10);
    let linked = SpanContext::new(
        opentelemetry::trace::TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        opentelemetry::trace::SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("vendor", "x")]).unwrap(),
    );
    let root = tracer
        .span_builder("POST /cart")
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .with_attributes([
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.route", "/cart"),
            KeyValue::new("http.response.status_code", 500i64),
            KeyValue::new("retry.ratio", 0.25),
            KeyValue::new("cache.hit", false),
            KeyValue::new(
                "tags",
                Value::Array(Array::String(vec![
                    StringValue::from("a"),
                    StringValue::from("b"),
                ])),
            ),
        ])
        .with_links(vec![Link::new(
            linked,
            vec![KeyValue::new("link.reason", "retry")],
            0,
        )])
        .start(&tracer);
    let trace_id = root.span_context().trace_id().to_string();
    let root_id = root.span_context().span_id().to_string();
    let cx = Context::current_with_span(root);
    let mut child = tracer
        .span_builder("HSET cart")
        .with_kind(SpanKind::Client)
        .with_start_time(start + Duration::from_millis(2))
        .with_attributes([
            KeyValue::new("db.system.name", "redis"),
            KeyValue::new("server.address", "cache"),
        ])
        .start_with_context(&tracer, &cx);
    child.add_event_with_timestamp(
        "exception",
        start + Duration::from_millis(5),
        vec![
            KeyValue::new("exception.type", "RedisTimeout"),
            KeyValue::new("exception.message", "timed out after 3ms"),
        ],
    );
    child.set_status(Status::error("timeout"));
    child.end_with_timestamp(start + Duration::from_millis(6));
    let root = cx.span();
    root.set_status(Status::error("cache unavailable"));
    root.end_with_timestamp(start + Duration::from_millis(9));
    provider.force_flush().unwrap();

    let body = server.get(&format!("/api/v1/traces/{trace_id}")).await;
    assert_eq!(body["span_count"], 2, "{body}");
    let spans = body["spans"].as_array().unwrap();
    let root = spans
        .iter()
        .find(|s| s["span_id"] == root_id.as_str())
        .expect("root span");
    let child = spans
        .iter()
        .find(|s| s["span_id"] != root_id.as_str())
        .expect("child span");

    assert_eq!(root["trace_id"], trace_id.as_str());
    assert!(root["parent_span_id"].is_null());
    assert_eq!(root["name"], "POST /cart");
    assert_eq!(root["kind"], "SERVER");
    assert_eq!(root["service_name"], "cart");
    assert_eq!(root["duration_ns"], 9_000_000);
    assert_eq!(root["status"]["code"], "ERROR");
    assert_eq!(root["status"]["message"], "cache unavailable");
    let expected_start = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    assert_eq!(root["start_time_unix_nano"], expected_start.as_str());
    let attrs = &root["attributes"];
    assert_eq!(attrs["http.request.method"], "POST");
    assert_eq!(attrs["http.response.status_code"], 500);
    assert_eq!(attrs["retry.ratio"], 0.25);
    assert_eq!(attrs["cache.hit"], false);
    assert_eq!(attrs["tags"], serde_json::json!(["a", "b"]));
    let link = &root["links"][0];
    assert_eq!(link["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(link["span_id"], "b7ad6b7169203331");
    assert_eq!(link["trace_state"], "vendor=x");
    assert_eq!(link["attributes"]["link.reason"], "retry");
    assert_eq!(root["resource"]["attributes"]["service.version"], "3.1.4");
    assert_eq!(root["resource"]["attributes"]["host.cpus"], 8);
    assert_eq!(root["scope"]["name"], "cart-instrumentation");
    assert_eq!(root["scope"]["version"], "2.0.1");
    assert_eq!(root["scope"]["attributes"]["scope.kind"], "manual");

    assert_eq!(child["parent_span_id"], root_id.as_str());
    assert_eq!(child["kind"], "CLIENT");
    assert_eq!(child["attributes"]["db.system.name"], "redis");
    assert_eq!(child["events"][0]["name"], "exception");
    assert_eq!(
        child["events"][0]["attributes"]["exception.type"],
        "RedisTimeout"
    );
    assert_eq!(child["duration_ns"], 4_000_000);

    // The promoted columns are there for SQL.
    let (status, rows) = server
        .sql(&format!(
            "SELECT http_method, http_route, http_status_code, db_system, server_address, exception_type \
             FROM spans WHERE trace_id = X'{trace_id}' ORDER BY start_time"
        ))
        .await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows["rows"][0]["http_status_code"], 500);
    assert_eq!(rows["rows"][0]["http_route"], "/cart");
    assert_eq!(rows["rows"][1]["db_system"], "redis");
    assert_eq!(rows["rows"][1]["exception_type"], "RedisTimeout");

    // And the trace shows up in search, summarised from its root.
    let found = server
        .get("/api/v1/traces?service=cart&status=error&start=now-1m")
        .await;
    let t = &found["traces"][0];
    assert_eq!(t["trace_id"], trace_id.as_str());
    assert_eq!(t["root_service"], "cart");
    assert_eq!(t["root_operation"], "POST /cart");
    assert_eq!(t["span_count"], 2);
    assert_eq!(t["error"], true);
    assert!((t["duration_ms"].as_f64().unwrap() - 9.0).abs() < 1e-9);
    provider.shutdown().unwrap();
}
