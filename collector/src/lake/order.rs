//! The storage order of a flush's rows: by a table's sort columns, a few names (service, kind,
//! status; metric and service) then a time.
//!
//! arrow's `lexsort_to_indices` compares rows through one dynamic comparator per column, a
//! `memcmp` per string column and comparison: ~12 % of encoding a flush file (perf of
//! `cargo bench --bench hot_paths -- parquet_encode`). The names take few distinct values, so
//! each row's names are ranked once (one hash lookup per name) and folded with the time into a
//! fixed-size key that sorts as plain integers, in the same order.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
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

/// The order by ranked names then a time, when `columns` are non-null strings followed by one
/// non-null 64-bit integer or nanosecond timestamp and the names' ranks fit one `u64`;
/// `None` otherwise (the caller sorts column by column).
fn ranked_order(columns: &[ArrayRef]) -> Option<UInt32Array> {
    let (last, names) = columns.split_last()?;
    if columns.iter().any(|c| c.null_count() > 0) || u32::try_from(last.len()).is_err() {
        return None;
    }
    let times: &[i64] = match last.data_type() {
        DataType::Int64 => last.as_primitive::<Int64Type>().values(),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            last.as_primitive::<TimestampNanosecondType>().values()
        }
        _ => return None,
    };
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
    let mut rows: Vec<(u64, i64, u32)> = keys
        .into_iter()
        .zip(times.iter().copied())
        .enumerate()
        .map(|(i, (key, time))| (key, time, i as u32))
        .collect();
    rows.sort_unstable();
    Some(rows.into_iter().map(|(_, _, i)| i).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{StringArray, TimestampNanosecondArray};
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

    proptest! {
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
