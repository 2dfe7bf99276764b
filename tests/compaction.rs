//! Compaction against the real binary: an ended hour's flush files become one sorted file, every
//! span is still there exactly once, and a crash between committing the merged file and deleting
//! its inputs leaves no duplicates.

mod common;

use std::path::{Path, PathBuf};

use common::{Server, wait_for};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

const HOUR: u64 = 3_600_000_000_000;

/// 40 spans of two services, started two hours ago (an hour partition that has ended).
fn body(tag: u8) -> Vec<u8> {
    body_at(tag, now_nanos() - 2 * HOUR - 60_000_000_000)
}

/// 40 spans of two services starting at `start`.
fn body_at(tag: u8, start: u64) -> Vec<u8> {
    let service = if tag.is_multiple_of(2) {
        "cart"
    } else {
        "auth"
    };
    let spans = (0..40u32)
        .map(|i| {
            let mut span_id = [tag; 8];
            span_id[4..].copy_from_slice(&(i + 1).to_be_bytes());
            Span {
                trace_id: vec![tag; 16],
                span_id: span_id.to_vec(),
                name: format!("step {}", i % 4),
                kind: if i == 0 { 2 } else { 3 },
                start_time_unix_nano: start + u64::from(i) * 1000,
                end_time_unix_nano: start + u64::from(i) * 1000 + 2_000_000,
                ..Span::default()
            }
        })
        .collect();
    common::export_request(service, spans).encode_to_vec()
}

async fn check_all_there(server: &Server) {
    server.assert_spans_exactly_once(240).await;
    let trace = server
        .get("/api/v1/traces/03030303030303030303030303030303")
        .await;
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(40));
    let (_, rows) = server
        .sql("SELECT service_name, count(*) AS n FROM spans GROUP BY service_name ORDER BY service_name")
        .await;
    assert_eq!(rows["rows"][0]["service_name"], "auth");
    assert_eq!(rows["rows"][0]["n"], 120);
    assert_eq!(rows["rows"][1]["n"], 120);
}

/// A server that has flushed six files into the same (ended) hour partition, with no
/// compaction yet.
async fn six_flush_files(dir: &Path) -> Server {
    let server = Server::start(
        dir,
        &["--flush-interval", "100ms", "--compaction-delay", "1000d"],
    );
    for tag in 1..=6u8 {
        server.post_traces(body(tag)).await;
        let want = usize::from(tag);
        wait_for("a flush", async || span_files(dir).len() == want).await;
    }
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ended_hours_files_are_merged_into_one_and_a_crash_mid_way_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = six_flush_files(dir.path()).await;
    check_all_there(&server).await;
    server.stop();
    let inputs = span_files(dir.path());
    let saved: Vec<(PathBuf, Vec<u8>)> = inputs
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();

    // Compaction merges them into one file while the server answers queries.
    let server = Server::start(
        dir.path(),
        &["--compaction-delay", "0s", "--compaction-interval", "200ms"],
    );
    wait_for("the merge", async || span_files(dir.path()).len() == 1).await;
    let merged = span_files(dir.path());
    let name = merged[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.contains("-c"), "a compacted file: {name}");
    check_all_there(&server).await;
    assert_eq!(
        server
            .metric(r#"lakescope_compacted_files_total{table="spans"}"#)
            .await,
        6.0
    );
    server.stop();

    // A crash after the merged file was committed but before its inputs were deleted.
    for (path, bytes) in &saved {
        std::fs::write(path, bytes).unwrap();
    }
    assert_eq!(span_files(dir.path()).len(), 7);
    let server = Server::start(dir.path(), &[]);
    check_all_there(&server).await;
    assert_eq!(
        span_files(dir.path()),
        merged,
        "the covered inputs are removed on start"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_never_reads_more_than_the_input_bound() {
    let dir = tempfile::tempdir().unwrap();
    let server = six_flush_files(dir.path()).await;
    server.stop();
    let before = span_files(dir.path());
    let sizes: Vec<u64> = before
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    // Less than any two of the files: no merge fits.
    let bound = sizes.iter().min().unwrap() * 3 / 2;
    let server = Server::start(
        dir.path(),
        &[
            "--compaction-delay",
            "0s",
            "--compaction-interval",
            "100ms",
            "--compaction-max-input-bytes",
            &bound.to_string(),
        ],
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(span_files(dir.path()), before);
    assert_eq!(
        server
            .metric(r#"lakescope_compacted_files_total{table="spans"}"#)
            .await,
        0.0
    );
    check_all_there(&server).await;
    server.stop();
    // The same files under the default bound do merge, so the wait above was long enough to
    // have seen a merge.
    let server = Server::start(
        dir.path(),
        &["--compaction-delay", "0s", "--compaction-interval", "100ms"],
    );
    wait_for("the merge", async || span_files(dir.path()).len() == 1).await;
    check_all_there(&server).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_current_hours_flush_files_are_merged_in_runs_while_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--flush-interval",
            "100ms",
            "--compaction-live-files",
            "4",
            "--compaction-interval",
            "200ms",
        ],
    );
    // A second into the current hour, so every flush lands in one partition.
    let start = now_nanos() / HOUR * HOUR + 1_000_000_000;
    for tag in 1..=4u8 {
        server.post_traces(body_at(tag, start)).await;
        // Each flush adds a file; the fourth completes a run, which is merged.
        wait_for("a flush", async || {
            let files = span_files(dir.path()).len();
            files == usize::from(tag) || (tag == 4 && files == 1)
        })
        .await;
    }
    wait_for("the live merge", async || span_files(dir.path()).len() == 1).await;
    let merged = span_files(dir.path());
    assert!(
        merged[0].to_string_lossy().contains("-c"),
        "a merged file: {merged:?}"
    );
    // Two more flushes stay as they are next to the merged file until a run is complete.
    for tag in 5..=6u8 {
        server.post_traces(body_at(tag, start)).await;
        let want = usize::from(tag) - 3;
        wait_for("a flush", async || span_files(dir.path()).len() == want).await;
    }
    check_all_there(&server).await;
    server.stop();
    // After a restart the same spans, once each.
    let server = Server::start(dir.path(), &[]);
    check_all_there(&server).await;
    server.stop();
}

fn span_files(dir: &Path) -> Vec<PathBuf> {
    common::span_files(dir)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}
