//! Which stage the current thread works for, so that a diagnostic allocator can say which
//! stage holds the heap (docs/benchmarks.md). Costs one thread-local write per tagged region.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum Stage {
    Other = 0,
    Decode = 1,
    Flush = 2,
    Merge = 3,
    TraceIndex = 4,
    Summaries = 5,
    Wal = 6,
    Rules = 7,
}

pub const STAGES: [&str; 8] = [
    "other",
    "decode",
    "flush",
    "merge",
    "trace_index",
    "summaries",
    "wal",
    "rules",
];

thread_local! {
    static STAGE: Cell<u8> = const { Cell::new(0) };
}

/// The current thread's stage (0 when none, or while the thread is being torn down).
pub fn current() -> u8 {
    STAGE.try_with(Cell::get).unwrap_or(0)
}

pub struct Guard(u8);

pub fn enter(stage: Stage) -> Guard {
    Guard(STAGE.with(|s| s.replace(stage as u8)))
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = STAGE.try_with(|s| s.set(self.0));
    }
}

/// `future`, with `stage` entered while it is polled.
pub fn tagged<F: Future>(stage: Stage, future: F) -> Tagged<F> {
    Tagged {
        stage,
        inner: Box::pin(future),
    }
}

pub struct Tagged<F> {
    stage: Stage,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Tagged<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _guard = enter(self.stage);
        self.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_holds_while_entered_and_the_one_before_returns() {
        assert_eq!(current(), Stage::Other as u8);
        {
            let _merge = enter(Stage::Merge);
            assert_eq!(current(), Stage::Merge as u8);
            {
                let _flush = enter(Stage::Flush);
                assert_eq!(current(), Stage::Flush as u8);
            }
            assert_eq!(current(), Stage::Merge as u8);
        }
        assert_eq!(current(), Stage::Other as u8);
    }

    #[tokio::test]
    async fn a_tagged_future_runs_in_its_stage_and_leaves_the_thread_as_it_was() {
        let seen = tagged(Stage::Rules, async {
            tokio::task::yield_now().await;
            current()
        })
        .await;
        assert_eq!(seen, Stage::Rules as u8);
        assert_eq!(current(), Stage::Other as u8);
        assert_eq!(STAGES[Stage::Rules as usize], "rules");
    }
}
