//! RED rollups: the services overview, a service's operations and its series summed from
//! per-file summaries, so that a request does not aggregate every span of its range again.
//!
//! A lake file never changes, so its summary is computed once and kept (see
//! [`crate::summaries`]): per 15-second slot of the spans' start, service and operation, the
//! requests, errors and latency sketch of the entry spans and of the root spans (the two
//! measures of [`super::red`]). A request sums the whole slots of its range from the files'
//! summaries and from the batches not yet in a file (summarised on every request), and asks the
//! spans themselves only for the partial slots at its two edges, so the answer is exactly the
//! one aggregating every span gives. Sketches merge exactly.
//!
//! The summaries are also kept on disk (see [`crate::summary_store`]), so that a restarted server
//! sums them at once rather than aggregating the spans until its files are summarised again.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{BinaryArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use lakescope_collector::lake::LakeFile;
use lakescope_collector::lake::layout::{self, PARTITION_NANOS};

use super::red::{ENTRY, Measure, ROOT};
use super::rows;
use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::sketch::Sketch;
use crate::summaries::{Summary, SummaryCache};
use crate::time_range::TimeRange;

/// The rollups' time resolution; every round series step from 15 s up is a multiple of it.
pub const SLOT: i64 = 15_000_000_000;

/// Summarising a file costs about this many times what aggregating its spans for one request
/// does (more groups: per slot and operation).
const SUMMARY_COST: u64 = 2;

pub type Name = Arc<str>;

/// Requests, errors and their latency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub requests: u64,
    pub errors: u64,
    pub latency: Sketch,
}

impl Counts {
    pub fn merge(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }
}

/// A slot's numbers for one service and operation, by both measures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub entry: Counts,
    pub root: Counts,
}

impl Cell {
    pub fn merge(&mut self, other: &Cell) {
        self.entry.merge(&other.entry);
        self.root.merge(&other.root);
    }

    pub fn measured(&self, measure: Measure) -> &Counts {
        match measure {
            Measure::Entry => &self.entry,
            Measure::Root => &self.root,
        }
    }

    fn bytes(&self) -> usize {
        self.entry.latency.bytes() + self.root.latency.bytes() + 32
    }
}

/// One row of a summary: its slot, service and operation (`None` for the spans that are neither
/// entry nor root spans, kept so that their services are listed), and numbers.
#[derive(Debug, Clone)]
pub struct Row {
    pub slot: i64,
    pub service: Name,
    pub operation: Option<Name>,
    pub cell: Cell,
}

/// What one file (or the recent batches) holds, by slot.
#[derive(Debug)]
pub struct Rollup<R> {
    rows: Vec<R>,
    bytes: usize,
}

impl<R> Summary for Rollup<R> {
    fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One kind of rollup: the query that summarises spans into rows with a slot, and how its rows
/// are read and kept.
pub trait Kind: 'static {
    type Row: Send + Sync + 'static;
    /// The name its summaries are kept under on disk (see [`crate::summary_store`]).
    const NAME: &'static str;
    /// The columns [`Self::sql`] groups by: summaries of several files are combined by
    /// regrouping their rows on these (see [`crate::summaries::combine`]).
    const KEYS: &'static [&'static str];
    /// The cache of this kind's per-file summaries.
    fn cache(engine: &QueryEngine) -> &Arc<SummaryCache<Rollup<Self::Row>>>;
    /// The summarising query over `spans`, narrowed by `filter` (`AND …`, which may use `$1`…`$5`).
    fn sql(filter: &str) -> String;
    /// The rows of [`Self::sql`]'s answer.
    fn decode(batches: &[RecordBatch]) -> Result<Vec<Self::Row>, QueryError>;
    /// A row's slot: its spans started in `[slot * SLOT, (slot + 1) * SLOT)`.
    fn slot(row: &Self::Row) -> i64;
    /// The service of a row's spans.
    fn service(row: &Self::Row) -> &str;
    /// Approximate bytes a row holds.
    fn row_bytes(row: &Self::Row) -> usize;
}

impl<R> Rollup<R> {
    fn of<K: Kind<Row = R>>(mut rows: Vec<R>) -> Self {
        rows.sort_by_key(K::slot);
        rows.shrink_to_fit();
        let bytes = std::mem::size_of::<Self>() + rows.iter().map(K::row_bytes).sum::<usize>();
        Self { rows, bytes }
    }

    /// The rows of slots `[first, last)`.
    fn slots<K: Kind<Row = R>>(&self, first: i64, last: i64) -> &[R] {
        let lo = self.rows.partition_point(|r| K::slot(r) < first);
        let hi = self.rows.partition_point(|r| K::slot(r) < last);
        &self.rows[lo..hi]
    }
}

/// The services overview's, operations' and series' rollup: [`Row`]s.
pub struct Red;

/// The RED rollups' per-file summaries.
pub type RollupCache = SummaryCache<Rollup<Row>>;

impl Kind for Red {
    type Row = Row;
    const NAME: &'static str = "red";
    const KEYS: &'static [&'static str] = &["slot", "service_name", "operation"];

    fn cache(engine: &QueryEngine) -> &Arc<RollupCache> {
        &engine.rollups
    }

    /// Per slot, service and operation, both measures.
    fn sql(filter: &str) -> String {
        format!(
            "SELECT CAST(start_time AS BIGINT) / {SLOT} AS slot, service_name,
               CASE WHEN {ENTRY} OR {ROOT} THEN name END AS operation,
               {measures}
             FROM spans WHERE true {filter}
             GROUP BY slot, service_name, operation",
            measures = *MEASURES
        )
    }

    fn decode(batches: &[RecordBatch]) -> Result<Vec<Row>, QueryError> {
        let mut names = Names::default();
        let mut out = Vec::new();
        for batch in batches {
            let slot = rows::ints(batch, "slot")?;
            let service = rows::strings(batch, "service_name")?;
            let operation = rows::strings(batch, "operation")?;
            let cells = CellColumns::of(batch)?;
            for row in 0..batch.num_rows() {
                out.push(Row {
                    slot: slot.value(row),
                    service: names.get(service.value(row)),
                    operation: rows::text(operation, row).map(|o| names.get(&o)),
                    cell: cells.cell(row)?,
                });
            }
        }
        Ok(out)
    }

    fn slot(row: &Row) -> i64 {
        row.slot
    }

    fn service(row: &Row) -> &str {
        &row.service
    }

    fn row_bytes(row: &Row) -> usize {
        row.cell.bytes() + std::mem::size_of::<Row>()
    }
}

/// Interned names: the rows of one summary share each distinct text.
#[derive(Default)]
pub(crate) struct Names(HashMap<String, Name>);

impl Names {
    pub(crate) fn get(&mut self, text: &str) -> Name {
        if let Some(n) = self.0.get(text) {
            return Arc::clone(n);
        }
        let n: Name = Arc::from(text);
        self.0.insert(text.to_owned(), Arc::clone(&n));
        n
    }
}

/// Both measures' numbers, as the columns [`CellColumns`] reads.
pub(crate) static MEASURES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "count(*) FILTER (WHERE {ENTRY}) AS entry_requests, \
         count(*) FILTER (WHERE {ENTRY} AND status_code = 'ERROR') AS entry_errors, \
         latency_sketch(duration_ns) FILTER (WHERE {ENTRY}) AS entry_latency, \
         count(*) FILTER (WHERE {ROOT}) AS root_requests, \
         count(*) FILTER (WHERE {ROOT} AND status_code = 'ERROR') AS root_errors, \
         latency_sketch(duration_ns) FILTER (WHERE {ROOT}) AS root_latency"
    )
});

/// The columns of [`MEASURES`] in one answer batch.
pub(crate) struct CellColumns<'a> {
    measures: [(&'a Int64Array, &'a Int64Array, &'a BinaryArray); 2],
}

impl<'a> CellColumns<'a> {
    pub(crate) fn of(batch: &'a RecordBatch) -> Result<Self, QueryError> {
        let counts = |prefix: &str| -> Result<_, QueryError> {
            Ok((
                rows::ints(batch, &format!("{prefix}_requests"))?,
                rows::ints(batch, &format!("{prefix}_errors"))?,
                rows::binaries(batch, &format!("{prefix}_latency"))?,
            ))
        };
        Ok(Self {
            measures: [counts("entry")?, counts("root")?],
        })
    }

    pub(crate) fn cell(&self, row: usize) -> Result<Cell, QueryError> {
        let read = |(requests, errors, latency): &(&Int64Array, &Int64Array, &BinaryArray)| {
            Ok::<_, QueryError>(Counts {
                requests: rows::count(requests, row),
                errors: rows::count(errors, row),
                latency: rows::sketch(latency, row)?,
            })
        };
        Ok(Cell {
            entry: read(&self.measures[0])?,
            root: read(&self.measures[1])?,
        })
    }
}

/// One file's summary of kind `K`, from the cache, else from disk, else computed (and kept on
/// disk); cached.
async fn summary<K: Kind>(
    engine: &QueryEngine,
    file: &Arc<LakeFile>,
) -> Result<Arc<Rollup<K::Row>>, QueryError> {
    if let Some(found) = K::cache(engine).get(&file.path) {
        return Ok(found);
    }
    let sql = K::sql("");
    let store = engine.summary_store();
    // A summary on disk that cannot be read is made again (and overwritten).
    let kept = store
        .read(K::NAME, &file.path, &sql)
        .await
        .unwrap_or_else(|e| {
            tracing::debug!(error = %e, "stored summary");
            None
        });
    let batches = match kept {
        Some(batches) => batches,
        None => {
            let (schema, batches) = match combined::<K>(engine, file, &sql).await {
                Some(combined) => combined,
                None => {
                    let rows = engine
                        .query_pinned("spans", vec![Arc::clone(file)], Vec::new(), false, &sql)
                        .await?;
                    made::<K>("spans");
                    (rows.schema, rows.batches)
                }
            };
            // Not kept (a full disk, the file merged away meanwhile): made again next time.
            if let Err(e) = store
                .write(K::NAME, &file.path, &sql, &schema, &batches)
                .await
            {
                tracing::debug!(error = %e, "storing a summary");
            }
            batches
        }
    };
    let summary = Arc::new(Rollup::of::<K>(K::decode(&batches)?));
    K::cache(engine).put(file.path.clone(), Arc::clone(&summary));
    Ok(summary)
}

/// Counts a summary of kind `K` made `from` spans or inputs (`lakescope_query_file_summaries_total`).
fn made<K: Kind>(from: &'static str) {
    let label = lakescope_collector::stats::SummaryLabel {
        kind: K::NAME,
        from,
    };
    lakescope_collector::stats::stats()
        .query_file_summaries
        .get_or_create(&label)
        .inc();
}

/// A merged file's summary of kind `K` combined from the summaries its inputs left on disk, or
/// `None` when one of them is missing (then its spans are summarised instead).
async fn combined<K: Kind>(
    engine: &QueryEngine,
    file: &LakeFile,
    sql: &str,
) -> Option<(SchemaRef, Vec<RecordBatch>)> {
    let inputs = crate::summaries::merged_inputs(file).await?;
    let store = engine.summary_store();
    let mut schema = None;
    let mut parts = Vec::new();
    for input in &inputs {
        let (kept, batches) = store.read_kept(K::NAME, input, sql).await.ok()??;
        schema.get_or_insert(kept);
        parts.extend(batches);
    }
    match crate::summaries::combine(K::KEYS, &schema?, parts).await {
        Ok(combined) => {
            made::<K>("inputs");
            Some(combined)
        }
        Err(e) => {
            tracing::debug!(file = %file.path.display(), error = %e, "combining summaries");
            None
        }
    }
}

/// Summarises a file new in the lake if that is cheap: a flush file (a few seconds of spans),
/// or a merged file whose inputs' summaries are on disk (combined). Other files are summarised
/// when a request needs them.
async fn follow<K: Kind>(engine: QueryEngine, file: Arc<LakeFile>) -> Result<(), QueryError> {
    if K::cache(&engine).get(&file.path).is_some()
        || engine.summary_store().has(K::NAME, &file.path)
    {
        return Ok(());
    }
    let merged = layout::first_seq(&file.path, file.seq) != file.seq;
    if !merged {
        return summary::<K>(&engine, &file).await.map(|_| ());
    }
    let sql = K::sql("");
    if let Some((schema, batches)) = combined::<K>(&engine, &file, &sql).await
        && let Err(e) = engine
            .summary_store()
            .write(K::NAME, &file.path, &sql, &schema, &batches)
            .await
    {
        tracing::debug!(error = %e, "storing a summary");
    }
    Ok(())
}

/// Summarises every file of the lake (what [`warm`] does in the background), for tests.
#[cfg(test)]
pub(crate) async fn summarise_all<K: Kind>(engine: &QueryEngine) {
    for file in engine
        .snapshot("spans")
        .into_iter()
        .flat_map(|s| s.files.to_vec())
    {
        summary::<K>(engine, &file).await.expect("summary");
    }
}

/// Keeps the rollups of kind `K` of the files that recent requests read computed ahead of the
/// next request (see [`crate::summaries::warm`]).
pub async fn warm_kind<K: Kind>(engine: QueryEngine, stop: tokio_util::sync::CancellationToken) {
    let cache = Arc::clone(K::cache(&engine));
    crate::summaries::warm(
        engine,
        cache,
        crate::summaries::Warming {
            table: "spans",
            reach_back: 0,
            stored: &[K::NAME],
            follow: Some(Arc::new(|engine, file| Box::pin(follow::<K>(engine, file)))),
        },
        stop,
        |engine, file| async move { summary::<K>(&engine, &file).await },
    )
    .await;
}

/// Keeps every kind of rollup warm (see [`warm_kind`]).
pub async fn warm(engine: QueryEngine, stop: tokio_util::sync::CancellationToken) {
    tokio::join!(
        warm_kind::<Red>(engine.clone(), stop.clone()),
        warm_kind::<crate::promql::spanmetrics::SpanMetrics>(engine.clone(), stop.clone()),
        warm_kind::<super::latency::Buckets>(engine, stop),
    );
}

/// The slots wholly inside `range`, `[first, last)`.
fn whole_slots(range: TimeRange) -> (i64, i64) {
    (
        range.start.div_euclid(SLOT) + i64::from(range.start.rem_euclid(SLOT) != 0),
        range.end.div_euclid(SLOT),
    )
}

/// Calls `visit` with every row of the spans that started in `range` (of `service` only, when
/// given), as [`Red::sql`] would aggregate them; rows of one slot, service and operation may
/// come in several parts. Returns `false`, having visited nothing, when the rollups are off,
/// `range` holds no whole slot, or too few of its files are summarised yet for the summaries to
/// be the quicker way (they are then made in the background by [`warm`]).
pub async fn visit(
    engine: &QueryEngine,
    range: TimeRange,
    service: Option<&str>,
    visit: impl FnMut(&Row),
) -> Result<bool, QueryError> {
    visit_kind::<Red>(engine, range, service, visit).await
}

/// [`visit`] for the rollup of kind `K`.
pub async fn visit_kind<K: Kind>(
    engine: &QueryEngine,
    range: TimeRange,
    service: Option<&str>,
    mut visit: impl FnMut(&K::Row),
) -> Result<bool, QueryError> {
    let cache = K::cache(engine);
    let (first, last) = whole_slots(range);
    if !cache.enabled() || first >= last {
        return Ok(false);
    }
    cache.asked(range.start);
    let snapshot = engine
        .snapshot("spans")
        .ok_or_else(|| QueryError::Execution("no spans table".into()))?;
    let (lo, hi) = (first * SLOT, last * SLOT);
    let files: Vec<&Arc<LakeFile>> = snapshot
        .files
        .iter()
        .filter(|f| f.partition_start < hi && f.partition_start + PARTITION_NANOS > lo)
        .collect();
    let store = engine.summary_store();
    let (missing, total) = files.iter().fold((0u64, 0u64), |(missing, total), f| {
        let absent = cache.get(&f.path).is_none() && !store.has(K::NAME, &f.path);
        (missing + if absent { f.size } else { 0 }, total + f.size)
    });
    if missing.saturating_mul(SUMMARY_COST) > total {
        return Ok(false);
    }
    let wanted = |r: &&K::Row| service.is_none_or(|s| K::service(r) == s);
    for file in files {
        let summary = summary::<K>(engine, file).await?;
        summary
            .slots::<K>(first, last)
            .iter()
            .filter(wanted)
            .for_each(&mut visit);
    }
    if !snapshot.batches.is_empty() {
        let rows = engine
            .query_pinned(
                "spans",
                Vec::new(),
                snapshot.batches.clone(),
                false,
                &K::sql(""),
            )
            .await?;
        Rollup::of::<K>(K::decode(&rows.batches)?)
            .slots::<K>(first, last)
            .iter()
            .filter(wanted)
            .for_each(&mut visit);
    }
    // The partial slots at the edges, from the spans (files and batches as they are now: the
    // times they cover are disjoint from the whole slots', so nothing counts twice).
    let mut params = vec![
        timestamp(range.start),
        timestamp(lo),
        timestamp(hi),
        timestamp(range.end),
    ];
    let mut filter = String::from(
        "AND ((start_time >= $1 AND start_time < $2) OR (start_time >= $3 AND start_time < $4))",
    );
    if let Some(s) = service {
        params.push(ScalarValue::Utf8(Some(s.to_owned())));
        filter.push_str(" AND service_name = $5");
    }
    if range.start < lo || hi < range.end {
        let rows = engine.query(&K::sql(&filter), params).await?;
        K::decode(&rows.batches)?.iter().for_each(&mut visit);
    }
    let live: HashSet<PathBuf> = snapshot.files.iter().map(|f| f.path.clone()).collect();
    cache.retain(&live);
    lakescope_collector::stats::stats()
        .query_rollup_cache_bytes
        .set(engine.rollup_bytes() as i64);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};

    use super::*;
    use crate::QueryLimits;
    use crate::views::latency::{self, Buckets, Selection, distribution};
    use crate::views::red::{operations, series};
    use crate::views::services::services;
    use crate::views::test_fleet::{Dice, MINUTE as M, T, batch, fleet, garble, write_parts};

    const S: i64 = 1_000_000_000;

    fn engine(lake: &lakescope_collector::Lake, rollup_cache_bytes: usize) -> QueryEngine {
        let limits = QueryLimits {
            rollup_cache_bytes,
            ..QueryLimits::default()
        };
        QueryEngine::new(lake, limits).unwrap()
    }

    /// The test fleet with every span moved by up to a minute (so that spans fall inside the
    /// slots and the partial slots at a range's edges), plus a service measured by its root
    /// spans (a batch job) and one with neither entry nor root spans.
    fn spans() -> Vec<(String, Span)> {
        let mut dice = Dice(0x6a09_e667_f3bc_c908);
        let mut spans = fleet(&mut dice);
        for (_, span) in &mut spans {
            let by = dice.below(60_000) * 1_000_000;
            span.start_time_unix_nano += by;
            span.end_time_unix_nano += by;
        }
        for i in 0..600u64 {
            let at = (T - M) as u64 + dice.below(12 * 60_000) * 1_000_000;
            let (service, kind, parent) = if i % 3 == 0 {
                ("sidecar", 3, dice.next().to_le_bytes().to_vec())
            } else {
                ("cron", 1, Vec::new())
            };
            spans.push((
                service.to_owned(),
                Span {
                    trace_id: dice.next().to_le_bytes().repeat(2),
                    span_id: dice.next().to_le_bytes().to_vec(),
                    parent_span_id: parent,
                    name: ["nightly", "hourly", "sweep"][dice.below(3) as usize].into(),
                    kind,
                    start_time_unix_nano: at,
                    end_time_unix_nano: at + 1_000_000 * (1 + dice.below(2000)),
                    status: Some(Status {
                        code: dice.below(3) as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ));
        }
        spans
    }

    async fn summarise_all(engine: &QueryEngine) {
        super::summarise_all::<Red>(engine).await;
        super::summarise_all::<Buckets>(engine).await;
    }

    /// Whether `range` is answered from the rollups.
    async fn rolled(engine: &QueryEngine, range: TimeRange) -> bool {
        visit(engine, range, None, |_| {}).await.unwrap()
    }

    /// Every answer from the rollups equals the one aggregated from the spans, number by number:
    /// the services, each service's operations and its series at several steps.
    async fn assert_same_answers(rolled_up: &QueryEngine, reference: &QueryEngine) {
        let ranges = [
            (T, T + 10 * M, true),
            (T - M, T + 11 * M, true),
            (T + 3 * M + 17, T + 7 * M - 5, true),
            (T + 20 * S + 3, T + 20 * S + 40 * S, true),
            (T + S, T + 5 * S, false),
        ];
        for (start, end, whole_slots) in ranges {
            let range = TimeRange { start, end };
            let label = format!("{}..{}", start - T, end - T);
            assert_eq!(rolled(rolled_up, range).await, whole_slots, "{label}");
            let ours = services(rolled_up, range).await.unwrap();
            let theirs = services(reference, range).await.unwrap();
            assert_eq!(ours, theirs, "services {label}");
            if start == T {
                let names: Vec<&str> = ours.iter().map(|s| s.name.as_str()).collect();
                assert_eq!(
                    names,
                    [
                        "billing", "cron", "mailer", "orders", "sidecar", "stock", "web"
                    ]
                );
                let cron = ours.iter().find(|s| s.name == "cron").unwrap();
                assert_eq!(cron.measured_by, Measure::Root);
                assert!(cron.red.requests > 100 && cron.red.errors > 10, "{cron:?}");
                let sidecar = ours.iter().find(|s| s.name == "sidecar").unwrap();
                assert_eq!(sidecar.red.requests, 0);
            }
            for service in ["web", "cron", "sidecar"] {
                assert_eq!(
                    operations(rolled_up, service, range).await.unwrap(),
                    operations(reference, service, range).await.unwrap(),
                    "operations of {service} {label}"
                );
            }
        }
        for (start, end) in [(T, T + 10 * M), (T - M, T + 11 * M + 7 * S)] {
            let range = TimeRange { start, end };
            for step in [15 * S, 30 * S, M, 5 * M, 7 * S] {
                for (service, operation) in [("web", None), ("web", Some("serve")), ("cron", None)]
                {
                    let ours = series(rolled_up, service, operation, range, step)
                        .await
                        .unwrap();
                    let theirs = series(reference, service, operation, range, step)
                        .await
                        .unwrap();
                    assert!(ours.points.iter().any(|p| p.red.requests > 0));
                    assert_eq!(ours, theirs, "{service} {operation:?} step {step}");
                }
            }
        }
        assert_same_latency(rolled_up, reference).await;
    }

    /// The latency histograms and heatmaps from the rollups equal those aggregated from the
    /// spans, cell by cell; steps that do not start on slot boundaries are aggregated.
    async fn assert_same_latency(rolled_up: &QueryEngine, reference: &QueryEngine) {
        for (start, end) in [
            (T, T + 10 * M),
            (T - M, T + 11 * M + 7 * S),
            (T + 7 * S, T + 5 * M),
        ] {
            let range = TimeRange { start, end };
            for step in [15 * S, 5 * M, 7 * S] {
                for (service, operation) in [
                    (Some("web"), None),
                    (Some("web"), Some("serve")),
                    (Some("cron"), None),
                    (Some("cron"), Some("nightly")),
                    (None, None),
                ] {
                    let sel = Selection {
                        service: service.map(str::to_owned),
                        operation: operation.map(str::to_owned),
                        range,
                    };
                    let label = format!("{service:?} {operation:?} {}.. step {step}", start - T);
                    let ours = distribution(rolled_up, &sel, step).await.unwrap();
                    let theirs = distribution(reference, &sel, step).await.unwrap();
                    assert!(ours.total > 20, "{label}: {}", ours.total);
                    assert!(
                        ours.histogram.iter().filter(|b| b.count > 0).count() >= 3,
                        "{label}: {:?}",
                        ours.histogram
                    );
                    assert_eq!(ours, theirs, "{label}");
                    let aligned = start % (15 * S) == 0 && step % (15 * S) == 0;
                    let mut heatmap = vec![vec![0; ours.histogram.len()]; ours.times.len()];
                    let answered = latency::rolled_up(rolled_up, &sel, step, &mut heatmap)
                        .await
                        .unwrap();
                    assert_eq!(answered.is_some(), aligned, "{label}");
                    if aligned {
                        assert_eq!(answered, Some(ours.measured_by), "{label}");
                        assert_eq!(heatmap, ours.heatmap, "{label}");
                    }
                }
            }
        }
    }

    /// Spread over three files per hour partition.
    #[tokio::test]
    async fn answers_summed_from_the_rollups_equal_those_aggregated_from_the_spans() {
        let dir = tempfile::tempdir().unwrap();
        write_parts(dir.path(), spans(), 3);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let rolled_up = engine(&lake, 64 << 20);
        let reference = engine(&lake, 0);
        summarise_all(&rolled_up).await;
        assert_same_answers(&rolled_up, &reference).await;
        assert!(rolled_up.rollups.bytes() > 0);
    }

    /// A third of the spans not yet flushed.
    #[tokio::test]
    async fn recent_batches_count_with_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let (flushed, recent): (Vec<_>, Vec<_>) = spans()
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 3 != 0);
        write_parts(dir.path(), flushed.into_iter().map(|(_, s)| s).collect(), 2);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let table = lake
            .tables()
            .into_iter()
            .find(|t| t.name() == "spans")
            .unwrap();
        table.push(1, batch(recent.into_iter().map(|(_, s)| s).collect()));
        let rolled_up = engine(&lake, 64 << 20);
        let reference = engine(&lake, 0);
        summarise_all(&rolled_up).await;
        assert_same_answers(&rolled_up, &reference).await;
    }

    /// A new engine over the same lake (a restarted server) sums the summaries kept on disk at
    /// once; one that cannot be read is made again.
    #[tokio::test]
    async fn a_restarted_server_sums_the_summaries_kept_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        write_parts(dir.path(), spans(), 3);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let reference = engine(&lake, 0);
        summarise_all(&engine(&lake, 64 << 20)).await;
        let range = TimeRange {
            start: T,
            end: T + 10 * M,
        };
        let restarted = engine(&lake, 64 << 20);
        assert_eq!(restarted.rollups.bytes(), 0);
        assert!(rolled(&restarted, range).await, "answered from the disk");
        assert_same_answers(&restarted, &reference).await;

        let latency = walk(&dir.path().join(crate::summary_store::DIR).join("latency"));
        assert_eq!(latency.len(), 9, "{latency:?}");
        let kept: Vec<PathBuf> = walk(&dir.path().join(crate::summary_store::DIR).join("red"));
        assert_eq!(
            kept.len(),
            9,
            "three files in each of three hours: {kept:?}"
        );
        // One of the range's hour's.
        let hour = lakescope_collector::lake::layout::partition_of(range.start);
        let dir_of_hour = lakescope_collector::lake::layout::partition_dir(hour);
        let broken = kept
            .iter()
            .find(|p| p.parent().unwrap().ends_with(&dir_of_hour))
            .unwrap();
        std::fs::write(broken, b"not arrow").unwrap();
        let restarted = engine(&lake, 64 << 20);
        assert_same_answers(&restarted, &reference).await;
        assert!(std::fs::read(broken).unwrap().starts_with(b"ARROW1"));

        // Read from the disk indeed: the range's lake files overwritten with garbage (same size
        // and time), its whole slots are still answered.
        let expected = services(&reference, range).await.unwrap();
        for file in engine(&lake, 0).snapshot("spans").unwrap().files.iter() {
            if file.partition_start == hour {
                garble(&file.path);
            }
        }
        let restarted = engine(&lake, 64 << 20);
        assert_eq!(services(&restarted, range).await.unwrap(), expected);
        assert!(services(&reference, range).await.is_err());
    }

    /// Every row of `batches`, each as text, sorted: equal for equal answers in any order.
    fn rows_as_text(batches: &[RecordBatch]) -> Vec<String> {
        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
        let mut out = Vec::new();
        for batch in batches {
            let columns: Vec<ArrayFormatter> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
                .collect();
            for row in 0..batch.num_rows() {
                let cells: Vec<String> = columns.iter().map(|c| c.value(row).to_string()).collect();
                out.push(cells.join("|"));
            }
        }
        out.sort();
        out
    }

    /// Summaries of files that were then merged are combined into the merged file's, equal to
    /// what summarising its spans gives (both kinds), and the views answer from them as before.
    /// A merged file whose inputs left no summary is summarised from its spans.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_merged_files_rollups_combine_its_inputs_and_equal_its_spans() {
        use crate::promql::spanmetrics::SpanMetrics;
        use lakescope_collector::lake::compaction::{Plan, compact};
        let dir = tempfile::tempdir().unwrap();
        write_parts(dir.path(), spans(), 3);
        // As flushes 1, 2 and 3 would have named them (a merge covers a range of flushes).
        for path in walk(&dir.path().join("spans")) {
            let name = path.file_name().unwrap().to_str().unwrap();
            let n: u64 = name
                .trim_end_matches(".parquet")
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let flush = lakescope_collector::lake::layout::file_name(n + 1, 0);
            std::fs::rename(&path, path.with_file_name(flush)).unwrap();
        }
        // Flushes up to 3 are committed (else the lake drops their files on opening).
        let wal = lakescope_collector::lake::layout::wal_dir(dir.path());
        std::fs::create_dir_all(&wal).unwrap();
        std::fs::write(wal.join("checkpoint"), "3").unwrap();
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let reference = engine(&lake, 0);
        let first = engine(&lake, 64 << 20);
        let table = Arc::clone(&lake.spans);
        let partitions: Vec<i64> = {
            let mut p: Vec<i64> = table.files().iter().map(|f| f.partition_start).collect();
            p.sort();
            p.dedup();
            p
        };
        assert_eq!(partitions.len(), 3);
        let follow_both = |file: &Arc<LakeFile>| {
            let (engine, file) = (first.clone(), Arc::clone(file));
            async move {
                follow::<Red>(engine.clone(), Arc::clone(&file))
                    .await
                    .unwrap();
                follow::<SpanMetrics>(engine.clone(), Arc::clone(&file))
                    .await
                    .unwrap();
                follow::<Buckets>(engine, file).await.unwrap();
            }
        };
        // Every file followed as it appeared, except the last hour's, which nobody summarised.
        for file in table.files().iter() {
            if file.partition_start != partitions[2] {
                follow_both(file).await;
            }
        }
        for &partition_start in &partitions {
            let inputs: Vec<_> = table
                .files()
                .iter()
                .filter(|f| f.partition_start == partition_start)
                .cloned()
                .collect();
            let plan = Plan {
                partition_start,
                inputs,
            };
            assert!(compact(&lake, &table, &plan).await.unwrap());
        }
        let merged = table.files().to_vec();
        assert_eq!(merged.len(), 3);

        let stats = lakescope_collector::stats::stats();
        let combined_before = |kind| {
            stats
                .query_file_summaries
                .get_or_create(&lakescope_collector::stats::SummaryLabel {
                    kind,
                    from: "inputs",
                })
                .get()
        };
        let (red_before, metrics_before) = (combined_before("red"), combined_before("spanmetrics"));
        let store = first.summary_store();
        for file in &merged {
            follow_both(file).await;
            let summarised = file.partition_start != partitions[2];
            assert_eq!(store.has(Red::NAME, &file.path), summarised);
            assert_eq!(store.has(SpanMetrics::NAME, &file.path), summarised);
            assert_eq!(store.has(Buckets::NAME, &file.path), summarised);
        }
        assert!(combined_before("red") >= red_before + 2);
        assert!(combined_before("spanmetrics") >= metrics_before + 2);

        // Each combined summary equals its file's spans summarised, row by row.
        for file in &merged[..2] {
            for (name, sql) in [
                (Red::NAME, Red::sql("")),
                (SpanMetrics::NAME, SpanMetrics::sql("")),
                (Buckets::NAME, Buckets::sql("")),
            ] {
                let kept = store.read(name, &file.path, &sql).await.unwrap().unwrap();
                let spans = reference
                    .query_pinned("spans", vec![Arc::clone(file)], Vec::new(), false, &sql)
                    .await
                    .unwrap();
                let (kept, spans) = (rows_as_text(&kept), rows_as_text(&spans.batches));
                assert!(kept.len() > 50, "{name}: {} rows", kept.len());
                assert_eq!(kept, spans, "{name} of {}", file.path.display());
            }
        }
        // A restarted server answers from them; the last hour is summarised from its spans.
        let restarted = engine(&lake, 64 << 20);
        summarise_all(&restarted).await;
        assert_same_answers(&restarted, &reference).await;
    }

    fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out.sort();
        out
    }

    /// Until most of a range's files are summarised, requests aggregate the spans; the files of
    /// ranges asked for are then summarised in the background.
    #[tokio::test]
    async fn files_of_recently_asked_ranges_are_rolled_up_ahead_of_requests() {
        let dir = tempfile::tempdir().unwrap();
        write_parts(dir.path(), spans(), 2);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let engine = engine(&lake, 64 << 20);
        let range = TimeRange {
            start: T,
            end: T + 10 * M,
        };
        // The files of the range's hour partition (the fleet has spans hours away too).
        let files: Vec<Arc<LakeFile>> = engine
            .snapshot("spans")
            .unwrap()
            .files
            .iter()
            .filter(|f| f.partition_start + PARTITION_NANOS > range.start)
            .filter(|f| f.partition_start < range.end)
            .cloned()
            .collect();
        assert_eq!(files.len(), 2);
        let stop = tokio_util::sync::CancellationToken::new();
        let warmer = tokio::spawn(warm(engine.clone(), stop.clone()));
        let first = services(&engine, range).await.unwrap();
        assert_eq!(engine.rollups.bytes(), 0, "the first request aggregates");
        let mut cached = 0;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            cached = files
                .iter()
                .filter(|f| engine.rollups.get(&f.path).is_some())
                .count();
            if cached == files.len() {
                break;
            }
        }
        stop.cancel();
        warmer.await.unwrap();
        assert_eq!(cached, files.len());
        assert!(rolled(&engine, range).await);
        assert_eq!(services(&engine, range).await.unwrap(), first);
    }
}
