//! Builders for attribute map columns (`Map(Utf8, Utf8)` plus its type-letter column).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, MapBuilder, MapFieldNames, StringBuilder};
use opentelemetry_proto::tonic::common::v1::KeyValue;

use crate::schema::attributes::encode_value;

/// Appends one attribute set per row.
pub struct AttributeColumns {
    map: MapBuilder<StringBuilder, StringBuilder>,
    types: StringBuilder,
    text: String,
    letters: String,
}

impl AttributeColumns {
    pub fn with_capacity(rows: usize) -> Self {
        let names = MapFieldNames {
            entry: "entries".into(),
            key: "key".into(),
            value: "value".into(),
        };
        Self {
            map: MapBuilder::with_capacity(
                Some(names),
                StringBuilder::new(),
                StringBuilder::new(),
                rows,
            ),
            types: StringBuilder::with_capacity(rows, rows * 4),
            text: String::new(),
            letters: String::new(),
        }
    }

    pub fn append(&mut self, attributes: &[KeyValue]) {
        self.letters.clear();
        for kv in attributes {
            self.text.clear();
            let letter = encode_value(kv.value.as_ref(), &mut self.text);
            self.map.keys().append_value(&kv.key);
            self.map.values().append_value(&self.text);
            self.letters.push(letter);
        }
        // A MapBuilder append only fails when keys and values differ in length, which the loop
        // above rules out.
        let _ = self.map.append(true);
        self.types.append_value(&self.letters);
    }

    /// The map column and the type-letter column.
    pub fn finish(mut self) -> (ArrayRef, ArrayRef) {
        (Arc::new(self.map.finish()), Arc::new(self.types.finish()))
    }
}
