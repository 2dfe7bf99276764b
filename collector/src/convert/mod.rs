//! OTLP messages → Arrow batches of the lake's tables.

mod attributes;
pub mod logs;
pub mod metrics;
mod origin;
mod rejections;
pub mod spans;
