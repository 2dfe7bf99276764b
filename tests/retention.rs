//! Retention by age and by size: whole old hour partitions go, the oldest files go first when a
//! table is over its size, the rest of the data stays exactly as it was, and the files are gone
//! from disk.

mod common;

use std::time::Duration;

use common::{Server, span_files, wait_for};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// `n` spans of `service` that started `ago` before now; ids unique per `tag`.
fn body(service: &str, tag: u8, n: u32, ago: Duration) -> Vec<u8> {
    let start = now_nanos() - ago.as_nanos() as u64;
    let spans = (0..n)
        .map(|i| {
            let mut span_id = [tag; 8];
            span_id[4..].copy_from_slice(&(i + 1).to_be_bytes());
            Span {
                trace_id: vec![tag; 16],
                span_id: span_id.to_vec(),
                name: "job".into(),
                kind: 2,
                start_time_unix_nano: start + u64::from(i),
                end_time_unix_nano: start + u64::from(i) + 1_000_000,
                ..Span::default()
            }
        })
        .collect();
    common::export_request(service, spans).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_older_than_the_retention_are_removed_by_whole_hour_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--retention-spans",
            "2h",
            "--retention-interval",
            "500ms",
            "--flush-interval",
            "200ms",
        ],
    );
    server
        .post_traces(body("archive", 1, 50, Duration::from_secs(3 * 3600 + 600)))
        .await;
    server
        .post_traces(body("archive", 2, 30, Duration::from_secs(60)))
        .await;
    // The old spans are visible until flushed into their (expired) partition, then removed.
    wait_for("the old partition to be removed", async || {
        server.count("SELECT count(*) FROM spans").await == 30
    })
    .await;
    assert_eq!(
        server
            .count("SELECT count(*) FROM spans WHERE start_time < now() - interval '2 hours'")
            .await,
        0
    );
    let files = span_files(dir.path());
    assert_eq!(
        files.len(),
        1,
        "only the recent partition's file is left: {files:?}"
    );
    assert!(
        server
            .metric(r#"lakescope_retention_removed_files_total{table="spans"}"#)
            .await
            >= 1.0
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_oldest_files_go_first_when_a_table_is_over_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--flush-interval", "100ms"]);
    for tag in 1..=3u8 {
        server
            .post_traces(body("ledger", tag, 40, Duration::from_secs(120)))
            .await;
        let want = usize::from(tag);
        wait_for("a flush", async || span_files(dir.path()).len() == want).await;
    }
    server.stop();
    let files = span_files(dir.path());
    assert_eq!(files.len(), 3);
    // Room for the two newest files only.
    let keep: u64 = files[1].1 + files[2].1;
    let server = Server::start(dir.path(), &["--max-bytes-spans", &keep.to_string()]);
    // Retention runs right after start, in the background.
    wait_for("the oldest file to go from disk", async || {
        span_files(dir.path()) == files[1..].to_vec()
    })
    .await;
    assert_eq!(server.count("SELECT count(*) FROM spans").await, 80);
    // The first request's spans (trace id 0101…) were in the removed file; the second's stay.
    let of_trace = |tag: u8| {
        format!(
            "SELECT count(*) FROM spans WHERE trace_id = X'{}'",
            format!("{tag:02x}").repeat(16)
        )
    };
    assert_eq!(server.count(&of_trace(1)).await, 0);
    assert_eq!(server.count(&of_trace(2)).await, 40);
    server.stop();
}
