//! `lakescope loadgen` against the real server: every signal over both protocols, at a fixed
//! rate; what it reports as accepted is exactly what the lake then holds, it never exceeds the
//! rate it was given, and the freshness probe finds its traces through the API.

mod common;

use std::process::Command;

use common::{Server, wait_for};
use serde_json::Value;

/// Runs the load generator against `server` and returns its report.
fn loadgen(server: &Server, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_lakescope"))
        .arg("loadgen")
        .args(["--otlp-grpc", &server.grpc.to_string()])
        .args(["--otlp-http", &server.otlp_http.to_string()])
        .args(["--connections", "2"])
        .args(args)
        .output()
        .expect("run loadgen");
    assert!(
        output.status.success(),
        "loadgen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON report")
}

async fn count(server: &Server, table: &str) -> u64 {
    let (status, body) = server
        .sql(&format!("SELECT count(*) AS n FROM {table}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["rows"][0]["n"].as_u64().expect("a count")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_signal_over_both_protocols_lands_exactly_as_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--flush-interval", "500ms"]);
    let mut expected = [("spans", 0u64), ("logs", 0), ("metrics", 0)];
    for (signal, table) in [("traces", 0), ("logs", 1), ("metrics", 2)] {
        for protocol in ["grpc", "http"] {
            // 2 s at 3,000 records/s; a request holds ~500 spans, ~150 log records or 200
            // points, so at most one request per connection beyond the rate.
            let report = loadgen(
                &server,
                &[
                    "--signal",
                    signal,
                    "--protocol",
                    protocol,
                    "--duration",
                    "2s",
                    "--rate",
                    "3000",
                    "--points-per-request",
                    "200",
                ],
            );
            let records = report["records"].as_u64().unwrap();
            assert_eq!(report["signal"], signal);
            assert_eq!(report["protocol"], protocol);
            assert_eq!(report["refused"], 0, "{report}");
            assert!(records > 0, "{report}");
            assert!(
                records <= 3000 * 2 + 2 * 700,
                "more than the rate allows: {report}"
            );
            assert!(report["otlp_bytes_per_record"].as_f64().unwrap() > 50.0);
            let latency = &report["latency_ms"];
            assert!(
                latency["p50"].as_f64() <= latency["p99"].as_f64(),
                "{report}"
            );
            expected[table].1 += records;
        }
    }
    for (table, records) in expected {
        wait_for(&format!("{records} rows in {table}"), async || {
            count(&server, table).await == records
        })
        .await;
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn freshness_is_measured_on_traces_found_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let report = loadgen(
        &server,
        &[
            "--duration",
            "3s",
            "--rate",
            "2000",
            "--freshness",
            &server.http.to_string(),
        ],
    );
    let fresh = &report["freshness_ms"];
    // One probe trace a second, each found with all its spans.
    assert!(fresh["samples"].as_u64().unwrap() >= 2, "{report}");
    assert!(fresh["p50"].as_f64().unwrap() > 0.0, "{report}");
    assert!(fresh["p50"].as_f64() <= fresh["max"].as_f64(), "{report}");
    // The probe's traces are stored next to the load's.
    let spans = count(&server, "spans").await;
    assert!(spans > report["spans"].as_u64().unwrap(), "{report}");
    server.stop();
}
