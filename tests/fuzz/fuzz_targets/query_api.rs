//! The query API as a client reaches it: any method, path, query string and body, through the
//! real router, over a small lake of traces, logs and metrics.
//!
//! Input: `METHOD URI`, a newline, then the body (the SQL endpoint's JSON). Every answer must
//! come within the harness's bound and must not be a 500: bad parameters and bad SQL are the
//! client's fault (4xx), and a healthy lake never makes the server fail.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode, Uri};
use lakescope_collector::ingest::LogConfig;
use lakescope_collector::{Ingest, Lake, Limits};
use lakescope_query::dashboards::Dashboards;
use lakescope_query::{QueryEngine, QueryLimits};
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use tower::ServiceExt;

/// Longer than any answer may take: the engine's own timeout is 2 s.
const HANG: Duration = Duration::from_secs(20);

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _ingest: Ingest,
    _dir: tempfile::TempDir,
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![text("service.name", service)],
        ..Default::default()
    })
}

/// Twenty traces: frontend (server) → frontend (client) → checkout (server) → a database
/// call; every fifth fails in the database.
fn traces(now: u64) -> ExportTraceServiceRequest {
    let mut frontend = Vec::new();
    let mut checkout = Vec::new();
    for i in 0..20u64 {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(i + 1).to_be_bytes());
        let start = now - (20 - i) * 60_000_000_000;
        let id = |n: u64| ((i + 1) * 16 + n).to_be_bytes().to_vec();
        let failed = i % 5 == 0;
        let status = |error: bool| {
            Some(Status {
                code: if error { 2 } else { 0 },
                message: if error {
                    format!("timeout after {i} ms")
                } else {
                    String::new()
                },
            })
        };
        let span = |n: u64, parent: Option<u64>, name: &str, kind: span::SpanKind, ms: u64| Span {
            trace_id: trace_id.to_vec(),
            span_id: id(n),
            parent_span_id: parent.map(id).unwrap_or_default(),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: start + n * 1_000_000,
            end_time_unix_nano: start + n * 1_000_000 + ms * 1_000_000,
            attributes: vec![text("http.request.method", "POST")],
            status: status(failed),
            ..Default::default()
        };
        frontend.push(span(1, None, "POST /buy", span::SpanKind::Server, 40 + i));
        frontend.push(span(
            2,
            Some(1),
            "POST /checkout",
            span::SpanKind::Client,
            30 + i,
        ));
        checkout.push(span(
            3,
            Some(2),
            "POST /checkout",
            span::SpanKind::Server,
            25 + i,
        ));
        let mut db = span(4, Some(3), "SELECT orders", span::SpanKind::Client, 10 + i);
        db.attributes.push(text("db.system", "postgresql"));
        db.attributes.push(text("server.address", "orders-db"));
        checkout.push(db);
    }
    let resource_spans = |service: &str, spans: Vec<Span>| ResourceSpans {
        resource: resource(service),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("frontend", frontend),
            resource_spans("checkout", checkout),
        ],
    }
}

fn logs(now: u64) -> ExportLogsServiceRequest {
    let records = (0..20u64)
        .map(|i| LogRecord {
            time_unix_nano: now - i * 1_000_000_000,
            severity_number: if i % 4 == 0 { 17 } else { 9 },
            severity_text: if i % 4 == 0 { "ERROR" } else { "INFO" }.into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "order {i} placed by customer {}",
                    i * 7
                ))),
            }),
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("checkout"),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let lake = Arc::new(Lake::open(dir.path()).expect("a lake"));
        let (ingest, _log_thread) =
            Ingest::start(Arc::clone(&lake), Limits::default(), LogConfig::default())
                .expect("the write-ahead log");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_nanos() as u64;
        runtime.block_on(async {
            let t = ingest
                .export_traces(traces(now), None)
                .await
                .expect("traces");
            assert_eq!(t.accepted, 80);
            let l = ingest.export_logs(logs(now), None).await.expect("logs");
            assert_eq!(l.accepted, 20);
        });
        let engine = QueryEngine::new(
            &lake,
            QueryLimits {
                timeout: Duration::from_secs(2),
                max_rows: 1_000,
                max_concurrent: 2,
                memory_bytes: 64 * 1024 * 1024,
                metadata_cache_bytes: 16 * 1024 * 1024,
                graph_cache_bytes: 16 * 1024 * 1024,
                rollup_cache_bytes: 16 * 1024 * 1024,
            },
        )
        .expect("an engine");
        let router = lakescope_query::api::router(engine, Dashboards::default());
        Fixture {
            runtime,
            router,
            _ingest: ingest,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let (method, uri) = head.split_once(' ').unwrap_or(("GET", head));
    let (Ok(method), Ok(uri)) = (Method::from_bytes(method.as_bytes()), Uri::try_from(uri)) else {
        return;
    };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let fixture = fixture();
    let answer = fixture.runtime.block_on(async {
        tokio::time::timeout(HANG, fixture.router.clone().oneshot(request)).await
    });
    let response = answer
        .expect("the API answered within the bound")
        .expect("infallible");
    let status = response.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        let body = fixture
            .runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20));
        panic!(
            "500 for {head:?}: {}",
            String::from_utf8_lossy(&body.unwrap_or_default())
        );
    }
});
