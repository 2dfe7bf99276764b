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

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator,
    ScalarUDF, Signature, Volatility, create_udf,
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

    /// Takes back one [`Self::add`] of `value` (a no-op when none was added).
    pub fn remove(&mut self, value: f64) {
        if value > 0.0 && value.is_finite() {
            let key = Self::key(value);
            if let Some(c) = key
                .checked_sub(self.offset)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| self.counts.get_mut(i))
            {
                *c = c.saturating_sub(1);
            }
        } else {
            self.zeros = self.zeros.saturating_sub(1);
        }
    }

    /// Approximate heap and inline size.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.counts.capacity() * 8
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
        } else if values.as_binary_opt::<i32>().is_some() {
            // Sketches (`sketch_merge`): merged like partial states.
            return self.merge_batch(std::slice::from_ref(values));
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

/// Adds every selected, non-null value of `values` to the sketch of its group, `add(group, v)`.
fn for_each_value(
    values: &ArrayRef,
    group_indices: &[usize],
    filter: Option<&BooleanArray>,
    mut add: impl FnMut(usize, f64),
) {
    let selected = |row: usize| filter.is_none_or(|f| f.is_valid(row) && f.value(row));
    if let Some(ints) = values.as_primitive_opt::<Int64Type>() {
        for (row, (&group, v)) in group_indices.iter().zip(ints.values()).enumerate() {
            if ints.is_valid(row) && selected(row) {
                add(group, *v as f64);
            }
        }
    } else if let Some(floats) = values.as_primitive_opt::<Float64Type>() {
        for (row, (&group, v)) in group_indices.iter().zip(floats.values()).enumerate() {
            if floats.is_valid(row) && selected(row) {
                add(group, *v);
            }
        }
    }
}

/// One sketch per group, updated in place. DataFusion's adapter for a plain [`Accumulator`]
/// gathers each group's rows into arrays of their own first; over the views' few groups and
/// millions of rows that copying cost more than the sketches.
#[derive(Debug, Default)]
struct SketchGroups(Vec<Sketch>);

impl GroupsAccumulator for SketchGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.resize_with(total_num_groups, Sketch::default);
        if let Some(values) = values.first() {
            let sketches = &mut self.0;
            for_each_value(values, group_indices, opt_filter, |g, v| sketches[g].add(v));
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sketches = emit_to.take_needed(&mut self.0);
        let bytes: BinaryArray = sketches.iter().map(|s| Some(s.to_bytes())).collect();
        Ok(Arc::new(bytes))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.resize_with(total_num_groups, Sketch::default);
        let Some(states) = values.first() else {
            return Ok(());
        };
        let binary = states.as_binary_opt::<i32>().ok_or_else(bad_sketch)?;
        for (row, &group) in group_indices.iter().enumerate() {
            if binary.is_valid(row) {
                let other = Sketch::from_bytes(binary.value(row)).ok_or_else(bad_sketch)?;
                self.0[group].merge(&other);
            }
        }
        Ok(())
    }

    /// Each row as a state of its own (when DataFusion skips partial aggregation).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let Some(values) = values.first() else {
            return Ok(vec![]);
        };
        let mut sketches = vec![Sketch::default(); values.len()];
        let rows: Vec<usize> = (0..values.len()).collect();
        for_each_value(values, &rows, opt_filter, |row, v| sketches[row].add(v));
        let bytes: BinaryArray = sketches.iter().map(|s| Some(s.to_bytes())).collect();
        Ok(vec![Arc::new(bytes)])
    }

    fn size(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<Sketch>()
            + self
                .0
                .iter()
                .map(|s| s.counts.capacity() * 8)
                .sum::<usize>()
    }
}

/// The `latency_sketch` aggregate: a plain accumulator for a single group, [`SketchGroups`] for
/// grouped queries.
#[derive(Debug, PartialEq, Eq, Hash)]
struct LatencySketch {
    signature: Signature,
}

impl AggregateUDFImpl for LatencySketch {
    fn name(&self) -> &str {
        "latency_sketch"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SketchAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[sketch]", args.name),
            DataType::Binary,
            true,
        ))])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SketchGroups::default()))
    }
}

/// `latency_sketch(value)`: aggregates Int64 or Float64 values into a sketch (Binary).
pub fn latency_sketch(input: DataType) -> AggregateUDF {
    AggregateUDF::from(LatencySketch {
        signature: Signature::exact(vec![input], Volatility::Immutable),
    })
}

/// The `sketch_merge` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SketchMerge {
    signature: Signature,
}

impl AggregateUDFImpl for SketchMerge {
    fn name(&self) -> &str {
        "sketch_merge"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    /// Its inputs are sketches, as `latency_sketch`'s partial states are.
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SketchAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[sketch]", args.name),
            DataType::Binary,
            true,
        ))])
    }
}

/// `sketch_merge(sketch)`: the sketch of every value the merged sketches (Binary) hold — what
/// `latency_sketch` over all of their values gives.
pub fn sketch_merge() -> AggregateUDF {
    AggregateUDF::from(SketchMerge {
        signature: Signature::exact(vec![DataType::Binary], Volatility::Immutable),
    })
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

    /// Grouped, filtered and null values through DataFusion (the views' use): each group's
    /// quantiles are its own values' nearest-rank ones, whether one sketch per group is updated
    /// in place, partial sketches are merged, or a whole table is one group.
    #[tokio::test]
    async fn grouped_sketches_hold_each_groups_values() {
        use datafusion::arrow::array::{BooleanArray, Int64Array, RecordBatch, StringArray};
        use datafusion::datasource::MemTable;
        use datafusion::prelude::SessionContext;

        let rows = 6_000usize;
        let group = |i: usize| ["a", "b", "c"][i % 3];
        let value = |i: usize| ((i * 7_919) % 1_000 + 1) as i64 * 1_000 * (1 + (i % 3) as i64);
        let kept = |i: usize| !i.is_multiple_of(5);
        let null = |i: usize| i.is_multiple_of(11);
        let batch = |range: std::ops::Range<usize>| {
            RecordBatch::try_from_iter([
                (
                    "g",
                    Arc::new(StringArray::from_iter_values(range.clone().map(group))) as ArrayRef,
                ),
                (
                    "v",
                    Arc::new(Int64Array::from_iter(
                        range.clone().map(|i| (!null(i)).then(|| value(i))),
                    )),
                ),
                (
                    "f",
                    Arc::new(BooleanArray::from_iter(range.map(|i| Some(kept(i))))),
                ),
            ])
            .unwrap()
        };
        // Two partitions of several batches: partial sketches are merged.
        let parts = vec![
            vec![batch(0..1_000), batch(1_000..3_000)],
            vec![batch(3_000..4_500), batch(4_500..rows)],
        ];
        let ctx = SessionContext::new();
        ctx.register_udaf(latency_sketch(DataType::Int64));
        ctx.register_udf(sketch_quantile());
        let table = MemTable::try_new(parts[0][0].schema(), parts).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let out = ctx
            .sql(
                "SELECT g, sketch_quantile(latency_sketch(v), 0.5) AS p50,
                   sketch_quantile(latency_sketch(v) FILTER (WHERE f), 0.99) AS p99
                 FROM t GROUP BY g
                 UNION ALL
                 SELECT 'all', sketch_quantile(latency_sketch(v), 0.5),
                   sketch_quantile(latency_sketch(v) FILTER (WHERE f), 0.99) FROM t",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut seen = 0;
        for b in &out {
            let g = b.column(0).as_string_view_opt().map(|a| {
                (0..a.len())
                    .map(|i| a.value(i).to_owned())
                    .collect::<Vec<_>>()
            });
            let g = g.unwrap_or_else(|| {
                let a = b.column(0).as_string::<i32>();
                (0..a.len()).map(|i| a.value(i).to_owned()).collect()
            });
            let p50 = b.column(1).as_primitive::<Float64Type>();
            let p99 = b.column(2).as_primitive::<Float64Type>();
            for (row, name) in g.iter().enumerate() {
                let of = |i: &usize| name == "all" || group(*i) == name;
                let mut all: Vec<f64> = (0..rows)
                    .filter(|i| of(i) && !null(*i))
                    .map(|i| value(i) as f64)
                    .collect();
                let mut filtered: Vec<f64> = (0..rows)
                    .filter(|i| of(i) && !null(*i) && kept(*i))
                    .map(|i| value(i) as f64)
                    .collect();
                all.sort_by(f64::total_cmp);
                filtered.sort_by(f64::total_cmp);
                for (got, want) in [
                    (p50.value(row), nearest_rank(&all, 0.5)),
                    (p99.value(row), nearest_rank(&filtered, 0.99)),
                ] {
                    assert!(
                        (got - want).abs() <= want * RELATIVE_ACCURACY * 1.000001,
                        "{name}: got {got} want {want}"
                    );
                }
                seen += 1;
            }
        }
        assert_eq!(seen, 4);
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
