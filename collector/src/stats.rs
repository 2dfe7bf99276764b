//! Lakescope's own metrics, served at `/metrics` in the Prometheus text format. Counters and
//! histograms are updated where things happen; gauges of state (buffers, files, the log) are
//! read when scraped, by [`refresh`].

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::lake::Lake;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Receive {
    pub signal: &'static str,
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Refusal {
    pub signal: &'static str,
    pub protocol: &'static str,
    /// `overloaded`, `disk_low`, `unavailable`, `shutting_down`, `too_large`, `invalid` or
    /// `internal`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    pub table: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabel {
    /// `view` (Lakescope's own queries) or `sql` (`POST /api/v1/sql`).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryRefusal {
    pub kind: &'static str,
    /// `busy`, `timeout` or `memory`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceLookupLabel {
    /// `index` (the file's trace index) or `bloom` (its bloom filters).
    pub via: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SummaryLabel {
    /// `red` or `spanmetrics`.
    pub kind: &'static str,
    /// `spans` (the file's spans aggregated) or `inputs` (a merged file's inputs' summaries
    /// combined).
    pub from: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric Lakescope exports about itself.
pub struct Stats {
    registry: Registry,
    pub records_accepted: Family<Receive, Counter>,
    pub records_rejected: Family<Receive, Counter>,
    pub requests_refused: Family<Refusal, Counter>,
    pub flush_seconds: Family<TableLabel, Histogram, fn() -> Histogram>,
    pub flushed_rows: Family<TableLabel, Counter>,
    pub flush_failures: Family<TableLabel, Counter>,
    pub retention_files: Family<TableLabel, Counter>,
    pub compaction_seconds: Family<TableLabel, Histogram, fn() -> Histogram>,
    pub compacted_files: Family<TableLabel, Counter>,
    pub compaction_failures: Family<TableLabel, Counter>,
    pub retention_bytes: Family<TableLabel, Counter>,
    pub buffer_bytes: Family<TableLabel, Gauge>,
    pub buffer_rows: Family<TableLabel, Gauge>,
    pub files: Family<TableLabel, Gauge>,
    pub file_bytes: Family<TableLabel, Gauge>,
    pub wal_bytes: Gauge,
    pub buffer_limit_bytes: Gauge,
    pub disk_free_bytes: Gauge,
    pub resident_memory_bytes: Gauge,
    pub freed_memory_kept: Gauge,
    pub query_seconds: Family<QueryLabel, Histogram, fn() -> Histogram>,
    pub queries_refused: Family<QueryRefusal, Counter>,
    pub queries_running: Gauge,
    pub query_metadata_cache_bytes: Gauge,
    pub query_graph_cache_bytes: Gauge,
    pub query_rollup_cache_bytes: Gauge,
    pub query_trace_lookup_files: Family<TraceLookupLabel, Counter>,
    pub query_file_summaries: Family<SummaryLabel, Counter>,
}

impl Stats {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("lakescope");
        let stats = Self {
            records_accepted: Family::default(),
            records_rejected: Family::default(),
            requests_refused: Family::default(),
            flush_seconds: Family::new_with_constructor(seconds_histogram),
            flushed_rows: Family::default(),
            flush_failures: Family::default(),
            retention_files: Family::default(),
            compaction_seconds: Family::new_with_constructor(seconds_histogram),
            compacted_files: Family::default(),
            compaction_failures: Family::default(),
            retention_bytes: Family::default(),
            buffer_bytes: Family::default(),
            buffer_rows: Family::default(),
            files: Family::default(),
            file_bytes: Family::default(),
            wal_bytes: Gauge::default(),
            buffer_limit_bytes: Gauge::default(),
            disk_free_bytes: Gauge::default(),
            resident_memory_bytes: Gauge::default(),
            freed_memory_kept: Gauge::default(),
            query_seconds: Family::new_with_constructor(seconds_histogram),
            queries_refused: Family::default(),
            queries_running: Gauge::default(),
            query_metadata_cache_bytes: Gauge::default(),
            query_graph_cache_bytes: Gauge::default(),
            query_rollup_cache_bytes: Gauge::default(),
            query_trace_lookup_files: Family::default(),
            query_file_summaries: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "records_accepted",
            "Spans, log records or metric points acknowledged, by signal and protocol",
            stats.records_accepted.clone(),
        );
        r.register(
            "records_rejected",
            "Invalid records dropped from otherwise accepted requests (reported in partial_success)",
            stats.records_rejected.clone(),
        );
        r.register(
            "requests_refused",
            "OTLP requests refused whole, by reason; overloaded, disk_low and unavailable ones are retryable",
            stats.requests_refused.clone(),
        );
        r.register(
            "flush_duration_seconds",
            "Time to write one table's flush to Parquet",
            stats.flush_seconds.clone(),
        );
        r.register(
            "flushed_rows",
            "Rows written to Parquet by flushes",
            stats.flushed_rows.clone(),
        );
        r.register(
            "flush_failures",
            "Flushes that failed (the rows stay buffered and in the log, and are retried)",
            stats.flush_failures.clone(),
        );
        r.register(
            "compaction_duration_seconds",
            "Time to merge one partition's files",
            stats.compaction_seconds.clone(),
        );
        r.register(
            "compacted_files",
            "Files merged into compacted files",
            stats.compacted_files.clone(),
        );
        r.register(
            "compaction_failures",
            "Merges that failed (retried later; the inputs stay)",
            stats.compaction_failures.clone(),
        );
        r.register(
            "retention_removed_files",
            "Parquet files removed by retention (age or size)",
            stats.retention_files.clone(),
        );
        r.register(
            "retention_removed_bytes",
            "Bytes of Parquet files removed by retention",
            stats.retention_bytes.clone(),
        );
        r.register(
            "buffer_bytes",
            "Arrow bytes acknowledged but not yet in Parquet files (incl. a running flush)",
            stats.buffer_bytes.clone(),
        );
        r.register(
            "buffer_rows",
            "Rows acknowledged but not yet in Parquet files",
            stats.buffer_rows.clone(),
        );
        r.register(
            "buffer_limit_bytes",
            "Buffered bytes beyond which OTLP requests are refused as overloaded",
            stats.buffer_limit_bytes.clone(),
        );
        r.register(
            "disk_free_bytes",
            "Free bytes on the data directory's file system, as last sampled for the --min-free-disk check",
            stats.disk_free_bytes.clone(),
        );
        r.register(
            "resident_memory_bytes",
            "Resident memory of the process, sampled every 100 ms (0 while --keep-freed-memory-below is 0)",
            stats.resident_memory_bytes.clone(),
        );
        r.register(
            "freed_memory_kept",
            "1 while freed memory is kept for three seconds to be reused (resident memory under --keep-freed-memory-below), 0 while it goes back to the system at once",
            stats.freed_memory_kept.clone(),
        );
        r.register("files", "Live Parquet files", stats.files.clone());
        r.register(
            "file_bytes",
            "Bytes of live Parquet files",
            stats.file_bytes.clone(),
        );
        r.register(
            "wal_bytes",
            "Bytes of write-ahead log segments on disk",
            stats.wal_bytes.clone(),
        );
        r.register(
            "query_duration_seconds",
            "Time to answer a query, by kind",
            stats.query_seconds.clone(),
        );
        r.register(
            "queries_refused",
            "Queries refused or cancelled: too many running, over time or over memory",
            stats.queries_refused.clone(),
        );
        r.register(
            "queries_running",
            "Queries running now",
            stats.queries_running.clone(),
        );
        r.register(
            "query_metadata_cache_bytes",
            "Bytes of Parquet footers and page indexes kept for queries (--query-metadata-cache)",
            stats.query_metadata_cache_bytes.clone(),
        );
        r.register(
            "query_graph_cache_bytes",
            "Bytes of per-file service-graph summaries kept for queries (--query-graph-cache)",
            stats.query_graph_cache_bytes.clone(),
        );
        r.register(
            "query_rollup_cache_bytes",
            "Bytes of per-file RED rollups kept for queries (--query-rollup-cache)",
            stats.query_rollup_cache_bytes.clone(),
        );
        r.register(
            "query_trace_lookup_files",
            "Lake files narrowed for a lookup by trace id, by a span file's trace index or by bloom filters",
            stats.query_trace_lookup_files.clone(),
        );
        r.register(
            "query_file_summaries",
            "Per-file rollups made, by kind and from what: a file's spans or a merged file's inputs' rollups",
            stats.query_file_summaries.clone(),
        );
        Self { registry, ..stats }
    }
}

static STATS: LazyLock<Stats> = LazyLock::new(Stats::new);

/// The process's metrics.
pub fn stats() -> &'static Stats {
    &STATS
}

/// Reads the state gauges from the lake.
pub fn refresh(lake: &Lake) {
    let stats = stats();
    for table in lake.tables() {
        let label = TableLabel {
            table: table.name(),
        };
        let (bytes, rows) = table.buffered();
        stats.buffer_bytes.get_or_create(&label).set(bytes as i64);
        stats.buffer_rows.get_or_create(&label).set(rows as i64);
        let (files, file_bytes) = table.file_stats();
        stats.files.get_or_create(&label).set(files as i64);
        stats
            .file_bytes
            .get_or_create(&label)
            .set(file_bytes as i64);
    }
    let wal = crate::lake::layout::wal_dir(lake.data_dir());
    stats.wal_bytes.set(crate::wal::dir_bytes(&wal) as i64);
}

/// The metrics in the Prometheus text exposition format.
pub fn encode() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &stats().registry);
    out
}
