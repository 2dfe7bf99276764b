//! Retention: files older than a table's age limit, and the oldest files beyond its size limit,
//! are removed — atomically for queries (see [`Table::remove_files`]) and logged.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::layout::PARTITION_NANOS;
use super::table::LakeFile;
use super::{Lake, Table};

/// How much of one table to keep; `None` keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Files whose every row is older than this are removed (whole hour partitions).
    pub max_age: Option<Duration>,
    /// The oldest files are removed while the table's files are larger than this.
    pub max_bytes: Option<u64>,
}

/// The files `policy` removes at `now` (Unix ns): those of hour partitions that ended before
/// `now - max_age`, then the oldest (by partition, then flush) until the rest fit in `max_bytes`.
pub fn expired(files: &[Arc<LakeFile>], policy: RetentionPolicy, now: i64) -> Vec<PathBuf> {
    let mut by_age: Vec<&Arc<LakeFile>> = files.iter().collect();
    by_age.sort_by_key(|f| (f.partition_start, f.seq));
    let cutoff = policy
        .max_age
        .map(|age| now.saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX)));
    let mut doomed = Vec::new();
    let mut total: u64 = by_age.iter().map(|f| f.size).sum();
    for f in by_age {
        let too_old =
            cutoff.is_some_and(|c| f.partition_start.saturating_add(PARTITION_NANOS) <= c);
        let too_big = policy.max_bytes.is_some_and(|max| total > max);
        // In age order, a file kept on both counts means every later one is kept too.
        if !too_old && !too_big {
            break;
        }
        total -= f.size;
        doomed.push(f.path.clone());
    }
    doomed
}

/// Applies `policy` to `table` once; returns the files and bytes removed.
pub fn apply(table: &Table, policy: RetentionPolicy, now: i64) -> (usize, u64) {
    let doomed: HashSet<PathBuf> = expired(&table.files(), policy, now).into_iter().collect();
    if doomed.is_empty() {
        return (0, 0);
    }
    let (files, bytes) = table.remove_files(&doomed);
    tracing::info!(
        table = table.name(),
        files,
        bytes,
        max_age = ?policy.max_age,
        max_bytes = ?policy.max_bytes,
        "retention removed files"
    );
    let stats = crate::stats::stats();
    let label = crate::stats::TableLabel {
        table: table.name(),
    };
    stats
        .retention_files
        .get_or_create(&label)
        .inc_by(files as u64);
    stats.retention_bytes.get_or_create(&label).inc_by(bytes);
    (files, bytes)
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Applies each table's policy at start and then every `every`, until `stop`.
pub async fn run(
    lake: Arc<Lake>,
    policies: Vec<(&'static str, RetentionPolicy)>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        for table in lake.tables() {
            if let Some((_, policy)) = policies.iter().find(|(name, _)| *name == table.name()) {
                apply(&table, *policy, now_nanos());
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = PARTITION_NANOS;

    fn file(hour: i64, seq: u64, size: u64) -> Arc<LakeFile> {
        Arc::new(LakeFile::new(
            PathBuf::from(format!("/lake/{hour}-{seq}.parquet")),
            size,
            hour * HOUR,
            seq,
        ))
    }

    fn names(paths: Vec<PathBuf>) -> Vec<String> {
        paths
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn age_removes_whole_partitions_that_ended_before_the_cutoff() {
        let files = vec![
            file(10, 1, 5),
            file(11, 2, 5),
            file(11, 3, 5),
            file(12, 4, 5),
        ];
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(3600)),
            max_bytes: None,
        };
        // now = 12:30: the cutoff is 11:30, so only hour 10 (ended 11:00) is all older.
        let now = 12 * HOUR + HOUR / 2;
        assert_eq!(names(expired(&files, policy, now)), ["10-1.parquet"]);
        // now = 13:00: hour 11 ended exactly at the cutoff.
        assert_eq!(
            names(expired(&files, policy, 13 * HOUR)),
            ["10-1.parquet", "11-2.parquet", "11-3.parquet"]
        );
    }

    #[test]
    fn size_removes_the_oldest_until_the_rest_fits() {
        let files = vec![
            file(12, 4, 30),
            file(10, 1, 10),
            file(11, 3, 20),
            file(11, 2, 20),
        ];
        let policy = RetentionPolicy {
            max_age: None,
            max_bytes: Some(50),
        };
        // 80 bytes: drop 10-1 (70 left), then 11-2 (50 left) — fits.
        assert_eq!(
            names(expired(&files, policy, 0)),
            ["10-1.parquet", "11-2.parquet"]
        );
        let none = RetentionPolicy::default();
        assert!(expired(&files, none, i64::MAX).is_empty());
    }

    #[test]
    fn removed_files_are_deleted_when_the_last_reader_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        std::fs::write(&path, b"x").unwrap();
        let table = Table::new(
            &crate::schema::spans::TABLE,
            vec![LakeFile::new(path.clone(), 1, 0, 1)],
        );
        let reader = table.snapshot();
        let doomed: HashSet<PathBuf> = [path.clone()].into();
        assert_eq!(table.remove_files(&doomed), (1, 1));
        assert!(
            table.snapshot().files.is_empty(),
            "new queries do not see it"
        );
        assert!(path.exists(), "a running query still reads it");
        drop(reader);
        assert!(!path.exists(), "deleted after the last reader");
    }
}
