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
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::attributes::AttributeColumns;
use super::origin::{Origin, OriginColumns, resource_bytes, scope_bytes};
use super::rejections::Rejections;
use crate::limits::Limits;
use crate::schema::attributes::encode_value;
use crate::schema::logs;

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

fn check_attrs(
    what: &'static str,
    attrs: &[KeyValue],
    limits: &Limits,
) -> Result<(), LogRejection> {
    if attrs.len() > limits.max_attributes {
        return Err(LogRejection::TooManyAttributes {
            what,
            count: attrs.len(),
            limit: limits.max_attributes,
        });
    }
    Ok(())
}

/// Checks one record against the OTLP rules and Lakescope's limits.
pub fn validate_log(record: &LogRecord, limits: &Limits) -> Result<(), LogRejection> {
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
    check_attrs("log record", &record.attributes, limits)
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
    request.resource_logs.retain_mut(|rl| {
        let resource = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        if check_attrs("resource", resource, limits).is_err() {
            return false;
        }
        rl.scope_logs.retain_mut(|sl| {
            let scope = sl.scope.as_ref().map_or(&[][..], |s| &s.attributes[..]);
            if check_attrs("scope", scope, limits).is_err() {
                return false;
            }
            sl.log_records.retain(|r| validate_log(r, limits).is_ok());
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

    fn append(&mut self, r: &LogRecord, origin: &Origin<'_>) {
        // validate_log has checked both times fit in i64.
        let observed = i64::try_from(r.observed_time_unix_nano).unwrap_or(i64::MAX);
        let time = i64::try_from(r.time_unix_nano).unwrap_or(i64::MAX);
        self.timestamp
            .append_value(if time == 0 { observed } else { time });
        self.from_observed.append_value(time == 0);
        self.observed.append_value(observed);
        self.severity_number.append_value(r.severity_number);
        self.severity_text.append_value(&r.severity_text);
        self.text.clear();
        let letter = encode_value(r.body.as_ref(), &mut self.text);
        if letter == 'e' {
            self.body.append_null();
        } else {
            self.body.append_value(&self.text);
        }
        self.body_type.append_value(letter.to_string());
        self.event_name.append_value(&r.event_name);
        if r.trace_id.is_empty() {
            self.trace_id.append_null();
        } else {
            self.trace_id.append_value(&r.trace_id);
        }
        if r.span_id.is_empty() {
            self.span_id.append_null();
        } else {
            self.span_id.append_value(&r.span_id);
        }
        self.flags.append_value(r.flags);
        self.origin.append(origin);
        self.attributes.append(&r.attributes);
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
    let total = request
        .resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum();
    let mut columns = LogColumns::with_capacity(total);
    let mut rejected = Rejections::new("log record", "log records");
    for rl in &request.resource_logs {
        let resource = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let resource_ok = check_attrs("resource", resource, limits);
        for sl in &rl.scope_logs {
            let origin = Origin::new(
                rl.resource.as_ref(),
                &rl.schema_url,
                sl.scope.as_ref(),
                &sl.schema_url,
            );
            let shared = resource_ok
                .clone()
                .and_then(|_| check_attrs("scope", origin.scope_attributes, limits));
            for record in &sl.log_records {
                match shared.clone().and_then(|_| validate_log(record, limits)) {
                    Ok(()) => columns.append(record, &origin),
                    Err(e) => rejected.add(e),
                }
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
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
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
}
