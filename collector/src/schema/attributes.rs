//! How OTLP attribute values are stored: a `Map(Utf8, Utf8)` of text values, queryable as
//! `attributes['http.route']`, plus a string of one type letter per entry so the typed value can be
//! restored exactly.
//!
//! | letter | OTLP value | text form |
//! |---|---|---|
//! | `s` | string | the string |
//! | `i` | int | decimal |
//! | `d` | double | shortest text that parses back to the same double (`NaN`, `inf`, `-inf`) |
//! | `b` | bool | `true` / `false` |
//! | `y` | bytes | standard base64 |
//! | `a` | array | OTLP/JSON of the `ArrayValue` |
//! | `m` | key-value list | OTLP/JSON of the `KeyValueList` |
//! | `r` | string-table index (profiles only) | decimal |
//! | `e` | empty (no value set) | empty string |

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValueList};

/// The Arrow type of every attribute map column.
pub fn map_type() -> DataType {
    let entries = Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

/// One attribute value as the converters read it, borrowed from a decoded message or straight
/// from a request's protobuf bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Strindex(i32),
    /// An array or key-value list of a decoded message.
    Nested(&'a AnyValue),
    /// The protobuf bytes of an `AnyValue` holding an array or key-value list, checked to decode
    /// when they were read.
    NestedProtobuf(&'a [u8]),
}

impl<'a> From<Option<&'a AnyValue>> for ValueRef<'a> {
    fn from(value: Option<&'a AnyValue>) -> Self {
        let Some(any) = value else {
            return ValueRef::Empty;
        };
        match &any.value {
            None => ValueRef::Empty,
            Some(Value::StringValue(s)) => ValueRef::Str(s),
            Some(Value::BoolValue(b)) => ValueRef::Bool(*b),
            Some(Value::IntValue(i)) => ValueRef::Int(*i),
            Some(Value::DoubleValue(d)) => ValueRef::Double(*d),
            Some(Value::BytesValue(b)) => ValueRef::Bytes(b),
            Some(Value::StringValueStrindex(i)) => ValueRef::Strindex(*i),
            Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => ValueRef::Nested(any),
        }
    }
}

impl<'a> ValueRef<'a> {
    /// The text of a string value.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer value, or a string holding one.
    pub fn as_int(self) -> Option<i64> {
        match self {
            ValueRef::Int(i) => Some(i),
            ValueRef::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// A nested value, decoded if it is still protobuf.
    fn nested(self) -> Option<std::borrow::Cow<'a, AnyValue>> {
        use prost::Message;
        match self {
            ValueRef::Nested(any) => Some(std::borrow::Cow::Borrowed(any)),
            ValueRef::NestedProtobuf(bytes) => {
                AnyValue::decode(bytes).ok().map(std::borrow::Cow::Owned)
            }
            _ => None,
        }
    }
}

/// The text form and type letter of one attribute value.
pub fn encode_value(value: Option<&AnyValue>, text: &mut String) -> char {
    encode(ValueRef::from(value), text)
}

/// Like [`encode_value`], for a borrowed value.
pub fn encode(value: ValueRef<'_>, text: &mut String) -> char {
    use std::fmt::Write;
    match value {
        ValueRef::Empty => 'e',
        ValueRef::Str(s) => {
            text.push_str(s);
            's'
        }
        ValueRef::Int(i) => {
            let _ = write!(text, "{i}");
            'i'
        }
        ValueRef::Double(d) => {
            let _ = write!(text, "{d:?}");
            'd'
        }
        ValueRef::Bool(b) => {
            text.push_str(if b { "true" } else { "false" });
            'b'
        }
        ValueRef::Bytes(bytes) => {
            BASE64.encode_string(bytes, text);
            'y'
        }
        ValueRef::Strindex(i) => {
            let _ = write!(text, "{i}");
            'r'
        }
        ValueRef::Nested(_) | ValueRef::NestedProtobuf(_) => {
            let nested = value.nested();
            match nested.as_deref().and_then(|any| any.value.as_ref()) {
                Some(Value::ArrayValue(array)) => {
                    text.push_str(&serde_json::to_string(array).unwrap_or_default());
                    'a'
                }
                Some(Value::KvlistValue(list)) => {
                    text.push_str(&serde_json::to_string(list).unwrap_or_default());
                    'm'
                }
                // Bytes that no longer decode, or hold no nested value: not made by the readers.
                _ => 'e',
            }
        }
    }
}

/// An upper bound of the bytes an attribute takes in its map column: key and value text, two
/// offsets and its type letter. Cheap (nothing is encoded), for bounding what a request costs
/// before it is converted; nested values are bounded by their JSON with every character escaped.
pub fn stored_bound(key: &str, value: Option<&AnyValue>) -> usize {
    stored_bound_of(key, ValueRef::from(value))
}

/// Like [`stored_bound`], for a borrowed value.
pub fn stored_bound_of(key: &str, value: ValueRef<'_>) -> usize {
    let text = match value {
        ValueRef::Empty => 0,
        ValueRef::Str(s) => s.len(),
        ValueRef::Bytes(b) => b.len().div_ceil(3) * 4,
        ValueRef::Nested(_) | ValueRef::NestedProtobuf(_) => {
            value.nested().map_or(0, |any| json_bound(&any))
        }
        _ => 32,
    };
    key.len() + text + 9
}

/// An upper bound of the length of a nested value's JSON (`{"stringValue":"..."}` and the like).
fn json_bound(value: &AnyValue) -> usize {
    const WRAPPER: usize = 32;
    WRAPPER
        + match &value.value {
            None => 0,
            Some(Value::StringValue(s)) => 6 * s.len(),
            Some(Value::BytesValue(b)) => b.len().div_ceil(3) * 4,
            Some(Value::ArrayValue(array)) => array.values.iter().map(|v| json_bound(v) + 1).sum(),
            Some(Value::KvlistValue(list)) => list
                .values
                .iter()
                .map(|kv| 6 * kv.key.len() + WRAPPER + kv.value.as_ref().map_or(4, json_bound))
                .sum(),
            Some(_) => WRAPPER,
        }
}

/// Restores the OTLP value from its text form and type letter; `None` for an empty value or text
/// that does not match its letter (only possible in a file edited by hand).
pub fn decode_value(text: &str, letter: char) -> Option<AnyValue> {
    let value = match letter {
        's' => Value::StringValue(text.to_owned()),
        'i' => Value::IntValue(text.parse().ok()?),
        'd' => Value::DoubleValue(text.parse().ok()?),
        'b' => Value::BoolValue(text == "true"),
        'y' => Value::BytesValue(BASE64.decode(text).ok()?),
        'r' => Value::StringValueStrindex(text.parse().ok()?),
        'a' => Value::ArrayValue(serde_json::from_str::<ArrayValue>(text).ok()?),
        'm' => Value::KvlistValue(serde_json::from_str::<KeyValueList>(text).ok()?),
        _ => return None,
    };
    Some(AnyValue { value: Some(value) })
}

/// A value as plain JSON for API responses: numbers as numbers, arrays as arrays, key-value lists
/// as objects, bytes as base64 text.
pub fn to_json(value: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &value.value {
        None => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::StringValueStrindex(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or_else(|| J::String(format!("{d:?}"))),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::BytesValue(bytes)) => J::String(BASE64.encode(bytes)),
        Some(Value::ArrayValue(array)) => J::Array(array.values.iter().map(to_json).collect()),
        Some(Value::KvlistValue(list)) => J::Object(
            list.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().map(to_json).unwrap_or(J::Null);
                    (kv.key.clone(), v)
                })
                .collect(),
        ),
    }
}

/// The JSON form of a stored (text, letter) pair.
pub fn text_to_json(text: &str, letter: char) -> serde_json::Value {
    match decode_value(text, letter) {
        Some(value) => to_json(&value),
        None if letter == 'e' => serde_json::Value::Null,
        None => serde_json::Value::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::KeyValue;

    fn any(value: Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    fn round_trip(value: AnyValue) -> (String, char, Option<AnyValue>) {
        let mut text = String::new();
        let letter = encode_value(Some(&value), &mut text);
        let back = decode_value(&text, letter);
        (text, letter, back)
    }

    #[test]
    fn scalar_values_keep_their_type_and_value() {
        for (value, want_text, want_letter) in [
            (any(Value::StringValue("/cart".into())), "/cart", 's'),
            (any(Value::IntValue(-42)), "-42", 'i'),
            (any(Value::DoubleValue(0.1)), "0.1", 'd'),
            (any(Value::DoubleValue(1e300)), "1e300", 'd'),
            (any(Value::BoolValue(true)), "true", 'b'),
            (any(Value::BytesValue(vec![0, 255, 7])), "AP8H", 'y'),
        ] {
            let (text, letter, back) = round_trip(value.clone());
            assert_eq!((text.as_str(), letter), (want_text, want_letter));
            assert_eq!(back, Some(value));
        }
    }

    #[test]
    fn nested_values_round_trip_through_otlp_json() {
        let nested = any(Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "ids".into(),
                key_strindex: 0,
                value: Some(any(Value::ArrayValue(ArrayValue {
                    values: vec![any(Value::IntValue(1)), any(Value::StringValue("x".into()))],
                }))),
            }],
        }));
        let (_, letter, back) = round_trip(nested.clone());
        assert_eq!(letter, 'm');
        assert_eq!(back, Some(nested.clone()));
        assert_eq!(to_json(&nested), serde_json::json!({"ids": [1, "x"]}));
    }

    #[test]
    fn a_missing_value_is_stored_as_empty() {
        let mut text = String::new();
        assert_eq!(encode_value(None, &mut text), 'e');
        assert_eq!(text_to_json(&text, 'e'), serde_json::Value::Null);
    }

    #[test]
    fn non_finite_doubles_survive() {
        for d in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let (text, _, back) = round_trip(any(Value::DoubleValue(d)));
            let Some(AnyValue {
                value: Some(Value::DoubleValue(b)),
            }) = back
            else {
                panic!("not a double: {text}");
            };
            assert!(b.is_nan() && d.is_nan() || b == d, "{text}");
        }
    }

    /// The bound holds for every kind of value, for nested values of escaped characters, and
    /// is not wildly above what is stored for ordinary text.
    #[test]
    fn the_stored_bound_is_never_below_what_is_stored() {
        let nasty = "\u{1}\"\\\n".repeat(50);
        let kv = |key: &str, value: Value| KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(any(value)),
        };
        let values = vec![
            Value::StringValue("GET /cart".into()),
            Value::IntValue(i64::MIN),
            Value::DoubleValue(-1.234_567_890_123_456_7e-300),
            Value::BoolValue(false),
            Value::BytesValue(vec![0xff; 100]),
            Value::StringValueStrindex(i32::MIN),
            Value::ArrayValue(ArrayValue {
                values: vec![
                    any(Value::StringValue(nasty.clone())),
                    any(Value::IntValue(-1)),
                ],
            }),
            Value::KvlistValue(KeyValueList {
                values: vec![
                    kv(&nasty, Value::StringValue(nasty.clone())),
                    KeyValue::default(),
                    kv("n", Value::DoubleValue(f64::MAX)),
                    kv(
                        "deep",
                        Value::KvlistValue(KeyValueList {
                            values: vec![KeyValue::default(); 100],
                        }),
                    ),
                ],
            }),
        ];
        for value in values {
            let value = any(value);
            let mut text = String::new();
            encode_value(Some(&value), &mut text);
            let stored = "key".len() + text.len() + 9;
            let bound = stored_bound("key", Some(&value));
            assert!(bound >= stored, "{bound} < {stored} for {value:?}");
        }
        let plain = any(Value::StringValue("payment declined".into()));
        assert_eq!(stored_bound("event", Some(&plain)), 5 + 16 + 9);
        assert_eq!(stored_bound("gone", None), 4 + 9);
    }
}
