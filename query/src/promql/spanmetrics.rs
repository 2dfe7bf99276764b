//! RED metrics derived from the stored spans at query time, in the shape of Tempo's metrics
//! generator, so rules written for it run unchanged and no second copy can drift from the spans:
//!
//! - `traces_spanmetrics_calls_total{service, span_name, span_kind, status_code}`
//! - `traces_spanmetrics_latency_bucket{…, le}`, `_sum`, `_count` (seconds)
//! - `traces_service_graph_request_total{client, server, connection_type}`
//! - `traces_service_graph_request_failed_total{…}` (the caller's span has status ERROR, as the
//!   dependencies view counts errors)
//! - `traces_service_graph_request_client_seconds_bucket{…, le}`, `_sum`, `_count` (the caller's
//!   duration) and `traces_service_graph_request_server_seconds_*` (the callee's, service → service
//!   edges only)
//!
//! They are counters sampled every [`TICK_MS`] (15 s) at multiples of 15 s: the sample at `T`
//! counts the spans (for the service graph: the calls, by the caller's start) that started in
//! `[hour start, T)`; each counter restarts at the top of every hour (a counter reset, which
//! `rate` and `increase` handle), so a sample never needs more than the current hour's spans.
//! A tick is published once it has passed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::TimestampNanosecondType;
use promql_parser::parser::VectorSelector;

use super::eval::selects;
use super::names::format_float;
use super::store::{Collector, name_admits};
use super::value::{Labels, NAME};
use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::summaries::SummaryCache;
use crate::time_range::TimeRange;
use crate::views::dependencies::{CLOCK_SKEW, calls_cte};
use crate::views::rollup::{self, Kind, Name, Names, Rollup};
use crate::views::rows;

/// The sampling interval of the span-derived counters.
pub const TICK_MS: i64 = 15_000;
const HOUR_MS: i64 = 3_600_000;

/// Bucket upper bounds in seconds (Tempo's defaults); `+Inf` is added.
pub const BOUNDS: [f64; 14] = [
    0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
    16.384,
];

pub const CALLS: &str = "traces_spanmetrics_calls_total";
pub const LATENCY: &str = "traces_spanmetrics_latency";
pub const GRAPH_TOTAL: &str = "traces_service_graph_request_total";
pub const GRAPH_FAILED: &str = "traces_service_graph_request_failed_total";
pub const GRAPH_CLIENT: &str = "traces_service_graph_request_client_seconds";
pub const GRAPH_SERVER: &str = "traces_service_graph_request_server_seconds";

/// Every series name, with its type and help for `/api/v1/metadata`.
pub const FAMILIES: [(&str, &str, &str); 6] = [
    (
        CALLS,
        "counter",
        "Spans by service, span name, kind and status (derived from the stored spans).",
    ),
    (
        LATENCY,
        "histogram",
        "Span durations in seconds (derived from the stored spans).",
    ),
    (
        GRAPH_TOTAL,
        "counter",
        "Calls between a client and a server (derived from the stored spans).",
    ),
    (
        GRAPH_FAILED,
        "counter",
        "Calls whose client span failed (derived from the stored spans).",
    ),
    (
        GRAPH_CLIENT,
        "histogram",
        "Call durations seen by the client, in seconds (derived from the stored spans).",
    ),
    (
        GRAPH_SERVER,
        "histogram",
        "Call durations seen by the server, in seconds (derived from the stored spans).",
    ),
];

/// The series names of the span-derived families.
pub fn series_names() -> Vec<String> {
    let mut out = Vec::new();
    for (name, kind, _) in FAMILIES {
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                out.push(format!("{name}{suffix}"));
            }
        } else {
            out.push(name.to_owned());
        }
    }
    out
}

fn admits_any(vs: &VectorSelector, names: &[&str]) -> bool {
    names.iter().any(|n| name_admits(vs, n))
}

/// `count(*) FILTER (...)` for every bucket of `column` (nanoseconds), cumulative.
fn bucket_columns(column: &str, prefix: &str) -> String {
    BOUNDS
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let ns = (b * 1e9).round() as i64;
            format!(", count(*) FILTER (WHERE {column} <= {ns}) AS {prefix}{i}")
        })
        .collect()
}

/// Per series: per 15-second bin (start, ms): the count, the errors, the sum of durations (ns)
/// and the cumulative bucket counts.
#[derive(Debug, Default, Clone)]
struct Bin {
    count: f64,
    failed: f64,
    sum_ns: f64,
    buckets: [f64; 14],
}

impl Bin {
    fn add(&mut self, other: &Bin) {
        self.count += other.count;
        self.failed += other.failed;
        self.sum_ns += other.sum_ns;
        for (b, o) in self.buckets.iter_mut().zip(other.buckets) {
            *b += o;
        }
    }
}

/// One 15-second bin of one `traces_spanmetrics_*` series, as kept in the per-file rollups.
#[derive(Debug)]
pub struct MetricRow {
    start_ms: i64,
    service: Name,
    span_name: Name,
    kind: Name,
    status: Name,
    bin: Bin,
}

/// The rollup behind `traces_spanmetrics_*`: per 15-second bin, service, span name, kind and
/// status, the spans' count, errors, sum of durations and bucket counts. The rules ask for the
/// current hour every evaluation; summed from per-file rollups, that no longer reads the hour's
/// spans again each time.
pub struct SpanMetrics;

impl Kind for SpanMetrics {
    type Row = MetricRow;
    const NAME: &'static str = "spanmetrics";
    const KEYS: &'static [&'static str] = &[
        "service_name",
        "span_name",
        "span_kind",
        "status_code",
        "bin",
    ];

    fn cache(engine: &QueryEngine) -> &Arc<SummaryCache<Rollup<MetricRow>>> {
        &engine.span_rollups
    }

    fn sql(filter: &str) -> String {
        format!(
            "SELECT service_name, name AS span_name, span_kind, status_code, \
             date_bin(INTERVAL '15 seconds', start_time, TIMESTAMP '1970-01-01T00:00:00Z') AS bin, \
             count(*) AS count, count(*) FILTER (WHERE status_code = 'ERROR') AS failed, \
             sum(duration_ns) AS sum_ns{} \
             FROM spans WHERE true {filter} GROUP BY 1, 2, 3, 4, 5",
            bucket_columns("duration_ns", "b")
        )
    }

    fn decode(
        batches: &[datafusion::arrow::array::RecordBatch],
    ) -> Result<Vec<MetricRow>, QueryError> {
        let mut names = Names::default();
        let mut out = Vec::new();
        for batch in batches {
            let service = rows::strings(batch, "service_name")?;
            let name = rows::strings(batch, "span_name")?;
            let kind = rows::strings(batch, "span_kind")?;
            let status = rows::strings(batch, "status_code")?;
            for (row, (start_ms, bin)) in bins_of(batch, "")?.into_iter().enumerate() {
                out.push(MetricRow {
                    start_ms,
                    service: names.get(service.value(row)),
                    span_name: names.get(name.value(row)),
                    kind: names.get(kind.value(row)),
                    status: names.get(status.value(row)),
                    bin,
                });
            }
        }
        Ok(out)
    }

    fn slot(row: &MetricRow) -> i64 {
        row.start_ms.div_euclid(TICK_MS)
    }

    fn service(row: &MetricRow) -> &str {
        &row.service
    }

    fn row_bytes(row: &MetricRow) -> usize {
        let _ = row;
        std::mem::size_of::<MetricRow>()
    }
}

/// The series of one label set a selector asks for, each with the field it reads.
type Wanted = Vec<(Labels, usize)>;

/// Samples at every tick of each hour that has spans, for the families a selector asks for.
struct Emitter<'a> {
    vs: &'a VectorSelector,
    from: i64,
    to: i64,
}

impl Emitter<'_> {
    /// The series of one label set the selector asks for, each with what it reads from a
    /// running total: 0 count, 1 failed, 2 sum, 3+i bucket i (the `+Inf` bucket is the count).
    fn wanted(
        &self,
        labels: &Labels,
        counter_names: &[(&str, bool)],
        histogram: Option<&str>,
    ) -> Wanted {
        let named = |name: String| {
            let mut l = labels.clone();
            l.insert(NAME.into(), name);
            l
        };
        let mut wanted = Wanted::new();
        for (name, failed) in counter_names {
            let l = named((*name).to_owned());
            if selects(self.vs, &l) {
                wanted.push((l, if *failed { 1 } else { 0 }));
            }
        }
        if let Some(h) = histogram {
            for (suffix, field) in [("_count", 0), ("_sum", 2)] {
                let l = named(format!("{h}{suffix}"));
                if selects(self.vs, &l) {
                    wanted.push((l, field));
                }
            }
            for i in 0..=BOUNDS.len() {
                let mut l = named(format!("{h}_bucket"));
                let le = BOUNDS.get(i).copied().unwrap_or(f64::INFINITY);
                l.insert("le".into(), format_float(le));
                if selects(self.vs, &l) {
                    wanted.push((l, if i == BOUNDS.len() { 0 } else { 3 + i }));
                }
            }
        }
        wanted
    }

    /// How many samples [`Self::emit`] gives each series over `bins`: the ticks within
    /// `[from, to]` of every hour with data. Counted first so a query over too many series
    /// is refused before any sample is built.
    fn ticks(&self, bins: &BTreeMap<i64, Bin>) -> usize {
        hours(bins)
            .into_iter()
            .map(|hour| {
                let lo = (hour + TICK_MS).max(self.from);
                let hi = (hour + HOUR_MS).min(self.to);
                let first = lo.div_euclid(TICK_MS) + i64::from(lo.rem_euclid(TICK_MS) != 0);
                usize::try_from(hi.div_euclid(TICK_MS) - first + 1).unwrap_or(0)
            })
            .sum()
    }

    /// Per hour with data: ticks H+15 s … H+1 h, each the running total from H.
    fn emit(
        &self,
        out: &mut Collector,
        wanted: Wanted,
        bins: &BTreeMap<i64, Bin>,
    ) -> Result<(), QueryError> {
        if wanted.is_empty() {
            return Ok(());
        }
        let mut samples: Vec<Vec<(i64, f64)>> = vec![Vec::new(); wanted.len()];
        for hour in hours(bins) {
            let mut total = Bin::default();
            let mut in_hour = bins.range(hour..hour + HOUR_MS).peekable();
            let mut tick = hour + TICK_MS;
            while tick <= hour + HOUR_MS && tick <= self.to {
                while let Some((start, bin)) = in_hour.peek() {
                    if **start >= tick {
                        break;
                    }
                    total.add(bin);
                    in_hour.next();
                }
                if tick >= self.from {
                    for ((_, field), series) in wanted.iter().zip(&mut samples) {
                        let v = match field {
                            0 => total.count,
                            1 => total.failed,
                            2 => total.sum_ns / 1e9,
                            i => total.buckets[i - 3],
                        };
                        series.push((tick, v));
                    }
                }
                tick += TICK_MS;
            }
        }
        for ((labels, _), series) in wanted.into_iter().zip(samples) {
            out.extend(labels, series)?;
        }
        Ok(())
    }
}

/// The hours (their starts, ms) `bins` has data in, ascending.
fn hours(bins: &BTreeMap<i64, Bin>) -> Vec<i64> {
    let mut hours: Vec<i64> = bins
        .keys()
        .map(|b| b.div_euclid(HOUR_MS) * HOUR_MS)
        .collect();
    hours.dedup();
    hours
}

/// Emits every planned series once all of them are known to fit: a selector over tens of
/// thousands of span names is refused at once instead of after building millions of samples.
async fn emit_all(
    emitter: &Emitter<'_>,
    out: &mut Collector,
    plans: Vec<(Wanted, &BTreeMap<i64, Bin>)>,
) -> Result<(), QueryError> {
    let needed = plans
        .iter()
        .map(|(wanted, bins)| wanted.len().saturating_mul(emitter.ticks(bins)))
        .fold(0usize, usize::saturating_add);
    out.fits(needed)?;
    for (wanted, bins) in plans {
        emitter.emit(out, wanted, bins)?;
        // Many series are CPU work without an await: let a shutdown or a timeout in between.
        tokio::task::coop::consume_budget().await;
    }
    Ok(())
}

fn tempo_kind(kind: &str) -> String {
    format!("SPAN_KIND_{kind}")
}

fn tempo_status(status: &str) -> String {
    format!("STATUS_CODE_{status}")
}

fn connection_type(kind: &str) -> &'static str {
    match kind {
        "service" => "",
        "queue" => "messaging_system",
        "database" | "cache" => "database",
        _ => "virtual_node",
    }
}

fn float_col(
    batch: &datafusion::arrow::array::RecordBatch,
    name: &str,
) -> Result<Vec<f64>, QueryError> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| QueryError::Execution(format!("span metrics: {name}")))?;
    let c = datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Float64)
        .map_err(|e| QueryError::Execution(e.to_string()))?;
    let f = c.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    Ok((0..f.len())
        .map(|i| if f.is_null(i) { 0.0 } else { f.value(i) })
        .collect())
}

/// Each row's bin: its start (ms) and its numbers, from the columns named with `prefix`.
fn bins_of(
    batch: &datafusion::arrow::array::RecordBatch,
    prefix: &str,
) -> Result<Vec<(i64, Bin)>, QueryError> {
    let bin = batch
        .column_by_name("bin")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| QueryError::Execution("span metrics: bin".into()))?;
    let count = float_col(batch, &format!("{prefix}count"))?;
    let failed = float_col(batch, &format!("{prefix}failed"))?;
    let sum = float_col(batch, &format!("{prefix}sum_ns"))?;
    let mut out: Vec<(i64, Bin)> = (0..bin.len())
        .map(|row| {
            (
                bin.value(row).div_euclid(1_000_000),
                Bin {
                    count: count[row],
                    failed: failed[row],
                    sum_ns: sum[row],
                    buckets: [0.0; 14],
                },
            )
        })
        .collect();
    for i in 0..BOUNDS.len() {
        let col = float_col(batch, &format!("{prefix}b{i}"))?;
        for ((_, b), v) in out.iter_mut().zip(col) {
            b.buckets[i] = v;
        }
    }
    Ok(out)
}

/// Loads the span-derived series `vs` selects, sampled at ticks in `[from, to]` (ms).
pub async fn load(
    engine: &QueryEngine,
    vs: &VectorSelector,
    from: i64,
    to: i64,
    out: &mut Collector,
) -> Result<(), QueryError> {
    let to = to.min(crate::time_range::now_nanos() / 1_000_000);
    if to < from {
        return Ok(());
    }
    let hour_start = from.div_euclid(HOUR_MS) * HOUR_MS;
    let emitter = Emitter { vs, from, to };
    let (span_from, span_to) = (hour_start * 1_000_000, to * 1_000_000);
    let latency = [
        format!("{LATENCY}_bucket"),
        format!("{LATENCY}_sum"),
        format!("{LATENCY}_count"),
    ];
    let latency_refs: Vec<&str> = latency.iter().map(String::as_str).collect();
    if admits_any(vs, &[CALLS]) || admits_any(vs, &latency_refs) {
        let mut series: HashMap<[Name; 4], BTreeMap<i64, Bin>> = HashMap::new();
        let mut add = |r: &MetricRow| {
            let key = [&r.service, &r.span_name, &r.kind, &r.status].map(Arc::clone);
            series
                .entry(key)
                .or_default()
                .entry(r.start_ms)
                .or_default()
                .add(&r.bin);
        };
        let range = TimeRange {
            start: span_from,
            end: span_to,
        };
        // Summed from the per-file rollups when they are made, else aggregated here.
        if !rollup::visit_kind::<SpanMetrics>(engine, range, None, &mut add).await? {
            let sql = SpanMetrics::sql("AND start_time >= $1 AND start_time < $2");
            let rows_of = engine
                .query(&sql, vec![timestamp(span_from), timestamp(span_to)])
                .await?;
            SpanMetrics::decode(&rows_of.batches)?
                .iter()
                .for_each(&mut add);
        }
        let mut plans = Vec::new();
        for ([service, name, kind, status], bins) in &series {
            let labels = Labels::from([
                ("service".to_owned(), service.to_string()),
                ("span_name".to_owned(), name.to_string()),
                ("span_kind".to_owned(), tempo_kind(kind)),
                ("status_code".to_owned(), tempo_status(status)),
            ]);
            plans.push((
                emitter.wanted(&labels, &[(CALLS, false)], Some(LATENCY)),
                bins,
            ));
        }
        emit_all(&emitter, out, plans).await?;
    }
    let graph: Vec<String> = [GRAPH_TOTAL, GRAPH_FAILED]
        .into_iter()
        .map(str::to_owned)
        .chain(
            [GRAPH_CLIENT, GRAPH_SERVER]
                .into_iter()
                .flat_map(|h| ["_bucket", "_sum", "_count"].map(|s| format!("{h}{s}"))),
        )
        .collect();
    let graph_refs: Vec<&str> = graph.iter().map(String::as_str).collect();
    if admits_any(vs, &graph_refs) {
        let sql = format!(
            "{} SELECT source, target, target_kind, \
             date_bin(INTERVAL '15 seconds', caller_start, TIMESTAMP '1970-01-01T00:00:00Z') AS bin, \
             count(*) AS c_count, count(*) FILTER (WHERE caller_status = 'ERROR') AS c_failed, \
             sum(caller_ns) AS c_sum_ns{}, \
             count(callee) AS s_count, count(*) FILTER (WHERE callee_status = 'ERROR') AS s_failed, \
             sum(callee_ns) AS s_sum_ns{} \
             FROM calls WHERE target IS NOT NULL AND (callee IS NULL OR callee <> source) \
             GROUP BY 1, 2, 3, 4",
            calls_cte!(),
            bucket_columns("caller_ns", "c_b"),
            bucket_columns("callee_ns", "s_b"),
        );
        let rows_of = engine
            .query(
                &sql,
                vec![
                    timestamp(span_from),
                    timestamp(span_to),
                    timestamp(span_from.saturating_sub(CLOCK_SKEW)),
                    timestamp(span_to.saturating_add(CLOCK_SKEW)),
                ],
            )
            .await?;
        let mut client: HashMap<Labels, BTreeMap<i64, Bin>> = HashMap::new();
        let mut server: HashMap<Labels, BTreeMap<i64, Bin>> = HashMap::new();
        for batch in &rows_of.batches {
            let source = rows::strings(batch, "source")?;
            let target = rows::strings(batch, "target")?;
            let kind = rows::strings(batch, "target_kind")?;
            let c = bins_of(batch, "c_")?;
            let s = bins_of(batch, "s_")?;
            for (row, ((start, caller), (_, callee))) in c.into_iter().zip(s).enumerate() {
                let labels = Labels::from([
                    ("client".to_owned(), source.value(row).to_owned()),
                    ("server".to_owned(), target.value(row).to_owned()),
                    (
                        "connection_type".to_owned(),
                        connection_type(kind.value(row)).to_owned(),
                    ),
                ]);
                client
                    .entry(labels.clone())
                    .or_default()
                    .insert(start, caller);
                if kind.value(row) == "service" {
                    server.entry(labels).or_default().insert(start, callee);
                }
            }
        }
        let mut plans = Vec::new();
        for (labels, bins) in &client {
            let counters = [(GRAPH_TOTAL, false), (GRAPH_FAILED, true)];
            plans.push((emitter.wanted(labels, &counters, Some(GRAPH_CLIENT)), bins));
        }
        for (labels, bins) in &server {
            plans.push((emitter.wanted(labels, &[], Some(GRAPH_SERVER)), bins));
        }
        emit_all(&emitter, out, plans).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::store::MAX_SAMPLES;
    use super::*;
    use crate::QueryLimits;
    use crate::views::rollup::{summarise_all, visit_kind};
    use crate::views::test_fleet::{Dice, MINUTE as M, T, fleet, write_parts};

    fn engine(lake: &lakescope_collector::Lake, rollup_cache_bytes: usize) -> QueryEngine {
        let limits = QueryLimits {
            rollup_cache_bytes,
            ..QueryLimits::default()
        };
        QueryEngine::new(lake, limits).unwrap()
    }

    fn selector(query: &str) -> VectorSelector {
        match promql_parser::parser::parse(query).unwrap() {
            promql_parser::parser::Expr::VectorSelector(vs) => vs,
            other => panic!("{other:?}"),
        }
    }

    /// Bins at 0:00:07, 0:59:59 and 2:00:00 of some day: two hours with data, one without.
    fn bins_over_two_hours() -> BTreeMap<i64, Bin> {
        let day = 1_780_000_000_000i64.div_euclid(24 * HOUR_MS) * 24 * HOUR_MS;
        // One span of under 2 ms: in every bucket.
        let one = Bin {
            count: 1.0,
            buckets: [1.0; 14],
            ..Bin::default()
        };
        [7_000, HOUR_MS - 1_000, 2 * HOUR_MS]
            .into_iter()
            .map(|t| (day + t, one.clone()))
            .collect()
    }

    /// The count taken before emitting is the number of samples emitted, for windows that
    /// start and end on and off ticks, before, inside and across the hours with data.
    #[test]
    fn the_samples_counted_ahead_are_those_emitted() {
        let bins = bins_over_two_hours();
        let day = *bins.keys().next().unwrap() - 7_000;
        let vs = selector("traces_spanmetrics_calls_total");
        let labels = Labels::from([("service".to_owned(), "a".to_owned())]);
        let mut checked = 0;
        for from in [
            -HOUR_MS,
            0,
            1,
            14_999,
            15_000,
            1_800_001,
            HOUR_MS,
            2 * HOUR_MS + 3,
        ] {
            for to in [
                0,
                15_000,
                29_999,
                HOUR_MS,
                HOUR_MS + 1,
                3 * HOUR_MS,
                9 * HOUR_MS,
            ] {
                let emitter = Emitter {
                    vs: &vs,
                    from: day + from,
                    to: day + to,
                };
                let wanted = emitter.wanted(&labels, &[(CALLS, false)], None);
                assert_eq!(wanted.len(), 1);
                let mut out = Collector::default();
                emitter.emit(&mut out, wanted, &bins).unwrap();
                assert_eq!(out.samples, emitter.ticks(&bins), "from {from} to {to}");
                checked += usize::from(out.samples > 0);
            }
        }
        assert!(checked > 20, "{checked} windows had samples");
        // The whole first hour (240 ticks) and the third up to its end.
        let emitter = Emitter {
            vs: &vs,
            from: day,
            to: day + 9 * HOUR_MS,
        };
        assert_eq!(emitter.ticks(&bins), 480);
    }

    /// A selector whose series would pass the sample limit is refused before any is built.
    #[tokio::test]
    async fn too_many_samples_are_refused_before_any_is_built() {
        let bins = bins_over_two_hours();
        let day = *bins.keys().next().unwrap() - 7_000;
        let vs = selector("traces_spanmetrics_latency_bucket");
        let emitter = Emitter {
            vs: &vs,
            from: day,
            to: day + HOUR_MS,
        };
        let plans = |n: usize| -> Vec<_> {
            (0..n)
                .map(|i| {
                    let labels = Labels::from([("span_name".to_owned(), format!("op {i}"))]);
                    (emitter.wanted(&labels, &[], Some(LATENCY)), &bins)
                })
                .collect()
        };
        // 15 buckets × 240 ticks per series.
        let per_series = 15 * 240;
        let mut out = Collector {
            samples: MAX_SAMPLES - 3 * per_series,
            ..Collector::default()
        };
        let err = emit_all(&emitter, &mut out, plans(4)).await.unwrap_err();
        assert!(err.to_string().contains("too many samples"), "{err}");
        assert!(out.series.is_empty(), "{} series built", out.series.len());
        assert_eq!(out.samples, MAX_SAMPLES - 3 * per_series);
        emit_all(&emitter, &mut out, plans(3)).await.unwrap();
        assert_eq!(out.samples, MAX_SAMPLES);
        assert_eq!(out.series.len(), 45);
        // Each bucket's series counts the spans up to its tick: the last one both bins.
        let last = out.series.values().map(|s| s[s.len() - 1].1);
        assert!(last.into_iter().all(|v| v == 2.0));
    }

    /// The span-derived series summed from per-file rollups equal those aggregated from the
    /// spans, sample by sample, over files and partial bins at the edges of the range.
    #[tokio::test]
    async fn span_metrics_from_the_rollups_equal_those_from_the_spans() {
        let mut dice = Dice(0xbb67_ae85_84ca_a73b);
        let mut spans = fleet(&mut dice);
        for (_, span) in &mut spans {
            let by = dice.below(60_000) * 1_000_000;
            span.start_time_unix_nano += by;
            span.end_time_unix_nano += by;
        }
        let dir = tempfile::tempdir().unwrap();
        write_parts(dir.path(), spans, 3);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let rolled_up = engine(&lake, 64 << 20);
        let reference = engine(&lake, 0);
        summarise_all::<SpanMetrics>(&rolled_up).await;
        let ms = |ns: i64| ns / 1_000_000;
        let (start, end) = (ms(T - M), ms(T + 11 * M) + 7_001);
        let hour = start.div_euclid(HOUR_MS) * HOUR_MS * 1_000_000;
        let range = TimeRange {
            start: hour,
            end: end * 1_000_000,
        };
        assert!(
            visit_kind::<SpanMetrics>(&rolled_up, range, None, |_| {})
                .await
                .unwrap()
        );
        for query in [
            "traces_spanmetrics_calls_total",
            "traces_spanmetrics_latency_bucket",
            "sum by (service) (rate(traces_spanmetrics_calls_total{status_code=\"STATUS_CODE_ERROR\"}[5m]))",
            "histogram_quantile(0.99, sum by (service, le) (rate(traces_spanmetrics_latency_bucket[5m])))",
            "traces_spanmetrics_latency_sum",
        ] {
            for step in [15_000, 60_000, 7_000] {
                let sorted = |mut v: Vec<crate::promql::value::Series>| {
                    v.sort_by(|a, b| a.labels.cmp(&b.labels));
                    v
                };
                let ours = sorted(
                    crate::promql::range(&rolled_up, query, start, end, step)
                        .await
                        .unwrap(),
                );
                let theirs = sorted(
                    crate::promql::range(&reference, query, start, end, step)
                        .await
                        .unwrap(),
                );
                assert!(ours.len() >= 5, "{query}: {} series", ours.len());
                // Bit for bit: the same integer counts summed in another order (NaN where
                // a quantile has no requests, on both sides).
                let bits = |v: &[crate::promql::value::Series]| -> Vec<_> {
                    v.iter()
                        .map(|s| {
                            let samples: Vec<_> =
                                s.samples.iter().map(|(t, x)| (*t, x.to_bits())).collect();
                            (s.labels.clone(), samples)
                        })
                        .collect()
                };
                assert_eq!(bits(&ours), bits(&theirs), "{query} step {step}");
            }
        }
    }
}
