//! The service graph: who calls whom, how often, how often it fails, how slowly.
//!
//! An edge is an exact join over the stored spans, with no pairing window on arrival: a CLIENT or
//! PRODUCER span in the range, and a SERVER or CONSUMER span of another service whose parent it
//! is. The callee's span is looked for within [`CLOCK_SKEW`] of the range, to tolerate clocks of
//! different hosts, not arrival order. A CLIENT or PRODUCER span with no instrumented child is an
//! edge to a virtual node named from its attributes: a queue (`messaging.system`, its
//! destination), a cache (`db.system` redis, memcached, valkey), a database (`db.system`, named by
//! `peer.service` or `server.address`), or an external host (`peer.service`, `server.address`).
//! Client spans with none of those attributes and no instrumented child are not drawn.

use std::collections::{BTreeMap, BTreeSet};

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

const CALLER_SQL: &str = "
WITH callers AS (
  SELECT trace_id, span_id, service_name, status_code, duration_ns,
         db_system, messaging_system, messaging_destination, server_address, peer_service
  FROM spans
  WHERE start_time >= $1 AND start_time < $2 AND span_kind IN ('CLIENT', 'PRODUCER')
),
callees AS (
  SELECT trace_id, parent_span_id, min(service_name) AS callee
  FROM spans
  WHERE start_time >= $3 AND start_time < $4 AND span_kind IN ('SERVER', 'CONSUMER')
    AND parent_span_id IS NOT NULL
  GROUP BY trace_id, parent_span_id
),
calls AS (
  SELECT c.service_name AS source, c.status_code, c.duration_ns,
    CASE
      WHEN s.callee IS NOT NULL THEN s.callee
      WHEN c.messaging_system IS NOT NULL THEN coalesce(c.messaging_destination, c.server_address, c.messaging_system)
      WHEN c.db_system IS NOT NULL THEN coalesce(c.peer_service, c.server_address, c.db_system)
      ELSE coalesce(c.peer_service, c.server_address)
    END AS target,
    CASE
      WHEN s.callee IS NOT NULL THEN 'service'
      WHEN c.messaging_system IS NOT NULL THEN 'queue'
      WHEN lower(c.db_system) IN ('redis', 'memcached', 'valkey') THEN 'cache'
      WHEN c.db_system IS NOT NULL THEN 'database'
      ELSE 'external'
    END AS target_kind
  FROM callers c LEFT JOIN callees s ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id
  WHERE s.callee IS NULL OR s.callee <> c.service_name
)
SELECT source, target, target_kind, count(*) AS calls,
  count(*) FILTER (WHERE status_code = 'ERROR') AS errors,
  latency_sketch(duration_ns) AS latency
FROM calls WHERE target IS NOT NULL
GROUP BY source, target, target_kind";

const CALLEE_SQL: &str = "
SELECT c.service_name AS source, s.service_name AS target, count(*) AS requests,
  count(*) FILTER (WHERE s.status_code = 'ERROR') AS errors,
  latency_sketch(s.duration_ns) AS latency
FROM spans c JOIN spans s ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id
WHERE c.start_time >= $1 AND c.start_time < $2 AND c.span_kind IN ('CLIENT', 'PRODUCER')
  AND s.start_time >= $3 AND s.start_time < $4 AND s.span_kind IN ('SERVER', 'CONSUMER')
  AND s.service_name <> c.service_name
GROUP BY c.service_name, s.service_name";

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

    let mut callee_side: BTreeMap<(String, String), CalleeSide> = BTreeMap::new();
    for batch in &engine.query(CALLEE_SQL, params()).await?.batches {
        let (source, target) = (
            rows::strings(batch, "source")?,
            rows::strings(batch, "target")?,
        );
        let (requests, errors) = (rows::ints(batch, "requests")?, rows::ints(batch, "errors")?);
        let latency = rows::binaries(batch, "latency")?;
        for row in 0..batch.num_rows() {
            callee_side.insert(
                (source.value(row).to_owned(), target.value(row).to_owned()),
                CalleeSide {
                    red: Red::new(
                        rows::count(requests, row),
                        rows::count(errors, row),
                        &rows::sketch(latency, row)?,
                        seconds,
                    ),
                },
            );
        }
    }

    let mut nodes: BTreeSet<Node> = BTreeSet::new();
    let mut edges = Vec::new();
    for batch in &engine.query(CALLER_SQL, params()).await?.batches {
        let source = rows::strings(batch, "source")?;
        let target = rows::strings(batch, "target")?;
        let kind = rows::strings(batch, "target_kind")?;
        let (calls, errors) = (rows::ints(batch, "calls")?, rows::ints(batch, "errors")?);
        let latency = rows::binaries(batch, "latency")?;
        for row in 0..batch.num_rows() {
            let red = Red::new(
                rows::count(calls, row),
                rows::count(errors, row),
                &rows::sketch(latency, row)?,
                seconds,
            );
            let (source, target, kind) = (
                source.value(row).to_owned(),
                target.value(row).to_owned(),
                kind.value(row).to_owned(),
            );
            nodes.insert(Node {
                id: target.clone(),
                kind: kind.clone(),
            });
            let callee = callee_side.remove(&(source.clone(), target.clone()));
            edges.push(Edge {
                source,
                target,
                target_kind: kind,
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
    }

    let services = engine
        .query(
            "SELECT DISTINCT service_name FROM spans WHERE start_time >= $1 AND start_time < $2",
            vec![timestamp(range.start), timestamp(range.end)],
        )
        .await?;
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
