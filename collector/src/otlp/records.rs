//! How many records (spans, log records, data points) an export request holds, counted on its
//! bytes before anything is decoded.
//!
//! Decoding costs memory per record whatever the record holds: an empty log record is 2 bytes
//! of protobuf (3 of JSON) but a few hundred bytes once decoded and converted, so a 16 MiB body
//! of them would take gigabytes before any other limit could look at it. The receivers refuse a
//! request over `--max-request-records` from this count instead.
//!
//! The count walks only the messages above the records and skips each record whole. A body it
//! cannot walk is counted up to where it stops: the decoder then reports the error.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::convert::protobuf::{Fields, LEN};

/// The fields leading from an export request to its records, one level per message: at each
/// level the fields (protobuf numbers, or OTLP/JSON names in either spelling) to descend into;
/// the last level's are the records.
pub struct Path {
    pub protobuf: &'static [&'static [u32]],
    pub json: &'static [&'static [&'static str]],
}

/// `ExportTraceServiceRequest.resource_spans` → `ResourceSpans.scope_spans` → `ScopeSpans.spans`.
pub const SPANS: Path = Path {
    protobuf: &[&[1], &[2], &[2]],
    json: &[
        &["resourceSpans", "resource_spans"],
        &["scopeSpans", "scope_spans"],
        &["spans"],
    ],
};

/// `ExportLogsServiceRequest.resource_logs` → `ResourceLogs.scope_logs` →
/// `ScopeLogs.log_records`.
pub const LOG_RECORDS: Path = Path {
    protobuf: &[&[1], &[2], &[2]],
    json: &[
        &["resourceLogs", "resource_logs"],
        &["scopeLogs", "scope_logs"],
        &["logRecords", "log_records"],
    ],
};

/// `ExportMetricsServiceRequest.resource_metrics` → `ResourceMetrics.scope_metrics` →
/// `ScopeMetrics.metrics` → `Metric.{gauge, sum, histogram, exponential_histogram, summary}`
/// → `data_points`.
pub const DATA_POINTS: Path = Path {
    protobuf: &[&[1], &[2], &[2], &[5, 7, 9, 10, 11], &[1]],
    json: &[
        &["resourceMetrics", "resource_metrics"],
        &["scopeMetrics", "scope_metrics"],
        &["metrics"],
        &[
            "gauge",
            "sum",
            "histogram",
            "exponentialHistogram",
            "exponential_histogram",
            "summary",
        ],
        &["dataPoints", "data_points"],
    ],
};

/// Records in a protobuf export request.
pub fn in_protobuf(bytes: &[u8], path: &Path) -> usize {
    count_protobuf(bytes, path.protobuf)
}

fn count_protobuf(message: &[u8], levels: &[&[u32]]) -> usize {
    let Some((fields, below)) = levels.split_first() else {
        return 0;
    };
    let mut reader = Fields::new(message);
    let mut count = 0usize;
    while !reader.done() {
        let Some((number, wire)) = reader.key() else {
            break;
        };
        if wire == LEN && fields.contains(&number) {
            let Some(inner) = reader.bytes() else {
                break;
            };
            count += if below.is_empty() {
                1
            } else {
                count_protobuf(inner, below)
            };
        } else if skip(&mut reader, number, wire, GROUP_DEPTH).is_none() {
            break;
        }
    }
    count
}

const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
/// prost's recursion limit, which bounds groups nested in groups as it bounds messages.
const GROUP_DEPTH: u32 = 100;

/// Skips a field as prost does, groups included: prost skips an unknown field's group, so a
/// count that stopped at one could be passed by any number of records after it.
fn skip(reader: &mut Fields<'_>, number: u32, wire: u8, depth: u32) -> Option<()> {
    if wire != START_GROUP {
        return reader.skip(wire);
    }
    let depth = depth.checked_sub(1)?;
    loop {
        let (inner, wire) = reader.key()?;
        if wire == END_GROUP {
            return (inner == number).then_some(());
        }
        skip(reader, inner, wire, depth)?;
    }
}

/// Records in an OTLP/JSON export request (0 for a body that is not JSON).
pub fn in_json(bytes: &[u8], path: &Path) -> usize {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let mut count = 0;
    // An error (not JSON, or the wrong shape) ends the count where it happened; decoding the
    // body then says what is wrong with it.
    let _ = Object {
        levels: path.json,
        count: &mut count,
    }
    .deserialize(&mut reader);
    count
}

/// Visitor methods taking every scalar JSON value (`null` included) as holding no records: a
/// visitor without them would fail on one, and the count would stop short of later records.
macro_rules! ignore_scalars {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

/// A JSON value that should be an object whose `levels[0]` fields lead to the records.
struct Object<'c> {
    levels: &'static [&'static [&'static str]],
    count: &'c mut usize,
}

impl<'de> DeserializeSeed<'de> for Object<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Object<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OTLP/JSON message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((names, below)) = self.levels.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        while let Some(wanted) = map.next_key_seed(Name(names))? {
            if wanted {
                map.next_value_seed(Field {
                    levels: below,
                    count: &mut *self.count,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    ignore_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// Whether an object's key is one of `names`.
struct Name(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Name {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(self.0.contains(&key))
    }
}

/// The value of a wanted field: an array of messages (or of records, at the last level), or one
/// message (a metric's data).
struct Field<'c> {
    levels: &'static [&'static [&'static str]],
    count: &'c mut usize,
}

impl<'de> DeserializeSeed<'de> for Field<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Field<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OTLP/JSON field")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.levels.is_empty() {
            while seq.next_element::<IgnoredAny>()?.is_some() {
                *self.count += 1;
            }
        } else {
            while seq
                .next_element_seed(Object {
                    levels: self.levels,
                    count: &mut *self.count,
                })?
                .is_some()
            {}
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Object {
            levels: self.levels,
            count: self.count,
        }
        .visit_map(map)
    }

    ignore_scalars!();
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
        Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
        metric,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
    use prost::Message;

    use super::*;

    fn kv(key: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("v".into())),
            }),
            ..KeyValue::default()
        }
    }

    /// Blocks of 0, 1 and 3 scopes holding `shape[i]` records each; resources and records carry
    /// attributes and events, which are repeated messages too and must not be counted.
    fn traces(shape: &[&[usize]]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: shape
                .iter()
                .map(|scopes| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name"), kv("host.name")],
                        ..Resource::default()
                    }),
                    scope_spans: scopes
                        .iter()
                        .map(|&n| ScopeSpans {
                            spans: (0..n)
                                .map(|i| Span {
                                    trace_id: vec![1; 16],
                                    span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                                    attributes: vec![kv("a"), kv("b")],
                                    events: vec![span::Event::default(); 2],
                                    ..Span::default()
                                })
                                .collect(),
                            ..ScopeSpans::default()
                        })
                        .collect(),
                    ..ResourceSpans::default()
                })
                .collect(),
        }
    }

    fn logs(shape: &[&[usize]]) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: shape
                .iter()
                .map(|scopes| ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name")],
                        ..Resource::default()
                    }),
                    scope_logs: scopes
                        .iter()
                        .map(|&n| ScopeLogs {
                            log_records: (0..n)
                                .map(|_| LogRecord {
                                    attributes: vec![kv("a")],
                                    ..LogRecord::default()
                                })
                                .collect(),
                            ..ScopeLogs::default()
                        })
                        .collect(),
                    ..ResourceLogs::default()
                })
                .collect(),
        }
    }

    /// One metric of each kind per scope, the kind's points `n`, `n + 1`, … in turn.
    fn metrics(scopes: &[usize]) -> (ExportMetricsServiceRequest, usize) {
        let mut total = 0;
        let scope_metrics = scopes
            .iter()
            .map(|&n| {
                let metrics = (0..5)
                    .map(|kind| {
                        let points = n + kind;
                        total += points;
                        let data = match kind {
                            0 => metric::Data::Gauge(Gauge {
                                data_points: vec![NumberDataPoint::default(); points],
                            }),
                            1 => metric::Data::Sum(Sum {
                                data_points: vec![NumberDataPoint::default(); points],
                                ..Sum::default()
                            }),
                            2 => metric::Data::Histogram(Histogram {
                                data_points: vec![
                                    HistogramDataPoint {
                                        bucket_counts: vec![1, 2, 3],
                                        attributes: vec![kv("a")],
                                        ..HistogramDataPoint::default()
                                    };
                                    points
                                ],
                                ..Histogram::default()
                            }),
                            3 => metric::Data::ExponentialHistogram(ExponentialHistogram {
                                data_points: vec![ExponentialHistogramDataPoint::default(); points],
                                ..ExponentialHistogram::default()
                            }),
                            _ => metric::Data::Summary(Summary {
                                data_points: vec![SummaryDataPoint::default(); points],
                            }),
                        };
                        Metric {
                            name: format!("m{kind}"),
                            metadata: vec![kv("m")],
                            data: Some(data),
                            ..Metric::default()
                        }
                    })
                    .collect();
                ScopeMetrics {
                    metrics,
                    ..ScopeMetrics::default()
                }
            })
            .collect();
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![
                ResourceMetrics::default(),
                ResourceMetrics {
                    scope_metrics,
                    ..ResourceMetrics::default()
                },
            ],
        };
        (request, total)
    }

    #[test]
    fn every_record_is_counted_in_protobuf_and_json() {
        for shape in [&[][..], &[&[][..]], &[&[0, 1, 3], &[], &[7]]] {
            let expected: usize = shape.iter().flat_map(|s| s.iter()).sum();
            let request = traces(shape);
            assert_eq!(in_protobuf(&request.encode_to_vec(), &SPANS), expected);
            let json = serde_json::to_vec(&request).unwrap();
            assert_eq!(in_json(&json, &SPANS), expected, "{shape:?}");
            let request = logs(shape);
            assert_eq!(
                in_protobuf(&request.encode_to_vec(), &LOG_RECORDS),
                expected
            );
            let json = serde_json::to_vec(&request).unwrap();
            assert_eq!(in_json(&json, &LOG_RECORDS), expected, "{shape:?}");
        }
        for scopes in [&[][..], &[0], &[2, 0, 5]] {
            let (request, expected) = metrics(scopes);
            let bytes = request.encode_to_vec();
            assert_eq!(in_protobuf(&bytes, &DATA_POINTS), expected, "{scopes:?}");
            let json = serde_json::to_vec(&request).unwrap();
            assert_eq!(in_json(&json, &DATA_POINTS), expected, "{scopes:?}");
        }
    }

    #[test]
    fn json_counts_either_spelling_and_ignores_other_shapes() {
        let json = br#"{"resource_logs":[{"scope_logs":[{"log_records":[{},{},{}]}]},
            {"scopeLogs":[{"logRecords":[{"body":{"arrayValue":{"values":[{},{}]}}}]},
                          {"logRecords":null},{"logRecords":{}},{"logRecords":7}]},
            null, 3, "x", {"resource":{"attributes":[{"key":"logRecords","value":{}}]}}],
            "logRecords":[{},{}]}"#;
        assert_eq!(in_json(json, &LOG_RECORDS), 4);
        let json = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"a","gauge":{"dataPoints":[{},{}]}},
            {"name":"b","exponential_histogram":{"data_points":[{}]}},
            {"name":"c","sum":null},{"name":"d","summary":{"dataPoints":[]}}]}]}]}"#;
        assert_eq!(in_json(json, &DATA_POINTS), 3);
    }

    fn log_records_in(request: &ExportLogsServiceRequest) -> usize {
        let scopes = request.resource_logs.iter().flat_map(|r| &r.scope_logs);
        scopes.map(|s| s.log_records.len()).sum()
    }

    fn data_points_in(request: &ExportMetricsServiceRequest) -> usize {
        let scopes = request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics);
        let metrics = scopes.flat_map(|s| &s.metrics);
        metrics.map(crate::convert::metrics::point_count).sum()
    }

    proptest::proptest! {
        /// The limit's safety: whatever a damaged body decodes to — by prost, after the UTF-8
        /// repair if need be, or from OTLP/JSON — holds no more records than were counted on
        /// the body as received.
        #[test]
        fn damaged_bodies_never_decode_to_more_records_than_counted(
            shape in proptest::collection::vec(proptest::collection::vec(0usize..4, 0..3), 0..3),
            scopes in proptest::collection::vec(0usize..3, 0..3),
            edits in crate::convert::strategies::edits(),
        ) {
            use crate::otlp::{decode, json, utf8};
            let shape: Vec<&[usize]> = shape.iter().map(Vec::as_slice).collect();
            let mut request = logs(&shape);
            // Two-byte characters, which single-byte edits turn into invalid UTF-8.
            for r in request.resource_logs.iter_mut().flat_map(|r| &mut r.scope_logs) {
                for record in &mut r.log_records {
                    record.severity_text = "é".repeat(3);
                }
            }
            let bytes = crate::convert::strategies::damaged(request.encode_to_vec(), edits.clone());
            let counted = in_protobuf(&bytes, &LOG_RECORDS);
            if let Ok(d) = decode::decode_protobuf::<ExportLogsServiceRequest>(bytes.into(), &utf8::LOGS) {
                proptest::prop_assert!(counted >= log_records_in(&d.message));
            }
            let text = crate::convert::strategies::damaged(serde_json::to_vec(&request).unwrap(), edits.clone());
            let counted = in_json(&text, &LOG_RECORDS);
            if let Ok(decoded) = json::logs(&text) {
                proptest::prop_assert!(counted >= log_records_in(&decoded));
            }
            let (request, _) = metrics(&scopes);
            let bytes = crate::convert::strategies::damaged(request.encode_to_vec(), edits.clone());
            let counted = in_protobuf(&bytes, &DATA_POINTS);
            if let Ok(d) = decode::decode_protobuf::<ExportMetricsServiceRequest>(bytes.into(), &utf8::METRICS) {
                proptest::prop_assert!(counted >= data_points_in(&d.message));
            }
            let text = crate::convert::strategies::damaged(serde_json::to_vec(&request).unwrap(), edits);
            let counted = in_json(&text, &DATA_POINTS);
            if let Ok(decoded) = json::metrics(&text) {
                proptest::prop_assert!(counted >= data_points_in(&decoded));
            }
        }
    }

    /// A length prost refuses (a tenth varint byte over 1) stops the count; the UTF-8 repair,
    /// which re-encodes lengths, must not turn it into one prost accepts, or the records behind
    /// it would be decoded uncounted.
    #[test]
    fn a_length_prost_refuses_is_not_repaired_into_one_it_accepts() {
        use crate::otlp::{decode, utf8};
        let records = b"\x12\x00".repeat(5);
        let scope = [&b"\x12"[..], &[records.len() as u8], &records].concat();
        // A first block whose schema URL is not UTF-8 (so a repair is tried), then a block
        // whose length is written in ten bytes, the last one 2.
        let mut body = vec![0x0a, 0x03, 0x1a, 0x01, 0xff, 0x0a, 0x80 | scope.len() as u8];
        body.extend([0x80; 8]);
        body.push(0x02);
        body.extend(&scope);
        assert_eq!(in_protobuf(&body, &LOG_RECORDS), 0);
        assert!(ExportLogsServiceRequest::decode(&body[..]).is_err());
        assert!(
            decode::decode_protobuf::<ExportLogsServiceRequest>(body.into(), &utf8::LOGS).is_err()
        );
    }

    /// prost skips an unknown field's group (nested groups too), and so does the count: records
    /// after one are counted.
    #[test]
    fn records_after_an_unknown_group_are_counted() {
        let records = b"\x12\x00".repeat(3);
        // Field 9 as a group holding a varint, a string and a nested group of field 10.
        let group = b"\x4b\x08\x01\x12\x01x\x53\x08\x02\x54\x4c";
        let scope = [&group[..], &records].concat();
        let body = [
            &group[..],
            b"\x0a",
            &[scope.len() as u8 + 2],
            b"\x12",
            &[scope.len() as u8],
            &scope,
        ]
        .concat();
        let request = ExportLogsServiceRequest::decode(&body[..]).expect("prost decodes it");
        assert_eq!(request.resource_logs[0].scope_logs[0].log_records.len(), 3);
        assert_eq!(in_protobuf(&body, &LOG_RECORDS), 3);
        // An end of group of another field: prost refuses it, and the count stops.
        let bad = [&b"\x4b\x54"[..], &body].concat();
        assert!(ExportLogsServiceRequest::decode(&bad[..]).is_err());
        assert_eq!(in_protobuf(&bad, &LOG_RECORDS), 0);
    }
}
