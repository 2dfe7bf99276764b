//! The questions the dashboard and alert rules ask, as typed answers computed with SQL over the
//! lake.

pub mod services;
pub mod traces;
