//! Offered load far above what the buffers may hold: senders get retryable refusals in their
//! protocol's form, memory stays bounded, the server recovers by itself, and every acknowledged
//! span is stored exactly once. Also `/healthz`, `/readyz` and `/metrics` as an operator sees them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tonic_types::StatusExt;

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// `n` distinct spans: the span id encodes (sender, request, i).
fn request(sender: u8, seq: u32, n: u32) -> ExportTraceServiceRequest {
    let start = now_nanos() - 1_000_000_000;
    let spans = (0..n)
        .map(|i| {
            let mut span_id = [0u8; 8];
            span_id[0] = sender + 1;
            span_id[1..4].copy_from_slice(&seq.to_be_bytes()[1..]);
            span_id[4..].copy_from_slice(&i.to_be_bytes());
            let mut trace_id = [9u8; 16];
            trace_id[..4].copy_from_slice(&seq.to_be_bytes());
            trace_id[4] = sender;
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                name: format!("GET /item/{}", i % 7),
                kind: 2,
                start_time_unix_nano: start + u64::from(i),
                end_time_unix_nano: start + u64::from(i) + 3_000_000,
                ..Span::default()
            }
        })
        .collect();
    common::export_request("inventory", spans)
}

#[derive(Default)]
struct Tally {
    acked_spans: AtomicU64,
    refused: AtomicU64,
}

const SPANS_PER_REQUEST: u32 = 200;
const LIMIT: usize = 8 * 1024 * 1024;

/// Sends over OTLP/HTTP until `stop`; every refusal must be a retryable 503 with Retry-After and
/// a google.rpc.Status of code UNAVAILABLE.
async fn http_sender(server_otlp: String, sender: u8, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let client = reqwest::Client::new();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let res = client
            .post(format!("{server_otlp}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(request(sender, seq, SPANS_PER_REQUEST).encode_to_vec())
            .send()
            .await
            .expect("the server keeps answering");
        match res.status().as_u16() {
            200 => {
                tally
                    .acked_spans
                    .fetch_add(u64::from(SPANS_PER_REQUEST), Ordering::Relaxed);
            }
            503 => {
                assert_eq!(
                    res.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()),
                    Some("1")
                );
                let body = res.bytes().await.unwrap();
                // google.rpc.Status: code 14 (UNAVAILABLE) and a message naming the cause.
                let text = String::from_utf8_lossy(&body);
                assert!(text.contains("overloaded"), "refusal body: {text}");
                assert_eq!(body.first(), Some(&0x08));
                assert_eq!(body.get(1), Some(&14));
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("unexpected status {other}"),
        }
    }
}

/// Sends over OTLP/gRPC until `stop`; refusals must be UNAVAILABLE with RetryInfo.
async fn grpc_sender(grpc: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut client = TraceServiceClient::connect(grpc).await.expect("connect");
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        match client.export(request(200, seq, SPANS_PER_REQUEST)).await {
            Ok(_) => {
                tally
                    .acked_spans
                    .fetch_add(u64::from(SPANS_PER_REQUEST), Ordering::Relaxed);
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                let retry = status
                    .get_details_retry_info()
                    .expect("RetryInfo in the status details");
                assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn ready(server: &Server) -> (u16, serde_json::Value) {
    let res = reqwest::get(server.url("/readyz")).await.unwrap();
    let code = res.status().as_u16();
    (code, res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_is_refused_retryably_memory_stays_bounded_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let limit = LIMIT.to_string();
    // Flushes only by age, every 2 s: between them the offered load fills the buffers.
    let server = Server::start(
        dir.path(),
        &[
            "--max-buffer-bytes",
            &limit,
            "--flush-interval",
            "2s",
            "--flush-bytes",
            "1000000000",
            // Freed memory kept for reuse counts towards the bound below.
            "--keep-freed-memory-below",
            "134217728",
        ],
    );
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(ready(&server).await.0, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let (http_tally, grpc_tally) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let mut senders = Vec::new();
    for sender in 0..4 {
        senders.push(tokio::spawn(http_sender(
            server.otlp_url(""),
            sender,
            Arc::clone(&stop),
            Arc::clone(&http_tally),
        )));
    }
    senders.push(tokio::spawn(grpc_sender(
        format!("http://{}", server.grpc),
        Arc::clone(&stop),
        Arc::clone(&grpc_tally),
    )));

    // Sustained overload; meanwhile the server must say it is not ready at some point.
    let started = Instant::now();
    let mut seen_unready = None;
    while started.elapsed() < Duration::from_secs(8) {
        let (code, body) = ready(&server).await;
        if code == 503 {
            seen_unready = Some(body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.expect("sender");
    }
    let body = seen_unready.expect("/readyz was 503 while the buffers were full");
    assert_eq!(body["ready"], false);
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("buffers full")
    );

    let http_refused = http_tally.refused.load(Ordering::Relaxed);
    let grpc_refused = grpc_tally.refused.load(Ordering::Relaxed);
    assert!(http_refused > 0, "the overload was refused over HTTP");
    assert!(grpc_refused > 0, "the overload was refused over gRPC");

    // The server recovers by itself once a flush empties the buffers.
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready(&server).await.0 != 200 {
        assert!(Instant::now() < deadline, "not ready again after the load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = reqwest::Client::new();
    let res = client
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request(99, 1, SPANS_PER_REQUEST).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);

    let acked = http_tally.acked_spans.load(Ordering::Relaxed)
        + grpc_tally.acked_spans.load(Ordering::Relaxed)
        + u64::from(SPANS_PER_REQUEST);
    server.assert_spans_exactly_once(acked).await;

    // What the operator sees matches what the senders saw.
    let refused_http = server
        .metric(r#"lakescope_requests_refused_total{signal="traces",protocol="http",reason="overloaded"}"#)
        .await;
    let refused_grpc = server
        .metric(r#"lakescope_requests_refused_total{signal="traces",protocol="grpc",reason="overloaded"}"#)
        .await;
    assert_eq!(refused_http as u64, http_refused);
    assert_eq!(refused_grpc as u64, grpc_refused);
    let accepted_http = server
        .metric(r#"lakescope_records_accepted_total{signal="traces",protocol="http"}"#)
        .await;
    let accepted_grpc = server
        .metric(r#"lakescope_records_accepted_total{signal="traces",protocol="grpc"}"#)
        .await;
    assert_eq!((accepted_http + accepted_grpc) as u64, acked);
    assert_eq!(
        server.metric("lakescope_buffer_limit_bytes").await as usize,
        LIMIT
    );

    // Memory is bounded by the configuration, not by the offered load.
    let offered = (http_refused + grpc_refused) * u64::from(SPANS_PER_REQUEST) + acked;
    let peak = server.peak_rss();
    eprintln!(
        "offered {offered} spans, acknowledged {acked}, refused {} requests; peak RSS {} MiB",
        http_refused + grpc_refused,
        peak / (1024 * 1024)
    );
    assert!(
        peak < 256 * 1024 * 1024,
        "peak RSS {} MiB with an {} MiB buffer limit",
        peak / (1024 * 1024),
        LIMIT / (1024 * 1024)
    );
    server.stop();
}

/// Resident memory as `/metrics` shows it, and whether freed memory is kept, for a server
/// started with `--keep-freed-memory-below` at `threshold`.
async fn memory_metrics(threshold: &str) -> (f64, f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--keep-freed-memory-below", threshold]);
    // The sampler's first reading lands within 100 ms of the start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resident = server.metric("lakescope_resident_memory_bytes").await;
    let kept = server.metric("lakescope_freed_memory_kept").await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    server.stop();
    (resident, kept, rss_kib * 1024)
}

#[tokio::test]
async fn freed_memory_is_kept_only_while_resident_memory_is_under_the_threshold() {
    // An idle server is far under the default 512 MiB: what it frees is kept for reuse.
    let (resident, kept, rss) = memory_metrics("536870912").await;
    assert_eq!(kept, 1.0);
    assert!(
        resident > 0.5 * rss as f64 && resident < 1.5 * rss as f64,
        "/metrics says {resident} resident bytes, /proc {rss}"
    );
    // Over the threshold (any process is over 1 MiB), memory goes back at once.
    let (resident, kept, _) = memory_metrics("1048576").await;
    assert_eq!(kept, 0.0);
    assert!(resident > 1048576.0, "{resident}");
    // 0: always at once, and no sampling.
    let (resident, kept, _) = memory_metrics("0").await;
    assert_eq!((resident, kept), (0.0, 0.0));
}
