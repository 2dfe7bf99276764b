//! A lake table as a DataFusion table: its committed Parquet files and its recent batches, read
//! from one [`Snapshot`] per scan so that every row is seen exactly once.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::parquet::arrow::arrow_reader::RowSelection;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{self as phys, CastExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use lakescope_collector::lake::layout::PARTITION_NANOS;
use lakescope_collector::lake::{LakeFile, Snapshot, Table};
use lakescope_collector::schema::DerivedEnd;

use crate::bloom_probe::BloomProbe;
use crate::page_index::PageIndexedReaderFactory;
use crate::trace_index::TraceIndex;

/// The table's schema as queries see it: top-level text and binary columns as view types
/// (`Utf8View`, `BinaryView`). The Parquet reader builds views straight from the pages, and
/// filters, joins, repartitions and aggregations then move 16-byte views instead of copying the
/// bytes (short strings such as a status, a kind or a span id are kept in the view itself).
/// Results are turned back into plain types by the engine.
pub fn query_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Utf8 => DataType::Utf8View,
                DataType::Binary => DataType::BinaryView,
                other => other.clone(),
            };
            f.as_ref().clone().with_data_type(ty)
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `schema` with the table's derived column (see [`DerivedEnd`]) after the column it starts
/// from, typed like it: what the table offers to queries.
fn with_derived(schema: &SchemaRef, derived: Option<DerivedEnd>) -> SchemaRef {
    let Some(d) = derived else {
        return Arc::clone(schema);
    };
    let Ok(at) = schema.index_of(d.start) else {
        return Arc::clone(schema);
    };
    let start = schema.field(at);
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let end = Field::new(d.name, start.data_type().clone(), start.is_nullable());
    fields.insert(at + 1, Arc::new(end));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// What a scan reads for `projection` (indices into `offered`, the stored columns plus the
/// derived one): the stored columns to read (indices into `stored`), and, when the derived
/// column is asked for, the expressions that make the asked columns from what is read.
type ReadPlan = (
    Option<Vec<usize>>,
    Option<Vec<(Arc<dyn PhysicalExpr>, String)>>,
);

fn read_plan(
    stored: &SchemaRef,
    offered: &SchemaRef,
    derived: Option<DerivedEnd>,
    projection: Option<&Vec<usize>>,
) -> Result<ReadPlan> {
    let Some(d) = derived.filter(|d| offered.index_of(d.name).is_ok()) else {
        return Ok((projection.cloned(), None));
    };
    let asked: Vec<usize> = projection
        .cloned()
        .unwrap_or_else(|| (0..offered.fields().len()).collect());
    let name = |i: usize| offered.field(i).name().as_str();
    let mut read: Vec<usize> = asked
        .iter()
        .filter(|&&i| name(i) != d.name)
        .map(|&i| stored.index_of(name(i)))
        .collect::<std::result::Result<_, _>>()?;
    if asked.iter().all(|&i| name(i) != d.name) {
        return Ok((Some(read), None));
    }
    for column in [d.start, d.duration] {
        let i = stored.index_of(column)?;
        if !read.contains(&i) {
            read.push(i);
        }
    }
    let column = |wanted: &str| -> Result<Arc<dyn PhysicalExpr>> {
        let at = read
            .iter()
            .position(|&i| stored.field(i).name() == wanted)
            .ok_or_else(|| DataFusionError::Internal(format!("{wanted} is not read")))?;
        Ok(Arc::new(phys::Column::new(wanted, at)))
    };
    let end_type = offered.field_with_name(d.name)?.data_type().clone();
    let sum = phys::BinaryExpr::new(
        Arc::new(CastExpr::new(column(d.start)?, DataType::Int64, None)),
        Operator::Plus,
        column(d.duration)?,
    );
    let end: Arc<dyn PhysicalExpr> = Arc::new(CastExpr::new(Arc::new(sum), end_type, None));
    let exprs = asked
        .iter()
        .map(|&i| {
            let n = name(i);
            let expr = if n == d.name {
                Arc::clone(&end)
            } else {
                column(n)?
            };
            Ok((expr, n.to_owned()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((Some(read), Some(exprs)))
}

/// Casts the recent buffer's batches to [`query_schema`].
fn to_query_schema(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
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
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The column looked up by id (trace by id, a search's traces).
const TRACE_ID: &str = "trace_id";

/// A [`Table`] of the lake, readable by DataFusion.
#[derive(Debug)]
pub struct LakeTable {
    table: Arc<Table>,
    /// The column whose value decides a row's hour partition.
    time_column: &'static str,
    /// A column offered to queries but not stored (spans' `end_time`).
    derived_end: Option<DerivedEnd>,
    /// For tables with a `trace_id` bloom filter: which row groups may hold a trace.
    trace_probe: Option<Arc<BloomProbe>>,
    /// For the spans: which rows may hold a trace, in the files that have an index.
    trace_index: Option<Arc<TraceIndex>>,
    /// When set, the only files and batches this table reads (one file's share of a view).
    pinned: Option<Snapshot>,
}

impl LakeTable {
    pub fn new(table: Arc<Table>, trace_index: Option<Arc<TraceIndex>>) -> Self {
        let spec = table.spec();
        let trace_probe = spec
            .bloom
            .contains(&TRACE_ID)
            .then(|| Arc::new(BloomProbe::new(TRACE_ID)));
        Self {
            time_column: spec.time_column,
            derived_end: spec.derived_end,
            table,
            trace_probe,
            trace_index,
            pinned: None,
        }
    }

    /// The same table restricted to `files` and `batches` (of one of its snapshots).
    pub(crate) fn pinned(
        table: Arc<Table>,
        probe: Option<Arc<BloomProbe>>,
        trace_index: Option<Arc<TraceIndex>>,
        files: Vec<Arc<LakeFile>>,
        batches: Vec<RecordBatch>,
    ) -> Self {
        let spec = table.spec();
        let schema = table.snapshot().schema;
        Self {
            time_column: spec.time_column,
            derived_end: spec.derived_end,
            table,
            trace_probe: probe,
            trace_index,
            pinned: Some(Snapshot {
                schema,
                files: Arc::new(files),
                batches,
            }),
        }
    }

    pub(crate) fn table(&self) -> &Arc<Table> {
        &self.table
    }

    pub(crate) fn trace_probe(&self) -> Option<Arc<BloomProbe>> {
        self.trace_probe.clone()
    }

    pub(crate) fn trace_index(&self) -> Option<Arc<TraceIndex>> {
        self.trace_index.clone()
    }
}

/// The ids a scan's filters pin `column` to (`column = X'…'` or `column IN (X'…', …)`), or
/// `None` when no filter does.
fn pinned_ids(filters: &[Expr], column: &str) -> Option<Vec<Vec<u8>>> {
    let bytes = |e: &Expr| match e {
        Expr::Literal(
            ScalarValue::Binary(Some(b))
            | ScalarValue::BinaryView(Some(b))
            | ScalarValue::LargeBinary(Some(b))
            | ScalarValue::FixedSizeBinary(_, Some(b)),
            _,
        ) => Some(b.clone()),
        _ => None,
    };
    let is_column = |e: &Expr| matches!(e, Expr::Column(c) if c.name == column);
    filters.iter().find_map(|filter| match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            if is_column(left) {
                bytes(right).map(|b| vec![b])
            } else if is_column(right) {
                bytes(left).map(|b| vec![b])
            } else {
                None
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) if is_column(expr) => list.iter().map(bytes).collect(),
        _ => None,
    })
}

/// Lower and upper bounds (inclusive, Unix ns) on `column` implied by the scan's filters.
fn time_bounds(filters: &[Expr], column: &str) -> (i64, i64) {
    let mut lo = i64::MIN;
    let mut hi = i64::MAX;
    for filter in filters {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
            continue;
        };
        let (col, value, op) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
            (Expr::Literal(v, _), Expr::Column(c)) => match op.swap() {
                Some(swapped) => (c, v, swapped),
                None => continue,
            },
            _ => continue,
        };
        if col.name != column {
            continue;
        }
        let nanos = match value {
            ScalarValue::TimestampNanosecond(Some(v), _) => *v,
            ScalarValue::TimestampMicrosecond(Some(v), _) => v.saturating_mul(1_000),
            ScalarValue::TimestampMillisecond(Some(v), _) => v.saturating_mul(1_000_000),
            ScalarValue::TimestampSecond(Some(v), _) => v.saturating_mul(1_000_000_000),
            _ => continue,
        };
        match op {
            Operator::Gt | Operator::GtEq => lo = lo.max(nanos),
            Operator::Lt | Operator::LtEq => hi = hi.min(nanos),
            Operator::Eq => {
                lo = lo.max(nanos);
                hi = hi.min(nanos);
            }
            _ => {}
        }
    }
    (lo, hi)
}

/// The file's name in the local object store (its absolute path without the leading `/`), which
/// also keys its entry in the file-metadata cache.
pub(crate) fn store_path(file: &LakeFile) -> String {
    file.path
        .to_string_lossy()
        .trim_start_matches('/')
        .to_owned()
}

fn partitioned_file(file: &Arc<LakeFile>) -> PartitionedFile {
    let mut partitioned = PartitionedFile::new(store_path(file), file.size);
    // The plan holds the file for as long as it runs, so retention or compaction cannot delete
    // it under a running query.
    partitioned.extensions.insert_arc(Arc::clone(file));
    partitioned
}

/// Where in one file the rows holding one of the ids looked up may lie.
#[derive(Debug)]
pub(crate) enum Holding {
    /// In none of its rows.
    Nowhere,
    /// Anywhere: the file has neither a usable trace index nor bloom filters.
    Anywhere,
    /// Only in these ascending row groups (of `row_groups`), each whole or at the selected rows.
    In {
        row_groups: usize,
        scan: Vec<(usize, Option<RowSelection>)>,
    },
}

/// Where `file` may hold one of `ids`: the rows its trace index names, or without one, the row
/// groups whose bloom filter admits an id.
pub(crate) fn holding(
    probe: &BloomProbe,
    index: Option<&TraceIndex>,
    file: &LakeFile,
    ids: &[&[u8]],
) -> Holding {
    let via = |via| {
        let stats = lakescope_collector::stats::stats();
        let label = lakescope_collector::stats::TraceLookupLabel { via };
        stats.query_trace_lookup_files.get_or_create(&label).inc();
    };
    if let Some(located) = index.and_then(|index| index.locate(file, ids)) {
        via("index");
        if located.scan.is_empty() {
            return Holding::Nowhere;
        }
        let scan = located
            .scan
            .into_iter()
            .map(|(group, ranges)| {
                let selection =
                    RowSelection::from_consecutive_ranges(ranges.into_iter(), located.rows[group]);
                (group, Some(selection))
            })
            .collect();
        return Holding::In {
            row_groups: located.row_groups,
            scan,
        };
    }
    via("bloom");
    match probe.candidates(&file.path, ids) {
        None => Holding::Anywhere,
        Some(found) if found.scan.is_empty() => Holding::Nowhere,
        Some(found) => Holding::In {
            row_groups: found.row_groups,
            scan: found.scan.into_iter().map(|g| (g, None)).collect(),
        },
    }
}

/// The files that may hold one of `ids`, each restricted to where it may hold them.
fn row_groups_holding(
    probe: &BloomProbe,
    index: Option<&TraceIndex>,
    files: &[Arc<LakeFile>],
    ids: &[Vec<u8>],
) -> Vec<PartitionedFile> {
    let ids: Vec<&[u8]> = ids.iter().map(Vec::as_slice).collect();
    files
        .iter()
        .filter_map(|file| {
            let mut partitioned = partitioned_file(file);
            match holding(probe, index, file, &ids) {
                Holding::Nowhere => return None,
                Holding::Anywhere => {}
                Holding::In { row_groups, scan }
                    if scan.len() < row_groups || scan.iter().any(|(_, s)| s.is_some()) =>
                {
                    let mut plan = ParquetAccessPlan::new_none(row_groups);
                    for (group, selection) in scan {
                        plan.scan(group);
                        if let Some(selection) = selection {
                            plan.scan_selection(group, selection);
                        }
                    }
                    partitioned.extensions.insert_arc(Arc::new(plan));
                }
                Holding::In { .. } => {}
            }
            Some(partitioned)
        })
        .collect()
}

/// Forgets what the probe and the index keep about files no longer in `live`.
pub(crate) fn forget_gone(probe: &BloomProbe, index: Option<&TraceIndex>, all: &[Arc<LakeFile>]) {
    let live: Vec<&std::path::Path> = all.iter().map(|f| f.path.as_path()).collect();
    probe.retain(&live);
    if let Some(index) = index {
        index.retain(&live);
    }
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        with_derived(&query_schema(&self.table.schema()), self.derived_end)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used to prune files and row groups; DataFusion still applies every filter to the rows.
        // A filter on the derived column stays above the scan: the files do not hold it, and
        // the reader would prune with it as if it were all null.
        let derived = self.derived_end.map(|d| d.name);
        Ok(filters
            .iter()
            .map(|f| {
                if f.column_refs()
                    .iter()
                    .any(|c| Some(c.name.as_str()) == derived)
                {
                    TableProviderFilterPushDown::Unsupported
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = match &self.pinned {
            Some(pinned) => pinned.clone(),
            None => self.table.snapshot(),
        };
        let schema = query_schema(&snapshot.schema);
        let offered = with_derived(&schema, self.derived_end);
        let (projection, derive) = read_plan(&schema, &offered, self.derived_end, projection)?;
        let projection = projection.as_ref();
        let (lo, hi) = time_bounds(filters, self.time_column);
        let in_range: Vec<Arc<LakeFile>> = snapshot
            .files
            .iter()
            .filter(|f| f.partition_start <= hi && f.partition_start + PARTITION_NANOS > lo)
            .cloned()
            .collect();
        let mut options = state.default_table_options().parquet;
        let files = match (&self.trace_probe, pinned_ids(filters, TRACE_ID)) {
            (Some(probe), Some(ids)) => {
                // The probe has tested the filters; the reader need not read them again.
                options.global.bloom_filter_on_read = false;
                let probe = Arc::clone(probe);
                let index = self.trace_index.clone();
                // A pinned table sees only some of the files: the probe's own table forgets.
                let all: Option<Vec<Arc<LakeFile>>> =
                    self.pinned.is_none().then(|| snapshot.files.to_vec());
                tokio::task::spawn_blocking(move || {
                    if let Some(all) = all {
                        forget_gone(&probe, index.as_deref(), &all);
                    }
                    row_groups_holding(&probe, index.as_deref(), &in_range, &ids)
                })
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
            }
            _ => in_range.iter().map(partitioned_file).collect(),
        };

        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !files.is_empty() {
            // The session's Parquet options (filter pushdown for lookups), and a reader that
            // keeps each file's page index cached (see `page_index`).
            let store = state
                .runtime_env()
                .object_store(ObjectStoreUrl::local_filesystem())?;
            let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
            let mut source = ParquetSource::new(Arc::clone(&schema))
                .with_table_parquet_options(options)
                .with_parquet_file_reader_factory(Arc::new(PageIndexedReaderFactory::new(
                    store, cache,
                )));
            if let Some(predicate) = conjunction(filters.to_vec()) {
                let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
                source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
            }
            let partitions = state.config().target_partitions().max(1);
            let groups: Vec<FileGroup> = files
                .chunks(files.len().div_ceil(partitions))
                .map(|chunk| FileGroup::new(chunk.to_vec()))
                .collect();
            let config =
                FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                    .with_file_groups(groups)
                    .with_projection_indices(projection.cloned())?
                    .with_limit(limit)
                    .build();
            plans.push(DataSourceExec::from_data_source(config));
        }
        if !snapshot.batches.is_empty() || plans.is_empty() {
            let batches = snapshot
                .batches
                .iter()
                .map(|b| to_query_schema(b, &schema))
                .collect::<Result<Vec<_>>>()?;
            plans.push(MemorySourceConfig::try_new_exec(
                &[batches],
                Arc::clone(&schema),
                projection.cloned(),
            )?);
        }
        let union = UnionExec::try_new(plans)?;
        match derive {
            Some(exprs) => Ok(Arc::new(ProjectionExec::try_new(exprs, union)?)),
            None => Ok(union),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use datafusion::common::Column;
    use datafusion::logical_expr::lit;

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    /// OTLP/JSON spans (comma-separated objects) as the write path converts them.
    pub(crate) fn converted(spans: &str) -> RecordBatch {
        let request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
            serde_json::from_str(&format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#
            ))
            .unwrap();
        lakescope_collector::convert::spans::convert(
            &request,
            &lakescope_collector::Limits::default(),
        )
        .unwrap()
        .batch
    }

    /// Writes `batch` as the lake's one spans file in the hour of `start`, returning its path.
    pub(crate) fn write_spans_file(
        lake: &std::path::Path,
        start: i64,
        batch: &RecordBatch,
        props: datafusion::parquet::file::properties::WriterProperties,
    ) -> std::path::PathBuf {
        use lakescope_collector::lake::layout;
        let part_dir = layout::table_dir(lake, layout::SPANS)
            .join(layout::partition_dir(layout::partition_of(start)));
        std::fs::create_dir_all(&part_dir).unwrap();
        let path = part_dir.join(layout::file_name(0, 0));
        let file = std::fs::File::create(&path).unwrap();
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))
                .unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
        path
    }

    /// The first column of the first row of a query's answer, as a count.
    async fn count_of(engine: &crate::QueryEngine, sql: &str) -> i64 {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Int64Type;
        let rows = engine.user_query(sql, Vec::new()).await.unwrap();
        rows.batches[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0)
    }

    /// Files written before a nullable column was added stay readable: the column reads as null.
    #[tokio::test]
    async fn files_without_a_newer_column_read_it_as_null() {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::parquet::arrow::ArrowWriter;
        use lakescope_collector::lake::layout;
        use lakescope_collector::schema::spans;

        let dir = tempfile::tempdir().unwrap();
        // One span, converted as today, then written without `exception_stacktrace`.
        let batch = converted(
            r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"old","kind":2,"startTimeUnixNano":"1795551330000000000",
            "endTimeUnixNano":"1795551330001000000"}"#,
        );
        let keep: Vec<usize> = (0..batch.num_columns())
            .filter(|i| batch.schema().field(*i).name() != spans::col::EXCEPTION_STACKTRACE)
            .collect();
        let old = batch.project(&keep).unwrap();
        let partition = layout::partition_of(1_795_551_330_000_000_000);
        let part_dir =
            layout::table_dir(dir.path(), layout::SPANS).join(layout::partition_dir(partition));
        std::fs::create_dir_all(&part_dir).unwrap();
        let file = std::fs::File::create(part_dir.join(layout::file_name(0, 0))).unwrap();
        let mut writer = ArrowWriter::try_new(file, old.schema(), None).unwrap();
        writer.write(&old).unwrap();
        writer.close().unwrap();

        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let engine = crate::QueryEngine::new(&lake, crate::QueryLimits::default()).unwrap();
        let rows = engine
            .user_query("SELECT name, exception_stacktrace FROM spans", Vec::new())
            .await
            .unwrap();
        let batch = &rows.batches[0];
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(
            batch
                .column(0)
                .as_string_view_opt()
                .map(|a| a.value(0).to_owned())
                .or_else(|| batch
                    .column(0)
                    .as_string_opt::<i32>()
                    .map(|a| a.value(0).to_owned()))
                .as_deref(),
            Some("old")
        );
        assert!(batch.column(1).is_null(0));
    }

    /// `end_time` is not stored but offered: `start_time + duration_ns`, after `start_time`, in
    /// files written with it (before it was derived), files without it and the recent batches
    /// alike; a filter or an ordering on it uses the computed value (the files' pages are not
    /// pruned by it).
    #[tokio::test]
    async fn the_end_time_is_the_start_plus_the_duration_in_old_and_new_files() {
        use datafusion::arrow::array::{Array, AsArray, TimestampNanosecondArray};
        use datafusion::arrow::datatypes::{Int64Type, TimestampNanosecondType};
        use lakescope_collector::schema::spans;

        let hour = 3_600_000_000_000_i64;
        let start = 1_795_550_400_000_000_000_i64;
        let span = |id: u32, at: i64, ns: i64| {
            format!(
                r#"{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"{id:016x}",
                "name":"op{id}","kind":2,"startTimeUnixNano":"{at}","endTimeUnixNano":"{}"}}"#,
                at + ns
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let props = || datafusion::parquet::file::properties::WriterProperties::builder().build();
        let new = converted(
            &[
                span(1, start, 1_000_000),
                span(2, start + 5, 2_500_000),
                span(3, start + 9, 0),
            ]
            .join(","),
        );
        assert!(new.schema().index_of(spans::col::END_TIME).is_err());
        write_spans_file(dir.path(), start, &new, props());
        // A file of the format before: `end_time` stored after `start_time`.
        let old =
            converted(&[span(4, start + hour, 7_000), span(5, start + hour + 1, 40)].join(","));
        let at = old.schema().index_of(spans::col::START_TIME).unwrap() + 1;
        let begin = old.column(at - 1).as_primitive::<TimestampNanosecondType>();
        let ns = old.column(at).as_primitive::<Int64Type>();
        let end: TimestampNanosecondArray = (0..old.num_rows())
            .map(|i| Some(begin.value(i) + ns.value(i)))
            .collect::<TimestampNanosecondArray>()
            .with_timezone("UTC");
        let mut fields: Vec<FieldRef> = old.schema().fields().iter().cloned().collect();
        fields.insert(
            at,
            Arc::new(Field::new(
                spans::col::END_TIME,
                end.data_type().clone(),
                false,
            )),
        );
        let mut columns = old.columns().to_vec();
        columns.insert(at, Arc::new(end));
        let old = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        write_spans_file(dir.path(), start + hour, &old, props());

        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        // One span not flushed yet.
        lake.spans
            .push(1, converted(&span(6, start + 2 * hour, 123)));
        let engine = crate::QueryEngine::new(&lake, crate::QueryLimits::default()).unwrap();
        let rows = engine
            .user_query(
                "SELECT CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT) AS ns, duration_ns, \
                 CAST(end_time AS BIGINT) AS e FROM spans ORDER BY span_id",
                Vec::new(),
            )
            .await
            .unwrap();
        let mut got = Vec::new();
        for b in &rows.batches {
            let (ns, d, e) = (
                b.column(0).as_primitive::<Int64Type>(),
                b.column(1).as_primitive::<Int64Type>(),
                b.column(2).as_primitive::<Int64Type>(),
            );
            got.extend((0..b.num_rows()).map(|i| (ns.value(i), d.value(i), e.value(i))));
        }
        assert_eq!(
            got,
            [
                (1_000_000, 1_000_000, start + 1_000_000),
                (2_500_000, 2_500_000, start + 5 + 2_500_000),
                (0, 0, start + 9),
                (7_000, 7_000, start + hour + 7_000),
                (40, 40, start + hour + 41),
                (123, 123, start + 2 * hour + 123),
            ]
        );
        // A filter on the end: the rows whose computed end is past it (spans 2, 4, 5 and 6;
        // then spans 4 and 6: span 5 ends at +41 ns).
        let past = format!(
            "SELECT count(*) FROM spans WHERE end_time > to_timestamp_nanos({})",
            start + 2_000_000
        );
        assert_eq!(count_of(&engine, &past).await, 4);
        let late = format!(
            "SELECT count(*) FROM spans WHERE end_time >= to_timestamp_nanos({})",
            start + hour + 42
        );
        assert_eq!(count_of(&engine, &late).await, 2);
        // The latest ends first (a top-k whose bound may be pushed towards the scan).
        let last = engine
            .user_query(
                "SELECT name FROM spans ORDER BY end_time DESC LIMIT 2",
                Vec::new(),
            )
            .await
            .unwrap();
        let names: Vec<String> = last
            .batches
            .iter()
            .flat_map(|b| {
                let c = b.column(0);
                (0..b.num_rows()).map(move |i| {
                    c.as_string_view_opt()
                        .map(|a| a.value(i).to_owned())
                        .or_else(|| c.as_string_opt::<i32>().map(|a| a.value(i).to_owned()))
                        .unwrap()
                })
            })
            .collect();
        assert_eq!(names, ["op6", "op4"]);
        // `SELECT *` has it where the stored column was.
        let all = engine
            .user_query("SELECT * FROM spans LIMIT 1", Vec::new())
            .await
            .unwrap();
        let schema = all.batches[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let i = names
            .iter()
            .position(|n| *n == spans::col::START_TIME)
            .unwrap();
        assert_eq!(
            &names[i..i + 3],
            [
                spans::col::START_TIME,
                spans::col::END_TIME,
                spans::col::DURATION_NS
            ]
        );
    }

    /// A lookup by trace id reads only the row groups whose bloom filter admits the id, and still
    /// finds every span of the trace: 40 traces of 25 spans in row groups of 64 rows, counted by
    /// id (probed) and by the id's hex text (a full scan).
    #[tokio::test]
    async fn lookups_by_trace_id_find_every_span_in_the_row_groups_they_read() {
        use datafusion::parquet::file::properties::WriterProperties;
        use datafusion::parquet::schema::types::ColumnPath;

        let start = 1_795_551_330_000_000_000_i64;
        let trace = |t: usize| format!("{:032x}", 0x5b8e_fff7_9803_8103_u128 * (t as u128 + 1));
        let spans: Vec<String> = (0..25 * 40)
            .map(|i| {
                // 25 spans a trace in a row: a trace in one or two row groups, three or four
                // traces in a row group.
                let (t, s) = (i / 25, i % 25);
                format!(
                    r#"{{"traceId":"{}","spanId":"{:016x}","name":"op","kind":2,
                    "startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}"#,
                    trace(t),
                    s + 1,
                    start - i as i64,
                    start - i as i64 + 1_000,
                )
            })
            .collect();
        let batch = converted(&spans.join(","));
        let dir = tempfile::tempdir().unwrap();
        let column = ColumnPath::from(TRACE_ID);
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(64))
            .set_column_bloom_filter_enabled(column.clone(), true)
            .set_column_bloom_filter_fpp(column.clone(), 0.01)
            .set_column_bloom_filter_max_ndv(column, 64)
            .build();
        let path = write_spans_file(dir.path(), start, &batch, props);

        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let engine = crate::QueryEngine::new(&lake, crate::QueryLimits::default()).unwrap();
        let count = |sql: String| {
            let engine = engine.clone();
            async move { count_of(&engine, &sql).await }
        };
        for t in [0, 17, 39] {
            let probed = count(format!(
                "SELECT count(*) FROM spans WHERE trace_id = X'{}'",
                trace(t)
            ))
            .await;
            let scanned = count(format!(
                "SELECT count(*) FROM spans WHERE encode(trace_id, 'hex') = '{}'",
                trace(t)
            ))
            .await;
            assert_eq!((probed, scanned), (25, 25), "trace {t}");
        }
        let two = count(format!(
            "SELECT count(*) FROM spans WHERE trace_id IN (X'{}', X'{}')",
            trace(3),
            trace(4)
        ))
        .await;
        assert_eq!(two, 50);
        let absent = count("SELECT count(*) FROM spans WHERE trace_id = X'00ff'".into()).await;
        assert_eq!(absent, 0);

        // The probe admitted the two row groups holding trace 17 (rows 425..450) and few others.
        let probe = BloomProbe::new(TRACE_ID);
        let id = const_hex::decode(trace(17)).unwrap();
        let found = probe.candidates(&path, &[&id]).unwrap();
        assert_eq!(found.row_groups, 16);
        assert!(
            found.scan.contains(&6) && found.scan.contains(&7) && found.scan.len() <= 4,
            "{:?}",
            found.scan
        );
    }

    /// With its trace index made, a file is read only at the blocks of rows the index names, and
    /// a lookup still finds every span: 1,500 traces of 8 spans each 1,500 rows apart (so every
    /// trace is in several row groups of 5,000 rows and several blocks), counted by id and by the
    /// id's hex text (a full scan), and the spans found are the trace's own.
    #[tokio::test]
    async fn lookups_through_a_trace_index_find_every_span_of_the_trace() {
        use datafusion::parquet::file::properties::WriterProperties;
        use lakescope_collector::stats::{TraceLookupLabel, stats};

        let start = 1_795_551_330_000_000_000_i64;
        let trace = |t: usize| format!("{:032x}", 0x5b8e_fff7_9803_8103_u128 * (t as u128 + 1));
        let spans: Vec<String> = (0..12_000)
            .map(|i| {
                format!(
                    r#"{{"traceId":"{}","spanId":"{:016x}","name":"op","kind":2,
                    "startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}"#,
                    trace(i % 1_500),
                    i + 1,
                    start - i as i64,
                    start - i as i64 + 1_000,
                )
            })
            .collect();
        let batch = converted(&spans.join(","));
        let dir = tempfile::tempdir().unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(5_000))
            .set_data_page_row_count_limit(4_096)
            .build();
        let path = write_spans_file(dir.path(), start, &batch, props);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let engine = crate::QueryEngine::new(&lake, crate::QueryLimits::default()).unwrap();
        engine.trace_index().build(&path).unwrap();

        let by_index = || {
            let label = TraceLookupLabel { via: "index" };
            stats().query_trace_lookup_files.get_or_create(&label).get()
        };
        let before = by_index();
        for t in [0, 777, 1_499] {
            let by_id = count_of(
                &engine,
                &format!(
                    "SELECT count(*) FROM spans WHERE trace_id = X'{}'",
                    trace(t)
                ),
            )
            .await;
            let scanned = count_of(
                &engine,
                &format!(
                    "SELECT count(*) FROM spans WHERE encode(trace_id, 'hex') = '{}'",
                    trace(t)
                ),
            )
            .await;
            assert_eq!((by_id, scanned), (8, 8), "trace {t}");
        }
        assert!(
            by_index() >= before + 3,
            "the lookups went through the index"
        );

        let two = count_of(
            &engine,
            &format!(
                "SELECT count(*) FROM spans WHERE trace_id IN (X'{}', X'{}')",
                trace(3),
                trace(4)
            ),
        )
        .await;
        assert_eq!(two, 16);
        let absent = count_of(
            &engine,
            "SELECT count(*) FROM spans WHERE trace_id = X'00ff'",
        )
        .await;
        assert_eq!(absent, 0);

        // The trace view's own query: its spans, the rows 777 + 1,500 k, in start order (the
        // file holds them the other way round).
        let id = crate::views::traces::TraceId::parse(&trace(777)).unwrap();
        let found = crate::views::traces::trace(&engine, &id).await.unwrap();
        let span_ids: Vec<String> = found
            .iter()
            .map(|s| const_hex::encode(&s.span.span_id))
            .collect();
        let expected: Vec<String> = (0..8)
            .rev()
            .map(|k| format!("{:016x}", 777 + 1_500 * k + 1))
            .collect();
        assert_eq!(span_ids, expected);
    }

    #[tokio::test]
    async fn page_indexes_are_read_once_and_forgotten_with_their_files() {
        use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
        use datafusion::object_store::path::Path;
        use datafusion::parquet::file::properties::WriterProperties;

        let start = 1_795_551_330_000_000_000_i64;
        let spans: Vec<String> = (0..1000)
            .map(|i| {
                format!(
                    r#"{{"traceId":"{:032x}","spanId":"{:016x}","name":"op","kind":2,
                    "startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}"#,
                    i + 1,
                    i + 1,
                    start + i * 1_000,
                    start + i * 1_000 + 500,
                )
            })
            .collect();
        let batch = converted(&spans.join(","));
        let dir = tempfile::tempdir().unwrap();
        // Small pages, so a time range prunes pages within the row groups.
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(250))
            .set_data_page_row_count_limit(50)
            .set_write_batch_size(50)
            .build();
        let path = write_spans_file(dir.path(), start, &batch, props);

        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let engine = crate::QueryEngine::new(&lake, crate::QueryLimits::default()).unwrap();
        let count = |from: i64, to: i64| {
            let engine = engine.clone();
            async move {
                let sql = format!(
                    "SELECT count(*) FROM spans WHERE start_time >= to_timestamp_nanos({from}) \
                     AND start_time < to_timestamp_nanos({to})"
                );
                count_of(&engine, &sql).await
            }
        };
        let cache = engine.runtime.cache_manager.get_file_metadata_cache();
        let key = Path::from(path.to_string_lossy().trim_start_matches('/'));
        let has_page_index = || {
            cache.get(&key).is_some_and(|entry| {
                entry
                    .file_metadata
                    .as_any()
                    .downcast_ref::<CachedParquetMetaData>()
                    .is_some_and(|m| {
                        let m = m.parquet_metadata();
                        m.column_index().is_some() && m.offset_index().is_some()
                    })
            })
        };

        // Spans 120..620 (start + 1 µs each): cuts row groups and pages at both ends.
        assert_eq!(count(start + 120_000, start + 620_000).await, 500);
        assert!(has_page_index(), "the cached footer holds the page index");
        // Later queries use the cached index and still count exactly.
        assert_eq!(count(start + 999_000, start + 2_000_000).await, 1);
        assert_eq!(count(start, start + 50_000).await, 50);
        let held = lakescope_collector::stats::stats()
            .query_metadata_cache_bytes
            .get();
        assert!(held > 0, "the gauge shows the cached bytes");

        // Once the file leaves the lake, the next query drops its cached metadata.
        let spans_table = lake
            .tables()
            .into_iter()
            .find(|t| t.name() == "spans")
            .unwrap();
        spans_table.remove_files(&std::iter::once(path.clone()).collect());
        assert_eq!(count(start, start + 2_000_000).await, 0);
        assert!(
            cache.get(&key).is_none(),
            "the removed file's metadata is forgotten"
        );
    }

    #[test]
    fn ids_are_pinned_by_equality_or_an_in_list_on_the_column() {
        let c = || Expr::Column(Column::from_name(TRACE_ID));
        let id = |b: u8| lit(ScalarValue::Binary(Some(vec![b; 16])));
        assert_eq!(
            pinned_ids(&[c().eq(id(1))], TRACE_ID),
            Some(vec![vec![1; 16]])
        );
        assert_eq!(
            pinned_ids(&[id(2).eq(c())], TRACE_ID),
            Some(vec![vec![2; 16]])
        );
        assert_eq!(
            pinned_ids(&[c().in_list(vec![id(1), id(2)], false)], TRACE_ID),
            Some(vec![vec![1; 16], vec![2; 16]])
        );
        assert_eq!(
            pinned_ids(&[c().in_list(vec![id(1)], true)], TRACE_ID),
            None
        );
        assert_eq!(pinned_ids(&[c().not_eq(id(1))], TRACE_ID), None);
        let other = Expr::Column(Column::from_name("span_id"));
        assert_eq!(pinned_ids(&[other.eq(id(1))], TRACE_ID), None);
    }

    #[test]
    fn bounds_come_from_comparisons_on_the_time_column() {
        let c = || Expr::Column(Column::from_name("start_time"));
        let filters = vec![c().gt_eq(ts(100)), c().lt(ts(200)), ts(150).gt(c())];
        assert_eq!(time_bounds(&filters, "start_time"), (100, 150));
        let other = vec![Expr::Column(Column::from_name("end_time")).gt(ts(5))];
        assert_eq!(time_bounds(&other, "start_time"), (i64::MIN, i64::MAX));
    }
}
