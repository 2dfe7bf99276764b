//! The lake's table schemas and value encodings: the contract between the writer, the query
//! layer and anyone reading the Parquet files directly.

pub mod attributes;
pub mod log_rows;
pub mod logs;
pub mod metrics;
pub mod rows;
pub mod span_rows;
pub mod spans;

use datafusion::arrow::datatypes::SchemaRef;

/// What the writer and the query layer need to know about a table of the lake.
#[derive(Debug)]
pub struct TableSpec {
    /// Directory name under the data directory, and the SQL table name.
    pub name: &'static str,
    pub schema: fn() -> SchemaRef,
    /// The timestamp column whose hour decides a row's partition.
    pub time_column: &'static str,
    /// Storage order within a file: by each key in turn.
    pub sort: &'static [SortKey],
    /// Columns with a bloom filter (point lookups).
    pub bloom: &'static [&'static str],
    /// Binary id columns: random bytes, written without a dictionary, lengths delta-encoded.
    pub ids: &'static [&'static str],
    /// Integer columns nearly unique per row (times, durations): written without a dictionary,
    /// delta-encoded.
    pub deltas: &'static [&'static str],
    /// Columns written zstd-compressed: a top-level name (all its leaves) or a leaf's dotted
    /// path (`events.list.item.attributes`, and the leaves under it). Every other leaf's pages
    /// are stored as encoded: zstd finds nothing in random ids, bit-packed deltas, or the
    /// dictionary indexes of enums and names, and every compressed column chunk a query opens
    /// costs it two zstd contexts.
    pub compressed: &'static [&'static str],
    /// Top-level columns of this table written without page statistics (besides
    /// [`UNPRUNED_IN_EVERY_TABLE`]): free text, which no filter prunes pages by. The writer
    /// compares every value with its page's min and max, which for such columns was ~20 % of
    /// encoding a flush file.
    pub unpruned: &'static [&'static str],
    /// A timestamp column that the query layer offers but the files do not store, because it is
    /// another timestamp plus a duration (spans' `end_time`).
    pub derived_end: Option<DerivedEnd>,
}

/// Columns every table stores for its records' attributes and origin that no filter prunes
/// pages by (type strings, schema URLs, the scope's version): written without page statistics.
pub const UNPRUNED_IN_EVERY_TABLE: &[&str] = &[
    "attribute_types",
    "resource_attribute_types",
    "resource_schema_url",
    "scope_version",
    "scope_attribute_types",
    "scope_schema_url",
];

impl TableSpec {
    /// Whether `column` is written without page statistics.
    pub fn is_unpruned(&self, column: &str) -> bool {
        UNPRUNED_IN_EVERY_TABLE.contains(&column) || self.unpruned.contains(&column)
    }
}

/// One key of a table's storage order (ascending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// A column's values.
    Column(&'static str),
    /// A nanosecond timestamp column divided by `nanos` (truncated toward zero, as an `Int64`
    /// division does): the keys after it order the rows within each such bucket of time.
    Bucket { column: &'static str, nanos: i64 },
}

impl SortKey {
    /// The stored column the key is read from.
    pub fn column(self) -> &'static str {
        match self {
            SortKey::Column(name) | SortKey::Bucket { column: name, .. } => name,
        }
    }
}

/// `name` = `start` + `duration` (nanoseconds), computed when the table is read.
#[derive(Debug, Clone, Copy)]
pub struct DerivedEnd {
    pub name: &'static str,
    /// A stored timestamp column; the derived column follows it in the query schema.
    pub start: &'static str,
    /// A stored `Int64` column of nanoseconds.
    pub duration: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A misspelt name in a spec's lists would silently change nothing in the files.
    #[test]
    fn every_column_a_table_spec_names_is_a_top_level_column_of_its_schema() {
        for spec in [&spans::TABLE, &logs::TABLE, &metrics::TABLE] {
            let schema = (spec.schema)();
            let sort: Vec<&'static str> = spec.sort.iter().map(|key| key.column()).collect();
            let lists = [
                sort.as_slice(),
                spec.bloom,
                spec.ids,
                spec.deltas,
                spec.unpruned,
                UNPRUNED_IN_EVERY_TABLE,
            ];
            for name in lists.into_iter().flatten().chain([&spec.time_column]) {
                let field = schema.field_with_name(name);
                assert!(field.is_ok(), "{}: no column {name}", spec.name);
            }
            for name in spec.unpruned.iter().chain(UNPRUNED_IN_EVERY_TABLE) {
                let nested = schema
                    .field_with_name(name)
                    .map(|f| f.data_type().is_nested());
                assert_eq!(nested.ok(), Some(false), "{}: {name}", spec.name);
            }
        }
    }
}
