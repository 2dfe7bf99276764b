//! One table's live state: its committed Parquet files and the recent batches not yet in them.
//!
//! Both change under one lock, so a [`Snapshot`] sees every acknowledged row exactly once: a
//! flush's batches stay visible until the files that hold them are added, in the same step that
//! removes the batches.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::schema::TableSpec;

/// A committed Parquet file. Shared (`Arc`) by the table and every snapshot that lists it; once
/// removed from the table (retention, compaction) it is deleted from disk when the last
/// snapshot — the last query that may read it — lets go of it.
#[derive(Debug)]
pub struct LakeFile {
    pub path: PathBuf,
    pub size: u64,
    /// Start of the hour partition (Unix ns): every row's start time is in [this, this + 1 h).
    pub partition_start: i64,
    /// The highest WAL sequence number this file's flush covers.
    pub seq: u64,
    obsolete: AtomicBool,
}

impl LakeFile {
    pub fn new(path: PathBuf, size: u64, partition_start: i64, seq: u64) -> Self {
        Self {
            path,
            size,
            partition_start,
            seq,
            obsolete: AtomicBool::new(false),
        }
    }
}

impl Drop for LakeFile {
    fn drop(&mut self) {
        if !*self.obsolete.get_mut() {
            return;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::debug!(path = %self.path.display(), "removed file deleted");
                // Tidy an hour partition left empty; fails harmlessly when it is not.
                if let Some(dir) = self.path.parent() {
                    let _ = std::fs::remove_dir(dir);
                }
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "could not delete a removed file")
            }
        }
    }
}

/// What a query reads: the files and the recent batches at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub schema: SchemaRef,
    pub files: Arc<Vec<Arc<LakeFile>>>,
    pub batches: Vec<RecordBatch>,
}

#[derive(Debug)]
struct Buffered {
    seq: u64,
    batch: RecordBatch,
    bytes: usize,
    received: Instant,
}

#[derive(Debug, Default)]
struct State {
    files: Arc<Vec<Arc<LakeFile>>>,
    pending: Vec<Buffered>,
    /// Taken by a flush that has not committed yet; still visible to queries.
    flushing: Vec<Buffered>,
    pending_bytes: usize,
    pending_rows: usize,
}

/// Batches handed to a flush, all with sequence numbers up to `last_seq`.
#[derive(Debug)]
pub struct FlushJob {
    pub batches: Vec<RecordBatch>,
    pub last_seq: u64,
    pub rows: usize,
}

/// One table of the lake.
#[derive(Debug)]
pub struct Table {
    spec: &'static TableSpec,
    schema: SchemaRef,
    state: Mutex<State>,
}

impl Table {
    pub fn new(spec: &'static TableSpec, files: Vec<LakeFile>) -> Self {
        Self {
            spec,
            schema: (spec.schema)(),
            state: Mutex::new(State {
                files: Arc::new(files.into_iter().map(Arc::new).collect()),
                ..State::default()
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    pub fn spec(&self) -> &'static TableSpec {
        self.spec
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed (every change is a
        // few pushes and swaps), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an acknowledged batch. Called in sequence order by the log stage.
    pub fn push(&self, seq: u64, batch: RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        let bytes = batch.get_array_memory_size();
        let mut state = self.lock();
        state.pending_bytes += bytes;
        state.pending_rows += batch.num_rows();
        state.pending.push(Buffered {
            seq,
            batch,
            bytes,
            received: Instant::now(),
        });
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        let batches = state
            .flushing
            .iter()
            .chain(&state.pending)
            .map(|b| b.batch.clone())
            .collect();
        Snapshot {
            schema: self.schema(),
            files: Arc::clone(&state.files),
            batches,
        }
    }

    /// Bytes and rows waiting for a flush, and when the oldest of them arrived.
    pub fn pending(&self) -> (usize, usize, Option<Instant>) {
        let state = self.lock();
        let oldest = state.pending.first().map(|b| b.received);
        (state.pending_bytes, state.pending_rows, oldest)
    }

    /// Moves the pending batches with sequence numbers up to `mark` into a flush; `None` when
    /// there are none or a flush is already running.
    pub fn begin_flush(&self, mark: u64) -> Option<FlushJob> {
        let mut state = self.lock();
        if !state.flushing.is_empty() {
            return None;
        }
        let split = state.pending.partition_point(|b| b.seq <= mark);
        if split == 0 {
            return None;
        }
        let rest = state.pending.split_off(split);
        let taken = std::mem::replace(&mut state.pending, rest);
        state.pending_bytes -= taken.iter().map(|b| b.bytes).sum::<usize>();
        state.pending_rows -= taken.iter().map(|b| b.batch.num_rows()).sum::<usize>();
        let last_seq = taken.last().map_or(0, |b| b.seq);
        let batches: Vec<RecordBatch> = taken.iter().map(|b| b.batch.clone()).collect();
        let rows = batches.iter().map(|b| b.num_rows()).sum();
        state.flushing = taken;
        Some(FlushJob {
            batches,
            last_seq,
            rows,
        })
    }

    /// Makes the flush's files visible and its batches invisible, in one step.
    pub fn commit_flush(&self, new_files: Vec<LakeFile>) {
        let mut state = self.lock();
        let mut files = Vec::clone(&state.files);
        files.extend(new_files.into_iter().map(Arc::new));
        state.files = Arc::new(files);
        state.flushing.clear();
    }

    /// Puts a failed flush's batches back in front of the pending ones.
    pub fn abort_flush(&self) {
        let mut state = self.lock();
        let mut back = std::mem::take(&mut state.flushing);
        state.pending_bytes += back.iter().map(|b| b.bytes).sum::<usize>();
        state.pending_rows += back.iter().map(|b| b.batch.num_rows()).sum::<usize>();
        back.append(&mut state.pending);
        state.pending = back;
    }

    /// Bytes and rows acknowledged but not yet in committed files: pending ones and those of a
    /// running flush. This is what the buffer limit bounds.
    pub fn buffered(&self) -> (usize, usize) {
        let state = self.lock();
        let flushing = &state.flushing;
        (
            state.pending_bytes + flushing.iter().map(|b| b.bytes).sum::<usize>(),
            state.pending_rows + flushing.iter().map(|b| b.batch.num_rows()).sum::<usize>(),
        )
    }

    /// The committed files now (their sizes, partitions and sequence numbers).
    pub fn files(&self) -> Arc<Vec<Arc<LakeFile>>> {
        Arc::clone(&self.lock().files)
    }

    /// Removes files from the table in one step: queries that start afterwards do not see them,
    /// queries already running keep reading them, and each is deleted from disk once the last
    /// such query is done. Returns the files and bytes removed.
    pub fn remove_files(&self, doomed: &HashSet<PathBuf>) -> (usize, u64) {
        let mut state = self.lock();
        let (gone, kept): (Vec<_>, Vec<_>) = state
            .files
            .iter()
            .cloned()
            .partition(|f| doomed.contains(&f.path));
        for f in &gone {
            f.obsolete.store(true, Ordering::Release);
        }
        state.files = Arc::new(kept);
        (gone.len(), gone.iter().map(|f| f.size).sum())
    }

    /// Replaces `inputs` with `output` in one step, if every input is still in the table (else
    /// returns false and changes nothing: retention removed one meanwhile). The inputs are
    /// deleted once no query reads them.
    pub fn replace_files(&self, inputs: &HashSet<PathBuf>, output: LakeFile) -> bool {
        let mut state = self.lock();
        let present = state
            .files
            .iter()
            .filter(|f| inputs.contains(&f.path))
            .count();
        if present != inputs.len() {
            return false;
        }
        let mut files: Vec<Arc<LakeFile>> = Vec::with_capacity(state.files.len());
        for f in state.files.iter() {
            if inputs.contains(&f.path) {
                f.obsolete.store(true, Ordering::Release);
            } else {
                files.push(Arc::clone(f));
            }
        }
        files.push(Arc::new(output));
        files.sort_by_key(|f| (f.partition_start, f.seq));
        state.files = Arc::new(files);
        true
    }

    /// Committed files, with their total size in bytes.
    pub fn file_stats(&self) -> (usize, u64) {
        let state = self.lock();
        (state.files.len(), state.files.iter().map(|f| f.size).sum())
    }
}
