//! The DataFusion session over the lake, with the limits every query runs under.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::object_store::path::Path;
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;
use lakescope_collector::Lake;
use lakescope_collector::lake::{LakeFile, Snapshot, Table};
use lakescope_collector::stats::{QueryLabel, QueryRefusal};
use tokio::sync::Semaphore;

use crate::page_index;
use crate::promql::spanmetrics::MetricRow;
use crate::sketch;
use crate::summaries::SummaryCache;
use crate::summary_store::SummaryStore;
use crate::table::{LakeTable, store_path};
use crate::trace_index::TraceIndex;
use crate::views::edges::EdgeCache;
use crate::views::latency::BucketCache;
use crate::views::rollup::{Rollup, RollupCache};

/// Bounds on every query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// A query running longer is cancelled.
    pub timeout: Duration,
    /// Most rows `POST /api/v1/sql` returns; the rest are cut off and the answer says so.
    pub max_rows: usize,
    /// Most queries running at once; more wait up to [`QUEUE_WAIT`], then are refused (HTTP 503).
    pub max_concurrent: usize,
    /// Memory all running queries may hold together for joins, sorts and aggregations (bytes);
    /// sorts and aggregations spill to disk first, a query that still needs more fails.
    pub memory_bytes: usize,
    /// Memory for the files' Parquet footers and page indexes, kept between queries (bytes).
    pub metadata_cache_bytes: usize,
    /// Memory for the per-file summaries of the service graph, kept between queries (bytes);
    /// 0 joins the spans on every request instead.
    pub graph_cache_bytes: usize,
    /// Memory for the per-file RED rollups of the services overview, operations and series,
    /// kept between queries (bytes); 0 aggregates the spans on every request instead.
    pub rollup_cache_bytes: usize,
}

/// How long a query waits for one of the [`QueryLimits::max_concurrent`] slots.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_rows: 10_000,
            max_concurrent: 8,
            memory_bytes: 1024 * 1024 * 1024,
            metadata_cache_bytes: 256 * 1024 * 1024,
            graph_cache_bytes: 128 * 1024 * 1024,
            rollup_cache_bytes: 128 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query itself is wrong (syntax, unknown column, not allowed).
    #[error("{0}")]
    Invalid(String),
    #[error("query took longer than the limit of {0:?}")]
    Timeout(Duration),
    #[error("query failed: {0}")]
    Execution(String),
    #[error("{running} queries are running, the most allowed at once; retry shortly")]
    Busy { running: usize },
    #[error("the query needs more memory than the limit for queries ({0}); narrow it")]
    Memory(String),
    /// The answer is being prepared in the background (summaries); asking again later works.
    #[error("{0}")]
    Preparing(String),
}

impl QueryError {
    /// An error while parsing or planning: the query is at fault.
    fn planning(e: DataFusionError) -> Self {
        QueryError::Invalid(e.strip_backtrace())
    }

    /// An error while running a planned query: the server's fault when reading the lake failed,
    /// otherwise the query's (a failed cast, a division by zero).
    fn execution(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::IoError(_)
            | DataFusionError::ObjectStore(_)
            | DataFusionError::ParquetError(_)
            | DataFusionError::Internal(_)
            | DataFusionError::External(_) => QueryError::Execution(e.strip_backtrace()),
            DataFusionError::ResourcesExhausted(_) => QueryError::Memory(e.strip_backtrace()),
            _ => QueryError::Invalid(e.strip_backtrace()),
        }
    }
}

/// Rows of a query, cut to a limit.
#[derive(Debug)]
pub struct Rows {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// True when more rows matched than were returned.
    pub truncated: bool,
    pub elapsed: Duration,
}

/// The query side of Lakescope: one DataFusion session with the lake's tables registered.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
    /// The same tables for point lookups (a trace by id): filters are evaluated while decoding
    /// and only matching rows of the other columns are decoded. Scans are slower that way, so
    /// only lookups use it.
    lookup_ctx: SessionContext,
    limits: QueryLimits,
    slots: Arc<Semaphore>,
    pub(crate) runtime: Arc<RuntimeEnv>,
    tables: Vec<Arc<Table>>,
    lake_tables: Vec<(String, Arc<LakeTable>)>,
    /// Per-file summaries of the service graph (see `views::edges`).
    pub(crate) edges: Arc<EdgeCache>,
    /// Per-file RED rollups (see `views::rollup`).
    pub(crate) rollups: Arc<RollupCache>,
    /// Per-file rollups of the span-derived metrics (see `promql::spanmetrics`).
    pub(crate) span_rollups: Arc<SummaryCache<Rollup<MetricRow>>>,
    /// Per-file latency histogram rollups (see `views::latency`).
    pub(crate) latency_rollups: Arc<BucketCache>,
    /// Where per-file summaries are kept on disk.
    summary_store: SummaryStore,
    /// The span files' trace indexes (see `trace_index`).
    trace_index: Arc<TraceIndex>,
    /// The metadata cache as its last pass over it found it: the live files' fingerprint, its
    /// entries and the bytes they hold (see `forget_removed_metadata`).
    metadata_pass: Arc<std::sync::Mutex<Option<(u64, usize, usize)>>>,
}

/// A session over `tables`; with `pushdown`, filters are evaluated while decoding (lookups).
fn session(
    runtime: &Arc<RuntimeEnv>,
    tables: &[(String, Arc<LakeTable>)],
    pushdown: bool,
) -> Result<SessionContext, QueryError> {
    let mut config = SessionConfig::new().with_information_schema(true);
    config.options_mut().execution.parquet.pushdown_filters = pushdown;
    let ctx = SessionContext::new_with_config_rt(config, Arc::clone(runtime));
    for (name, table) in tables {
        ctx.register_table(name.as_str(), Arc::clone(table) as Arc<dyn TableProvider>)
            .map_err(QueryError::planning)?;
    }
    ctx.register_udaf(sketch::latency_sketch(DataType::Int64));
    ctx.register_udf(sketch::sketch_quantile());
    ctx.register_udf(crate::fingerprint::udf());
    ctx.register_udf(crate::text_search::udf());
    Ok(ctx)
}

impl QueryEngine {
    pub fn new(lake: &Lake, limits: QueryLimits) -> Result<Self, QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limits.memory_bytes)))
            .with_metadata_cache_limit(limits.metadata_cache_bytes)
            .build_arc()
            .map_err(QueryError::planning)?;
        let summary_store = SummaryStore::new(lake.data_dir());
        let trace_index = Arc::new(TraceIndex::new(summary_store.clone()));
        // Both sessions share the tables (and so what the tables cache about their files).
        let tables: Vec<(String, Arc<LakeTable>)> = lake
            .tables()
            .into_iter()
            .map(|table| {
                // Only span files are indexed by trace (logs by trace use the bloom filters).
                let index = (table.name() == lakescope_collector::lake::layout::SPANS)
                    .then(|| Arc::clone(&trace_index));
                (
                    table.name().to_owned(),
                    Arc::new(LakeTable::new(table, index)),
                )
            })
            .collect();
        let (ctx, lookup_ctx) = (
            session(&runtime, &tables, false)?,
            session(&runtime, &tables, true)?,
        );
        let slots = Arc::new(Semaphore::new(limits.max_concurrent.max(1)));
        let edges = Arc::new(EdgeCache::new(limits.graph_cache_bytes));
        let rollups = Arc::new(RollupCache::new(limits.rollup_cache_bytes));
        let span_rollups = Arc::new(SummaryCache::new(limits.rollup_cache_bytes));
        let latency_rollups = Arc::new(BucketCache::new(limits.rollup_cache_bytes));
        Ok(Self {
            ctx,
            lookup_ctx,
            limits,
            slots,
            runtime,
            tables: lake.tables(),
            lake_tables: tables,
            edges,
            rollups,
            span_rollups,
            latency_rollups,
            summary_store,
            trace_index,
            metadata_pass: Arc::new(std::sync::Mutex::new(None)),
        })
    }

    /// The current snapshot of a table.
    pub(crate) fn snapshot(&self, table: &str) -> Option<Snapshot> {
        self.tables
            .iter()
            .find(|t| t.name() == table)
            .map(|t| t.snapshot())
    }

    pub(crate) fn summary_store(&self) -> &SummaryStore {
        &self.summary_store
    }

    pub(crate) fn trace_index(&self) -> Arc<TraceIndex> {
        Arc::clone(&self.trace_index)
    }

    /// Bytes held by every kind of per-file rollup.
    pub(crate) fn rollup_bytes(&self) -> usize {
        self.rollups.bytes() + self.span_rollups.bytes() + self.latency_rollups.bytes()
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Runs one of Lakescope's own queries with typed parameters (`$1`, `$2`, ...).
    pub async fn query(&self, sql: &str, params: Vec<ScalarValue>) -> Result<Rows, QueryError> {
        self.run(
            &self.ctx,
            sql,
            params,
            SQLOptions::new(),
            usize::MAX,
            "view",
        )
        .await
    }

    /// Like [`Self::query`], for queries whose filter selects a handful of rows (a trace by id).
    pub async fn lookup(&self, sql: &str, params: Vec<ScalarValue>) -> Result<Rows, QueryError> {
        self.run(
            &self.lookup_ctx,
            sql,
            params,
            SQLOptions::new(),
            usize::MAX,
            "view",
        )
        .await
    }

    /// Runs a user's query: read-only (no DDL, DML or session statements; no file or URL
    /// tables), cut to [`QueryLimits::max_rows`] and [`QueryLimits::timeout`].
    pub async fn user_query(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<Rows, QueryError> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        self.run(&self.ctx, sql, params, options, self.limits.max_rows, "sql")
            .await
    }

    /// One of Lakescope's own queries over only `files` and `batches` of `table`, as the table
    /// `table`; with `lookup`, filters are evaluated while decoding (see [`Self::lookup`]).
    pub(crate) async fn query_pinned(
        &self,
        table: &str,
        files: Vec<Arc<LakeFile>>,
        batches: Vec<RecordBatch>,
        lookup: bool,
        sql: &str,
    ) -> Result<Rows, QueryError> {
        let (name, lake_table) = self
            .lake_tables
            .iter()
            .find(|(name, _)| name == table)
            .ok_or_else(|| QueryError::Execution(format!("no table {table}")))?;
        let pinned = Arc::new(LakeTable::pinned(
            Arc::clone(lake_table.table()),
            lake_table.trace_probe(),
            lake_table.trace_index(),
            files,
            batches,
        ));
        let ctx = session(&self.runtime, &[(name.clone(), pinned)], lookup)?;
        self.run(&ctx, sql, Vec::new(), SQLOptions::new(), usize::MAX, "view")
            .await
    }

    /// Drops the cached metadata of files no longer in the lake; returns the bytes the cache
    /// holds. Sizing the entries walks every cached page index (a quarter of a lookup's CPU when
    /// done after every query over 130 M spans), so the pass runs only when the live files or the
    /// cache's entries changed since the last one.
    fn forget_removed_metadata(&self) -> usize {
        use std::hash::BuildHasher;
        let live: HashSet<Path> = self
            .tables
            .iter()
            .flat_map(|t| {
                t.files()
                    .iter()
                    .map(|f| Path::from(store_path(f)))
                    .collect::<Vec<_>>()
            })
            .collect();
        let hasher =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        // Order-independent: the set's own iteration order is not stable.
        let fingerprint = live
            .iter()
            .fold(live.len() as u64, |acc, path| acc ^ hasher.hash_one(path));
        let cache = self.runtime.cache_manager.get_file_metadata_cache();
        let mut pass = self.metadata_pass.lock().unwrap_or_else(|e| e.into_inner());
        match *pass {
            Some((seen, entries, held)) if seen == fingerprint && entries == cache.len() => held,
            _ => {
                let held = page_index::forget_removed(cache.as_ref(), &live);
                *pass = Some((fingerprint, cache.len(), held));
                held
            }
        }
    }

    async fn run(
        &self,
        ctx: &SessionContext,
        sql: &str,
        params: Vec<ScalarValue>,
        options: SQLOptions,
        max_rows: usize,
        kind: &'static str,
    ) -> Result<Rows, QueryError> {
        self.admitted(kind, self.run_admitted(ctx, sql, params, options, max_rows))
            .await
    }

    /// Every stored row of one trace, read without SQL (see [`crate::trace_lookup`]): the
    /// columns a span is rebuilt from, in no particular order. Admitted, timed and counted as
    /// one of Lakescope's own queries.
    pub(crate) async fn trace_rows(&self, id: &[u8]) -> Result<Rows, QueryError> {
        let work = async {
            let started = Instant::now();
            let (_, table) = self
                .lake_tables
                .iter()
                .find(|(name, _)| name == lakescope_collector::lake::layout::SPANS)
                .ok_or_else(|| QueryError::Execution("no spans table".into()))?;
            let read = crate::trace_lookup::trace_rows(table, &self.runtime, id);
            let (schema, batches) = tokio::time::timeout(self.limits.timeout, read)
                .await
                .map_err(|_| QueryError::Timeout(self.limits.timeout))??;
            Ok(Rows {
                schema,
                batches,
                truncated: false,
                elapsed: started.elapsed(),
            })
        };
        self.admitted("view", work).await
    }

    /// Runs `work` in one of the [`QueryLimits::max_concurrent`] slots, counted in the query
    /// metrics as `kind`.
    async fn admitted(
        &self,
        kind: &'static str,
        work: impl std::future::Future<Output = Result<Rows, QueryError>>,
    ) -> Result<Rows, QueryError> {
        let stats = lakescope_collector::stats::stats();
        let refused = |reason| {
            stats
                .queries_refused
                .get_or_create(&QueryRefusal { kind, reason })
                .inc();
        };
        let _slot = match tokio::time::timeout(QUEUE_WAIT, self.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                refused("busy");
                return Err(QueryError::Busy {
                    running: self.limits.max_concurrent,
                });
            }
        };
        stats.queries_running.inc();
        let result = work.await;
        stats.queries_running.dec();
        stats
            .query_metadata_cache_bytes
            .set(self.forget_removed_metadata() as i64);
        match &result {
            Ok(rows) => stats
                .query_seconds
                .get_or_create(&QueryLabel { kind })
                .observe(rows.elapsed.as_secs_f64()),
            Err(QueryError::Timeout(_)) => refused("timeout"),
            Err(QueryError::Memory(_)) => refused("memory"),
            Err(_) => {}
        }
        result
    }

    async fn run_admitted(
        &self,
        ctx: &SessionContext,
        sql: &str,
        params: Vec<ScalarValue>,
        options: SQLOptions,
        max_rows: usize,
    ) -> Result<Rows, QueryError> {
        let started = Instant::now();
        tracing::debug!(sql, ?params, "query");
        let work = async {
            let mut frame = ctx
                .sql_with_options(sql, options)
                .await
                .map_err(QueryError::planning)?;
            if !params.is_empty() {
                frame = frame
                    .with_param_values(params)
                    .map_err(QueryError::planning)?;
            }
            let plan = frame
                .create_physical_plan()
                .await
                .map_err(QueryError::planning)?;
            let schema = plan.schema();
            let mut stream = execute_stream(plan, ctx.task_ctx()).map_err(QueryError::execution)?;
            let mut batches = Vec::new();
            let mut rows = 0usize;
            let mut truncated = false;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(QueryError::execution)?;
                let room = max_rows - rows;
                if batch.num_rows() > room {
                    batches.push(batch.slice(0, room));
                    truncated = true;
                    break;
                }
                rows += batch.num_rows();
                batches.push(batch);
            }
            Ok::<_, QueryError>((schema, batches, truncated))
        };
        let (schema, batches, truncated) =
            tokio::time::timeout(self.limits.timeout, work)
                .await
                .map_err(|_| QueryError::Timeout(self.limits.timeout))??;
        let schema = plain_schema(&schema);
        let batches = batches
            .iter()
            .map(|b| plain_batch(b, &schema))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rows {
            schema,
            batches,
            truncated,
            elapsed: started.elapsed(),
        })
    }
}

/// `t` with view types (how tables are read, see [`crate::table::query_schema`]) replaced by
/// the plain ones, at any depth: what views and API clients read.
fn plain_type(t: &DataType) -> DataType {
    let field =
        |f: &FieldRef| Arc::new(f.as_ref().clone().with_data_type(plain_type(f.data_type())));
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| Arc::new(f.as_ref().clone().with_data_type(plain_type(f.data_type()))))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn plain_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, QueryError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| QueryError::Execution(format!("result types: {e}")))?;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| QueryError::Execution(format!("result types: {e}")))
}

/// A UTC nanosecond timestamp parameter.
pub fn timestamp(nanos: i64) -> ScalarValue {
    ScalarValue::TimestampNanosecond(Some(nanos), Some("UTC".into()))
}
