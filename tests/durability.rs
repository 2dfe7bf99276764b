//! What is acknowledged is never lost: across restarts, `kill -9` at any moment, and leftovers of
//! an interrupted flush.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A request of `n` spans whose span ids encode `(batch, i)`, so every span is distinct. Odd
/// harness batches (from [`HARNESS_BATCHES`]) started two hours ago — an ended hour, which
/// compaction merges while the harness kills.
fn request(batch: u32, n: u32) -> ExportTraceServiceRequest {
    let ago = if batch >= HARNESS_BATCHES && batch % 2 == 1 {
        2 * 3_600_000_000_000
    } else {
        2_000_000_000
    };
    let start = now_nanos() - ago;
    let spans = (0..n)
        .map(|i| {
            let mut span_id = [0u8; 8];
            span_id[..4].copy_from_slice(&batch.to_be_bytes());
            span_id[4..].copy_from_slice(&(i + 1).to_be_bytes());
            let mut trace_id = [7u8; 16];
            trace_id[..4].copy_from_slice(&batch.to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                name: "write".into(),
                kind: 2,
                start_time_unix_nano: start + i as u64,
                end_time_unix_nano: start + i as u64 + 1_000_000,
                ..Span::default()
            }
        })
        .collect();
    common::export_request("ledger", spans)
}

const HARNESS_BATCHES: u32 = 1_000_000;

fn span_id_hex(batch: u32, i: u32) -> String {
    let mut id = [0u8; 8];
    id[..4].copy_from_slice(&batch.to_be_bytes());
    id[4..].copy_from_slice(&(i + 1).to_be_bytes());
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends one request over OTLP/HTTP; true when it was acknowledged.
async fn send(client: &reqwest::Client, server_otlp: &str, batch: u32, n: u32) -> bool {
    let body = request(batch, n).encode_to_vec();
    match client
        .post(format!("{server_otlp}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
    {
        Ok(res) => res.status().as_u16() == 200,
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn data_survives_a_clean_restart_and_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = Server::start(dir.path(), &[]);
    assert!(send(&client, &server.otlp_url(""), 1, 50).await);
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 50);
    // SIGTERM flushes to Parquet.
    server.stop();
    assert!(
        !common::span_files(dir.path()).is_empty(),
        "a clean stop writes Parquet"
    );

    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 50);
    assert!(send(&client, &server.otlp_url(""), 2, 10).await);
    // No flush happens before the kill (the default interval is 30 s): the write-ahead log is all
    // that holds these 10 spans.
    server.kill9();

    let server = Server::start(dir.path(), &[]);
    server.assert_spans_exactly_once(60).await;
    let s = server.service("ledger", "start=now-10m").await;
    assert_eq!(s["requests"], 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_ingest_flushes_and_compaction_loses_nothing_acknowledged_and_duplicates_nothing()
 {
    use rand::{Rng, SeedableRng};
    // The crash harness: LAKESCOPE_CRASH_ROUNDS rounds (default 6) of ingest under SIGKILL at a
    // random moment; docs/operations.md records a long run.
    let rounds: u64 = std::env::var("LAKESCOPE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("LAKESCOPE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(now_nanos);
    eprintln!("crash harness: {rounds} rounds, LAKESCOPE_CRASH_SEED={seed}");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let acked: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
    let mut next_batch = HARNESS_BATCHES;
    let (mut merges_started, mut merges_done) = (0, 0);
    for round in 0..rounds {
        // Flushes every 50 ms and merges every 50 ms, so kills land before, during and after
        // flushes, checkpoints, merges and the deletion of merged inputs.
        let server = Server::start(
            dir.path(),
            &[
                "--flush-interval",
                "50ms",
                "--compaction-delay",
                "0s",
                "--compaction-interval",
                "50ms",
            ],
        );
        let url = server.otlp_url("");
        let mut senders = Vec::new();
        for _ in 0..4 {
            let (client, url, acked) = (client.clone(), url.clone(), Arc::clone(&acked));
            let first = next_batch;
            next_batch += 10_000;
            senders.push(tokio::spawn(async move {
                for batch in first.. {
                    let n = 1 + batch % 40;
                    if send(&client, &url, batch, n).await {
                        acked.lock().unwrap().push((batch, n));
                    } else {
                        break;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
        let logs = server.logs();
        merges_started += logs.matches("compacting a partition").count();
        merges_done += logs.matches("compacted a partition").count();
        server.kill9();
        for s in senders {
            s.await.unwrap();
        }
        eprintln!(
            "crash harness: round {round}: {} requests acknowledged so far",
            acked.lock().unwrap().len()
        );
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "only {} requests acknowledged",
        acked.len()
    );
    assert!(merges_started > 0, "no merge ran while the harness killed");
    eprintln!(
        "crash harness: {} requests acknowledged; {merges_started} merges started, \
         {merges_done} completed before a kill",
        acked.len()
    );

    let server = Server::start(dir.path(), &["--sql-max-rows", "100000000"]);
    let (status, body) = server.sql("SELECT span_id FROM spans").await;
    assert_eq!(status, 200);
    assert_eq!(body["truncated"], false);
    let stored: Vec<String> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["span_id"].as_str().unwrap().to_owned())
        .collect();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(
        unique.len(),
        stored.len(),
        "duplicated spans after recovery"
    );
    let missing: Vec<String> = acked
        .iter()
        .flat_map(|(batch, n)| (0..*n).map(move |i| span_id_hex(*batch, i)))
        .filter(|id| !unique.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged spans lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    // Every file left behind is a complete Parquet file (DataFusion read them all above).
    assert!(!common::span_files(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn files_of_an_unfinished_flush_are_removed_on_start_and_their_rows_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = Server::start(dir.path(), &[]);
    assert!(send(&client, &server.otlp_url(""), 1, 5).await);
    server.stop();
    let files = common::span_files(dir.path());
    assert_eq!(files.len(), 1);
    // A copy under a sequence number beyond the checkpoint looks exactly like a file renamed into
    // place by a flush that crashed before its checkpoint was written.
    let orphan = files[0].0.with_file_name("00000000000000999999-0.parquet");
    std::fs::copy(&files[0].0, &orphan).unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    std::fs::write(
        dir.path().join("tmp/spans-half-written.parquet"),
        b"PAR1 half",
    )
    .unwrap();

    let server = Server::start(dir.path(), &[]);
    assert!(
        !orphan.exists(),
        "the unfinished flush's file was not removed"
    );
    assert!(!dir.path().join("tmp/spans-half-written.parquet").exists());
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 5);
    assert!(server.logs().contains("unfinished flush"));
}
