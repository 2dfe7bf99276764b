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
    /// Sort order within a file.
    pub sort: &'static [&'static str],
    /// Columns with a bloom filter (point lookups).
    pub bloom: &'static [&'static str],
    /// Binary id columns: random bytes, written without a dictionary, lengths delta-encoded.
    pub ids: &'static [&'static str],
    /// Integer columns nearly unique per row (times, durations): written without a dictionary,
    /// delta-encoded.
    pub deltas: &'static [&'static str],
}
