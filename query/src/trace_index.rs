//! Where a trace's spans lie in a lake file, to the block of 4,096 rows: a per-file index kept
//! beside the per-file summaries, so that a lookup by trace id reads a few pages instead of whole
//! row groups.
//!
//! The bloom filters (see `bloom_probe`) narrow a lookup to row groups, but at the filters' 1 %
//! false positives a large lake admits tens of row groups that do not hold the trace (1 % of
//! ~3,000 at 100 M spans), and each admitted row group's `trace_id` column is decoded whole
//! (32 Ki ids) to find the few rows. The index names the blocks of rows instead; the scan reads
//! only those rows' pages (span files are written with pages of at most 4,096 rows).
//!
//! ```text
//! <data-dir>/summaries/trace-index/<the lake file's path under the data directory>.tix
//! ```
//!
//! Little-endian, fixed-width so that a lookup reads two small ranges with `pread`:
//!
//! ```text
//! magic       8 bytes  "LSTIX001"
//! source      u64 size, u64 modification time (ns) of the lake file it was made from
//! block_rows  u32      rows per block (4,096)
//! row_groups  u32      G
//! entries     u64      N
//! rows        G × u32  rows of each row group
//! fanout      65,537 × u32  entries before the first of each 16-bit bucket (and N)
//! entries     N × u32  (hash bits 32..48) << 16 | block, sorted, distinct
//! ```
//!
//! The hash is the bloom filter's (xxHash64, seed 0, of the id's bytes); its top 16 bits pick the
//! bucket. An entry says "a row of this block holds an id with these 32 hash bits"; a lookup
//! reads its bucket's entries and selects the matching blocks' rows, and the scan's filter keeps
//! only the rows that really hold the id (false matches of 32 hash bits are rare and harmless).
//! An index whose source differs from the lake file is ignored (the file is probed instead).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::errors::ParquetError;
use lakescope_collector::lake::LakeFile;
use twox_hash::XxHash64;

use crate::summary_store::SummaryStore;

/// The kind's directory under the summaries directory.
pub const KIND: &str = "trace-index";
const SUFFIX: &str = "tix";
const MAGIC: &[u8; 8] = b"LSTIX001";
/// Rows per block: the span files' page row limit, so a block's rows are one page per column.
pub const BLOCK_ROWS: usize = 4096;
const BUCKETS: usize = 1 << 16;
const HEADER_BYTES: u64 = 8 + 8 + 8 + 4 + 4 + 8;
/// Smaller files are left to the bloom probe: they have few row groups to admit.
pub const MIN_FILE_BYTES: u64 = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("{path}: {source}")]
    Arrow { path: PathBuf, source: ArrowError },
    #[error("{0}: no binary trace_id column")]
    NoColumn(PathBuf),
    #[error("{0}: too many rows for a trace index")]
    TooLarge(PathBuf),
    #[error(transparent)]
    Store(#[from] crate::summary_store::StoreError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What an index records of its lake file: size and modification time (ns).
fn source_of(file: &Path) -> Result<(u64, u64), IndexError> {
    let meta = std::fs::metadata(file).map_err(io_err(file))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Ok((meta.len(), modified))
}

fn split(id: &[u8]) -> (usize, u32) {
    let hash = XxHash64::oneshot(0, id);
    ((hash >> 48) as usize, ((hash >> 32) & 0xffff) as u32)
}

/// An opened index: where its parts lie, and its file's row groups.
#[derive(Debug)]
struct Opened {
    file: File,
    fanout_at: u64,
    entries_at: u64,
    entries: u64,
    row_groups: Vec<u32>,
}

/// The rows of one lake file that may hold the ids looked up.
#[derive(Debug, PartialEq, Eq)]
pub struct Located {
    pub row_groups: usize,
    /// Ascending row groups, each with its ascending, disjoint row ranges (within the group).
    pub scan: Vec<(usize, Vec<Range<usize>>)>,
    /// Rows of each of the file's row groups.
    pub rows: Vec<usize>,
}

/// The trace indexes of one data directory, opened ones kept per lake file.
#[derive(Debug)]
pub struct TraceIndex {
    store: SummaryStore,
    opened: Mutex<HashMap<PathBuf, Arc<Opened>>>,
}

impl TraceIndex {
    pub fn new(store: SummaryStore) -> Self {
        Self {
            store,
            opened: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, lake_file: &Path) -> Result<PathBuf, IndexError> {
        Ok(self.store.path_of(KIND, lake_file, SUFFIX)?)
    }

    /// Whether `file` has an index (it may still turn out stale when opened).
    pub fn has(&self, file: &Path) -> bool {
        self.path(file).is_ok_and(|p| p.exists())
    }

    /// The rows of `file` that may hold one of `ids`, or `None` when it has no usable index.
    pub fn locate(&self, file: &LakeFile, ids: &[&[u8]]) -> Option<Located> {
        let opened = self.open(file)?;
        let mut blocks: Vec<u32> = Vec::new();
        for id in ids {
            let (bucket, rest) = split(id);
            let mut bounds = [0u8; 8];
            opened
                .file
                .read_exact_at(&mut bounds, opened.fanout_at + 4 * bucket as u64)
                .ok()?;
            let lo = u64::from(u32::from_le_bytes(bounds[..4].try_into().ok()?));
            let hi = u64::from(u32::from_le_bytes(bounds[4..].try_into().ok()?));
            if lo > hi || hi > opened.entries {
                return None;
            }
            let mut entries = vec![0u8; usize::try_from(4 * (hi - lo)).ok()?];
            opened
                .file
                .read_exact_at(&mut entries, opened.entries_at + 4 * lo)
                .ok()?;
            blocks.extend(
                entries
                    .chunks_exact(4)
                    .map(|e| u32::from_le_bytes([e[0], e[1], e[2], e[3]]))
                    .filter(|e| e >> 16 == rest)
                    .map(|e| e & 0xffff),
            );
        }
        blocks.sort_unstable();
        blocks.dedup();
        Some(rows_of_blocks(&opened.row_groups, &blocks))
    }

    /// Forgets opened indexes of files no longer in `live`.
    pub fn retain(&self, live: &[&Path]) {
        if let Ok(mut opened) = self.opened.lock()
            && opened.len() > live.len()
        {
            let live: std::collections::HashSet<&Path> = live.iter().copied().collect();
            opened.retain(|p, _| live.contains(p.as_path()));
        }
    }

    fn open(&self, file: &LakeFile) -> Option<Arc<Opened>> {
        if let Some(known) = self.opened.lock().ok()?.get(&file.path) {
            return Some(Arc::clone(known));
        }
        let path = self.path(&file.path).ok()?;
        let index = File::open(&path).ok()?;
        let mut header = [0u8; HEADER_BYTES as usize];
        index.read_exact_at(&mut header, 0).ok()?;
        let u64_at =
            |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
        let u32_at =
            |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap_or([0; 4]));
        if &header[..8] != MAGIC
            || (u64_at(8), u64_at(16)) != source_of(&file.path).ok()?
            || u32_at(24) as usize != BLOCK_ROWS
        {
            return None;
        }
        let groups = u32_at(28) as usize;
        let entries = u64_at(32);
        // The header is checked against the file's length before anything is allocated from it,
        // so a damaged index is ignored rather than asking for gigabytes.
        let fanout_at = HEADER_BYTES.checked_add(4u64.checked_mul(groups as u64)?)?;
        let entries_at = fanout_at.checked_add(4 * (BUCKETS as u64 + 1))?;
        let expected = entries_at.checked_add(entries.checked_mul(4)?)?;
        if index.metadata().ok()?.len() != expected {
            return None;
        }
        let mut rows = vec![0u8; 4 * groups];
        index.read_exact_at(&mut rows, HEADER_BYTES).ok()?;
        let row_groups = rows
            .chunks_exact(4)
            .map(|r| u32::from_le_bytes([r[0], r[1], r[2], r[3]]))
            .collect();
        let opened = Arc::new(Opened {
            file: index,
            fanout_at,
            entries_at,
            entries,
            row_groups,
        });
        self.opened
            .lock()
            .ok()?
            .insert(file.path.clone(), Arc::clone(&opened));
        Some(opened)
    }

    /// Makes the index of `file` (a Parquet file with a binary `trace_id` column) and keeps it;
    /// returns its entries.
    pub fn build(&self, file: &Path) -> Result<u64, IndexError> {
        let path = self.path(file)?;
        let source = source_of(file)?;
        let (row_groups, fanout, entries) = arrange(file)?;
        let mut bytes = Vec::with_capacity(
            HEADER_BYTES as usize + 4 * (row_groups.len() + fanout.len() + entries.len()),
        );
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&source.0.to_le_bytes());
        bytes.extend_from_slice(&source.1.to_le_bytes());
        bytes.extend_from_slice(&(BLOCK_ROWS as u32).to_le_bytes());
        bytes.extend_from_slice(&(row_groups.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for v in row_groups.iter().chain(&fanout).chain(&entries) {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        // Whole or not at all: a lookup never opens half an index.
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut out = File::create(&tmp).map_err(io_err(&tmp))?;
        out.write_all(&bytes).map_err(io_err(&tmp))?;
        drop(out);
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(entries.len() as u64)
    }
}

/// Calls `f` with each row's number and its id's 32 hash bits, in file order; returns the
/// sizes of the file's row groups.
fn scan_keys(file: &Path, mut f: impl FnMut(usize, u32)) -> Result<Vec<u32>, IndexError> {
    let parquet_err = |source| IndexError::Parquet {
        path: file.to_owned(),
        source,
    };
    let reader = File::open(file).map_err(io_err(file))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(reader).map_err(parquet_err)?;
    let metadata = Arc::clone(builder.metadata());
    let row_groups: Vec<u32> = metadata
        .row_groups()
        .iter()
        .map(|rg| u32::try_from(rg.num_rows()).unwrap_or(u32::MAX))
        .collect();
    let total: usize = row_groups.iter().map(|r| *r as usize).sum();
    if total.div_ceil(BLOCK_ROWS) > 1 << 16 || row_groups.contains(&u32::MAX) {
        return Err(IndexError::TooLarge(file.to_owned()));
    }
    let column = builder
        .schema()
        .fields()
        .iter()
        .position(|f| f.name() == "trace_id" && f.data_type() == &DataType::Binary)
        .ok_or_else(|| IndexError::NoColumn(file.to_owned()))?;
    let mask = ProjectionMask::roots(metadata.file_metadata().schema_descr(), [column]);
    let batches = builder
        .with_projection(mask)
        .with_batch_size(BLOCK_ROWS)
        .build()
        .map_err(parquet_err)?;
    let mut row = 0usize;
    for batch in batches {
        let batch = batch.map_err(|source| IndexError::Arrow {
            path: file.to_owned(),
            source,
        })?;
        let ids = batch.column(0).as_binary::<i32>();
        for i in 0..ids.len() {
            let (bucket, rest) = split(ids.value(i));
            f(row, ((bucket as u32) << 16) | rest);
            row += 1;
        }
    }
    Ok(row_groups)
}

/// The row groups, the fanout and the sorted, distinct entries of `file`'s ids: a counting
/// sort by bucket over two reads of the column, so that only the entries are held (4 bytes a
/// row) rather than the keys as well.
#[allow(clippy::type_complexity)]
fn arrange(file: &Path) -> Result<(Vec<u32>, Vec<u32>, Vec<u32>), IndexError> {
    let mut fanout = vec![0u32; BUCKETS + 1];
    scan_keys(file, |_, key| fanout[(key >> 16) as usize + 1] += 1)?;
    for b in 0..BUCKETS {
        fanout[b + 1] += fanout[b];
    }
    let mut next: Vec<u32> = fanout[..BUCKETS].to_vec();
    let mut entries = vec![0u32; fanout[BUCKETS] as usize];
    let row_groups = scan_keys(file, |row, key| {
        let slot = &mut next[(key >> 16) as usize];
        if let Some(entry) = entries.get_mut(*slot as usize) {
            *entry = (key << 16) | (row / BLOCK_ROWS) as u32;
        }
        *slot += 1;
    })?;
    // Sort and deduplicate each bucket, moving the kept entries down.
    let mut kept = 0usize;
    let mut start = 0usize;
    for b in 0..BUCKETS {
        let end = fanout[b + 1] as usize;
        entries[start..end].sort_unstable();
        fanout[b] = kept as u32;
        let mut last = None;
        for i in start..end {
            let entry = entries[i];
            if last != Some(entry) {
                // kept <= i: the kept entries never overrun the ones still to read.
                entries[kept] = entry;
                kept += 1;
                last = Some(entry);
            }
        }
        start = end;
    }
    fanout[BUCKETS] = kept as u32;
    entries.truncate(kept);
    Ok((row_groups, fanout, entries))
}

/// The row ranges, per row group, of `blocks` (ascending block numbers over the file's rows).
fn rows_of_blocks(row_groups: &[u32], blocks: &[u32]) -> Located {
    let mut scan: Vec<(usize, Vec<Range<usize>>)> = Vec::new();
    let mut group_start = 0usize;
    let mut blocks = blocks.iter().peekable();
    for (group, rows) in row_groups.iter().enumerate() {
        let group_end = group_start + *rows as usize;
        let mut ranges: Vec<Range<usize>> = Vec::new();
        while let Some(block) = blocks.peek() {
            let start = **block as usize * BLOCK_ROWS;
            if start >= group_end {
                break;
            }
            let end = start + BLOCK_ROWS;
            if end > group_start {
                let range = start.max(group_start) - group_start..end.min(group_end) - group_start;
                match ranges.last_mut() {
                    Some(last) if last.end == range.start => last.end = range.end,
                    _ => ranges.push(range),
                }
            }
            if end > group_end {
                // The block runs on into the next row group.
                break;
            }
            blocks.next();
        }
        if !ranges.is_empty() {
            scan.push((group, ranges));
        }
        group_start = group_end;
    }
    Located {
        row_groups: row_groups.len(),
        scan,
        rows: row_groups.iter().map(|r| *r as usize).collect(),
    }
}

/// Keeps the span files of at least [`MIN_FILE_BYTES`] indexed: every few seconds, indexes the
/// ones without an index, newest first. Meanwhile sweeps the indexes of files that are gone.
pub async fn warm(engine: crate::QueryEngine, stop: tokio_util::sync::CancellationToken) {
    let index = engine.trace_index();
    let sweeping = engine
        .summary_store()
        .sweep_every_minute(&[KIND], stop.clone());
    let indexing = async {
        // Files that could not be indexed (too large, unreadable) are not tried again.
        let mut failed: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            }
            let Some(snapshot) = engine.snapshot(lakescope_collector::lake::layout::SPANS) else {
                continue;
            };
            let mut files: Vec<Arc<LakeFile>> = snapshot
                .files
                .iter()
                .filter(|f| {
                    f.size >= MIN_FILE_BYTES && !failed.contains(&f.path) && !index.has(&f.path)
                })
                .cloned()
                .collect();
            files.sort_by_key(|f| std::cmp::Reverse((f.partition_start, f.seq)));
            for file in files {
                if stop.is_cancelled() {
                    break;
                }
                let index = Arc::clone(&index);
                // The task holds the file, so it is not deleted while read.
                let held = Arc::clone(&file);
                match tokio::task::spawn_blocking(move || {
                    let _stage = lakescope_collector::memtag::enter(
                        lakescope_collector::memtag::Stage::TraceIndex,
                    );
                    index.build(&held.path)
                })
                .await
                {
                    Ok(Ok(entries)) => {
                        tracing::debug!(file = %file.path.display(), entries, "trace index made")
                    }
                    Ok(Err(e)) => {
                        tracing::info!(file = %file.path.display(), error = %e, "not indexed by trace");
                        failed.insert(file.path.clone());
                    }
                    Err(e) => tracing::warn!(error = %e, "trace index task"),
                }
            }
        }
    };
    tokio::join!(indexing, sweeping);
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, BinaryArray, Int64Array};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;

    fn id(trace: u64) -> Vec<u8> {
        let mut bytes = trace.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(trace.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
        bytes
    }

    /// 50,000 rows in row groups of 7,000 (so blocks straddle groups); rows `r` holds trace
    /// `r / 3 * 7919 % 6000` (each trace in ~3 runs of 3 rows, far apart).
    fn write_lake_file(path: &Path) -> Vec<u64> {
        let traces: Vec<u64> = (0..50_000u64).map(|r| r / 3 * 7919 % 6000).collect();
        let ids: Vec<Vec<u8>> = traces.iter().map(|t| id(*t)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("trace_id", DataType::Binary, false),
            Field::new("row", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(BinaryArray::from_iter_values(ids.iter())) as ArrayRef,
                Arc::new(Int64Array::from_iter_values(0..50_000)),
            ],
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(7_000))
            .build();
        let mut writer =
            ArrowWriter::try_new(File::create(path).unwrap(), schema, Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        traces
    }

    #[test]
    fn a_lookup_selects_every_row_of_the_trace_and_little_else() {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("spans/2026-12-01T05/f.parquet");
        std::fs::create_dir_all(lake.parent().unwrap()).unwrap();
        let traces = write_lake_file(&lake);
        let index = TraceIndex::new(SummaryStore::new(dir.path()));
        let file = LakeFile::new(lake.clone(), std::fs::metadata(&lake).unwrap().len(), 0, 0);
        assert!(
            index.locate(&file, &[id(1).as_slice()]).is_none(),
            "not built yet"
        );
        let entries = index.build(&lake).unwrap();
        assert!(index.has(&lake));
        // Each (trace, block) pair once: fewer entries than rows, more than traces.
        assert!(entries < 50_000 && entries > 6_000, "{entries}");
        let starts: Vec<usize> = (0..8).map(|g| g * 7_000).collect();
        for trace in [0u64, 1, 17, 4_321, 5_999] {
            let found = index.locate(&file, &[id(trace).as_slice()]).unwrap();
            assert_eq!(found.row_groups, 8);
            assert_eq!(found.rows[7], 1_000);
            let mut selected: Vec<usize> = Vec::new();
            for (group, ranges) in &found.scan {
                for range in ranges {
                    selected.extend(range.clone().map(|row| starts[*group] + row));
                }
            }
            let holding: Vec<usize> = (0..50_000).filter(|r| traces[*r] == trace).collect();
            assert!(!holding.is_empty());
            for row in &holding {
                assert!(selected.contains(row), "trace {trace}, row {row}");
            }
            // Only the blocks of those rows (one false 32-bit match would add one more).
            let blocks: std::collections::BTreeSet<usize> =
                holding.iter().map(|r| r / BLOCK_ROWS).collect();
            assert!(
                selected.len() <= (blocks.len() + 1) * BLOCK_ROWS,
                "trace {trace}"
            );
        }
        // Two ids at once select both traces' rows; an absent id selects nothing.
        let both = index
            .locate(&file, &[id(1).as_slice(), id(2).as_slice()])
            .unwrap();
        assert!(both.scan.len() >= index.locate(&file, &[id(2).as_slice()]).unwrap().scan.len());
        assert!(
            index
                .locate(&file, &[id(999_999).as_slice()])
                .unwrap()
                .scan
                .is_empty()
        );
    }

    #[test]
    fn an_index_of_another_version_of_the_file_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("spans/f.parquet");
        std::fs::create_dir_all(lake.parent().unwrap()).unwrap();
        write_lake_file(&lake);
        let index = TraceIndex::new(SummaryStore::new(dir.path()));
        index.build(&lake).unwrap();
        // Rewritten under the same name (another size): the index no longer describes it.
        std::fs::write(&lake, b"not the same file").unwrap();
        let file = LakeFile::new(lake.clone(), 17, 0, 0);
        assert!(index.locate(&file, &[id(1).as_slice()]).is_none());
        // A truncated index is not used either.
        let fresh = TraceIndex::new(SummaryStore::new(dir.path()));
        write_lake_file(&lake);
        fresh.build(&lake).unwrap();
        let tix = fresh.path(&lake).unwrap();
        let len = std::fs::metadata(&tix).unwrap().len();
        let bytes = std::fs::read(&tix).unwrap();
        std::fs::write(&tix, &bytes[..(len - 4) as usize]).unwrap();
        let file = LakeFile::new(lake.clone(), std::fs::metadata(&lake).unwrap().len(), 0, 0);
        assert!(fresh.locate(&file, &[id(1).as_slice()]).is_none());
        // Nor one whose header claims more than the file holds (no allocation from it).
        let mut damaged = bytes.clone();
        damaged[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&tix, &damaged).unwrap();
        assert!(
            TraceIndex::new(SummaryStore::new(dir.path()))
                .locate(&file, &[id(1).as_slice()])
                .is_none()
        );
        // Swept once its lake file is gone, like the summaries.
        let store = SummaryStore::new(dir.path());
        assert_eq!(store.sweep(KIND).unwrap(), 0);
        std::fs::remove_file(&lake).unwrap();
        assert_eq!(store.sweep(KIND).unwrap(), 1);
        assert!(!tix.exists());
    }

    fn one(range: Range<usize>) -> Vec<Range<usize>> {
        std::iter::once(range).collect()
    }

    #[test]
    fn blocks_map_to_row_ranges_across_row_group_edges() {
        // Groups of 5,000 and 6,000 rows: block 1 (rows 4,096..8,192) straddles both.
        let found = rows_of_blocks(&[5_000, 6_000], &[1, 2]);
        assert_eq!(found.scan, vec![(0, one(4_096..5_000)), (1, one(0..6_000))]);
        assert_eq!(
            rows_of_blocks(&[5_000, 6_000], &[0]).scan,
            vec![(0, one(0..4_096))]
        );
        assert!(rows_of_blocks(&[5_000], &[]).scan.is_empty());
    }
}
