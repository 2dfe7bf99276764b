//! OTLP messages → Arrow batches of the lake's tables.

mod attributes;
pub mod logs;
pub mod metrics;
mod origin;
pub(crate) mod protobuf;
mod rejections;
pub mod spans;
#[cfg(test)]
pub(crate) mod strategies;
mod view;

use datafusion::arrow::record_batch::RecordBatch;

/// A converted request: the accepted records as one batch, and what was rejected.
#[derive(Debug)]
pub struct Converted {
    pub batch: RecordBatch,
    pub rejected: usize,
    /// The first rejection, with a count of the others; empty when nothing was rejected.
    pub error_message: String,
}
