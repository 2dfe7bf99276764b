//! The `logs` table: one row per OTLP log record. Like [`super::spans`], the single definition of
//! the table's columns, checked against `docs/lake.md` by a test.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::SortKey;
use super::attributes::map_type;
use super::spans::{Column, timestamp_type};

pub mod col {
    pub const TIMESTAMP: &str = "timestamp";
    pub const TIMESTAMP_FROM_OBSERVED: &str = "timestamp_from_observed";
    pub const OBSERVED_TIMESTAMP: &str = "observed_timestamp";
    pub const SEVERITY_NUMBER: &str = "severity_number";
    pub const SEVERITY_TEXT: &str = "severity_text";
    pub const BODY: &str = "body";
    pub const BODY_TYPE: &str = "body_type";
    pub const EVENT_NAME: &str = "event_name";
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const FLAGS: &str = "flags";
    pub const SERVICE_NAME: &str = "service_name";
    pub const SERVICE_NAMESPACE: &str = "service_namespace";
    pub const SERVICE_VERSION: &str = "service_version";
    pub const SERVICE_INSTANCE_ID: &str = "service_instance_id";
    pub const ATTRIBUTES: &str = "attributes";
    pub const ATTRIBUTE_TYPES: &str = "attribute_types";
    pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
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
        col::TIMESTAMP,
        "Timestamp(ns, UTC)",
        "time_unix_nano; the observed time when the sender left it 0. Decides the file's time partition.",
    ),
    c(
        col::TIMESTAMP_FROM_OBSERVED,
        "Boolean",
        "True when time_unix_nano was 0 and `timestamp` is the observed time.",
    ),
    c(
        col::OBSERVED_TIMESTAMP,
        "Timestamp(ns, UTC)",
        "observed_time_unix_nano; the time Lakescope received the record when the sender left it 0.",
    ),
    c(
        col::SEVERITY_NUMBER,
        "Int32",
        "OTLP severity number, 0 (unspecified) to 24; 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL.",
    ),
    c(
        col::SEVERITY_TEXT,
        "Utf8",
        "Severity text as sent, empty when absent.",
    ),
    c(
        col::BODY,
        "Utf8, nullable",
        "The body as text (see \"Attribute maps\" for non-string bodies); null when absent.",
    ),
    c(
        col::BODY_TYPE,
        "Utf8",
        "Type letter of the body, as for attribute values (`e` when absent).",
    ),
    c(col::EVENT_NAME, "Utf8", "event_name, empty when absent."),
    c(
        col::TRACE_ID,
        "Binary, nullable",
        "Trace id (16 bytes) of the span the record belongs to; null when none.",
    ),
    c(
        col::SPAN_ID,
        "Binary, nullable",
        "Span id (8 bytes); null when none.",
    ),
    c(
        col::FLAGS,
        "UInt32",
        "OTLP log record flags (W3C trace flags).",
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
        col::ATTRIBUTES,
        "Map(Utf8, Utf8)",
        "Every attribute of the record, values as text.",
    ),
    c(
        col::ATTRIBUTE_TYPES,
        "Utf8",
        "Type letters for `attributes`.",
    ),
    c(
        col::DROPPED_ATTRIBUTES_COUNT,
        "UInt32",
        "Attributes the sender dropped.",
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
        "Schema URL of the ResourceLogs.",
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
        "Schema URL of the ScopeLogs.",
    ),
];

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Boolean, Int32, UInt32, Utf8};
    let text = |name| Field::new(name, Utf8, false);
    let opt_text = |name| Field::new(name, Utf8, true);
    let count = |name| Field::new(name, UInt32, false);
    let map = |name| Field::new(name, map_type(), false);
    Arc::new(Schema::new(vec![
        Field::new(col::TIMESTAMP, timestamp_type(), false),
        Field::new(col::TIMESTAMP_FROM_OBSERVED, Boolean, false),
        Field::new(col::OBSERVED_TIMESTAMP, timestamp_type(), false),
        Field::new(col::SEVERITY_NUMBER, Int32, false),
        text(col::SEVERITY_TEXT),
        opt_text(col::BODY),
        text(col::BODY_TYPE),
        text(col::EVENT_NAME),
        Field::new(col::TRACE_ID, DataType::Binary, true),
        Field::new(col::SPAN_ID, DataType::Binary, true),
        count(col::FLAGS),
        text(col::SERVICE_NAME),
        opt_text(col::SERVICE_NAMESPACE),
        opt_text(col::SERVICE_VERSION),
        opt_text(col::SERVICE_INSTANCE_ID),
        map(col::ATTRIBUTES),
        text(col::ATTRIBUTE_TYPES),
        count(col::DROPPED_ATTRIBUTES_COUNT),
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

/// The Arrow schema of the `logs` table.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// The `logs` table.
pub const TABLE: super::TableSpec = super::TableSpec {
    name: "logs",
    schema,
    time_column: col::TIMESTAMP,
    sort: &[
        SortKey::Column(col::SERVICE_NAME),
        SortKey::Column(col::TIMESTAMP),
    ],
    bloom: &[col::TRACE_ID],
    ids: &[col::TRACE_ID, col::SPAN_ID],
    deltas: &[col::TIMESTAMP, col::OBSERVED_TIMESTAMP],
    compressed: &[
        col::BODY,
        col::TIMESTAMP,
        col::OBSERVED_TIMESTAMP,
        col::TIMESTAMP_FROM_OBSERVED,
        col::ATTRIBUTES,
        col::RESOURCE_ATTRIBUTES,
        col::SCOPE_ATTRIBUTES,
    ],
    unpruned: &[col::BODY],
    derived_end: None,
};

/// Severity ranges by name, as OpenTelemetry defines them.
pub const SEVERITIES: [(&str, i32); 6] = [
    ("TRACE", 1),
    ("DEBUG", 5),
    ("INFO", 9),
    ("WARN", 13),
    ("ERROR", 17),
    ("FATAL", 21),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_field_is_documented_in_order() {
        let names: Vec<String> = schema().fields().iter().map(|f| f.name().clone()).collect();
        let documented: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(names, documented);
        for (field, column) in schema().fields().iter().zip(COLUMNS) {
            assert_eq!(
                field.is_nullable(),
                column.doc_type.ends_with("nullable"),
                "{}",
                column.name
            );
        }
    }

    #[test]
    fn the_lake_docs_carry_the_current_column_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/lake.md");
        let docs = std::fs::read_to_string(path).expect("docs/lake.md");
        let table = super::super::spans::markdown_table_of(COLUMNS);
        assert!(
            docs.contains(&table),
            "docs/lake.md is out of date; its logs table must read:\n{table}"
        );
    }
}
