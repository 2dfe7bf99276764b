//! `icontains(text, needle)` for SQL: whether `text` contains `needle`, ignoring case. The log
//! search's word filter. `strpos(lower(body), needle)` lowercases (and allocates) every body
//! before it looks; this searches the bytes as they are: for an ASCII needle, ASCII letters in
//! either case match (a vectorised multi-literal search, as fast as a case-sensitive one); a
//! needle with other characters compares Unicode lowercase forms.

use std::sync::Arc;

use aho_corasick::AhoCorasick;
use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

fn bad_args() -> DataFusionError {
    DataFusionError::Execution("icontains(text, needle): needle must be a text literal".into())
}

/// The matcher for one needle.
enum Needle {
    Ascii(AhoCorasick),
    Unicode(String),
}

impl Needle {
    fn new(needle: &str) -> Result<Self, DataFusionError> {
        if needle.is_ascii() {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build([needle])
                .map(Needle::Ascii)
                .map_err(|e| DataFusionError::Execution(format!("icontains: {e}")))
        } else {
            Ok(Needle::Unicode(needle.to_lowercase()))
        }
    }

    fn is_in(&self, text: &str) -> bool {
        match self {
            Needle::Ascii(m) => m.is_match(text),
            Needle::Unicode(lower) => text.to_lowercase().contains(lower.as_str()),
        }
    }
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
                    let out: BooleanArray =
                        text.iter().map(|v| v.map(|s| needle.is_in(s))).collect();
                    Ok(ColumnarValue::Array(Arc::new(out)))
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
}
