//! Evaluation of a parsed PromQL expression at one instant, over series already loaded for each
//! selector of the expression. Semantics follow Prometheus 2.x (the version the comparison tests
//! run against): a selector sees samples in `[t - 5m, t]`, a range `[t - range, t]`, both bounds
//! included; `rate`, `increase` and `delta` extrapolate as Prometheus does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, UNIX_EPOCH};

use promql_parser::label::Matchers;
use promql_parser::parser::token::TokenType;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinModifier, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector,
    Offset, VectorMatchCardinality, VectorSelector,
};

use super::functions;
use super::value::{Labels, NAME, Sample, Series, Value, display, is_stale, without_name};

/// Why an expression could not be evaluated, in Prometheus's error types.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum EvalError {
    /// The expression or a parameter is wrong (`bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluating it failed (`execution`): many-to-many matching, too many samples.
    #[error("{0}")]
    Execution(String),
}

pub type Result<T> = std::result::Result<T, EvalError>;

/// Identifies a selector within one parsed expression (the address of its node, which does not
/// move while the expression is evaluated).
pub fn selector_key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// Milliseconds of a parser duration.
pub fn millis(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => millis(d),
        Some(Offset::Neg(d)) => -millis(d),
    }
}

/// Whether a series' labels satisfy a selector's name and matchers (a missing label is "").
pub fn selects(vs: &VectorSelector, labels: &Labels) -> bool {
    if let Some(name) = &vs.name
        && get(labels, NAME) != name
    {
        return false;
    }
    matchers_select(&vs.matchers, labels)
}

fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).map(String::as_str).unwrap_or("")
}

fn matchers_select(m: &Matchers, labels: &Labels) -> bool {
    if !m.matchers.iter().all(|x| x.is_match(get(labels, &x.name))) {
        return false;
    }
    m.or_matchers.is_empty()
        || m.or_matchers
            .iter()
            .any(|group| group.iter().all(|x| x.is_match(get(labels, &x.name))))
}

/// The evaluation of one query: its series and its time bounds (for `@ start()` / `@ end()`).
pub struct Evaluator<'a> {
    pub series: &'a HashMap<usize, Vec<Series>>,
    pub start: i64,
    pub end: i64,
    pub lookback: i64,
}

/// The time a selector reads at, for evaluation time `t`.
fn reference_time(
    at: &Option<AtModifier>,
    offset: &Option<Offset>,
    t: i64,
    start: i64,
    end: i64,
) -> i64 {
    let base = match at {
        None => t,
        Some(AtModifier::Start) => start,
        Some(AtModifier::End) => end,
        Some(AtModifier::At(time)) => match time.duration_since(UNIX_EPOCH) {
            Ok(d) => millis(&d),
            Err(e) => -millis(&e.duration()),
        },
    };
    base - offset_ms(offset)
}

impl Evaluator<'_> {
    fn loaded(&self, vs: &VectorSelector) -> &[Series] {
        self.series
            .get(&selector_key(vs))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn eval(&self, expr: &Expr, t: i64) -> Result<Value> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => Ok(Value::Vector(
                    v.into_iter()
                        .map(|s| Sample {
                            labels: without_name(&s.labels),
                            t: s.t,
                            value: -s.value,
                        })
                        .collect(),
                )),
                other => Err(EvalError::BadData(format!(
                    "unary expression only allowed on expressions of type scalar or vector, got: {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.instant(vs, t))),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.range(ms, t))),
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Binary(b) => self.binary(b, t),
            Expr::Call(c) => self.call(c, t),
            Expr::Subquery(_) => Err(EvalError::BadData(
                "subqueries are not supported by Lakescope yet".into(),
            )),
            Expr::Extension(_) => Err(EvalError::BadData("unsupported expression".into())),
        }
    }

    /// The latest sample of each selected series within the lookback window.
    pub fn instant(&self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        let reference = reference_time(&vs.at, &vs.offset, t, self.start, self.end);
        let mut out = Vec::new();
        for s in self.loaded(vs) {
            let idx = s.samples.partition_point(|(ts, _)| *ts <= reference);
            if idx == 0 {
                continue;
            }
            let (ts, v) = s.samples[idx - 1];
            if ts < reference - self.lookback || is_stale(v) {
                continue;
            }
            out.push(Sample {
                labels: s.labels.clone(),
                t: ts,
                value: v,
            });
        }
        out
    }

    /// The samples of each selected series within `[t - range, t]`.
    pub fn range(&self, ms: &MatrixSelector, t: i64) -> Vec<Series> {
        let vs = &ms.vs;
        let reference = reference_time(&vs.at, &vs.offset, t, self.start, self.end);
        let from = reference - millis(&ms.range);
        let mut out = Vec::new();
        for s in self.loaded(vs) {
            let lo = s.samples.partition_point(|(ts, _)| *ts < from);
            let hi = s.samples.partition_point(|(ts, _)| *ts <= reference);
            let samples: Vec<(i64, f64)> = s.samples[lo..hi]
                .iter()
                .filter(|(_, v)| !is_stale(*v))
                .copied()
                .collect();
            if !samples.is_empty() {
                out.push(Series {
                    labels: s.labels.clone(),
                    samples,
                });
            }
        }
        out
    }

    fn vector(&self, expr: &Expr, t: i64) -> Result<Vec<Sample>> {
        match self.eval(expr, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(EvalError::BadData(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    fn scalar(&self, expr: &Expr, t: i64) -> Result<f64> {
        match self.eval(expr, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(EvalError::BadData(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    fn call(&self, c: &Call, t: i64) -> Result<Value> {
        let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
        functions::call(self, c.func.name, &args, t)
    }

    /// Evaluates an argument, for the functions.
    pub fn arg(&self, expr: &Expr, t: i64) -> Result<Value> {
        self.eval(expr, t)
    }

    pub fn arg_vector(&self, expr: &Expr, t: i64) -> Result<Vec<Sample>> {
        self.vector(expr, t)
    }

    pub fn arg_scalar(&self, expr: &Expr, t: i64) -> Result<f64> {
        self.scalar(expr, t)
    }

    pub fn arg_matrix(&self, expr: &Expr, t: i64) -> Result<(Vec<Series>, i64, i64)> {
        match expr {
            Expr::MatrixSelector(ms) => {
                let vs = &ms.vs;
                let reference = reference_time(&vs.at, &vs.offset, t, self.start, self.end);
                Ok((self.range(ms, t), reference - millis(&ms.range), reference))
            }
            Expr::Paren(p) => self.arg_matrix(&p.expr, t),
            Expr::Subquery(_) => Err(EvalError::BadData(
                "subqueries are not supported by Lakescope yet".into(),
            )),
            _ => Err(EvalError::BadData("expected range vector".into())),
        }
    }

    fn aggregate(&self, a: &AggregateExpr, t: i64) -> Result<Value> {
        let op = a.op.to_string();
        let input = self.vector(&a.expr, t)?;
        let param = match &a.param {
            Some(p) => Some(self.eval(p, t)?),
            None => None,
        };
        aggregate(&op, param, input, a.modifier.as_ref(), t).map(Value::Vector)
    }

    fn binary(&self, b: &BinaryExpr, t: i64) -> Result<Value> {
        let op = b.op.to_string();
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        if let Some(m) = &b.modifier
            && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
        {
            return Err(EvalError::BadData(
                "fill modifiers are not supported by Lakescope".into(),
            ));
        }
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = scalar_op(&op, l, r)?;
                Ok(Value::Scalar(if is_comparison(&b.op) {
                    bool_value(keep)
                } else {
                    v
                }))
            }
            (Value::Vector(l), Value::Scalar(r)) => {
                vector_scalar(&op, &b.op, l, r, false, return_bool).map(Value::Vector)
            }
            (Value::Scalar(l), Value::Vector(r)) => {
                vector_scalar(&op, &b.op, r, l, true, return_bool).map(Value::Vector)
            }
            (Value::Vector(l), Value::Vector(r)) => {
                vector_vector(&op, &b.op, l, r, b.modifier.as_ref(), t).map(Value::Vector)
            }
            (l, r) => Err(EvalError::BadData(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }
}

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn is_comparison(op: &TokenType) -> bool {
    op.is_comparison_operator()
}

/// `lhs op rhs`: the arithmetic result, or for comparisons the left value and whether it holds.
fn scalar_op(op: &str, l: f64, r: f64) -> Result<(f64, bool)> {
    Ok(match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        other => {
            return Err(EvalError::BadData(format!(
                "operator {other:?} not allowed between scalars and vectors"
            )));
        }
    })
}

fn vector_scalar(
    op: &str,
    token: &TokenType,
    vector: Vec<Sample>,
    scalar: f64,
    scalar_first: bool,
    return_bool: bool,
) -> Result<Vec<Sample>> {
    let comparison = is_comparison(token);
    let mut out = Vec::with_capacity(vector.len());
    for s in vector {
        let (l, r) = if scalar_first {
            (scalar, s.value)
        } else {
            (s.value, scalar)
        };
        let (mut value, keep) = scalar_op(op, l, r)?;
        if comparison && scalar_first {
            // The vector's value is kept, whichever side it is on.
            value = s.value;
        }
        let labels = if return_bool {
            value = bool_value(keep);
            without_name(&s.labels)
        } else if !keep {
            continue;
        } else if comparison {
            s.labels
        } else {
            without_name(&s.labels)
        };
        out.push(Sample {
            labels,
            t: s.t,
            value,
        });
    }
    Ok(out)
}

/// The labels two series are matched on.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels
            .iter()
            .filter(|(k, _)| on.labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(ignoring)) => labels
            .iter()
            .filter(|(k, _)| *k != NAME && !ignoring.labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => without_name(labels),
    }
}

fn vector_vector(
    op: &str,
    token: &TokenType,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    modifier: Option<&BinModifier>,
    t: i64,
) -> Result<Vec<Sample>> {
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let card = modifier
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    let return_bool = modifier.is_some_and(|m| m.return_bool);
    if token.is_set_operator() {
        return Ok(set_operation(op, lhs, rhs, matching));
    }
    // The "many" side is iterated, the "one" side looked up.
    let (many, one, swapped) = match card {
        VectorMatchCardinality::OneToMany(_) => (rhs, lhs, true),
        _ => (lhs, rhs, false),
    };
    let mut one_by_sig: HashMap<Labels, Sample> = HashMap::new();
    for s in one {
        let sig = signature(&s.labels, matching);
        if let Some(prev) = one_by_sig.get(&sig) {
            let side = if swapped { "left" } else { "right" };
            return Err(EvalError::Execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                display(&sig),
                display(&prev.labels),
                display(&s.labels)
            )));
        }
        one_by_sig.insert(sig, s);
    }
    let comparison = is_comparison(token);
    let mut matched: HashSet<Labels> = HashSet::new();
    let mut inserted: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for s in many {
        let sig = signature(&s.labels, matching);
        let Some(other) = one_by_sig.get(&sig) else {
            continue;
        };
        let (l, r) = if swapped {
            (other.value, s.value)
        } else {
            (s.value, other.value)
        };
        let (mut value, keep) = scalar_op(op, l, r)?;
        if return_bool {
            value = bool_value(keep);
        } else if !keep {
            continue;
        }
        let mut labels = s.labels.clone();
        if !comparison || return_bool {
            labels.remove(NAME);
        }
        match &card {
            VectorMatchCardinality::OneToOne => {
                match matching {
                    Some(LabelModifier::Include(on)) => {
                        labels.retain(|k, _| on.labels.iter().any(|l| l == k))
                    }
                    Some(LabelModifier::Exclude(ignoring)) => {
                        labels.retain(|k, _| !ignoring.labels.iter().any(|l| l == k))
                    }
                    None => {}
                }
                if !matched.insert(sig) {
                    return Err(EvalError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                            .into(),
                    ));
                }
            }
            VectorMatchCardinality::ManyToOne(include)
            | VectorMatchCardinality::OneToMany(include) => {
                for name in &include.labels {
                    match other.labels.get(name) {
                        Some(v) if !v.is_empty() => {
                            labels.insert(name.clone(), v.clone());
                        }
                        _ => {
                            labels.remove(name);
                        }
                    }
                }
                if !inserted.insert(labels.clone()) {
                    return Err(EvalError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
            }
            VectorMatchCardinality::ManyToMany => {}
        }
        out.push(Sample { labels, t, value });
    }
    Ok(out)
}

fn set_operation(
    op: &str,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: Option<&LabelModifier>,
) -> Vec<Sample> {
    let rhs_sigs: HashSet<Labels> = rhs.iter().map(|s| signature(&s.labels, matching)).collect();
    match op {
        "and" => lhs
            .into_iter()
            .filter(|s| rhs_sigs.contains(&signature(&s.labels, matching)))
            .collect(),
        "unless" => lhs
            .into_iter()
            .filter(|s| !rhs_sigs.contains(&signature(&s.labels, matching)))
            .collect(),
        _ => {
            let lhs_sigs: HashSet<Labels> =
                lhs.iter().map(|s| signature(&s.labels, matching)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| !lhs_sigs.contains(&signature(&s.labels, matching))),
            );
            out
        }
    }
}

/// The group an aggregation puts a sample in.
fn grouping(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        Some(LabelModifier::Include(by)) => labels
            .iter()
            .filter(|(k, _)| by.labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(without)) => labels
            .iter()
            .filter(|(k, _)| *k != NAME && !without.labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => Labels::new(),
    }
}

/// Prometheus's quantile of a set of values: linear interpolation between the closest ranks.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn aggregate(
    op: &str,
    param: Option<Value>,
    input: Vec<Sample>,
    modifier: Option<&LabelModifier>,
    t: i64,
) -> Result<Vec<Sample>> {
    // Groups in the order first seen, as Prometheus returns them.
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, Vec<Sample>> = HashMap::new();
    for s in input {
        let key = grouping(&s.labels, modifier);
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(s);
    }
    let param_scalar = |what: &str| -> Result<f64> {
        match &param {
            Some(Value::Scalar(v)) => Ok(*v),
            _ => Err(EvalError::BadData(format!(
                "expected scalar parameter for {what}"
            ))),
        }
    };
    let mut out = Vec::new();
    for key in order {
        let members = groups.remove(&key).unwrap_or_default();
        let values: Vec<f64> = members.iter().map(|s| s.value).collect();
        let n = values.len() as f64;
        let one = |value: f64| Sample {
            labels: key.clone(),
            t,
            value,
        };
        match op {
            "sum" => out.push(one(values.iter().sum())),
            "avg" => {
                let mut mean = 0.0;
                for (i, v) in values.iter().enumerate() {
                    let count = (i + 1) as f64;
                    mean += v / count - mean / count;
                }
                out.push(one(mean));
            }
            "count" => out.push(one(n)),
            "group" => out.push(one(1.0)),
            "min" => {
                let mut m = values[0];
                for v in &values[1..] {
                    if *v < m || m.is_nan() {
                        m = *v;
                    }
                }
                out.push(one(m));
            }
            "max" => {
                let mut m = values[0];
                for v in &values[1..] {
                    if *v > m || m.is_nan() {
                        m = *v;
                    }
                }
                out.push(one(m));
            }
            "stddev" | "stdvar" => {
                let (mut mean, mut acc) = (0.0, 0.0);
                for (i, v) in values.iter().enumerate() {
                    let delta = v - mean;
                    mean += delta / (i + 1) as f64;
                    acc += delta * (v - mean);
                }
                let var = acc / n;
                out.push(one(if op == "stddev" { var.sqrt() } else { var }));
            }
            "quantile" => {
                let q = param_scalar("quantile")?;
                let mut v = values;
                out.push(one(quantile(q, &mut v)));
            }
            "topk" | "bottomk" => {
                let k = param_scalar(op)?;
                if k < 1.0 {
                    continue;
                }
                let mut members = members;
                members.sort_by(|a, b| {
                    let ord = if op == "topk" {
                        b.value.total_cmp(&a.value)
                    } else {
                        a.value.total_cmp(&b.value)
                    };
                    // NaN always last.
                    match (a.value.is_nan(), b.value.is_nan()) {
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ => ord,
                    }
                });
                let k = if k >= members.len() as f64 {
                    members.len()
                } else {
                    k as usize
                };
                out.extend(members.into_iter().take(k).map(|mut s| {
                    s.t = t;
                    s
                }));
            }
            "count_values" => {
                let Some(Value::String(label)) = &param else {
                    return Err(EvalError::BadData(
                        "expected string parameter for count_values".into(),
                    ));
                };
                let mut counts: BTreeMap<String, f64> = BTreeMap::new();
                for v in &values {
                    *counts.entry(super::names::format_float(*v)).or_default() += 1.0;
                }
                for (value, count) in counts {
                    let mut labels = key.clone();
                    labels.insert(label.clone(), value);
                    out.push(Sample {
                        labels,
                        t,
                        value: count,
                    });
                }
            }
            other => {
                return Err(EvalError::BadData(format!(
                    "aggregation {other} is not supported by Lakescope yet"
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::value::stale_marker;
    use super::*;

    #[test]
    fn a_staleness_marker_ends_a_series() {
        let instant = promql_parser::parser::parse("up").expect("parse");
        let ranged = promql_parser::parser::parse("up[10s]").expect("parse");
        let (Expr::VectorSelector(vs), Expr::MatrixSelector(ms)) = (&instant, &ranged) else {
            panic!("selectors expected");
        };
        let series = vec![Series {
            labels: Labels::from([(NAME.to_owned(), "up".to_owned())]),
            samples: vec![(1_000, 1.0), (2_000, 2.0), (3_000, stale_marker())],
        }];
        let loaded = HashMap::from([
            (selector_key(vs), series.clone()),
            (selector_key(&ms.vs), series),
        ]);
        let ev = Evaluator {
            series: &loaded,
            start: 0,
            end: 10_000,
            lookback: 300_000,
        };
        assert_eq!(ev.instant(vs, 2_500)[0].value, 2.0);
        // Without the marker the lookback would still find 2.0 for five minutes.
        assert!(ev.instant(vs, 3_000).is_empty());
        assert!(ev.instant(vs, 60_000).is_empty());
        assert_eq!(
            ev.range(ms, 5_000)[0].samples,
            vec![(1_000, 1.0), (2_000, 2.0)]
        );
    }
}
