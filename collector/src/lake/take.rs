//! Reordering rows of nested columns for the storage sort. Arrow's `take` copies a list or map
//! column entry by entry through its generic `MutableArrayData` path, which was 12 % of the
//! server's CPU under load (events, links and attribute maps are lists of structs of maps).
//! Here a list's child rows are gathered with one index array instead, and structs, lists and
//! maps recurse, so every leaf goes through arrow's typed `take` kernels.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListArray, MapArray, RecordBatch, StructArray, UInt32Array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;

/// `batch` with its rows in the order of `indices` (which must have no nulls).
pub fn take_batch(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| take_deep(c, indices))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(batch.schema(), columns)
}

/// One column reordered by `indices`.
pub fn take_deep(array: &ArrayRef, indices: &UInt32Array) -> Result<ArrayRef, ArrowError> {
    Ok(match array.data_type() {
        DataType::List(field) => {
            let list = array.as_list::<i32>();
            let (offsets, children) = gather_ranges(list.value_offsets(), indices)?;
            Arc::new(ListArray::try_new(
                Arc::clone(field),
                offsets,
                take_deep(list.values(), &children)?,
                take_nulls(array.nulls(), indices),
            )?)
        }
        DataType::Map(field, sorted) => {
            let map = array.as_map();
            let (offsets, children) = gather_ranges(map.value_offsets(), indices)?;
            let entries: ArrayRef = Arc::new(map.entries().clone());
            let entries = take_deep(&entries, &children)?;
            Arc::new(MapArray::try_new(
                Arc::clone(field),
                offsets,
                entries.as_struct().clone(),
                take_nulls(array.nulls(), indices),
                *sorted,
            )?)
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let columns = s
                .columns()
                .iter()
                .map(|c| take_deep(c, indices))
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StructArray::try_new_with_length(
                fields.clone(),
                columns,
                take_nulls(array.nulls(), indices),
                indices.len(),
            )?)
        }
        _ => take(array.as_ref(), indices, None)?,
    })
}

/// The offsets of the reordered list and the indices of its child rows, in order.
fn gather_ranges(
    offsets: &[i32],
    indices: &UInt32Array,
) -> Result<(OffsetBuffer<i32>, UInt32Array), ArrowError> {
    let mut new_offsets = Vec::with_capacity(indices.len() + 1);
    new_offsets.push(0i32);
    let total: usize = indices
        .values()
        .iter()
        .map(|&i| (offsets[i as usize + 1] - offsets[i as usize]) as usize)
        .sum();
    let mut children = Vec::with_capacity(total);
    for &i in indices.values() {
        let (start, end) = (offsets[i as usize], offsets[i as usize + 1]);
        children.extend(start as u32..end as u32);
        let len = i32::try_from(children.len())
            .map_err(|_| ArrowError::ComputeError("list too long to reorder".into()))?;
        new_offsets.push(len);
    }
    Ok((
        OffsetBuffer::new(new_offsets.into()),
        UInt32Array::from(children),
    ))
}

fn take_nulls(nulls: Option<&NullBuffer>, indices: &UInt32Array) -> Option<NullBuffer> {
    let nulls = nulls.filter(|n| n.null_count() > 0)?;
    Some(
        indices
            .values()
            .iter()
            .map(|&i| nulls.is_valid(i as usize))
            .collect::<Vec<bool>>()
            .into(),
    )
}
