//! The service graph summed from per-file summaries, so that a request does not join every span
//! again.
//!
//! The graph (see [`super::dependencies`]) pairs each caller span (CLIENT or PRODUCER) with its
//! callee children (SERVER or CONSUMER); a caller with no callee child is a call to its virtual
//! peer. A lake file never changes, so what it contributes on its own is computed once and kept:
//! per minute of the callers' start and per edge, the numbers of the pairs inside the file and of
//! its callers without a child in it. A file also keeps its *orphans*: callee spans whose parent
//! is not a caller in the same file (a trace cut by a flush or by an hour boundary, a child that
//! arrived late). A request sums the minutes of its range, then looks the orphans' parents up in
//! the other files by trace id (through the bloom filters): each parent found adds a call to the
//! orphan's service, and a parent that had no child in its own file stops counting as a call to
//! its virtual peer. The batches not yet in a file are summarised on every request.
//!
//! A pair inside one file lies in one hour partition, so within [`CLOCK_SKEW`] of each other as
//! the join requires; pairs across files and inside the batches are checked against it. A span
//! stored twice under the same ids (an export sent again after it had in fact arrived) pairs once
//! per file holding it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use lakescope_collector::lake::LakeFile;
use lakescope_collector::lake::layout::PARTITION_NANOS;

use super::dependencies::{CLOCK_SKEW, PEER_SQL};
use crate::engine::{QueryEngine, QueryError};
use crate::sketch::Sketch;
use crate::summaries::{Summary, SummaryCache};
use crate::time_range::TimeRange;

mod stored;

pub const MINUTE: i64 = 60_000_000_000;

/// Most trace ids looked up in one query; more are looked up in several.
const LOOKUP_CHUNK: usize = 512;
/// Beyond this many orphan traces, a file is read whole instead of looked up by id.
const LOOKUP_MAX: usize = 8192;

pub type Name = Arc<str>;
/// (source, target, target kind).
pub type EdgeKey = (Name, Name, Name);

/// An edge's numbers: calls as seen by the caller, and (for pairs) requests as seen by the callee.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub calls: u64,
    pub errors: u64,
    pub latency: Sketch,
    pub callee_calls: u64,
    pub callee_errors: u64,
    pub callee_latency: Sketch,
}

impl Tally {
    fn call(&mut self, failed: bool, ns: i64) {
        self.calls += 1;
        self.errors += u64::from(failed);
        self.latency.add(ns as f64);
    }

    fn answer(&mut self, failed: bool, ns: i64) {
        self.callee_calls += 1;
        self.callee_errors += u64::from(failed);
        self.callee_latency.add(ns as f64);
    }

    /// Takes back a [`Self::call`].
    fn uncall(&mut self, failed: bool, ns: i64) {
        self.calls = self.calls.saturating_sub(1);
        self.errors = self.errors.saturating_sub(u64::from(failed));
        self.latency.remove(ns as f64);
    }

    pub fn merge(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        self.callee_calls += other.callee_calls;
        self.callee_errors += other.callee_errors;
        self.callee_latency.merge(&other.callee_latency);
    }

    fn bytes(&self) -> usize {
        self.latency.bytes() + self.callee_latency.bytes() + 32
    }
}

/// A callee span whose parent is not a caller in its own file.
#[derive(Debug)]
struct Orphan {
    /// Its trace id and its parent's span id.
    key: Key,
    service: Name,
    failed: bool,
    ns: i64,
    start: i64,
}

/// What one file (or the recent batches) contributes to the graph on its own.
#[derive(Debug, Default)]
pub struct FileEdges {
    edges: Vec<EdgeKey>,
    /// (minute of the callers' start, index into `edges`) → numbers.
    minutes: BTreeMap<(i64, usize), Tally>,
    /// (minute, service) of every span.
    services: BTreeSet<(i64, Name)>,
    orphans: Vec<Orphan>,
    bytes: usize,
}

/// The columns every summary and lookup reads: callers and callees (with a parent) only.
fn spans_sql(trace_filter: &str) -> String {
    format!(
        "SELECT trace_id, span_id, parent_span_id, service_name,
           span_kind IN ('CLIENT', 'PRODUCER') AS is_caller,
           coalesce(status_code = 'ERROR', false) AS failed, duration_ns,
           CAST(start_time AS BIGINT) AS start, {PEER_SQL}
         FROM spans
         WHERE (span_kind IN ('CLIENT', 'PRODUCER')
           OR (span_kind IN ('SERVER', 'CONSUMER') AND parent_span_id IS NOT NULL)) {trace_filter}"
    )
}

const SERVICES_SQL: &str = "SELECT DISTINCT service_name, \
     CAST(start_time AS BIGINT) / 60000000000 AS minute FROM spans";

/// A caller's ids, or a callee's trace and parent ids, as one fixed-size key (spans are
/// validated on receipt: trace ids have 16 bytes, span ids 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    trace: u128,
    span: u64,
}

impl Key {
    fn of(trace: &[u8], span: &[u8]) -> Option<Self> {
        Some(Self {
            trace: u128::from_le_bytes(trace.try_into().ok()?),
            span: u64::from_le_bytes(span.try_into().ok()?),
        })
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Every bit goes in: ids are client-controlled, so no fold an attacker could aim at.
        state.write_u128(self.trace);
        state.write_u64(self.span);
    }
}

/// foldhash: much cheaper than SipHash on fixed-size ids. Its seed comes from the operating
/// system's randomness (through std's `RandomState`) once per process, so a client cannot choose
/// ids that collide.
type Quick = foldhash::fast::FixedState;

fn quick() -> Quick {
    static SEED: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
    });
    Quick::with_seed(*SEED)
}

const NONE: usize = usize::MAX;

/// Caller range and callee range (Unix ns, half-open) a pair must fall in.
#[derive(Debug, Clone, Copy)]
struct Window {
    callers: (i64, i64),
    callees: (i64, i64),
}

impl Window {
    fn of(range: TimeRange) -> Self {
        Self {
            callers: (range.start, range.end),
            callees: (
                range.start.saturating_sub(CLOCK_SKEW),
                range.end.saturating_add(CLOCK_SKEW),
            ),
        }
    }

    fn pairs(&self, caller_start: i64, callee_start: i64) -> bool {
        (self.callers.0..self.callers.1).contains(&caller_start)
            && (self.callees.0..self.callees.1).contains(&callee_start)
    }
}

/// Interned names and edges of one summary.
#[derive(Default)]
struct Names {
    ids: HashMap<String, u32>,
    names: Vec<Name>,
    last: Option<u32>,
    edges: HashMap<(u32, u32, u32), usize>,
    keys: Vec<EdgeKey>,
}

impl Names {
    fn id(&mut self, text: &str) -> u32 {
        // Rows come sorted by service: most lookups repeat the last one.
        if let Some(id) = self.last.filter(|id| &*self.names[*id as usize] == text) {
            return id;
        }
        let id = match self.ids.get(text) {
            Some(id) => *id,
            None => {
                let id = self.names.len() as u32;
                self.names.push(Arc::from(text));
                self.ids.insert(text.to_owned(), id);
                id
            }
        };
        self.last = Some(id);
        id
    }

    fn name(&self, id: u32) -> Name {
        Arc::clone(&self.names[id as usize])
    }

    fn edge(&mut self, source: u32, target: u32, kind: u32) -> usize {
        if let Some(i) = self.edges.get(&(source, target, kind)) {
            return *i;
        }
        let key = (self.name(source), self.name(target), self.name(kind));
        self.keys.push(key);
        self.edges
            .insert((source, target, kind), self.keys.len() - 1);
        self.keys.len() - 1
    }
}

fn mistyped(name: &str) -> QueryError {
    QueryError::Execution(format!(
        "graph summary: column {name} is missing or mistyped"
    ))
}

fn column<'a, T: ?Sized>(
    batch: &'a RecordBatch,
    name: &str,
    typed: impl FnOnce(&'a dyn Array) -> Option<&'a T>,
) -> Result<&'a T, QueryError> {
    batch
        .column_by_name(name)
        .and_then(|c| typed(c.as_ref()))
        .ok_or_else(|| mistyped(name))
}

/// The rows of [`spans_sql`] in compact columns, and the callers indexed by their ids.
#[derive(Default)]
struct Rows {
    callee_key: Vec<Option<Key>>,
    service: Vec<u32>,
    caller: Vec<bool>,
    failed: Vec<bool>,
    ns: Vec<i64>,
    start: Vec<i64>,
    peer: Vec<Option<(u32, u32)>>,
    /// First caller row of each key; `next` chains callers that share it.
    callers: HashMap<Key, usize, Quick>,
    next: Vec<usize>,
    /// Callers with a callee child among these rows (inside the window, when given).
    matched: Vec<bool>,
}

impl Rows {
    /// Reads the batches; `window` restricts the pairs (the recent batches, which are not one
    /// hour partition), `None` takes every pair.
    fn new(
        batches: &[RecordBatch],
        names: &mut Names,
        window: Option<Window>,
    ) -> Result<Self, QueryError> {
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut me = Self {
            callee_key: Vec::with_capacity(total),
            service: Vec::with_capacity(total),
            caller: Vec::with_capacity(total),
            failed: Vec::with_capacity(total),
            ns: Vec::with_capacity(total),
            start: Vec::with_capacity(total),
            peer: Vec::with_capacity(total),
            callers: HashMap::with_capacity_and_hasher(total / 2, quick()),
            next: vec![NONE; total],
            matched: vec![false; total],
        };
        for batch in batches {
            let binary = |name| column(batch, name, |c| c.as_binary_opt::<i32>());
            let string = |name| column(batch, name, |c| c.as_string_opt::<i32>());
            let boolean = |name| column(batch, name, |c| c.as_boolean_opt());
            let int = |name| column(batch, name, |c| c.as_primitive_opt::<Int64Type>());
            let (trace, span, parent) = (
                binary("trace_id")?,
                binary("span_id")?,
                binary("parent_span_id")?,
            );
            let (service, peer, peer_kind) = (
                string("service_name")?,
                string("peer")?,
                string("peer_kind")?,
            );
            let (is_caller, failed) = (boolean("is_caller")?, boolean("failed")?);
            let (ns, start) = (int("duration_ns")?, int("start")?);
            for row in 0..batch.num_rows() {
                let at = me.service.len();
                let caller = is_caller.is_valid(row) && is_caller.value(row);
                me.caller.push(caller);
                me.service.push(names.id(service.value(row)));
                me.failed.push(failed.is_valid(row) && failed.value(row));
                me.ns.push(ns.value(row));
                me.start.push(start.value(row));
                me.peer.push(
                    (caller && peer.is_valid(row))
                        .then(|| (names.id(peer.value(row)), names.id(peer_kind.value(row)))),
                );
                let trace = trace.value(row);
                if caller {
                    me.callee_key.push(None);
                    if let Some(key) = Key::of(trace, span.value(row))
                        && let Some(first) = me.callers.insert(key, at)
                    {
                        me.next[at] = first;
                    }
                } else {
                    me.callee_key.push(
                        parent
                            .is_valid(row)
                            .then(|| Key::of(trace, parent.value(row)))
                            .flatten(),
                    );
                }
            }
        }
        for row in 0..me.rows() {
            let mut c = me.parent_of(row);
            while c != NONE {
                if window.is_none_or(|w| w.pairs(me.start[c], me.start[row])) {
                    me.matched[c] = true;
                }
                c = me.next[c];
            }
        }
        Ok(me)
    }

    fn rows(&self) -> usize {
        self.next.len()
    }

    /// First caller row whose ids are `row`'s parent, or [`NONE`] (also for a caller's row).
    fn parent_of(&self, row: usize) -> usize {
        self.callee_key[row].map_or(NONE, |key| self.find(key))
    }

    fn find(&self, key: Key) -> usize {
        self.callers.get(&key).copied().unwrap_or(NONE)
    }
}

/// Summarises one file's rows (or the recent batches', with `window`).
fn summarize(
    spans: &[RecordBatch],
    services: &[RecordBatch],
    window: Option<Window>,
) -> Result<FileEdges, QueryError> {
    let mut names = Names::default();
    let service_kind = names.id("service");
    let mut out = FileEdges::default();
    let rows = Rows::new(spans, &mut names, window)?;
    for row in 0..rows.rows() {
        let Some(key) = rows.callee_key[row] else {
            continue;
        };
        let mut c = rows.find(key);
        if c == NONE {
            out.orphans.push(Orphan {
                key,
                service: names.name(rows.service[row]),
                failed: rows.failed[row],
                ns: rows.ns[row],
                start: rows.start[row],
            });
        }
        while c != NONE {
            let (source, target) = (rows.service[c], rows.service[row]);
            let paired = window.is_none_or(|w| w.pairs(rows.start[c], rows.start[row]));
            if paired && source != target {
                let edge = names.edge(source, target, service_kind);
                let tally = out
                    .minutes
                    .entry((rows.start[c].div_euclid(MINUTE), edge))
                    .or_default();
                tally.call(rows.failed[c], rows.ns[c]);
                tally.answer(rows.failed[row], rows.ns[row]);
            }
            c = rows.next[c];
        }
    }
    for row in 0..rows.rows() {
        let in_range = window.is_none_or(|w| (w.callers.0..w.callers.1).contains(&rows.start[row]));
        if !rows.caller[row] || rows.matched[row] || !in_range {
            continue;
        }
        if let Some((peer, kind)) = rows.peer[row] {
            let edge = names.edge(rows.service[row], peer, kind);
            out.minutes
                .entry((rows.start[row].div_euclid(MINUTE), edge))
                .or_default()
                .call(rows.failed[row], rows.ns[row]);
        }
    }
    for batch in services {
        let service = column(batch, "service_name", |c| c.as_string_opt::<i32>())?;
        let minute = column(batch, "minute", |c| c.as_primitive_opt::<Int64Type>())?;
        for row in 0..batch.num_rows() {
            if service.is_valid(row) && minute.is_valid(row) {
                let id = names.id(service.value(row));
                out.services.insert((minute.value(row), names.name(id)));
            }
        }
    }
    out.edges = names.keys;
    out.measure();
    Ok(out)
}

impl FileEdges {
    /// Sets the bytes it holds.
    fn measure(&mut self) {
        self.bytes = std::mem::size_of::<FileEdges>()
            + self.minutes.values().map(|t| t.bytes() + 16).sum::<usize>()
            + self.services.len() * 32
            + self.orphans.len() * std::mem::size_of::<Orphan>()
            + self.edges.len() * 48;
    }
}

/// What a graph summary kept on disk records as its making: the two queries and the parts'
/// format.
fn stored_query() -> String {
    format!("{}\n{SERVICES_SQL}\ngraph parts 1", spans_sql(""))
}

/// The graph's per-file summaries.
pub type EdgeCache = SummaryCache<FileEdges>;

impl Summary for FileEdges {
    fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One file's summary: from the cache, else from disk, else computed (and kept on disk); cached.
async fn summary(engine: &QueryEngine, file: &Arc<LakeFile>) -> Result<Arc<FileEdges>, QueryError> {
    if let Some(found) = engine.edges.get(&file.path) {
        return Ok(found);
    }
    let store = engine.summary_store();
    let query = stored_query();
    // A summary on disk that cannot be read is made again (and overwritten).
    let kept = stored::read(store, &file.path, &query)
        .await
        .unwrap_or_else(|e| {
            tracing::debug!(error = %e, "stored graph summary");
            None
        });
    let summary = match kept {
        Some(kept) => Arc::new(kept),
        None => {
            let files = || vec![Arc::clone(file)];
            let sql = spans_sql("");
            let (spans, services) = tokio::try_join!(
                engine.query_pinned("spans", files(), Vec::new(), false, &sql),
                engine.query_pinned("spans", files(), Vec::new(), false, SERVICES_SQL),
            )?;
            let made = Arc::new(
                tokio::task::spawn_blocking(move || {
                    summarize(&spans.batches, &services.batches, None)
                })
                .await
                .map_err(|e| QueryError::Execution(format!("graph summary: {e}")))??,
            );
            // Not kept (a full disk, the file merged away meanwhile): made again next time.
            if let Err(e) = stored::write(store, &file.path, &query, &made).await {
                tracing::debug!(error = %e, "storing a graph summary");
            }
            made
        }
    };
    engine.edges.put(file.path.clone(), Arc::clone(&summary));
    Ok(summary)
}

/// Where a parent may be: a file, or the recent batches.
enum Unit {
    File(Arc<LakeFile>),
    Batches(Vec<RecordBatch>),
}

/// The rows of `unit` in `traces` (all of its callers and callees when there are many).
async fn lookup(
    engine: &QueryEngine,
    unit: &Unit,
    traces: &[[u8; 16]],
) -> Result<Vec<RecordBatch>, QueryError> {
    let (files, batches) = match unit {
        Unit::File(f) => (vec![Arc::clone(f)], Vec::new()),
        Unit::Batches(b) => (Vec::new(), b.clone()),
    };
    if traces.len() > LOOKUP_MAX || matches!(unit, Unit::Batches(_)) {
        let rows = engine
            .query_pinned("spans", files, batches, false, &spans_sql(""))
            .await?;
        return Ok(rows.batches);
    }
    let mut out = Vec::new();
    for chunk in traces.chunks(LOOKUP_CHUNK) {
        let list: Vec<String> = chunk
            .iter()
            .map(|t| format!("X'{}'", const_hex::encode(t)))
            .collect();
        let filter = format!("AND trace_id IN ({})", list.join(", "));
        let rows = engine
            .query_pinned(
                "spans",
                files.clone(),
                batches.clone(),
                true,
                &spans_sql(&filter),
            )
            .await?;
        out.extend(rows.batches);
    }
    Ok(out)
}

/// Keeps the summaries of the files that recent graph requests read computed ahead of the next
/// request (see [`crate::summaries::warm`]), from [`CLOCK_SKEW`] before the ranges asked for,
/// where their callers may be.
pub async fn warm(engine: QueryEngine, stop: tokio_util::sync::CancellationToken) {
    let cache = Arc::clone(&engine.edges);
    crate::summaries::warm(
        engine,
        cache,
        crate::summaries::Warming {
            table: "spans",
            reach_back: CLOCK_SKEW,
            stored: &stored::KINDS,
            // Summarised on request only: the graph's summaries are not combined from inputs'.
            follow: None,
        },
        stop,
        |engine, file| async move { summary(&engine, &file).await },
    )
    .await;
}

/// Summarising a file costs about this many times what reading its spans for the join does.
const SUMMARY_COST: u64 = 3;

/// The graph's edges and the services seen, for a range of whole minutes; `None` when too few
/// of the range's files are summarised yet for the summaries to be the quicker way (the range
/// is then summarised in the background by [`warm`]).
pub async fn summed(
    engine: &QueryEngine,
    range: TimeRange,
) -> Result<Option<(BTreeMap<EdgeKey, Tally>, BTreeSet<Name>)>, QueryError> {
    let window = Window::of(range);
    engine.edges.asked(range.start);
    let snapshot = engine
        .snapshot("spans")
        .ok_or_else(|| QueryError::Execution("no spans table".into()))?;
    let live: HashSet<PathBuf> = snapshot.files.iter().map(|f| f.path.clone()).collect();
    let overlaps = |f: &LakeFile, (lo, hi): (i64, i64)| {
        f.partition_start < hi && f.partition_start + PARTITION_NANOS > lo
    };
    // Summarising a file costs about three times what joining its spans once does: when most of
    // the range is not summarised yet, join now and leave the summaries to `warm`.
    let (missing, total) = snapshot
        .files
        .iter()
        .filter(|f| overlaps(f, window.callees))
        .fold((0u64, 0u64), |(missing, total), f| {
            let absent = engine.edges.get(&f.path).is_none()
                && !engine.summary_store().has(stored::KINDS[0], &f.path);
            (missing + if absent { f.size } else { 0 }, total + f.size)
        });
    if missing.saturating_mul(SUMMARY_COST) > total {
        return Ok(None);
    }
    let mut units: Vec<(Unit, Arc<FileEdges>, bool)> = Vec::new();
    for file in snapshot.files.iter() {
        if overlaps(file, window.callees) {
            let summary = summary(engine, file).await?;
            units.push((
                Unit::File(Arc::clone(file)),
                summary,
                overlaps(file, window.callers),
            ));
        }
    }
    if !snapshot.batches.is_empty() {
        let batches = snapshot.batches.clone();
        let sql = spans_sql("");
        let (spans, services) = tokio::try_join!(
            engine.query_pinned("spans", Vec::new(), batches.clone(), false, &sql),
            engine.query_pinned("spans", Vec::new(), batches.clone(), false, SERVICES_SQL),
        )?;
        let summary = summarize(&spans.batches, &services.batches, Some(window))?;
        units.push((Unit::Batches(batches), Arc::new(summary), true));
    }

    let minutes = (range.start.div_euclid(MINUTE), range.end.div_euclid(MINUTE));
    let mut totals: BTreeMap<EdgeKey, Tally> = BTreeMap::new();
    let mut services: BTreeSet<Name> = BTreeSet::new();
    for (_, summary, callers) in &units {
        if !callers {
            continue;
        }
        for ((_, edge), tally) in summary.minutes.range((minutes.0, 0)..(minutes.1, 0)) {
            totals
                .entry(summary.edges[*edge].clone())
                .or_default()
                .merge(tally);
        }
        services.extend(
            summary
                .services
                .iter()
                .filter(|(m, _)| (minutes.0..minutes.1).contains(m))
                .map(|(_, s)| Arc::clone(s)),
        );
    }

    // Pairs across files: each orphan's parent, wherever it is.
    let orphans: Vec<&Orphan> = units
        .iter()
        .flat_map(|(_, s, _)| s.orphans.iter())
        .filter(|o| (window.callees.0..window.callees.1).contains(&o.start))
        .collect();
    if !orphans.is_empty() {
        let traces: Vec<[u8; 16]> = orphans
            .iter()
            .map(|o| o.key.trace.to_le_bytes())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for (unit, _, callers) in &units {
            if !callers {
                continue;
            }
            let batches = lookup(engine, unit, &traces).await?;
            let in_batches = matches!(unit, Unit::Batches(_));
            let mut names = Names::default();
            let rows = Rows::new(&batches, &mut names, in_batches.then_some(window))?;
            let service_kind = Arc::<str>::from("service");
            let mut unpeered: HashSet<usize> = HashSet::new();
            for orphan in &orphans {
                let mut c = rows.find(orphan.key);
                while c != NONE {
                    if window.pairs(rows.start[c], orphan.start) {
                        let source = names.name(rows.service[c]);
                        if source != orphan.service {
                            let key: EdgeKey = (
                                Arc::clone(&source),
                                Arc::clone(&orphan.service),
                                Arc::clone(&service_kind),
                            );
                            let tally = totals.entry(key).or_default();
                            tally.call(rows.failed[c], rows.ns[c]);
                            tally.answer(orphan.failed, orphan.ns);
                        }
                        // Counted as a call to its virtual peer in its own summary: no longer.
                        if !rows.matched[c]
                            && unpeered.insert(c)
                            && let Some((peer, kind)) = rows.peer[c]
                        {
                            let key: EdgeKey = (source, names.name(peer), names.name(kind));
                            if let Some(tally) = totals.get_mut(&key) {
                                tally.uncall(rows.failed[c], rows.ns[c]);
                            }
                        }
                    }
                    c = rows.next[c];
                }
            }
        }
    }
    totals.retain(|_, t| t.calls > 0);
    let held = engine.edges.retain(&live);
    lakescope_collector::stats::stats()
        .query_graph_cache_bytes
        .set(held as i64);
    Ok(Some((totals, services)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueryLimits;
    use crate::views::dependencies::{ServiceGraph, graph, whole_minutes};
    use crate::views::test_fleet::{Dice, MINUTE as M, T, batch, fleet, garble, write_parts};

    fn engine(lake: &lakescope_collector::Lake, graph_cache_bytes: usize) -> QueryEngine {
        let limits = QueryLimits {
            graph_cache_bytes,
            ..QueryLimits::default()
        };
        QueryEngine::new(lake, limits).unwrap()
    }

    fn assert_same(ours: &ServiceGraph, reference: &ServiceGraph, label: &str) {
        assert!(reference.edges.len() >= 20, "{label}: {reference:?}");
        assert_eq!(ours.nodes, reference.nodes, "{label}");
        let ids = |g: &ServiceGraph| -> Vec<(String, String)> {
            g.edges
                .iter()
                .map(|e| (e.source.clone(), e.target.clone()))
                .collect()
        };
        assert_eq!(ids(ours), ids(reference), "{label}");
        for (a, b) in ours.edges.iter().zip(&reference.edges) {
            assert_eq!(a, b, "{label}");
        }
    }

    /// Summarises every file, as `warm` does in the background.
    async fn summarise_all(engine: &QueryEngine) {
        for file in engine.snapshot("spans").unwrap().files.iter() {
            summary(engine, file).await.unwrap();
        }
    }

    const RANGES: [(i64, i64); 4] = [
        (T, T + 10 * M),
        (T - M, T + 11 * M),
        (T + 3 * M + 17, T + 7 * M - 5),
        (T - 3 * CLOCK_SKEW, T + 3 * CLOCK_SKEW),
    ];

    /// A range whose spans are too many to join within the memory for queries, and whose files
    /// are not summarised yet, is answered "being prepared, ask again" (HTTP 503), not "narrow
    /// it"; once the files are summarised the same engine answers from the summaries, equal to
    /// the join made with enough memory.
    #[tokio::test]
    async fn a_graph_too_large_to_join_is_answered_once_its_files_are_summarised() {
        let dir = tempfile::tempdir().unwrap();
        write_parts(dir.path(), fleet(&mut Dice(0x9e37_79b9_7f4a_7c15)), 3);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let small = QueryEngine::new(
            &lake,
            QueryLimits {
                memory_bytes: 1024,
                graph_cache_bytes: 64 << 20,
                ..QueryLimits::default()
            },
        )
        .unwrap();
        let range = TimeRange {
            start: RANGES[1].0,
            end: RANGES[1].1,
        };
        let refused = graph(&small, range).await.unwrap_err();
        assert!(matches!(refused, QueryError::Preparing(_)), "{refused:?}");
        // Without summaries to wait for, the same shortage stays "narrow it".
        let never = QueryEngine::new(
            &lake,
            QueryLimits {
                memory_bytes: 1024,
                graph_cache_bytes: 0,
                ..QueryLimits::default()
            },
        )
        .unwrap();
        let refused = graph(&never, range).await.unwrap_err();
        assert!(matches!(refused, QueryError::Memory(_)), "{refused:?}");

        let reference = graph(&engine(&lake, 0), range).await.unwrap();
        // Summarised (and kept on disk) as the background would.
        summarise_all(&engine(&lake, 64 << 20)).await;
        let answered = graph(&small, range).await.unwrap();
        assert_same(&answered, &reference, "summarised after the refusal");
    }

    /// The fleet's callers and callees spread over three files per hour partition, so that most
    /// pairs cross files, and producers' two consumers often sit in two other files: the summed
    /// graph must equal the join over the same spans, edge by edge, number by number.
    #[tokio::test]
    async fn the_graph_summed_from_file_summaries_equals_the_join_of_the_spans() {
        let dir = tempfile::tempdir().unwrap();
        write_parts(dir.path(), fleet(&mut Dice(0x9e37_79b9_7f4a_7c15)), 3);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let summed = engine(&lake, 64 << 20);
        let joined = engine(&lake, 0);
        summarise_all(&summed).await;
        for (start, end) in RANGES {
            let range = TimeRange { start, end };
            assert!(
                super::summed(&summed, whole_minutes(range))
                    .await
                    .unwrap()
                    .is_some()
            );
            // The engine without summaries joins the spans: the reference.
            let reference = graph(&joined, range).await.unwrap();
            let first = graph(&summed, range).await.unwrap();
            let again = graph(&summed, range).await.unwrap();
            assert_same(&first, &reference, &format!("{start}..{end}"));
            assert_same(&again, &reference, &format!("{start}..{end}, cached"));
        }
        assert!(summed.edges.bytes() > 0);

        // The summaries do hold orphans: without looking their parents up, the counts differ.
        let snapshot = summed.snapshot("spans").unwrap();
        let mut orphans = 0;
        for file in snapshot.files.iter() {
            orphans += summed.edges.get(&file.path).unwrap().orphans.len();
        }
        assert!(orphans > 500, "{orphans} orphans");
    }

    /// Everything a summary holds, its edges by name, to compare summaries made apart.
    fn contents(edges: &FileEdges) -> String {
        let minutes: Vec<_> = edges
            .minutes
            .iter()
            .map(|((minute, i), tally)| (minute, &edges.edges[*i], tally))
            .collect();
        format!("{minutes:?} {:?} {:?}", edges.services, edges.orphans)
    }

    /// A new engine over the same lake (a restarted server) reads the summaries kept on disk:
    /// the same summaries, and the same graph as the join.
    #[tokio::test]
    async fn a_restarted_server_reads_the_summaries_kept_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        write_parts(dir.path(), fleet(&mut Dice(0x3c6e_f372_fe94_f82b)), 3);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let joined = engine(&lake, 0);
        let first = engine(&lake, 64 << 20);
        summarise_all(&first).await;
        let restarted = engine(&lake, 64 << 20);
        assert_eq!(restarted.edges.bytes(), 0);
        for (start, end) in RANGES {
            let range = TimeRange { start, end };
            assert!(
                super::summed(&restarted, whole_minutes(range))
                    .await
                    .unwrap()
                    .is_some(),
                "answered from the disk"
            );
            let reference = graph(&joined, range).await.unwrap();
            let ours = graph(&restarted, range).await.unwrap();
            assert_same(&ours, &reference, &format!("{start}..{end}"));
        }
        // Read from the disk indeed: a lake file overwritten with garbage (same size and time)
        // still has its summary, equal to the one made from the spans.
        let file = first
            .snapshot("spans")
            .unwrap()
            .files
            .iter()
            .max_by_key(|f| first.edges.get(&f.path).unwrap().orphans.len())
            .cloned()
            .unwrap();
        let made = first.edges.get(&file.path).unwrap();
        assert!(!made.orphans.is_empty() && !made.minutes.is_empty());
        garble(&file.path);
        let read = summary(&engine(&lake, 64 << 20), &file).await.unwrap();
        assert_eq!(contents(&read), contents(&made));
    }

    /// A third of the spans not yet flushed: pairs between the recent batches and the files, both
    /// ways, count as the join counts them.
    #[tokio::test]
    async fn recent_batches_pair_with_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let spans = fleet(&mut Dice(0x2545_f491_4f6c_dd1d));
        let (flushed, recent): (Vec<_>, Vec<_>) =
            spans.into_iter().enumerate().partition(|(i, _)| i % 3 != 0);
        write_parts(dir.path(), flushed.into_iter().map(|(_, s)| s).collect(), 2);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let table = lake
            .tables()
            .into_iter()
            .find(|t| t.name() == "spans")
            .unwrap();
        table.push(1, batch(recent.into_iter().map(|(_, s)| s).collect()));
        let summed = engine(&lake, 64 << 20);
        let joined = engine(&lake, 0);
        summarise_all(&summed).await;
        for (start, end) in RANGES {
            let range = TimeRange { start, end };
            assert!(
                super::summed(&summed, whole_minutes(range))
                    .await
                    .unwrap()
                    .is_some()
            );
            let reference = graph(&joined, range).await.unwrap();
            let ours = graph(&summed, range).await.unwrap();
            assert_same(&ours, &reference, &format!("{start}..{end}"));
        }
    }

    /// After a graph request, the files of its range are summarised in the background, without
    /// waiting for the next request.
    #[tokio::test]
    async fn files_of_recently_asked_ranges_are_summarised_ahead_of_requests() {
        let dir = tempfile::tempdir().unwrap();
        write_parts(dir.path(), fleet(&mut Dice(7)), 2);
        let lake = lakescope_collector::Lake::open(dir.path()).unwrap();
        let engine = engine(&lake, 64 << 20);
        let files = engine.snapshot("spans").unwrap().files;
        assert!(files.len() >= 4);
        let stop = tokio_util::sync::CancellationToken::new();
        let warmer = tokio::spawn(warm(engine.clone(), stop.clone()));
        // Nothing asked for yet: nothing summarised.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert_eq!(engine.edges.bytes(), 0);
        // The first request finds nothing summarised: it joins the spans, and asks for them.
        let range = TimeRange {
            start: T,
            end: T + 10 * M,
        };
        let answer = graph(&engine, range).await.unwrap();
        assert!(answer.edges.len() >= 20);
        assert_eq!(engine.edges.bytes(), 0);
        let mut cached = 0;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            cached = files
                .iter()
                .filter(|f| engine.edges.get(&f.path).is_some())
                .count();
            if cached == files.len() {
                break;
            }
        }
        stop.cancel();
        warmer.await.unwrap();
        assert_eq!(cached, files.len());
        // Now answered from the summaries, with the same numbers.
        assert!(super::summed(&engine, range).await.unwrap().is_some());
        assert_eq!(graph(&engine, range).await.unwrap(), answer);
    }

    #[tokio::test]
    async fn ranges_widen_to_whole_minutes() {
        let r = whole_minutes(TimeRange {
            start: T + 3 * M + 17,
            end: T + 7 * M - 5,
        });
        assert_eq!((r.start, r.end), (T + 3 * M, T + 7 * M));
        let r = whole_minutes(TimeRange {
            start: T,
            end: T + 7 * M,
        });
        assert_eq!((r.start, r.end), (T, T + 7 * M));
    }
}
