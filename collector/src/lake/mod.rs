//! The lake: Parquet files under the data directory plus the recent, not-yet-flushed batches.

pub mod compaction;
pub mod flusher;
pub mod layout;
pub mod migrate;
mod order;
pub mod retention;
pub mod table;
pub mod take;
pub mod writer;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use table::{LakeFile, Snapshot, Table};

use crate::schema::{self, TableSpec};

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Wal(#[from] crate::wal::WalError),
    #[error(
        "{path} says lake format {found}; this Lakescope reads format {supported} and older: \
         run a newer Lakescope on this data directory"
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("upgrading {path} to lake format {format}: {source}", format = migrate::FORMAT)]
    Upgrade {
        path: PathBuf,
        source: writer::WriteError,
    },
    #[error(
        "{path} is locked: another Lakescope is running on this data directory (stop it, or \
         give this one another --data-dir)"
    )]
    InUse { path: PathBuf },
}

/// The file whose lock a running Lakescope holds on its data directory.
pub const LOCK_FILE: &str = "LOCK";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LakeError + '_ {
    move |source| LakeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The tables of one data directory.
#[derive(Debug)]
pub struct Lake {
    data_dir: PathBuf,
    /// Held (an exclusive lock on [`LOCK_FILE`]) for as long as the lake is open: opening
    /// clears `tmp/` and the files of unfinished flushes, which would destroy a running
    /// server's merge output and its newest flushes.
    _lock: fs::File,
    pub spans: Arc<Table>,
    pub logs: Arc<Table>,
    pub metrics: Arc<Table>,
}

impl Lake {
    /// Opens the data directory after whatever a crash left: removes half-written files from
    /// `tmp/`, and the files of a flush whose WAL checkpoint was never written (their rows are
    /// still in the log and will be replayed).
    pub fn open(data_dir: &Path) -> Result<Self, LakeError> {
        fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
        let lock_path = data_dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(LakeError::InUse { path: lock_path }),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let tmp = layout::tmp_dir(data_dir);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        let checkpoint = crate::wal::read_checkpoint(&layout::wal_dir(data_dir))?;
        let recorded = migrate::recorded(data_dir);
        if let Some(found) = recorded.filter(|f| *f > migrate::FORMAT) {
            // Files of a newer format would be misread, or "upgraded" into an older one.
            return Err(LakeError::NewerFormat {
                path: data_dir.join(migrate::FORMAT_FILE),
                found,
                supported: migrate::FORMAT,
            });
        }
        let upgrade = recorded.is_none_or(|f| f < migrate::FORMAT);
        let open = |spec: &'static TableSpec| -> Result<Arc<Table>, LakeError> {
            let mut files = recover_table(data_dir, spec.name, checkpoint)?;
            if upgrade {
                files = upgrade_files(data_dir, spec, files)?;
            }
            tracing::info!(table = spec.name, files = files.len(), "table opened");
            Ok(Arc::new(Table::new(spec, files)))
        };
        let lake = Self {
            _lock: lock,
            data_dir: data_dir.to_owned(),
            spans: open(&schema::spans::TABLE)?,
            logs: open(&schema::logs::TABLE)?,
            metrics: open(&schema::metrics::TABLE)?,
        };
        if upgrade {
            migrate::record(data_dir).map_err(|source| LakeError::Upgrade {
                path: data_dir.join(migrate::FORMAT_FILE),
                source,
            })?;
        }
        tracing::info!(data_dir = %data_dir.display(), checkpoint, "lake opened");
        Ok(lake)
    }

    /// Every table, in a fixed order.
    pub fn tables(&self) -> Vec<Arc<Table>> {
        vec![
            Arc::clone(&self.spans),
            Arc::clone(&self.logs),
            Arc::clone(&self.metrics),
        ]
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// Rewrites the files of an older lake format (see [`migrate`]); returns the table's files.
fn upgrade_files(
    data_dir: &Path,
    spec: &TableSpec,
    files: Vec<LakeFile>,
) -> Result<Vec<LakeFile>, LakeError> {
    let mut upgraded = 0;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let err = |source| LakeError::Upgrade {
            path: f.path.clone(),
            source,
        };
        if migrate::upgrade_file(data_dir, spec, &f).map_err(err)? {
            upgraded += 1;
            let size = fs::metadata(&f.path).map_err(io_err(&f.path))?.len();
            out.push(LakeFile::new(
                f.path.clone(),
                size,
                f.partition_start,
                f.seq,
            ));
        } else {
            out.push(f);
        }
    }
    if upgraded > 0 {
        tracing::info!(
            table = spec.name,
            files = upgraded,
            format = migrate::FORMAT,
            "files upgraded to the current lake format"
        );
    }
    Ok(out)
}

/// Lists a table's committed files, deleting those beyond the checkpoint.
fn recover_table(
    data_dir: &Path,
    table: &str,
    checkpoint: u64,
) -> Result<Vec<LakeFile>, LakeError> {
    let table_dir = layout::table_dir(data_dir, table);
    let mut files = Vec::new();
    if !table_dir.exists() {
        return Ok(files);
    }
    let mut stack = vec![table_dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(io_err(&path))?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let Some((partition_start, seq)) = layout::parse_file(&table_dir, &path) else {
                tracing::warn!(path = %path.display(), "file not in the lake's layout; ignored");
                continue;
            };
            if seq > checkpoint {
                tracing::warn!(path = %path.display(), seq, checkpoint, "removing a file of an unfinished flush; its rows are replayed from the write-ahead log");
                fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            files.push(LakeFile::new(path, meta.len(), partition_start, seq));
        }
    }
    files.sort_by_key(|f| (f.partition_start, f.seq));
    // A compaction that committed its file but crashed before deleting its inputs: the inputs
    // (files of the same partition whose range lies inside the compacted file's) are redundant.
    let ranges: Vec<(i64, u64, u64, PathBuf)> = files
        .iter()
        .map(|f| {
            (
                f.partition_start,
                layout::first_seq(&f.path, f.seq),
                f.seq,
                f.path.clone(),
            )
        })
        // Only compacted files cover others: a flush file's range is its own sequence number.
        .filter(|(_, first, last, _)| first < last)
        .collect();
    let covered = |f: &LakeFile| {
        let first = layout::first_seq(&f.path, f.seq);
        ranges.iter().any(|(p, lo, hi, path)| {
            *p == f.partition_start
                && *path != f.path
                && *lo <= first
                && f.seq <= *hi
                && (lo, hi) != (&first, &f.seq)
        })
    };
    let mut kept = Vec::with_capacity(files.len());
    for f in files {
        if covered(&f) {
            tracing::warn!(path = %f.path.display(), "removing a file already merged into a compacted file");
            fs::remove_file(&f.path).map_err(io_err(&f.path))?;
        } else {
            kept.push(f);
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second open of a data directory in use is refused before it touches anything, and the
    /// directory opens again once the first is closed.
    #[test]
    fn a_data_directory_is_opened_by_one_lake_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lake::open(dir.path()).unwrap();
        let leftover = layout::tmp_dir(dir.path()).join("merge-in-progress.parquet");
        fs::create_dir_all(leftover.parent().unwrap()).unwrap();
        fs::write(&leftover, b"a running merge's output").unwrap();
        let Err(error) = Lake::open(dir.path()) else {
            panic!("a data directory in use was opened twice");
        };
        assert!(matches!(error, LakeError::InUse { .. }), "{error}");
        assert!(error.to_string().contains("another Lakescope"), "{error}");
        assert!(leftover.exists(), "the refused open cleared tmp/");
        drop(first);
        Lake::open(dir.path()).unwrap();
        assert!(!leftover.exists());
    }
}
