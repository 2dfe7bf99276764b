//! Proptest strategies shared by the converters' tests.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use proptest::prelude::*;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue { value: Some(value) }),
    }
}

/// Values of every kind, nested ones small and large (the direct reader leaves large ones to
/// prost), and missing ones.
pub fn wide_value() -> impl Strategy<Value = Option<AnyValue>> {
    let scalar = prop_oneof![
        ".{0,12}".prop_map(Value::StringValue),
        any::<i64>().prop_map(Value::IntValue),
        any::<f64>().prop_map(Value::DoubleValue),
        any::<bool>().prop_map(Value::BoolValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::BytesValue),
        any::<i32>().prop_map(Value::StringValueStrindex),
    ];
    let nested = proptest::collection::vec("[a-z]{0,60}", 0..5).prop_map(|items| {
        let values: Vec<AnyValue> = items
            .into_iter()
            .map(|item| AnyValue {
                value: Some(Value::StringValue(item)),
            })
            .collect();
        Value::ArrayValue(ArrayValue { values })
    });
    let list = ("[a-z]{1,5}", any::<i64>()).prop_map(|(key, i)| {
        Value::KvlistValue(KeyValueList {
            values: vec![kv(&key, Value::IntValue(i))],
        })
    });
    proptest::option::weighted(
        0.9,
        prop_oneof![
            6 => scalar.prop_map(Some),
            1 => nested.prop_map(Some),
            1 => list.prop_map(Some),
            1 => Just(None),
        ]
        .prop_map(|value| AnyValue { value }),
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
