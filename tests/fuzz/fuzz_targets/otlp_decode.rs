//! An OTLP/HTTP body through every stage before the log: content encoding (identity, gzip,
//! zstd), protobuf (with the UTF-8 repair) or JSON, then validation and conversion to Arrow.
//!
//! Input: one selector byte, then the body. Selector bits 0–1 pick the signal, bit 2 JSON, bits
//! 3–4 the content encoding.
//!
//! Beyond "no panic, no hang, no huge allocation" it checks the log's promise: what would be
//! logged for the accepted part decodes and converts, on replay, to the same rows with nothing
//! rejected; that a request a direct protobuf reader takes is one prost decodes, to the same
//! batch; and that the records counted on the bytes before decoding (`--max-request-records`)
//! are never fewer than the request decodes to.
#![no_main]

use bytes::Bytes;
use datafusion::arrow::error::ArrowError;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, HeaderValue};
use lakescope_collector::Limits;
use lakescope_collector::convert::{Converted, logs, metrics, spans};
use lakescope_collector::otlp::decode::{self, Encoding};
use lakescope_collector::otlp::{json, records, utf8};
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// Small enough that libFuzzer's memory limit catches any stage that amplifies its input.
const LIMIT: usize = 1 << 20;

type Convert<R> = fn(&R, &Limits) -> Result<Converted, ArrowError>;

/// Mirrors `Ingest::export` and the log replay for one signal.
fn check<R: Message + Default>(
    body: Bytes,
    encoding: Encoding,
    schema: &utf8::Schema,
    from_json: fn(&[u8]) -> Result<R, json::JsonError>,
    normalise: fn(&mut R) -> bool,
    convert: Convert<R>,
    retain_valid: fn(&mut R, &Limits),
    path: &records::Path,
    records_in: fn(&R) -> usize,
) {
    let limits = Limits::default();
    let counted = match encoding {
        Encoding::Protobuf => records::in_protobuf(&body, path),
        Encoding::Json => records::in_json(&body, path),
    };
    let Ok(decoded) = decode::decode(body, encoding, schema, from_json) else {
        return;
    };
    let decoded_records = records_in(&decoded.message);
    assert!(
        counted >= decoded_records,
        "counted {counted} records before decoding, decoded {decoded_records}"
    );
    let mut request = decoded.message;
    let changed = normalise(&mut request);
    let Ok(converted) = convert(&request, &limits) else {
        return;
    };
    let payload = match decoded.protobuf {
        Some(raw) if converted.rejected == 0 && !changed => raw,
        _ => {
            if converted.rejected > 0 {
                retain_valid(&mut request, &limits);
            }
            Bytes::from(request.encode_to_vec())
        }
    };
    if converted.batch.num_rows() == 0 {
        return;
    }
    let replayed = R::decode(payload).expect("the logged payload decodes on replay");
    let again = convert(&replayed, &limits).expect("the logged payload converts on replay");
    assert_eq!(
        again.rejected, 0,
        "replay rejected records: {}",
        again.error_message
    );
    assert_eq!(
        again.batch.num_rows(),
        converted.batch.num_rows(),
        "replay gives a different number of rows than were acknowledged"
    );
}

type ConvertProtobuf = fn(&[u8], &Limits) -> Option<Result<Converted, ArrowError>>;

/// A direct reader (`spans::convert_protobuf`, `logs::convert_protobuf`) may decline anything,
/// but what it takes must be what the general path makes of the same bytes.
fn check_direct<R: Message + Default>(body: &[u8], direct: ConvertProtobuf, convert: Convert<R>) {
    let limits = Limits::default();
    let Some(direct) = direct(body, &limits) else {
        return;
    };
    let direct = direct.expect("the direct reader's batch builds");
    let request = R::decode(body).expect("prost decodes what the direct reader took");
    let general = convert(&request, &limits).expect("the general path converts");
    assert_eq!(
        general.rejected, 0,
        "the direct reader took rejected records"
    );
    assert!(
        same(&direct.batch, &general.batch),
        "the direct reader's batch differs: {:?} against {:?}",
        direct.batch,
        general.batch
    );
}

/// Batches compared through their Arrow IPC bytes, so a NaN equals the same NaN.
fn same(
    a: &datafusion::arrow::record_batch::RecordBatch,
    b: &datafusion::arrow::record_batch::RecordBatch,
) -> bool {
    let bytes = |batch: &datafusion::arrow::record_batch::RecordBatch| {
        let mut out = Vec::new();
        let mut writer =
            datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
                .expect("an IPC writer");
        writer.write(batch).expect("writes");
        writer.finish().expect("finishes");
        drop(writer);
        out
    };
    a == b || bytes(a) == bytes(b)
}

fn spans_in(r: &ExportTraceServiceRequest) -> usize {
    let scopes = r.resource_spans.iter().flat_map(|r| &r.scope_spans);
    scopes.map(|s| s.spans.len()).sum()
}

fn log_records_in(r: &ExportLogsServiceRequest) -> usize {
    let scopes = r.resource_logs.iter().flat_map(|r| &r.scope_logs);
    scopes.map(|s| s.log_records.len()).sum()
}

fn data_points_in(r: &ExportMetricsServiceRequest) -> usize {
    let scopes = r.resource_metrics.iter().flat_map(|r| &r.scope_metrics);
    let metrics = scopes.flat_map(|s| &s.metrics);
    metrics.map(metrics::point_count).sum()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_encoding = match (selector >> 3) & 3 {
        0 => "identity",
        1 => "gzip",
        2 => "zstd",
        _ => "",
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static(content_encoding));
    let body = match decode::decompress(&headers, Bytes::copy_from_slice(body), LIMIT) {
        Ok(body) => body,
        Err(_) => return,
    };
    assert!(body.len() <= LIMIT, "decompressed past the limit");
    let encoding = if selector & 4 != 0 {
        Encoding::Json
    } else {
        Encoding::Protobuf
    };
    match selector & 3 {
        1 => {
            if encoding == Encoding::Protobuf {
                check_direct(&body, logs::convert_protobuf, logs::convert);
            }
            check::<ExportLogsServiceRequest>(
                body,
                encoding,
                &utf8::LOGS,
                json::logs,
                |r| logs::normalise(r, now()),
                logs::convert,
                logs::retain_valid,
                &records::LOG_RECORDS,
                log_records_in,
            )
        }
        2 => {
            if encoding == Encoding::Protobuf {
                check_direct(&body, metrics::convert_protobuf, metrics::convert);
            }
            check::<ExportMetricsServiceRequest>(
                body,
                encoding,
                &utf8::METRICS,
                json::metrics,
                |_| false,
                metrics::convert,
                metrics::retain_valid,
                &records::DATA_POINTS,
                data_points_in,
            )
        }
        _ => {
            if encoding == Encoding::Protobuf {
                check_direct(&body, spans::convert_protobuf, spans::convert);
            }
            check::<ExportTraceServiceRequest>(
                body,
                encoding,
                &utf8::TRACES,
                json::traces,
                |_| false,
                spans::convert,
                spans::retain_valid,
                &records::SPANS,
                spans_in,
            )
        }
    }
});
