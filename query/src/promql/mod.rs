//! PromQL over the lake: the OTLP metrics (named as the OpenTelemetry → Prometheus
//! compatibility specification says, [`names`]) and RED metrics derived from the stored spans
//! ([`spanmetrics`]), for alert rules, Grafana and `promtool`.
//!
//! A query is parsed (the `promql-parser` crate), the series of each selector are loaded once
//! for the whole evaluation window ([`store`], [`spanmetrics`]), and the expression is evaluated
//! at each step ([`eval`], [`functions`]) as Prometheus 2.x does.

pub mod eval;
pub mod functions;
pub mod names;
pub mod spanmetrics;
pub mod store;
pub mod value;

use std::collections::{BTreeMap, HashMap, HashSet};

use promql_parser::parser::{self, Expr, VectorSelector};

use crate::engine::{QueryEngine, QueryError};
use eval::{EvalError, Evaluator, millis, selector_key};
use value::{Labels, Series, Value, display};

/// How far back an instant selector looks for a sample.
pub const LOOKBACK_MS: i64 = 300_000;
/// Most steps of a range query, as Prometheus allows.
pub const MAX_POINTS: i64 = 11_000;

/// A failed query, in Prometheus's error types.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("{0}")]
    BadData(String),
    #[error("{0}")]
    Execution(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl PromError {
    /// The `errorType` of the response.
    pub fn error_type(&self) -> &'static str {
        match self {
            PromError::BadData(_) => "bad_data",
            PromError::Execution(_) => "execution",
            PromError::Timeout(_) => "timeout",
            PromError::Unavailable(_) => "unavailable",
            PromError::Internal(_) => "internal",
        }
    }
}

impl From<EvalError> for PromError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::BadData(m) => PromError::BadData(m),
            EvalError::Execution(m) => PromError::Execution(m),
        }
    }
}

impl From<QueryError> for PromError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(m) | QueryError::Memory(m) => PromError::Execution(m),
            QueryError::Timeout(_) => PromError::Timeout(format!("query timed out: {e}")),
            QueryError::Busy { .. } | QueryError::Preparing(_) => {
                PromError::Unavailable(e.to_string())
            }
            QueryError::Execution(m) => PromError::Internal(m),
        }
    }
}

/// Parses a PromQL expression.
pub fn parse(query: &str) -> Result<Expr, PromError> {
    if query.trim().is_empty() {
        return Err(PromError::BadData(
            "1:1: parse error: no expression found in input".into(),
        ));
    }
    parser::parse(query).map_err(|e| PromError::BadData(format!("1:1: parse error: {e}")))
}

/// Every selector of `expr` with the range it is read over (0 for instant selectors).
fn selectors<'a>(expr: &'a Expr, out: &mut Vec<(&'a VectorSelector, i64)>) {
    match expr {
        Expr::VectorSelector(vs) => out.push((vs, 0)),
        Expr::MatrixSelector(ms) => out.push((&ms.vs, millis(&ms.range))),
        Expr::Aggregate(a) => {
            selectors(&a.expr, out);
            if let Some(p) = &a.param {
                selectors(p, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::Call(c) => {
            for a in &c.args.args {
                selectors(a, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Whether a selector has a matcher that does not match the empty string, as Prometheus
/// requires (`{job=~".*"}` alone would select everything).
fn check_selector(vs: &VectorSelector) -> Result<(), PromError> {
    if vs.name.is_some() {
        return Ok(());
    }
    let any_non_empty = vs.matchers.matchers.iter().any(|m| !m.is_match(""))
        || vs
            .matchers
            .or_matchers
            .iter()
            .any(|g| g.iter().any(|m| !m.is_match("")));
    if any_non_empty {
        Ok(())
    } else {
        Err(PromError::BadData(
            "vector selector must contain at least one non-empty matcher".into(),
        ))
    }
}

/// Loads the series of every selector of `expr` for evaluations in `[start, end]` (ms), within
/// the engine's query time limit (like every SQL query): a selector over a great many series
/// is cancelled rather than holding a worker.
pub async fn load(
    engine: &QueryEngine,
    expr: &Expr,
    start: i64,
    end: i64,
) -> Result<HashMap<usize, Vec<Series>>, PromError> {
    let limit = engine.limits().timeout;
    tokio::time::timeout(limit, load_series(engine, expr, start, end))
        .await
        .map_err(|_| PromError::from(QueryError::Timeout(limit)))?
}

async fn load_series(
    engine: &QueryEngine,
    expr: &Expr,
    start: i64,
    end: i64,
) -> Result<HashMap<usize, Vec<Series>>, PromError> {
    let mut found = Vec::new();
    selectors(expr, &mut found);
    let mut windows = Vec::with_capacity(found.len());
    for (vs, range) in &found {
        check_selector(vs)?;
        let offset = match &vs.offset {
            None => 0,
            Some(parser::Offset::Pos(d)) => millis(d),
            Some(parser::Offset::Neg(d)) => -millis(d),
        };
        let (lo, hi) = match &vs.at {
            None => (start, end),
            Some(parser::AtModifier::Start) => (start, start),
            Some(parser::AtModifier::End) => (end, end),
            Some(parser::AtModifier::At(t)) => {
                let ms = match t.duration_since(std::time::UNIX_EPOCH) {
                    Ok(d) => millis(&d),
                    Err(e) => -millis(&e.duration()),
                };
                (ms, ms)
            }
        };
        let back = if *range > 0 { *range } else { LOOKBACK_MS };
        windows.push((lo - offset - back, hi - offset));
    }
    let mut out = HashMap::new();
    if windows.is_empty() {
        return Ok(out);
    }
    let from = windows.iter().map(|w| w.0).min().unwrap_or(start);
    let to = windows.iter().map(|w| w.1).max().unwrap_or(end);
    let ns = |ms: i64| ms.saturating_mul(1_000_000);
    let catalog = store::catalog(engine, ns(from), ns(to)).await?;
    let mut total = 0usize;
    for ((vs, _), (lo, hi)) in found.iter().zip(windows) {
        let mut collector = store::Collector {
            samples: total,
            ..Default::default()
        };
        for entry in &catalog {
            store::load(engine, entry, vs, ns(lo), ns(hi), &mut collector).await?;
        }
        spanmetrics::load(engine, vs, lo, hi, &mut collector).await?;
        total = collector.samples;
        out.insert(selector_key(vs), collector.finish());
    }
    Ok(out)
}

fn check_unique(value: &Value) -> Result<(), PromError> {
    if let Value::Vector(v) = value {
        let mut seen = HashSet::with_capacity(v.len());
        for s in v {
            if !seen.insert(&s.labels) {
                return Err(PromError::Execution(format!(
                    "vector cannot contain metrics with the same labelset {}",
                    display(&s.labels)
                )));
            }
        }
    }
    Ok(())
}

/// Evaluates `query` at `t` (ms).
pub async fn instant(engine: &QueryEngine, query: &str, t: i64) -> Result<Value, PromError> {
    // Boxed: selectors are identified by address, which must not change when it moves.
    let expr = Box::new(parse(query)?);
    let data = load(engine, &expr, t, t).await?;
    let value = tokio::task::spawn_blocking(move || {
        let ev = Evaluator {
            series: &data,
            start: t,
            end: t,
            lookback: LOOKBACK_MS,
        };
        ev.eval(&expr, t)
    })
    .await
    .map_err(|e| PromError::Internal(e.to_string()))??;
    check_unique(&value)?;
    Ok(match value {
        Value::Vector(mut v) => {
            v.sort_by(|a, b| a.labels.cmp(&b.labels));
            Value::Vector(v)
        }
        other => other,
    })
}

/// Evaluates `query` at `start`, `start + step`, … up to `end` (ms) into one series per label set.
pub async fn range(
    engine: &QueryEngine,
    query: &str,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Vec<Series>, PromError> {
    if end < start {
        return Err(PromError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    if step <= 0 {
        return Err(PromError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    if (end - start) / step >= MAX_POINTS {
        return Err(PromError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                .into(),
        ));
    }
    let expr = Box::new(parse(query)?);
    let data = load(engine, &expr, start, end).await?;
    tokio::task::spawn_blocking(move || {
        let ev = Evaluator {
            series: &data,
            start,
            end,
            lookback: LOOKBACK_MS,
        };
        let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            let value = ev.eval(&expr, t)?;
            check_unique(&value)?;
            match value {
                Value::Scalar(v) => out.entry(Labels::new()).or_default().push((t, v)),
                Value::Vector(samples) => {
                    for s in samples {
                        out.entry(s.labels).or_default().push((t, s.value));
                    }
                }
                other => {
                    return Err(PromError::BadData(format!(
                        "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                        other.type_name()
                    )));
                }
            }
            t += step;
        }
        Ok(out
            .into_iter()
            .map(|(labels, samples)| Series { labels, samples })
            .collect())
    })
    .await
    .map_err(|e| PromError::Internal(e.to_string()))?
}

/// The series (their labels) any of `matchers` selects with samples in `[start, end]` (ms).
pub async fn series(
    engine: &QueryEngine,
    matchers: &[String],
    start: i64,
    end: i64,
) -> Result<Vec<Labels>, PromError> {
    let mut out: Vec<Labels> = Vec::new();
    let mut seen = HashSet::new();
    for m in matchers {
        let expr = parse(m)?;
        let Expr::VectorSelector(_) = &expr else {
            return Err(PromError::BadData(format!(
                "invalid parameter \"match[]\": {m} is not a series selector"
            )));
        };
        // An instant selector at `end` looking back over the whole range.
        let data = load(engine, &expr, start + LOOKBACK_MS, end).await?;
        for series in data.into_values().flatten() {
            if seen.insert(series.labels.clone()) {
                out.push(series.labels);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every metric name with samples in `[start, end]` (ms), with its type, help and unit.
pub async fn metadata(
    engine: &QueryEngine,
    start: i64,
    end: i64,
) -> Result<BTreeMap<String, (String, String, String)>, PromError> {
    let ns = |ms: i64| ms.saturating_mul(1_000_000);
    let mut out = BTreeMap::new();
    for e in store::catalog(engine, ns(start), ns(end)).await? {
        out.insert(
            e.name.clone(),
            (
                e.family.type_word().to_owned(),
                e.help.clone(),
                names::unit_suffix(&e.unit),
            ),
        );
    }
    for (name, kind, help) in spanmetrics::FAMILIES {
        let unit = if kind == "histogram" { "seconds" } else { "" };
        out.insert(
            name.to_owned(),
            (kind.to_owned(), help.to_owned(), unit.to_owned()),
        );
    }
    Ok(out)
}

/// A Prometheus duration (`90s`, `5m`, `1h30m`, `1d`, `1w`, `1y`, `500ms`) in milliseconds;
/// `None` when it is not one or overflows.
pub fn duration_ms(text: &str) -> Option<i64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let (n, tail) = rest.split_at(digits);
        let n: i64 = n.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let ms: i64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(ms)?)?;
        rest = tail;
    }
    Some(total)
}
