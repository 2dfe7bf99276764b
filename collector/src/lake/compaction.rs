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
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::logical_expr::col;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::layout::{self, PARTITION_NANOS};
use super::table::LakeFile;
use super::writer::{WriteError, create_dir_durably, properties};
use super::{Lake, Table};

/// When and how much to compact.
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// A partition is compacted once its hour ended this long ago (late data has mostly
    /// arrived), and again whenever late data added files.
    pub delay: Duration,
    /// Fewest files worth merging.
    pub min_files: usize,
    /// Most bytes of input files one merge reads (bounds its time; its memory is bounded by the
    /// sort's spilling).
    pub max_input_bytes: u64,
    /// A file this large is left as it is: late data arriving for its hour is merged into new
    /// files of its own instead of rewriting it.
    pub large_file_bytes: u64,
    /// Memory the merge's sort may use before it spills to disk.
    pub memory_bytes: usize,
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
            memory_bytes: 256 * 1024 * 1024,
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
/// `max_input_bytes`; per other partition, the first run of `live_min_files` or
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
        for f in group {
            let large = f.size >= policy.large_file_bytes;
            if large || (!run.is_empty() && bytes + f.size > policy.max_input_bytes) {
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
/// end a run) within `max_input_bytes`, when it has `live_min_files` or more.
fn live_run(group: &[&Arc<LakeFile>], policy: &CompactionPolicy) -> Option<Vec<Arc<LakeFile>>> {
    let wanted = policy.live_min_files;
    if wanted < 2 {
        return None;
    }
    let mut run: Vec<Arc<LakeFile>> = Vec::new();
    let mut bytes = 0u64;
    for f in group {
        let merged = layout::first_seq(&f.path, f.seq) != f.seq;
        if merged || (!run.is_empty() && bytes + f.size > policy.max_input_bytes) {
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
    Query(#[from] datafusion::error::DataFusionError),
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
pub async fn compact(
    lake: &Lake,
    table: &Table,
    plan: &Plan,
    policy: &CompactionPolicy,
) -> Result<bool, CompactionError> {
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

    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(
            datafusion::execution::memory_pool::FairSpillPool::new(policy.memory_bytes),
        ))
        .build_arc()?;
    // One partition: the sort spills sorted runs and merges them within its own reservation.
    // With two, each partition's sort can take the whole pool and the merge of the partitions
    // then finds none left: merges of ~400 MB of input failed that way, and were retried forever.
    let ctx =
        SessionContext::new_with_config_rt(SessionConfig::new().with_target_partitions(1), runtime);
    let paths: Vec<String> = plan
        .inputs
        .iter()
        .map(|f| f.path.to_string_lossy().into_owned())
        .collect();
    let frame = ctx
        .read_parquet(paths, ParquetReadOptions::default().schema(&table.schema()))
        .await?
        .sort(spec.sort.iter().map(|c| col(*c).sort(true, true)).collect())?;
    let mut stream = frame.execute_stream().await?;
    // Bloom filters are sized per row group.
    let rows_hint: usize = 32 * 1024;
    let result = async {
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut writer = ArrowWriter::try_new(
            file,
            table.schema(),
            // Row groups of 32 Ki rows, not a flush file's 256 Ki: a trace's spans are spread
            // over every service's rows of a merged file, and its bloom filters (one per row
            // group) must still leave few row groups to read for a lookup by trace id.
            Some(
                properties(spec, rows_hint, last)
                    .into_builder()
                    .set_max_row_group_row_count(Some(32 * 1024))
                    .build(),
            ),
        )
        .map_err(WriteError::from)?;
        while let Some(batch) = stream.next().await {
            writer.write(&batch?).map_err(WriteError::from)?;
        }
        let file = writer.into_inner().map_err(WriteError::from)?;
        file.sync_all().map_err(io_err(&tmp))?;
        Ok::<_, CompactionError>(file.metadata().map_err(io_err(&tmp))?.len())
    }
    .await;
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

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Compacts every due partition of every table, checking every `every`, until `stop`.
pub async fn run(
    lake: Arc<Lake>,
    policy: CompactionPolicy,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
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
                match compact(&lake, &table, &plan, &policy).await {
                    Ok(true) => {
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
            memory_bytes: 1 << 20,
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
            memory_bytes: 1 << 20,
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
            memory_bytes: 1 << 20,
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_merge_that_must_spill_completes_within_a_small_sort_pool() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let table = Arc::clone(&lake.spans);
        let hour = 10;
        for tag in 1..=4u8 {
            let batch = spans_batch(tag, 40_000, hour);
            let rows = batch.num_rows();
            let job = crate::lake::table::FlushJob {
                batches: vec![batch],
                last_seq: u64::from(tag),
                rows,
            };
            let files = super::super::writer::write_flush(dir.path(), table.spec(), &job).unwrap();
            table.commit_flush(files);
        }
        // Far less sort memory than the ~100 MB of Arrow data the merge sorts: it must spill.
        let policy = CompactionPolicy {
            memory_bytes: 24 << 20,
            ..CompactionPolicy::default()
        };
        let plan = Plan {
            partition_start: hour * HOUR,
            inputs: table.files().to_vec(),
        };
        assert_eq!(plan.inputs.len(), 4);
        assert!(compact(&lake, &table, &plan, &policy).await.unwrap());
        let files = table.files();
        assert_eq!(files.len(), 1);
        let file = File::open(&files[0].path).unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                file,
            )
            .unwrap()
            .build()
            .unwrap();
        // Sorted like a flush file: service, kind, status, start time.
        let mut rows = 0;
        let mut last: Option<(String, String, String, i64)> = None;
        for batch in reader {
            use datafusion::arrow::array::AsArray;
            let batch = batch.unwrap();
            rows += batch.num_rows();
            let text = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap()
                    .as_string::<i32>()
                    .clone()
            };
            let (services, kinds, statuses) =
                (text("service_name"), text("span_kind"), text("status_code"));
            let times = batch
                .column_by_name("start_time")
                .unwrap()
                .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
                .clone();
            for i in 0..batch.num_rows() {
                let key = (
                    services.value(i).to_owned(),
                    kinds.value(i).to_owned(),
                    statuses.value(i).to_owned(),
                    times.value(i),
                );
                if let Some(prev) = &last {
                    assert!(prev <= &key, "{prev:?} before {key:?}");
                }
                last = Some(key);
            }
        }
        assert_eq!(rows, 160_000);
    }
}
