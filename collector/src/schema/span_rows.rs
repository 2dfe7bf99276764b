//! Reads rows of the `spans` table back into OTLP messages: the inverse of
//! `convert::spans`, used by the query API to return whole spans and by tests to prove that no
//! field is lost.

use datafusion::arrow::array::{Array, AsArray, ListArray, RecordBatch, StructArray};
use datafusion::arrow::datatypes::{TimestampNanosecondType, UInt32Type};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

pub use super::rows::ColumnError;
use super::rows::{binaries, i64s, id, key_values, lists, maps, strings, times, u32s};
use super::spans::{SPAN_KINDS, STATUS_CODES, col};

/// One stored span with the resource and scope it was sent with.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSpan {
    pub resource: Resource,
    pub resource_schema_url: String,
    pub scope: InstrumentationScope,
    pub scope_schema_url: String,
    pub span: Span,
}

fn struct_field<'a>(s: &'a StructArray, name: &'static str) -> Result<&'a dyn Array, ColumnError> {
    s.column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or(ColumnError(name))
}

fn events(list: &ListArray, row: usize) -> Result<Vec<Event>, ColumnError> {
    let values = list.value(row);
    let s = values.as_struct_opt().ok_or(ColumnError(col::EVENTS))?;
    let time = struct_field(s, "time")?
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or(ColumnError("events.time"))?;
    let name = struct_field(s, "name")?
        .as_string_opt::<i32>()
        .ok_or(ColumnError("events.name"))?;
    let attrs = struct_field(s, "attributes")?
        .as_map_opt()
        .ok_or(ColumnError("events.attributes"))?;
    let types = struct_field(s, "attribute_types")?
        .as_string_opt::<i32>()
        .ok_or(ColumnError("events.attribute_types"))?;
    let dropped = struct_field(s, "dropped_attributes_count")?
        .as_primitive_opt::<UInt32Type>()
        .ok_or(ColumnError("events.dropped_attributes_count"))?;
    Ok((0..s.len())
        .map(|i| Event {
            time_unix_nano: time.value(i) as u64,
            name: name.value(i).to_owned(),
            attributes: key_values(attrs, types, i),
            dropped_attributes_count: dropped.value(i),
        })
        .collect())
}

fn links(list: &ListArray, row: usize) -> Result<Vec<Link>, ColumnError> {
    let values = list.value(row);
    let s = values.as_struct_opt().ok_or(ColumnError(col::LINKS))?;
    let text = |name: &'static str| {
        struct_field(s, name)?
            .as_string_opt::<i32>()
            .ok_or(ColumnError(name))
    };
    let bytes = |name: &'static str| {
        struct_field(s, name)?
            .as_binary_opt::<i32>()
            .ok_or(ColumnError(name))
    };
    let (trace_id, span_id, trace_state, types) = (
        bytes("trace_id")?,
        bytes("span_id")?,
        text("trace_state")?,
        text("attribute_types")?,
    );
    let flags = struct_field(s, "flags")?
        .as_primitive_opt::<UInt32Type>()
        .ok_or(ColumnError("links.flags"))?;
    let attrs = struct_field(s, "attributes")?
        .as_map_opt()
        .ok_or(ColumnError("links.attributes"))?;
    let dropped = struct_field(s, "dropped_attributes_count")?
        .as_primitive_opt::<UInt32Type>()
        .ok_or(ColumnError("links.dropped_attributes_count"))?;
    Ok((0..s.len())
        .map(|i| Link {
            trace_id: id(trace_id, i),
            span_id: id(span_id, i),
            trace_state: trace_state.value(i).to_owned(),
            attributes: key_values(attrs, types, i),
            dropped_attributes_count: dropped.value(i),
            flags: flags.value(i),
        })
        .collect())
}

fn enum_index(names: &[&str], value: &str) -> i32 {
    names.iter().position(|n| *n == value).unwrap_or(0) as i32
}

/// The columns [`read_spans`] rebuilds a span from; the others are derived from these.
pub const READ_COLUMNS: [&str; 28] = [
    col::TRACE_ID,
    col::SPAN_ID,
    col::PARENT_SPAN_ID,
    col::TRACE_STATE,
    col::FLAGS,
    col::NAME,
    col::SPAN_KIND,
    col::START_TIME,
    col::DURATION_NS,
    col::STATUS_CODE,
    col::STATUS_MESSAGE,
    col::ATTRIBUTES,
    col::ATTRIBUTE_TYPES,
    col::DROPPED_ATTRIBUTES_COUNT,
    col::EVENTS,
    col::DROPPED_EVENTS_COUNT,
    col::LINKS,
    col::DROPPED_LINKS_COUNT,
    col::RESOURCE_ATTRIBUTES,
    col::RESOURCE_ATTRIBUTE_TYPES,
    col::RESOURCE_DROPPED_ATTRIBUTES_COUNT,
    col::RESOURCE_SCHEMA_URL,
    col::SCOPE_NAME,
    col::SCOPE_VERSION,
    col::SCOPE_ATTRIBUTES,
    col::SCOPE_ATTRIBUTE_TYPES,
    col::SCOPE_DROPPED_ATTRIBUTES_COUNT,
    col::SCOPE_SCHEMA_URL,
];

/// Every row of a batch with the `spans` schema (or a projection that keeps the
/// [`READ_COLUMNS`]), as OTLP spans. The end is the start plus the duration (it is not stored).
pub fn read_spans(batch: &RecordBatch) -> Result<Vec<StoredSpan>, ColumnError> {
    let trace_id = binaries(batch, col::TRACE_ID)?;
    let span_id = binaries(batch, col::SPAN_ID)?;
    let parent = binaries(batch, col::PARENT_SPAN_ID)?;
    let trace_state = strings(batch, col::TRACE_STATE)?;
    let flags = u32s(batch, col::FLAGS)?;
    let name = strings(batch, col::NAME)?;
    let kind = strings(batch, col::SPAN_KIND)?;
    let start = times(batch, col::START_TIME)?;
    let duration = i64s(batch, col::DURATION_NS)?;
    let status_code = strings(batch, col::STATUS_CODE)?;
    let status_message = strings(batch, col::STATUS_MESSAGE)?;
    let attrs = maps(batch, col::ATTRIBUTES)?;
    let attr_types = strings(batch, col::ATTRIBUTE_TYPES)?;
    let dropped_attrs = u32s(batch, col::DROPPED_ATTRIBUTES_COUNT)?;
    let event_list = lists(batch, col::EVENTS)?;
    let dropped_events = u32s(batch, col::DROPPED_EVENTS_COUNT)?;
    let link_list = lists(batch, col::LINKS)?;
    let dropped_links = u32s(batch, col::DROPPED_LINKS_COUNT)?;
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
        let code = enum_index(&STATUS_CODES, status_code.value(i));
        let message = status_message.value(i);
        let status = (code != 0 || !message.is_empty()).then(|| Status {
            message: message.to_owned(),
            code,
        });
        out.push(StoredSpan {
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
            span: Span {
                trace_id: id(trace_id, i),
                span_id: id(span_id, i),
                trace_state: trace_state.value(i).to_owned(),
                parent_span_id: id(parent, i),
                flags: flags.value(i),
                name: name.value(i).to_owned(),
                kind: enum_index(&SPAN_KINDS, kind.value(i)),
                start_time_unix_nano: start.value(i) as u64,
                end_time_unix_nano: start.value(i).saturating_add(duration.value(i)) as u64,
                attributes: key_values(attrs, attr_types, i),
                dropped_attributes_count: dropped_attrs.value(i),
                events: events(event_list, i)?,
                dropped_events_count: dropped_events.value(i),
                links: links(link_list, i)?,
                dropped_links_count: dropped_links.value(i),
                status,
            },
        });
    }
    Ok(out)
}
