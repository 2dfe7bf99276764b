//! The path of an accepted request: convert to Arrow → append to the write-ahead log (group commit
//! on a dedicated thread) → add to the table's recent buffer → acknowledge.
//!
//! The log thread is the only writer of both the log and the recent buffers, so batches enter the
//! buffers in sequence order and a flush can always checkpoint the log at the highest sequence it
//! has taken.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::convert::Converted;
use crate::convert::logs as convert_logs;
use crate::convert::metrics as convert_metrics;
use crate::convert::spans as convert_spans;
use crate::lake::Lake;
use crate::lake::flusher::Checkpoint;
use crate::limits::Limits;
use crate::wal::{self, Signal, WalError, WalWriter};

/// How many requests may wait for the log thread before senders wait too.
const QUEUE: usize = 1024;
/// Most requests written under one fsync.
const GROUP: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The log could not be written: the request was not acknowledged and can be retried.
    #[error("write-ahead log unavailable: {0}")]
    Unavailable(String),
    /// The buffers, with the requests being received, hold as much unflushed data as they may:
    /// refused until a flush frees them.
    #[error(
        "overloaded: {buffered} bytes wait for a flush or are being received (limit {limit}); \
         retry after a back-off"
    )]
    Overloaded { buffered: usize, limit: usize },
    /// The data directory's file system has less free space than it keeps in reserve.
    #[error(
        "low disk space: {free} bytes free on the data directory's file system, below the {limit} \
         kept in reserve (--min-free-disk); retry after a back-off"
    )]
    DiskLow { free: u64, limit: u64 },
    /// The request's records repeat more bytes than the limit (each stores its resource and
    /// scope): refused whole, as too large; retrying it unchanged cannot succeed.
    #[error(
        "request too large once stored: its records repeat {bytes} bytes of resource, scope and \
         metric fields between them (limit {limit}, --max-repeated-bytes); send fewer records per \
         request"
    )]
    RepeatsTooMuch { bytes: usize, limit: usize },
    /// Lakescope is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// A defect: an accepted request could not be converted.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the sender is told about an accepted request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportOutcome {
    pub accepted: usize,
    pub rejected: usize,
    pub error_message: String,
}

struct Append {
    signal: Signal,
    payload: Bytes,
    batch: RecordBatch,
    done: oneshot::Sender<Result<(), IngestError>>,
}

enum LogMsg {
    Append(Append),
    Checkpoint(u64, oneshot::Sender<Result<(), String>>),
}

/// Sends requests through the log into the lake. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<LogMsg>,
    lake: Arc<Lake>,
    limits: Arc<Limits>,
    high_water: Arc<AtomicU64>,
    /// The last write or sync of the log failed (e.g. a full disk); cleared by the next success.
    log_failing: Arc<AtomicBool>,
    disk: Arc<DiskSpace>,
    /// Bytes reserved by the requests being decoded and converted ([`Ingest::reserve`]).
    in_flight: Arc<AtomicUsize>,
}

/// Memory a request is reckoned to take, per record, from its decoding until its batch is
/// buffered: the decoded record and its row in the columns (an empty log record took ~460 B at
/// the peak; docs/operations.md, `--max-buffer-bytes`). The request's body is added to it.
pub const IN_FLIGHT_BYTES_PER_RECORD: usize = 512;

/// A request's share of `--max-buffer-bytes` while it is decoded and converted; given back when
/// dropped (by then its batch, if any, is in the buffers and counted there).
#[derive(Debug)]
pub struct Reservation {
    in_flight: Arc<AtomicUsize>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// How long a sample of the free disk space is used before the next one.
const DISK_SAMPLE: Duration = Duration::from_millis(250);

/// The free space of the data directory's file system, sampled at most every [`DISK_SAMPLE`]
/// (one `statvfs` call) so that checking it on every request costs next to nothing.
struct DiskSpace {
    dir: PathBuf,
    started: Instant,
    /// Milliseconds after `started` of the last sample, `u64::MAX` before the first.
    sampled_at: AtomicU64,
    free: AtomicU64,
}

impl DiskSpace {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            started: Instant::now(),
            sampled_at: AtomicU64::new(u64::MAX),
            free: AtomicU64::new(u64::MAX),
        }
    }

    /// Free bytes, or `None` when the file system cannot tell (then nothing is refused for it).
    fn free(&self) -> Option<u64> {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.sampled_at.load(Ordering::Acquire);
        if last == u64::MAX || now.saturating_sub(last) >= DISK_SAMPLE.as_millis() as u64 {
            match free_bytes(&self.dir) {
                Ok(free) => {
                    self.free.store(free, Ordering::Release);
                    self.sampled_at.store(now, Ordering::Release);
                    crate::stats::stats().disk_free_bytes.set(free as i64);
                }
                Err(e) => {
                    tracing::debug!(dir = %self.dir.display(), error = %e, "free disk space unknown");
                    return None;
                }
            }
        }
        Some(self.free.load(Ordering::Acquire))
    }
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Whether Lakescope can take data now, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub buffered_bytes: usize,
    pub buffer_limit_bytes: usize,
    /// Empty when ready.
    pub problems: Vec<String>,
}

/// Tuning of the log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A segment is closed once it is larger than this.
    pub segment_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Ingest {
    /// Replays the log into the lake's recent buffers, then starts the log thread.
    pub fn start(
        lake: Arc<Lake>,
        limits: Limits,
        config: LogConfig,
    ) -> Result<(Self, std::thread::JoinHandle<()>), WalError> {
        let dir = crate::lake::layout::wal_dir(lake.data_dir());
        let (replayed, last_seq) = replay(&dir, &lake, &limits)?;
        if replayed > 0 {
            tracing::info!(records = replayed, last_seq, "write-ahead log replayed");
        }
        let writer = WalWriter::open(&dir, last_seq, config.segment_bytes)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let high_water = Arc::new(AtomicU64::new(last_seq));
        let log_failing = Arc::new(AtomicBool::new(false));
        let thread = {
            let high_water = Arc::clone(&high_water);
            let failing = Arc::clone(&log_failing);
            let lake = Arc::clone(&lake);
            std::thread::Builder::new()
                .name("lakescope-wal".into())
                .spawn(move || {
                    let _stage = crate::memtag::enter(crate::memtag::Stage::Wal);
                    log_thread(writer, rx, lake, high_water, failing)
                })
                .map_err(|source| WalError::Io {
                    path: dir.clone(),
                    source,
                })?
        };
        Ok((
            Self {
                tx,
                disk: Arc::new(DiskSpace::new(lake.data_dir())),
                lake,
                limits: Arc::new(limits),
                high_water,
                log_failing,
                in_flight: Arc::new(AtomicUsize::new(0)),
            },
            thread,
        ))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Accepts a trace export. `raw` is the request's protobuf encoding when the sender used
    /// protobuf; it is logged as is when every span is valid.
    pub async fn export_traces(
        &self,
        request: ExportTraceServiceRequest,
        raw: Option<Bytes>,
    ) -> Result<ExportOutcome, IngestError> {
        self.export(
            Signal::Traces,
            request,
            raw,
            |_| false,
            convert_spans::repeated_bytes,
            convert_spans::convert,
            convert_spans::retain_valid,
        )
        .await
    }

    /// Accepts a protobuf trace export converted straight from its bytes
    /// ([`convert_spans::convert_protobuf`]), without decoding it into messages first. `Ok(None)`
    /// when the request needs the general path: prost's decoding, then [`Self::export_traces`].
    pub async fn export_traces_protobuf(
        &self,
        raw: &Bytes,
    ) -> Result<Option<ExportOutcome>, IngestError> {
        self.export_protobuf(Signal::Traces, raw, convert_spans::convert_protobuf)
            .await
    }

    /// Like [`Self::export_traces_protobuf`], for logs
    /// ([`convert_logs::convert_protobuf`]; then [`Self::export_logs`]).
    pub async fn export_logs_protobuf(
        &self,
        raw: &Bytes,
    ) -> Result<Option<ExportOutcome>, IngestError> {
        self.export_protobuf(Signal::Logs, raw, convert_logs::convert_protobuf)
            .await
    }

    /// Like [`Self::export_traces_protobuf`], for metrics
    /// ([`convert_metrics::convert_protobuf`]; then [`Self::export_metrics`]).
    pub async fn export_metrics_protobuf(
        &self,
        raw: &Bytes,
    ) -> Result<Option<ExportOutcome>, IngestError> {
        self.export_protobuf(Signal::Metrics, raw, convert_metrics::convert_protobuf)
            .await
    }

    async fn export_protobuf(
        &self,
        signal: Signal,
        raw: &Bytes,
        convert: ConvertProtobuf,
    ) -> Result<Option<ExportOutcome>, IngestError> {
        self.check_capacity()?;
        let limits = Arc::clone(&self.limits);
        let raw = raw.clone();
        let direct = tokio::task::spawn_blocking(move || {
            let _stage = crate::memtag::enter(crate::memtag::Stage::Decode);
            let converted = convert(&raw, &limits)?;
            Some(converted.map(|converted| (raw, converted)))
        })
        .await
        .map_err(|e| IngestError::Internal(e.to_string()))?;
        let Some(direct) = direct else {
            return Ok(None);
        };
        // Every record was accepted as it is, so the request's own bytes are what is logged.
        let (payload, converted) = direct.map_err(|e| IngestError::Internal(e.to_string()))?;
        let outcome = ExportOutcome {
            accepted: converted.batch.num_rows(),
            rejected: 0,
            error_message: converted.error_message,
        };
        if converted.batch.num_rows() > 0 {
            self.append(signal, payload, converted.batch).await?;
        }
        Ok(Some(outcome))
    }

    /// Accepts a logs export; like [`Self::export_traces`]. Records without an observed time get
    /// the receive time first.
    pub async fn export_logs(
        &self,
        request: ExportLogsServiceRequest,
        raw: Option<Bytes>,
    ) -> Result<ExportOutcome, IngestError> {
        let normalise = |r: &mut ExportLogsServiceRequest| {
            let received = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            convert_logs::normalise(r, received)
        };
        self.export(
            Signal::Logs,
            request,
            raw,
            normalise,
            convert_logs::repeated_bytes,
            convert_logs::convert,
            convert_logs::retain_valid,
        )
        .await
    }

    /// Accepts a metrics export; like [`Self::export_traces`].
    pub async fn export_metrics(
        &self,
        request: ExportMetricsServiceRequest,
        raw: Option<Bytes>,
    ) -> Result<ExportOutcome, IngestError> {
        self.export(
            Signal::Metrics,
            request,
            raw,
            |_| false,
            convert_metrics::repeated_bytes,
            convert_metrics::convert,
            convert_metrics::retain_valid,
        )
        .await
    }

    /// Normalises, converts (off the async workers) and logs one request. What is logged is
    /// exactly what was accepted: the original bytes when nothing changed, else the re-encoded
    /// valid part.
    #[allow(clippy::too_many_arguments)]
    async fn export<R: Message + Send + 'static>(
        &self,
        signal: Signal,
        request: R,
        raw: Option<Bytes>,
        normalise: fn(&mut R) -> bool,
        repeated_bytes: fn(&R) -> usize,
        convert: fn(&R, &Limits) -> Result<Converted, ArrowError>,
        retain_valid: fn(&mut R, &Limits),
    ) -> Result<ExportOutcome, IngestError> {
        self.check_capacity()?;
        // Before converting: the columns of a request over it would not fit in memory.
        let (bytes, limit) = (repeated_bytes(&request), self.limits.max_repeated_bytes);
        if bytes > limit {
            return Err(IngestError::RepeatsTooMuch { bytes, limit });
        }
        let limits = Arc::clone(&self.limits);
        let (payload, batch, outcome) = tokio::task::spawn_blocking(move || {
            let _stage = crate::memtag::enter(crate::memtag::Stage::Decode);
            let mut request = request;
            let changed = normalise(&mut request);
            let converted =
                convert(&request, &limits).map_err(|e| IngestError::Internal(e.to_string()))?;
            let payload = match raw {
                Some(raw) if converted.rejected == 0 && !changed => raw,
                _ => {
                    if converted.rejected > 0 {
                        retain_valid(&mut request, &limits);
                    }
                    Bytes::from(request.encode_to_vec())
                }
            };
            let outcome = ExportOutcome {
                accepted: converted.batch.num_rows(),
                rejected: converted.rejected,
                error_message: converted.error_message,
            };
            Ok::<_, IngestError>((payload, converted.batch, outcome))
        })
        .await
        .map_err(|e| IngestError::Internal(e.to_string()))??;
        if batch.num_rows() > 0 {
            self.append(signal, payload, batch).await?;
        }
        Ok(outcome)
    }

    /// Refuses new data while the buffers are at their limit.
    pub fn check_capacity(&self) -> Result<(), IngestError> {
        self.check_buffers(0)
    }

    /// [`Self::check_capacity`] for a request not yet read: the requests being decoded count
    /// too. The receivers call it before reading a body, so a refusal costs next to nothing.
    pub fn check_admission(&self) -> Result<(), IngestError> {
        self.check_buffers(self.in_flight.load(Ordering::Acquire))
    }

    fn check_buffers(&self, in_flight: usize) -> Result<(), IngestError> {
        let limit = self.limits.max_buffer_bytes;
        let buffered = self.buffered() + in_flight;
        if buffered >= limit {
            return Err(IngestError::Overloaded { buffered, limit });
        }
        self.check_disk()
    }

    fn buffered(&self) -> usize {
        self.lake.tables().iter().map(|t| t.buffered().0).sum()
    }

    /// Reserves `bytes` of `--max-buffer-bytes` for a request about to be decoded and converted,
    /// so that requests received at once cannot together take the buffers far past their limit
    /// (each was only checked against what is already buffered). Refused as overloaded when the
    /// buffers, the requests already in flight and this one would pass the limit; a request with
    /// none other in flight is let through, so that one larger than the limit is not refused
    /// for ever.
    pub fn reserve(&self, bytes: usize) -> Result<Reservation, IngestError> {
        let limit = self.limits.max_buffer_bytes;
        let buffered = self.buffered();
        let mut before = self.in_flight.load(Ordering::Acquire);
        // Added only once admitted, so a request refused here never counts against others.
        loop {
            let total = buffered.saturating_add(before);
            if before > 0 && total.saturating_add(bytes) > limit {
                return Err(IngestError::Overloaded {
                    buffered: total,
                    limit,
                });
            }
            match self.in_flight.compare_exchange_weak(
                before,
                before.saturating_add(bytes),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => before = now,
            }
        }
        Ok(Reservation {
            in_flight: Arc::clone(&self.in_flight),
            bytes,
        })
    }

    fn check_disk(&self) -> Result<(), IngestError> {
        let limit = self.limits.min_free_disk_bytes;
        match self.disk.free() {
            Some(free) if free < limit => Err(IngestError::DiskLow { free, limit }),
            _ => Ok(()),
        }
    }

    /// Whether new data would be accepted now: the log thread runs, the log's last write
    /// succeeded and the buffers are under their limit.
    pub fn readiness(&self) -> Readiness {
        let buffered = self.buffered();
        let limit = self.limits.max_buffer_bytes;
        let mut problems = Vec::new();
        if self.tx.is_closed() {
            problems.push("the write-ahead log has stopped".to_owned());
        }
        if self.log_failing.load(Ordering::Acquire) {
            problems.push("the last write to the write-ahead log failed (disk full?)".to_owned());
        }
        if buffered >= limit {
            problems.push(format!(
                "buffers full: {buffered} bytes wait for a flush (limit {limit})"
            ));
        }
        if let Err(e) = self.check_disk() {
            problems.push(e.to_string());
        }
        Readiness {
            buffered_bytes: buffered,
            buffer_limit_bytes: limit,
            problems,
        }
    }

    async fn append(
        &self,
        signal: Signal,
        payload: Bytes,
        batch: RecordBatch,
    ) -> Result<(), IngestError> {
        let (done, wait) = oneshot::channel();
        let msg = LogMsg::Append(Append {
            signal,
            payload,
            batch,
            done,
        });
        self.tx
            .send(msg)
            .await
            .map_err(|_| IngestError::ShuttingDown)?;
        wait.await.map_err(|_| IngestError::ShuttingDown)?
    }
}

impl Checkpoint for Ingest {
    fn high_water(&self) -> u64 {
        self.high_water.load(Ordering::Acquire)
    }

    async fn checkpoint(&self, seq: u64) -> Result<(), String> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(LogMsg::Checkpoint(seq, reply))
            .await
            .map_err(|_| "log thread stopped".to_string())?;
        wait.await.map_err(|_| "log thread stopped".to_string())?
    }
}

/// A signal's direct conversion of protobuf bytes (`None`: left to the general path).
type ConvertProtobuf = fn(&[u8], &Limits) -> Option<Result<Converted, ArrowError>>;

/// The table a signal's records go to.
fn table_of(lake: &Lake, signal: Signal) -> &crate::lake::Table {
    match signal {
        Signal::Traces => &lake.spans,
        Signal::Logs => &lake.logs,
        Signal::Metrics => &lake.metrics,
    }
}

/// Re-adds every logged request above the checkpoint to the recent buffers.
fn replay(dir: &Path, lake: &Lake, limits: &Limits) -> Result<(usize, u64), WalError> {
    let mut count = 0;
    let last = wal::replay(dir, |record| {
        count += 1;
        let converted = match record.signal {
            Signal::Traces => match convert_spans::convert_protobuf(&record.payload, limits) {
                Some(converted) => converted.map(|c| c.batch).map_err(|e| e.to_string()),
                None => ExportTraceServiceRequest::decode(record.payload.as_slice())
                    .map_err(|e| e.to_string())
                    .and_then(|r| convert_spans::convert(&r, limits).map_err(|e| e.to_string()))
                    .map(|c| c.batch),
            },
            Signal::Logs => match convert_logs::convert_protobuf(&record.payload, limits) {
                Some(converted) => converted.map(|c| c.batch).map_err(|e| e.to_string()),
                None => ExportLogsServiceRequest::decode(record.payload.as_slice())
                    .map_err(|e| e.to_string())
                    .and_then(|r| convert_logs::convert(&r, limits).map_err(|e| e.to_string()))
                    .map(|c| c.batch),
            },
            Signal::Metrics => match convert_metrics::convert_protobuf(&record.payload, limits) {
                Some(converted) => converted.map(|c| c.batch).map_err(|e| e.to_string()),
                None => ExportMetricsServiceRequest::decode(record.payload.as_slice())
                    .map_err(|e| e.to_string())
                    .and_then(|r| convert_metrics::convert(&r, limits).map_err(|e| e.to_string()))
                    .map(|c| c.batch),
            },
        };
        match converted {
            Ok(batch) => table_of(lake, record.signal).push(record.seq, batch),
            Err(error) => {
                tracing::error!(seq = record.seq, %error, "logged request could not be replayed")
            }
        }
    })?;
    Ok((count, last))
}

fn log_thread(
    mut writer: WalWriter,
    mut rx: mpsc::Receiver<LogMsg>,
    lake: Arc<Lake>,
    high_water: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
) {
    let mut group: Vec<(u64, Append)> = Vec::with_capacity(GROUP);
    while let Some(first) = rx.blocking_recv() {
        // A failed append abandons its segment with the group's earlier records unsynced in it,
        // so none of the group may be acknowledged.
        let mut group_error: Option<String> = None;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                LogMsg::Checkpoint(seq, reply) => {
                    let _ = reply.send(writer.checkpoint(seq).map_err(|e| e.to_string()));
                }
                LogMsg::Append(append) => match writer.append(append.signal, &append.payload) {
                    Ok(seq) => group.push((seq, append)),
                    Err(e) => {
                        failing.store(true, Ordering::Release);
                        group_error.get_or_insert_with(|| e.to_string());
                        let _ = append
                            .done
                            .send(Err(IngestError::Unavailable(e.to_string())));
                    }
                },
            }
            if group.len() < GROUP {
                next = rx.try_recv().ok();
            }
        }
        if group.is_empty() {
            continue;
        }
        if let Some(error) = group_error {
            tracing::error!(%error, "write-ahead log append failed; the group is refused");
            for (_, append) in group.drain(..) {
                let _ = append
                    .done
                    .send(Err(IngestError::Unavailable(error.clone())));
            }
            continue;
        }
        match writer.sync() {
            Ok(()) => {
                failing.store(false, Ordering::Release);
                for (seq, append) in group.drain(..) {
                    table_of(&lake, append.signal).push(seq, append.batch);
                    high_water.store(seq, Ordering::Release);
                    let _ = append.done.send(Ok(()));
                }
            }
            Err(e) => {
                failing.store(true, Ordering::Release);
                tracing::error!(error = %e, "write-ahead log sync failed; requests refused");
                for (_, append) in group.drain(..) {
                    let _ = append
                        .done
                        .send(Err(IngestError::Unavailable(e.to_string())));
                }
            }
        }
    }
    tracing::debug!("write-ahead log thread stopped");
}
