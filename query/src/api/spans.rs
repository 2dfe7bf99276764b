//! The JSON form of a stored span, as `GET /api/v1/traces/{trace_id}` returns it.

use lakescope_collector::convert::spans::hex;
use lakescope_collector::schema::attributes::to_json;
use lakescope_collector::schema::span_rows::StoredSpan;
use lakescope_collector::schema::spans::{SPAN_KINDS, STATUS_CODES};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde_json::{Map, Value, json};

use crate::views::traces::rfc3339;

pub fn attributes(kvs: &[KeyValue]) -> Value {
    let mut map = Map::new();
    for kv in kvs {
        map.insert(
            kv.key.clone(),
            kv.value.as_ref().map(to_json).unwrap_or(Value::Null),
        );
    }
    Value::Object(map)
}

fn name_of(names: &[&'static str], index: i32) -> &'static str {
    usize::try_from(index)
        .ok()
        .and_then(|i| names.get(i))
        .copied()
        .unwrap_or("UNSPECIFIED")
}

fn time(nanos: u64) -> (String, String) {
    (rfc3339(nanos as i64), nanos.to_string())
}

/// Every field of the span, with its resource and scope. Times are given twice: RFC 3339 and
/// Unix nanoseconds as a string (JSON numbers cannot hold them exactly).
pub fn span_json(stored: &StoredSpan) -> Value {
    let s = &stored.span;
    let (start, start_ns) = time(s.start_time_unix_nano);
    let (end, end_ns) = time(s.end_time_unix_nano);
    let duration_ns = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
    let service = stored
        .resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .map(to_json);
    let status = s.status.clone().unwrap_or_default();
    json!({
        "trace_id": hex(&s.trace_id),
        "span_id": hex(&s.span_id),
        "parent_span_id": (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id)),
        "trace_state": s.trace_state,
        "flags": s.flags,
        "name": s.name,
        "kind": name_of(&SPAN_KINDS, s.kind),
        "service_name": service.unwrap_or(Value::String("unknown_service".into())),
        "start_time": start,
        "start_time_unix_nano": start_ns,
        "end_time": end,
        "end_time_unix_nano": end_ns,
        "duration_ns": duration_ns,
        "duration_ms": duration_ns as f64 / 1e6,
        "status": { "code": name_of(&STATUS_CODES, status.code), "message": status.message },
        "attributes": attributes(&s.attributes),
        "dropped_attributes_count": s.dropped_attributes_count,
        "events": s.events.iter().map(|e| {
            let (time, time_ns) = time(e.time_unix_nano);
            json!({
                "time": time,
                "time_unix_nano": time_ns,
                "name": e.name,
                "attributes": attributes(&e.attributes),
                "dropped_attributes_count": e.dropped_attributes_count,
            })
        }).collect::<Vec<_>>(),
        "dropped_events_count": s.dropped_events_count,
        "links": s.links.iter().map(|l| json!({
            "trace_id": hex(&l.trace_id),
            "span_id": hex(&l.span_id),
            "trace_state": l.trace_state,
            "flags": l.flags,
            "attributes": attributes(&l.attributes),
            "dropped_attributes_count": l.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "dropped_links_count": s.dropped_links_count,
        "resource": {
            "attributes": attributes(&stored.resource.attributes),
            "dropped_attributes_count": stored.resource.dropped_attributes_count,
            "schema_url": stored.resource_schema_url,
        },
        "scope": {
            "name": stored.scope.name,
            "version": stored.scope.version,
            "attributes": attributes(&stored.scope.attributes),
            "dropped_attributes_count": stored.scope.dropped_attributes_count,
            "schema_url": stored.scope_schema_url,
        },
    })
}
