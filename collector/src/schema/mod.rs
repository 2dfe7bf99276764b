//! The lake's table schemas and value encodings: the contract between the writer, the query
//! layer and anyone reading the Parquet files directly.

pub mod attributes;
pub mod span_rows;
pub mod spans;
