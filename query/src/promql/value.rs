//! The values PromQL expressions evaluate to.

use std::collections::BTreeMap;

/// Label name → value, sorted; the metric name is the label `__name__`.
pub type Labels = BTreeMap<String, String>;

pub const NAME: &str = "__name__";

/// Prometheus's staleness marker: a NaN with these bits ends a series at its timestamp (an
/// instant selector finds nothing after it, a range selector skips it). OTLP points flagged "no
/// recorded value" become one, as the OpenTelemetry → Prometheus specification says.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One series as loaded: its labels and its samples (Unix milliseconds, value), in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// One element of an instant vector; `t` is the time of the sample it came from (what
/// `timestamp()` returns), the evaluation time for computed values.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub t: i64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// The labels without the metric name.
pub fn without_name(labels: &Labels) -> Labels {
    let mut out = labels.clone();
    out.remove(NAME);
    out
}

/// Labels as Prometheus prints them in messages: `{a="1", b="2"}`.
pub fn display(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}
