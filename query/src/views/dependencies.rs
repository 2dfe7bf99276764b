//! The service graph: who calls whom, how often, how often it fails, how slowly.
//!
//! An edge is an exact join over the stored spans, with no pairing window on arrival: a CLIENT or
//! PRODUCER span in the range, and a SERVER or CONSUMER span of another service whose parent it
//! is; each such pair is one call (a producer whose message two services consume makes one call
//! to each). The callee's span is looked for within [`CLOCK_SKEW`] of the range, to tolerate clocks of
//! different hosts, not arrival order. A CLIENT or PRODUCER span with no instrumented child is an
//! edge to a virtual node named from its attributes: a queue (`messaging.system`, its
//! destination), a cache (`db.system` redis, memcached, valkey), a database (`db.system`, named by
//! `peer.service` or `server.address`), or an external host (`peer.service`, `server.address`).
//! Client spans with none of those attributes and no instrumented child are not drawn.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::Array;
use serde::Serialize;

use super::edges::{self, EdgeKey, MINUTE, Name, Tally};
use super::red::Red;
use super::rows;
use crate::engine::{QueryEngine, QueryError, timestamp};
use crate::time_range::TimeRange;

/// How far outside the range a callee's span may start (clock differences between hosts).
pub const CLOCK_SKEW: i64 = 3_600_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Node {
    pub id: String,
    /// `service`, `database`, `cache`, `queue` or `external`.
    pub kind: String,
}

/// Numbers as seen by the callee (service → service edges only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalleeSide {
    #[serde(flatten)]
    pub red: Red,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    pub source: String,
    pub target: String,
    pub target_kind: String,
    /// CLIENT and PRODUCER spans of the caller.
    pub calls: u64,
    pub errors: u64,
    pub error_ratio: f64,
    pub rate_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub callee: Option<CalleeSide>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceGraph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// A caller's virtual peer and its kind, as the columns `peer` and `peer_kind`.
macro_rules! peer_sql {
    () => {
        "CASE
      WHEN messaging_system IS NOT NULL THEN coalesce(messaging_destination, server_address, messaging_system)
      WHEN db_system IS NOT NULL THEN coalesce(peer_service, server_address, db_system)
      ELSE coalesce(peer_service, server_address)
    END AS peer,
    CASE
      WHEN messaging_system IS NOT NULL THEN 'queue'
      WHEN lower(db_system) IN ('redis', 'memcached', 'valkey') THEN 'cache'
      WHEN db_system IS NOT NULL THEN 'database'
      ELSE 'external'
    END AS peer_kind"
    };
}
pub(crate) use peer_sql;

pub(crate) const PEER_SQL: &str = peer_sql!();

/// One join of caller spans with their callee children; each (caller span, callee span) pair is
/// one call, a caller span without an instrumented child one call to its virtual peer. The
/// parameters are the caller range ($1, $2) and the callee range ($3, $4); the span-derived
/// service-graph metrics (`promql::spanmetrics`) aggregate the same `calls`.
///
/// Written as `callees RIGHT JOIN callers` so the hash table is built from the callees, the
/// smaller side (a client span per database or cache call, a server span only per RPC). The
/// callee columns have their own names: DataFusion 55 matches pushed-down filters and dynamic
/// join filters by column name, and with two `service_name`s an outer join lost its rows.
macro_rules! calls_cte {
    () => {
        concat!(
            "
WITH callers AS (
  SELECT trace_id, span_id, service_name, status_code, duration_ns, start_time AS caller_start,
    ",
        $crate::views::dependencies::peer_sql!(),
        "
  FROM spans
  WHERE start_time >= $1 AND start_time < $2 AND span_kind IN ('CLIENT', 'PRODUCER')
),
callees AS (
  SELECT trace_id AS callee_trace, parent_span_id AS callee_parent, service_name AS callee,
    status_code AS callee_status, duration_ns AS callee_ns
  FROM spans
  WHERE start_time >= $3 AND start_time < $4 AND span_kind IN ('SERVER', 'CONSUMER')
    AND parent_span_id IS NOT NULL
),
calls AS (
  SELECT c.service_name AS source, coalesce(s.callee, c.peer) AS target,
    CASE WHEN s.callee IS NULL THEN c.peer_kind ELSE 'service' END AS target_kind,
    c.status_code AS caller_status, c.duration_ns AS caller_ns, c.caller_start,
    s.callee, s.callee_status, s.callee_ns
  FROM callees s RIGHT JOIN callers c ON s.callee_parent = c.span_id AND s.callee_trace = c.trace_id
)"
        )
    };
}
pub(crate) use calls_cte;

const GRAPH_SQL: &str = concat!(
    calls_cte!(),
    "
SELECT source, target, target_kind, count(*) AS calls,
  count(*) FILTER (WHERE caller_status = 'ERROR') AS errors,
  latency_sketch(caller_ns) AS latency,
  count(callee) AS callee_requests,
  count(*) FILTER (WHERE callee_status = 'ERROR') AS callee_errors,
  latency_sketch(callee_ns) AS callee_latency
FROM calls
WHERE target IS NOT NULL AND (callee IS NULL OR callee <> source)
GROUP BY source, target, target_kind"
);

/// The graph of calls whose caller span starts in `range`, widened to whole minutes.
pub async fn graph(engine: &QueryEngine, range: TimeRange) -> Result<ServiceGraph, QueryError> {
    let range = whole_minutes(range);
    let summed = if engine.edges.enabled() {
        edges::summed(engine, range).await?
    } else {
        None
    };
    let (edges, services) = match summed {
        Some(summed) => summed,
        None => match joined(engine, range).await {
            // Too many spans to join within the memory for queries (a busy hour whose files
            // are not summarised yet, as after a restart or a merge): `summed` has asked for
            // the range's summaries, which the background makes one file at a time and which
            // then answer in well under a second.
            Err(QueryError::Memory(e)) if engine.edges.enabled() => {
                return Err(QueryError::Preparing(format!(
                    "the service graph of this range has too many spans to join within the \
                     memory for queries ({e}); its per-file summaries are being made in the \
                     background: ask again in a minute"
                )));
            }
            joined => joined?,
        },
    };
    Ok(assemble(edges, services, range.seconds()))
}

/// `range` with its start rounded down and its end rounded up to a minute.
pub fn whole_minutes(range: TimeRange) -> TimeRange {
    TimeRange {
        start: range.start.div_euclid(MINUTE).saturating_mul(MINUTE),
        end: range
            .end
            .div_euclid(MINUTE)
            .saturating_add(i64::from(range.end.rem_euclid(MINUTE) != 0))
            .saturating_mul(MINUTE),
    }
}

/// The graph by joining the spans of `range` (no summaries kept: `--query-graph-cache 0`).
async fn joined(
    engine: &QueryEngine,
    range: TimeRange,
) -> Result<(BTreeMap<EdgeKey, Tally>, BTreeSet<Name>), QueryError> {
    let params = || {
        vec![
            timestamp(range.start),
            timestamp(range.end),
            timestamp(range.start.saturating_sub(CLOCK_SKEW)),
            timestamp(range.end.saturating_add(CLOCK_SKEW)),
        ]
    };
    let (calls, services) = tokio::try_join!(
        engine.query(GRAPH_SQL, params()),
        engine.query(
            "SELECT DISTINCT service_name FROM spans WHERE start_time >= $1 AND start_time < $2",
            vec![timestamp(range.start), timestamp(range.end)],
        )
    )?;
    let mut edges = BTreeMap::new();
    for batch in &calls.batches {
        let source = rows::strings(batch, "source")?;
        let target = rows::strings(batch, "target")?;
        let kind = rows::strings(batch, "target_kind")?;
        let (calls, errors) = (rows::ints(batch, "calls")?, rows::ints(batch, "errors")?);
        let latency = rows::binaries(batch, "latency")?;
        let (callee_n, callee_e) = (
            rows::ints(batch, "callee_requests")?,
            rows::ints(batch, "callee_errors")?,
        );
        let callee_l = rows::binaries(batch, "callee_latency")?;
        for row in 0..batch.num_rows() {
            let key: EdgeKey = (
                Arc::from(source.value(row)),
                Arc::from(target.value(row)),
                Arc::from(kind.value(row)),
            );
            edges.insert(
                key,
                Tally {
                    calls: rows::count(calls, row),
                    errors: rows::count(errors, row),
                    latency: rows::sketch(latency, row)?,
                    callee_calls: rows::count(callee_n, row),
                    callee_errors: rows::count(callee_e, row),
                    callee_latency: rows::sketch(callee_l, row)?,
                },
            );
        }
    }
    let mut names = BTreeSet::new();
    for batch in &services.batches {
        let name = rows::strings(batch, "service_name")?;
        for row in 0..batch.num_rows() {
            if !name.is_null(row) {
                names.insert(Arc::from(name.value(row)));
            }
        }
    }
    Ok((edges, names))
}

fn assemble(
    tallies: BTreeMap<EdgeKey, Tally>,
    services: BTreeSet<Name>,
    seconds: f64,
) -> ServiceGraph {
    let mut nodes: BTreeSet<Node> = services
        .iter()
        .map(|s| Node {
            id: s.to_string(),
            kind: "service".into(),
        })
        .collect();
    let mut edges = Vec::new();
    for ((source, target, kind), tally) in tallies {
        let red = Red::new(tally.calls, tally.errors, &tally.latency, seconds);
        let callee = (&*kind == "service").then(|| CalleeSide {
            red: Red::new(
                tally.callee_calls,
                tally.callee_errors,
                &tally.callee_latency,
                seconds,
            ),
        });
        nodes.insert(Node {
            id: target.to_string(),
            kind: kind.to_string(),
        });
        edges.push(Edge {
            source: source.to_string(),
            target: target.to_string(),
            target_kind: kind.to_string(),
            calls: red.requests,
            errors: red.errors,
            error_ratio: red.error_ratio,
            rate_per_s: red.rate_per_s,
            p50_ms: red.p50_ms,
            p95_ms: red.p95_ms,
            p99_ms: red.p99_ms,
            callee,
        });
    }
    // A service that is also named as a virtual peer (an uninstrumented view of it) is a service.
    let service_ids: BTreeSet<String> = nodes
        .iter()
        .filter(|n| n.kind == "service")
        .map(|n| n.id.clone())
        .collect();
    nodes.retain(|n| n.kind == "service" || !service_ids.contains(&n.id));
    edges.sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
    ServiceGraph {
        nodes: nodes.into_iter().collect(),
        edges,
    }
}
