//! Per-file summaries kept on disk, so that a restarted server answers from them at once instead
//! of summarising its files again (see `views::rollup`).
//!
//! ```text
//! <data-dir>/summaries/<kind>/<the lake file's path under the data directory>.arrow
//! ```
//!
//! Each is an Arrow IPC file holding the summarising query's answer over one lake file. Its
//! schema's metadata records what it was made from — the lake file's size and modification time
//! and the query's text — and a summary whose record differs is ignored and made again, so an
//! older build's summaries, or a file rewritten under the same name, are never misread. The
//! directory is a cache: deleting it loses nothing but the time to summarise again. Summaries of
//! files that are gone (merged, expired) are removed by [`SummaryStore::sweep`].

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::arrow::record_batch::RecordBatch;

/// The directory under the data directory.
pub const DIR: &str = "summaries";

const SOURCE: &str = "lakescope.source";
const QUERY: &str = "lakescope.query";
const SUFFIX: &str = "arrow";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Arrow { path: PathBuf, source: ArrowError },
    #[error("{0} is not under the data directory")]
    Outside(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn arrow_err(path: &Path) -> impl FnOnce(ArrowError) -> StoreError + '_ {
    move |source| StoreError::Arrow {
        path: path.to_owned(),
        source,
    }
}

/// The summaries of one data directory.
#[derive(Debug, Clone)]
pub struct SummaryStore {
    data_dir: PathBuf,
}

impl SummaryStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
        }
    }

    fn kind_dir(&self, kind: &str) -> PathBuf {
        self.data_dir.join(DIR).join(kind)
    }

    /// Where the summary of kind `kind` of the lake file `file` is kept.
    fn path(&self, kind: &str, file: &Path) -> Result<PathBuf, StoreError> {
        self.path_of(kind, file, SUFFIX)
    }

    /// Where a file of kind `kind` made from the lake file `file` is kept, with its own suffix
    /// (kinds that are not Arrow IPC, such as `trace_index`, keep their files here too and are
    /// swept alike).
    pub fn path_of(&self, kind: &str, file: &Path, suffix: &str) -> Result<PathBuf, StoreError> {
        let relative = file
            .strip_prefix(&self.data_dir)
            .map_err(|_| StoreError::Outside(file.to_owned()))?;
        let mut path = self.kind_dir(kind).join(relative).into_os_string();
        path.push(".");
        path.push(suffix);
        Ok(path.into())
    }

    /// Whether a summary of `file` is kept (it may still turn out stale when read).
    pub fn has(&self, kind: &str, file: &Path) -> bool {
        self.path(kind, file).is_ok_and(|p| p.exists())
    }

    /// The kept answer of `query` over `file`, if there is one made from this very file by this
    /// very query.
    pub async fn read(
        &self,
        kind: &str,
        file: &Path,
        query: &str,
    ) -> Result<Option<Vec<RecordBatch>>, StoreError> {
        Ok(self
            .read_checked(kind, file, query, true)
            .await?
            .map(|(_, batches)| batches))
    }

    /// The kept answer of `query` over `file` and its schema, also when `file` is gone from the
    /// lake (merged away: its summary was checked against it when written), but not when a
    /// file of that name exists and is another one.
    pub async fn read_kept(
        &self,
        kind: &str,
        file: &Path,
        query: &str,
    ) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>, StoreError> {
        self.read_checked(
            kind,
            file,
            query,
            tokio::fs::try_exists(file).await.unwrap_or(true),
        )
        .await
    }

    async fn read_checked(
        &self,
        kind: &str,
        file: &Path,
        query: &str,
        check_source: bool,
    ) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>, StoreError> {
        let path = self.path(kind, file)?;
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let reader = FileReader::try_new(Cursor::new(bytes), None).map_err(arrow_err(&path))?;
        let schema = reader.schema();
        let metadata = schema.metadata();
        let source_differs = check_source && metadata.get(SOURCE) != Some(&source_of(file).await?);
        if source_differs || metadata.get(QUERY).map(String::as_str) != Some(query) {
            return Ok(None);
        }
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(arrow_err(&path))?;
        Ok(Some((schema, batches)))
    }

    /// Keeps `batches`, the answer of `query` over `file`.
    pub async fn write(
        &self,
        kind: &str,
        file: &Path,
        query: &str,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), StoreError> {
        let path = self.path(kind, file)?;
        let metadata = HashMap::from([
            (SOURCE.to_owned(), source_of(file).await?),
            (QUERY.to_owned(), query.to_owned()),
        ]);
        let schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), metadata));
        let mut bytes = Vec::new();
        {
            let mut writer = FileWriter::try_new(&mut bytes, &schema).map_err(arrow_err(&path))?;
            for batch in batches {
                let batch = batch
                    .clone()
                    .with_schema(Arc::clone(&schema))
                    .map_err(arrow_err(&path))?;
                writer.write(&batch).map_err(arrow_err(&path))?;
            }
            writer.finish().map_err(arrow_err(&path))?;
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io_err(parent))?;
        }
        // Whole or not at all: a reader never sees half a file.
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        tokio::fs::write(&tmp, &bytes).await.map_err(io_err(&tmp))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(io_err(&path))?;
        Ok(())
    }

    /// Sweeps the summaries of `kinds` (see [`Self::sweep`]) now and then every minute, until
    /// `stop`.
    pub async fn sweep_every_minute(
        &self,
        kinds: &[&'static str],
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            for &kind in kinds {
                let store = self.clone();
                match tokio::task::spawn_blocking(move || store.sweep(kind)).await {
                    Ok(Ok(removed)) if removed > 0 => {
                        tracing::debug!(kind, removed, "stored summaries swept")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "sweeping stored summaries"),
                    _ => {}
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            }
        }
    }

    /// Removes the summaries of kind `kind` (and half-written ones) whose lake file is gone;
    /// returns how many.
    pub fn sweep(&self, kind: &str) -> Result<usize, StoreError> {
        let root = self.kind_dir(kind);
        let mut removed = 0;
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&dir)(e)),
            };
            for entry in entries {
                let path = entry.map_err(io_err(&dir))?.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let Ok(relative) = path.strip_prefix(&root) else {
                    continue;
                };
                let name = relative.to_string_lossy();
                // Whatever the kind's suffix: the lake file's name is what precedes it.
                let lake_file = name
                    .strip_suffix(".tmp")
                    .unwrap_or(&name)
                    .rsplit_once('.')
                    .map(|(f, _)| self.data_dir.join(f));
                if lake_file.is_none_or(|f| !f.exists()) {
                    std::fs::remove_file(&path).map_err(io_err(&path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// What a summary of `file` records of it: its size and modification time.
async fn source_of(file: &Path) -> Result<String, StoreError> {
    let meta = tokio::fs::metadata(file).await.map_err(io_err(file))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{} {modified}", meta.len()))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field};

    use super::*;

    fn batch(values: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    #[tokio::test]
    async fn a_summary_is_read_back_only_for_the_same_file_and_query_and_swept_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SummaryStore::new(dir.path());
        let file = dir.path().join("spans/date=2026-12-01/hour=02/1-0.parquet");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"0123456789").unwrap();
        let rows = batch(vec![3, 1, 4]);
        assert!(!store.has("red", &file));
        assert!(store.read("red", &file, "q").await.unwrap().is_none());
        store
            .write(
                "red",
                &file,
                "q",
                &rows.schema(),
                std::slice::from_ref(&rows),
            )
            .await
            .unwrap();
        assert!(store.has("red", &file));
        let read = store.read("red", &file, "q").await.unwrap().unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].columns(), rows.columns());
        // Another query's, another kind's: not this one.
        assert!(store.read("red", &file, "q2").await.unwrap().is_none());
        assert!(store.read("metrics", &file, "q").await.unwrap().is_none());
        // Rewritten under the same name: stale.
        std::fs::write(&file, b"01234567890").unwrap();
        assert!(store.read("red", &file, "q").await.unwrap().is_none());
        // A file outside the data directory has no summary.
        assert!(
            store
                .write(
                    "red",
                    Path::new("/elsewhere.parquet"),
                    "q",
                    &rows.schema(),
                    &[]
                )
                .await
                .is_err()
        );

        // Gone with its file; another file's stays.
        let other = file.with_file_name("2-0.parquet");
        std::fs::write(&other, b"x").unwrap();
        store
            .write("red", &other, "q", &rows.schema(), &[])
            .await
            .unwrap();
        assert_eq!(store.sweep("red").unwrap(), 0);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(store.sweep("red").unwrap(), 1);
        assert!(!store.has("red", &file));
        assert!(store.has("red", &other));
        let empty = store.read("red", &other, "q").await.unwrap().unwrap();
        assert!(empty.is_empty());
    }
}
