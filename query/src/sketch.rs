//! Latency quantiles with a guaranteed relative error: a log-bucketed histogram (the DDSketch
//! idea) as a DataFusion aggregate, `latency_sketch(duration_ns)`, and a scalar function that reads
//! a quantile out of it, `sketch_quantile(sketch, 0.99)`.
//!
//! A positive value `v` is counted in bucket `k = ceil(log_γ v)` with `γ = (1 + α) / (1 - α)`, and a
//! bucket is reported as `2γ^k / (γ + 1)`, which is within `α` (relative) of every value in it.
//! The quantile `q` of `n` values is the nearest-rank one: the value of rank `ceil(q·n)` in sorted
//! order. So `sketch_quantile` returns that value within [`RELATIVE_ACCURACY`]. Sketches merge
//! exactly, so partial aggregates over files and partitions combine without extra error.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, ColumnarValue, ScalarUDF, Volatility, create_udaf, create_udf,
};

/// Worst-case relative error of a reported quantile.
pub const RELATIVE_ACCURACY: f64 = 0.005;

static GAMMA: LazyLock<f64> =
    LazyLock::new(|| (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY));
static LN_GAMMA: LazyLock<f64> = LazyLock::new(|| GAMMA.ln());

/// A mergeable histogram of non-negative values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    zeros: u64,
    /// Key of `counts[0]`.
    offset: i32,
    counts: Vec<u64>,
}

impl Sketch {
    fn key(value: f64) -> i32 {
        (value.ln() / *LN_GAMMA).ceil() as i32
    }

    fn value_of(key: i32) -> f64 {
        2.0 * GAMMA.powi(key) / (*GAMMA + 1.0)
    }

    fn add_key(&mut self, key: i32, count: u64) {
        if self.counts.is_empty() {
            self.offset = key;
            self.counts.push(0);
        } else if key < self.offset {
            let grow = (self.offset - key) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = key;
        } else if (key - self.offset) as usize >= self.counts.len() {
            self.counts.resize((key - self.offset) as usize + 1, 0);
        }
        self.counts[(key - self.offset) as usize] += count;
    }

    /// Adds a value; negative values count as zero (durations are never negative).
    pub fn add(&mut self, value: f64) {
        if value > 0.0 && value.is_finite() {
            self.add_key(Self::key(value), 1);
        } else {
            self.zeros += 1;
        }
    }

    pub fn count(&self) -> u64 {
        self.zeros + self.counts.iter().sum::<u64>()
    }

    pub fn merge(&mut self, other: &Sketch) {
        self.zeros += other.zeros;
        for (i, c) in other.counts.iter().enumerate() {
            if *c > 0 {
                self.add_key(other.offset + i as i32, *c);
            }
        }
    }

    /// The nearest-rank `q` quantile, or `None` for an empty sketch.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        if rank <= self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::value_of(self.offset + i as i32));
            }
        }
        self.counts
            .len()
            .checked_sub(1)
            .map(|last| Self::value_of(self.offset + last as i32))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.counts.len() * 8);
        out.extend_from_slice(&self.zeros.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&(self.counts.len() as u32).to_le_bytes());
        for c in &self.counts {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let zeros = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
        let offset = i32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
        let len = u32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?) as usize;
        let body = bytes.get(16..)?;
        if body.len() != len.checked_mul(8)? {
            return None;
        }
        let counts = body
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        Some(Self {
            zeros,
            offset,
            counts,
        })
    }
}

#[derive(Debug, Default)]
struct SketchAccumulator(Sketch);

fn bad_sketch() -> DataFusionError {
    DataFusionError::Execution("not a latency sketch".into())
}

impl Accumulator for SketchAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(values) = values.first() else {
            return Ok(());
        };
        if let Some(ints) = values.as_primitive_opt::<Int64Type>() {
            ints.iter().flatten().for_each(|v| self.0.add(v as f64));
        } else if let Some(floats) = values.as_primitive_opt::<Float64Type>() {
            floats.iter().flatten().for_each(|v| self.0.add(v));
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(self.0.to_bytes())))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.0.counts.capacity() * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(states) = states.first() else {
            return Ok(());
        };
        let binary = states.as_binary_opt::<i32>().ok_or_else(bad_sketch)?;
        for bytes in binary.iter().flatten() {
            self.0
                .merge(&Sketch::from_bytes(bytes).ok_or_else(bad_sketch)?);
        }
        Ok(())
    }
}

/// `latency_sketch(value)`: aggregates Int64 or Float64 values into a sketch (Binary).
pub fn latency_sketch(input: DataType) -> AggregateUDF {
    create_udaf(
        "latency_sketch",
        vec![input],
        Arc::new(DataType::Binary),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(SketchAccumulator::default()))),
        Arc::new(vec![DataType::Binary]),
    )
}

/// `sketch_quantile(sketch, q)`: the nearest-rank `q` quantile of a sketch, as Float64.
pub fn sketch_quantile() -> ScalarUDF {
    create_udf(
        "sketch_quantile",
        vec![DataType::Binary, DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let rows = args
                .iter()
                .find_map(|a| match a {
                    ColumnarValue::Array(a) => Some(a.len()),
                    ColumnarValue::Scalar(_) => None,
                })
                .unwrap_or(1);
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let sketches = arrays[0].as_binary_opt::<i32>().ok_or_else(bad_sketch)?;
            let qs = arrays[1]
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| DataFusionError::Execution("q must be a number".into()))?;
            let out: Float64Array = (0..rows)
                .map(|i| {
                    if sketches.is_null(i) || qs.is_null(i) {
                        return Ok(None);
                    }
                    let sketch = Sketch::from_bytes(sketches.value(i)).ok_or_else(bad_sketch)?;
                    Ok(sketch.quantile(qs.value(i)))
                })
                .collect::<Result<_>>()?;
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    #[test]
    fn quantiles_of_a_known_set() {
        let mut s = Sketch::default();
        for v in 1..=100 {
            s.add(v as f64 * 1_000_000.0);
        }
        for (q, want) in [(0.5, 50e6), (0.95, 95e6), (0.99, 99e6), (1.0, 100e6)] {
            let got = s.quantile(q).unwrap();
            assert!(
                (got - want).abs() <= want * RELATIVE_ACCURACY,
                "q={q} got {got} want {want}"
            );
        }
    }

    #[test]
    fn zeros_and_empty() {
        let mut s = Sketch::default();
        assert_eq!(s.quantile(0.5), None);
        s.add(0.0);
        s.add(0.0);
        s.add(10.0);
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!((s.quantile(0.99).unwrap() - 10.0).abs() <= 10.0 * RELATIVE_ACCURACY);
    }

    proptest! {
        #[test]
        fn every_quantile_is_within_the_relative_accuracy(
            values in proptest::collection::vec(0u64..100_000_000_000, 1..400),
            split in 0usize..400,
            q in 0.0f64..=1.0,
        ) {
            // Built in two halves and merged, as partial aggregates are.
            let split = split.min(values.len());
            let (mut a, mut b) = (Sketch::default(), Sketch::default());
            values[..split].iter().for_each(|v| a.add(*v as f64));
            values[split..].iter().for_each(|v| b.add(*v as f64));
            let a = Sketch::from_bytes(&a.to_bytes()).unwrap();
            let mut merged = b;
            merged.merge(&a);
            let mut sorted: Vec<f64> = values.iter().map(|v| *v as f64).collect();
            sorted.sort_by(f64::total_cmp);
            let want = nearest_rank(&sorted, q);
            let got = merged.quantile(q).unwrap();
            prop_assert!((got - want).abs() <= want * RELATIVE_ACCURACY * 1.000001, "got {} want {}", got, want);
        }
    }
}
