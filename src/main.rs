//! The `lakescope` binary: parses the configuration, builds the stages and wires them together.

mod config;
mod loadgen;
mod memory;
mod ops;
mod serve;

use std::io::IsTerminal;

use clap::Parser;
use config::{Cli, Command};
use tracing_subscriber::EnvFilter;

/// mimalloc returns freed memory to the system and keeps per-thread heaps from fragmenting: with
/// the system allocator, concurrent flushes, merges and queries left resident memory far above
/// what they held (tests/bench/overload.sh).
#[cfg(not(feature = "heap-stages"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "heap-stages")]
mod heapstages;
#[cfg(feature = "heap-stages")]
#[global_allocator]
static ALLOCATOR: heapstages::Counting = heapstages::Counting;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // mimalloc asks for transparent huge pages on the memory it maps, so a first touch zeroes
    // 2 MiB, and memory it hands back is zeroed again in 2 MiB units when reused: the first
    // join query after a start spent half its time clearing pages, and peak memory was 15-25 %
    // higher (docs/benchmarks.md, "Transparent huge pages off").
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(error = %e, "could not turn transparent huge pages off");
    }
    let command = Cli::parse().command;
    // When freed memory goes back to the system (src/memory.rs; docs/operations.md).
    memory::start(match &command {
        Command::Serve(config) => config.keep_freed_memory_below,
        Command::Demo(config) => config.serve.keep_freed_memory_below,
        Command::Loadgen(_) => 0,
    });
    #[cfg(feature = "heap-stages")]
    if !matches!(command, Command::Loadgen(_)) {
        heapstages::start_sampler();
    }
    match command {
        Command::Serve(config) => serve::run(config, None).await,
        Command::Demo(config) => serve::run(config.serve, Some(config.rate)).await,
        Command::Loadgen(config) => loadgen::run(config).await,
    }
}
