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
use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
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
    fn rows(&self, text: &StringViewArray, recent: &mut Vec<Searched>) -> BooleanArray {
        let Needle::Ascii(matcher, n) = self else {
            return text.iter().map(|v| v.map(|s| self.is_in(s))).collect();
        };
        let Some(found) =
            already_searched(text, recent).or_else(|| occurrences(text, matcher, *n, recent))
        else {
            return text.iter().map(|v| v.map(|s| self.is_in(s))).collect();
        };
        let n = *n;
        let inline = |raw: u128| {
            let len = raw as u32 as usize;
            let bytes = raw.to_le_bytes();
            len >= n && matcher.is_match(&bytes[4..4 + len])
        };
        let views = text.views();
        // Most words searched for are absent from most batches: then only the texts short
        // enough to be kept in their views are looked at.
        if found.iter().all(|starts| starts.count == 0) {
            let values = BooleanBuffer::collect_bool(text.len(), |row| {
                let raw = views[row];
                raw as u32 <= MAX_INLINE_VIEW_LEN && inline(raw)
            });
            return BooleanArray::new(values, text.nulls().cloned());
        }
        // The rows of a dictionary, all in one buffer with a distance table: one look-up a row.
        if let [starts] = found.as_slice()
            && let Some(distance) = &starts.distance
        {
            let values = BooleanBuffer::collect_bool(text.len(), |row| {
                let raw = views[row];
                let len = raw as u32 as usize;
                if len <= MAX_INLINE_VIEW_LEN as usize {
                    return inline(raw);
                }
                let start = (raw >> 96) as usize;
                // A saturated distance still rules out every row shorter than it.
                distance.get(start).is_some_and(|&d| {
                    usize::from(d) + n <= len
                        && (d < u16::MAX || starts.starts_in(start, start + len - n + 1))
                })
            });
            return BooleanArray::new(values, text.nulls().cloned());
        }
        let values = BooleanBuffer::collect_bool(text.len(), |row| {
            let raw = views[row];
            let len = raw as u32 as usize;
            if len <= MAX_INLINE_VIEW_LEN as usize {
                return inline(raw);
            }
            let view = ByteView::from(raw);
            let start = view.offset as usize;
            // An occurrence that starts no later than `len - n` bytes into the row.
            len >= n
                && found
                    .get(view.buffer_index as usize)
                    .is_some_and(|starts| starts.starts_in(start, start + len - n + 1))
        });
        BooleanArray::new(values, text.nulls().cloned())
    }
}

/// Whether a bit is set in `from..to` of `bits`.
fn any_in(bits: &[u64], from: usize, to: usize) -> bool {
    if from >= to {
        return false;
    }
    let word = |i: usize| bits.get(i).copied().unwrap_or(0);
    let width = to - from;
    if width <= 64 {
        // A log line's range spans one or two words: read both without branching on which.
        let first = from / 64;
        let pair = u128::from(word(first)) | (u128::from(word(first + 1)) << 64);
        let window = (pair >> (from % 64)) as u64;
        return window & (u64::MAX >> (64 - width)) != 0;
    }
    let (first, last) = (from / 64, (to - 1) / 64);
    word(first) & (!0u64 << (from % 64)) != 0
        || bits
            .get(first + 1..last.min(bits.len()))
            .is_some_and(|middle| middle.iter().any(|w| *w != 0))
        || word(last) & (!0u64 >> (63 - (to - 1) % 64)) != 0
}

/// Where the needle starts in one buffer: a bit per byte, so that whether a row holds it is a
/// look at the few words covering the row's bytes (a binary search of the positions per row
/// was a fifth of a search's CPU).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Starts {
    bits: Vec<u64>,
    count: usize,
    /// For a shared buffer (a dictionary, whose rows are looked up again and again): per byte,
    /// how far the next start is, saturating at `u16::MAX`. A row then needs one look-up.
    distance: Option<Vec<u16>>,
}

/// The largest shared buffer given a [`Starts::distance`] table (two bytes per byte). Parquet
/// dictionary pages are at most 1 MiB by default.
const MAX_DISTANCE_TABLE: usize = 1 << 20;

impl Starts {
    /// Fills [`Self::distance`] for a buffer of `len` bytes.
    fn with_distances(mut self, len: usize) -> Self {
        let mut distance: Vec<u16> = Vec::with_capacity(len);
        for (i, &word) in self.bits.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let at = i * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                if at >= len {
                    break;
                }
                // The bytes up to this start count down to it (a run the compiler vectorises;
                // the table is built once per dictionary, as large as it).
                let run = at + 1 - distance.len();
                let far = run.saturating_sub(usize::from(u16::MAX));
                distance.resize(distance.len() + far, u16::MAX);
                distance.extend((0..(run - far) as u16).rev());
            }
        }
        distance.resize(len, u16::MAX);
        self.distance = Some(distance);
        self
    }

    /// Whether an occurrence starts in `from..to`.
    fn starts_in(&self, from: usize, to: usize) -> bool {
        if let Some(d) = self.distance.as_ref().and_then(|d| d.get(from))
            && *d < u16::MAX
        {
            return from + usize::from(*d) < to;
        }
        any_in(&self.bits, from, to)
    }

    fn add(&mut self, at: usize) {
        let word = at / 64;
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << (at % 64);
        self.count += 1;
    }
}

/// Shared buffers recently searched for the current needle, kept per thread (each with its
/// occurrences and, up to [`MAX_DISTANCE_TABLE`], a distance table twice its size).
const RECENT_BUFFERS: usize = 4;

/// The largest allocation a kept buffer may hold on to.
const MAX_KEPT_BUFFER: usize = 4 << 20;

/// The occurrences found in a buffer that rows share (a Parquet dictionary): every batch
/// decoded from one row group points into the same dictionary, so it is searched once for all
/// of them. Holding the buffer keeps its address from being reused for other bytes.
pub struct Searched {
    buffer: Buffer,
    starts: Arc<Starts>,
}

impl Searched {
    /// Whether this is `buffer`: the same bytes at the same address, which cannot have been
    /// reused for other bytes while held here.
    fn holds(&self, buffer: &Buffer) -> bool {
        self.buffer.as_ptr() == buffer.as_ptr() && self.buffer.len() == buffer.len()
    }
}

/// The occurrences in every data buffer of `text` when each is a shared buffer already searched
/// (the dictionary of the row group that the previous batch came from): then the rows need not
/// be looked over first, which was a tenth of a search's CPU.
fn already_searched(text: &StringViewArray, recent: &[Searched]) -> Option<Vec<Arc<Starts>>> {
    let buffers = text.data_buffers();
    if buffers.is_empty() {
        return None;
    }
    buffers
        .iter()
        .map(|buffer| {
            recent
                .iter()
                .find(|s| s.holds(buffer))
                .map(|s| Arc::clone(&s.starts))
        })
        .collect()
}

/// Every position in each data buffer of `text` where `matcher`'s needle of `n` bytes starts,
/// searched over the bytes the non-null rows use (all of a buffer that rows share,
/// remembered in `recent`); `None` for an empty needle, a view outside its buffers, more
/// occurrences than rows (a needle like "e": then a search per row, which stops at a row's
/// first occurrence, costs less), or rows scattered thinly over their buffers (what a filter
/// leaves, e.g. one service's rows when the query also asks for a service: the buffers still
/// hold every row's text).
fn occurrences(
    text: &StringViewArray,
    matcher: &AhoCorasick,
    n: usize,
    recent: &mut Vec<Searched>,
) -> Option<Vec<Arc<Starts>>> {
    if n == 0 {
        return None;
    }
    let buffers = text.data_buffers();
    // Per buffer, the span of bytes the rows use and the bytes of those rows.
    let mut used = vec![(usize::MAX, 0usize, 0usize); buffers.len()];
    let nulls = text.nulls().filter(|n| n.null_count() > 0);
    for (row, &raw) in text.views().iter().enumerate() {
        let len = raw as u32;
        if len <= MAX_INLINE_VIEW_LEN || nulls.is_some_and(|n| n.is_null(row)) {
            continue;
        }
        let view = ByteView::from(raw);
        let span = used.get_mut(view.buffer_index as usize)?;
        span.0 = span.0.min(view.offset as usize);
        span.1 = span.1.max(view.offset as usize + len as usize);
        span.2 += len as usize;
    }
    let span_bytes: usize = used
        .iter()
        .map(|(start, end, _)| end.saturating_sub(*start))
        .sum();
    let row_bytes: usize = used.iter().map(|(_, _, bytes)| bytes).sum();
    if span_bytes > 4 * row_bytes {
        return None;
    }
    let mut found = Vec::with_capacity(buffers.len());
    let mut total = 0;
    for (buffer, &(start, end, bytes)) in buffers.iter().zip(&used) {
        if start >= end {
            found.push(Arc::new(Starts::default()));
            continue;
        }
        // Rows sharing the bytes of a buffer not much larger than they are (a Parquet dictionary,
        // whole): searched whole and kept for the next batches. A large allocation is not
        // kept alive for that.
        let shared = bytes > end - start
            && buffer.len() <= 4 * bytes
            && buffer.capacity() <= MAX_KEPT_BUFFER;
        // Held by the cache, the buffer cannot be freed and its address reused for other bytes.
        let starts = match recent.iter().position(|s| s.holds(buffer)) {
            // Already searched: whatever it holds costs a row no more than a look at its bits.
            Some(i) => {
                found.push(Arc::clone(&recent[i].starts));
                continue;
            }
            None => {
                // A shared buffer is searched whole, for the other batches that use it.
                let (haystack, mut at) = if shared {
                    (buffer.as_slice(), 0)
                } else {
                    (buffer.as_slice().get(..end)?, start)
                };
                let mut starts = Starts::default();
                while let Some(hit) = matcher.find(Input::new(haystack).range(at..)) {
                    if total + starts.count >= text.len() {
                        return None;
                    }
                    starts.add(hit.start());
                    // Overlapping occurrences too: one across two rows may hide one within a row.
                    at = hit.start() + 1;
                }
                let starts = Arc::new(
                    if shared && starts.count > 0 && buffer.len() <= MAX_DISTANCE_TABLE {
                        starts.with_distances(buffer.len())
                    } else {
                        starts
                    },
                );
                if shared {
                    recent.insert(
                        0,
                        Searched {
                            buffer: buffer.clone(),
                            starts: Arc::clone(&starts),
                        },
                    );
                    recent.truncate(RECENT_BUFFERS);
                }
                starts
            }
        };
        total += starts.count;
        if total > text.len() {
            return None;
        }
        found.push(starts);
    }
    Some(found)
}

/// The matcher of the needle last searched for on this thread, and the shared buffers it was
/// last searched in: the UDF is called once per batch, and building the matcher each time
/// cost ~3 % of a search.
#[derive(Default)]
struct Recent {
    needle: Option<(String, Needle)>,
    searched: Vec<Searched>,
}

thread_local! {
    static RECENT: std::cell::RefCell<Recent> = std::cell::RefCell::new(Recent::default());
}

/// `f` with the matcher of `needle` and this thread's recently searched buffers of it.
fn with_needle<T>(
    needle: &str,
    f: impl FnOnce(&Needle, &mut Vec<Searched>) -> T,
) -> Result<T, DataFusionError> {
    RECENT.with_borrow_mut(|recent| {
        if recent
            .needle
            .as_ref()
            .is_none_or(|(text, _)| text != needle)
        {
            recent.searched.clear();
            recent.needle = Some((needle.to_owned(), Needle::new(needle)?));
        }
        let Recent { needle, searched } = recent;
        let (_, matcher) = needle.as_ref().ok_or_else(bad_args)?;
        Ok(f(matcher, searched))
    })
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
                )) => s,
                _ => return Err(bad_args()),
            };
            match args.first() {
                Some(ColumnarValue::Array(array)) => {
                    let text = array.as_string_view_opt().ok_or_else(bad_args)?;
                    let found = with_needle(needle, |m, recent| m.rows(text, recent))?;
                    Ok(ColumnarValue::Array(Arc::new(found)))
                }
                Some(ColumnarValue::Scalar(value)) => {
                    let text = match value {
                        ScalarValue::Utf8View(v) | ScalarValue::Utf8(v) => v.as_deref(),
                        _ => return Err(bad_args()),
                    };
                    let found = match text {
                        Some(text) => Some(with_needle(needle, |m, _| m.is_in(text))?),
                        None => None,
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
        assert_eq!(occurrences(&sparse, &declined, 8, &mut Vec::new()), None);
        for whole in [&plain, &shared, &reversed, &sliced] {
            assert!(occurrences(whole, &declined, 8, &mut Vec::new()).is_some());
        }
        let arrays = [&plain, &shared, &reversed, &sliced, &sparse];
        assert!(shared.data_buffers()[0].len() < plain.data_buffers()[0].len() / 4);

        for needle in ["declined", "DecLined", "zebra", "ab", "a", "cardok", "x"] {
            let matcher = Needle::new(needle).unwrap();
            for (i, array) in arrays.iter().enumerate() {
                let got = matcher.rows(array, &mut Vec::new());
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
        let got = Needle::new("declined")
            .unwrap()
            .rows(&across, &mut Vec::new());
        assert_eq!(got, BooleanArray::from(vec![false, false]));
        assert_eq!(
            occurrences(
                &across,
                &AhoCorasick::new(["declined"]).unwrap(),
                8,
                &mut Vec::new()
            ),
            Some(vec![Arc::new(Starts {
                bits: vec![1 << 12],
                count: 1,
                distance: None,
            })])
        );
    }

    /// The batches of one row group point into the same dictionary: it is searched once, and
    /// the occurrences found serve every batch; a buffer with other bytes is searched anew.
    #[test]
    fn a_shared_buffer_is_searched_once_for_every_batch_that_uses_it() {
        let texts = texts();
        let mut dictionary =
            datafusion::arrow::array::StringViewBuilder::new().with_deduplicate_strings();
        for t in &texts {
            dictionary.append_option(t.as_deref());
        }
        let dictionary = dictionary.finish();
        // Another array laid out the same, whose bytes hold no "declined": reusing the first
        // array's occurrences for it would find them at the same positions.
        let other: Vec<Option<String>> = texts
            .iter()
            .map(|t| t.as_ref().map(|t| t.replace("lined", "zzzzz")))
            .collect();
        let mut other_builder =
            datafusion::arrow::array::StringViewBuilder::new().with_deduplicate_strings();
        for t in &other {
            other_builder.append_option(t.as_deref());
        }
        let other = other_builder.finish();
        let needle = Needle::new("declined").unwrap();
        let mut recent = Vec::new();
        let batches = [
            dictionary.slice(0, 1000),
            dictionary.slice(1000, 1000),
            other.slice(0, 1000),
            dictionary.slice(2000, 1000),
            other.slice(1000, 2000),
        ];
        for (i, batch) in batches.iter().enumerate() {
            let got = needle.rows(batch, &mut recent);
            let expected: BooleanArray = batch
                .iter()
                .map(|t| t.map(|t| t.to_lowercase().contains("declined")))
                .collect();
            assert_eq!(got, expected, "batch {i}");
            let of_dictionary = matches!(i, 0 | 1 | 3);
            assert_eq!(expected.true_count() > 100, of_dictionary, "batch {i}");
        }
        // One entry per distinct buffer, the most recent first.
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].buffer.as_ptr(), other.data_buffers()[0].as_ptr());
        assert_eq!(
            recent[1].buffer.as_ptr(),
            dictionary.data_buffers()[0].as_ptr()
        );
    }

    #[test]
    fn starts_in_a_range_agree_with_a_scan() {
        let mut seed = 0x9e37_79b9_u64;
        for density in [1, 7, 60, 400] {
            let mut starts = Starts::default();
            let mut naive = vec![false; 300];
            for (at, slot) in naive.iter_mut().enumerate() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if seed.is_multiple_of(density) {
                    starts.add(at);
                    *slot = true;
                }
            }
            assert_eq!(starts.count, naive.iter().filter(|b| **b).count());
            let tabled = Starts {
                bits: starts.bits.clone(),
                count: starts.count,
                distance: None,
            }
            .with_distances(naive.len());
            for from in 0..320 {
                for to in from..330 {
                    let expected = naive.iter().take(to).skip(from).any(|b| *b);
                    assert_eq!(any_in(&starts.bits, from, to), expected, "{from}..{to}");
                    assert_eq!(starts.starts_in(from, to), expected, "{from}..{to}");
                    assert_eq!(tabled.starts_in(from, to), expected, "table {from}..{to}");
                }
            }
        }
    }

    /// Starts further away than a distance can say are still found, through the bits.
    #[test]
    fn a_start_beyond_the_largest_distance_is_found() {
        let mut starts = Starts::default();
        starts.add(70_000);
        let starts = starts.with_distances(70_010);
        assert_eq!(starts.distance.as_ref().map(|d| d[0]), Some(u16::MAX));
        assert_eq!(starts.distance.as_ref().map(|d| d[5_000]), Some(65_000));
        assert!(starts.starts_in(0, 70_001));
        assert!(!starts.starts_in(0, 70_000));
        assert!(starts.starts_in(5_000, 70_001));
        assert!(!starts.starts_in(5_000, 70_000));
        assert!(!starts.starts_in(70_001, 70_010));

        // Rows of a dictionary whose word lies further in than a distance can say.
        let far = format!("{}Declined", "x".repeat(70_000));
        let near = format!("{}declined{}", "y".repeat(20), "y".repeat(70_000));
        let none = "z".repeat(70_100);
        let mut dictionary = datafusion::arrow::array::StringViewBuilder::new()
            .with_fixed_block_size(1 << 20)
            .with_deduplicate_strings();
        for text in [&far, &near, &none, &far, &none, &near, &far] {
            dictionary.append_value(text);
        }
        let dictionary = dictionary.finish();
        assert_eq!(dictionary.data_buffers().len(), 1);
        let got = Needle::new("declined")
            .unwrap()
            .rows(&dictionary, &mut Vec::new());
        let expected = BooleanArray::from(vec![true, true, false, true, false, true, true]);
        assert_eq!(got, expected);
    }
}
