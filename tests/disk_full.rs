//! A full disk: on a small tmpfs made for the test, Lakescope refuses new data retryably, keeps
//! answering queries with everything it acknowledged, and resumes by itself when space is freed —
//! without losing or duplicating an acknowledged span. With the free-disk reserve
//! (`--min-free-disk`), it refuses before the disk is full, and what it acknowledged still reaches
//! Parquet. Needs root (to mount the tmpfs), as the test machines run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tonic_types::StatusExt;

/// A tmpfs of `mib` MiB mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs for the disk-full test failed (it needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the disk up to `leave` free bytes with a ballast file.
fn fill(disk: &Path, leave: u64) -> PathBuf {
    let stat = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(disk)
        .output()
        .unwrap();
    let avail: u64 = String::from_utf8_lossy(&stat.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ballast = disk.join("ballast");
    let chunk = vec![0xa5u8; 1 << 20];
    let mut file = std::fs::File::create(&ballast).unwrap();
    let mut left = avail.saturating_sub(leave);
    use std::io::Write;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    file.sync_all().unwrap();
    ballast
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn request(seq: u32) -> ExportTraceServiceRequest {
    let start = now_nanos() - 1_000_000_000;
    let spans = (0..100u32)
        .map(|i| {
            let mut span_id = [1u8; 8];
            span_id[..4].copy_from_slice(&seq.to_be_bytes());
            span_id[4..].copy_from_slice(&i.to_be_bytes());
            let mut trace_id = [3u8; 16];
            trace_id[..4].copy_from_slice(&seq.to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                // Incompressible-ish names so the disk fills in a few seconds.
                name: format!("op {seq} {i} {}", "x".repeat((i % 13) as usize)),
                kind: 2,
                start_time_unix_nano: start + u64::from(i),
                end_time_unix_nano: start + u64::from(i) + 2_000_000,
                ..Span::default()
            }
        })
        .collect();
    common::export_request("billing", spans)
}

async fn send(client: &reqwest::Client, server: &Server, seq: u32) -> u16 {
    let res = client
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request(seq).encode_to_vec())
        .send()
        .await
        .expect("the server keeps answering");
    let code = res.status().as_u16();
    if code == 503 {
        assert_eq!(
            res.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
    }
    code
}

/// Sends requests numbered after `seq` until one is acknowledged, within 30 s.
async fn send_until_accepted(client: &reqwest::Client, server: &Server, mut seq: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        seq += 1;
        if send(client, server, seq).await == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not accepting again after space was freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_new_data_serves_queries_and_recovers_when_space_is_freed() {
    let disk = SmallDisk::mount(48);
    let data = disk.path().join("data");
    // No reserve: this is what happens when the disk does fill up.
    let server = Server::start(&data, &["--flush-interval", "1s", "--min-free-disk", "0"]);
    let ballast = fill(disk.path(), 3 * 1024 * 1024);
    let client = reqwest::Client::new();

    // Send until the disk is full: every request is either acknowledged or a retryable 503.
    let mut acked = 0u64;
    let mut seq = 0;
    let mut refused_in_a_row = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while refused_in_a_row < 20 {
        assert!(Instant::now() < deadline, "the disk never filled up");
        seq += 1;
        match send(&client, &server, seq).await {
            200 => {
                acked += 100;
                refused_in_a_row = 0;
            }
            503 => refused_in_a_row += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(acked > 0, "some data was accepted before the disk filled");
    eprintln!("disk full after {acked} acknowledged spans ({seq} requests)");

    // Full disk: not ready, but queries answer with everything acknowledged.
    let res = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(
        server.count("SELECT count(*) FROM spans").await as u64,
        acked
    );
    let s = server.service("billing", "start=now-10m").await;
    assert_eq!(s["requests"].as_u64(), Some(acked));
    assert!(server.metric(r#"lakescope_requests_refused_total{signal="traces",protocol="http",reason="unavailable"}"#).await
        + server.metric(r#"lakescope_requests_refused_total{signal="traces",protocol="http",reason="overloaded"}"#).await
        >= 20.0);

    // Space comes back: acceptance resumes by itself.
    std::fs::remove_file(&ballast).unwrap();
    send_until_accepted(&client, &server, seq).await;
    acked += 100;
    // The backlog reaches Parquet: the flush that failed on the full disk is retried.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .metric(r#"lakescope_buffer_rows{table="spans"}"#)
        .await
        > 0.0
    {
        assert!(
            Instant::now() < deadline,
            "the buffered spans were never flushed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let res = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);

    // After a restart, exactly what was acknowledged.
    server.stop();
    let server = Server::start(&data, &["--min-free-disk", "0"]);
    server.assert_spans_exactly_once(acked).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn below_the_free_disk_reserve_new_data_is_refused_and_what_was_acknowledged_is_flushed() {
    const MIB: u64 = 1024 * 1024;
    let disk = SmallDisk::mount(64);
    let data = disk.path().join("data");
    let reserve = 24 * MIB;
    let reserve_flag = reserve.to_string();
    // No timed flush: only the log grows until the shutdown's flush, so nothing frees space
    // while the test looks.
    let args = ["--flush-interval", "1h", "--min-free-disk", &reserve_flag];
    let server = Server::start(&data, &args);
    let ballast = fill(disk.path(), reserve + 4 * MIB);
    let client = reqwest::Client::new();

    // Send until refused: the log eats the 4 MiB above the reserve.
    let mut acked = 0u64;
    let mut seq = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "never refused");
        seq += 1;
        match send(&client, &server, seq).await {
            200 => acked += 100,
            503 => break,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(acked > 0, "data was accepted above the reserve");
    let refused = |reason: &str| {
        format!(
            r#"lakescope_requests_refused_total{{signal="traces",protocol="http",reason="{reason}"}}"#
        )
    };
    assert_eq!(server.metric(&refused("disk_low")).await, 1.0);
    assert_eq!(server.metric(&refused("unavailable")).await, 0.0);

    // gRPC senders are refused the same way, retryably.
    let mut grpc = TraceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let status = grpc.export(request(seq + 1)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("low disk space"), "{status:?}");
    assert!(status.get_details_retry_info().is_some(), "{status:?}");
    seq += 1;

    // Not ready, and why; queries answer with everything acknowledged.
    let res = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(res.status().as_u16(), 503);
    let body = res.text().await.unwrap();
    assert!(body.contains("low disk space"), "{body}");
    let free = server.metric("lakescope_disk_free_bytes").await;
    assert!(free > 0.0 && free < reserve as f64, "{free}");
    assert_eq!(
        server.count("SELECT count(*) FROM spans").await as u64,
        acked
    );

    // The reserve holds what the acknowledged spans need: the shutdown's flush writes them to
    // Parquet, so after a restart (still below the reserve) none are left to replay from the log.
    server.stop();
    let server = Server::start(&data, &args);
    assert_eq!(
        server
            .metric(r#"lakescope_buffer_rows{table="spans"}"#)
            .await,
        0.0
    );
    assert!(server.metric(r#"lakescope_files{table="spans"}"#).await >= 1.0);
    server.assert_spans_exactly_once(acked).await;

    // Space comes back: acceptance resumes by itself.
    std::fs::remove_file(&ballast).unwrap();
    send_until_accepted(&client, &server, seq).await;
    acked += 100;
    assert_eq!(
        server.count("SELECT count(*) FROM spans").await as u64,
        acked
    );
    drop(server);
}
