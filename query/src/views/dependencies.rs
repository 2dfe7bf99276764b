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

use std::collections::BTreeSet;

use serde::Serialize;

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
        "
WITH callers AS (
  SELECT trace_id, span_id, service_name, status_code, duration_ns, start_time AS caller_start,
    CASE
      WHEN messaging_system IS NOT NULL THEN coalesce(messaging_destination, server_address, messaging_system)
      WHEN db_system IS NOT NULL THEN coalesce(peer_service, server_address, db_system)
      ELSE coalesce(peer_service, server_address)
    END AS peer,
    CASE
      WHEN messaging_system IS NOT NULL THEN 'queue'
      WHEN lower(db_system) IN ('redis', 'memcached', 'valkey') THEN 'cache'
      WHEN db_system IS NOT NULL THEN 'database'
      ELSE 'external'
    END AS peer_kind
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

/// The graph of calls made in `range`.
pub async fn graph(engine: &QueryEngine, range: TimeRange) -> Result<ServiceGraph, QueryError> {
    let params = || {
        vec![
            timestamp(range.start),
            timestamp(range.end),
            timestamp(range.start.saturating_sub(CLOCK_SKEW)),
            timestamp(range.end.saturating_add(CLOCK_SKEW)),
        ]
    };
    let seconds = range.seconds();
    let (calls, services) = tokio::try_join!(
        engine.query(GRAPH_SQL, params()),
        engine.query(
            "SELECT DISTINCT service_name FROM spans WHERE start_time >= $1 AND start_time < $2",
            vec![timestamp(range.start), timestamp(range.end)],
        )
    )?;
    let mut nodes: BTreeSet<Node> = BTreeSet::new();
    let mut edges = Vec::new();
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
            let red = Red::new(
                rows::count(calls, row),
                rows::count(errors, row),
                &rows::sketch(latency, row)?,
                seconds,
            );
            let kind = kind.value(row).to_owned();
            let callee = (kind == "service").then(|| {
                rows::sketch(callee_l, row).map(|sketch| CalleeSide {
                    red: Red::new(
                        rows::count(callee_n, row),
                        rows::count(callee_e, row),
                        &sketch,
                        seconds,
                    ),
                })
            });
            let target = target.value(row).to_owned();
            nodes.insert(Node {
                id: target.clone(),
                kind: kind.clone(),
            });
            edges.push(Edge {
                source: source.value(row).to_owned(),
                target,
                target_kind: kind,
                calls: red.requests,
                errors: red.errors,
                error_ratio: red.error_ratio,
                rate_per_s: red.rate_per_s,
                p50_ms: red.p50_ms,
                p95_ms: red.p95_ms,
                p99_ms: red.p99_ms,
                callee: callee.transpose()?,
            });
        }
    }
    for batch in &services.batches {
        let name = rows::strings(batch, "service_name")?;
        for row in 0..batch.num_rows() {
            nodes.insert(Node {
                id: name.value(row).to_owned(),
                kind: "service".into(),
            });
        }
    }
    // A service that is also named as a virtual peer (an uninstrumented view of it) is a service.
    let service_ids: BTreeSet<String> = nodes
        .iter()
        .filter(|n| n.kind == "service")
        .map(|n| n.id.clone())
        .collect();
    nodes.retain(|n| n.kind == "service" || !service_ids.contains(&n.id));
    edges.sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
    Ok(ServiceGraph {
        nodes: nodes.into_iter().collect(),
        edges,
    })
}
