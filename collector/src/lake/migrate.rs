//! Lake format upgrades, applied when the lake opens.
//!
//! Format 1 stored trace and span ids as lowercase hex text (`Utf8`); format 2 stores their bytes
//! (`Binary`), which halves what joins on ids read and hash. A format-1 file is rewritten in
//! place: read whole, every id column (top level, and `trace_id`/`span_id` inside span links and
//! metric exemplars) decoded from hex, written to `tmp/`, fsynced and renamed over the original,
//! so a crash at any moment leaves either the old file or the new one. The data directory's
//! `FORMAT` file records the format once every file has it, so later starts skip the check.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, ListArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::writer::{WriteError, create_dir_durably, properties};
use super::{LakeFile, layout};
use crate::schema::TableSpec;

/// The format this version writes.
pub const FORMAT: u32 = 2;
/// The file under the data directory that records the format of every file in it.
pub const FORMAT_FILE: &str = "FORMAT";

/// Id columns, at any depth, by name.
const ID_NAMES: [&str; 3] = ["trace_id", "span_id", "parent_span_id"];

/// The format every file of `data_dir` has, or `None` when not recorded (format 1, or new).
pub fn recorded(data_dir: &Path) -> Option<u32> {
    fs::read_to_string(data_dir.join(FORMAT_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Records that every file of `data_dir` has the current format.
pub fn record(data_dir: &Path) -> Result<(), WriteError> {
    let path = data_dir.join(FORMAT_FILE);
    let tmp = data_dir.join(format!("{FORMAT_FILE}.tmp"));
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| WriteError::Io { path: p, source }
    };
    fs::write(&tmp, format!("{FORMAT}\n")).map_err(io(&tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io(data_dir))
}

fn is_old_id(field: &Field) -> bool {
    ID_NAMES.contains(&field.name().as_str()) && field.data_type() == &DataType::Utf8
}

/// True when `data_type` holds an id as text somewhere inside.
fn holds_old_ids(field: &Field) -> bool {
    if is_old_id(field) {
        return true;
    }
    match field.data_type() {
        DataType::List(item) => holds_old_ids(item),
        DataType::Struct(fields) => fields.iter().any(|f| holds_old_ids(f)),
        _ => false,
    }
}

fn unhex(array: &dyn Array) -> Result<ArrayRef, ArrowError> {
    let text = array
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::CastError("an id column is not text".into()))?;
    let ids: BinaryArray = text
        .iter()
        .map(|v| {
            v.map(|hex| {
                const_hex::decode(hex)
                    .map_err(|e| ArrowError::CastError(format!("id {hex:?} is not hex: {e}")))
            })
            .transpose()
        })
        .collect::<Result<_, _>>()?;
    Ok(Arc::new(ids))
}

/// `array` (of `field`) with every id inside decoded from hex; the new field with it.
fn upgrade(field: &FieldRef, array: &ArrayRef) -> Result<(FieldRef, ArrayRef), ArrowError> {
    if !holds_old_ids(field) {
        return Ok((Arc::clone(field), Arc::clone(array)));
    }
    if is_old_id(field) {
        let f = field.as_ref().clone().with_data_type(DataType::Binary);
        return Ok((Arc::new(f), unhex(array.as_ref())?));
    }
    match field.data_type() {
        DataType::List(item) => {
            let list = array
                .as_list_opt::<i32>()
                .ok_or_else(|| ArrowError::CastError(format!("{} is not a list", field.name())))?;
            let (item, values) = upgrade(item, list.values())?;
            let upgraded = ListArray::try_new(
                Arc::clone(&item),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?;
            let f = field.as_ref().clone().with_data_type(DataType::List(item));
            Ok((Arc::new(f), Arc::new(upgraded)))
        }
        DataType::Struct(fields) => {
            let s = array.as_struct_opt().ok_or_else(|| {
                ArrowError::CastError(format!("{} is not a struct", field.name()))
            })?;
            let (fields, columns): (Vec<FieldRef>, Vec<ArrayRef>) = fields
                .iter()
                .zip(s.columns())
                .map(|(f, c)| upgrade(f, c))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .unzip();
            let fields = Fields::from(fields);
            let upgraded = StructArray::try_new(fields.clone(), columns, s.nulls().cloned())?;
            let f = field
                .as_ref()
                .clone()
                .with_data_type(DataType::Struct(fields));
            Ok((Arc::new(f), Arc::new(upgraded)))
        }
        _ => Ok((Arc::clone(field), Arc::clone(array))),
    }
}

fn upgrade_batch(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let (fields, columns): (Vec<FieldRef>, Vec<ArrayRef>) = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| upgrade(f, c))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns)
}

/// Rewrites `file` in the current format if it has ids as text; true when it did.
pub fn upgrade_file(
    data_dir: &Path,
    spec: &TableSpec,
    file: &LakeFile,
) -> Result<bool, WriteError> {
    let path = &file.path;
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| WriteError::Io { path: p, source }
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).map_err(io(path))?)?;
    if !reader.schema().fields().iter().any(|f| holds_old_ids(f)) {
        return Ok(false);
    }
    let batches = reader
        .build()?
        .map(|b| b.and_then(|b| upgrade_batch(&b)))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = batches.first() else {
        return Ok(false);
    };
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let tmp_dir = layout::tmp_dir(data_dir);
    create_dir_durably(&tmp_dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = tmp_dir.join(format!(
        "{}-upgrade-{}",
        spec.name,
        name.unwrap_or_default()
    ));
    let written = (|| {
        let out = File::create(&tmp).map_err(io(&tmp))?;
        let mut writer =
            ArrowWriter::try_new(out, first.schema(), Some(properties(spec, rows, file.seq)))?;
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.into_inner()?.sync_all().map_err(io(&tmp))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, UInt32Array};

    #[test]
    fn hex_ids_become_bytes_at_every_depth() {
        let link_fields = Fields::from(vec![
            Field::new("trace_id", DataType::Utf8, false),
            Field::new("flags", DataType::UInt32, false),
        ]);
        let links = StructArray::try_new(
            link_fields.clone(),
            vec![
                Arc::new(StringArray::from(vec!["0102", "ffee"])),
                Arc::new(UInt32Array::from(vec![1, 2])),
            ],
            None,
        )
        .unwrap();
        let item = Arc::new(Field::new("item", DataType::Struct(link_fields), true));
        let list = ListArray::try_new(
            Arc::clone(&item),
            datafusion::arrow::buffer::OffsetBuffer::from_lengths([0, 2]),
            Arc::new(links),
            None,
        )
        .unwrap();
        let schema = Schema::new(vec![
            Field::new("span_id", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, false),
            Field::new("links", DataType::List(item), false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec![Some("0a0b"), None])),
                Arc::new(StringArray::from(vec!["keep", "text"])),
                Arc::new(list),
            ],
        )
        .unwrap();
        assert!(batch.schema().fields().iter().any(|f| holds_old_ids(f)));
        let up = upgrade_batch(&batch).unwrap();
        assert!(!up.schema().fields().iter().any(|f| holds_old_ids(f)));
        let ids = up.column(0).as_binary::<i32>();
        assert_eq!(ids.value(0), [10, 11]);
        assert!(ids.is_null(1));
        assert_eq!(up.column(1).as_string::<i32>().value(1), "text");
        let links = up.column(2).as_list::<i32>().value(1);
        let trace = links.as_struct().column(0).as_binary::<i32>().clone();
        assert_eq!(
            (trace.value(0), trace.value(1)),
            (&[1u8, 2][..], &[255u8, 238][..])
        );
    }

    #[test]
    fn a_new_lake_records_the_format_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        crate::lake::Lake::open(dir.path()).unwrap();
        assert_eq!(recorded(dir.path()), Some(FORMAT));
        fs::write(dir.path().join(FORMAT_FILE), format!("{}\n", FORMAT + 1)).unwrap();
        let Err(error) = crate::lake::Lake::open(dir.path()) else {
            panic!("a lake of a newer format was opened");
        };
        assert!(
            error
                .to_string()
                .contains(&format!("lake format {}", FORMAT + 1)),
            "{error}"
        );
    }
}
