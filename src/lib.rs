//! The parts of the `lakescope` binary that its benchmarks use too: the demo fleet, whose traffic
//! the demo mode, the load generator and the micro-benchmarks all send.

pub mod demo;
