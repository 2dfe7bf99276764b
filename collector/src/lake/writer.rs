//! Writes a flush's batches as Parquet files, one per hour partition, atomically: each file is
//! written and fsynced under `tmp/`, then renamed into its partition directory, so a reader never
//! sees half a file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef, TimestampNanosecondType};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;

use super::layout;
use super::table::{FlushJob, LakeFile};
use crate::schema::{SortKey, TableSpec};

/// Parquet key-value metadata key holding the flush's WAL sequence number.
pub const SEQ_KEY: &str = "lakescope.wal_seq";

/// Parquet key-value metadata key of a merged file: the names of the files it was merged from
/// (in its partition directory), comma-separated, so that summaries of the inputs can be
/// combined into the merged file's instead of reading its rows again.
pub const INPUTS_KEY: &str = "lakescope.inputs";

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("batch has no {0} column")]
    MissingColumn(&'static str),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Rows per row group of a flush file (a flush is rarely larger).
const FLUSH_ROW_GROUP_ROWS: usize = 256 * 1024;

/// Rows per row group of a merged file. Queries keep each file's footer and page index in
/// memory (`--query-metadata-cache`), ~700 B per column chunk: 32 Ki-row groups held 4.6 MB
/// per 2.1 M spans (3.2 MB with 64 Ki), ~200 MB of a 20-minute fill's live heap. Larger
/// groups have larger dictionaries, which a lookup by trace id decodes whole for every row
/// group it touches: 256 Ki-row groups made those lookups 1.6–2× slower (docs/benchmarks.md,
/// "Footers and merges under one GiB").
pub(crate) const MERGED_ROW_GROUP_ROWS: usize = 64 * 1024;

pub(crate) fn properties(spec: &TableSpec, rows: usize, seq: u64) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_max_row_group_row_count(Some(FLUSH_ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(4096)
        .set_key_value_metadata(Some(vec![KeyValue::new(SEQ_KEY.into(), seq.to_string())]));
    // Page statistics (min/max per page, and the column index built from them) only where a
    // filter can prune with them: the top-level values, less free text and bookkeeping
    // strings. Min/max of random ids and of attribute, event and link leaves never exclude a
    // page; they only cost comparisons per value and made every footer a query loads larger.
    for field in (spec.schema)().fields() {
        let name = field.name().as_str();
        if !field.data_type().is_nested() && !spec.ids.contains(&name) && !spec.is_unpruned(name) {
            builder = builder.set_column_statistics_enabled(
                ColumnPath::from(field.name().as_str()),
                EnabledStatistics::Page,
            );
        }
    }
    for column in spec.bloom {
        let path = ColumnPath::from(*column);
        builder = builder
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_fpp(path.clone(), 0.01)
            .set_column_bloom_filter_max_ndv(path, rows.max(1) as u64);
    }
    // Random ids do not repeat within a row group often enough for a dictionary to pay, and do
    // not compress: all their lengths are the same, so delta-encoded lengths leave just the bytes.
    for column in spec.ids {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(*column), false)
            .set_column_encoding(ColumnPath::from(*column), Encoding::DELTA_LENGTH_BYTE_ARRAY);
    }
    // A dictionary of values that hardly repeat is as large as the values, plus an index per
    // row, and zstd then spends most of a scan's time expanding it. Sorted times differ by
    // little from row to row, so their deltas bit-pack into a few bytes, and decode fast.
    for column in spec.deltas {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(*column), false)
            .set_column_encoding(ColumnPath::from(*column), Encoding::DELTA_BINARY_PACKED);
    }
    for leaf in compressed_leaves(spec) {
        builder = builder.set_column_compression(leaf, Compression::ZSTD(ZstdLevel::default()));
    }
    builder.build()
}

/// The leaf columns of `spec`'s files that are written zstd-compressed (see
/// [`TableSpec::compressed`]).
pub(crate) fn compressed_leaves(spec: &TableSpec) -> Vec<ColumnPath> {
    // The writer converts the schema the same way; if it could not, it fails the write anyway.
    let Ok(descriptor) = ArrowSchemaConverter::new().convert(&(spec.schema)()) else {
        return Vec::new();
    };
    descriptor
        .columns()
        .iter()
        .map(|column| column.path().clone())
        .filter(|path| {
            let leaf = path.string();
            spec.compressed.iter().any(|name| {
                leaf.strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            })
        })
        .collect()
}

/// Row indices of `times` (the table's `time_column`) by hour partition.
fn split_by_partition(
    times: &dyn Array,
    time_column: &'static str,
) -> Result<BTreeMap<i64, Vec<u32>>, WriteError> {
    let times = times
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or(WriteError::MissingColumn(time_column))?;
    let mut parts: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (i, t) in times.values().iter().enumerate() {
        parts
            .entry(layout::partition_of(*t))
            .or_default()
            .push(i as u32);
    }
    Ok(parts)
}

/// Rows a flush reorders into one batch at a time while it writes them in storage order.
const FLUSH_CHUNK_ROWS: usize = 8192;

/// Each hour partition's rows of `batch`, in storage order (`TableSpec::sort`: by service
/// first, so that files prune well on the common filters). Only the sort columns are copied to
/// find it.
fn storage_order(
    spec: &TableSpec,
    batch: &RecordBatch,
) -> Result<BTreeMap<i64, UInt32Array>, WriteError> {
    let times = batch
        .column_by_name(spec.time_column)
        .ok_or(WriteError::MissingColumn(spec.time_column))?;
    let parts = split_by_partition(times.as_ref(), spec.time_column)?;
    let single = parts.len() == 1;
    let mut ordered = BTreeMap::new();
    for (partition_start, rows) in parts {
        let rows = (!single).then(|| UInt32Array::from(rows));
        let sort_columns = sort_keys(spec, batch, rows.as_ref())?;
        let order = super::order::sort_to_indices(&sort_columns)?;
        let order = match &rows {
            Some(rows) => take(rows, &order, None)?.as_primitive().clone(),
            None => order,
        };
        ordered.insert(partition_start, order);
    }
    Ok(ordered)
}

/// The values `spec.sort` orders `batch`'s rows by, key by key (of `rows` only, when given).
pub(crate) fn sort_keys(
    spec: &TableSpec,
    batch: &RecordBatch,
    rows: Option<&UInt32Array>,
) -> Result<Vec<ArrayRef>, WriteError> {
    spec.sort
        .iter()
        .map(|key| {
            let name = key.column();
            let values = batch
                .column_by_name(name)
                .ok_or(WriteError::MissingColumn(name))?;
            let values = match rows {
                Some(rows) => take(values.as_ref(), rows, None)?,
                None => Arc::clone(values),
            };
            Ok(match *key {
                SortKey::Column(_) => values,
                SortKey::Bucket { nanos, .. } => {
                    let times = values
                        .as_primitive_opt::<TimestampNanosecondType>()
                        .ok_or(WriteError::MissingColumn(name))?;
                    Arc::new(times.unary::<_, Int64Type>(|t| t / nanos)) as ArrayRef
                }
            })
        })
        .collect()
}

/// Creates `dir` and fsyncs every directory it had to create, so the new entries survive a crash.
pub(crate) fn create_dir_durably(dir: &Path) -> Result<(), WriteError> {
    if dir.exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durably(parent)?;
    }
    fs::create_dir(dir)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(io_err(dir))?;
    if let Some(parent) = dir.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(parent))?;
    }
    Ok(())
}

/// Writes one file of `rows` rows atomically and returns it: `fill` writes the rows.
#[allow(clippy::too_many_arguments)]
fn write_file(
    data_dir: &Path,
    spec: &TableSpec,
    partition_start: i64,
    seq: u64,
    n: usize,
    schema: &SchemaRef,
    rows: usize,
    fill: impl FnOnce(&mut ArrowWriter<File>) -> Result<(), WriteError>,
) -> Result<LakeFile, WriteError> {
    let tmp_dir = layout::tmp_dir(data_dir);
    create_dir_durably(&tmp_dir)?;
    let table = spec.name;
    let tmp = tmp_dir.join(format!("{table}-{}", layout::file_name(seq, n)));
    let written = (|| {
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut writer =
            ArrowWriter::try_new(file, Arc::clone(schema), Some(properties(spec, rows, seq)))?;
        fill(&mut writer)?;
        let file = writer.into_inner()?;
        file.sync_all().map_err(io_err(&tmp))?;
        Ok::<_, WriteError>(file.metadata().map_err(io_err(&tmp))?.len())
    })();
    let size = match written {
        Ok(size) => size,
        Err(e) => {
            // On a full disk the partial file would hold on to the space the retry needs.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };

    let dir = layout::table_dir(data_dir, table).join(layout::partition_dir(partition_start));
    create_dir_durably(&dir)?;
    let path = dir.join(layout::file_name(seq, n));
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&dir))?;
    Ok(LakeFile::new(path, size, partition_start, seq))
}

/// Writes a flush as one sorted file per hour partition. On error, removes the files it already
/// renamed into place, so a retry cannot duplicate rows.
pub fn write_flush(
    data_dir: &Path,
    spec: &'static TableSpec,
    job: &FlushJob,
) -> Result<Vec<LakeFile>, WriteError> {
    let Some(first) = job.batches.first() else {
        return Ok(Vec::new());
    };
    let all = concat_batches(&first.schema(), &job.batches)?;
    // The rows are reordered a chunk at a time as they are written: a sorted copy of the whole
    // flush, next to the concatenated one and the buffered batches that stay readable until
    // the files land, held ~37 MB of a 402 MB peak heap under load (heaptrack,
    // docs/benchmarks.md). Gathering straight from the batches (arrow's `interleave`) would
    // spare the concatenation too: 17 % fewer page faults, but 20 % more CPU per span under
    // load (docs/benchmarks.md, "Flushes gathered from the buffered batches").
    let parts = storage_order(spec, &all)?;
    let mut written = Vec::with_capacity(parts.len());
    for (n, (partition_start, order)) in parts.into_iter().enumerate() {
        let result = write_file(
            data_dir,
            spec,
            partition_start,
            job.last_seq,
            n,
            &all.schema(),
            order.len(),
            |writer| {
                for start in (0..order.len()).step_by(FLUSH_CHUNK_ROWS) {
                    let chunk = order.slice(start, FLUSH_CHUNK_ROWS.min(order.len() - start));
                    writer.write(&super::take::take_batch(&all, &chunk)?)?;
                }
                Ok(())
            },
        );
        match result {
            Ok(file) => written.push(file),
            Err(e) => {
                for file in &written {
                    if let Err(rm) = fs::remove_file(&file.path) {
                        tracing::error!(path = %file.path.display(), error = %rm, "could not remove a file of a failed flush; its rows may be duplicated after the retry");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::{Int64Type, TimestampNanosecondType};
    use datafusion::arrow::row::{RowConverter, SortField};
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::basic::Encoding;

    use super::*;
    use crate::lake::compaction::tests::spans_batch;
    use crate::lake::table::FlushJob;
    use crate::schema::spans::{TABLE, col};

    /// span id → (start, duration) of every row.
    fn times_by_span(batch: &RecordBatch) -> BTreeMap<Vec<u8>, (i64, i64)> {
        let ids = batch
            .column_by_name(col::SPAN_ID)
            .unwrap()
            .as_binary::<i32>();
        let start = batch
            .column_by_name(col::START_TIME)
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        let duration = batch
            .column_by_name(col::DURATION_NS)
            .unwrap()
            .as_primitive::<Int64Type>();
        (0..batch.num_rows())
            .map(|i| (ids.value(i).to_vec(), (start.value(i), duration.value(i))))
            .collect()
    }

    #[test]
    fn times_and_durations_are_delta_encoded_without_a_dictionary_and_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let batch = spans_batch(7, 8_000, 10);
        let sent = times_by_span(&batch);
        assert_eq!(sent.len(), 8_000);
        let job = FlushJob {
            rows: batch.num_rows(),
            batches: vec![batch],
            last_seq: 1,
        };
        let files = write_flush(dir.path(), &TABLE, &job).unwrap();
        assert_eq!(files.len(), 1);

        let builder =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&files[0].path).unwrap()).unwrap();
        let metadata = builder.metadata().clone();
        // The end is derived when read (start + duration), never stored.
        let stored: Vec<String> = metadata
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.path().string())
            .collect();
        assert!(stored.iter().any(|c| c == col::DURATION_NS));
        assert!(!stored.iter().any(|c| c == col::END_TIME), "{stored:?}");
        for group in metadata.row_groups() {
            for column in group.columns() {
                let name = column.column_path().string();
                let encodings: Vec<Encoding> = column.encodings().collect();
                if [col::START_TIME, col::DURATION_NS].contains(&name.as_str()) {
                    assert!(
                        encodings.contains(&Encoding::DELTA_BINARY_PACKED),
                        "{name}: {encodings:?}"
                    );
                    assert_eq!(column.dictionary_page_offset(), None, "{name}");
                } else if name == col::SERVICE_NAME {
                    // Columns of few values keep their dictionary.
                    assert!(column.dictionary_page_offset().is_some(), "{name}");
                }
                // Statistics where they can prune: top-level values, not ids, nested leaves or
                // free text.
                let pruning = !name.contains('.')
                    && !TABLE.ids.contains(&name.as_str())
                    && !TABLE.is_unpruned(&name);
                assert_eq!(column.statistics().is_some(), pruning, "{name}");
                if [col::STATUS_MESSAGE, col::RESOURCE_SCHEMA_URL].contains(&name.as_str()) {
                    assert!(column.statistics().is_none(), "{name}");
                }
                if [col::SERVICE_NAME, col::NAME, col::STATUS_CODE].contains(&name.as_str()) {
                    assert!(column.statistics().is_some(), "{name}");
                }
                // zstd only where it finds something: text and attributes, not the span id.
                let zstd = matches!(column.compression(), Compression::ZSTD(_));
                let expected = name == col::NAME
                    || name == col::TRACE_ID
                    || name.starts_with("attributes.")
                    || name.starts_with("events.list.item.attributes.");
                let plain = name == col::SPAN_ID
                    || name == col::DURATION_NS
                    || name == col::SERVICE_NAME
                    || name.starts_with("links.list.item.trace_id")
                    || name == "events.list.item.name";
                assert!(!(expected && plain), "{name}");
                if expected || plain {
                    assert_eq!(zstd, expected, "{name}");
                }
                assert_eq!(
                    zstd,
                    compressed_leaves(&TABLE).contains(column.column_path()),
                    "{name}"
                );
            }
        }

        let mut read = BTreeMap::new();
        for batch in builder.build().unwrap() {
            read.extend(times_by_span(&batch.unwrap()));
        }
        assert_eq!(read, sent);
    }

    #[test]
    fn every_name_a_table_compresses_is_one_of_its_columns() {
        for spec in [
            &TABLE,
            &crate::schema::logs::TABLE,
            &crate::schema::metrics::TABLE,
        ] {
            let leaves = compressed_leaves(spec);
            for name in spec.compressed {
                let found = leaves.iter().any(|leaf| {
                    let leaf = leaf.string();
                    leaf == *name || leaf.starts_with(&format!("{name}."))
                });
                assert!(found, "{}: {name} names no column", spec.name);
            }
            // Not every leaf: the point is to leave the incompressible ones plain.
            let all = ArrowSchemaConverter::new()
                .convert(&(spec.schema)())
                .unwrap()
                .num_columns();
            assert!(
                leaves.len() < all / 2,
                "{}: {} of {all}",
                spec.name,
                leaves.len()
            );
        }
    }

    /// Every row of `batch`, by (trace id, span id).
    fn rows_by_id(batch: &RecordBatch) -> HashMap<(Vec<u8>, Vec<u8>), RecordBatch> {
        let id = |name| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_binary::<i32>()
                .clone()
        };
        let (traces, spans) = (id(col::TRACE_ID), id(col::SPAN_ID));
        (0..batch.num_rows())
            .map(|i| {
                let key = (traces.value(i).to_vec(), spans.value(i).to_vec());
                (key, batch.slice(i, 1))
            })
            .collect()
    }

    #[test]
    fn a_flush_writes_each_hours_rows_in_storage_order_gathered_from_every_batch() {
        let dir = tempfile::tempdir().unwrap();
        let hour = layout::PARTITION_NANOS;
        // Three batches over two hours; the first hour's 16,000 rows span two gathered chunks.
        let batches = vec![
            spans_batch(1, 4_000, 5),
            spans_batch(2, 4_000, 6),
            spans_batch(3, 12_000, 5),
        ];
        let all = concat_batches(&batches[0].schema(), &batches).unwrap();
        let sent = rows_by_id(&all);
        assert_eq!(sent.len(), 20_000);
        let job = FlushJob {
            rows: all.num_rows(),
            batches,
            last_seq: 3,
        };
        let files = write_flush(dir.path(), &TABLE, &job).unwrap();
        let starts: Vec<i64> = files.iter().map(|f| f.partition_start).collect();
        assert_eq!(starts, vec![5 * hour, 6 * hour]);

        let keys: Vec<SortField> = sort_keys(&TABLE, &all, None)
            .unwrap()
            .iter()
            .map(|values| SortField::new(values.data_type().clone()))
            .collect();
        let converter = RowConverter::new(keys).unwrap();
        let mut seen = 0;
        for (file, expected_rows) in files.iter().zip([16_000, 4_000]) {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&file.path).unwrap())
                .unwrap()
                .build()
                .unwrap();
            let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
            let read = concat_batches(&read[0].schema(), &read).unwrap();
            assert_eq!(read.num_rows(), expected_rows);
            // In storage order: service, status, second of the start, trace, start never
            // decrease.
            let key_columns = sort_keys(&TABLE, &read, None).unwrap();
            let ordered = converter.convert_columns(&key_columns).unwrap();
            for i in 1..ordered.num_rows() {
                assert!(ordered.row(i - 1) <= ordered.row(i), "row {i} of {file:?}");
            }
            // Every row is the row sent, attributes and all, in its own hour's file.
            for (key, row) in rows_by_id(&read) {
                assert_eq!(sent[&key], row, "{key:?}");
                let start = row
                    .column_by_name(col::START_TIME)
                    .unwrap()
                    .as_primitive::<TimestampNanosecondType>()
                    .value(0);
                assert_eq!(layout::partition_of(start), file.partition_start);
                seen += 1;
            }
        }
        assert_eq!(seen, 20_000);
    }
}
