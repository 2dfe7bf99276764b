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

use lakescope_collector::lake::LakeFile;
use lakescope_collector::lake::layout::PARTITION_NANOS;

use crate::engine::{QueryEngine, QueryError};

/// A per-file summary that knows its own size.
pub trait Summary {
    /// Approximate bytes held.
    fn bytes(&self) -> usize;
}

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

/// Keeps the summaries of the files that recent requests read computed ahead of the next request:
/// every few seconds, while a range was asked for in the last [`WARM_FOR`], summarises the files
/// of `table` from `reach_back` before the earliest start asked for on that are not summarised
/// yet, newest first, within half the cache's budget. Meanwhile sweeps the summaries of the
/// `stored` kinds kept on disk (see [`crate::summary_store::SummaryStore::sweep_every_minute`]).
pub async fn warm<T, F, Fut>(
    engine: QueryEngine,
    cache: Arc<SummaryCache<T>>,
    table: &str,
    reach_back: i64,
    stored: &[&'static str],
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
    let store = engine.summary_store().clone();
    let sweeping = store.sweep_every_minute(stored, stop.clone());
    let summarising = async {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
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
