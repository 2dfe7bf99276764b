//! When memory the server frees goes back to the system.
//!
//! mimalloc hands freed memory back after a delay (`mi_option_purge_delay`). Handed back at once,
//! every flush touches fresh pages again, and the kernel's page faults (zeroing included) were a
//! fifth of a loaded server's CPU (docs/benchmarks.md, "Where a loaded server's CPU goes"). Kept
//! for a few seconds, the next flushes reuse them, but flushes, merges and queries then peak on
//! top of each other's leftovers. So freed memory is kept while resident memory is under
//! `--keep-freed-memory-below` and handed back at once above it.

use std::time::Duration;

use lakescope_collector::stats;

/// `mi_option_purge_delay` in mimalloc 3's option enumeration (not among the crate's constants).
pub const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory is kept while the process is under its threshold. Three seconds span a
/// few flush cycles: page faults per span fell by half again against one second (mimalloc's
/// default), for ~25 MiB more at the peak (docs/benchmarks.md, "Freed memory kept while the
/// server is small").
const KEEP_MS: i64 = 3000;

/// How often resident memory is sampled: a flush of 64 MiB takes ~0.5 s.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Whether freed memory should be kept, given resident memory and whether it is kept now. Once
/// over the threshold, memory is kept again only below seven eighths of it, so that resident
/// memory near the threshold does not switch the delay on every sample.
fn keep(resident: u64, threshold: u64, kept: bool) -> bool {
    if kept {
        resident < threshold
    } else {
        resident < threshold - threshold / 8
    }
}

/// Resident memory of this process (bytes), from `/proc/self/status`.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

fn set_purge_delay(ms: i64) {
    // SAFETY: an option may be set at any time; mimalloc reads it each time it frees memory.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms as _) };
}

/// Sets how freed memory goes back for the life of the process: as `MIMALLOC_PURGE_DELAY`
/// says when it is set; else at once while resident memory is at or over `keep_below` bytes
/// (always when it is 0), kept for three seconds below it.
pub fn start(keep_below: u64) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        tracing::info!("MIMALLOC_PURGE_DELAY is set; --keep-freed-memory-below is not applied");
        return;
    }
    set_purge_delay(0);
    stats::stats().freed_memory_kept.set(0);
    if keep_below == 0 || resident_bytes().is_none() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("memory".into())
        .spawn(move || {
            let mut kept = false;
            loop {
                let Some(resident) = resident_bytes() else {
                    return;
                };
                stats::stats().resident_memory_bytes.set(resident as i64);
                let now = keep(resident, keep_below, kept);
                if now != kept {
                    kept = now;
                    set_purge_delay(if kept { KEEP_MS } else { 0 });
                    stats::stats().freed_memory_kept.set(i64::from(kept));
                    if !kept {
                        // Hand back at once what is still waiting out its delay.
                        // SAFETY: collects this thread's heap and purges every arena.
                        unsafe { libmimalloc_sys::mi_collect(true) };
                    }
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the memory sampler; freed memory goes back at once");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        // mimalloc 3's default purge delay is 1,000 ms; a renumbered option would read else.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            delay, 1000,
            "unless MIMALLOC_PURGE_DELAY is set for the test run"
        );
    }

    #[test]
    fn memory_is_kept_under_the_threshold_and_again_only_well_under_it() {
        let t = 512 << 20;
        assert!(keep(100 << 20, t, false));
        assert!(keep(t - 1, t, true));
        assert!(!keep(t, t, true));
        // Just under the threshold after being over it: not yet.
        assert!(!keep(t - (32 << 20), t, false));
        assert!(keep(t - (64 << 20) - 1, t, false));
    }

    #[test]
    fn resident_memory_is_read() {
        let resident = resident_bytes().expect("/proc/self/status");
        // A test process holds a few MiB at least and far less than the machine.
        assert!(resident > 1 << 20 && resident < 1 << 40, "{resident}");
    }
}
