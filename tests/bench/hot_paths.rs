//! Criterion micro-benchmarks of the ingest hot paths, on the demo fleet's traffic (the load
//! generator's requests: 50 traces of ~10 spans, semantic-convention attributes, errors with
//! exception events):
//!
//! - `otlp_decode`: protobuf bytes of one request → `ExportTraceServiceRequest`;
//! - `otlp_to_arrow`: one decoded request → an Arrow batch of the spans table (validation
//!   included): the general path, for OTLP/JSON and requests the direct reader declines;
//! - `protobuf_to_arrow (direct)`: protobuf bytes of one request → the same batch, read
//!   straight from the bytes (`convert_protobuf`): the path of protobuf requests, which
//!   replaces `otlp_decode` + `otlp_to_arrow`;
//! - `records_count`: the records of one request counted on its protobuf bytes, and on its
//!   OTLP/JSON, as the receivers count them before decoding (`--max-request-records`);
//! - `parquet_encode`: 100 requests' batches → a sorted, zstd-compressed Parquet file on disk
//!   (`write_flush`, as a flush does, fsync included);
//! - `wal_append`: one request, and a group of 16, appended to the write-ahead log and fsynced
//!   (the log thread syncs once per group);
//! - `structured_logs`: the fleet's log records with their bodies as a JSON log parser leaves
//!   them (a key-value list of 12 fields), decoded by prost and converted (the general path),
//!   against read straight from the bytes (nested values are checked on the bytes, and decoded
//!   once, when encoded); throughput in records.
//!
//! Throughput is in spans unless said otherwise. Run: `cargo bench --bench hot_paths` (results in docs/benchmarks.md).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lakescope::demo::fleet::Fleet;
use lakescope_collector::Limits;
use lakescope_collector::convert::logs;
use lakescope_collector::convert::spans;
use lakescope_collector::lake::table::FlushJob;
use lakescope_collector::lake::writer::write_flush;
use lakescope_collector::otlp::records;
use lakescope_collector::schema::spans::TABLE;
use lakescope_collector::wal::{Signal, WalWriter};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use prost::Message;
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn requests(n: usize) -> Vec<ExportTraceServiceRequest> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos() as u64;
    let mut fleet = Fleet::new(SmallRng::seed_from_u64(7));
    (0..n)
        .map(|_| Fleet::request((0..50).flat_map(|_| fleet.trace(now)).collect()))
        .collect()
}

/// The fleet's log records for 50 traces, each body replaced by what a JSON log line parsed into
/// a map looks like: the message and a dozen fields, one of them an array.
fn structured_logs() -> ExportLogsServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos() as u64;
    let mut fleet = Fleet::new(SmallRng::seed_from_u64(7));
    let spans: Vec<_> = (0..50).flat_map(|_| fleet.trace(now)).collect();
    let mut request = Fleet::logs(&spans);
    let any = |value| AnyValue { value: Some(value) };
    let text = |s: &str| any(Value::StringValue(s.to_owned()));
    for (i, record) in request
        .resource_logs
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records)
        .enumerate()
    {
        let message = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            _ => String::new(),
        };
        let i = i as i64;
        let fields = [
            ("msg", text(&message)),
            ("level", text(&record.severity_text)),
            ("logger", text("app.http.handler")),
            ("thread", text(&format!("worker-{}", i % 8))),
            ("request_id", text(&format!("req-{:016x}", i * 7919))),
            ("user_id", any(Value::IntValue(1000 + i % 97))),
            ("tenant", text("acme-corp")),
            ("http.method", text("GET")),
            ("http.path", text(&format!("/api/v1/orders/{}", i % 500))),
            ("http.status", any(Value::IntValue(200))),
            ("elapsed_ms", any(Value::DoubleValue(i as f64 * 0.37))),
            (
                "tags",
                any(Value::ArrayValue(ArrayValue {
                    values: vec![text("checkout"), text("v2"), text("eu-west-1")],
                })),
            ),
        ];
        record.body = Some(any(Value::KvlistValue(KeyValueList {
            values: fields
                .into_iter()
                .map(|(key, value)| KeyValue {
                    key: key.into(),
                    key_strindex: 0,
                    value: Some(value),
                })
                .collect(),
        })));
    }
    request
}

fn span_count(request: &ExportTraceServiceRequest) -> u64 {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

fn hot_paths(c: &mut Criterion) {
    let limits = Limits::default();
    let request = requests(1).remove(0);
    let spans_per_request = span_count(&request);
    let bytes = request.encode_to_vec();

    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(spans_per_request));
    group.bench_function("otlp_decode", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes"))
    });
    group.bench_function("otlp_to_arrow", |b| {
        b.iter(|| spans::convert(&request, &limits).expect("converts"))
    });
    group.bench_function("protobuf_to_arrow (direct)", |b| {
        b.iter(|| {
            spans::convert_protobuf(&bytes, &limits)
                .expect("the direct reader takes the fleet's requests")
                .expect("converts")
        })
    });
    let spans = spans_per_request as usize;
    group.bench_function("records_count (protobuf)", |b| {
        b.iter(|| assert_eq!(records::in_protobuf(&bytes, &records::SPANS), spans))
    });
    let json = serde_json::to_vec(&request).expect("encodes");
    group.bench_function("records_count (json)", |b| {
        b.iter(|| assert_eq!(records::in_json(&json, &records::SPANS), spans))
    });

    // The log is checkpointed outside the timed part, so its segments are deleted as a
    // running server's are and the benchmark does not fill the disk.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut wal = WalWriter::open(dir.path(), 0, 64 * 1024 * 1024).expect("a log");
    let mut append = |group: u64, iters: u64| {
        let mut timed = Duration::ZERO;
        for i in 0..iters {
            let started = Instant::now();
            let mut last = 0;
            for _ in 0..group {
                last = wal.append(Signal::Traces, &bytes).expect("appends");
            }
            wal.sync().expect("syncs");
            timed += started.elapsed();
            if i % 32 == 31 {
                wal.checkpoint(last).expect("checkpoints");
            }
        }
        timed
    };
    group.bench_function("wal_append (1 request, fsync)", |b| {
        b.iter_custom(|iters| append(1, iters))
    });
    group.throughput(Throughput::Elements(16 * spans_per_request));
    group.bench_function("wal_append (group of 16, one fsync)", |b| {
        b.iter_custom(|iters| append(16, iters))
    });

    let many = requests(100);
    let batches: Vec<_> = many
        .iter()
        .map(|r| spans::convert(r, &limits).expect("converts").batch)
        .collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let job = FlushJob {
        batches,
        last_seq: 1,
        rows,
    };
    let lake = tempfile::tempdir().expect("a temporary directory");
    group.throughput(Throughput::Elements(rows as u64));
    group.sample_size(10);
    group.bench_function("parquet_encode (100 requests, one flush)", |b| {
        b.iter(|| {
            let files = write_flush(lake.path(), &TABLE, &job).expect("writes");
            for f in files {
                std::fs::remove_file(&f.path).expect("removes");
            }
        })
    });
    group.finish();

    let request = structured_logs();
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    let bytes = request.encode_to_vec();
    let mut group = c.benchmark_group("structured_logs");
    group.throughput(Throughput::Elements(records as u64));
    group.bench_function("otlp_decode + otlp_to_arrow", |b| {
        b.iter(|| {
            let decoded = ExportLogsServiceRequest::decode(bytes.as_slice()).expect("decodes");
            logs::convert(&decoded, &limits).expect("converts")
        })
    });
    group.bench_function("protobuf_to_arrow (direct)", |b| {
        b.iter(|| {
            logs::convert_protobuf(&bytes, &limits)
                .expect("the direct reader takes structured bodies")
                .expect("converts")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(20);
    targets = hot_paths
}
criterion_main!(benches);
