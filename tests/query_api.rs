//! The JSON API's contract: read-only SQL with limits, parameter validation, time ranges.

mod common;

use common::Server;
use opentelemetry::trace::{Span as _, SpanKind, Tracer, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::{Duration, SystemTime};

/// 30 spans of `svc` over gRPC, 10 of them an hour ago.
fn send(server: &Server) {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{}", server.grpc))
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name("svc").build())
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("t");
    let now = SystemTime::now();
    for i in 0..30u64 {
        let start = if i < 10 {
            now - Duration::from_secs(3600)
        } else {
            now - Duration::from_secs(60)
        };
        let mut span = tracer
            .span_builder(format!("op-{}", i % 3))
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .start(&tracer);
        span.end_with_timestamp(start + Duration::from_millis(10 + i));
    }
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_is_read_only_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--sql-max-rows", "7"]);
    send(&server);

    let (status, body) = server
        .sql("SELECT name, count(*) AS n FROM spans GROUP BY name ORDER BY name")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["rows"],
        serde_json::json!([
            {"name": "op-0", "n": 10}, {"name": "op-1", "n": 10}, {"name": "op-2", "n": 10}
        ])
    );
    assert_eq!(body["columns"][0]["name"], "name");
    assert_eq!(body["truncated"], false);

    let (status, body) = server.sql("SELECT span_id FROM spans").await;
    assert_eq!(status, 200);
    assert_eq!(body["row_count"], 7);
    assert_eq!(body["truncated"], true);

    // The custom latency functions are available to users too.
    let (status, body) = server
        .sql("SELECT sketch_quantile(latency_sketch(duration_ns), 1.0) / 1e6 AS max_ms FROM spans")
        .await;
    assert_eq!(status, 200, "{body}");
    let max = body["rows"][0]["max_ms"].as_f64().unwrap();
    assert!((max - 39.0).abs() <= 39.0 * 0.01, "{max}");

    for forbidden in [
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO spans SELECT * FROM spans",
        "DROP TABLE spans",
        "COPY (SELECT 1) TO '/tmp/lakescope-copy.csv'",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
        "SELECT * FROM '/etc/passwd'",
    ] {
        let (status, body) = server.sql(forbidden).await;
        assert_eq!(status, 400, "{forbidden}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert!(!std::path::Path::new("/tmp/lakescope-copy.csv").exists());

    let (status, body) = server.sql("SELECT no_such_column FROM spans").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("no_such_column"));

    let res = reqwest::Client::new()
        .post(server.url("/api/v1/sql"))
        .header("content-type", "application/json")
        .body("{\"q\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn time_ranges_filter_and_bad_parameters_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    send(&server);

    // Relative, RFC 3339 and Unix-nanosecond forms select the same window.
    let recent = server.service("svc", "start=now-10m").await;
    assert_eq!(recent["requests"], 20);
    let all = server.service("svc", "start=now-2h&end=now").await;
    assert_eq!(all["requests"], 30);
    let now = SystemTime::now();
    let rfc = chrono::DateTime::<chrono::Utc>::from(now - Duration::from_secs(7200))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let nanos = (now - Duration::from_secs(600))
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    assert_eq!(
        server.service("svc", &format!("start={rfc}")).await["requests"],
        30
    );
    assert_eq!(
        server.service("svc", &format!("start={nanos}")).await["requests"],
        20
    );

    let traces = server
        .get("/api/v1/traces?service=svc&operation=op-1&start=now-2h&limit=100")
        .await;
    assert_eq!(traces["traces"].as_array().unwrap().len(), 10);
    let slow = server
        .get("/api/v1/traces?service=svc&min_duration_ms=35&start=now-2h")
        .await;
    // Durations are 10 + i ms for i in 0..30: 35..=39 ms is five spans.
    assert_eq!(slow["traces"].as_array().unwrap().len(), 5);
    let limited = server.get("/api/v1/traces?start=now-2h&limit=3").await;
    assert_eq!(limited["traces"].as_array().unwrap().len(), 3);

    for bad in [
        "/api/v1/services?start=yesterday",
        "/api/v1/services?start=now&end=now-1h",
        "/api/v1/traces?limit=0",
        "/api/v1/traces?limit=abc",
        "/api/v1/traces?status=broken",
        "/api/v1/traces?min_duration_ms=-5",
        "/api/v1/traces/not-a-trace-id",
    ] {
        let (status, body) = server.get_status(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    let (status, _) = server
        .get_status("/api/v1/traces/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(status, 404);
}
