//! A lake table as a DataFusion table: its committed Parquet files and its recent batches, read
//! from one [`Snapshot`] per scan so that every row is seen exactly once.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use lakescope_collector::lake::layout::PARTITION_NANOS;
use lakescope_collector::lake::{LakeFile, Table};

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

/// A [`Table`] of the lake, readable by DataFusion.
#[derive(Debug)]
pub struct LakeTable {
    table: Arc<Table>,
    /// The column whose value decides a row's hour partition.
    time_column: &'static str,
}

impl LakeTable {
    pub fn new(table: Arc<Table>, time_column: &'static str) -> Self {
        Self { table, time_column }
    }
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

fn partitioned_file(file: &Arc<LakeFile>) -> PartitionedFile {
    let path = file.path.to_string_lossy();
    let mut partitioned = PartitionedFile::new(path.trim_start_matches('/'), file.size);
    // The plan holds the file for as long as it runs, so retention or compaction cannot delete
    // it under a running query.
    partitioned.extensions.insert_arc(Arc::clone(file));
    partitioned
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        query_schema(&self.table.schema())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used to prune files and row groups; DataFusion still applies every filter to the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.table.snapshot();
        let schema = query_schema(&snapshot.schema);
        let (lo, hi) = time_bounds(filters, self.time_column);
        let files: Vec<PartitionedFile> = snapshot
            .files
            .iter()
            .filter(|f| f.partition_start <= hi && f.partition_start + PARTITION_NANOS > lo)
            .map(partitioned_file)
            .collect();

        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !files.is_empty() {
            let mut source = ParquetSource::new(Arc::clone(&schema));
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
            plans.push(
                // The session's Parquet options (filter pushdown for lookups): a plain
                // `ParquetFormat::default()` would replace them with the defaults.
                ParquetFormat::default()
                    .with_options(state.default_table_options().parquet)
                    .create_physical_plan(state, config)
                    .await?,
            );
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
        UnionExec::try_new(plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::Column;
    use datafusion::logical_expr::lit;

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
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
        let request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
            serde_json::from_str(
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
                "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
                "name":"old","kind":2,"startTimeUnixNano":"1795551330000000000",
                "endTimeUnixNano":"1795551330001000000"}]}]}]}"#,
            )
            .unwrap();
        let batch = lakescope_collector::convert::spans::convert(
            &request,
            &lakescope_collector::Limits::default(),
        )
        .unwrap()
        .batch;
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

    #[test]
    fn bounds_come_from_comparisons_on_the_time_column() {
        let c = || Expr::Column(Column::from_name("start_time"));
        let filters = vec![c().gt_eq(ts(100)), c().lt(ts(200)), ts(150).gt(c())];
        assert_eq!(time_bounds(&filters, "start_time"), (100, 150));
        let other = vec![Expr::Column(Column::from_name("end_time")).gt(ts(5))];
        assert_eq!(time_bounds(&other, "start_time"), (i64::MIN, i64::MAX));
    }
}
