//! Counting the records a request rejects, and the message reported in `partial_success`.

use std::fmt::Display;

/// What a request rejected: how many records, and the first reason.
#[derive(Debug)]
pub struct Rejections<E> {
    pub count: usize,
    pub first: Option<E>,
    one: &'static str,
    many: &'static str,
}

impl<E: Display> Rejections<E> {
    /// `one` and `many` name the records: "span" / "spans".
    pub fn new(one: &'static str, many: &'static str) -> Self {
        Self {
            count: 0,
            first: None,
            one,
            many,
        }
    }

    pub fn add(&mut self, e: E) {
        self.count += 1;
        self.first.get_or_insert(e);
    }

    pub fn message(&self) -> String {
        match (&self.first, self.count) {
            (None, _) => String::new(),
            (Some(e), 1) => format!("1 {} rejected: {e}", self.one),
            (Some(e), n) => format!("{n} {} rejected; the first: {e}", self.many),
        }
    }
}
