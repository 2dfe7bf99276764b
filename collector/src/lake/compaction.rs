//! Compaction: the many small files of an hour partition (one per flush) are merged in the
//! background into one file sorted like every flush file, so queries open fewer files and skip
//! more pages.
//!
//! The merged file is written under `tmp/`, fsynced and renamed into the partition as
//! [`layout::compacted_name`]`(first, last)`, then swapped for its inputs in one step
//! ([`Table::replace_files`]); the inputs are deleted once no query reads them. The rename is the
//! commit point: after a crash before it, the temporary file is discarded; after it, the next
//! start deletes the inputs the compacted file covers (see [`super::Lake::open`]). A query never
//! sees both or neither.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{RecordBatch, new_null_array};
use datafusion::arrow::compute::{SortOptions, cast};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, UnboundedMemoryPool};
use datafusion::logical_expr::Operator;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Literal, col as physical_col};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::layout::{self, PARTITION_NANOS};
use super::table::LakeFile;
use super::writer::{
    INPUTS_KEY, MERGED_ROW_GROUP_ROWS, SEQ_KEY, WriteError, create_dir_durably, properties,
};
use super::{Lake, Table};
use crate::schema::{SortKey, TableSpec};

/// When and how much to compact.
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// A partition is compacted once its hour ended this long ago (late data has mostly
    /// arrived), and again whenever late data added files.
    pub delay: Duration,
    /// Fewest files worth merging.
    pub min_files: usize,
    /// Most bytes of input files one merge reads (bounds its time).
    pub max_input_bytes: u64,
    /// Most files one merge reads (bounds its memory: each input holds a batch or two while
    /// the merge runs). At least 2.
    pub max_input_files: usize,
    /// A file this large is left as it is: late data arriving for its hour is merged into new
    /// files of its own instead of rewriting it.
    pub large_file_bytes: u64,
    /// In an hour still being written, this many or more consecutive flush files are merged into one,
    /// so the hour most queries look at holds a few files instead of one per flush (up to 120
    /// at 30 s flushes). The merged files are merged again once the hour has ended. 0 turns it
    /// off.
    pub live_min_files: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(300),
            min_files: 2,
            max_input_bytes: 1024 * 1024 * 1024,
            large_file_bytes: 128 * 1024 * 1024,
            max_input_files: 32,
            live_min_files: 10,
        }
    }
}

/// One merge: a run of consecutive (by sequence number) files of one partition.
#[derive(Debug)]
pub struct Plan {
    pub partition_start: i64,
    pub inputs: Vec<Arc<LakeFile>>,
}

/// The merges due at `now` (Unix ns): per partition whose hour ended `delay` ago, the first run
/// of `min_files` or more consecutive (in sequence order) files below `large_file_bytes`, within
/// `max_input_bytes` and `max_input_files`; per other partition, the first run of `live_min_files` or
/// more consecutive flush files (see [`live_run`]). Runs never skip a file, so a merged file's
/// sequence range holds exactly its inputs.
pub fn plan(files: &[Arc<LakeFile>], policy: &CompactionPolicy, now: i64) -> Vec<Plan> {
    let delay = i64::try_from(policy.delay.as_nanos()).unwrap_or(i64::MAX);
    let mut plans = Vec::new();
    let mut by_partition: Vec<&Arc<LakeFile>> = files.iter().collect();
    by_partition.sort_by_key(|f| (f.partition_start, f.seq));
    for group in by_partition.chunk_by(|a, b| a.partition_start == b.partition_start) {
        let start = group[0].partition_start;
        if start.saturating_add(PARTITION_NANOS).saturating_add(delay) > now {
            if let Some(run) = live_run(group, policy) {
                plans.push(Plan {
                    partition_start: start,
                    inputs: run,
                });
            }
            continue;
        }
        let mut run = Vec::new();
        let mut bytes = 0u64;
        let enough = policy.min_files.max(2);
        let max_files = policy.max_input_files.max(enough);
        for f in group {
            let large = f.size >= policy.large_file_bytes;
            let full = !run.is_empty()
                && (bytes + f.size > policy.max_input_bytes || run.len() >= max_files);
            if large || full {
                if run.len() >= enough {
                    break;
                }
                // Too few files before this one to merge: they stay as they are, and a run may
                // begin here (after it, if it is large), so files behind a merged file that
                // cannot grow are still merged among themselves.
                run.clear();
                bytes = 0;
                if large {
                    continue;
                }
            }
            bytes += f.size;
            run.push(Arc::clone(f));
        }
        if run.len() >= enough {
            plans.push(Plan {
                partition_start: start,
                inputs: run,
            });
        }
    }
    plans
}

/// In a partition still being written: the first run of consecutive flush files (merged files
/// end a run) within `max_input_bytes` and `max_input_files`, when it has `live_min_files` or
/// more.
fn live_run(group: &[&Arc<LakeFile>], policy: &CompactionPolicy) -> Option<Vec<Arc<LakeFile>>> {
    let wanted = policy.live_min_files;
    if wanted < 2 {
        return None;
    }
    let max_files = policy.max_input_files.max(wanted);
    let mut run: Vec<Arc<LakeFile>> = Vec::new();
    let mut bytes = 0u64;
    for f in group {
        let merged = layout::first_seq(&f.path, f.seq) != f.seq;
        let full =
            !run.is_empty() && (bytes + f.size > policy.max_input_bytes || run.len() >= max_files);
        if merged || full {
            if run.len() >= wanted {
                break;
            }
            run.clear();
            bytes = 0;
            if merged {
                continue;
            }
        }
        bytes += f.size;
        run.push(Arc::clone(f));
    }
    (run.len() >= wanted).then_some(run)
}

#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("merging: {0}")]
    Query(#[from] DataFusionError),
    #[error("the {0} table has no sort key to merge by")]
    NoSortKey(&'static str),
    #[error("the merge task ended: {0}")]
    Task(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CompactionError + '_ {
    move |source| CompactionError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Runs one merge and swaps its output in. Returns false when the inputs changed meanwhile
/// (retention removed one); the output is then discarded.
pub async fn compact(lake: &Lake, table: &Table, plan: &Plan) -> Result<bool, CompactionError> {
    let spec = table.spec();
    let first = plan
        .inputs
        .iter()
        .map(|f| layout::first_seq(&f.path, f.seq))
        .min()
        .unwrap_or(0);
    let last = plan.inputs.iter().map(|f| f.seq).max().unwrap_or(0);
    let name = layout::compacted_name(first, last);
    let tmp_dir = layout::tmp_dir(lake.data_dir());
    create_dir_durably(&tmp_dir)?;
    let tmp = tmp_dir.join(format!("{}-{name}", spec.name));

    let paths: Vec<PathBuf> = plan.inputs.iter().map(|f| f.path.clone()).collect();
    let schema = table.schema();
    let out = tmp.clone();
    let result = tokio::task::spawn_blocking(move || {
        let _stage = crate::memtag::enter(crate::memtag::Stage::Merge);
        merge_sorted(&paths, &schema, spec, last, &out)
    })
    .await
    .unwrap_or_else(|e| Err(CompactionError::Task(e.to_string())));
    let size = match result {
        Ok(size) => size,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let dir = layout::table_dir(lake.data_dir(), spec.name)
        .join(layout::partition_dir(plan.partition_start));
    let path = dir.join(&name);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&dir))?;
    let inputs: HashSet<PathBuf> = plan.inputs.iter().map(|f| f.path.clone()).collect();
    let output = LakeFile::new(path.clone(), size, plan.partition_start, last);
    if table.replace_files(&inputs, output) {
        Ok(true)
    } else {
        // Never visible; the inputs stay.
        let _ = fs::remove_file(&path);
        Ok(false)
    }
}

/// Rows per batch a merge reads from each input: each input holds one or two such batches at a
/// time. At 4,096 rows a merge of 32 flush files held ~205 MB, ~6.4 MB per input; at 1,024,
/// ~77 MB (docs/benchmarks.md, "Footers and merges under one GiB").
const MERGE_READ_ROWS: usize = 1024;

/// Rows per batch a merge writes: the merge interleaves and the writer encodes per batch, and
/// the output batch only refers to the inputs' rows until it is built.
const MERGE_WRITE_ROWS: usize = 4096;

/// Merges `paths`, each sorted by the table's sort key (flush files are written sorted, merged
/// files are merges of them), into one sorted file at `out`; returns its size. A streaming
/// k-way merge: each input is read page by page, a batch at a time, so memory is about
/// inputs × batch, whatever the inputs' total size, and nothing is sorted or spilled again.
/// Runs on a blocking thread (the Parquet reads and writes are synchronous).
fn merge_sorted(
    paths: &[PathBuf],
    schema: &SchemaRef,
    spec: &'static TableSpec,
    last: u64,
    out: &Path,
) -> Result<u64, CompactionError> {
    let readers = paths
        .iter()
        .map(|path| {
            let file = File::open(path).map_err(io_err(path))?;
            Ok(ParquetRecordBatchReaderBuilder::try_new(file).map_err(WriteError::from)?)
        })
        .collect::<Result<Vec<_>, CompactionError>>()?;
    let streams = readers
        .into_iter()
        .map(|builder| {
            let reader = builder
                .with_batch_size(MERGE_READ_ROWS)
                .build()
                .map_err(WriteError::from)?;
            let target = Arc::clone(schema);
            let batches = reader.map(move |batch| {
                batch
                    .and_then(|batch| conform(&batch, &target))
                    .map_err(DataFusionError::from)
            });
            Ok(Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(schema),
                futures::stream::iter(batches),
            )) as SendableRecordBatchStream)
        })
        .collect::<Result<Vec<_>, CompactionError>>()?;
    let ordering = LexOrdering::new(
        spec.sort
            .iter()
            .map(|key| {
                let column = physical_col(key.column(), schema)?;
                let expr: Arc<dyn PhysicalExpr> = match *key {
                    SortKey::Column(_) => column,
                    // The flush's bucket: an `Int64` division truncates as Rust's does.
                    SortKey::Bucket { nanos, .. } => Arc::new(BinaryExpr::new(
                        Arc::new(CastExpr::new(column, DataType::Int64, None)),
                        Operator::Divide,
                        Arc::new(Literal::new(ScalarValue::Int64(Some(nanos)))),
                    )),
                };
                Ok(PhysicalSortExpr::new(expr, SortOptions::default()))
            })
            .collect::<Result<Vec<_>, DataFusionError>>()?,
    )
    .ok_or(CompactionError::NoSortKey(spec.name))?;
    // Memory is bounded by the number of inputs (`CompactionPolicy::max_input_files`), not by
    // a pool: a merge that failed for want of memory would be retried forever.
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
    let mut merged = StreamingMergeBuilder::new()
        .with_streams(streams)
        .with_schema(Arc::clone(schema))
        .with_expressions(&ordering)
        .with_metrics(BaselineMetrics::new(&ExecutionPlanMetricsSet::new(), 0))
        .with_batch_size(MERGE_WRITE_ROWS)
        .with_reservation(MemoryConsumer::new("compaction merge").register(&pool))
        .build()?;
    let file = File::create(out).map_err(io_err(out))?;
    let mut writer = ArrowWriter::try_new(
        file,
        Arc::clone(schema),
        Some(
            properties(spec, MERGED_ROW_GROUP_ROWS, last)
                .into_builder()
                .set_max_row_group_row_count(Some(MERGED_ROW_GROUP_ROWS))
                .set_key_value_metadata(Some(vec![
                    KeyValue::new(SEQ_KEY.into(), last.to_string()),
                    KeyValue::new(INPUTS_KEY.into(), input_names(paths)),
                ]))
                .build(),
        ),
    )
    .map_err(WriteError::from)?;
    // The merge's streams are plain iterators: polling them never waits on I/O readiness.
    futures::executor::block_on(async {
        while let Some(batch) = merged.next().await {
            writer.write(&batch?).map_err(WriteError::from)?;
        }
        Ok::<_, CompactionError>(())
    })?;
    let file = writer.into_inner().map_err(WriteError::from)?;
    file.sync_all().map_err(io_err(out))?;
    Ok(file.metadata().map_err(io_err(out))?.len())
}

/// The inputs' file names, comma-separated (see [`INPUTS_KEY`]).
fn input_names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()))
        .collect::<Vec<_>>()
        .join(",")
}

/// `batch` with the table's columns, in the table's order: a file written before a column
/// existed gets nulls for it, and a column stored with an older type is cast.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().fields() == schema.fields() {
        return RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
            Some(column) => cast(column, field.data_type()),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Compacts every due partition of every table, checking every `every` (at once again after a
/// round that merged something), until `stop`.
pub async fn run(
    lake: Arc<Lake>,
    policy: CompactionPolicy,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        let mut merged = false;
        for table in lake.tables() {
            for plan in plan(&table.files(), &policy, now_nanos()) {
                if stop.is_cancelled() {
                    return;
                }
                let started = Instant::now();
                let input_bytes: u64 = plan.inputs.iter().map(|f| f.size).sum();
                let label = crate::stats::TableLabel {
                    table: table.name(),
                };
                let stats = crate::stats::stats();
                tracing::info!(
                    table = table.name(),
                    files = plan.inputs.len(),
                    input_bytes,
                    "compacting a partition"
                );
                match compact(&lake, &table, &plan).await {
                    Ok(true) => {
                        merged = true;
                        stats
                            .compaction_seconds
                            .get_or_create(&label)
                            .observe(started.elapsed().as_secs_f64());
                        stats
                            .compacted_files
                            .get_or_create(&label)
                            .inc_by(plan.inputs.len() as u64);
                        tracing::info!(
                            table = table.name(),
                            files = plan.inputs.len(),
                            input_bytes,
                            ms = started.elapsed().as_millis() as u64,
                            "compacted a partition"
                        );
                    }
                    Ok(false) => {
                        tracing::debug!(
                            table = table.name(),
                            "compaction inputs changed; retried later"
                        )
                    }
                    Err(error) => {
                        stats.compaction_failures.get_or_create(&label).inc();
                        tracing::error!(table = table.name(), %error, "compaction failed; retried later")
                    }
                }
            }
        }
        // A merge reads at most `max_input_files`: while flush files arrive faster than one
        // merge per interval takes them, merge again at once instead of letting them pile up.
        if merged {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const HOUR: i64 = PARTITION_NANOS;

    fn file(hour: i64, seq: u64, size: u64) -> Arc<LakeFile> {
        Arc::new(LakeFile::new(
            PathBuf::from(format!("/lake/{hour}/{seq}.parquet")),
            size,
            hour * HOUR,
            seq,
        ))
    }

    #[test]
    fn only_ended_partitions_with_enough_files_are_merged_within_the_byte_budget() {
        let files = vec![
            file(10, 1, 10),
            file(10, 2, 10),
            file(10, 5, 10),
            file(11, 3, 10),
            file(11, 4, 10),
            file(12, 6, 10),
            file(12, 7, 10),
        ];
        let policy = CompactionPolicy {
            delay: Duration::from_secs(60),
            min_files: 2,
            max_input_bytes: 25,
            large_file_bytes: 1000,
            max_input_files: 100,
            live_min_files: 0,
        };
        // 12:30: hours 10 and 11 ended; 12 is still being written.
        let plans = plan(&files, &policy, 12 * HOUR + HOUR / 2);
        let seqs: Vec<(i64, Vec<u64>)> = plans
            .iter()
            .map(|p| {
                (
                    p.partition_start / HOUR,
                    p.inputs.iter().map(|f| f.seq).collect(),
                )
            })
            .collect();
        // Hour 10 is cut at 25 bytes: two files now, the rest next round.
        assert_eq!(seqs, vec![(10, vec![1, 2]), (11, vec![3, 4])]);
        // Next round: the merged file cannot grow within the budget; the files behind it merge.
        let next = vec![
            merged(10, 1, 2, 20),
            file(10, 5, 10),
            file(10, 8, 10),
            file(10, 9, 10),
        ];
        let seqs: Vec<Vec<u64>> = plan(&next, &policy, 12 * HOUR + HOUR / 2)
            .iter()
            .map(|p| p.inputs.iter().map(|f| f.seq).collect())
            .collect();
        assert_eq!(seqs, vec![vec![5, 8]]);
        // Within the delay after 13:00, hour 12 waits.
        assert_eq!(plan(&files, &policy, 13 * HOUR + 1).len(), 2);
        assert_eq!(plan(&files, &policy, 13 * HOUR + 61_000_000_000).len(), 3);
    }

    fn merged(hour: i64, first: u64, last: u64, size: u64) -> Arc<LakeFile> {
        Arc::new(LakeFile::new(
            PathBuf::from(format!(
                "/lake/{hour}/{}",
                layout::compacted_name(first, last)
            )),
            size,
            hour * HOUR,
            last,
        ))
    }

    #[test]
    fn the_current_hours_flush_files_merge_in_runs_that_merged_files_end() {
        let policy = CompactionPolicy {
            delay: Duration::from_secs(60),
            min_files: 2,
            max_input_bytes: 1000,
            large_file_bytes: 1000,
            max_input_files: 100,
            live_min_files: 3,
        };
        let seqs = |files: &[Arc<LakeFile>]| -> Vec<Vec<u64>> {
            plan(files, &policy, 12 * HOUR + HOUR / 2)
                .iter()
                .map(|p| p.inputs.iter().map(|f| f.seq).collect())
                .collect()
        };
        // Two flush files are not a run yet; three are.
        assert!(seqs(&[file(12, 1, 10), file(12, 2, 10)]).is_empty());
        assert_eq!(
            seqs(&[file(12, 1, 10), file(12, 2, 10), file(12, 3, 10)]),
            vec![vec![1, 2, 3]]
        );
        // A merged file is never an input while the hour is written; a short run before it is
        // left for the merge after the hour.
        let files = vec![
            file(12, 1, 10),
            merged(12, 2, 4, 30),
            file(12, 5, 10),
            file(12, 6, 10),
            file(12, 7, 10),
            file(12, 8, 10),
        ];
        assert_eq!(seqs(&files), vec![vec![5, 6, 7, 8]]);
        // After the hour, everything small merges into one file again.
        let after: Vec<Vec<u64>> = plan(&files, &policy, 13 * HOUR + 61_000_000_000)
            .iter()
            .map(|p| p.inputs.iter().map(|f| f.seq).collect())
            .collect();
        assert_eq!(after, vec![vec![1, 4, 5, 6, 7, 8]]);
        // Off when fewer than two files are asked for.
        let off = CompactionPolicy {
            live_min_files: 0,
            ..policy.clone()
        };
        assert!(plan(&files, &off, 12 * HOUR + HOUR / 2).is_empty());
    }

    #[test]
    fn a_large_merged_file_is_not_rewritten_for_late_data() {
        let policy = CompactionPolicy {
            delay: Duration::ZERO,
            min_files: 2,
            max_input_bytes: 1 << 30,
            large_file_bytes: 100,
            max_input_files: 100,
            live_min_files: 0,
        };
        // A large merged file, then late data: only the small files merge.
        let files = vec![file(10, 9, 500), file(10, 12, 10), file(10, 13, 10)];
        let plans = plan(&files, &policy, 20 * HOUR);
        let seqs: Vec<u64> = plans[0].inputs.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, vec![12, 13]);
        // A large file between small ones ends the run: runs never skip a file.
        let files = vec![file(10, 1, 10), file(10, 2, 500), file(10, 3, 10)];
        assert!(plan(&files, &policy, 20 * HOUR).is_empty());
    }

    /// `n` spans of a few services and operations, each with attributes, in the hour at `hour`.
    pub(crate) fn spans_batch(
        tag: u8,
        n: usize,
        hour: i64,
    ) -> datafusion::arrow::array::RecordBatch {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let kv = |k: &str, v: String| KeyValue {
            key: k.into(),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(Value::StringValue(v)),
            }),
        };
        let resource_spans = (0..4)
            .map(|service| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", format!("service-{service}"))],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..n / 4)
                        .map(|i| {
                            let mut trace_id = [tag; 16];
                            trace_id[..8].copy_from_slice(&(i as u64).to_be_bytes());
                            let start =
                                (hour * HOUR) as u64 + (i as u64 * 7_919 % 3_000) * 1_000_000_000;
                            Span {
                                trace_id: trace_id.to_vec(),
                                span_id: (i as u64 * 4 + service + 1).to_be_bytes().to_vec(),
                                name: format!("op-{}", i % 7),
                                kind: 2,
                                start_time_unix_nano: start,
                                end_time_unix_nano: start + (i as u64 % 1000) * 1_000_000,
                                attributes: vec![
                                    kv("http.route", format!("/route/{}", i % 13)),
                                    kv(
                                        "request.id",
                                        format!("{tag}-{service}-{i}-{}", "x".repeat(40)),
                                    ),
                                ],
                                ..Span::default()
                            }
                        })
                        .collect(),
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            })
            .collect();
        let request = ExportTraceServiceRequest { resource_spans };
        crate::convert::spans::convert(&request, &crate::limits::Limits::default())
            .expect("convert")
            .batch
    }

    /// Writes `batch` as flush `seq` would and adds its files to `table`.
    fn flush(lake: &Lake, table: &Table, seq: u64, batch: datafusion::arrow::array::RecordBatch) {
        let rows = batch.num_rows();
        let job = crate::lake::table::FlushJob {
            batches: vec![batch],
            last_seq: seq,
            rows,
        };
        let files = super::super::writer::write_flush(lake.data_dir(), table.spec(), &job).unwrap();
        table.commit_flush(files);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_merge_keeps_every_row_in_the_flush_order_and_fills_columns_older_files_lack() {
        use datafusion::arrow::array::AsArray;
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let table = Arc::clone(&lake.spans);
        let hour = 10;
        let mut span_ids = Vec::new();
        for tag in 1..=4u8 {
            let batch = spans_batch(tag, 40_000, hour);
            let ids = batch.column_by_name("span_id").unwrap().as_binary::<i32>();
            span_ids.extend(ids.iter().map(|id| (tag, id.unwrap().to_vec())));
            flush(&lake, &table, u64::from(tag), batch);
        }
        // The third file as a build before `http_route` existed would have written it.
        let third = table.files()[2].path.clone();
        let old = ParquetRecordBatchReaderBuilder::try_new(File::open(&third).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .map(|b| {
                let b = b.unwrap();
                let keep: Vec<usize> = (0..b.num_columns())
                    .filter(|&i| b.schema().field(i).name() != "http_route")
                    .collect();
                b.project(&keep).unwrap()
            })
            .collect::<Vec<_>>();
        let mut writer =
            ArrowWriter::try_new(File::create(&third).unwrap(), old[0].schema(), None).unwrap();
        for b in &old {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();

        let plan = Plan {
            partition_start: hour * HOUR,
            inputs: table.files().to_vec(),
        };
        assert_eq!(plan.inputs.len(), 4);
        assert!(compact(&lake, &table, &plan).await.unwrap());
        let files = table.files();
        assert_eq!(files.len(), 1);
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&files[0].path).unwrap()).unwrap();
        // The merged file names its inputs.
        let inputs = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == INPUTS_KEY))
            .and_then(|kv| kv.value.clone());
        let names: Vec<String> = plan
            .inputs
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(inputs, Some(names.join(",")));
        // Row groups of 64 Ki rows (footers stay small in memory), zstd-compressed where the
        // table says (the attributes, not the span ids).
        let metadata = Arc::clone(builder.metadata());
        let groups: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, [65_536, 65_536, 28_928]);
        let compressed = crate::lake::writer::compressed_leaves(table.spec());
        let mut zstd = 0;
        for column in metadata.row_groups().iter().flat_map(|g| g.columns()) {
            let is_zstd = matches!(
                column.compression(),
                datafusion::parquet::basic::Compression::ZSTD(_)
            );
            assert_eq!(
                is_zstd,
                compressed.contains(column.column_path()),
                "{}: {:?}",
                column.column_path(),
                column.compression()
            );
            zstd += usize::from(is_zstd);
        }
        assert_eq!(zstd, 3 * compressed.len());
        let names: Vec<String> = compressed.iter().map(|p| p.string()).collect();
        assert!(names.iter().any(|n| n == "attributes.entries.value"));
        assert!(!names.iter().any(|n| n == "span_id"));
        let reader = builder.build().unwrap();
        // Sorted like a flush file: service, status, second of the start, trace, start.
        let mut merged_ids = Vec::new();
        let mut last: Option<(String, String, i64, Vec<u8>, i64)> = None;
        let mut null_routes = 0;
        for batch in reader {
            let batch = batch.unwrap();
            assert_eq!(batch.schema(), table.schema());
            let text = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap()
                    .as_string::<i32>()
                    .clone()
            };
            let (services, statuses) = (text("service_name"), text("status_code"));
            let times = batch
                .column_by_name("start_time")
                .unwrap()
                .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
                .clone();
            let traces = batch.column_by_name("trace_id").unwrap().as_binary::<i32>();
            let ids = batch.column_by_name("span_id").unwrap().as_binary::<i32>();
            null_routes += batch.column_by_name("http_route").unwrap().null_count();
            for i in 0..batch.num_rows() {
                merged_ids.push((traces.value(i)[15], ids.value(i).to_vec()));
                let key = (
                    services.value(i).to_owned(),
                    statuses.value(i).to_owned(),
                    times.value(i) / 1_000_000_000,
                    traces.value(i).to_vec(),
                    times.value(i),
                );
                if let Some(prev) = &last {
                    assert!(prev <= &key, "{prev:?} before {key:?}");
                }
                last = Some(key);
            }
        }
        span_ids.sort();
        merged_ids.sort();
        assert_eq!(merged_ids.len(), 160_000);
        assert_eq!(merged_ids, span_ids);
        // Every span has a route, except the old file's, which read as nulls.
        assert_eq!(null_routes, 40_000);
    }

    /// Twelve files, at most three per merge, and an hour between rounds: the rounds that
    /// merged something are followed at once by the next, so all of them end in one file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn merges_follow_each_other_while_files_are_due() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Arc::new(Lake::open(dir.path()).unwrap());
        let table = Arc::clone(&lake.spans);
        for seq in 1..=12u8 {
            flush(&lake, &table, u64::from(seq), spans_batch(seq, 400, 10));
        }
        let policy = CompactionPolicy {
            delay: Duration::ZERO,
            max_input_files: 3,
            live_min_files: 0,
            ..CompactionPolicy::default()
        };
        let stop = CancellationToken::new();
        let merging = tokio::spawn(run(
            Arc::clone(&lake),
            policy,
            Duration::from_secs(3600),
            stop.clone(),
        ));
        let deadline = Instant::now() + Duration::from_secs(60);
        while table.files().len() > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        merging.await.unwrap();
        let files = table.files();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(layout::first_seq(&files[0].path, files[0].seq), 1);
        assert_eq!(files[0].seq, 12);
    }

    #[test]
    fn a_merge_reads_at_most_max_input_files() {
        let policy = CompactionPolicy {
            delay: Duration::from_secs(60),
            min_files: 2,
            max_input_bytes: 1 << 30,
            large_file_bytes: 1 << 30,
            max_input_files: 3,
            live_min_files: 2,
        };
        let files: Vec<_> = (1..=8).map(|seq| file(12, seq, 10)).collect();
        let seqs = |now| -> Vec<Vec<u64>> {
            plan(&files, &policy, now)
                .iter()
                .map(|p| p.inputs.iter().map(|f| f.seq).collect())
                .collect()
        };
        // While the hour is written and after it: the first three files, the rest later.
        assert_eq!(seqs(12 * HOUR + HOUR / 2), vec![vec![1, 2, 3]]);
        assert_eq!(seqs(14 * HOUR), vec![vec![1, 2, 3]]);
        // A live run is never cut below the files it waits for.
        let wide = CompactionPolicy {
            live_min_files: 5,
            ..policy.clone()
        };
        let live: Vec<usize> = plan(&files, &wide, 12 * HOUR + HOUR / 2)
            .iter()
            .map(|p| p.inputs.len())
            .collect();
        assert_eq!(live, vec![5]);
    }
}
