//! What a view keeps about each lake file between requests, so that it does not read the file's
//! spans again: a file never changes once written, so its summary never goes stale; it only goes
//! away with the file (merged or expired).
//!
//! [`SummaryCache`] holds one kind of summary per file, the least recently used dropped beyond a
//! byte budget, and remembers which ranges were asked for lately, so that [`warm`] can summarise
//! the files those ranges read (a new flush file, a merged one) before the next request needs
//! them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::prelude::{SessionConfig, SessionContext};
use lakescope_collector::lake::LakeFile;
use lakescope_collector::lake::layout::{self, PARTITION_NANOS};
use lakescope_collector::lake::writer::INPUTS_KEY;

use crate::engine::{QueryEngine, QueryError};

/// A per-file summary that knows its own size.
pub trait Summary {
    /// Approximate bytes held.
    fn bytes(&self) -> usize;
}

/// Summarises a file new in the lake when that is cheap (see [`warm`]).
pub type Follow = Arc<
    dyn Fn(
            QueryEngine,
            Arc<LakeFile>,
        ) -> futures::future::BoxFuture<'static, Result<(), QueryError>>
        + Send
        + Sync,
>;

/// How long after a request [`warm`] keeps summarising the files of its range.
pub const WARM_FOR: i64 = 15 * 60 * 1_000_000_000;

/// Per-file summaries kept between requests, least recently used dropped beyond a budget.
#[derive(Debug)]
pub struct SummaryCache<T> {
    budget: usize,
    clock: AtomicU64,
    entries: Mutex<HashMap<PathBuf, (Arc<T>, u64)>>,
    /// Starts of the ranges asked for, with when they were asked (Unix ns), for [`warm`].
    asked: Mutex<Vec<(i64, i64)>>,
}

impl<T: Summary> SummaryCache<T> {
    pub fn new(budget: usize) -> Self {
        // Nothing asked for yet: no summaries are made (nor their CPU spent) until a view is.
        Self {
            budget,
            clock: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
            asked: Mutex::new(Vec::new()),
        }
    }

    /// Notes that a range starting at `start` was asked for now.
    pub fn asked(&self, start: i64) {
        let now = crate::time_range::now_nanos();
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        asked.retain(|(_, at)| now - at < WARM_FOR);
        asked.push((start, now));
    }

    /// The earliest start of the ranges asked for lately, if any.
    pub fn wanted(&self) -> Option<i64> {
        let now = crate::time_range::now_nanos();
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        asked.retain(|(_, at)| now - at < WARM_FOR);
        asked.iter().map(|(start, _)| *start).min()
    }

    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    pub fn get(&self, path: &PathBuf) -> Option<Arc<T>> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get_mut(path).map(|(summary, used)| {
            *used = tick;
            Arc::clone(summary)
        })
    }

    pub fn put(&self, path: PathBuf, summary: Arc<T>) {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(path, (summary, tick));
        let mut held: usize = entries.values().map(|(s, _)| s.bytes()).sum();
        while held > self.budget {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            if let Some((gone, _)) = entries.remove(&oldest) {
                held -= gone.bytes();
            }
        }
    }

    /// Drops the summaries of files no longer in the lake; returns the bytes still held.
    pub fn retain(&self, live: &HashSet<PathBuf>) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|path, _| live.contains(path));
        entries.values().map(|(s, _)| s.bytes()).sum()
    }

    pub fn bytes(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.values().map(|(s, _)| s.bytes()).sum()
    }
}

/// What [`warm`] keeps summarised.
pub struct Warming<'a> {
    /// The table whose files are summarised.
    pub table: &'a str,
    /// How far before the earliest start asked for files are summarised (ns).
    pub reach_back: i64,
    /// The kinds of summaries kept on disk, swept with the files.
    pub stored: &'a [&'static str],
    /// Handed every file new in the lake, asked for or not (see [`warm`]).
    pub follow: Option<Follow>,
}

/// Keeps the summaries of the files that recent requests read computed ahead of the next request:
/// every few seconds, while a range was asked for in the last [`WARM_FOR`], summarises the files
/// of `table` from `reach_back` before the earliest start asked for on that are not summarised
/// yet, newest first, within half the cache's budget. Meanwhile sweeps the summaries of the
/// `stored` kinds kept on disk (see [`crate::summary_store::SummaryStore::sweep_every_minute`]).
/// With `follow`, also hands it every file new in the lake, asked for or not, newest first: a
/// flush file is small to summarise, and a merged file's summary can be combined from its
/// inputs' before they are swept, so the first request over a range finds its files summarised.
pub async fn warm<T, F, Fut>(
    engine: QueryEngine,
    cache: Arc<SummaryCache<T>>,
    warming: Warming<'_>,
    stop: tokio_util::sync::CancellationToken,
    summarise: F,
) where
    T: Summary,
    F: Fn(QueryEngine, Arc<LakeFile>) -> Fut,
    Fut: Future<Output = Result<Arc<T>, QueryError>>,
{
    if !cache.enabled() {
        return;
    }
    let Warming {
        table,
        reach_back,
        stored,
        follow,
    } = warming;
    let store = engine.summary_store().clone();
    let sweeping = store.sweep_every_minute(stored, stop.clone());
    let summarising = async {
        let mut followed: HashSet<PathBuf> = HashSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            }
            if let (Some(follow), Some(snapshot)) = (&follow, engine.snapshot(table)) {
                let live: HashSet<&PathBuf> = snapshot.files.iter().map(|f| &f.path).collect();
                followed.retain(|p| live.contains(p));
                let mut new: Vec<&Arc<LakeFile>> = snapshot
                    .files
                    .iter()
                    .filter(|f| !followed.contains(&f.path))
                    .collect();
                new.sort_by_key(|f| std::cmp::Reverse((f.partition_start, f.seq)));
                for file in new {
                    if stop.is_cancelled() {
                        break;
                    }
                    if let Err(e) = follow(engine.clone(), Arc::clone(file)).await {
                        tracing::debug!(file = %file.path.display(), error = %e, "new file's summary");
                    }
                    followed.insert(file.path.clone());
                }
            }
            let (Some(from), Some(snapshot)) = (cache.wanted(), engine.snapshot(table)) else {
                continue;
            };
            let from = from.saturating_sub(reach_back);
            let mut files: Vec<&Arc<LakeFile>> = snapshot
                .files
                .iter()
                .filter(|f| f.partition_start + PARTITION_NANOS > from)
                .collect();
            files.sort_by_key(|f| std::cmp::Reverse((f.partition_start, f.seq)));
            for file in files {
                if stop.is_cancelled() || cache.bytes() > cache.budget / 2 {
                    break;
                }
                if cache.get(&file.path).is_none()
                    && let Err(e) = summarise(engine.clone(), Arc::clone(file)).await
                {
                    tracing::debug!(file = %file.path.display(), error = %e, "file summary");
                }
            }
        }
    };
    tokio::join!(summarising, sweeping);
}

/// The files a merged lake file was merged from, as its footer names them (see
/// [`lakescope_collector::lake::writer::INPUTS_KEY`]); `None` for a flush file, or a merged file
/// written before the names were recorded.
pub async fn merged_inputs(file: &LakeFile) -> Option<Vec<PathBuf>> {
    if layout::first_seq(&file.path, file.seq) == file.seq {
        return None;
    }
    let path = file.path.clone();
    let names = tokio::task::spawn_blocking(move || {
        let reader = SerializedFileReader::new(std::fs::File::open(&path).ok()?).ok()?;
        reader
            .metadata()
            .file_metadata()
            .key_value_metadata()?
            .iter()
            .find(|kv| kv.key == INPUTS_KEY)?
            .value
            .clone()
    })
    .await
    .ok()??;
    let dir = file.path.parent()?;
    Some(names.split(',').map(|name| dir.join(name)).collect())
}

/// One summary from several files' summaries (`parts`, each the answer of one summarising
/// query with this `schema`): the rows regrouped by the `keys` columns, counts summed and
/// latency sketches merged — what the summarising query over all of those files' rows answers.
pub async fn combine(
    keys: &[&str],
    schema: &SchemaRef,
    parts: Vec<RecordBatch>,
) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let name = field.name();
            if keys.contains(&name.as_str()) {
                return Ok(format!("\"{name}\""));
            }
            match field.data_type() {
                DataType::Binary => Ok(format!("sketch_merge(\"{name}\") AS \"{name}\"")),
                DataType::Int64 | DataType::UInt64 | DataType::Float64 => {
                    Ok(format!("sum(\"{name}\") AS \"{name}\""))
                }
                other => Err(QueryError::Execution(format!(
                    "a summary's column {name} of type {other} cannot be combined"
                ))),
            }
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    let group: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    let sql = format!(
        "SELECT {} FROM parts GROUP BY {}",
        columns.join(", "),
        group.join(", ")
    );
    let failed = |e: datafusion::error::DataFusionError| QueryError::Execution(e.strip_backtrace());
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    ctx.register_udaf(crate::sketch::sketch_merge());
    // Without the metadata each stored part's schema carries (its own source).
    let plain = Arc::new(Schema::new(schema.fields().clone()));
    let parts = parts
        .into_iter()
        .map(|part| RecordBatch::try_new(Arc::clone(&plain), part.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| QueryError::Execution(e.to_string()))?;
    let parts = MemTable::try_new(plain, vec![parts]).map_err(failed)?;
    ctx.register_table("parts", Arc::new(parts))
        .map_err(failed)?;
    let frame = ctx.sql(&sql).await.map_err(failed)?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    Ok((schema, frame.collect().await.map_err(failed)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sized(usize);
    impl Summary for Sized {
        fn bytes(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn the_cache_drops_the_least_recently_used_beyond_its_budget_and_removed_files() {
        let cache = SummaryCache::new(250);
        let (a, b, c) = (PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c"));
        cache.put(a.clone(), Arc::new(Sized(100)));
        cache.put(b.clone(), Arc::new(Sized(100)));
        assert!(cache.get(&a).is_some()); // a is now more recent than b
        cache.put(c.clone(), Arc::new(Sized(100)));
        assert!(cache.get(&b).is_none(), "b was the least recently used");
        assert!(cache.get(&a).is_some() && cache.get(&c).is_some());
        assert_eq!(cache.bytes(), 200);
        let live: HashSet<PathBuf> = [c.clone()].into_iter().collect();
        assert_eq!(cache.retain(&live), 100);
        assert!(cache.get(&a).is_none());
    }
}
