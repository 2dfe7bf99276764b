//! Builders for attribute map columns (`Map(Utf8, Utf8)` plus its type-letter column).

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, MapBuilder, MapFieldNames, StringBuilder};
use opentelemetry_proto::tonic::common::v1::KeyValue;

use crate::schema::attributes::{ValueRef, encode};

/// The most bytes (and entries) an attribute column allocates before its first append; past
/// it the column grows as it fills. A resource's attributes are stored once per span, so a
/// request's own size does not bound the estimate.
const MAX_PRESIZED: usize = 64 << 20;

/// What the converters read of one attribute, whether from a decoded message or from the
/// request's bytes.
pub trait AttributeRef {
    fn key(&self) -> &str;
    fn value(&self) -> ValueRef<'_>;
}

impl AttributeRef for KeyValue {
    fn key(&self) -> &str {
        &self.key
    }
    fn value(&self) -> ValueRef<'_> {
        ValueRef::from(self.value.as_ref())
    }
}

/// An attribute borrowed from a request's protobuf bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attr<'a> {
    pub key: &'a str,
    pub value: ValueRef<'a>,
}

impl AttributeRef for Attr<'_> {
    fn key(&self) -> &str {
        self.key
    }
    fn value(&self) -> ValueRef<'_> {
        self.value
    }
}

/// Appends one attribute set per row.
pub struct AttributeColumns {
    map: MapBuilder<StringBuilder, StringBuilder>,
    types: StringBuilder,
    text: String,
    letters: String,
}

/// An attribute set encoded once for the many rows that share it (a resource's or a scope's).
pub struct EncodedAttributes<'a> {
    entries: Vec<(&'a str, Cow<'a, str>)>,
    letters: String,
}

impl<'a> EncodedAttributes<'a> {
    pub fn new<A: AttributeRef>(attributes: &'a [A]) -> Self {
        let mut letters = String::with_capacity(attributes.len());
        let entries = attributes
            .iter()
            .map(|kv| {
                let value = match kv.value() {
                    ValueRef::Str(text) => {
                        letters.push('s');
                        Cow::Borrowed(text)
                    }
                    value => {
                        let mut text = String::new();
                        letters.push(encode(value, &mut text));
                        Cow::Owned(text)
                    }
                };
                (kv.key(), value)
            })
            .collect();
        Self { entries, letters }
    }

    /// Bytes of keys and of values per row.
    pub fn bytes(&self) -> (usize, usize) {
        let keys = self.entries.iter().map(|(k, _)| k.len()).sum();
        let values = self.entries.iter().map(|(_, v)| v.len()).sum();
        (keys, values)
    }
}

/// How much an attribute column will hold, to allocate it once.
#[derive(Debug, Default, Clone, Copy)]
pub struct AttributeSizes {
    pub entries: usize,
    pub key_bytes: usize,
    pub value_bytes: usize,
}

impl AttributeSizes {
    /// `rows` rows of `attributes`.
    pub fn add(&mut self, rows: usize, attributes: &EncodedAttributes<'_>) {
        let (keys, values) = attributes.bytes();
        self.entries += rows * attributes.entries.len();
        self.key_bytes += rows * keys;
        self.value_bytes += rows * values;
    }
}

impl AttributeColumns {
    pub fn with_capacity(rows: usize) -> Self {
        Self::with_sizes(
            rows,
            AttributeSizes {
                entries: 1024,
                key_bytes: 1024,
                value_bytes: 1024,
            },
        )
    }

    pub fn with_sizes(rows: usize, sizes: AttributeSizes) -> Self {
        let entries = sizes.entries.min(MAX_PRESIZED / size_of::<i32>());
        let names = MapFieldNames {
            entry: "entries".into(),
            key: "key".into(),
            value: "value".into(),
        };
        Self {
            map: MapBuilder::with_capacity(
                Some(names),
                StringBuilder::with_capacity(entries, sizes.key_bytes.min(MAX_PRESIZED)),
                StringBuilder::with_capacity(entries, sizes.value_bytes.min(MAX_PRESIZED)),
                rows,
            ),
            types: StringBuilder::with_capacity(rows, rows * 4),
            text: String::new(),
            letters: String::new(),
        }
    }

    pub fn append<A: AttributeRef>(&mut self, attributes: &[A]) {
        self.letters.clear();
        for kv in attributes {
            self.map.keys().append_value(kv.key());
            // Text values go in as they are, without a copy through `text`.
            let letter = match kv.value() {
                ValueRef::Str(text) => {
                    self.map.values().append_value(text);
                    's'
                }
                value => {
                    self.text.clear();
                    let letter = encode(value, &mut self.text);
                    self.map.values().append_value(&self.text);
                    letter
                }
            };
            self.letters.push(letter);
        }
        // A MapBuilder append only fails when keys and values differ in length, which the loop
        // above rules out.
        let _ = self.map.append(true);
        self.types.append_value(&self.letters);
    }

    /// Appends a row of an attribute set encoded beforehand.
    pub fn append_encoded(&mut self, attributes: &EncodedAttributes<'_>) {
        for (key, value) in &attributes.entries {
            self.map.keys().append_value(key);
            self.map.values().append_value(value);
        }
        // As in `append`: keys and values are the same length.
        let _ = self.map.append(true);
        self.types.append_value(&attributes.letters);
    }

    /// The map column and the type-letter column.
    pub fn finish(mut self) -> (ArrayRef, ArrayRef) {
        (Arc::new(self.map.finish()), Arc::new(self.types.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request can claim more than memory holds (a large resource times many spans): the
    /// columns then start at the cap and grow as rows arrive, rather than failing to allocate.
    #[test]
    fn an_estimate_beyond_memory_allocates_only_up_to_the_cap() {
        let huge = usize::MAX / 64;
        let sizes = AttributeSizes {
            entries: huge,
            key_bytes: huge,
            value_bytes: huge,
        };
        let mut columns = AttributeColumns::with_sizes(4, sizes);
        let attributes = vec![KeyValue {
            key: "k".into(),
            key_strindex: 0,
            value: None,
        }];
        columns.append(&attributes);
        let (map, types) = columns.finish();
        assert_eq!((map.len(), types.len()), (1, 1));
    }
}
