//! PromQL functions, computed as Prometheus 2.x computes them.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Timelike};
use promql_parser::parser::Expr;
use regex::Regex;

use super::eval::{EvalError, Evaluator, Result, quantile};
use super::value::{Labels, NAME, Sample, Series, Value, without_name};

fn arity(name: &str, args: &[&Expr], min: usize, max: usize) -> Result<()> {
    if args.len() < min || args.len() > max {
        return Err(EvalError::BadData(format!(
            "wrong number of arguments for function {name}"
        )));
    }
    Ok(())
}

/// Applies `f` to each sample's value, dropping the metric name.
fn map_values(samples: Vec<Sample>, f: impl Fn(f64) -> f64) -> Value {
    Value::Vector(
        samples
            .into_iter()
            .map(|s| Sample {
                labels: without_name(&s.labels),
                t: s.t,
                value: f(s.value),
            })
            .collect(),
    )
}

/// One value per series of a range vector, or none, from its samples.
fn over_range(
    series: Vec<Series>,
    t: i64,
    keep_name: bool,
    f: impl Fn(&[(i64, f64)]) -> Option<f64>,
) -> Value {
    Value::Vector(
        series
            .into_iter()
            .filter_map(|s| {
                f(&s.samples).map(|value| Sample {
                    labels: if keep_name {
                        s.labels.clone()
                    } else {
                        without_name(&s.labels)
                    },
                    t,
                    value,
                })
            })
            .collect(),
    )
}

/// `rate`, `increase` and `delta`: the difference over the range, counter resets added back,
/// extrapolated towards the range's edges as Prometheus does.
fn extrapolated(
    samples: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first_t, first_v) = samples[0];
    let (last_t, last_v) = samples[samples.len() - 1];
    let mut result = last_v - first_v;
    if counter {
        let mut last = 0.0;
        for (_, v) in samples {
            if *v < last {
                result += last;
            }
            last = *v;
        }
    }
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let average_gap = sampled / (samples.len() - 1) as f64;
    if counter && result > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average_gap * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average_gap / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average_gap / 2.0
    };
    result *= interval / sampled;
    if per_second {
        result /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result)
}

fn instant_change(samples: &[(i64, f64)], per_second: bool) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (last_t, last_v) = samples[samples.len() - 1];
    let (prev_t, prev_v) = samples[samples.len() - 2];
    let mut result = if per_second && last_v < prev_v {
        last_v
    } else {
        last_v - prev_v
    };
    let gap = last_t - prev_t;
    if gap == 0 {
        return None;
    }
    if per_second {
        result /= gap as f64 / 1000.0;
    }
    Some(result)
}

fn linear_regression(samples: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let first = samples[0].1;
    if samples.iter().all(|(_, v)| *v == first) {
        if first.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, first);
    }
    let n = samples.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sx2) = (0.0, 0.0, 0.0, 0.0);
    for (t, v) in samples {
        let x = (t - intercept_time) as f64 / 1000.0;
        sx += x;
        sy += v;
        sxy += x * v;
        sx2 += x * x;
    }
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let mut mean = 0.0;
    for (i, v) in values.enumerate() {
        let count = (i + 1) as f64;
        mean += v / count - mean / count;
    }
    mean
}

fn variance(samples: &[(i64, f64)]) -> f64 {
    let (mut m, mut acc) = (0.0, 0.0);
    for (i, (_, v)) in samples.iter().enumerate() {
        let delta = v - m;
        m += delta / (i + 1) as f64;
        acc += delta * (v - m);
    }
    acc / samples.len() as f64
}

/// The labels `absent()` gives its 1: the equality matchers of a plain selector.
fn absent_labels(expr: &Expr) -> Labels {
    let vs = match expr {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::new(),
    };
    let mut labels = Labels::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for m in &vs.matchers.matchers {
        *seen.entry(m.name.as_str()).or_default() += 1;
    }
    for m in &vs.matchers.matchers {
        if m.name != NAME
            && matches!(m.op, promql_parser::label::MatchOp::Equal)
            && seen.get(m.name.as_str()) == Some(&1)
        {
            labels.insert(m.name.clone(), m.value.clone());
        }
    }
    labels
}

#[derive(Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

/// Prometheus's quantile of classic histogram buckets (cumulative counts by upper bound).
fn bucket_quantile(q: f64, mut buckets: Vec<Bucket>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.upper.total_cmp(&b.upper));
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal bounds, then make counts monotonic.
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => merged.push(b),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.count > max {
            max = b.count;
        } else if b.count < max {
            b.count = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|x| x.count < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].upper;
    }
    if b == 0 && merged[0].upper <= 0.0 {
        return merged[0].upper;
    }
    let end = merged[b].upper;
    let mut count = merged[b].count;
    let mut start = 0.0;
    if b > 0 {
        start = merged[b - 1].upper;
        count -= merged[b - 1].count;
        rank -= merged[b - 1].count;
    }
    start + (end - start) * (rank / count)
}

fn histogram_quantile(q: f64, input: Vec<Sample>, t: i64) -> Value {
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, (Labels, Vec<Bucket>)> = HashMap::new();
    for s in input {
        let Some(upper) = s.labels.get("le").and_then(|le| parse_le(le)) else {
            continue;
        };
        let mut key = s.labels.clone();
        key.remove("le");
        let entry = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            let mut labels = key;
            labels.remove(NAME);
            (labels, Vec::new())
        });
        entry.1.push(Bucket {
            upper,
            count: s.value,
        });
    }
    Value::Vector(
        order
            .into_iter()
            .filter_map(|k| groups.remove(&k))
            .map(|(labels, buckets)| Sample {
                labels,
                t,
                value: bucket_quantile(q, buckets),
            })
            .collect(),
    )
}

fn parse_le(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn date_part(samples: Vec<Sample>, f: impl Fn(DateTime<chrono::Utc>) -> f64) -> Value {
    map_values(samples, |v| {
        let secs = v.floor();
        DateTime::from_timestamp(secs as i64, 0)
            .map(&f)
            .unwrap_or(f64::NAN)
    })
}

fn string_arg(ev: &Evaluator<'_>, expr: &Expr, t: i64) -> Result<String> {
    match ev.arg(expr, t)? {
        Value::String(s) => Ok(s),
        other => Err(EvalError::BadData(format!(
            "expected string, got {}",
            other.type_name()
        ))),
    }
}

/// Evaluates a call of function `name`.
pub fn call(ev: &Evaluator<'_>, name: &str, args: &[&Expr], t: i64) -> Result<Value> {
    let vector_arg = |i: usize| ev.arg_vector(args[i], t);
    let time_vector = || -> Result<Vec<Sample>> {
        if args.is_empty() {
            Ok(vec![Sample {
                labels: Labels::new(),
                t,
                value: t as f64 / 1000.0,
            }])
        } else {
            vector_arg(0)
        }
    };
    match name {
        "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
        "vector" => {
            let v = ev.arg_scalar(args[0], t)?;
            Ok(Value::Vector(vec![Sample {
                labels: Labels::new(),
                t,
                value: v,
            }]))
        }
        "scalar" => {
            let v = vector_arg(0)?;
            Ok(Value::Scalar(if v.len() == 1 {
                v[0].value
            } else {
                f64::NAN
            }))
        }
        "abs" => Ok(map_values(vector_arg(0)?, f64::abs)),
        "ceil" => Ok(map_values(vector_arg(0)?, f64::ceil)),
        "floor" => Ok(map_values(vector_arg(0)?, f64::floor)),
        "exp" => Ok(map_values(vector_arg(0)?, f64::exp)),
        "sqrt" => Ok(map_values(vector_arg(0)?, f64::sqrt)),
        "ln" => Ok(map_values(vector_arg(0)?, f64::ln)),
        "log2" => Ok(map_values(vector_arg(0)?, f64::log2)),
        "log10" => Ok(map_values(vector_arg(0)?, f64::log10)),
        "sgn" => Ok(map_values(vector_arg(0)?, |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        })),
        "round" => {
            arity(name, args, 1, 2)?;
            let to = if args.len() == 2 {
                ev.arg_scalar(args[1], t)?
            } else {
                1.0
            };
            let inverse = 1.0 / to;
            Ok(map_values(vector_arg(0)?, move |v| {
                (v * inverse + 0.5).floor() / inverse
            }))
        }
        "clamp" => {
            let (lo, hi) = (ev.arg_scalar(args[1], t)?, ev.arg_scalar(args[2], t)?);
            if hi < lo {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(map_values(vector_arg(0)?, move |v| v.max(lo).min(hi)))
        }
        "clamp_min" => {
            let lo = ev.arg_scalar(args[1], t)?;
            Ok(map_values(vector_arg(0)?, move |v| v.max(lo)))
        }
        "clamp_max" => {
            let hi = ev.arg_scalar(args[1], t)?;
            Ok(map_values(vector_arg(0)?, move |v| v.min(hi)))
        }
        "timestamp" => Ok(Value::Vector(
            vector_arg(0)?
                .into_iter()
                .map(|s| Sample {
                    labels: without_name(&s.labels),
                    t,
                    value: s.t as f64 / 1000.0,
                })
                .collect(),
        )),
        "absent" => {
            let v = vector_arg(0)?;
            Ok(Value::Vector(if v.is_empty() {
                vec![Sample {
                    labels: absent_labels(args[0]),
                    t,
                    value: 1.0,
                }]
            } else {
                Vec::new()
            }))
        }
        "absent_over_time" => {
            let (series, _, _) = ev.arg_matrix(args[0], t)?;
            Ok(Value::Vector(if series.is_empty() {
                vec![Sample {
                    labels: absent_labels(args[0]),
                    t,
                    value: 1.0,
                }]
            } else {
                Vec::new()
            }))
        }
        "sort" | "sort_desc" => {
            let mut v = vector_arg(0)?;
            v.sort_by(|a, b| {
                if name == "sort" {
                    a.value.total_cmp(&b.value)
                } else {
                    b.value.total_cmp(&a.value)
                }
            });
            Ok(Value::Vector(v))
        }
        "label_replace" => {
            let v = vector_arg(0)?;
            let dst = string_arg(ev, args[1], t)?;
            let replacement = string_arg(ev, args[2], t)?;
            let src = string_arg(ev, args[3], t)?;
            let pattern = string_arg(ev, args[4], t)?;
            let re = Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| {
                EvalError::BadData(format!(
                    "invalid regular expression in label_replace(): {e}"
                ))
            })?;
            if !super::names::sanitize(&dst, true).eq(&dst) {
                return Err(EvalError::BadData(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            Ok(Value::Vector(
                v.into_iter()
                    .map(|mut s| {
                        let value = s.labels.get(&src).cloned().unwrap_or_default();
                        if let Some(caps) = re.captures(&value) {
                            let mut out = String::new();
                            caps.expand(&replacement, &mut out);
                            if out.is_empty() {
                                s.labels.remove(&dst);
                            } else {
                                s.labels.insert(dst.clone(), out);
                            }
                        }
                        s
                    })
                    .collect(),
            ))
        }
        "label_join" => {
            let v = vector_arg(0)?;
            let dst = string_arg(ev, args[1], t)?;
            let sep = string_arg(ev, args[2], t)?;
            let mut sources = Vec::new();
            for a in &args[3..] {
                sources.push(string_arg(ev, a, t)?);
            }
            Ok(Value::Vector(
                v.into_iter()
                    .map(|mut s| {
                        let joined: Vec<String> = sources
                            .iter()
                            .map(|k| s.labels.get(k).cloned().unwrap_or_default())
                            .collect();
                        let joined = joined.join(&sep);
                        if joined.is_empty() {
                            s.labels.remove(&dst);
                        } else {
                            s.labels.insert(dst.clone(), joined);
                        }
                        s
                    })
                    .collect(),
            ))
        }
        "histogram_quantile" => {
            let q = ev.arg_scalar(args[0], t)?;
            Ok(histogram_quantile(q, vector_arg(1)?, t))
        }
        "minute" => Ok(date_part(time_vector()?, |d| d.minute() as f64)),
        "hour" => Ok(date_part(time_vector()?, |d| d.hour() as f64)),
        "day_of_week" => Ok(date_part(time_vector()?, |d| {
            d.weekday().num_days_from_sunday() as f64
        })),
        "day_of_month" => Ok(date_part(time_vector()?, |d| d.day() as f64)),
        "day_of_year" => Ok(date_part(time_vector()?, |d| d.ordinal() as f64)),
        "month" => Ok(date_part(time_vector()?, |d| d.month() as f64)),
        "year" => Ok(date_part(time_vector()?, |d| d.year() as f64)),
        "days_in_month" => Ok(date_part(time_vector()?, |d| {
            let (y, m) = (d.year(), d.month());
            let next = if m == 12 {
                chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
            };
            next.and_then(|n| n.pred_opt())
                .map(|last| last.day() as f64)
                .unwrap_or(f64::NAN)
        })),
        _ => range_function(ev, name, args, t),
    }
}

fn range_function(ev: &Evaluator<'_>, name: &str, args: &[&Expr], t: i64) -> Result<Value> {
    // quantile_over_time takes the quantile first.
    let (q, matrix_arg) = if name == "quantile_over_time" {
        (Some(ev.arg_scalar(args[0], t)?), args[1])
    } else if name == "predict_linear" {
        (Some(ev.arg_scalar(args[1], t)?), args[0])
    } else {
        match args.first() {
            Some(a) => (None, *a),
            None => {
                return Err(EvalError::BadData(format!(
                    "function {name} is not supported by Lakescope yet"
                )));
            }
        }
    };
    let known = [
        "rate",
        "increase",
        "delta",
        "irate",
        "idelta",
        "deriv",
        "predict_linear",
        "changes",
        "resets",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "present_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "quantile_over_time",
    ];
    if !known.contains(&name) {
        return Err(EvalError::BadData(format!(
            "function {name} is not supported by Lakescope yet"
        )));
    }
    let (series, from, to) = ev.arg_matrix(matrix_arg, t)?;
    Ok(match name {
        "rate" => over_range(series, t, false, |s| extrapolated(s, from, to, true, true)),
        "increase" => over_range(series, t, false, |s| extrapolated(s, from, to, true, false)),
        "delta" => over_range(series, t, false, |s| {
            extrapolated(s, from, to, false, false)
        }),
        "irate" => over_range(series, t, false, |s| instant_change(s, true)),
        "idelta" => over_range(series, t, false, |s| instant_change(s, false)),
        "deriv" => over_range(series, t, false, |s| {
            (s.len() >= 2).then(|| linear_regression(s, s[0].0).0)
        }),
        "predict_linear" => {
            let seconds = q.unwrap_or(0.0);
            over_range(series, t, false, |s| {
                (s.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(s, t);
                    slope * seconds + intercept
                })
            })
        }
        "changes" => over_range(series, t, false, |s| {
            Some(
                s.windows(2)
                    .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
                    .count() as f64,
            )
        }),
        "resets" => over_range(series, t, false, |s| {
            Some(s.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64)
        }),
        "avg_over_time" => over_range(series, t, false, |s| Some(mean(s.iter().map(|x| x.1)))),
        "sum_over_time" => over_range(series, t, false, |s| Some(s.iter().map(|x| x.1).sum())),
        "count_over_time" => over_range(series, t, false, |s| Some(s.len() as f64)),
        "present_over_time" => over_range(series, t, false, |_| Some(1.0)),
        "last_over_time" => over_range(series, t, true, |s| s.last().map(|x| x.1)),
        "min_over_time" => over_range(series, t, false, |s| {
            let mut m = s[0].1;
            for (_, v) in &s[1..] {
                if *v < m || m.is_nan() {
                    m = *v;
                }
            }
            Some(m)
        }),
        "max_over_time" => over_range(series, t, false, |s| {
            let mut m = s[0].1;
            for (_, v) in &s[1..] {
                if *v > m || m.is_nan() {
                    m = *v;
                }
            }
            Some(m)
        }),
        "stddev_over_time" => over_range(series, t, false, |s| Some(variance(s).sqrt())),
        "stdvar_over_time" => over_range(series, t, false, |s| Some(variance(s))),
        "quantile_over_time" => {
            let q = q.unwrap_or(f64::NAN);
            over_range(series, t, false, |s| {
                let mut v: Vec<f64> = s.iter().map(|x| x.1).collect();
                Some(quantile(q, &mut v))
            })
        }
        _ => unreachable!("checked against the list above"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(upper: f64, count: f64) -> Bucket {
        Bucket { upper, count }
    }

    #[test]
    fn bucket_quantile_interpolates_like_prometheus() {
        let buckets = vec![
            b(0.1, 10.0),
            b(0.5, 60.0),
            b(1.0, 90.0),
            b(f64::INFINITY, 100.0),
        ];
        // rank 50 falls in (0.1, 0.5]: 0.1 + 0.4 * 40/50.
        assert!((bucket_quantile(0.5, buckets.clone()) - 0.42).abs() < 1e-12);
        // Rank in the +Inf bucket: the highest finite bound.
        assert_eq!(bucket_quantile(0.99, buckets.clone()), 1.0);
        assert!(bucket_quantile(0.5, vec![b(1.0, 5.0)]).is_nan());
        assert_eq!(bucket_quantile(-1.0, buckets), f64::NEG_INFINITY);
    }

    #[test]
    fn rate_extrapolates_to_the_range_edges() {
        // A counter growing 1 per second sampled every 15 s over [0, 60 s].
        let samples: Vec<(i64, f64)> = (1..=4)
            .map(|i| (i * 15_000, 100.0 + 15.0 * i as f64))
            .collect();
        let r = extrapolated(&samples, 0, 60_000, true, true).unwrap();
        assert!((r - 1.0).abs() < 1e-12, "{r}");
        // A reset adds the value before it back.
        let reset = [(0, 10.0), (15_000, 20.0), (30_000, 5.0)];
        let inc = extrapolated(&reset, 0, 30_000, true, false).unwrap();
        // 10 → 20, then a restart that counted 5: 15 in all.
        assert!((inc - 15.0).abs() < 1e-12, "{inc}");
    }
}
