//! Interoperability with tools a team already has: the lake read by pyarrow and DuckDB with no
//! Lakescope code, and spans sent by the OpenTelemetry Python SDK from PyPI.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::{Server, assert_within_1pct, nearest_rank, run_python, run_python_with_env};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;

/// Sends `n` SERVER spans of `service` with the Rust SDK; every fourth fails. Half start two hours
/// ago, so the lake gets two hour partitions. Returns the span ids.
fn send(server: &Server, service: &str, n: u64) -> Vec<String> {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{}", server.grpc))
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("interop");
    let now = SystemTime::now();
    let mut ids = Vec::new();
    for i in 0..n {
        let start = now - Duration::from_secs(if i % 2 == 0 { 60 } else { 7200 })
            + Duration::from_millis(i);
        let mut span = tracer
            .span_builder("GET /orders/{id}")
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes([KeyValue::new("http.route", "/orders/{id}")])
            .start(&tracer);
        if i % 4 == 0 {
            span.set_status(Status::error("failed"));
        }
        ids.push(span.span_context().span_id().to_string());
        span.end_with_timestamp(start + Duration::from_millis(5));
    }
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lake_opens_in_pyarrow_and_duckdb_with_every_span() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut ids = send(&server, "orders", 200);
    ids.extend(send(&server, "billing", 100));
    ids.sort();
    // A clean stop flushes everything to Parquet.
    server.stop();

    let out = run_python("python/read_lake.py", &[dir.path().to_str().unwrap()]);
    let found: Value = serde_json::from_str(&out).expect("JSON from read_lake.py");
    let want_services: BTreeMap<String, Value> = [
        ("orders".to_string(), Value::from(200)),
        ("billing".to_string(), Value::from(100)),
    ]
    .into();
    for engine in ["pyarrow", "duckdb"] {
        let f = &found[engine];
        assert_eq!(f["rows"], 300, "{engine}");
        let got: Vec<String> = serde_json::from_value(f["span_ids"].clone()).unwrap();
        assert_eq!(got, ids, "{engine} sees exactly the spans sent");
        let services: BTreeMap<String, Value> =
            serde_json::from_value(f["services"].clone()).unwrap();
        assert_eq!(services, want_services, "{engine}");
    }
    assert_eq!(found["duckdb"]["server_errors"], 75);
    assert_eq!(found["duckdb"]["http_route"], "/orders/{id}");
    let columns: Vec<String> = serde_json::from_value(found["pyarrow"]["columns"].clone()).unwrap();
    for c in [
        "trace_id",
        "span_id",
        "service_name",
        "span_kind",
        "duration_ns",
        "attributes",
        "events",
        "links",
        "date",
        "hour",
    ] {
        assert!(
            columns.iter().any(|x| x == c),
            "pyarrow column {c} missing: {columns:?}"
        );
    }
    assert!(
        found["pyarrow"]["attributes_type"]
            .as_str()
            .unwrap()
            .starts_with("map<string, string")
    );
    assert_eq!(
        found["pyarrow"]["partitions"].as_array().unwrap().len(),
        2,
        "{}",
        found["pyarrow"]["partitions"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_from_the_python_sdk_over_grpc_and_http_are_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let grpc = format!("http://{}", server.grpc);
    let http = server.otlp_url("");
    // Configured only as a service would be: OTEL_EXPORTER_OTLP_ENDPOINT and _PROTOCOL.
    for (protocol, endpoint, service) in [
        ("grpc", grpc.as_str(), "py-grpc"),
        ("http/protobuf", http.as_str(), "py-http"),
    ] {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ];
        let out = run_python_with_env("python/send_with_sdk.py", &[service, "25"], &env);
        let trace_ids: Vec<String> = serde_json::from_str(out.trim()).expect("trace ids");
        assert_eq!(trace_ids.len(), 25);

        let s = server.service(service, "start=now-10m").await;
        assert_eq!(s["requests"], 25, "{protocol}: {s}");
        assert_eq!(s["errors"], 5, "{protocol}: {s}");
        let durations: Vec<f64> = (0..25).map(|i| 10.0 + i as f64).collect();
        for (q, key) in [(0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")] {
            assert_within_1pct(&s[key], nearest_rank(&durations, q), key);
        }

        let trace = server
            .get(&format!("/api/v1/traces/{}", trace_ids[3]))
            .await;
        assert_eq!(trace["span_count"], 2);
        let child = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == "CLIENT")
            .unwrap();
        assert_eq!(child["attributes"]["db.system.name"], "postgresql");
        assert_eq!(
            child["resource"]["attributes"]["telemetry.sdk.language"],
            "python"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_from_the_python_sdk_over_grpc_and_http_are_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let grpc = format!("http://{}", server.grpc);
    let http = server.otlp_url("");
    // Configured only as a service would be: OTEL_EXPORTER_OTLP_ENDPOINT and _PROTOCOL.
    for (protocol, endpoint, service) in [
        ("grpc", grpc.as_str(), "pylogs-grpc"),
        ("http/protobuf", http.as_str(), "pylogs-http"),
    ] {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ];
        let out = run_python_with_env("python/send_logs_with_sdk.py", &[service], &env);
        let trace_id: String = serde_json::from_str(out.trim()).expect("trace id");
        let count = |query: String| {
            let server = &server;
            async move {
                server
                    .get(&format!(
                        "/api/v1/logs?start=now-10m&service={service}&limit=100{query}"
                    ))
                    .await["logs"]
                    .as_array()
                    .unwrap()
                    .len()
            }
        };
        assert_eq!(count(String::new()).await, 15, "{protocol}");
        assert_eq!(count("&min_severity=warn".into()).await, 5, "{protocol}");
        assert_eq!(count("&min_severity=error".into()).await, 2, "{protocol}");
        assert_eq!(count("&q=payment%20declined".into()).await, 2, "{protocol}");
        let of_trace = server
            .get(&format!("/api/v1/logs?trace_id={trace_id}"))
            .await;
        let bodies: Vec<&str> = of_trace["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["body"].as_str().unwrap())
            .collect();
        assert_eq!(
            bodies,
            vec![
                "payment declined for order 8",
                "payment declined for order 7"
            ],
            "{protocol}"
        );
        assert_eq!(
            of_trace["logs"][0]["resource"]["attributes"]["telemetry.sdk.language"],
            "python"
        );
    }
    // The logs table opens in pyarrow and DuckDB too.
    server.stop();
    let out = run_python(
        "python/read_lake.py",
        &[dir.path().to_str().unwrap(), "logs"],
    );
    let found: Value = serde_json::from_str(&out).expect("JSON from read_lake.py");
    for engine in ["pyarrow", "duckdb"] {
        assert_eq!(found[engine]["rows"], 30, "{engine}");
        assert_eq!(found[engine]["errors"], 4, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_from_the_python_sdk_over_grpc_and_http_keep_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let grpc = format!("http://{}", server.grpc);
    let http = server.otlp_url("");
    // Configured only as a service would be: OTEL_EXPORTER_OTLP_ENDPOINT and _PROTOCOL.
    for (protocol, endpoint, service) in [
        ("grpc", grpc.as_str(), "pymetrics-grpc"),
        ("http/protobuf", http.as_str(), "pymetrics-http"),
    ] {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ];
        run_python_with_env("python/send_metrics_with_sdk.py", &[service], &env);
        let one = |query: String| {
            let server = &server;
            async move {
                let body = server
                    .get(&format!("/api/v1/metrics/query?start=now-30m&step=1h&filter=service.name={service}&{query}"))
                    .await;
                body["series"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| (s["labels"].clone(), s["values"][0].as_f64().unwrap()))
                    .collect::<Vec<_>>()
            }
        };
        let by_queue = one("name=jobs.done&agg=increase&group_by=queue".into()).await;
        assert_eq!(
            by_queue,
            vec![
                (serde_json::json!({"queue": "fast"}), 7.0),
                (serde_json::json!({"queue": "slow"}), 3.0)
            ],
            "{protocol}"
        );
        assert_eq!(
            one("name=job.duration&agg=count".into()).await[0].1,
            5.0,
            "{protocol}"
        );
        assert_eq!(
            one("name=job.duration&agg=sum".into()).await[0].1,
            546.0,
            "{protocol}"
        );
        // The median 3 ms lies in the SDK's default bucket (0, 5].
        let p50 = one("name=job.duration&agg=quantile&q=0.5".into()).await[0].1;
        assert!((0.0..=5.0).contains(&p50), "{protocol}: {p50}");
        assert_eq!(
            one("name=workers.busy".into()).await[0].1,
            4.0,
            "{protocol}"
        );
        // The SDK's exponential histogram: count, sum, and the median 300 within 1 %.
        assert_eq!(
            one("name=payload.size&agg=count".into()).await[0].1,
            5.0,
            "{protocol}"
        );
        assert_eq!(
            one("name=payload.size&agg=sum".into()).await[0].1,
            6000.0,
            "{protocol}"
        );
        let median = one("name=payload.size&agg=quantile&q=0.5".into()).await[0].1;
        assert!((median - 300.0).abs() <= 3.0, "{protocol}: {median}");
        let kind = server
            .sql(&format!("SELECT metric_type FROM metrics WHERE metric_name = 'payload.size' AND service_name = '{service}' LIMIT 1"))
            .await
            .1;
        assert_eq!(
            kind["rows"][0]["metric_type"], "exponential_histogram",
            "{protocol}"
        );
    }
    // The SDK exports its cumulative points again at shutdown: every export is a row.
    let rows = server.count("SELECT count(*) FROM metrics").await;
    let histogram_count = server
        .count("SELECT CAST(sum(count) AS BIGINT) FROM metrics WHERE metric_type = 'histogram'")
        .await;
    assert!(rows >= 8);
    server.stop();
    let out = run_python(
        "python/read_lake.py",
        &[dir.path().to_str().unwrap(), "metrics"],
    );
    let found: Value = serde_json::from_str(&out).expect("JSON from read_lake.py");
    for engine in ["pyarrow", "duckdb"] {
        assert_eq!(found[engine]["rows"], rows, "{engine}");
        assert_eq!(
            found[engine]["histogram_count"], histogram_count,
            "{engine}"
        );
    }
}
