//! The `spans` table: one row per OTLP span.
//!
//! This is the single definition of the table's columns. The writer builds batches with it, the
//! query layer registers it, and `docs/lake.md` is checked against [`COLUMNS`] by a test.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use super::SortKey;
use super::attributes::map_type;

/// Column names, so that no module spells them twice.
pub mod col {
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const TRACE_STATE: &str = "trace_state";
    pub const FLAGS: &str = "flags";
    pub const NAME: &str = "name";
    pub const SPAN_KIND: &str = "span_kind";
    pub const START_TIME: &str = "start_time";
    pub const END_TIME: &str = "end_time";
    pub const DURATION_NS: &str = "duration_ns";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const SERVICE_NAME: &str = "service_name";
    pub const SERVICE_NAMESPACE: &str = "service_namespace";
    pub const SERVICE_VERSION: &str = "service_version";
    pub const SERVICE_INSTANCE_ID: &str = "service_instance_id";
    pub const HTTP_METHOD: &str = "http_method";
    pub const HTTP_ROUTE: &str = "http_route";
    pub const HTTP_STATUS_CODE: &str = "http_status_code";
    pub const RPC_SYSTEM: &str = "rpc_system";
    pub const RPC_SERVICE: &str = "rpc_service";
    pub const RPC_METHOD: &str = "rpc_method";
    pub const RPC_GRPC_STATUS_CODE: &str = "rpc_grpc_status_code";
    pub const DB_SYSTEM: &str = "db_system";
    pub const MESSAGING_SYSTEM: &str = "messaging_system";
    pub const MESSAGING_DESTINATION: &str = "messaging_destination";
    pub const SERVER_ADDRESS: &str = "server_address";
    pub const SERVER_PORT: &str = "server_port";
    pub const PEER_SERVICE: &str = "peer_service";
    pub const EXCEPTION_TYPE: &str = "exception_type";
    pub const EXCEPTION_MESSAGE: &str = "exception_message";
    pub const EXCEPTION_STACKTRACE: &str = "exception_stacktrace";
    pub const ATTRIBUTES: &str = "attributes";
    pub const ATTRIBUTE_TYPES: &str = "attribute_types";
    pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
    pub const EVENTS: &str = "events";
    pub const DROPPED_EVENTS_COUNT: &str = "dropped_events_count";
    pub const LINKS: &str = "links";
    pub const DROPPED_LINKS_COUNT: &str = "dropped_links_count";
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
    pub const RESOURCE_ATTRIBUTE_TYPES: &str = "resource_attribute_types";
    pub const RESOURCE_DROPPED_ATTRIBUTES_COUNT: &str = "resource_dropped_attributes_count";
    pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
    pub const SCOPE_NAME: &str = "scope_name";
    pub const SCOPE_VERSION: &str = "scope_version";
    pub const SCOPE_ATTRIBUTES: &str = "scope_attributes";
    pub const SCOPE_ATTRIBUTE_TYPES: &str = "scope_attribute_types";
    pub const SCOPE_DROPPED_ATTRIBUTES_COUNT: &str = "scope_dropped_attributes_count";
    pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";
}

/// One documented column of the table.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    /// Arrow type as written in the docs (the schema itself is built from [`schema`]).
    pub doc_type: &'static str,
    pub description: &'static str,
}

const fn c(name: &'static str, doc_type: &'static str, description: &'static str) -> Column {
    Column {
        name,
        doc_type,
        description,
    }
}

/// Every column, in schema order, with the text that `docs/lake.md` must carry.
pub const COLUMNS: &[Column] = &[
    c(
        col::TRACE_ID,
        "Binary",
        "Trace id, its 16 bytes (the API shows them as 32 lowercase hex digits).",
    ),
    c(col::SPAN_ID, "Binary", "Span id, its 8 bytes."),
    c(
        col::PARENT_SPAN_ID,
        "Binary, nullable",
        "Parent span id (8 bytes); null for a root span.",
    ),
    c(
        col::TRACE_STATE,
        "Utf8",
        "W3C trace state, empty when absent.",
    ),
    c(
        col::FLAGS,
        "UInt32",
        "OTLP span flags (W3C trace flags in the low byte, parent-is-remote bits above).",
    ),
    c(col::NAME, "Utf8", "Span name (the operation)."),
    c(
        col::SPAN_KIND,
        "Utf8",
        "UNSPECIFIED, INTERNAL, SERVER, CLIENT, PRODUCER or CONSUMER.",
    ),
    c(
        col::START_TIME,
        "Timestamp(ns, UTC)",
        "Span start. Also decides the file's time partition.",
    ),
    c(
        col::DURATION_NS,
        "Int64",
        "Span end minus start in nanoseconds (never negative). The end itself is not stored: \
         queries read it as `end_time`, `start_time + duration_ns`.",
    ),
    c(col::STATUS_CODE, "Utf8", "UNSET, OK or ERROR."),
    c(
        col::STATUS_MESSAGE,
        "Utf8",
        "Status message, empty when absent.",
    ),
    c(
        col::SERVICE_NAME,
        "Utf8",
        "Resource attribute service.name; `unknown_service` when the resource has none.",
    ),
    c(
        col::SERVICE_NAMESPACE,
        "Utf8, nullable",
        "Resource attribute service.namespace.",
    ),
    c(
        col::SERVICE_VERSION,
        "Utf8, nullable",
        "Resource attribute service.version.",
    ),
    c(
        col::SERVICE_INSTANCE_ID,
        "Utf8, nullable",
        "Resource attribute service.instance.id.",
    ),
    c(
        col::HTTP_METHOD,
        "Utf8, nullable",
        "http.request.method (or the older http.method).",
    ),
    c(col::HTTP_ROUTE, "Utf8, nullable", "http.route."),
    c(
        col::HTTP_STATUS_CODE,
        "Int64, nullable",
        "http.response.status_code (or the older http.status_code).",
    ),
    c(col::RPC_SYSTEM, "Utf8, nullable", "rpc.system."),
    c(col::RPC_SERVICE, "Utf8, nullable", "rpc.service."),
    c(col::RPC_METHOD, "Utf8, nullable", "rpc.method."),
    c(
        col::RPC_GRPC_STATUS_CODE,
        "Int64, nullable",
        "rpc.grpc.status_code.",
    ),
    c(
        col::DB_SYSTEM,
        "Utf8, nullable",
        "db.system.name (or the older db.system).",
    ),
    c(col::MESSAGING_SYSTEM, "Utf8, nullable", "messaging.system."),
    c(
        col::MESSAGING_DESTINATION,
        "Utf8, nullable",
        "messaging.destination.name.",
    ),
    c(
        col::SERVER_ADDRESS,
        "Utf8, nullable",
        "server.address (or the older net.peer.name).",
    ),
    c(
        col::SERVER_PORT,
        "Int64, nullable",
        "server.port (or the older net.peer.port).",
    ),
    c(col::PEER_SERVICE, "Utf8, nullable", "peer.service."),
    c(
        col::EXCEPTION_TYPE,
        "Utf8, nullable",
        "exception.type of the span's first `exception` event (or of the span's own attributes).",
    ),
    c(
        col::EXCEPTION_MESSAGE,
        "Utf8, nullable",
        "exception.message, taken from the same place as exception_type.",
    ),
    c(
        col::EXCEPTION_STACKTRACE,
        "Utf8, nullable",
        "exception.stacktrace, taken from the same place as exception_type.",
    ),
    c(
        col::ATTRIBUTES,
        "Map(Utf8, Utf8)",
        "Every span attribute, in the order sent, values rendered as text (see \"Attribute maps\").",
    ),
    c(
        col::ATTRIBUTE_TYPES,
        "Utf8",
        "One type letter per entry of `attributes`, in the same order (see \"Attribute maps\").",
    ),
    c(
        col::DROPPED_ATTRIBUTES_COUNT,
        "UInt32",
        "Attributes the sender dropped.",
    ),
    c(
        col::EVENTS,
        "List(Struct)",
        "Span events: time, name, attributes, attribute_types, dropped_attributes_count.",
    ),
    c(
        col::DROPPED_EVENTS_COUNT,
        "UInt32",
        "Events the sender dropped.",
    ),
    c(
        col::LINKS,
        "List(Struct)",
        "Span links: trace_id, span_id, trace_state, flags, attributes, attribute_types, dropped_attributes_count.",
    ),
    c(
        col::DROPPED_LINKS_COUNT,
        "UInt32",
        "Links the sender dropped.",
    ),
    c(
        col::RESOURCE_ATTRIBUTES,
        "Map(Utf8, Utf8)",
        "Every resource attribute (including service.name).",
    ),
    c(
        col::RESOURCE_ATTRIBUTE_TYPES,
        "Utf8",
        "Type letters for `resource_attributes`.",
    ),
    c(
        col::RESOURCE_DROPPED_ATTRIBUTES_COUNT,
        "UInt32",
        "Resource attributes the sender dropped.",
    ),
    c(
        col::RESOURCE_SCHEMA_URL,
        "Utf8",
        "Schema URL of the ResourceSpans.",
    ),
    c(col::SCOPE_NAME, "Utf8", "Instrumentation scope name."),
    c(col::SCOPE_VERSION, "Utf8", "Instrumentation scope version."),
    c(
        col::SCOPE_ATTRIBUTES,
        "Map(Utf8, Utf8)",
        "Instrumentation scope attributes.",
    ),
    c(
        col::SCOPE_ATTRIBUTE_TYPES,
        "Utf8",
        "Type letters for `scope_attributes`.",
    ),
    c(
        col::SCOPE_DROPPED_ATTRIBUTES_COUNT,
        "UInt32",
        "Scope attributes the sender dropped.",
    ),
    c(
        col::SCOPE_SCHEMA_URL,
        "Utf8",
        "Schema URL of the ScopeSpans.",
    ),
];

/// Timestamps are stored as UTC nanoseconds.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The fields of one element of the `events` list.
pub fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", timestamp_type(), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", map_type(), false),
        Field::new("attribute_types", DataType::Utf8, false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

/// The fields of one element of the `links` list.
pub fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::Binary, false),
        Field::new("span_id", DataType::Binary, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
        Field::new("attributes", map_type(), false),
        Field::new("attribute_types", DataType::Utf8, false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), true)))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Binary, Int64, UInt32, Utf8};
    let text = |name| Field::new(name, Utf8, false);
    let opt_text = |name| Field::new(name, Utf8, true);
    let count = |name| Field::new(name, UInt32, false);
    let map = |name| Field::new(name, map_type(), false);
    Arc::new(Schema::new(vec![
        Field::new(col::TRACE_ID, Binary, false),
        Field::new(col::SPAN_ID, Binary, false),
        Field::new(col::PARENT_SPAN_ID, Binary, true),
        text(col::TRACE_STATE),
        count(col::FLAGS),
        text(col::NAME),
        text(col::SPAN_KIND),
        Field::new(col::START_TIME, timestamp_type(), false),
        Field::new(col::DURATION_NS, Int64, false),
        text(col::STATUS_CODE),
        text(col::STATUS_MESSAGE),
        text(col::SERVICE_NAME),
        opt_text(col::SERVICE_NAMESPACE),
        opt_text(col::SERVICE_VERSION),
        opt_text(col::SERVICE_INSTANCE_ID),
        opt_text(col::HTTP_METHOD),
        opt_text(col::HTTP_ROUTE),
        Field::new(col::HTTP_STATUS_CODE, Int64, true),
        opt_text(col::RPC_SYSTEM),
        opt_text(col::RPC_SERVICE),
        opt_text(col::RPC_METHOD),
        Field::new(col::RPC_GRPC_STATUS_CODE, Int64, true),
        opt_text(col::DB_SYSTEM),
        opt_text(col::MESSAGING_SYSTEM),
        opt_text(col::MESSAGING_DESTINATION),
        opt_text(col::SERVER_ADDRESS),
        Field::new(col::SERVER_PORT, Int64, true),
        opt_text(col::PEER_SERVICE),
        opt_text(col::EXCEPTION_TYPE),
        opt_text(col::EXCEPTION_MESSAGE),
        opt_text(col::EXCEPTION_STACKTRACE),
        map(col::ATTRIBUTES),
        text(col::ATTRIBUTE_TYPES),
        count(col::DROPPED_ATTRIBUTES_COUNT),
        Field::new(col::EVENTS, list_of(event_fields()), false),
        count(col::DROPPED_EVENTS_COUNT),
        Field::new(col::LINKS, list_of(link_fields()), false),
        count(col::DROPPED_LINKS_COUNT),
        map(col::RESOURCE_ATTRIBUTES),
        text(col::RESOURCE_ATTRIBUTE_TYPES),
        count(col::RESOURCE_DROPPED_ATTRIBUTES_COUNT),
        text(col::RESOURCE_SCHEMA_URL),
        text(col::SCOPE_NAME),
        text(col::SCOPE_VERSION),
        map(col::SCOPE_ATTRIBUTES),
        text(col::SCOPE_ATTRIBUTE_TYPES),
        count(col::SCOPE_DROPPED_ATTRIBUTES_COUNT),
        text(col::SCOPE_SCHEMA_URL),
    ]))
});

/// The Arrow schema of the `spans` table (and of every spans Parquet file).
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// The `spans` table.
pub const TABLE: super::TableSpec = super::TableSpec {
    name: "spans",
    schema,
    time_column: col::START_TIME,
    // A service's failing spans together (the error views prune pages by status), then its
    // spans second by second with each trace's spans side by side: a trace's id then repeats
    // in neighbouring rows, where zstd takes it for a few bytes instead of 16 per span
    // (docs/benchmarks.md, "A trace's spans side by side").
    sort: &[
        SortKey::Column(col::SERVICE_NAME),
        SortKey::Column(col::STATUS_CODE),
        SortKey::Bucket {
            column: col::START_TIME,
            nanos: 1_000_000_000,
        },
        SortKey::Column(col::TRACE_ID),
        SortKey::Column(col::START_TIME),
    ],
    bloom: &[col::TRACE_ID],
    ids: &[col::TRACE_ID, col::SPAN_ID, col::PARENT_SPAN_ID],
    deltas: &[col::START_TIME, col::DURATION_NS],
    // Free text, attribute maps, and the ids in which zstd finds something (a trace id
    // repeating within a service's run of rows); docs/benchmarks.md,
    // "Only the columns zstd shrinks".
    compressed: &[
        col::TRACE_ID,
        col::PARENT_SPAN_ID,
        col::NAME,
        col::STATUS_MESSAGE,
        col::HTTP_ROUTE,
        col::RPC_SERVICE,
        col::RPC_METHOD,
        col::SERVER_ADDRESS,
        col::EXCEPTION_MESSAGE,
        col::EXCEPTION_STACKTRACE,
        col::ATTRIBUTES,
        "events.list.item.time",
        "events.list.item.attributes",
        "links.list.item.attributes",
        col::RESOURCE_ATTRIBUTES,
        col::SCOPE_ATTRIBUTES,
    ],
    unpruned: &[
        col::TRACE_STATE,
        col::STATUS_MESSAGE,
        col::EXCEPTION_MESSAGE,
        col::EXCEPTION_STACKTRACE,
    ],
    // The end is the start plus the duration, exactly (a span ending before it starts is
    // refused): storing it cost 3.4 B/span (docs/benchmarks.md, "The end time derived").
    derived_end: Some(super::DerivedEnd {
        name: col::END_TIME,
        start: col::START_TIME,
        duration: col::DURATION_NS,
    }),
};

/// The OTLP span kinds by their enum number, as stored in `span_kind`.
pub const SPAN_KINDS: [&str; 6] = [
    "UNSPECIFIED",
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
];

/// The OTLP status codes by their enum number, as stored in `status_code`.
pub const STATUS_CODES: [&str; 3] = ["UNSET", "OK", "ERROR"];

/// The service name stored when a resource carries no `service.name` (as the SDKs default it).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The column table of `docs/lake.md`, generated from [`COLUMNS`].
pub fn markdown_table() -> String {
    markdown_table_of(COLUMNS)
}

/// A documentation table of columns.
pub fn markdown_table_of(columns: &[Column]) -> String {
    let mut out = String::from("| column | type | meaning |\n|---|---|---|\n");
    for c in columns {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            c.name, c.doc_type, c.description
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lake_docs_carry_the_current_column_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/lake.md");
        let docs = std::fs::read_to_string(path).expect("docs/lake.md");
        assert!(
            docs.contains(&markdown_table()),
            "docs/lake.md is out of date; its spans table must read:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn every_schema_field_is_documented_in_order() {
        let schema = schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let documented: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(names, documented);
    }

    #[test]
    fn documented_nullability_matches_the_schema() {
        for (field, column) in schema().fields().iter().zip(COLUMNS) {
            assert_eq!(
                field.is_nullable(),
                column.doc_type.ends_with("nullable"),
                "column {}",
                column.name
            );
        }
    }
}
