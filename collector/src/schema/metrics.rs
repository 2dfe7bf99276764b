//! The `metrics` table: one row per OTLP data point, of every metric type, with a `metric_type`
//! column and the histogram, exponential-histogram and summary payloads in columns of their own.
//! The single definition of the table's columns, checked against `docs/lake.md` by a test.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

use super::SortKey;
use super::attributes::map_type;
use super::spans::{Column, timestamp_type};

pub mod col {
    pub const TIME: &str = "time";
    pub const START_TIME: &str = "start_time";
    pub const METRIC_NAME: &str = "metric_name";
    pub const METRIC_TYPE: &str = "metric_type";
    pub const METRIC_UNIT: &str = "metric_unit";
    pub const METRIC_DESCRIPTION: &str = "metric_description";
    pub const METRIC_METADATA: &str = "metric_metadata";
    pub const METRIC_METADATA_TYPES: &str = "metric_metadata_types";
    pub const TEMPORALITY: &str = "temporality";
    pub const IS_MONOTONIC: &str = "is_monotonic";
    pub const VALUE: &str = "value";
    pub const VALUE_INT: &str = "value_int";
    pub const COUNT: &str = "count";
    pub const SUM: &str = "sum";
    pub const MIN: &str = "min";
    pub const MAX: &str = "max";
    pub const BUCKET_COUNTS: &str = "bucket_counts";
    pub const EXPLICIT_BOUNDS: &str = "explicit_bounds";
    pub const EXP_SCALE: &str = "exp_scale";
    pub const EXP_ZERO_COUNT: &str = "exp_zero_count";
    pub const EXP_ZERO_THRESHOLD: &str = "exp_zero_threshold";
    pub const EXP_POSITIVE_OFFSET: &str = "exp_positive_offset";
    pub const EXP_POSITIVE_BUCKET_COUNTS: &str = "exp_positive_bucket_counts";
    pub const EXP_NEGATIVE_OFFSET: &str = "exp_negative_offset";
    pub const EXP_NEGATIVE_BUCKET_COUNTS: &str = "exp_negative_bucket_counts";
    pub const QUANTILES: &str = "quantiles";
    pub const FLAGS: &str = "flags";
    pub const EXEMPLARS: &str = "exemplars";
    pub const SERVICE_NAME: &str = "service_name";
    pub const SERVICE_NAMESPACE: &str = "service_namespace";
    pub const SERVICE_VERSION: &str = "service_version";
    pub const SERVICE_INSTANCE_ID: &str = "service_instance_id";
    pub const ATTRIBUTES: &str = "attributes";
    pub const ATTRIBUTE_TYPES: &str = "attribute_types";
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
        col::TIME,
        "Timestamp(ns, UTC)",
        "time_unix_nano of the data point. Decides the file's time partition.",
    ),
    c(
        col::START_TIME,
        "Timestamp(ns, UTC), nullable",
        "start_time_unix_nano; null when 0.",
    ),
    c(col::METRIC_NAME, "Utf8", "The metric's name."),
    c(
        col::METRIC_TYPE,
        "Utf8",
        "gauge, sum, histogram, exponential_histogram or summary.",
    ),
    c(
        col::METRIC_UNIT,
        "Utf8",
        "The metric's unit (UCUM), empty when absent.",
    ),
    c(col::METRIC_DESCRIPTION, "Utf8", "The metric's description."),
    c(
        col::METRIC_METADATA,
        "Map(Utf8, Utf8)",
        "The metric's metadata key-values.",
    ),
    c(
        col::METRIC_METADATA_TYPES,
        "Utf8",
        "Type letters for `metric_metadata`.",
    ),
    c(
        col::TEMPORALITY,
        "Utf8, nullable",
        "cumulative, delta or unspecified, for sums and (exponential) histograms; null otherwise.",
    ),
    c(
        col::IS_MONOTONIC,
        "Boolean, nullable",
        "For sums: whether the sum only grows (a counter); null otherwise.",
    ),
    c(
        col::VALUE,
        "Float64, nullable",
        "Gauge and sum points: the value (integers converted); null for other types.",
    ),
    c(
        col::VALUE_INT,
        "Int64, nullable",
        "Gauge and sum points sent as integers: the exact value; null otherwise.",
    ),
    c(
        col::COUNT,
        "UInt64, nullable",
        "Histograms and summaries: the number of measurements.",
    ),
    c(
        col::SUM,
        "Float64, nullable",
        "Histograms and summaries: their sum (null when a histogram sent none).",
    ),
    c(
        col::MIN,
        "Float64, nullable",
        "Histograms: the smallest measurement, when sent.",
    ),
    c(
        col::MAX,
        "Float64, nullable",
        "Histograms: the largest measurement, when sent.",
    ),
    c(
        col::BUCKET_COUNTS,
        "List(UInt64), nullable",
        "Explicit-bucket histograms: count per bucket (one more than the bounds).",
    ),
    c(
        col::EXPLICIT_BOUNDS,
        "List(Float64), nullable",
        "Explicit-bucket histograms: the bucket upper bounds (inclusive), increasing.",
    ),
    c(
        col::EXP_SCALE,
        "Int32, nullable",
        "Exponential histograms: the scale (base = 2^(2^-scale)).",
    ),
    c(
        col::EXP_ZERO_COUNT,
        "UInt64, nullable",
        "Exponential histograms: measurements in the zero bucket.",
    ),
    c(
        col::EXP_ZERO_THRESHOLD,
        "Float64, nullable",
        "Exponential histograms: the zero bucket's width.",
    ),
    c(
        col::EXP_POSITIVE_OFFSET,
        "Int32, nullable",
        "Exponential histograms: index of the first positive bucket.",
    ),
    c(
        col::EXP_POSITIVE_BUCKET_COUNTS,
        "List(UInt64), nullable",
        "Exponential histograms: positive bucket counts.",
    ),
    c(
        col::EXP_NEGATIVE_OFFSET,
        "Int32, nullable",
        "Exponential histograms: index of the first negative bucket.",
    ),
    c(
        col::EXP_NEGATIVE_BUCKET_COUNTS,
        "List(UInt64), nullable",
        "Exponential histograms: negative bucket counts.",
    ),
    c(
        col::QUANTILES,
        "List(Struct), nullable",
        "Summaries: quantile and value pairs.",
    ),
    c(
        col::FLAGS,
        "UInt32",
        "OTLP data point flags (1 = no recorded value).",
    ),
    c(
        col::EXEMPLARS,
        "List(Struct)",
        "Exemplars: time, value, value_int, trace_id, span_id, filtered_attributes, filtered_attribute_types.",
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
        "The data point's attributes (its dimensions), values as text.",
    ),
    c(
        col::ATTRIBUTE_TYPES,
        "Utf8",
        "Type letters for `attributes`.",
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
        "Schema URL of the ResourceMetrics.",
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
        "Schema URL of the ScopeMetrics.",
    ),
];

fn list(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// The fields of one element of the `quantiles` list.
pub fn quantile_fields() -> Fields {
    Fields::from(vec![
        Field::new("quantile", DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
    ])
}

/// The fields of one element of the `exemplars` list.
pub fn exemplar_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", timestamp_type(), false),
        Field::new("value", DataType::Float64, true),
        Field::new("value_int", DataType::Int64, true),
        Field::new("trace_id", DataType::Binary, true),
        Field::new("span_id", DataType::Binary, true),
        Field::new("filtered_attributes", map_type(), false),
        Field::new("filtered_attribute_types", DataType::Utf8, false),
    ])
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Boolean, Float64, Int32, Int64, UInt32, UInt64, Utf8};
    let f = |name, ty, nullable| Field::new(name, ty, nullable);
    let map = |name| Field::new(name, map_type(), false);
    Arc::new(Schema::new(vec![
        f(col::TIME, timestamp_type(), false),
        f(col::START_TIME, timestamp_type(), true),
        f(col::METRIC_NAME, Utf8, false),
        f(col::METRIC_TYPE, Utf8, false),
        f(col::METRIC_UNIT, Utf8, false),
        f(col::METRIC_DESCRIPTION, Utf8, false),
        map(col::METRIC_METADATA),
        f(col::METRIC_METADATA_TYPES, Utf8, false),
        f(col::TEMPORALITY, Utf8, true),
        f(col::IS_MONOTONIC, Boolean, true),
        f(col::VALUE, Float64, true),
        f(col::VALUE_INT, Int64, true),
        f(col::COUNT, UInt64, true),
        f(col::SUM, Float64, true),
        f(col::MIN, Float64, true),
        f(col::MAX, Float64, true),
        f(col::BUCKET_COUNTS, list(UInt64), true),
        f(col::EXPLICIT_BOUNDS, list(Float64), true),
        f(col::EXP_SCALE, Int32, true),
        f(col::EXP_ZERO_COUNT, UInt64, true),
        f(col::EXP_ZERO_THRESHOLD, Float64, true),
        f(col::EXP_POSITIVE_OFFSET, Int32, true),
        f(col::EXP_POSITIVE_BUCKET_COUNTS, list(UInt64), true),
        f(col::EXP_NEGATIVE_OFFSET, Int32, true),
        f(col::EXP_NEGATIVE_BUCKET_COUNTS, list(UInt64), true),
        f(
            col::QUANTILES,
            list(DataType::Struct(quantile_fields())),
            true,
        ),
        f(col::FLAGS, UInt32, false),
        f(
            col::EXEMPLARS,
            list(DataType::Struct(exemplar_fields())),
            false,
        ),
        f(col::SERVICE_NAME, Utf8, false),
        f(col::SERVICE_NAMESPACE, Utf8, true),
        f(col::SERVICE_VERSION, Utf8, true),
        f(col::SERVICE_INSTANCE_ID, Utf8, true),
        map(col::ATTRIBUTES),
        f(col::ATTRIBUTE_TYPES, Utf8, false),
        map(col::RESOURCE_ATTRIBUTES),
        f(col::RESOURCE_ATTRIBUTE_TYPES, Utf8, false),
        f(col::RESOURCE_DROPPED_ATTRIBUTES_COUNT, UInt32, false),
        f(col::RESOURCE_SCHEMA_URL, Utf8, false),
        f(col::SCOPE_NAME, Utf8, false),
        f(col::SCOPE_VERSION, Utf8, false),
        map(col::SCOPE_ATTRIBUTES),
        f(col::SCOPE_ATTRIBUTE_TYPES, Utf8, false),
        f(col::SCOPE_DROPPED_ATTRIBUTES_COUNT, UInt32, false),
        f(col::SCOPE_SCHEMA_URL, Utf8, false),
    ]))
});

/// The Arrow schema of the `metrics` table.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// The `metrics` table.
pub const TABLE: super::TableSpec = super::TableSpec {
    name: "metrics",
    schema,
    time_column: col::TIME,
    sort: &[
        SortKey::Column(col::METRIC_NAME),
        SortKey::Column(col::SERVICE_NAME),
        SortKey::Column(col::TIME),
    ],
    bloom: &[],
    ids: &[],
    // The points of one export share their times, so a dictionary of them pays here.
    deltas: &[],
    // The values and times, bucket lists and attribute maps; not the names, enums and flags.
    compressed: &[
        col::TIME,
        col::START_TIME,
        col::IS_MONOTONIC,
        col::VALUE,
        col::VALUE_INT,
        col::COUNT,
        col::SUM,
        col::MIN,
        col::MAX,
        col::BUCKET_COUNTS,
        col::EXPLICIT_BOUNDS,
        col::EXP_ZERO_COUNT,
        col::EXP_POSITIVE_BUCKET_COUNTS,
        col::EXP_NEGATIVE_BUCKET_COUNTS,
        col::QUANTILES,
        "exemplars.list.item.filtered_attributes",
        col::SERVICE_INSTANCE_ID,
        col::ATTRIBUTES,
        col::METRIC_METADATA,
        col::RESOURCE_ATTRIBUTES,
        col::SCOPE_ATTRIBUTES,
    ],
    unpruned: &[col::METRIC_DESCRIPTION, col::METRIC_METADATA_TYPES],
    derived_end: None,
};

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
            "docs/lake.md is out of date; its metrics table must read:\n{table}"
        );
    }
}
