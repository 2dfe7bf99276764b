//! A generated fleet of spans written to a lake, for tests that check a view's SQL against a
//! simpler reference query over the same rows.

use std::collections::BTreeMap;

use datafusion::parquet::arrow::ArrowWriter;
use lakescope_collector::lake::layout;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub const T: i64 = 1_795_551_000_000_000_000;
pub const MINUTE: i64 = 60_000_000_000;

/// xorshift: the same spans every run.
pub struct Dice(pub u64);
impl Dice {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// Spans of `services` as (service, span), dated across the range, the clock-skew window
/// and beyond it; with children of the caller's own service, producers with two consumers,
/// span ids reused in other traces, and every kind of virtual peer.
pub fn fleet(dice: &mut Dice) -> Vec<(String, Span)> {
    let services = ["web", "orders", "mailer", "stock", "billing"];
    let peers: [&[(&str, &str)]; 8] = [
        &[],
        &[("db.system", "postgresql"), ("server.address", "orders-db")],
        &[("db.system", "redis")],
        &[("db.system", "Valkey"), ("peer.service", "sessions")],
        &[
            ("messaging.system", "kafka"),
            ("messaging.destination.name", "audit"),
        ],
        &[("messaging.system", "rabbitmq")],
        &[("peer.service", "partner")],
        &[("server.address", "api.example")],
    ];
    let mut spans = Vec::new();
    let mut reused: Vec<Vec<u8>> = Vec::new();
    for _ in 0..3000 {
        let trace: Vec<u8> = dice.next().to_le_bytes().repeat(2);
        let root = services[dice.below(5) as usize];
        let at = T + dice.below(12) as i64 * MINUTE - MINUTE;
        // Ids of this trace, reusable by later traces only: within one trace ids are unique.
        let mut mine: Vec<Vec<u8>> = Vec::new();
        for _ in 0..dice.below(5) {
            let span_id = if dice.below(20) == 0 && !reused.is_empty() {
                reused[dice.below(reused.len() as u64) as usize].clone()
            } else {
                dice.next().to_le_bytes().to_vec()
            };
            mine.push(span_id.clone());
            let producer = dice.below(4) == 0;
            let status = |dice: &mut Dice| Status {
                code: dice.below(3) as i32,
                ..Default::default()
            };
            spans.push((
                root.to_owned(),
                Span {
                    trace_id: trace.clone(),
                    span_id: span_id.clone(),
                    name: "call".into(),
                    kind: if producer { 4 } else { 3 },
                    start_time_unix_nano: at as u64,
                    end_time_unix_nano: (at + 1_000_000 * (1 + dice.below(900) as i64)) as u64,
                    attributes: peers[dice.below(8) as usize]
                        .iter()
                        .map(|(k, v)| text(k, v))
                        .collect(),
                    status: Some(status(dice)),
                    ..Default::default()
                },
            ));
            for _ in 0..[0, 1, 1, 2][dice.below(4) as usize] {
                let child_at = at + [0, 0, 0, -40 * MINUTE, 150 * MINUTE][dice.below(5) as usize];
                spans.push((
                    services[dice.below(5) as usize].to_owned(),
                    Span {
                        trace_id: trace.clone(),
                        span_id: dice.next().to_le_bytes().to_vec(),
                        parent_span_id: span_id.clone(),
                        name: "serve".into(),
                        kind: if producer { 5 } else { 2 },
                        start_time_unix_nano: child_at as u64,
                        end_time_unix_nano: (child_at + 1_000_000 * (1 + dice.below(500) as i64))
                            as u64,
                        status: Some(status(dice)),
                        ..Default::default()
                    },
                ));
            }
        }
        reused.extend(mine);
    }
    spans
}

/// Writes spans to a lake as one file per hour partition.
pub fn write(dir: &std::path::Path, spans: Vec<(String, Span)>) {
    write_parts(dir, spans, 1);
}

/// Writes spans to a lake as `parts` files per hour partition, consecutive spans (a caller and
/// its children) in different files.
pub fn write_parts(dir: &std::path::Path, spans: Vec<(String, Span)>, parts: usize) {
    let mut by_file: BTreeMap<(i64, usize), Vec<(String, Span)>> = BTreeMap::new();
    for (i, (service, span)) in spans.into_iter().enumerate() {
        by_file
            .entry((
                layout::partition_of(span.start_time_unix_nano as i64),
                i % parts,
            ))
            .or_default()
            .push((service, span));
    }
    for ((partition, n), spans) in by_file {
        let batch = batch(spans);
        let part = layout::table_dir(dir, layout::SPANS).join(layout::partition_dir(partition));
        std::fs::create_dir_all(&part).unwrap();
        let file = std::fs::File::create(part.join(layout::file_name(0, n))).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
}

/// Overwrites a lake file with zeros of the same size and keeps its modification time: its
/// spans can no longer be read, while a summary stamped with its size and time still matches.
pub fn garble(path: &std::path::Path) {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    let size = std::fs::metadata(path).unwrap().len() as usize;
    std::fs::write(path, vec![0u8; size]).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(modified).unwrap();
}

/// The spans as the write path converts them.
pub fn batch(spans: Vec<(String, Span)>) -> datafusion::arrow::record_batch::RecordBatch {
    let request = ExportTraceServiceRequest {
        resource_spans: spans
            .into_iter()
            .map(|(service, span)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![text("service.name", &service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    };
    lakescope_collector::convert::spans::convert(&request, &lakescope_collector::Limits::default())
        .unwrap()
        .batch
}
