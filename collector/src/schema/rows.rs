//! Typed access to columns of lake batches, shared by the readers of each table.

use datafusion::arrow::array::{
    Array, AsArray, BinaryArray, ListArray, MapArray, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{Int64Type, TimestampNanosecondType, UInt32Type};
use opentelemetry_proto::tonic::common::v1::KeyValue;

use super::attributes::decode_value;

#[derive(Debug, thiserror::Error)]
#[error("column {0} is missing or has an unexpected type")]
pub struct ColumnError(pub &'static str);

pub fn strings<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a StringArray, ColumnError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or(ColumnError(name))
}

pub fn u32s<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a datafusion::arrow::array::UInt32Array, ColumnError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<UInt32Type>())
        .ok_or(ColumnError(name))
}

pub fn times<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a datafusion::arrow::array::TimestampNanosecondArray, ColumnError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or(ColumnError(name))
}

pub fn i64s<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a datafusion::arrow::array::Int64Array, ColumnError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or(ColumnError(name))
}

pub fn maps<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a MapArray, ColumnError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_map_opt())
        .ok_or(ColumnError(name))
}

pub fn lists<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a ListArray, ColumnError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_list_opt::<i32>())
        .ok_or(ColumnError(name))
}

pub fn binaries<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a BinaryArray, ColumnError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_binary_opt::<i32>())
        .ok_or(ColumnError(name))
}

/// The id at row `i` of a binary id column; empty when null.
pub fn id(array: &BinaryArray, i: usize) -> Vec<u8> {
    if array.is_null(i) {
        Vec::new()
    } else {
        array.value(i).to_vec()
    }
}

/// The attributes of row `row` of a map column and its type-letter column.
pub fn key_values(map: &MapArray, types: &StringArray, row: usize) -> Vec<KeyValue> {
    let entries = map.value(row);
    let (Some(keys), Some(values)) = (
        entries.column(0).as_string_opt::<i32>(),
        entries.column(1).as_string_opt::<i32>(),
    ) else {
        return Vec::new();
    };
    let letters = types.value(row);
    keys.iter()
        .zip(values.iter())
        .zip(letters.chars().chain(std::iter::repeat('s')))
        .map(|((key, value), letter)| KeyValue {
            key: key.unwrap_or_default().to_owned(),
            key_strindex: 0,
            value: decode_value(value.unwrap_or_default(), letter),
        })
        .collect()
}

/// The (key, text value) entries of row `row` of a map column, in order.
pub fn text_entries(map: &MapArray, row: usize) -> Vec<(String, String)> {
    let entries = map.value(row);
    let (Some(keys), Some(values)) = (
        entries.column(0).as_string_opt::<i32>(),
        entries.column(1).as_string_opt::<i32>(),
    ) else {
        return Vec::new();
    };
    keys.iter()
        .zip(values.iter())
        .map(|(k, v)| {
            (
                k.unwrap_or_default().to_owned(),
                v.unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
