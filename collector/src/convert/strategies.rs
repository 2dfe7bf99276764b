//! Proptest strategies shared by the converters' tests.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use proptest::prelude::*;

/// Values of every kind: scalars, arrays and key-value lists nested a few levels (short and
/// long ones), and missing ones.
pub fn wide_value() -> impl Strategy<Value = Option<AnyValue>> {
    let scalar = prop_oneof![
        ".{0,12}".prop_map(Value::StringValue),
        any::<i64>().prop_map(Value::IntValue),
        any::<f64>().prop_map(Value::DoubleValue),
        any::<bool>().prop_map(Value::BoolValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::BytesValue),
        any::<i32>().prop_map(Value::StringValueStrindex),
        "[a-z]{40,60}".prop_map(Value::StringValue),
    ];
    let leaf = proptest::option::weighted(0.9, scalar).prop_map(|value| AnyValue { value });
    let nested = leaf.clone().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|values| Value::ArrayValue(ArrayValue { values })),
            proptest::collection::vec(("[a-z]{1,5}", inner), 0..4).prop_map(|pairs| {
                Value::KvlistValue(KeyValueList {
                    values: pairs
                        .into_iter()
                        .map(|(key, value)| KeyValue {
                            key,
                            key_strindex: 0,
                            value: Some(value),
                        })
                        .collect(),
                })
            }),
        ]
        .prop_map(|value| AnyValue { value: Some(value) })
    });
    proptest::option::weighted(
        0.9,
        prop_oneof![
            6 => leaf,
            2 => nested,
            1 => Just(AnyValue { value: None }),
        ],
    )
}

pub fn wide_attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(("[a-z.]{0,10}", wide_value()), 0..5).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(key, value)| KeyValue {
                key,
                key_strindex: 0,
                value,
            })
            .collect()
    })
}

/// Up to three edits of a request's bytes: a byte overwritten, a byte inserted, or the rest cut.
pub fn edits() -> impl Strategy<Value = Vec<(proptest::sample::Index, u8, u8)>> {
    proptest::collection::vec(
        (any::<proptest::sample::Index>(), any::<u8>(), 0u8..3),
        1..4,
    )
}

/// `bytes` with `edits` applied in turn.
pub fn damaged(mut bytes: Vec<u8>, edits: Vec<(proptest::sample::Index, u8, u8)>) -> Vec<u8> {
    for (at, byte, how) in edits {
        if bytes.is_empty() {
            break;
        }
        let i = at.index(bytes.len());
        match how {
            0 => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            _ => bytes.truncate(i),
        }
    }
    bytes
}
