//! Where files live under the data directory.
//!
//! ```text
//! <data-dir>/
//!   wal/                              write-ahead log (see `wal`)
//!   tmp/                              files being written; emptied on start
//!   spans/date=YYYY-MM-DD/hour=HH/<seq>-<n>.parquet
//!   summaries/                        the query engine's per-file summaries (not the lake's)
//! ```
//!
//! `<seq>` is the highest write-ahead-log sequence number the file's flush covers (20 digits), `<n>`
//! tells apart the files of one flush. A future tenant level goes above the table directories
//! (`tenant=<id>/spans/...`), so the partition keys below it stay as they are.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Nanoseconds in one partition (an hour).
pub const PARTITION_NANOS: i64 = 3_600_000_000_000;

/// The table directories, by table name.
pub const SPANS: &str = "spans";

pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wal")
}

pub fn tmp_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tmp")
}

pub fn table_dir(data_dir: &Path, table: &str) -> PathBuf {
    data_dir.join(table)
}

/// The hour partition a timestamp falls into, as the start of that hour in Unix nanoseconds.
pub fn partition_of(unix_nanos: i64) -> i64 {
    unix_nanos.div_euclid(PARTITION_NANOS) * PARTITION_NANOS
}

/// The directory of one hour partition, relative to the table directory.
pub fn partition_dir(partition_start: i64) -> PathBuf {
    let t: DateTime<Utc> = DateTime::from_timestamp_nanos(partition_start);
    PathBuf::from(format!(
        "date={:04}-{:02}-{:02}",
        t.year(),
        t.month(),
        t.day()
    ))
    .join(format!("hour={:02}", t.hour()))
}

/// The file name of part `n` of the flush that ends at WAL sequence `seq`.
pub fn file_name(seq: u64, n: usize) -> String {
    format!("{seq:020}-{n}.parquet")
}

/// The name of a compacted file holding the rows of the partition's files with sequence numbers
/// `first..=last`. It sorts after the flush files it replaces; on start, it makes those files
/// (and smaller compacted ones inside its range) redundant.
pub fn compacted_name(first: u64, last: u64) -> String {
    format!("{last:020}-c{first:020}.parquet")
}

/// The first sequence number a file covers: its own for a flush file, `first` for a compacted
/// file named by [`compacted_name`].
pub fn first_seq(path: &Path, seq: u64) -> u64 {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".parquet"))
        .and_then(|n| n.split_once("-c"))
        .and_then(|(_, first)| first.parse().ok())
        .unwrap_or(seq)
}

/// Parses a data file's path back into (partition start, flush sequence number).
pub fn parse_file(table_dir: &Path, path: &Path) -> Option<(i64, u64)> {
    let rel = path.strip_prefix(table_dir).ok()?;
    let mut parts = rel.iter().map(|p| p.to_str());
    let date = parts.next()??.strip_prefix("date=")?;
    let hour = parts.next()??.strip_prefix("hour=")?;
    let name = parts.next()??;
    if parts.next().is_some() {
        return None;
    }
    let seq = name
        .strip_suffix(".parquet")?
        .split('-')
        .next()?
        .parse()
        .ok()?;
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let hour: u32 = hour.parse().ok()?;
    let start = day
        .and_hms_opt(hour, 0, 0)?
        .and_utc()
        .timestamp_nanos_opt()?;
    Some((start, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_lands_in_its_hour_directory() {
        // 2026-11-24T20:15:30Z
        let t = 1_795_551_330_000_000_000;
        let p = partition_of(t);
        assert_eq!(partition_dir(p), PathBuf::from("date=2026-11-24/hour=20"));
        assert!(p <= t && t < p + PARTITION_NANOS);
    }

    #[test]
    fn file_paths_parse_back() {
        let table = Path::new("/data/spans");
        let p = partition_of(1_795_551_330_000_000_000);
        let path = table.join(partition_dir(p)).join(file_name(42, 3));
        assert_eq!(parse_file(table, &path), Some((p, 42)));
        assert_eq!(parse_file(table, &table.join("junk.parquet")), None);
        let compacted = table.join(partition_dir(p)).join(compacted_name(7, 42));
        assert_eq!(parse_file(table, &compacted), Some((p, 42)));
        assert_eq!(first_seq(&compacted, 42), 7);
        assert_eq!(first_seq(&path, 42), 42);
    }
}
