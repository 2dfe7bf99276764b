//! `icontains(text, needle)` for SQL: whether `text` contains `needle`, ignoring case. The log
//! search's word filter. `strpos(lower(body), needle)` lowercases (and allocates) every body
//! before it looks; this searches the bytes as they are: for an ASCII needle, ASCII letters in
//! either case match (a vectorised multi-literal search, as fast as a case-sensitive one); a
//! needle with other characters compares Unicode lowercase forms. An ASCII needle is searched
//! for in each of an array's data buffers at once rather than row by row (see
//! [`Needle::rows`]).

use std::sync::Arc;

use aho_corasick::{AhoCorasick, Input};
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, ByteView, MAX_INLINE_VIEW_LEN, StringViewArray,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

fn bad_args() -> DataFusionError {
    DataFusionError::Execution("icontains(text, needle): needle must be a text literal".into())
}

/// The matcher for one needle.
enum Needle {
    /// The matcher and the needle's length in bytes.
    Ascii(AhoCorasick, usize),
    Unicode(String),
}

impl Needle {
    fn new(needle: &str) -> Result<Self, DataFusionError> {
        if needle.is_ascii() {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build([needle])
                .map(|m| Needle::Ascii(m, needle.len()))
                .map_err(|e| DataFusionError::Execution(format!("icontains: {e}")))
        } else {
            Ok(Needle::Unicode(needle.to_lowercase()))
        }
    }

    fn is_in(&self, text: &str) -> bool {
        match self {
            Needle::Ascii(m, _) => m.is_match(text),
            Needle::Unicode(lower) => text.to_lowercase().contains(lower.as_str()),
        }
    }

    /// Whether each row of `text` holds the needle; null rows give null.
    ///
    /// Called row by row, the matcher's fixed cost per call outweighs the search itself for
    /// log-line-sized texts. So an ASCII needle is looked for once in each data buffer, over
    /// the bytes the array's rows use, and a row matches when an occurrence lies within its
    /// bytes. Only positions are compared, so rows that share bytes (decoded from a Parquet
    /// dictionary), rows out of order and bytes between rows (a plain page's lengths) need
    /// no care: an occurrence across two rows lies within neither.
    fn rows(&self, text: &StringViewArray) -> BooleanArray {
        let Needle::Ascii(matcher, n) = self else {
            return text.iter().map(|v| v.map(|s| self.is_in(s))).collect();
        };
        let Some(found) = occurrences(text, matcher, *n) else {
            return text.iter().map(|v| v.map(|s| self.is_in(s))).collect();
        };
        let values = BooleanBuffer::collect_bool(text.len(), |row| {
            let raw = text.views()[row];
            let len = raw as u32;
            if len <= MAX_INLINE_VIEW_LEN {
                let bytes = raw.to_le_bytes();
                return matcher.is_match(&bytes[4..4 + len as usize]);
            }
            let view = ByteView::from(raw);
            let (start, len) = (view.offset as usize, len as usize);
            let Some(hits) = found.get(view.buffer_index as usize) else {
                return false;
            };
            let first = hits.partition_point(|&at| (at as usize) < start);
            hits.get(first)
                .is_some_and(|&at| at as usize + n <= start + len)
        });
        BooleanArray::new(values, text.nulls().cloned())
    }
}

/// Every position in each data buffer of `text` where `matcher`'s needle of `n` bytes starts,
/// in order, searched over the bytes the non-null rows use; `None` for an empty needle, a
/// view outside its buffers, more occurrences than rows (a needle like "e": then a search per
/// row, which stops at a row's first occurrence, costs less), or rows scattered thinly over
/// their buffers (what a filter leaves, e.g. one service's rows when the query also asks for
/// a service: the buffers still hold every row's text).
fn occurrences(text: &StringViewArray, matcher: &AhoCorasick, n: usize) -> Option<Vec<Vec<u32>>> {
    if n == 0 {
        return None;
    }
    let buffers = text.data_buffers();
    // Per buffer, the span of bytes the rows use.
    let mut used = vec![(usize::MAX, 0usize); buffers.len()];
    let mut row_bytes = 0;
    for (row, &raw) in text.views().iter().enumerate() {
        let len = raw as u32;
        if len <= MAX_INLINE_VIEW_LEN || text.is_null(row) {
            continue;
        }
        let view = ByteView::from(raw);
        let span = used.get_mut(view.buffer_index as usize)?;
        span.0 = span.0.min(view.offset as usize);
        span.1 = span.1.max(view.offset as usize + len as usize);
        row_bytes += len as usize;
    }
    let span_bytes: usize = used
        .iter()
        .map(|(start, end)| end.saturating_sub(*start))
        .sum();
    if span_bytes > 4 * row_bytes {
        return None;
    }
    let mut found = vec![Vec::new(); buffers.len()];
    let mut total = 0;
    for ((buffer, &(start, end)), hits) in buffers.iter().zip(&used).zip(&mut found) {
        if start >= end {
            continue;
        }
        let haystack = buffer.as_slice().get(..end)?;
        let mut at = start;
        while let Some(hit) = matcher.find(Input::new(haystack).range(at..)) {
            total += 1;
            if total > text.len() {
                return None;
            }
            hits.push(u32::try_from(hit.start()).ok()?);
            // Overlapping occurrences too: one across two rows may hide one within a row.
            at = hit.start() + 1;
        }
    }
    Some(found)
}

/// `icontains(text, needle)` → Boolean; null text gives null.
pub fn udf() -> ScalarUDF {
    create_udf(
        "icontains",
        vec![DataType::Utf8View, DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let needle = match args.get(1) {
                Some(ColumnarValue::Scalar(
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::Utf8View(Some(s))
                    | ScalarValue::LargeUtf8(Some(s)),
                )) => Needle::new(s)?,
                _ => return Err(bad_args()),
            };
            match args.first() {
                Some(ColumnarValue::Array(array)) => {
                    let text = array.as_string_view_opt().ok_or_else(bad_args)?;
                    Ok(ColumnarValue::Array(Arc::new(needle.rows(text))))
                }
                Some(ColumnarValue::Scalar(value)) => {
                    let found = match value {
                        ScalarValue::Utf8View(v) | ScalarValue::Utf8(v) => {
                            v.as_deref().map(|s| needle.is_in(s))
                        }
                        _ => return Err(bad_args()),
                    };
                    Ok(ColumnarValue::Scalar(ScalarValue::Boolean(found)))
                }
                None => Err(bad_args()),
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_is_ignored_for_ascii_and_unicode_needles() {
        let ascii = Needle::new("Declined").unwrap();
        assert!(ascii.is_in("card ending 4242 DECLINED by issuer"));
        assert!(ascii.is_in("declined"));
        assert!(!ascii.is_in("decline"));
        assert!(!ascii.is_in(""));
        let unicode = Needle::new("ÜBER").unwrap();
        assert!(unicode.is_in("Größe über alles"));
        assert!(!unicode.is_in("uber"));
    }

    /// Texts of fragments that form the needles within and across rows, in mixed case, some
    /// short enough to be stored inline in their views, some null.
    fn texts() -> Vec<Option<String>> {
        let words = [
            "card", "DEC", "lined", "declined", "ok ", "a", "ab", "Ba", "zeb", "ra",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        // Log lines repeat: rows drawn from 60 texts.
        let pool: Vec<String> = (0..60)
            .map(|_| (0..next(9)).map(|_| words[next(words.len())]).collect())
            .collect();
        (0..3000)
            .map(|_| (next(10) > 0).then(|| pool[next(pool.len())].clone()))
            .collect()
    }

    #[test]
    fn a_buffer_wide_search_finds_what_a_search_per_row_finds() {
        let texts = texts();
        let plain = StringViewArray::from_iter(texts.iter().map(|t| t.as_deref()));
        // Rows sharing bytes, as decoded from a Parquet dictionary.
        let mut shared =
            datafusion::arrow::array::StringViewBuilder::new().with_deduplicate_strings();
        for t in &texts {
            shared.append_option(t.as_deref());
        }
        let shared = shared.finish();
        // Rows out of order in their buffer, and a slice of the array.
        let reversed: Vec<u32> = (0..texts.len() as u32).rev().collect();
        let reversed = datafusion::arrow::compute::take(
            &plain,
            &datafusion::arrow::array::UInt32Array::from(reversed),
            None,
        )
        .unwrap();
        let reversed = reversed.as_string_view().clone();
        let sliced = plain.slice(700, 1500);
        // One row in ten, as a filter leaves them: the buffers keep every row's text, so the
        // search goes row by row; whole arrays are searched buffer by buffer.
        let mask: BooleanArray = (0..texts.len()).map(|i| Some(i % 10 == 0)).collect();
        let sparse = datafusion::arrow::compute::filter(&plain, &mask).unwrap();
        let sparse = sparse.as_string_view().clone();
        let declined = AhoCorasick::new(["declined"]).unwrap();
        assert_eq!(occurrences(&sparse, &declined, 8), None);
        for whole in [&plain, &shared, &reversed, &sliced] {
            assert!(occurrences(whole, &declined, 8).is_some());
        }
        let arrays = [&plain, &shared, &reversed, &sliced, &sparse];
        assert!(shared.data_buffers()[0].len() < plain.data_buffers()[0].len() / 4);

        for needle in ["declined", "DecLined", "zebra", "ab", "a", "cardok", "x"] {
            let matcher = Needle::new(needle).unwrap();
            for (i, array) in arrays.iter().enumerate() {
                let got = matcher.rows(array);
                let expected: BooleanArray = array
                    .iter()
                    .map(|t| t.map(|t| t.to_lowercase().contains(&needle.to_lowercase())))
                    .collect();
                assert_eq!(got, expected, "needle {needle:?}, array {i}");
                if needle == "declined" {
                    let found = expected.true_count();
                    assert!(found > 100 && found + 100 < array.len(), "{found}");
                }
            }
        }
        // The fragments join into the needle across rows, which must not count.
        let across = StringViewArray::from(vec!["payment was dec", "lined by the issuer"]);
        let got = Needle::new("declined").unwrap().rows(&across);
        assert_eq!(got, BooleanArray::from(vec![false, false]));
        assert_eq!(
            occurrences(&across, &AhoCorasick::new(["declined"]).unwrap(), 8),
            Some(vec![vec![12]])
        );
    }
}
