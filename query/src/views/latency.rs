//! Latency distributions: a histogram and a heatmap (histogram per time step) of a service's
//! requests (or of one operation, or of every service's entry spans), and the comparison of a
//! slow region against the rest.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use datafusion::common::ScalarValue;
use serde::Serialize;

use super::dependencies::CLOCK_SKEW;
use super::red::{ENTRY, Measure, ROOT, measure_of};
use super::rollup::{self, Kind, Name, Names, Rollup, SLOT};
use super::rows;
use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::summaries::SummaryCache;
use crate::time_range::TimeRange;
use crate::views::traces::rfc3339;

/// Upper bounds (inclusive, ms) of the histogram buckets; a last bucket holds the rest.
pub const BOUNDS_MS: [f64; 19] = [
    0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
    5000.0, 10000.0, 20000.0, 50000.0,
];

fn bucket_case() -> String {
    let mut sql = String::from("CASE");
    for (i, ms) in BOUNDS_MS.iter().enumerate() {
        sql.push_str(&format!(
            " WHEN duration_ns <= {} THEN {i}",
            (ms * 1e6) as i64
        ));
    }
    sql.push_str(&format!(" ELSE {} END", BOUNDS_MS.len()));
    sql
}

/// Which requests a latency view covers.
#[derive(Debug, Clone)]
pub struct Selection {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub range: TimeRange,
}

/// The SQL filter and parameters (from `$first`) of a selection, and the measure used.
async fn filter(
    engine: &QueryEngine,
    sel: &Selection,
    first: usize,
) -> Result<(String, Vec<ScalarValue>, Measure), QueryError> {
    let mut sql = "start_time >= $1 AND start_time < $2".to_owned();
    let mut params = Vec::new();
    let measure = match &sel.service {
        Some(service) => {
            params.push(ScalarValue::Utf8(Some(service.clone())));
            sql.push_str(&format!(" AND service_name = ${first}"));
            measure_of(engine, service, sel.range).await?
        }
        None => Measure::Entry,
    };
    sql.push_str(&format!(" AND {}", measure.predicate()));
    if let Some(op) = &sel.operation {
        params.push(ScalarValue::Utf8(Some(op.clone())));
        sql.push_str(&format!(" AND name = ${}", first + params.len() - 1));
    }
    Ok((sql, params, measure))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound in ms; `null` for the last, unbounded bucket.
    pub le_ms: Option<f64>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub measured_by: Measure,
    pub total: u64,
    pub histogram: Vec<Bucket>,
    pub step_seconds: f64,
    pub times: Vec<String>,
    /// `heatmap[t][b]`: requests that started in step `t` and fall in bucket `b`.
    pub heatmap: Vec<Vec<u64>>,
}

/// The latency rollup: per 15-second slot, service, operation and histogram bucket, how many
/// entry and how many root spans fell in it. Histograms are exact counts per fixed bucket,
/// which the RED rollup's sketches cannot give (a sketch's bins straddle the bucket bounds),
/// so they have a summary of their own.
pub struct Buckets;

/// One row of the latency rollup.
#[derive(Debug, Clone)]
pub struct BucketRow {
    pub slot: i64,
    pub service: Name,
    pub operation: Name,
    /// Index into [`BOUNDS_MS`] (its length for the last, unbounded bucket).
    pub bucket: usize,
    pub entry: u64,
    pub root: u64,
}

/// The latency rollups' per-file summaries.
pub type BucketCache = SummaryCache<Rollup<BucketRow>>;

impl Kind for Buckets {
    type Row = BucketRow;
    const NAME: &'static str = "latency";
    const KEYS: &'static [&'static str] = &["slot", "service_name", "operation", "b"];

    fn cache(engine: &QueryEngine) -> &Arc<BucketCache> {
        &engine.latency_rollups
    }

    fn sql(filter: &str) -> String {
        format!(
            "SELECT CAST(start_time AS BIGINT) / {SLOT} AS slot, service_name, \
               name AS operation, {} AS b, \
               count(*) FILTER (WHERE {ENTRY}) AS entry, count(*) FILTER (WHERE {ROOT}) AS root \
             FROM spans WHERE ({ENTRY} OR {ROOT}) {filter} \
             GROUP BY slot, service_name, operation, b",
            bucket_case()
        )
    }

    fn decode(batches: &[RecordBatch]) -> Result<Vec<BucketRow>, QueryError> {
        let mut names = Names::default();
        let mut out = Vec::new();
        for batch in batches {
            let slot = rows::ints(batch, "slot")?;
            let service = rows::strings(batch, "service_name")?;
            let operation = rows::strings(batch, "operation")?;
            let (b, entry, root) = (
                rows::ints(batch, "b")?,
                rows::ints(batch, "entry")?,
                rows::ints(batch, "root")?,
            );
            for row in 0..batch.num_rows() {
                let Ok(bucket) = usize::try_from(b.value(row)) else {
                    continue;
                };
                out.push(BucketRow {
                    slot: slot.value(row),
                    service: names.get(service.value(row)),
                    operation: names.get(operation.value(row)),
                    bucket: bucket.min(BOUNDS_MS.len()),
                    entry: rows::count(entry, row),
                    root: rows::count(root, row),
                });
            }
        }
        Ok(out)
    }

    fn slot(row: &BucketRow) -> i64 {
        row.slot
    }

    fn service(row: &BucketRow) -> &str {
        &row.service
    }

    fn row_bytes(_row: &BucketRow) -> usize {
        std::mem::size_of::<BucketRow>()
    }
}

pub async fn distribution(
    engine: &QueryEngine,
    sel: &Selection,
    step: i64,
) -> Result<Distribution, QueryError> {
    let steps = ((sel.range.end - sel.range.start + step - 1) / step).max(1) as usize;
    let width = BOUNDS_MS.len() + 1;
    let mut heatmap = vec![vec![0u64; width]; steps];
    let measure = match rolled_up(engine, sel, step, &mut heatmap).await? {
        Some(measure) => measure,
        None => scanned(engine, sel, step, &mut heatmap).await?,
    };
    let histogram: Vec<Bucket> = (0..width)
        .map(|b| Bucket {
            le_ms: BOUNDS_MS.get(b).copied(),
            count: heatmap.iter().map(|r| r[b]).sum(),
        })
        .collect();
    Ok(Distribution {
        service: sel.service.clone(),
        operation: sel.operation.clone(),
        measured_by: measure,
        total: histogram.iter().map(|b| b.count).sum(),
        histogram,
        step_seconds: step as f64 / 1e9,
        times: (0..steps)
            .map(|i| rfc3339(sel.range.start + i as i64 * step))
            .collect(),
        heatmap,
    })
}

/// Fills the heatmap from the latency rollups and returns the measure, or `None` (having filled
/// nothing) when they cannot answer: the steps do not start on slot boundaries, or
/// [`rollup::visit_kind`] declines.
pub(crate) async fn rolled_up(
    engine: &QueryEngine,
    sel: &Selection,
    step: i64,
    heatmap: &mut [Vec<u64>],
) -> Result<Option<Measure>, QueryError> {
    if sel.range.start.rem_euclid(SLOT) != 0 || step % SLOT != 0 {
        return Ok(None);
    }
    let mut entry_requests = 0;
    // Per (step, bucket): entry and root spans.
    let mut cells: BTreeMap<(i64, usize), (u64, u64)> = BTreeMap::new();
    let service = sel.service.as_deref();
    let rolled = rollup::visit_kind::<Buckets>(engine, sel.range, service, |row| {
        entry_requests += row.entry;
        if sel
            .operation
            .as_deref()
            .is_none_or(|op| &*row.operation == op)
        {
            let cell = cells
                .entry(((row.slot * SLOT - sel.range.start) / step, row.bucket))
                .or_default();
            cell.0 += row.entry;
            cell.1 += row.root;
        }
    })
    .await?;
    if !rolled {
        return Ok(None);
    }
    // As the scan: a service by its own measure, every service by its entry spans.
    let measure = match service {
        Some(_) => Measure::of(entry_requests),
        None => Measure::Entry,
    };
    for ((t, b), (entry, root)) in cells {
        let count = match measure {
            Measure::Entry => entry,
            Measure::Root => root,
        };
        if let Some(cell) = usize::try_from(t)
            .ok()
            .and_then(|t| heatmap.get_mut(t))
            .and_then(|r| r.get_mut(b))
        {
            *cell += count;
        }
    }
    Ok(Some(measure))
}

/// Fills the heatmap by aggregating the spans; returns the measure.
async fn scanned(
    engine: &QueryEngine,
    sel: &Selection,
    step: i64,
    heatmap: &mut [Vec<u64>],
) -> Result<Measure, QueryError> {
    let (filter, extra, measure) = filter(engine, sel, 5).await?;
    let mut params = vec![
        timestamp(sel.range.start),
        timestamp(sel.range.end),
        ScalarValue::Int64(Some(sel.range.start)),
        ScalarValue::Int64(Some(step)),
    ];
    params.extend(extra);
    let sql = format!(
        "SELECT (CAST(start_time AS BIGINT) - $3) / $4 AS t, {} AS b, count(*) AS n \
         FROM spans WHERE {filter} GROUP BY 1, 2",
        bucket_case()
    );
    for batch in &engine.query(&sql, params).await?.batches {
        let (t, b, n) = (
            rows::ints(batch, "t")?,
            rows::ints(batch, "b")?,
            rows::ints(batch, "n")?,
        );
        for row in 0..batch.num_rows() {
            let (Ok(t), Ok(b)) = (usize::try_from(t.value(row)), usize::try_from(b.value(row)))
            else {
                continue;
            };
            if let Some(cell) = heatmap.get_mut(t).and_then(|r| r.get_mut(b)) {
                *cell += rows::count(n, row);
            }
        }
    }
    Ok(measure)
}

/// One value of one dimension, in the slow region and in the rest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contrast {
    pub dimension: String,
    pub value: String,
    pub selected: u64,
    pub selected_share: f64,
    pub rest: u64,
    pub rest_share: f64,
    /// `selected_share - rest_share`: how much more common the value is among the slow requests.
    pub difference: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub selected: u64,
    pub rest: u64,
    pub contrasts: Vec<Contrast>,
}

/// Dimensions compared, as (name, SQL expression over the measured spans).
const DIMENSIONS: [(&str, &str); 8] = [
    ("operation", "name"),
    ("http.route", "http_route"),
    (
        "http.response.status_code",
        "arrow_cast(http_status_code, 'Utf8')",
    ),
    ("rpc.method", "rpc_method"),
    ("status", "status_code"),
    ("service.version", "service_version"),
    ("service.instance.id", "service_instance_id"),
    ("server.address", "server_address"),
];

/// The query behind the "service in trace" contrasts: how many selected and how many other
/// requests' traces pass through each other service. `filter` selects the measured spans with
/// `$3`/`$4` as the selected duration range; `$skew` and the next parameter bound the other
/// services' spans; with `one_service`, the parameter after those names the measured service.
///
/// The measured side is folded to one row per trace before the join: grouping on the trace id
/// alone is DataFusion's fast single-key path, where de-duplicating (trace, service, selected)
/// triples took as long as the rest of the query (`EXPLAIN ANALYZE`, 2.7 M spans: 370 ms of 650;
/// the whole query 650 → 330 ms, and 4.0 → 1.5 s with every service's requests measured).
fn in_trace_sql(one_service: bool, filter: &str, skew: usize) -> String {
    let within = |of: &str| {
        format!(
            "{of}start_time >= ${skew} AND {of}start_time < ${}",
            skew + 1
        )
    };
    if one_service {
        let flags = "bool_or(duration_ns >= $3 AND duration_ns < $4) AS s, \
                     bool_or(NOT (duration_ns >= $3 AND duration_ns < $4)) AS r";
        // One measured service: every other service of the same traces.
        format!(
            "WITH m AS (SELECT trace_id, {flags} FROM spans WHERE {filter} GROUP BY trace_id), \
             x AS (SELECT DISTINCT trace_id, service_name FROM spans \
                   WHERE {} AND service_name <> ${n}) \
             SELECT x.service_name AS value, count(*) FILTER (WHERE m.s) AS s, \
               count(*) FILTER (WHERE m.r) AS r \
             FROM m JOIN x ON x.trace_id = m.trace_id GROUP BY x.service_name",
            within(""),
            n = skew + 2
        )
    } else {
        // Requests of several services: another service is one other than the request's own.
        // A service counts for a trace's selected requests when they include one of another
        // service: when they come from two or more services, or from one that is not it. So
        // the lowest and highest service of each side is all a trace needs to keep.
        let side = |p: &str, cond: &str| {
            format!(
                "min(service_name) FILTER (WHERE {cond}) AS {p}_lo, \
                 max(service_name) FILTER (WHERE {cond}) AS {p}_hi"
            )
        };
        let selected = "duration_ns >= $3 AND duration_ns < $4";
        let counted = |p: &str| {
            format!("count(*) FILTER (WHERE m.{p}_lo <> m.{p}_hi OR m.{p}_lo <> x.service_name)")
        };
        format!(
            "WITH m AS (SELECT trace_id, {}, {} FROM spans WHERE {filter} GROUP BY trace_id), \
             x AS (SELECT DISTINCT trace_id, service_name FROM spans WHERE {}), \
             c AS (SELECT x.service_name AS value, {} AS s, {} AS r \
                   FROM m JOIN x ON x.trace_id = m.trace_id GROUP BY x.service_name) \
             SELECT value, s, r FROM c WHERE s > 0 OR r > 0",
            side("s", selected),
            side("r", &format!("NOT ({selected})")),
            within(""),
            counted("s"),
            counted("r"),
        )
    }
}

/// Most services [`in_trace_masks_sql`] tells apart: one bit each of an `Int64`, and bit
/// [`UNLISTED`] for a service not in the list (one that appeared after it was made).
const MASK_SERVICES: usize = 62;
const UNLISTED: i64 = 1 << MASK_SERVICES;

/// A service, and how many selected and other requests' traces pass through it.
type InTrace = (String, u64, u64);

/// The "service in trace" question as one aggregation per trace, without a join: each span
/// contributes its service's bit (`$first`… name the services in order), and each trace keeps
/// the services it passes through (`every`) and those of its selected (`s`) and other (`r`)
/// measured requests. A service counts for a trace's selected requests when they include one
/// of another service (`s` has a bit other than its own), which is [`in_trace_sql`]'s rule for
/// either case. Traces are then counted per distinct triple of masks: a handful of rows.
///
/// At 13.9 M spans the join's `DISTINCT (trace_id, service_name)` over every span of the range
/// made millions of two-key groups; grouping on the trace id alone is DataFusion's fast path.
fn in_trace_masks_sql(filter: &str, skew: usize, first: usize, services: usize) -> String {
    let mut bit = String::from("CASE service_name");
    for i in 0..services {
        bit.push_str(&format!(" WHEN ${} THEN {}", first + i, 1i64 << i));
    }
    bit.push_str(&format!(" ELSE {UNLISTED} END"));
    format!(
        "WITH t AS (SELECT bit_or(b) AS every, \
           bit_or(CASE WHEN m AND sel THEN b END) AS s, \
           bit_or(CASE WHEN m AND NOT sel THEN b END) AS r \
         FROM (SELECT trace_id, {bit} AS b, ({filter}) AS m, \
                 (duration_ns >= $3 AND duration_ns < $4) AS sel \
               FROM spans WHERE start_time >= ${skew} AND start_time < ${}) \
         GROUP BY trace_id) \
         SELECT every, s, r, count(*) AS n FROM t \
         WHERE s IS NOT NULL OR r IS NOT NULL GROUP BY every, s, r",
        skew + 1
    )
}

/// Per service, the selected and other requests' traces it is in (see [`in_trace_masks_sql`]);
/// `None` when a trace holds a service not in `services`.
fn fold_masks(
    batches: &[RecordBatch],
    services: &[String],
) -> Result<Option<Vec<InTrace>>, QueryError> {
    let mut counts = vec![(0u64, 0u64); services.len()];
    for batch in batches {
        let (every, s, r, n) = (
            rows::ints(batch, "every")?,
            rows::ints(batch, "s")?,
            rows::ints(batch, "r")?,
            rows::ints(batch, "n")?,
        );
        for row in 0..batch.num_rows() {
            let mask = |a: &Int64Array| {
                if a.is_null(row) { 0 } else { a.value(row) }
            };
            let (every, s, r, n) = (mask(every), mask(s), mask(r), rows::count(n, row));
            if every & UNLISTED != 0 {
                return Ok(None);
            }
            for (i, c) in counts.iter_mut().enumerate() {
                let own = 1i64 << i;
                if every & own == 0 {
                    continue;
                }
                if s & !own != 0 {
                    c.0 += n;
                }
                if r & !own != 0 {
                    c.1 += n;
                }
            }
        }
    }
    Ok(Some(
        services
            .iter()
            .zip(counts)
            .filter(|(_, (s, r))| *s > 0 || *r > 0)
            .map(|(name, (s, r))| (name.clone(), s, r))
            .collect(),
    ))
}

/// The "service in trace" contrasts: per other service, how many selected and how many other
/// requests' traces pass through it. `params` hold the selection's (`filter`'s) and, from
/// `skew`, the widened range of the traces' other spans.
async fn services_in_traces(
    engine: &QueryEngine,
    service: Option<&str>,
    filter: &str,
    mut params: Vec<ScalarValue>,
    skew: usize,
) -> Result<Vec<InTrace>, QueryError> {
    let names = engine
        .query(
            "SELECT DISTINCT service_name FROM spans \
             WHERE start_time >= $1 AND start_time < $2 ORDER BY service_name",
            params[skew - 1..=skew].to_vec(),
        )
        .await?;
    let mut services = Vec::new();
    for batch in &names.batches {
        let column = rows::strings(batch, "service_name")?;
        services.extend((0..batch.num_rows()).filter_map(|row| rows::text(column, row)));
    }
    if services.len() <= MASK_SERVICES {
        let mut with_names = params.clone();
        with_names.extend(services.iter().map(|s| ScalarValue::Utf8(Some(s.clone()))));
        let sql = in_trace_masks_sql(filter, skew, skew + 2, services.len());
        let rows = engine.query(&sql, with_names).await?;
        if let Some(found) = fold_masks(&rows.batches, &services)? {
            return Ok(found);
        }
    }
    // Many services (or one new since the list was made): the join.
    if let Some(service) = service {
        params.push(ScalarValue::Utf8(Some(service.to_owned())));
    }
    let rows = engine
        .query(&in_trace_sql(service.is_some(), filter, skew), params)
        .await?;
    let mut out = Vec::new();
    for batch in &rows.batches {
        let value = rows::strings(batch, "value")?;
        let (s, r) = (rows::ints(batch, "s")?, rows::ints(batch, "r")?);
        for row in 0..batch.num_rows() {
            out.push((
                value.value(row).to_owned(),
                rows::count(s, row),
                rows::count(r, row),
            ));
        }
    }
    Ok(out)
}

/// Compares the requests with durations in `[min_ms, max_ms)` against the other requests of the
/// selection: which values of each dimension, and which services in their traces, are
/// over-represented among them. The 30 largest differences first.
pub async fn compare(
    engine: &QueryEngine,
    sel: &Selection,
    min_ms: f64,
    max_ms: f64,
) -> Result<Comparison, QueryError> {
    let (filter, extra, _) = filter(engine, sel, 5).await?;
    let mut params = vec![
        timestamp(sel.range.start),
        timestamp(sel.range.end),
        ScalarValue::Int64(Some((min_ms * 1e6) as i64)),
        ScalarValue::Int64(Some(if max_ms.is_finite() {
            (max_ms * 1e6) as i64
        } else {
            i64::MAX
        })),
    ];
    params.extend(extra);
    let skew = params.len() + 1;
    params.push(timestamp(sel.range.start.saturating_sub(CLOCK_SKEW)));
    params.push(timestamp(sel.range.end.saturating_add(CLOCK_SKEW)));
    let columns: Vec<String> = DIMENSIONS
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| format!("{expr} AS d{i}"))
        .collect();
    let m = format!(
        "m AS (SELECT {}, (duration_ns >= $3 AND duration_ns < $4) AS sel \
               FROM spans WHERE {filter})",
        columns.join(", ")
    );
    // One scan, grouped by all dimensions at once. Requests share few combinations of them, so
    // folding the combinations into each dimension's counts below is cheaper than grouping
    // sets, which group every row once per dimension.
    let dims = (0..DIMENSIONS.len())
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let by_dimension = format!(
        "WITH {m} SELECT {dims}, count(*) FILTER (WHERE sel) AS s, \
         count(*) FILTER (WHERE NOT sel) AS r FROM m GROUP BY {dims}"
    );
    let dimension_params = params.clone();
    let (grouped, in_traces) = tokio::try_join!(
        engine.query(&by_dimension, dimension_params),
        services_in_traces(engine, sel.service.as_deref(), &filter, params, skew)
    )?;
    let mut selected = 0;
    let mut rest = 0;
    let mut by_value: BTreeMap<(usize, String), (u64, u64)> = BTreeMap::new();
    for batch in &grouped.batches {
        let (s, r) = (rows::ints(batch, "s")?, rows::ints(batch, "r")?);
        let values: Vec<_> = (0..DIMENSIONS.len())
            .map(|i| rows::strings(batch, &format!("d{i}")))
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let (s, r) = (rows::count(s, row), rows::count(r, row));
            selected += s;
            rest += r;
            for (i, values) in values.iter().enumerate() {
                if let Some(value) = rows::text(values, row) {
                    let counts = by_value.entry((i, value)).or_default();
                    counts.0 += s;
                    counts.1 += r;
                }
            }
        }
    }
    let mut raw: Vec<(String, String, u64, u64)> = by_value
        .into_iter()
        .map(|((i, value), (s, r))| (DIMENSIONS[i].0.to_owned(), value, s, r))
        .collect();
    raw.extend(
        in_traces
            .into_iter()
            .map(|(value, s, r)| ("service in trace".to_owned(), value, s, r)),
    );
    let share = |n: u64, of: u64| if of > 0 { n as f64 / of as f64 } else { 0.0 };
    let mut contrasts: Vec<Contrast> = raw
        .into_iter()
        .map(|(dimension, value, s, r)| {
            let (selected_share, rest_share) = (share(s, selected), share(r, rest));
            Contrast {
                dimension,
                value,
                selected: s,
                selected_share,
                rest: r,
                rest_share,
                difference: selected_share - rest_share,
            }
        })
        .collect();
    contrasts.sort_by(|a, b| {
        b.difference
            .total_cmp(&a.difference)
            .then_with(|| (&a.dimension, &a.value).cmp(&(&b.dimension, &b.value)))
    });
    contrasts.truncate(30);
    Ok(Comparison {
        selected,
        rest,
        contrasts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::test_fleet::{Dice, MINUTE, T, fleet, write};

    /// The same question with the (trace, service, selected) triples made distinct before the
    /// join: the reference for [`in_trace_sql`].
    fn reference_sql(one_service: bool, filter: &str, skew: usize) -> String {
        let m = format!(
            "SELECT DISTINCT trace_id, service_name, (duration_ns >= $3 AND duration_ns < $4) AS sel \
             FROM spans WHERE {filter}"
        );
        let within = |of: &str| {
            format!(
                "{of}start_time >= ${skew} AND {of}start_time < ${}",
                skew + 1
            )
        };
        if one_service {
            format!(
                "WITH m AS ({m}), x AS (SELECT DISTINCT trace_id, service_name FROM spans \
                 WHERE {} AND service_name <> ${n}) \
                 SELECT x.service_name AS value, count(*) FILTER (WHERE m.sel) AS s, \
                 count(*) FILTER (WHERE NOT m.sel) AS r \
                 FROM m JOIN x ON x.trace_id = m.trace_id GROUP BY x.service_name",
                within(""),
                n = skew + 2
            )
        } else {
            format!(
                "WITH m AS ({m}), j AS (SELECT DISTINCT x.service_name, m.trace_id, m.sel \
                 FROM m JOIN spans x ON x.trace_id = m.trace_id \
                 WHERE {} AND x.service_name <> m.service_name) \
                 SELECT service_name AS value, count(*) FILTER (WHERE sel) AS s, \
                 count(*) FILTER (WHERE NOT sel) AS r FROM j GROUP BY service_name",
                within("x.")
            )
        }
    }

    async fn counts(
        engine: &QueryEngine,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Vec<(String, u64, u64)> {
        let rows = engine.query(sql, params).await.unwrap();
        let mut out = Vec::new();
        for batch in &rows.batches {
            let value = rows::strings(batch, "value").unwrap();
            let (s, r) = (
                rows::ints(batch, "s").unwrap(),
                rows::ints(batch, "r").unwrap(),
            );
            for row in 0..batch.num_rows() {
                out.push((
                    value.value(row).to_owned(),
                    rows::count(s, row),
                    rows::count(r, row),
                ));
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn services_in_the_traces_are_counted_as_the_distinct_join_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), fleet(&mut Dice(0x2545_f491_4f6c_dd1d)));
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let engine = QueryEngine::new(&lake, crate::QueryLimits::default()).unwrap();
        let base = vec![
            timestamp(T),
            timestamp(T + 10 * MINUTE),
            ScalarValue::Int64(Some(200_000_000)),
            ScalarValue::Int64(Some(400_000_000)),
        ];
        let skewed = [
            timestamp(T - CLOCK_SKEW),
            timestamp(T + 10 * MINUTE + CLOCK_SKEW),
        ];
        let entry = "start_time >= $1 AND start_time < $2 AND span_kind IN ('SERVER', 'CONSUMER')";

        // One service measured.
        let filter = format!("{entry} AND service_name = $5");
        let mut params = base.clone();
        params.push(ScalarValue::Utf8(Some("orders".into())));
        params.extend(skewed.clone());
        let by_masks = sorted(
            services_in_traces(&engine, Some("orders"), &filter, params.clone(), 6)
                .await
                .unwrap(),
        );
        params.push(ScalarValue::Utf8(Some("orders".into())));
        let ours = counts(&engine, &in_trace_sql(true, &filter, 6), params.clone()).await;
        let reference = counts(&engine, &reference_sql(true, &filter, 6), params).await;
        assert_eq!(ours.len(), 4, "{ours:?}");
        assert!(ours.iter().all(|(_, s, r)| *s > 20 && *r > 20), "{ours:?}");
        assert_eq!(ours, reference);
        assert_eq!(by_masks, reference);

        // Every service's requests measured.
        let mut params = base.clone();
        params.extend(skewed);
        let ours = counts(&engine, &in_trace_sql(false, entry, 5), params.clone()).await;
        let reference = counts(&engine, &reference_sql(false, entry, 5), params.clone()).await;
        assert_eq!(ours.len(), 5, "{ours:?}");
        assert_eq!(ours, reference);
        let by_masks = services_in_traces(&engine, None, entry, params.clone(), 5)
            .await
            .unwrap();
        assert_eq!(sorted(by_masks), reference);

        // A service missing from the list (as one new since it was made) is noticed, not
        // dropped: the masks' answer is refused and the join answers.
        let mut listed: Vec<String> = reference.iter().map(|(name, _, _)| name.clone()).collect();
        let missing = listed.remove(1);
        let mut with_names = params.clone();
        with_names.extend(listed.iter().map(|s| ScalarValue::Utf8(Some(s.clone()))));
        let sql = in_trace_masks_sql(entry, 5, 7, listed.len());
        let rows = engine.query(&sql, with_names).await.unwrap();
        assert_eq!(
            fold_masks(&rows.batches, &listed).unwrap(),
            None,
            "{missing}"
        );
    }

    #[tokio::test]
    async fn more_services_than_the_masks_tell_apart_are_counted_by_the_join() {
        let dir = tempfile::tempdir().unwrap();
        let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
        let mut spans = fleet(&mut dice);
        // Five services become 80 names, the callers and their children drawn independently.
        for (service, _) in &mut spans {
            *service = format!("{service}-{}", dice.below(16));
        }
        write(dir.path(), spans);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let engine = QueryEngine::new(&lake, crate::QueryLimits::default()).unwrap();
        let entry = "start_time >= $1 AND start_time < $2 AND span_kind IN ('SERVER', 'CONSUMER')";
        let params = vec![
            timestamp(T),
            timestamp(T + 10 * MINUTE),
            ScalarValue::Int64(Some(200_000_000)),
            ScalarValue::Int64(Some(400_000_000)),
            timestamp(T - CLOCK_SKEW),
            timestamp(T + 10 * MINUTE + CLOCK_SKEW),
        ];

        let found = sorted(
            services_in_traces(&engine, None, entry, params.clone(), 5)
                .await
                .unwrap(),
        );
        let reference = counts(&engine, &reference_sql(false, entry, 5), params).await;
        // More services in traces than the masks hold: only the join can have answered.
        assert!(reference.len() > MASK_SERVICES, "{}", reference.len());
        assert!(
            reference.iter().map(|(_, s, _)| s).sum::<u64>() > 100,
            "{reference:?}"
        );
        assert_eq!(found, reference);
    }

    fn sorted(mut rows: Vec<(String, u64, u64)>) -> Vec<(String, u64, u64)> {
        rows.sort();
        rows
    }
}
