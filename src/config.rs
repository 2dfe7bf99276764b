//! Command-line and environment configuration. Every flag is documented in `--help` and in the
//! README; each has an environment variable of the same name in upper case, prefixed
//! `LAKESCOPE_`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lakescope_collector::lake::retention::RetentionPolicy;

#[derive(Debug, Parser)]
#[command(name = "lakescope", version, about = "OpenTelemetry traces in, Parquet on disk, answers from DataFusion", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive OTLP, store it in the lake and serve the dashboard and API.
    Serve(ServeConfig),
    /// `serve`, plus a simulated microservice fleet sending traces to it.
    Demo(DemoConfig),
    /// Send the demo fleet's traffic flat out to a server and report throughput.
    Loadgen(crate::loadgen::LoadgenConfig),
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Directory of the lake (Parquet files) and the write-ahead log.
    #[arg(long, env = "LAKESCOPE_DATA_DIR", default_value = "./lakescope-data")]
    pub data_dir: PathBuf,

    /// Address of the OTLP/gRPC receiver (port 0 picks a free port).
    #[arg(long, env = "LAKESCOPE_OTLP_GRPC", default_value = "127.0.0.1:4317")]
    pub otlp_grpc: SocketAddr,

    /// Address of the OTLP/HTTP receiver (`POST /v1/traces`).
    #[arg(long, env = "LAKESCOPE_OTLP_HTTP", default_value = "127.0.0.1:4318")]
    pub otlp_http: SocketAddr,

    /// Address of the dashboard and the JSON API.
    #[arg(long, env = "LAKESCOPE_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,

    /// Flush buffered data to Parquet once the oldest of it is this old.
    #[arg(long, env = "LAKESCOPE_FLUSH_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub flush_interval: Duration,

    /// Flush once the buffers hold this many bytes of Arrow data.
    #[arg(long, env = "LAKESCOPE_FLUSH_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub flush_bytes: usize,

    /// Largest OTLP request body, compressed or not (bigger: HTTP 413 / gRPC RESOURCE_EXHAUSTED).
    #[arg(long, env = "LAKESCOPE_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// Most attributes on a span, event, link, resource or scope; spans over it are rejected.
    #[arg(long, env = "LAKESCOPE_MAX_ATTRIBUTES", default_value_t = 1024)]
    pub max_attributes: usize,

    /// Most events, and most links, on one span; spans over it are rejected.
    #[arg(long, env = "LAKESCOPE_MAX_EVENTS_OR_LINKS", default_value_t = 1024)]
    pub max_events_or_links: usize,

    /// Most bytes one request's records may repeat between them: each record stores its
    /// resource and scope, each metric data point its metric's name, description, unit and
    /// metadata. Beyond it the request is refused whole (HTTP 413 / gRPC RESOURCE_EXHAUSTED).
    #[arg(long, env = "LAKESCOPE_MAX_REPEATED_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub max_repeated_bytes: usize,

    /// Most records (spans, log records, metric data points) in one OTLP request, counted before
    /// it is decoded: each costs a few hundred bytes of memory once decoded, however small its
    /// encoding. Beyond it the request is refused whole (HTTP 413 / gRPC RESOURCE_EXHAUSTED).
    #[arg(long, env = "LAKESCOPE_MAX_REQUEST_RECORDS", default_value_t = 256 * 1024)]
    pub max_request_records: usize,

    /// A query running longer than this is cancelled.
    #[arg(long, env = "LAKESCOPE_QUERY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub query_timeout: Duration,

    /// Directory of your own dashboard files (`*.json`); default `<data-dir>/dashboards`.
    #[arg(long, env = "LAKESCOPE_DASHBOARDS_DIR")]
    pub dashboards_dir: Option<PathBuf>,

    /// Most rows `POST /api/v1/sql` returns.
    #[arg(long, env = "LAKESCOPE_SQL_MAX_ROWS", default_value_t = 10_000)]
    pub sql_max_rows: usize,

    /// Most bytes of acknowledged data waiting for a flush (all signals); while the buffers hold
    /// this much, OTLP requests are refused as retryable (HTTP 503 + Retry-After, gRPC
    /// UNAVAILABLE + RetryInfo). Keep it above --flush-bytes.
    #[arg(long, env = "LAKESCOPE_MAX_BUFFER_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_buffer_bytes: usize,

    /// Resident memory (bytes) under which memory the server frees is kept for three seconds to
    /// be reused, sparing the kernel's page faults on fresh memory; at or over it, freed memory
    /// goes back to the system at once. 0: always at once. Ignored when MIMALLOC_PURGE_DELAY
    /// is set.
    #[arg(long, env = "LAKESCOPE_KEEP_FREED_MEMORY_BELOW", default_value_t = 512 * 1024 * 1024)]
    pub keep_freed_memory_below: u64,

    /// Free bytes to keep on the data directory's file system; with less free, OTLP requests are
    /// refused as retryable (HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo) so that what
    /// was acknowledged can still be written to Parquet and merged. Keep it above
    /// --max-buffer-bytes. 0 turns the check off.
    #[arg(long, env = "LAKESCOPE_MIN_FREE_DISK", default_value_t = 1024 * 1024 * 1024)]
    pub min_free_disk: u64,

    /// Most queries running at once; more wait up to 5 s, then get HTTP 503.
    #[arg(long, env = "LAKESCOPE_MAX_QUERIES", default_value_t = 8)]
    pub max_queries: usize,

    /// Memory all running queries may use together for joins, sorts and aggregations (bytes);
    /// sorts and aggregations spill to disk beyond it, other queries fail with HTTP 422.
    #[arg(long, env = "LAKESCOPE_QUERY_MEMORY", default_value_t = 1024 * 1024 * 1024)]
    pub query_memory: usize,

    /// Memory for the Parquet footers and page indexes of the lake's files (bytes), read once per
    /// file and kept for every later query; beyond it, the least recently used are read again.
    #[arg(long, env = "LAKESCOPE_QUERY_METADATA_CACHE", default_value_t = 256 * 1024 * 1024)]
    pub query_metadata_cache: usize,

    /// Memory for per-file summaries of the service graph (bytes): each file's share is computed
    /// once and kept; beyond it, the least recently used are computed again. 0 joins the spans
    /// on every dependency-graph request instead.
    #[arg(long, env = "LAKESCOPE_QUERY_GRAPH_CACHE", default_value_t = 128 * 1024 * 1024)]
    pub query_graph_cache: usize,

    /// Memory for per-file RED rollups (bytes): per 15-second slot, service and operation, the
    /// requests, errors and latency sketch that the services overview, a service's operations and
    /// its series sum instead of aggregating every span again; beyond it, the least recently used
    /// are computed again. 0 aggregates the spans on every request instead.
    #[arg(long, env = "LAKESCOPE_QUERY_ROLLUP_CACHE", default_value_t = 128 * 1024 * 1024)]
    pub query_rollup_cache: usize,

    /// Keep spans this long (whole hour partitions are removed once all older); 0 keeps them.
    #[arg(long, env = "LAKESCOPE_RETENTION_SPANS", default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention_spans: Duration,

    /// Keep log records this long; 0 keeps them.
    #[arg(long, env = "LAKESCOPE_RETENTION_LOGS", default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention_logs: Duration,

    /// Keep metric points this long; 0 keeps them.
    #[arg(long, env = "LAKESCOPE_RETENTION_METRICS", default_value = "30d", value_parser = humantime::parse_duration)]
    pub retention_metrics: Duration,

    /// Most bytes of span files; the oldest are removed beyond it. 0: no size limit.
    #[arg(long, env = "LAKESCOPE_MAX_BYTES_SPANS", default_value_t = 0)]
    pub max_bytes_spans: u64,

    /// Most bytes of log files; 0: no size limit.
    #[arg(long, env = "LAKESCOPE_MAX_BYTES_LOGS", default_value_t = 0)]
    pub max_bytes_logs: u64,

    /// Most bytes of metric files; 0: no size limit.
    #[arg(long, env = "LAKESCOPE_MAX_BYTES_METRICS", default_value_t = 0)]
    pub max_bytes_metrics: u64,

    /// How often retention runs (also once at start).
    #[arg(long, env = "LAKESCOPE_RETENTION_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub retention_interval: Duration,

    /// Merge an hour partition's files once its hour ended this long ago (and again when late
    /// data adds files).
    #[arg(long, env = "LAKESCOPE_COMPACTION_DELAY", default_value = "5m", value_parser = humantime::parse_duration)]
    pub compaction_delay: Duration,

    /// In the hour still being written, merge this many consecutive flush files into one (the
    /// merged files are merged again once the hour has ended); 0 (or 1) turns it off.
    #[arg(long, env = "LAKESCOPE_COMPACTION_LIVE_FILES", default_value_t = 10)]
    pub compaction_live_files: usize,

    /// Most bytes of Parquet one merge reads; an hour with more data keeps several merged
    /// files. Larger merges peaked higher in memory (docs/operations.md); 0 merges nothing.
    #[arg(long, env = "LAKESCOPE_COMPACTION_MAX_INPUT_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub compaction_max_input_bytes: u64,

    /// Most files one merge reads (at least 2): a merge holds a batch or two of each input, so
    /// this bounds its memory; more files are merged in several rounds.
    #[arg(long, env = "LAKESCOPE_COMPACTION_MAX_INPUT_FILES", default_value_t = 32,
        value_parser = clap::value_parser!(u64).range(2..=4096))]
    pub compaction_max_input_files: u64,

    /// How often compaction looks for partitions to merge (at once again after a round that
    /// merged something).
    #[arg(long, env = "LAKESCOPE_COMPACTION_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub compaction_interval: Duration,

    /// On SIGTERM, how long open connections get to finish before the final flush.
    #[arg(long, env = "LAKESCOPE_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Directory of Prometheus rule files (`*.yml`, `*.yaml`); default `dashboards/rules` when
    /// it exists, else the built-in default rules.
    #[arg(long, env = "LAKESCOPE_RULES_DIR")]
    pub rules_dir: Option<PathBuf>,

    /// Evaluation interval of rule groups that set none.
    #[arg(long, env = "LAKESCOPE_RULE_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub rule_interval: Duration,

    /// Alertmanager base URL (`http://host:9093`) to send alerts to; repeat or comma-separate
    /// for several.
    #[arg(
        long = "alertmanager-url",
        env = "LAKESCOPE_ALERTMANAGER_URLS",
        value_delimiter = ','
    )]
    pub alertmanager_urls: Vec<String>,

    /// URL that receives alerts as `{"alerts": [...]}` JSON POSTs; repeat or comma-separate.
    #[arg(
        long = "alert-webhook-url",
        env = "LAKESCOPE_ALERT_WEBHOOK_URLS",
        value_delimiter = ','
    )]
    pub alert_webhook_urls: Vec<String>,

    /// The URL users reach this server's dashboard at, for the links (`generatorURL`) in the
    /// alerts it sends; default `http://<the bound --http address>`.
    #[arg(long, env = "LAKESCOPE_EXTERNAL_URL")]
    pub external_url: Option<String>,

    /// How often a firing alert is sent again.
    #[arg(long, env = "LAKESCOPE_ALERT_RESEND_DELAY", default_value = "1m", value_parser = humantime::parse_duration)]
    pub alert_resend_delay: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct DemoConfig {
    #[command(flatten)]
    pub serve: ServeConfig,

    /// Traces per second the simulated fleet sends (about ten spans each).
    #[arg(long, env = "LAKESCOPE_DEMO_RATE", default_value_t = 20.0)]
    pub rate: f64,
}

impl ServeConfig {
    /// Each table's retention; zero values mean "no limit".
    pub fn retention(&self) -> Vec<(&'static str, RetentionPolicy)> {
        let policy = |age: Duration, bytes: u64| RetentionPolicy {
            max_age: (!age.is_zero()).then_some(age),
            max_bytes: (bytes > 0).then_some(bytes),
        };
        vec![
            ("spans", policy(self.retention_spans, self.max_bytes_spans)),
            ("logs", policy(self.retention_logs, self.max_bytes_logs)),
            (
                "metrics",
                policy(self.retention_metrics, self.max_bytes_metrics),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<ServeConfig, clap::Error> {
        let mut all = vec!["lakescope", "serve"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all)?.command {
            Command::Serve(config) => Ok(config),
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn merge_limits_default_and_refuse_a_merge_of_fewer_than_two_files() {
        let config = serve(&[]).unwrap();
        assert_eq!(config.compaction_max_input_bytes, 1 << 30);
        assert_eq!(config.compaction_max_input_files, 32);
        assert!(serve(&["--compaction-max-input-files", "1"]).is_err());
        assert_eq!(
            serve(&["--compaction-max-input-files", "8"])
                .unwrap()
                .compaction_max_input_files,
            8
        );
    }
}
