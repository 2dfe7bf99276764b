//! Invalid UTF-8 in an OTLP protobuf string field makes the whole request undecodable. Rather than
//! lose every valid record of the request, [`repair`] walks the protobuf wire format with the
//! OTLP schema, replaces invalid sequences in string fields with U+FFFD (as
//! `String::from_utf8_lossy` does), and leaves every other byte as it was. Only used after a
//! decode has failed, so valid requests pay nothing.

/// How a field of a message is treated.
#[derive(Debug)]
pub enum Field {
    /// A `string`: repaired.
    Str,
    /// An embedded message: walked.
    Msg(&'static Schema),
}

/// The string and message fields of one message type, by field number. Other fields are copied.
#[derive(Debug)]
pub struct Schema(pub &'static [(u32, Field)]);

use Field::{Msg, Str};

static ANY_VALUE: Schema = Schema(&[(1, Str), (5, Msg(&ARRAY_VALUE)), (6, Msg(&KEY_VALUE_LIST))]);
static ARRAY_VALUE: Schema = Schema(&[(1, Msg(&ANY_VALUE))]);
static KEY_VALUE_LIST: Schema = Schema(&[(1, Msg(&KEY_VALUE))]);
static KEY_VALUE: Schema = Schema(&[(1, Str), (2, Msg(&ANY_VALUE))]);
static ENTITY_REF: Schema = Schema(&[(1, Str), (2, Str), (3, Str), (4, Str)]);
static RESOURCE: Schema = Schema(&[(1, Msg(&KEY_VALUE)), (3, Msg(&ENTITY_REF))]);
static SCOPE: Schema = Schema(&[(1, Str), (2, Str), (3, Msg(&KEY_VALUE))]);

static EVENT: Schema = Schema(&[(2, Str), (3, Msg(&KEY_VALUE))]);
static LINK: Schema = Schema(&[(3, Str), (4, Msg(&KEY_VALUE))]);
static STATUS: Schema = Schema(&[(2, Str)]);
static SPAN: Schema = Schema(&[
    (3, Str),
    (5, Str),
    (9, Msg(&KEY_VALUE)),
    (11, Msg(&EVENT)),
    (13, Msg(&LINK)),
    (15, Msg(&STATUS)),
]);
static SCOPE_SPANS: Schema = Schema(&[(1, Msg(&SCOPE)), (2, Msg(&SPAN)), (3, Str)]);
static RESOURCE_SPANS: Schema = Schema(&[(1, Msg(&RESOURCE)), (2, Msg(&SCOPE_SPANS)), (3, Str)]);
/// `ExportTraceServiceRequest`.
pub static TRACES: Schema = Schema(&[(1, Msg(&RESOURCE_SPANS))]);

static LOG_RECORD: Schema = Schema(&[
    (3, Str),
    (5, Msg(&ANY_VALUE)),
    (6, Msg(&KEY_VALUE)),
    (12, Str),
]);
static SCOPE_LOGS: Schema = Schema(&[(1, Msg(&SCOPE)), (2, Msg(&LOG_RECORD)), (3, Str)]);
static RESOURCE_LOGS: Schema = Schema(&[(1, Msg(&RESOURCE)), (2, Msg(&SCOPE_LOGS)), (3, Str)]);
/// `ExportLogsServiceRequest`.
pub static LOGS: Schema = Schema(&[(1, Msg(&RESOURCE_LOGS))]);

static EXEMPLAR: Schema = Schema(&[(7, Msg(&KEY_VALUE))]);
static NUMBER_POINT: Schema = Schema(&[(7, Msg(&KEY_VALUE)), (5, Msg(&EXEMPLAR))]);
static HISTOGRAM_POINT: Schema = Schema(&[(9, Msg(&KEY_VALUE)), (8, Msg(&EXEMPLAR))]);
static EXP_HISTOGRAM_POINT: Schema = Schema(&[(1, Msg(&KEY_VALUE)), (11, Msg(&EXEMPLAR))]);
static SUMMARY_POINT: Schema = Schema(&[(7, Msg(&KEY_VALUE))]);
static GAUGE: Schema = Schema(&[(1, Msg(&NUMBER_POINT))]);
static SUM: Schema = Schema(&[(1, Msg(&NUMBER_POINT))]);
static HISTOGRAM: Schema = Schema(&[(1, Msg(&HISTOGRAM_POINT))]);
static EXP_HISTOGRAM: Schema = Schema(&[(1, Msg(&EXP_HISTOGRAM_POINT))]);
static SUMMARY: Schema = Schema(&[(1, Msg(&SUMMARY_POINT))]);
static METRIC: Schema = Schema(&[
    (1, Str),
    (2, Str),
    (3, Str),
    (5, Msg(&GAUGE)),
    (7, Msg(&SUM)),
    (9, Msg(&HISTOGRAM)),
    (10, Msg(&EXP_HISTOGRAM)),
    (11, Msg(&SUMMARY)),
    (12, Msg(&KEY_VALUE)),
]);
static SCOPE_METRICS: Schema = Schema(&[(1, Msg(&SCOPE)), (2, Msg(&METRIC)), (3, Str)]);
static RESOURCE_METRICS: Schema =
    Schema(&[(1, Msg(&RESOURCE)), (2, Msg(&SCOPE_METRICS)), (3, Str)]);
/// `ExportMetricsServiceRequest`.
pub static METRICS: Schema = Schema(&[(1, Msg(&RESOURCE_METRICS))]);

/// Deeper nesting than this is not repaired (prost refuses it anyway).
const MAX_DEPTH: usize = 100;

/// A varint as prost reads it: at most ten bytes, the tenth at most 1. (A repair that read more
/// would re-encode a length prost refuses as one it accepts, and the records counted on the
/// original body (`super::records`) would no longer bound what the repaired one decodes to.)
fn varint(input: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *input.get(*at)?;
        *at += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Repairs one message into `out`; counts repaired strings. `None` for malformed wire data.
fn walk(
    input: &[u8],
    schema: &Schema,
    depth: usize,
    out: &mut Vec<u8>,
    repaired: &mut usize,
) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut at = 0;
    while at < input.len() {
        let tag_start = at;
        let tag = varint(input, &mut at)?;
        let tag_end = at;
        let (number, wire) = ((tag >> 3) as u32, tag & 7);
        match wire {
            0 => {
                varint(input, &mut at)?;
                out.extend_from_slice(&input[tag_start..at]);
            }
            1 | 5 => {
                let width = if wire == 1 { 8 } else { 4 };
                let end = at.checked_add(width).filter(|e| *e <= input.len())?;
                out.extend_from_slice(&input[tag_start..end]);
                at = end;
            }
            2 => {
                let len = usize::try_from(varint(input, &mut at)?).ok()?;
                let end = at.checked_add(len).filter(|e| *e <= input.len())?;
                let body = &input[at..end];
                let field = schema.0.iter().find(|(n, _)| *n == number).map(|(_, f)| f);
                out.extend_from_slice(&input[tag_start..tag_end]);
                match field {
                    Some(Str) => match std::str::from_utf8(body) {
                        Ok(_) => {
                            put_varint(out, len as u64);
                            out.extend_from_slice(body);
                        }
                        Err(_) => {
                            *repaired += 1;
                            let fixed = String::from_utf8_lossy(body);
                            put_varint(out, fixed.len() as u64);
                            out.extend_from_slice(fixed.as_bytes());
                        }
                    },
                    Some(Msg(inner)) => {
                        let mut sub = Vec::with_capacity(body.len());
                        walk(body, inner, depth + 1, &mut sub, repaired)?;
                        put_varint(out, sub.len() as u64);
                        out.extend_from_slice(&sub);
                    }
                    None => {
                        put_varint(out, len as u64);
                        out.extend_from_slice(body);
                    }
                }
                at = end;
            }
            _ => return None,
        }
    }
    Some(())
}

/// The request with invalid UTF-8 in string fields replaced, and how many strings were repaired;
/// `None` when the bytes are not well-formed protobuf.
pub fn repair(input: &[u8], schema: &Schema) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::with_capacity(input.len());
    let mut repaired = 0;
    walk(input, schema, 0, &mut out, &mut repaired)?;
    Some((out, repaired))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;

    fn request(bodies: &[&str]) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: None,
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: bodies
                        .iter()
                        .map(|b| LogRecord {
                            time_unix_nano: 1,
                            trace_id: vec![0xff; 16],
                            body: Some(AnyValue {
                                value: Some(Value::StringValue((*b).into())),
                            }),
                            attributes: vec![KeyValue {
                                key: "k".into(),
                                key_strindex: 0,
                                value: Some(AnyValue {
                                    value: Some(Value::StringValue("XXXX".into())),
                                }),
                            }],
                            ..LogRecord::default()
                        })
                        .collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn valid_requests_come_back_byte_for_byte() {
        let bytes = request(&["one", "two"]).encode_to_vec();
        let (out, repaired) = repair(&bytes, &LOGS).unwrap();
        assert_eq!((out, repaired), (bytes, 0));
    }

    #[test]
    fn invalid_utf8_is_replaced_and_everything_else_kept() {
        let mut bytes = request(&["good one", "bad"]).encode_to_vec();
        // Corrupt the attribute value of the second record ("XXXX" → invalid bytes) and keep the
        // binary trace id's 0xff bytes, which are not a string and must stay.
        let last = bytes.windows(4).rposition(|w| w == b"XXXX").unwrap();
        bytes[last] = 0xc3;
        bytes[last + 1] = 0x28;
        assert!(ExportLogsServiceRequest::decode(bytes.as_slice()).is_err());
        let (out, repaired) = repair(&bytes, &LOGS).unwrap();
        assert_eq!(repaired, 1);
        let fixed = ExportLogsServiceRequest::decode(out.as_slice()).unwrap();
        let records = &fixed.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            request(&["good one"]).resource_logs[0].scope_logs[0].log_records[0]
        );
        assert_eq!(records[1].trace_id, vec![0xff; 16]);
        let Some(Value::StringValue(v)) = records[1].attributes[0]
            .value
            .as_ref()
            .and_then(|v| v.value.clone())
        else {
            panic!("not a string");
        };
        assert_eq!(v, "\u{fffd}(XX");
    }

    #[test]
    fn malformed_wire_data_is_not_repaired() {
        assert!(repair(&[0x0a, 0xff, 0xff, 0xff, 0x0f], &LOGS).is_none());
        assert!(repair(&[0x0b], &LOGS).is_none());
    }
}
