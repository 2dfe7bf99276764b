//! Moves recent batches into Parquet files when they are old or large enough, then tells the
//! log how far it may forget.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Lake, Table, writer};

/// The log side of a flush: how far the buffers are filled, and where to checkpoint.
pub trait Checkpoint: Send + Sync + 'static {
    /// The highest sequence number already added to the buffers.
    fn high_water(&self) -> u64;
    /// Everything up to `seq` is in committed files.
    fn checkpoint(&self, seq: u64) -> impl Future<Output = Result<(), String>> + Send;
}

/// When to flush.
#[derive(Debug, Clone)]
pub struct FlushPolicy {
    /// Flush once the oldest buffered batch is this old.
    pub max_age: Duration,
    /// Flush once the buffers hold this many bytes of Arrow data.
    pub max_bytes: usize,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30),
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

fn due(table: &Table, policy: &FlushPolicy) -> bool {
    let (bytes, _, oldest) = table.pending();
    bytes >= policy.max_bytes || oldest.is_some_and(|t| t.elapsed() >= policy.max_age)
}

/// Flushes every table with data up to the log's current high-water mark, then checkpoints.
/// Returns the number of rows written.
pub async fn flush_all<C: Checkpoint>(lake: &Arc<Lake>, log: &C) -> Result<usize, String> {
    // Read the mark before taking batches: every batch at or below it is already buffered.
    let mark = log.high_water();
    let mut rows = 0;
    for table in lake.tables() {
        let Some(job) = table.begin_flush(mark) else {
            continue;
        };
        let data_dir = lake.data_dir().to_owned();
        let name = table.name();
        let spec = table.spec();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let _stage = crate::memtag::enter(crate::memtag::Stage::Flush);
            let files = writer::write_flush(&data_dir, spec, &job);
            (job, files)
        })
        .await;
        match result {
            Ok((job, Ok(files))) => {
                rows += job.rows;
                let stats = crate::stats::stats();
                let label = crate::stats::TableLabel { table: name };
                stats
                    .flush_seconds
                    .get_or_create(&label)
                    .observe(started.elapsed().as_secs_f64());
                stats
                    .flushed_rows
                    .get_or_create(&label)
                    .inc_by(job.rows as u64);
                tracing::info!(
                    table = name,
                    rows = job.rows,
                    files = files.len(),
                    seq = job.last_seq,
                    ms = started.elapsed().as_millis() as u64,
                    "flushed"
                );
                table.commit_flush(files);
            }
            Ok((_, Err(e))) => {
                crate::stats::stats()
                    .flush_failures
                    .get_or_create(&crate::stats::TableLabel { table: name })
                    .inc();
                table.abort_flush();
                return Err(format!("flush of {name} failed: {e}"));
            }
            Err(e) => {
                table.abort_flush();
                return Err(format!("flush of {name} failed: {e}"));
            }
        }
    }
    if rows > 0 {
        log.checkpoint(mark).await?;
    }
    Ok(rows)
}

/// Runs until `stop` is cancelled, flushing by age and size; flushes once more on the way out.
pub async fn run<C: Checkpoint>(
    lake: Arc<Lake>,
    log: C,
    policy: FlushPolicy,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if !lake.tables().iter().any(|t| due(t, &policy)) {
            continue;
        }
        if let Err(error) = flush_all(&lake, &log).await {
            tracing::error!(%error, "flush failed; the data stays in the write-ahead log and is retried");
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }
    match flush_all(&lake, &log).await {
        Ok(rows) => tracing::info!(rows, "final flush done"),
        Err(error) => {
            tracing::error!(%error, "final flush failed; the write-ahead log is replayed on start")
        }
    }
}
