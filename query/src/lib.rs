//! The query side: a DataFusion session over the lake (`engine`, `table`), the domain views the
//! dashboard and alert rules ask for (`views`), and the JSON API that serves them (`api`).
//!
//! It reads the lake only through the collector's public types (the table schemas and
//! [`lakescope_collector::lake::Table::snapshot`]); it never writes the lake, only its own
//! per-file summaries under `summaries/` in the data directory (`summary_store`).

pub mod api;
pub mod bloom_probe;
pub mod dashboards;
pub mod engine;
pub mod fingerprint;
pub mod page_index;
pub mod promql;
pub mod rules;
pub mod sketch;
pub mod summaries;
pub mod summary_store;
pub mod table;
pub mod text_search;
pub mod time_range;
pub mod trace_index;
pub mod trace_lookup;
pub mod views;

pub use engine::{QueryEngine, QueryLimits};
