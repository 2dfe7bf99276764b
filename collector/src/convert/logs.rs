//! OTLP log records → one Arrow batch of the `logs` table, with the validation that decides which
//! records are rejected (and reported back in `partial_success`).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Int32Builder, StringBuilder,
    TimestampNanosecondBuilder, UInt32Builder,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use super::attributes::{Attr, AttributeColumns};
use super::origin::{Origin, OriginColumns, resource_bytes, scope_bytes};
use super::rejections::Rejections;
use crate::limits::Limits;
use crate::schema::attributes::encode;
use crate::schema::logs;

mod protobuf;
pub mod view;

use view::{LogRecords, LogView, LogsView};

/// Why one log record was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogRejection {
    #[error("trace_id must be empty or 16 bytes (got {0} bytes)")]
    TraceId(usize),
    #[error("span_id must be empty or 8 bytes (got {0} bytes)")]
    SpanId(usize),
    #[error("severity_number {0} is not between 0 and 24")]
    Severity(i32),
    #[error("a timestamp is past the year 2262")]
    Time,
    #[error("{what} has {count} attributes, more than the limit of {limit}")]
    TooManyAttributes {
        what: &'static str,
        count: usize,
        limit: usize,
    },
}

fn check_attrs(what: &'static str, count: usize, limits: &Limits) -> Result<(), LogRejection> {
    if count > limits.max_attributes {
        return Err(LogRejection::TooManyAttributes {
            what,
            count,
            limit: limits.max_attributes,
        });
    }
    Ok(())
}

/// Checks one record against the OTLP rules and Lakescope's limits.
pub fn validate_log(record: &LogView<'_>, limits: &Limits) -> Result<(), LogRejection> {
    if !(record.trace_id.is_empty() || record.trace_id.len() == 16) {
        return Err(LogRejection::TraceId(record.trace_id.len()));
    }
    if !(record.span_id.is_empty() || record.span_id.len() == 8) {
        return Err(LogRejection::SpanId(record.span_id.len()));
    }
    if !(0..=24).contains(&record.severity_number) {
        return Err(LogRejection::Severity(record.severity_number));
    }
    if i64::try_from(record.time_unix_nano).is_err()
        || i64::try_from(record.observed_time_unix_nano).is_err()
    {
        return Err(LogRejection::Time);
    }
    check_attrs("log record", record.attributes.len(), limits)
}

/// Whether each record of `view`, in order, is accepted: its resource and scope within the
/// limits and the record itself valid.
fn verdicts<'v>(
    view: &'v LogsView<'_>,
    limits: &'v Limits,
) -> impl Iterator<Item = Result<(), LogRejection>> + 'v {
    view.origins.blocks.iter().flat_map(move |block| {
        let shared = shared_verdict(view, block, limits);
        view.records.records[block.records.clone()]
            .iter()
            .map(move |record| shared.clone().and_then(|_| validate_log(record, limits)))
    })
}

/// Checks the attributes every record of a block shares: its resource's, then its scope's.
fn shared_verdict(
    view: &LogsView<'_>,
    block: &super::view::BlockView<'_>,
    limits: &Limits,
) -> Result<(), LogRejection> {
    let (resource, scope) = view.origins.attribute_counts(block);
    check_attrs("resource", resource, limits)?;
    check_attrs("scope", scope, limits)
}

/// Gives every record an observed time — when Lakescope received it — if the sender left it 0,
/// as the OpenTelemetry data model asks of receivers. Done before logging, so a replay gives the
/// same rows. Returns whether anything changed.
pub fn normalise(request: &mut ExportLogsServiceRequest, received_unix_nano: u64) -> bool {
    let mut changed = false;
    for record in request
        .resource_logs
        .iter_mut()
        .flat_map(|rl| &mut rl.scope_logs)
        .flat_map(|sl| &mut sl.log_records)
    {
        if record.observed_time_unix_nano == 0 {
            record.observed_time_unix_nano = received_unix_nano;
            changed = true;
        }
    }
    changed
}

/// Keeps only the records [`validate_log`] accepts (what is logged is what was acknowledged).
pub fn retain_valid(request: &mut ExportLogsServiceRequest, limits: &Limits) {
    let accepted: Vec<bool> = verdicts(&LogsView::from_request(request), limits)
        .map(|verdict| verdict.is_ok())
        .collect();
    // `retain` visits every element once, in order: the records in the order of `accepted`.
    let mut accepted = accepted.into_iter();
    request.resource_logs.retain_mut(|rl| {
        rl.scope_logs.retain_mut(|sl| {
            sl.log_records.retain(|_| accepted.next().unwrap_or(false));
            !sl.log_records.is_empty()
        });
        !rl.scope_logs.is_empty()
    });
}

struct LogColumns {
    timestamp: TimestampNanosecondBuilder,
    from_observed: BooleanBuilder,
    observed: TimestampNanosecondBuilder,
    severity_number: Int32Builder,
    severity_text: StringBuilder,
    body: StringBuilder,
    body_type: StringBuilder,
    event_name: StringBuilder,
    trace_id: BinaryBuilder,
    span_id: BinaryBuilder,
    flags: UInt32Builder,
    origin: OriginColumns,
    attributes: AttributeColumns,
    dropped: UInt32Builder,
    text: String,
}

impl LogColumns {
    fn with_capacity(rows: usize) -> Self {
        let s = || StringBuilder::with_capacity(rows, rows * 16);
        let ts = || TimestampNanosecondBuilder::with_capacity(rows).with_timezone("UTC");
        Self {
            timestamp: ts(),
            from_observed: BooleanBuilder::with_capacity(rows),
            observed: ts(),
            severity_number: Int32Builder::with_capacity(rows),
            severity_text: s(),
            body: StringBuilder::with_capacity(rows, rows * 64),
            body_type: s(),
            event_name: s(),
            trace_id: BinaryBuilder::with_capacity(rows, rows * 16),
            span_id: BinaryBuilder::with_capacity(rows, rows * 8),
            flags: UInt32Builder::with_capacity(rows),
            origin: OriginColumns::with_capacity(rows),
            attributes: AttributeColumns::with_capacity(rows),
            dropped: UInt32Builder::with_capacity(rows),
            text: String::new(),
        }
    }

    fn append(&mut self, r: &LogView<'_>, records: &LogRecords<'_>, origin: &Origin<'_, Attr<'_>>) {
        // validate_log has checked both times fit in i64.
        let observed = i64::try_from(r.observed_time_unix_nano).unwrap_or(i64::MAX);
        let time = i64::try_from(r.time_unix_nano).unwrap_or(i64::MAX);
        self.timestamp
            .append_value(if time == 0 { observed } else { time });
        self.from_observed.append_value(time == 0);
        self.observed.append_value(observed);
        self.severity_number.append_value(r.severity_number);
        self.severity_text.append_value(r.severity_text);
        self.text.clear();
        let letter = encode(r.body, &mut self.text);
        if letter == 'e' {
            self.body.append_null();
        } else {
            self.body.append_value(&self.text);
        }
        self.body_type.append_value(letter.to_string());
        self.event_name.append_value(r.event_name);
        if r.trace_id.is_empty() {
            self.trace_id.append_null();
        } else {
            self.trace_id.append_value(r.trace_id);
        }
        if r.span_id.is_empty() {
            self.span_id.append_null();
        } else {
            self.span_id.append_value(r.span_id);
        }
        self.flags.append_value(r.flags);
        self.origin.append(origin);
        self.attributes
            .append(&records.attributes[r.attributes.clone()]);
        self.dropped.append_value(r.dropped_attributes_count);
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let o = self.origin.finish();
        let (attributes, attribute_types) = self.attributes.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.timestamp.finish()),
            Arc::new(self.from_observed.finish()),
            Arc::new(self.observed.finish()),
            Arc::new(self.severity_number.finish()),
            Arc::new(self.severity_text.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.body_type.finish()),
            Arc::new(self.event_name.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.flags.finish()),
            o.service_name,
            o.service_namespace,
            o.service_version,
            o.service_instance_id,
            attributes,
            attribute_types,
            Arc::new(self.dropped.finish()),
            o.resource_attributes,
            o.resource_attribute_types,
            o.resource_dropped,
            o.resource_schema_url,
            o.scope_name,
            o.scope_version,
            o.scope_attributes,
            o.scope_attribute_types,
            o.scope_dropped,
            o.scope_schema_url,
        ];
        RecordBatch::try_new(logs::schema(), columns)
    }
}

/// Bytes the request's records repeat between them (an upper bound): each record stores its
/// resource and scope; a block without records counts as one, as its origin is still encoded.
/// Checked against [`Limits::max_repeated_bytes`] before converting.
pub fn repeated_bytes(request: &ExportLogsServiceRequest) -> usize {
    let mut total = 0usize;
    for rl in &request.resource_logs {
        let resource = resource_bytes(rl.resource.as_ref(), &rl.schema_url);
        for sl in &rl.scope_logs {
            let per_record = resource + scope_bytes(sl.scope.as_ref(), &sl.schema_url);
            total = total.saturating_add(per_record.saturating_mul(sl.log_records.len().max(1)));
        }
    }
    total
}

/// Converts every valid record of `request`; invalid ones are counted and skipped. Records must
/// have been [`normalise`]d.
pub fn convert(
    request: &ExportLogsServiceRequest,
    limits: &Limits,
) -> Result<super::Converted, ArrowError> {
    convert_view(&LogsView::from_request(request), limits)
}

/// Converts a request straight from its protobuf bytes, when every record in it is accepted and
/// has its observed time (so [`normalise`] would change nothing), and it is within
/// [`Limits::max_repeated_bytes`]. `None` leaves the request to the general path.
pub fn convert_protobuf(
    bytes: &[u8],
    limits: &Limits,
) -> Option<Result<super::Converted, ArrowError>> {
    let view = protobuf::read(bytes)?;
    if view.origins.repeated_bytes() > limits.max_repeated_bytes
        || view
            .records
            .records
            .iter()
            .any(|r| r.observed_time_unix_nano == 0)
        || verdicts(&view, limits).any(|verdict| verdict.is_err())
    {
        return None;
    }
    Some(convert_view(&view, limits))
}

fn convert_view(view: &LogsView<'_>, limits: &Limits) -> Result<super::Converted, ArrowError> {
    let mut columns = LogColumns::with_capacity(view.records.records.len());
    let mut rejected = Rejections::new("log record", "log records");
    for block in &view.origins.blocks {
        let origin = view.origins.origin(block);
        let shared = shared_verdict(view, block, limits);
        for record in &view.records.records[block.records.clone()] {
            match shared.clone().and_then(|_| validate_log(record, limits)) {
                Ok(()) => columns.append(record, &view.records, &origin),
                Err(e) => rejected.add(e),
            }
        }
    }
    Ok(super::Converted {
        batch: columns.finish()?,
        rejected: rejected.count,
        error_message: rejected.message(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::log_rows::read_logs;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue("cart".into()))],
                    dropped_attributes_count: 2,
                    entity_refs: vec![],
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "cart.logger".into(),
                        version: "1".into(),
                        attributes: vec![],
                        dropped_attributes_count: 0,
                    }),
                    log_records: records,
                    schema_url: "s".into(),
                }],
                schema_url: "r".into(),
            }],
        }
    }

    #[test]
    fn repeated_bytes_count_the_resource_and_scope_once_per_record() {
        let one = repeated_bytes(&request(vec![record()]));
        // service.name=cart (25, and 4 for the service column), scope name and version (12), the
        // two URLs (2), and 64 + 32 for the other origin columns.
        assert_eq!(one, 139);
        assert_eq!(repeated_bytes(&request(vec![record(); 7])), 7 * one);
        let mut big = request(vec![record(); 3]);
        big.resource_logs[0].scope_logs[0]
            .scope
            .as_mut()
            .unwrap()
            .version = "v".repeat(10_000);
        let bytes = repeated_bytes(&big);
        assert!(
            (3 * 10_000..3 * 10_000 + 3 * one + 30).contains(&bytes),
            "{bytes}"
        );
    }

    fn record() -> LogRecord {
        LogRecord {
            time_unix_nano: 1_795_551_330_000_000_000,
            observed_time_unix_nano: 1_795_551_330_100_000_000,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue("payment failed for order 42".into())),
            }),
            attributes: vec![kv("order.id", Value::IntValue(42))],
            dropped_attributes_count: 1,
            flags: 1,
            trace_id: vec![3; 16],
            span_id: vec![4; 8],
            event_name: "payment.failed".into(),
        }
    }

    #[test]
    fn every_field_of_a_log_record_survives_the_round_trip() {
        let structured = LogRecord {
            time_unix_nano: 0,
            body: Some(AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv("user", Value::StringValue("ann".into()))],
                })),
            }),
            trace_id: vec![],
            span_id: vec![],
            ..record()
        };
        let no_body = LogRecord {
            body: None,
            ..record()
        };
        let req = request(vec![record(), structured, no_body]);
        let converted = convert(&req, &Limits::default()).unwrap();
        assert_eq!(converted.rejected, 0);
        let back = read_logs(&converted.batch).unwrap();
        let sent = &req.resource_logs[0].scope_logs[0].log_records;
        for (b, s) in back.iter().zip(sent) {
            assert_eq!(&b.record, s);
            assert_eq!(Some(&b.resource), req.resource_logs[0].resource.as_ref());
        }
    }

    #[test]
    fn a_record_without_time_is_placed_at_its_observed_time() {
        let mut req = request(vec![LogRecord {
            time_unix_nano: 0,
            observed_time_unix_nano: 0,
            ..record()
        }]);
        assert!(normalise(&mut req, 1_795_551_331_000_000_000));
        let batch = convert(&req, &Limits::default()).unwrap().batch;
        let ts = batch
            .column_by_name(logs::col::TIMESTAMP)
            .unwrap()
            .as_any()
            .downcast_ref::<datafusion::arrow::array::TimestampNanosecondArray>()
            .unwrap();
        assert_eq!(ts.value(0), 1_795_551_331_000_000_000);
        assert!(!normalise(&mut req, 5), "a second pass changes nothing");
    }

    #[test]
    fn invalid_records_are_rejected_and_the_rest_kept() {
        let bad_trace = LogRecord {
            trace_id: vec![1; 5],
            ..record()
        };
        let bad_severity = LogRecord {
            severity_number: 99,
            ..record()
        };
        let mut req = request(vec![record(), bad_trace, bad_severity]);
        let converted = convert(&req, &Limits::default()).unwrap();
        assert_eq!((converted.batch.num_rows(), converted.rejected), (1, 2));
        assert!(
            converted
                .error_message
                .starts_with("2 log records rejected; the first: trace_id")
        );
        retain_valid(&mut req, &Limits::default());
        assert_eq!(req.resource_logs[0].scope_logs[0].log_records.len(), 1);
    }

    #[test]
    fn the_direct_reader_converts_records_as_prost_does() {
        use prost::Message;
        let structured = LogRecord {
            body: Some(AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv("user", Value::StringValue("ada".into()))],
                })),
            }),
            ..record()
        };
        // A structured body as a JSON log parser makes it: a map of ~30 fields, ~800 bytes.
        let parsed = LogRecord {
            body: Some(AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: (0..30)
                        .map(|i| {
                            kv(
                                &format!("field.{i}"),
                                Value::StringValue(format!("value number {i}")),
                            )
                        })
                        .collect(),
                })),
            }),
            ..record()
        };
        assert!(parsed.body.as_ref().unwrap().encoded_len() > 700);
        let no_body = LogRecord {
            body: None,
            trace_id: vec![],
            span_id: vec![],
            ..record()
        };
        let req = request(vec![record(), structured, parsed, no_body]);
        let direct = convert_protobuf(&req.encode_to_vec(), &Limits::default())
            .expect("the direct reader takes a request of valid records")
            .unwrap();
        let general = convert(&req, &Limits::default()).unwrap();
        assert_eq!(direct.batch.num_rows(), 4);
        assert_eq!(direct.batch, general.batch);
    }

    /// A record without an observed time (the general path gives it the receive time, so the
    /// logged bytes change), a rejected record, and invalid UTF-8 are left to the general path.
    #[test]
    fn the_direct_reader_declines_what_the_general_path_handles() {
        use prost::Message;
        let limits = Limits::default();
        let unobserved = LogRecord {
            observed_time_unix_nano: 0,
            ..record()
        };
        let req = request(vec![record(), unobserved]);
        assert!(convert_protobuf(&req.encode_to_vec(), &limits).is_none());
        let bad = LogRecord {
            severity_number: 99,
            ..record()
        };
        let req = request(vec![record(), bad]);
        assert!(convert_protobuf(&req.encode_to_vec(), &limits).is_none());
        let mut bytes = request(vec![record()]).encode_to_vec();
        let at = bytes
            .windows(7)
            .position(|w| w == b"payment")
            .expect("the body is in the bytes");
        bytes[at] = 0xff;
        assert!(convert_protobuf(&bytes, &limits).is_none());
        assert!(ExportLogsServiceRequest::decode(&bytes[..]).is_err());
    }

    fn wide_record() -> impl Strategy<Value = LogRecord> {
        (
            (any::<u64>(), 0u64..4, -1i32..26, ".{0,6}"),
            crate::convert::strategies::wide_value(),
            crate::convert::strategies::wide_attributes(),
            (any::<u32>(), any::<u32>()),
            (
                prop_oneof![Just(vec![]), proptest::collection::vec(any::<u8>(), 15..17)],
                prop_oneof![Just(vec![]), proptest::collection::vec(any::<u8>(), 7..9)],
                ".{0,6}",
            ),
        )
            .prop_map(
                |(
                    (time, observed, severity, text),
                    body,
                    attributes,
                    (dropped, flags),
                    (trace_id, span_id, event_name),
                )| LogRecord {
                    // Times past i64 are rejected; an observed time of 0 is declined.
                    time_unix_nano: time >> (time % 2),
                    observed_time_unix_nano: observed * 1_000_000_000_000_000_000,
                    severity_number: severity,
                    severity_text: text,
                    body,
                    attributes,
                    dropped_attributes_count: dropped,
                    flags,
                    trace_id,
                    span_id,
                    event_name,
                },
            )
    }

    fn wide_request() -> impl Strategy<Value = ExportLogsServiceRequest> {
        let scope = (
            proptest::option::of((".{0,6}", crate::convert::strategies::wide_attributes())),
            proptest::collection::vec(wide_record(), 0..4),
        )
            .prop_map(|(scope, log_records)| ScopeLogs {
                scope: scope.map(|(name, attributes)| InstrumentationScope {
                    name,
                    version: String::new(),
                    attributes,
                    dropped_attributes_count: 0,
                }),
                log_records,
                schema_url: String::new(),
            });
        let resource = (
            proptest::option::of(crate::convert::strategies::wide_attributes()),
            proptest::collection::vec(scope, 0..3),
        )
            .prop_map(|(attributes, scope_logs)| ResourceLogs {
                resource: attributes.map(|attributes| Resource {
                    attributes,
                    dropped_attributes_count: 0,
                    entity_refs: vec![],
                }),
                scope_logs,
                schema_url: String::new(),
            });
        proptest::collection::vec(resource, 0..3)
            .prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The direct reader's batch is the general path's; it declines only requests with
        /// rejected records or records without an observed time.
        #[test]
        fn the_direct_reader_agrees_with_prost(req in wide_request()) {
            use prost::Message;
            let limits = Limits::default();
            let bytes = req.encode_to_vec();
            let general = convert(&req, &limits).unwrap();
            match convert_protobuf(&bytes, &limits) {
                Some(direct) => {
                    let direct = direct.unwrap();
                    prop_assert_eq!(direct.rejected, 0);
                    prop_assert_eq!(&direct.batch, &general.batch);
                }
                None => {
                    let unobserved = req
                        .resource_logs
                        .iter()
                        .flat_map(|rl| &rl.scope_logs)
                        .flat_map(|sl| &sl.log_records)
                        .any(|r| r.observed_time_unix_nano == 0);
                    prop_assert!(
                        general.rejected > 0 || unobserved,
                        "declined a request of valid records"
                    );
                }
            }
            if let Some(view) = protobuf::read(&bytes) {
                prop_assert_eq!(view.origins.repeated_bytes(), repeated_bytes(&req));
            }
        }

        /// Damaged bytes: whenever the direct reader takes them, prost decodes them too, to the
        /// same records.
        #[test]
        fn damaged_bytes_are_read_as_prost_reads_them_or_declined(
            req in wide_request(),
            edits in crate::convert::strategies::edits(),
        ) {
            use prost::Message;
            let limits = Limits::default();
            let bytes = crate::convert::strategies::damaged(req.encode_to_vec(), edits);
            if let Some(direct) = convert_protobuf(&bytes, &limits) {
                let decoded = ExportLogsServiceRequest::decode(&bytes[..]);
                prop_assert!(decoded.is_ok(), "prost refuses what the direct reader took");
                let general = convert(&decoded.unwrap(), &limits).unwrap();
                prop_assert_eq!(direct.unwrap().batch, general.batch);
            }
        }
    }
}
