//! Reads rows of the `logs` table back into OTLP log records: the inverse of `convert::logs`.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::attributes::decode_value;
use super::logs::col;
use super::rows::{ColumnError, binaries, id, key_values, maps, strings, times, u32s};

/// One stored log record with the resource and scope it was sent with.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLog {
    pub resource: Resource,
    pub resource_schema_url: String,
    pub scope: InstrumentationScope,
    pub scope_schema_url: String,
    pub record: LogRecord,
}

/// Every row of a batch with the `logs` schema, as OTLP log records.
pub fn read_logs(batch: &RecordBatch) -> Result<Vec<StoredLog>, ColumnError> {
    let timestamp = times(batch, col::TIMESTAMP)?;
    let from_observed = batch
        .column_by_name(col::TIMESTAMP_FROM_OBSERVED)
        .and_then(|c| c.as_boolean_opt())
        .ok_or(ColumnError(col::TIMESTAMP_FROM_OBSERVED))?;
    let observed = times(batch, col::OBSERVED_TIMESTAMP)?;
    let severity = batch
        .column_by_name(col::SEVERITY_NUMBER)
        .and_then(|c| c.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>())
        .ok_or(ColumnError(col::SEVERITY_NUMBER))?;
    let severity_text = strings(batch, col::SEVERITY_TEXT)?;
    let body = strings(batch, col::BODY)?;
    let body_type = strings(batch, col::BODY_TYPE)?;
    let event_name = strings(batch, col::EVENT_NAME)?;
    let trace_id = binaries(batch, col::TRACE_ID)?;
    let span_id = binaries(batch, col::SPAN_ID)?;
    let flags = u32s(batch, col::FLAGS)?;
    let attrs = maps(batch, col::ATTRIBUTES)?;
    let attr_types = strings(batch, col::ATTRIBUTE_TYPES)?;
    let dropped = u32s(batch, col::DROPPED_ATTRIBUTES_COUNT)?;
    let res_attrs = maps(batch, col::RESOURCE_ATTRIBUTES)?;
    let res_types = strings(batch, col::RESOURCE_ATTRIBUTE_TYPES)?;
    let res_dropped = u32s(batch, col::RESOURCE_DROPPED_ATTRIBUTES_COUNT)?;
    let res_schema = strings(batch, col::RESOURCE_SCHEMA_URL)?;
    let scope_name = strings(batch, col::SCOPE_NAME)?;
    let scope_version = strings(batch, col::SCOPE_VERSION)?;
    let scope_attrs = maps(batch, col::SCOPE_ATTRIBUTES)?;
    let scope_types = strings(batch, col::SCOPE_ATTRIBUTE_TYPES)?;
    let scope_dropped = u32s(batch, col::SCOPE_DROPPED_ATTRIBUTES_COUNT)?;
    let scope_schema = strings(batch, col::SCOPE_SCHEMA_URL)?;

    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let letter = body_type.value(i).chars().next().unwrap_or('e');
        let body = if body.is_null(i) {
            None
        } else {
            decode_value(body.value(i), letter)
        };
        out.push(StoredLog {
            resource: Resource {
                attributes: key_values(res_attrs, res_types, i),
                dropped_attributes_count: res_dropped.value(i),
                entity_refs: Vec::new(),
            },
            resource_schema_url: res_schema.value(i).to_owned(),
            scope: InstrumentationScope {
                name: scope_name.value(i).to_owned(),
                version: scope_version.value(i).to_owned(),
                attributes: key_values(scope_attrs, scope_types, i),
                dropped_attributes_count: scope_dropped.value(i),
            },
            scope_schema_url: scope_schema.value(i).to_owned(),
            record: LogRecord {
                time_unix_nano: if from_observed.value(i) {
                    0
                } else {
                    timestamp.value(i) as u64
                },
                observed_time_unix_nano: observed.value(i) as u64,
                severity_number: severity.value(i),
                severity_text: severity_text.value(i).to_owned(),
                body,
                attributes: key_values(attrs, attr_types, i),
                dropped_attributes_count: dropped.value(i),
                flags: flags.value(i),
                trace_id: id(trace_id, i),
                span_id: id(span_id, i),
                event_name: event_name.value(i).to_owned(),
            },
        });
    }
    Ok(out)
}
