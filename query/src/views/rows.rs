//! Typed access to the columns of a view's result batches.

use datafusion::arrow::array::{Array, AsArray, BinaryArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::Int64Type;

use crate::engine::QueryError;
use crate::sketch::Sketch;

fn unexpected(name: &str) -> QueryError {
    QueryError::Execution(format!("view query: column {name} is missing or mistyped"))
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, QueryError> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| unexpected(name))
}

pub fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, QueryError> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| unexpected(name))
}

pub fn ints<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int64Array, QueryError> {
    column(batch, name)?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| unexpected(name))
}

pub fn binaries<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a BinaryArray, QueryError> {
    column(batch, name)?
        .as_binary_opt::<i32>()
        .ok_or_else(|| unexpected(name))
}

/// The text at `row`, or `None` when null.
pub fn text(array: &StringArray, row: usize) -> Option<String> {
    (!array.is_null(row)).then(|| array.value(row).to_owned())
}

/// The sketch at `row` (empty when null).
pub fn sketch(array: &BinaryArray, row: usize) -> Result<Sketch, QueryError> {
    if array.is_null(row) {
        return Ok(Sketch::default());
    }
    Sketch::from_bytes(array.value(row)).ok_or_else(|| unexpected("latency sketch"))
}

/// A non-negative count at `row`.
pub fn count(array: &Int64Array, row: usize) -> u64 {
    if array.is_null(row) {
        0
    } else {
        array.value(row).max(0) as u64
    }
}
