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
#[cfg(not(feature = "heap-stages"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "heap-stages")]
mod heapstages;
#[cfg(feature = "heap-stages")]
#[global_allocator]
static ALLOCATOR: heapstages::Counting = heapstages::Counting;

/// `mi_option_purge_delay` in mimalloc 3's option enumeration (not among the crate's constants).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

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
    // mimalloc hands freed memory back to the system a second after it is freed by default;
    // flushes, merges and queries free and allocate again within that second, so resident
    // memory stood near the sum of their peaks. Handing it back at once: peak RSS 614 against
    // 739-768 MiB under sustained ingest with live merges, for some CPU (docs/benchmarks.md,
    // "Where a loaded server's memory goes"). MIMALLOC_PURGE_DELAY (milliseconds) still decides.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: an option may be set at any time; it is read each time memory is freed.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    let command = Cli::parse().command;
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

#[cfg(test)]
mod tests {
    use super::MI_OPTION_PURGE_DELAY;

    #[test]
    fn the_option_set_at_start_is_mimallocs_purge_delay() {
        // mimalloc 3's default purge delay is 1,000 ms; a renumbered option would read else.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            delay, 1000,
            "unless MIMALLOC_PURGE_DELAY is set for the test run"
        );
    }
}
