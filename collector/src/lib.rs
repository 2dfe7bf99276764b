//! The collector: OTLP in → the lake.
//!
//! Receives OTLP over gRPC and HTTP (`otlp`), validates and converts it to Arrow (`convert`),
//! appends it to the write-ahead log and the recent buffers (`ingest`, `wal`), and flushes the
//! buffers into hive-partitioned Parquet files (`lake`). The table schemas (`schema`) are public
//! so the query side can read what this side writes.
//!
//! It does not answer queries: `lakescope-query` reads the lake through [`lake::Table::snapshot`].

pub mod convert;
pub mod ingest;
pub mod lake;
pub mod limits;
pub mod memtag;
pub mod otlp;
pub mod schema;
pub mod stats;
pub mod wal;

pub use ingest::Ingest;
pub use lake::Lake;
pub use limits::Limits;
