//! A file's graph summary as Arrow batches, to keep it on disk (see [`crate::summary_store`]):
//! three parts, each its own kind of stored summary.
//!
//! - `graph-minutes`: `minute`, `source`, `target`, `kind`, `calls`, `errors`, `latency`,
//!   `callee_calls`, `callee_errors`, `callee_latency` (sketches as in `sketch.rs`);
//! - `graph-services`: `minute`, `service`;
//! - `graph-orphans`: `trace` (16 bytes), `parent` (the parent's span id, 8 bytes), `service`,
//!   `failed`, `ns`, `start`.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, BinaryArray, BooleanArray, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt64Type};

use super::{EdgeKey, FileEdges, Key, Name, Orphan, Tally, column, mistyped};
use crate::engine::QueryError;
use crate::sketch::Sketch;
use crate::summary_store::SummaryStore;
use crate::views::rollup::Names as Texts;

/// The parts' kinds, in the order of [`to_batches`]'s answer.
pub const KINDS: [&str; 3] = ["graph-minutes", "graph-services", "graph-orphans"];

fn schemas() -> [SchemaRef; 3] {
    let f = |name: &str, t: DataType| Field::new(name, t, false);
    [
        Arc::new(Schema::new(vec![
            f("minute", DataType::Int64),
            f("source", DataType::Utf8),
            f("target", DataType::Utf8),
            f("kind", DataType::Utf8),
            f("calls", DataType::UInt64),
            f("errors", DataType::UInt64),
            f("latency", DataType::Binary),
            f("callee_calls", DataType::UInt64),
            f("callee_errors", DataType::UInt64),
            f("callee_latency", DataType::Binary),
        ])),
        Arc::new(Schema::new(vec![
            f("minute", DataType::Int64),
            f("service", DataType::Utf8),
        ])),
        Arc::new(Schema::new(vec![
            f("trace", DataType::Binary),
            f("parent", DataType::Binary),
            f("service", DataType::Utf8),
            f("failed", DataType::Boolean),
            f("ns", DataType::Int64),
            f("start", DataType::Int64),
        ])),
    ]
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch, QueryError> {
    RecordBatch::try_new(schema, columns)
        .map_err(|e| QueryError::Execution(format!("graph summary: {e}")))
}

/// The three parts of `edges`.
pub fn to_batches(edges: &FileEdges) -> Result<[RecordBatch; 3], QueryError> {
    let [minutes_schema, services_schema, orphans_schema] = schemas();
    let m = &edges.minutes;
    let key = |i: usize| &edges.edges[i];
    let text = |pick: fn(&EdgeKey) -> &Name| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            m.keys().map(|(_, i)| &**pick(key(*i))),
        ))
    };
    let count = |pick: fn(&Tally) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(m.values().map(pick)))
    };
    let sketch = |pick: fn(&Tally) -> &Sketch| -> ArrayRef {
        let bytes: Vec<Vec<u8>> = m.values().map(|t| pick(t).to_bytes()).collect();
        Arc::new(BinaryArray::from_iter_values(bytes))
    };
    let minutes = batch(
        minutes_schema,
        vec![
            Arc::new(Int64Array::from_iter_values(
                m.keys().map(|(minute, _)| *minute),
            )),
            text(|k| &k.0),
            text(|k| &k.1),
            text(|k| &k.2),
            count(|t| t.calls),
            count(|t| t.errors),
            sketch(|t| &t.latency),
            count(|t| t.callee_calls),
            count(|t| t.callee_errors),
            sketch(|t| &t.callee_latency),
        ],
    )?;
    let services = batch(
        services_schema,
        vec![
            Arc::new(Int64Array::from_iter_values(
                edges.services.iter().map(|(minute, _)| *minute),
            )),
            Arc::new(StringArray::from_iter_values(
                edges.services.iter().map(|(_, s)| &**s),
            )),
        ],
    )?;
    let o = &edges.orphans;
    let orphans = batch(
        orphans_schema,
        vec![
            Arc::new(BinaryArray::from_iter_values(
                o.iter().map(|o| o.key.trace.to_le_bytes()),
            )),
            Arc::new(BinaryArray::from_iter_values(
                o.iter().map(|o| o.key.span.to_le_bytes()),
            )),
            Arc::new(StringArray::from_iter_values(o.iter().map(|o| &*o.service))),
            Arc::new(BooleanArray::from(
                o.iter().map(|o| o.failed).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from_iter_values(o.iter().map(|o| o.ns))),
            Arc::new(Int64Array::from_iter_values(o.iter().map(|o| o.start))),
        ],
    )?;
    Ok([minutes, services, orphans])
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, QueryError> {
    column(batch, name, |c| c.as_string_opt::<i32>())
}

fn binaries<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a BinaryArray, QueryError> {
    column(batch, name, |c| c.as_binary_opt::<i32>())
}

fn sketch(bytes: &[u8]) -> Result<Sketch, QueryError> {
    Sketch::from_bytes(bytes).ok_or_else(|| mistyped("latency"))
}

/// The summary the three parts hold.
pub fn from_batches(parts: [&[RecordBatch]; 3]) -> Result<FileEdges, QueryError> {
    let [minutes, services, orphans] = parts;
    let mut texts = Texts::default();
    let mut out = FileEdges::default();
    let mut index: HashMap<EdgeKey, usize> = HashMap::new();
    for b in minutes {
        let minute = column(b, "minute", |c| c.as_primitive_opt::<Int64Type>())?;
        let (source, target, kind) = (
            strings(b, "source")?,
            strings(b, "target")?,
            strings(b, "kind")?,
        );
        let count = |name: &str| column(b, name, |c| c.as_primitive_opt::<UInt64Type>());
        let (calls, errors, callee_calls, callee_errors) = (
            count("calls")?,
            count("errors")?,
            count("callee_calls")?,
            count("callee_errors")?,
        );
        let (latency, callee_latency) = (binaries(b, "latency")?, binaries(b, "callee_latency")?);
        for row in 0..b.num_rows() {
            let key = (
                texts.get(source.value(row)),
                texts.get(target.value(row)),
                texts.get(kind.value(row)),
            );
            let next = out.edges.len();
            let edge = *index.entry(key.clone()).or_insert(next);
            if edge == next {
                out.edges.push(key);
            }
            out.minutes.insert(
                (minute.value(row), edge),
                Tally {
                    calls: calls.value(row),
                    errors: errors.value(row),
                    latency: sketch(latency.value(row))?,
                    callee_calls: callee_calls.value(row),
                    callee_errors: callee_errors.value(row),
                    callee_latency: sketch(callee_latency.value(row))?,
                },
            );
        }
    }
    for b in services {
        let minute = column(b, "minute", |c| c.as_primitive_opt::<Int64Type>())?;
        let service = strings(b, "service")?;
        for row in 0..b.num_rows() {
            out.services
                .insert((minute.value(row), texts.get(service.value(row))));
        }
    }
    for b in orphans {
        let (trace, parent) = (binaries(b, "trace")?, binaries(b, "parent")?);
        let service = strings(b, "service")?;
        let failed = column(b, "failed", |c| c.as_boolean_opt())?;
        let ns = column(b, "ns", |c| c.as_primitive_opt::<Int64Type>())?;
        let start = column(b, "start", |c| c.as_primitive_opt::<Int64Type>())?;
        for row in 0..b.num_rows() {
            let key =
                Key::of(trace.value(row), parent.value(row)).ok_or_else(|| mistyped("trace"))?;
            out.orphans.push(Orphan {
                key,
                service: texts.get(service.value(row)),
                failed: failed.value(row),
                ns: ns.value(row),
                start: start.value(row),
            });
        }
    }
    out.measure();
    Ok(out)
}

/// The summary of `file` kept on disk, if all three parts are there and were made from this file
/// by this build's queries.
pub async fn read(
    store: &SummaryStore,
    file: &std::path::Path,
    query: &str,
) -> Result<Option<FileEdges>, QueryError> {
    let mut parts: Vec<Vec<RecordBatch>> = Vec::with_capacity(3);
    for kind in KINDS {
        match store.read(kind, file, query).await {
            Ok(Some(batches)) => parts.push(batches),
            Ok(None) => return Ok(None),
            Err(e) => return Err(QueryError::Execution(format!("graph summary: {e}"))),
        }
    }
    from_batches([&parts[0], &parts[1], &parts[2]]).map(Some)
}

/// Keeps `edges`, the summary of `file`, on disk.
pub async fn write(
    store: &SummaryStore,
    file: &std::path::Path,
    query: &str,
    edges: &FileEdges,
) -> Result<(), QueryError> {
    let parts = to_batches(edges)?;
    // The part that says a summary is kept ([`SummaryStore::has`] of KINDS[0]) is written last.
    for (kind, part) in KINDS.iter().zip(&parts).rev() {
        store
            .write(
                kind,
                file,
                query,
                &part.schema(),
                std::slice::from_ref(part),
            )
            .await
            .map_err(|e| QueryError::Execution(format!("graph summary: {e}")))?;
    }
    Ok(())
}
