//! The questions the dashboard and alert rules ask, as typed answers computed with SQL over the
//! lake.

pub mod dependencies;
pub mod edges;
pub mod errors;
pub mod latency;
pub mod logs;
pub mod metrics;
pub mod red;
pub mod rollup;
pub(crate) mod rows;
pub mod services;
#[cfg(test)]
pub(crate) mod test_fleet;
pub mod traces;
