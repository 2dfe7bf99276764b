//! The `lakescope` binary: parses the configuration, builds the stages and wires them together.

mod config;
mod loadgen;
mod ops;
mod serve;

use std::io::IsTerminal;

use clap::Parser;
use config::{Cli, Command};
use tracing_subscriber::EnvFilter;

/// mimalloc returns freed memory to the system and keeps per-thread heaps from fragmenting: with
/// the system allocator, concurrent flushes, merges and queries left resident memory far above
/// what they held (tests/bench/overload.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match Cli::parse().command {
        Command::Serve(config) => serve::run(config, None).await,
        Command::Demo(config) => serve::run(config.serve, Some(config.rate)).await,
        Command::Loadgen(config) => loadgen::run(config).await,
    }
}
