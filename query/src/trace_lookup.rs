//! One trace's spans read straight from the lake, without SQL.
//!
//! A lookup knows before reading where its trace may lie: the rows a file's trace index names,
//! or the row groups whose bloom filter admits the id (`table::holding`). Asked as
//! `SELECT * FROM spans WHERE trace_id = $1`, parsing and planning were a fifth of a lookup's
//! CPU over 88 M spans, and DataFusion read all of one file's row groups on one core, while a
//! trace lies in one or two files. Here the located rows are read with the same cached footers
//! and page indexes as the SQL path, spread over the cores by row group, filtered on `trace_id`
//! while decoding, and only the columns a span is rebuilt from ([`READ_COLUMNS`]) are decoded.
//! Files written before a column existed read it as null, as in SQL.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{TimeZone, Utc};
use datafusion::arrow::array::{ArrayRef, BinaryArray, RecordBatch, Scalar, new_null_array};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::object_store::ObjectMeta;
use datafusion::object_store::path::Path;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    RowFilter, RowSelection,
};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use lakescope_collector::lake::LakeFile;
use lakescope_collector::schema::span_rows::READ_COLUMNS;

use crate::engine::QueryError;
use crate::table::{Holding, LakeTable, forget_gone, holding, store_path};

const TRACE_ID: &str = "trace_id";
/// Rows per batch read: a trace's rows in one row group fit in one.
const BATCH_ROWS: usize = 8192;

/// Set when dropped: tells the readers their lookup is gone.
#[derive(Default)]
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One row group of one file to read, whole or at the selected rows.
struct Part {
    file: Arc<LakeFile>,
    metadata: ArrowReaderMetadata,
    row_group: usize,
    selection: Option<RowSelection>,
    /// Rows decoded at most: what spreads the parts over the cores.
    rows: usize,
}

fn failed(file: &LakeFile, e: impl std::fmt::Display) -> QueryError {
    QueryError::Execution(format!("{}: {e}", file.path.display()))
}

/// Every stored row of trace `id` in the spans `table` (files and recent batches), with the
/// [`READ_COLUMNS`] in the stored types; rows in no particular order.
pub(crate) async fn trace_rows(
    table: &LakeTable,
    runtime: &RuntimeEnv,
    id: &[u8],
) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let snapshot = table.table().snapshot();
    let fields = READ_COLUMNS
        .iter()
        .map(|name| {
            // Nullable: a file written before the column existed reads it as null.
            let field = snapshot.schema.field_with_name(name)?;
            Ok(field.clone().with_nullable(true))
        })
        .collect::<Result<Vec<Field>, ArrowError>>()
        .map_err(|e| QueryError::Execution(format!("spans schema: {e}")))?;
    let schema: SchemaRef = Arc::new(Schema::new(fields));

    let mut batches = Vec::new();
    for batch in &snapshot.batches {
        let held = matching(batch, id).and_then(|b| conform(&b, &schema));
        batches.push(held.map_err(|e| QueryError::Execution(format!("recent spans: {e}")))?);
    }

    let probe = table.trace_probe();
    let index = table.trace_index();
    let files = Arc::clone(&snapshot.files);
    let wanted = id.to_vec();
    let located = tokio::task::spawn_blocking(move || {
        let Some(probe) = probe else {
            return files
                .iter()
                .map(|f| (Arc::clone(f), Holding::Anywhere))
                .collect();
        };
        forget_gone(&probe, index.as_deref(), &files);
        files
            .iter()
            .map(|f| {
                (
                    Arc::clone(f),
                    holding(&probe, index.as_deref(), f, &[&wanted]),
                )
            })
            .filter(|(_, h)| !matches!(h, Holding::Nowhere))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| QueryError::Execution(e.to_string()))?;

    let parts = parts(runtime, located).await?;
    let lanes = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A lookup dropped before it ends (its time limit, a client gone) stops its readers at the
    // next batch rather than decoding on after its query slot is given back.
    let stop = Stop::default();
    let mut readers = Vec::new();
    for lane in spread(parts, lanes) {
        let (schema, id) = (Arc::clone(&schema), id.to_vec());
        let stopped = Arc::clone(&stop.0);
        readers.push(tokio::task::spawn_blocking(move || {
            lane.iter()
                .map(|part| read_part(part, &schema, &id, &stopped))
                .collect::<Result<Vec<_>, _>>()
        }));
    }
    for reader in readers {
        let read = reader
            .await
            .map_err(|e| QueryError::Execution(e.to_string()))??;
        batches.extend(read.into_iter().flatten());
    }
    batches.retain(|b| b.num_rows() > 0);
    Ok((schema, batches))
}

/// The row groups to read, with each file's footer and page index from the session's cache
/// (loaded into it on a miss, as a SQL scan would).
async fn parts(
    runtime: &RuntimeEnv,
    located: Vec<(Arc<LakeFile>, Holding)>,
) -> Result<Vec<Part>, QueryError> {
    let store = runtime
        .object_store(ObjectStoreUrl::local_filesystem())
        .map_err(|e| QueryError::Execution(e.to_string()))?;
    let cache = runtime.cache_manager.get_file_metadata_cache();
    let mut parts = Vec::new();
    for (file, holding) in located {
        // Keyed and validated as DataFusion's own scans key them, so both share the entry.
        let meta = ObjectMeta {
            location: Path::from(store_path(&file)),
            last_modified: Utc.timestamp_nanos(0),
            size: file.size,
            e_tag: None,
            version: None,
        };
        let metadata = DFParquetMetadata::new(store.as_ref(), &meta)
            .with_file_metadata_cache(Some(Arc::clone(&cache)))
            .with_page_index_policy(Some(PageIndexPolicy::Optional))
            .fetch_metadata()
            .await
            .map_err(|e| failed(&file, e))?;
        let metadata = ArrowReaderMetadata::try_new(metadata, ArrowReaderOptions::new())
            .map_err(|e| failed(&file, e))?;
        let groups = metadata.metadata().row_groups();
        let scan: Vec<(usize, Option<RowSelection>)> = match holding {
            Holding::Nowhere => Vec::new(),
            Holding::Anywhere => (0..groups.len()).map(|g| (g, None)).collect(),
            Holding::In { scan, .. } => scan,
        };
        for (row_group, selection) in scan {
            let Some(group) = groups.get(row_group) else {
                return Err(failed(&file, format!("no row group {row_group}")));
            };
            let whole = usize::try_from(group.num_rows()).unwrap_or(0);
            parts.push(Part {
                file: Arc::clone(&file),
                metadata: metadata.clone(),
                row_group,
                rows: selection.as_ref().map_or(whole, RowSelection::row_count),
                selection,
            });
        }
    }
    Ok(parts)
}

/// `parts` dealt into at most `lanes` lanes of about equal rows, largest first.
fn spread(mut parts: Vec<Part>, lanes: usize) -> Vec<Vec<Part>> {
    parts.sort_by_key(|p| std::cmp::Reverse(p.rows));
    let mut spread: Vec<(usize, Vec<Part>)> = Vec::new();
    for part in parts {
        if spread.len() < lanes.max(1) {
            spread.push((part.rows, vec![part]));
        } else if let Some(lightest) = spread.iter_mut().min_by_key(|(rows, _)| *rows) {
            lightest.0 += part.rows;
            lightest.1.push(part);
        }
    }
    spread.into_iter().map(|(_, lane)| lane).collect()
}

/// The rows of `part` holding `id`, conformed to `schema`.
fn read_part(
    part: &Part,
    schema: &SchemaRef,
    id: &[u8],
    stopped: &AtomicBool,
) -> Result<Vec<RecordBatch>, QueryError> {
    if stopped.load(Ordering::Relaxed) {
        return Ok(Vec::new());
    }
    let fail = |e: &dyn std::fmt::Display| failed(&part.file, e);
    let file = File::open(&part.file.path).map_err(|e| fail(&e))?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, part.metadata.clone());
    let stored = Arc::clone(builder.schema());
    let id_at = stored
        .index_of(TRACE_ID)
        .map_err(|_| fail(&"no trace_id column"))?;
    // Root columns of the file and of its Arrow schema are numbered alike.
    let roots: Vec<usize> = stored
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| schema.field_with_name(f.name()).is_ok())
        .map(|(i, _)| i)
        .collect();
    let projection = ProjectionMask::roots(builder.parquet_schema(), roots);
    let id_only = ProjectionMask::roots(builder.parquet_schema(), [id_at]);
    let wanted = id_scalar(id, stored.field(id_at).data_type()).map_err(|e| fail(&e))?;
    let predicate = ArrowPredicateFn::new(id_only, move |batch: RecordBatch| {
        eq(batch.column(0), &wanted)
    });
    let mut builder = builder
        .with_row_groups(vec![part.row_group])
        .with_projection(projection)
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
        .with_batch_size(BATCH_ROWS);
    if let Some(selection) = &part.selection {
        builder = builder.with_row_selection(selection.clone());
    }
    let reader = builder.build().map_err(|e| fail(&e))?;
    reader
        .take_while(|_| !stopped.load(Ordering::Relaxed))
        .map(|batch| {
            batch
                .and_then(|b| conform(&b, schema))
                .map_err(|e| fail(&e))
        })
        .collect()
}

/// The rows of a recent batch holding `id`.
fn matching(batch: &RecordBatch, id: &[u8]) -> Result<RecordBatch, ArrowError> {
    let column = batch
        .column_by_name(TRACE_ID)
        .ok_or_else(|| ArrowError::SchemaError("no trace_id column".into()))?;
    filter_record_batch(batch, &eq(column, &id_scalar(id, column.data_type())?)?)
}

/// `id` as a scalar comparable with a `trace_id` column stored as `stored`.
fn id_scalar(id: &[u8], stored: &DataType) -> Result<Scalar<ArrayRef>, ArrowError> {
    Ok(Scalar::new(cast(&BinaryArray::from_vec(vec![id]), stored)?))
}

/// `batch` with `schema`'s columns, by name: cast where a file stored another type, all null
/// where it predates the column.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(Arc::clone(c)),
            Some(c) => cast(c, field.data_type()),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::parquet::schema::types::ColumnPath;
    use lakescope_collector::schema::span_rows::{StoredSpan, read_spans};
    use lakescope_collector::schema::spans::col;
    use lakescope_collector::stats::{TraceLookupLabel, stats};

    use crate::table::tests::{converted, write_spans_file};
    use crate::views::traces::{TraceId, trace};

    const HOUR: i64 = 3_600_000_000_000;

    fn trace_hex(t: usize) -> String {
        format!("{:032x}", 0x5b8e_fff7_9803_8103_u128 * (t as u128 + 1))
    }

    /// Spans `spans` of each of `traces` traces (OTLP/JSON), from `start` on, children of the
    /// trace's first span, with an attribute and an event that name the trace and the span.
    fn spans(traces: usize, spans: std::ops::Range<usize>, start: i64) -> String {
        let mut out = Vec::new();
        for s in spans {
            for t in 0..traces {
                let at = start + (s * traces + t) as i64 * 1_000;
                out.push(format!(
                    r#"{{"traceId":"{}","spanId":"{:016x}","name":"op {s}","kind":2,
                    "parentSpanId":"{:016x}",
                    "startTimeUnixNano":"{at}","endTimeUnixNano":"{}",
                    "attributes":[{{"key":"t","value":{{"intValue":"{t}"}}}}],
                    "events":[{{"timeUnixNano":"{at}","name":"e {t}/{s}"}}],
                    "status":{{"code":{}}}}}"#,
                    trace_hex(t),
                    t * 100 + s + 1,
                    t * 100 + 1,
                    at + 500,
                    s % 3,
                ));
            }
        }
        out.join(",")
    }

    /// Sorted as the trace view sorts.
    fn sorted(mut spans: Vec<StoredSpan>) -> Vec<StoredSpan> {
        spans.sort_by(|a, b| {
            (a.span.start_time_unix_nano, &a.span.span_id)
                .cmp(&(b.span.start_time_unix_nano, &b.span.span_id))
        });
        spans
    }

    /// A trace read without SQL is the trace SQL reads, wherever its spans lie: a file with a
    /// trace index, a file probed by its bloom filters, an older file with neither and without
    /// two of today's columns, and the recent, unflushed batches.
    #[tokio::test]
    async fn a_trace_read_without_sql_is_the_one_sql_reads_from_every_kind_of_file() {
        let traces = 300;
        let start = 1_795_551_330_000_000_000_i64;
        let dir = tempfile::tempdir().unwrap();

        // Spans 0-1 of 6,000 traces (the first 300 are looked up): an indexed file of 12,000
        // rows in row groups of 5,000, pages of 512; a trace's two spans 6,000 rows apart, in
        // two row groups and two of the index's blocks of 4,096 rows, each block selecting
        // part of a row group.
        let indexed = write_spans_file(
            dir.path(),
            start,
            &converted(&spans(6_000, 0..2, start)),
            WriterProperties::builder()
                .set_max_row_group_row_count(Some(5_000))
                .set_data_page_row_count_limit(512)
                .set_write_batch_size(512)
                .build(),
        );
        // Spans 2-3: bloom filters on row groups of 64 rows.
        let id_column = ColumnPath::from(TRACE_ID);
        write_spans_file(
            dir.path(),
            start + HOUR,
            &converted(&spans(traces, 2..4, start + HOUR)),
            WriterProperties::builder()
                .set_max_row_group_row_count(Some(64))
                .set_column_bloom_filter_enabled(id_column.clone(), true)
                .set_column_bloom_filter_fpp(id_column.clone(), 0.01)
                .set_column_bloom_filter_max_ndv(id_column, 64)
                .build(),
        );
        // Span 4: neither, and written before two columns existed.
        let old = converted(&spans(traces, 4..5, start + 2 * HOUR));
        let keep: Vec<usize> = (0..old.num_columns())
            .filter(|&i| {
                let name = old.schema().field(i).name().clone();
                name != col::EXCEPTION_STACKTRACE && name != col::PARENT_SPAN_ID
            })
            .collect();
        write_spans_file(
            dir.path(),
            start + 2 * HOUR,
            &old.project(&keep).unwrap(),
            WriterProperties::builder().build(),
        );

        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        // Span 5: received, not yet flushed.
        let spans_table = lake
            .tables()
            .into_iter()
            .find(|t| t.name() == "spans")
            .unwrap();
        spans_table.push(1, converted(&spans(traces, 5..6, start + 3 * HOUR)));
        let engine = crate::QueryEngine::new(&lake, crate::QueryLimits::default()).unwrap();
        engine.trace_index().build(&indexed).unwrap();
        let first = const_hex::decode(trace_hex(0)).unwrap();
        let located = engine
            .trace_index()
            .locate(&LakeFile::new(indexed.clone(), 0, 0, 0), &[&first])
            .unwrap();
        assert!(
            located.scan.len() == 2
                && located.scan.iter().any(|(g, ranges)| ranges
                    .iter()
                    .map(|r| r.len())
                    .sum::<usize>()
                    < located.rows[*g]),
            "a trace's rows select part of a row group: {located:?}"
        );

        let via = |via| {
            let label = TraceLookupLabel { via };
            stats().query_trace_lookup_files.get_or_create(&label).get()
        };
        for t in [0, 1, 77, 150, 298, 299] {
            let id = TraceId::parse(&trace_hex(t)).unwrap();
            let (by_index, by_bloom) = (via("index"), via("bloom"));
            let read = trace(&engine, &id).await.unwrap();
            // Other tests may count lookups too, so at least: one file by its index, two probed.
            assert!(via("index") > by_index, "the indexed file was located");
            assert!(via("bloom") >= by_bloom + 2, "the other files were probed");
            let sql = format!("SELECT * FROM spans WHERE trace_id = {}", id.literal());
            let rows = engine.user_query(&sql, Vec::new()).await.unwrap();
            let mut queried = Vec::new();
            for batch in &rows.batches {
                queried.extend(read_spans(batch).unwrap());
            }
            assert_eq!(read, sorted(queried), "trace {t}");
            let names: Vec<&str> = read.iter().map(|s| s.span.name.as_str()).collect();
            assert_eq!(
                names,
                ["op 0", "op 1", "op 2", "op 3", "op 4", "op 5"],
                "trace {t}"
            );
            // The older file has no parent column: its span reads as a root.
            let roots: Vec<bool> = read
                .iter()
                .map(|s| s.span.parent_span_id.is_empty())
                .collect();
            assert_eq!(
                roots,
                [false, false, false, false, true, false],
                "trace {t}"
            );
            let events: Vec<&str> = read
                .iter()
                .map(|s| s.span.events[0].name.as_str())
                .collect();
            let expected: Vec<String> = (0..6).map(|s| format!("e {t}/{s}")).collect();
            assert_eq!(events, expected, "trace {t}");
        }

        let absent = TraceId::parse(&trace_hex(10_000)).unwrap();
        assert!(trace(&engine, &absent).await.unwrap().is_empty());
    }

    #[test]
    fn parts_are_spread_over_the_lanes_by_rows_and_not_read_once_stopped() {
        let file = Arc::new(LakeFile::new("/nowhere.parquet".into(), 0, 0, 0));
        let batch = converted(&spans(1, 0..1, 1_795_551_330_000_000_000));
        let mut bytes = Vec::new();
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None)
                .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let metadata =
            ArrowReaderMetadata::load(&bytes::Bytes::from(bytes), ArrowReaderOptions::new())
                .unwrap();
        let part = |rows| Part {
            file: Arc::clone(&file),
            metadata: metadata.clone(),
            row_group: 0,
            selection: None,
            rows,
        };
        let lanes = spread(vec![part(10), part(70), part(30), part(40)], 2);
        let rows: Vec<Vec<usize>> = lanes
            .iter()
            .map(|lane| lane.iter().map(|p| p.rows).collect())
            .collect();
        assert_eq!(rows, [vec![70, 10], vec![40, 30]]);
        assert_eq!(spread(vec![part(5)], 4).len(), 1);
        assert!(spread(Vec::new(), 2).is_empty());

        // A lookup that is gone reads no further part (this one's file does not exist).
        let schema = batch.schema();
        let stopped = AtomicBool::new(true);
        assert!(
            read_part(&part(1), &schema, b"id", &stopped)
                .unwrap()
                .is_empty()
        );
        stopped.store(false, Ordering::Relaxed);
        assert!(read_part(&part(1), &schema, b"id", &stopped).is_err());
    }
}
