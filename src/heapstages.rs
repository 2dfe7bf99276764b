//! A diagnostic global allocator (feature `heap-stages`): every allocation carries the stage
//! that made it (`lakescope_collector::memtag`), so that the live heap can be split by stage
//! and set beside resident memory. Adds a 16-byte header and an atomic add to each allocation.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};

use lakescope_collector::memtag;

pub struct Counting;

static LIVE: [AtomicIsize; 8] = [const { AtomicIsize::new(0) }; 8];
const HEADER: usize = 16;

fn header(layout: &Layout) -> usize {
    layout.align().max(HEADER)
}

fn outer(layout: &Layout) -> Option<Layout> {
    Layout::from_size_align(layout.size() + header(layout), layout.align()).ok()
}

/// Allocates `layout` plus its header with `inner`, tags the header with the current stage
/// and counts the bytes for it.
///
/// # Safety
/// `inner` must return null or a block valid for `outer(layout)`, as `GlobalAlloc` requires.
unsafe fn tagged_alloc(layout: Layout, inner: impl FnOnce(Layout) -> *mut u8) -> *mut u8 {
    let Some(o) = outer(&layout) else {
        return std::ptr::null_mut();
    };
    let base = inner(o);
    if base.is_null() {
        return base;
    }
    let tag = memtag::current();
    unsafe { *base = tag };
    LIVE[tag as usize & 7].fetch_add(layout.size() as isize, Ordering::Relaxed);
    unsafe { base.add(header(&layout)) }
}

// SAFETY: forwards to mimalloc with room for a header in front of each block; the pointer
// handed out is `header` bytes into mimalloc's block, aligned as asked since `header` is a
// multiple of the alignment.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { tagged_alloc(layout, |o| mimalloc::MiMalloc.alloc(o)) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { tagged_alloc(layout, |o| mimalloc::MiMalloc.alloc_zeroed(o)) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let base = unsafe { ptr.sub(header(&layout)) };
        let tag = unsafe { *base };
        LIVE[tag as usize & 7].fetch_sub(layout.size() as isize, Ordering::Relaxed);
        if let Some(o) = outer(&layout) {
            unsafe { mimalloc::MiMalloc.dealloc(base, o) }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let h = header(&layout);
        let base = unsafe { ptr.sub(h) };
        let tag = unsafe { *base };
        let Some(o) = outer(&layout) else {
            return std::ptr::null_mut();
        };
        let new_base = unsafe { mimalloc::MiMalloc.realloc(base, o, new_size + h) };
        if new_base.is_null() {
            return new_base;
        }
        LIVE[tag as usize & 7].fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { new_base.add(h) }
    }
}

/// Logs the live heap by stage and resident memory every second.
pub fn start_sampler() {
    let _ = std::thread::Builder::new()
        .name("heap-stages".into())
        .spawn(|| {
            let mut peak_rss = 0u64;
            let mut peak_live = 0isize;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let rss = std::fs::read_to_string("/proc/self/statm")
                    .ok()
                    .and_then(|s| {
                        s.split_whitespace()
                            .nth(1)
                            .and_then(|v| v.parse::<u64>().ok())
                    })
                    .unwrap_or(0)
                    * 4096;
                let live: Vec<isize> = LIVE.iter().map(|v| v.load(Ordering::Relaxed)).collect();
                let total: isize = live.iter().sum();
                peak_rss = peak_rss.max(rss);
                peak_live = peak_live.max(total);
                let mut line = format!(
                    "heapstages rss={} live={} peak_rss={} peak_live={}",
                    rss >> 20,
                    total >> 20,
                    peak_rss >> 20,
                    peak_live >> 20
                );
                for (name, v) in memtag::STAGES.iter().zip(&live) {
                    line.push_str(&format!(" {name}={}", v >> 20));
                }
                eprintln!("{line}");
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakescope_collector::memtag::Stage;

    fn live(stage: Stage) -> isize {
        LIVE[stage as usize].load(Ordering::Relaxed)
    }

    #[test]
    fn an_allocation_counts_for_the_stage_that_made_it_until_freed_anywhere() {
        let before = live(Stage::Flush);
        let block = {
            let _flush = memtag::enter(Stage::Flush);
            vec![1u8; 1 << 20]
        };
        assert!(live(Stage::Flush) - before >= 1 << 20);
        // Freed outside the stage: still taken off the stage that made it.
        drop(block);
        assert!(live(Stage::Flush) - before < 1 << 20);

        let before = live(Stage::Merge);
        let mut grown = {
            let _merge = memtag::enter(Stage::Merge);
            let mut v: Vec<u8> = Vec::with_capacity(16);
            v.resize(1 << 20, 7);
            v
        };
        assert!(live(Stage::Merge) - before >= 1 << 20, "realloc counted");
        grown.truncate(1);
        grown.shrink_to_fit();
        assert!(live(Stage::Merge) - before < 1 << 10);
        assert_eq!(grown, [7]);
    }
}
