//! The storage order of a flush's rows: by a table's sort keys, a few names (service and status;
//! metric and service) then a time, or (spans) a time's second, the trace id and the time.
//!
//! arrow's `lexsort_to_indices` compares rows through one dynamic comparator per column, a
//! `memcmp` per string column and comparison: ~12 % of encoding a flush file (perf of
//! `cargo bench --bench hot_paths -- parquet_encode`). The names take few distinct values, so
//! each row's names are ranked once (one hash lookup per name) and folded with the first integer
//! key into a fixed-size key that sorts as plain integers, in the same order; only rows equal in
//! those compare the keys after it.

use std::cmp::Ordering;
use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, UInt32Array};
use datafusion::arrow::compute::{SortColumn, lexsort_to_indices};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampNanosecondType};
use datafusion::arrow::error::ArrowError;

/// Row indices of `columns` (ascending by each in turn; equal rows in index order).
pub(crate) fn sort_to_indices(columns: &[ArrayRef]) -> Result<UInt32Array, ArrowError> {
    if let Some(order) = ranked_order(columns) {
        return Ok(order);
    }
    let sort_columns: Vec<SortColumn> = columns
        .iter()
        .map(|values| SortColumn {
            values: values.clone(),
            options: None,
        })
        .collect();
    lexsort_to_indices(&sort_columns, None)
}

/// A key after the ranked names: a 64-bit integer or an id's bytes.
enum Tail<'a> {
    Int(&'a [i64]),
    Bytes(&'a BinaryArray),
}

impl Tail<'_> {
    fn compare(&self, a: u32, b: u32) -> Ordering {
        match self {
            Tail::Int(values) => values[a as usize].cmp(&values[b as usize]),
            Tail::Bytes(values) => values.value(a as usize).cmp(values.value(b as usize)),
        }
    }
}

/// The values of a 64-bit integer or nanosecond timestamp column.
fn integers(column: &ArrayRef) -> Option<&[i64]> {
    match column.data_type() {
        DataType::Int64 => Some(column.as_primitive::<Int64Type>().values()),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Some(column.as_primitive::<TimestampNanosecondType>().values())
        }
        _ => None,
    }
}

/// The order by ranked names then a time (or a time's bucket followed by more integers and
/// ids), when `columns` are non-null strings followed by non-null 64-bit integers, nanosecond
/// timestamps or binary ids, the first after the names an integer, and the names' ranks fit
/// one `u64`; `None` otherwise (the caller sorts column by column).
fn ranked_order(columns: &[ArrayRef]) -> Option<UInt32Array> {
    let len = columns.first()?.len();
    if columns.iter().any(|c| c.null_count() > 0) || u32::try_from(len).is_err() {
        return None;
    }
    let name_count = columns
        .iter()
        .take_while(|c| *c.data_type() == DataType::Utf8)
        .count();
    let (names, tails) = columns.split_at(name_count);
    let (first, rest) = tails.split_first()?;
    let times = integers(first)?;
    let rest = rest
        .iter()
        .map(|c| {
            integers(c)
                .map(Tail::Int)
                .or_else(|| c.as_binary_opt::<i32>().map(Tail::Bytes))
        })
        .collect::<Option<Vec<_>>>()?;
    let mut keys = vec![0u64; times.len()];
    for column in names {
        let DataType::Utf8 = column.data_type() else {
            return None;
        };
        let strings = column.as_string::<i32>();
        // Ids in order of first sight, then each id's rank among the sorted distinct names.
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut row_ids = Vec::with_capacity(strings.len());
        let mut previous: Option<(&str, u32)> = None;
        for value in strings.iter().flatten() {
            // Neighbouring rows (one resource's spans) mostly repeat the name.
            let id = match previous {
                Some((name, id)) if name == value => id,
                _ => {
                    let next = ids.len() as u32;
                    *ids.entry(value).or_insert(next)
                }
            };
            previous = Some((value, id));
            row_ids.push(id);
        }
        let mut distinct: Vec<(&str, u32)> = ids.into_iter().collect();
        distinct.sort_unstable();
        let mut rank = vec![0u64; distinct.len()];
        for (r, (_, id)) in distinct.iter().enumerate() {
            rank[*id as usize] = r as u64;
        }
        let radix = distinct.len().max(1) as u64;
        for (key, id) in keys.iter_mut().zip(row_ids) {
            *key = key.checked_mul(radix)? + rank[id as usize];
        }
    }
    // The key after the first integer, as an unsigned integer in the same order: an integer
    // with its sign bit flipped, or an id's first 8 bytes (zero-padded: a tie, never an
    // inversion; ties compare the keys after the first integer whole).
    let second = |i: usize| match rest.first() {
        None => 0,
        Some(Tail::Int(values)) => (values[i] as u64) ^ (1 << 63),
        Some(Tail::Bytes(values)) => {
            let mut prefix = [0u8; 8];
            let bytes = values.value(i);
            let n = bytes.len().min(8);
            prefix[..n].copy_from_slice(&bytes[..n]);
            u64::from_be_bytes(prefix)
        }
    };
    let mut rows: Vec<(u64, i64, u64, u32)> = keys
        .into_iter()
        .zip(times.iter().copied())
        .enumerate()
        .map(|(i, (key, time))| (key, time, second(i), i as u32))
        .collect();
    rows.sort_unstable();
    if rest.len() > 1 || matches!(rest.first(), Some(Tail::Bytes(_))) {
        // Runs equal in the integers (a trace's few spans in a second) sorted by the rest.
        for run in rows.chunk_by_mut(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2)) {
            if run.len() > 1 {
                run.sort_unstable_by(|a, b| {
                    rest.iter()
                        .map(|tail| tail.compare(a.3, b.3))
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                        .then(a.3.cmp(&b.3))
                });
            }
        }
    }
    Some(rows.into_iter().map(|(_, _, _, i)| i).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray, TimestampNanosecondArray};
    use proptest::prelude::*;

    use super::*;

    fn columns(names: &[(&str, &str)], times: &[i64]) -> Vec<ArrayRef> {
        vec![
            Arc::new(StringArray::from_iter_values(names.iter().map(|n| n.0))),
            Arc::new(StringArray::from_iter_values(names.iter().map(|n| n.1))),
            Arc::new(TimestampNanosecondArray::from(times.to_vec()).with_timezone("UTC")),
        ]
    }

    /// The rows of `columns` in `order`, as comparable tuples.
    fn rows(columns: &[ArrayRef], order: &UInt32Array) -> Vec<(String, String, i64)> {
        order
            .values()
            .iter()
            .map(|&i| {
                let i = i as usize;
                (
                    columns[0].as_string::<i32>().value(i).to_owned(),
                    columns[1].as_string::<i32>().value(i).to_owned(),
                    columns[2]
                        .as_primitive::<TimestampNanosecondType>()
                        .value(i),
                )
            })
            .collect()
    }

    #[test]
    fn names_sort_bytewise_then_by_time_and_ties_keep_their_order() {
        let c = columns(
            &[
                ("b", "x"),
                ("a", "y"),
                ("b", "x"),
                ("a", "x"),
                ("ab", "x"),
                ("B", "x"),
            ],
            &[5, 9, 5, 7, 1, -3],
        );
        let order = ranked_order(&c).expect("names and a time take the ranked path");
        assert_eq!(order.values().to_vec(), vec![5, 3, 1, 4, 0, 2]);
    }

    #[test]
    fn nulls_and_other_types_fall_back_to_arrow_s_sort() {
        let with_null: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("b"), None, Some("a")])),
            Arc::new(TimestampNanosecondArray::from(vec![1, 2, 3])),
        ];
        assert!(ranked_order(&with_null).is_none());
        let order = sort_to_indices(&with_null).unwrap();
        assert_eq!(order.values().to_vec(), vec![1, 2, 0]);
        let time_first: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(vec![2, 1])),
            Arc::new(StringArray::from(vec!["a", "b"])),
        ];
        assert!(ranked_order(&time_first).is_none());
        assert_eq!(
            sort_to_indices(&time_first).unwrap().values().to_vec(),
            vec![1, 0]
        );
    }

    /// Rows of a bucket, an id and a time as comparable tuples, in `order`.
    fn clustered_rows(
        columns: &[ArrayRef],
        order: &UInt32Array,
    ) -> Vec<(String, i64, Vec<u8>, i64)> {
        order
            .values()
            .iter()
            .map(|&i| {
                let i = i as usize;
                (
                    columns[0].as_string::<i32>().value(i).to_owned(),
                    columns[1].as_primitive::<Int64Type>().value(i),
                    columns[2].as_binary::<i32>().value(i).to_vec(),
                    columns[3]
                        .as_primitive::<TimestampNanosecondType>()
                        .value(i),
                )
            })
            .collect()
    }

    proptest! {
        /// With a bucket, an id and a time after the names, still exactly arrow's order.
        #[test]
        fn the_ranked_order_with_ids_is_arrow_s_order(
            rows_in in proptest::collection::vec((0usize..3, 0i64..3, 0u8..4, -4i64..4), 0..300)
        ) {
            let services = ["cart", "ad", ""];
            let c: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(rows_in.iter().map(|r| services[r.0]))),
                Arc::new(Int64Array::from_iter_values(rows_in.iter().map(|r| r.1))),
                Arc::new(BinaryArray::from_iter_values(
                    rows_in.iter().map(|r| vec![r.2; usize::from(r.2 % 3) + 1]),
                )),
                Arc::new(TimestampNanosecondArray::from_iter_values(rows_in.iter().map(|r| r.3))),
            ];
            let ranked = ranked_order(&c).expect("takes the ranked path");
            let sort_columns: Vec<SortColumn> = c
                .iter()
                .map(|values| SortColumn { values: values.clone(), options: None })
                .collect();
            let arrow = lexsort_to_indices(&sort_columns, None).unwrap();
            prop_assert_eq!(clustered_rows(&c, &ranked), clustered_rows(&c, &arrow));
            let mut seen = ranked.values().to_vec();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..rows_in.len() as u32).collect::<Vec<_>>());
        }

        /// The ranked order puts rows in exactly arrow's order.
        #[test]
        fn the_ranked_order_is_arrow_s_order(
            rows_in in proptest::collection::vec((0usize..6, 0usize..3, -4i64..4), 0..300)
        ) {
            let services = ["cart", "checkout", "ad", "Cart", "cart-v2", ""];
            let kinds = ["SERVER", "CLIENT", "INTERNAL"];
            let names: Vec<(&str, &str)> =
                rows_in.iter().map(|r| (services[r.0], kinds[r.1])).collect();
            let times: Vec<i64> = rows_in.iter().map(|r| r.2 * 1_000_000_007).collect();
            let c = columns(&names, &times);
            let ranked = ranked_order(&c).expect("takes the ranked path");
            let sort_columns: Vec<SortColumn> = c
                .iter()
                .map(|values| SortColumn { values: values.clone(), options: None })
                .collect();
            let arrow = lexsort_to_indices(&sort_columns, None).unwrap();
            prop_assert_eq!(rows(&c, &ranked), rows(&c, &arrow));
            let mut seen = ranked.values().to_vec();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..rows_in.len() as u32).collect::<Vec<_>>());
        }
    }
}
