use super::*;
use crate::convert::strategies::wide_attributes;
use crate::schema::span_rows::read_spans;
use crate::schema::spans::UNKNOWN_SERVICE;
use datafusion::arrow::array::{AsArray, Int64Array};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};
use proptest::prelude::*;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

fn full_span() -> Span {
    Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        trace_state: "vendor=1".into(),
        parent_span_id: vec![9; 8],
        flags: 0x301,
        name: "GET /cart/{id}".into(),
        kind: 2,
        start_time_unix_nano: 1_795_551_330_000_000_000,
        end_time_unix_nano: 1_795_551_330_250_000_000,
        attributes: vec![
            kv("http.request.method", s("GET")),
            kv("http.route", s("/cart/{id}")),
            kv("http.response.status_code", Value::IntValue(503)),
            kv("server.address", s("cart.internal")),
            kv("sampled.ratio", Value::DoubleValue(0.25)),
            kv("retry", Value::BoolValue(false)),
            kv("blob", Value::BytesValue(vec![1, 2, 3])),
            kv(
                "tags",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(s("a")),
                    }],
                }),
            ),
            kv(
                "nested",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("x", Value::IntValue(1))],
                }),
            ),
        ],
        dropped_attributes_count: 2,
        events: vec![Event {
            time_unix_nano: 1_795_551_330_100_000_000,
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", s("TimeoutError")),
                kv("exception.message", s("upstream timed out after 250ms")),
            ],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 3,
        links: vec![Link {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            trace_state: "k=v".into(),
            attributes: vec![kv("link.kind", s("follows"))],
            dropped_attributes_count: 4,
            flags: 1,
        }],
        dropped_links_count: 5,
        status: Some(Status {
            message: "upstream timeout".into(),
            code: 2,
        }),
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("cart")),
                    kv("service.version", s("1.4.2")),
                    kv("host.cpus", Value::IntValue(8)),
                ],
                dropped_attributes_count: 1,
                entity_refs: vec![],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    version: "2.0".into(),
                    attributes: vec![kv("scope.attr", s("yes"))],
                    dropped_attributes_count: 6,
                }),
                spans,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.25.0".into(),
        }],
    }
}

/// A full span, one without events, links, attributes or parent, and one with two events: so
/// that lists, maps and nulls of every column are reordered.
fn varied_spans() -> [Span; 3] {
    let mut bare = full_span();
    bare.events.clear();
    bare.links.clear();
    bare.attributes.clear();
    bare.parent_span_id.clear();
    let mut other = full_span();
    other.span_id = vec![7; 8];
    other.events.push(other.events[0].clone());
    [full_span(), bare, other]
}

#[test]
fn the_storage_sort_reorders_nested_columns_as_arrows_take_does() {
    let [full, bare, other] = varied_spans();
    let batch = convert(&request(vec![full, bare, other]), &Limits::default())
        .unwrap()
        .batch;
    // Reversed, with a repeat: every row moves, and one list range is copied twice.
    let indices = datafusion::arrow::array::UInt32Array::from(vec![2, 1, 0, 2]);
    let ours = crate::lake::take::take_batch(&batch, &indices).unwrap();
    let arrows = datafusion::arrow::compute::take_record_batch(&batch, &indices).unwrap();
    assert_eq!(ours, arrows);
}

#[test]
fn a_flush_reorders_nested_columns_of_several_batches_exactly() {
    let [full, bare, other] = varied_spans();
    let first = convert(&request(vec![full, bare.clone()]), &Limits::default())
        .unwrap()
        .batch;
    let second = convert(&request(vec![other, bare]), &Limits::default())
        .unwrap()
        .batch;
    let sent =
        datafusion::arrow::compute::concat_batches(&first.schema(), [&first, &second]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let job = crate::lake::table::FlushJob {
        rows: sent.num_rows(),
        batches: vec![first, second],
        last_seq: 1,
    };
    let files =
        crate::lake::writer::write_flush(dir.path(), &crate::schema::spans::TABLE, &job).unwrap();
    assert_eq!(files.len(), 1);
    let file = std::fs::File::open(&files[0].path).unwrap();
    let read: Vec<_> =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
    let read = datafusion::arrow::compute::concat_batches(&sent.schema(), &read).unwrap();
    assert_eq!(read.num_rows(), 4);
    // Every row read is a row sent, whole, as often as it was sent.
    let rows = |batch: &RecordBatch| {
        let mut rows: Vec<String> = (0..batch.num_rows())
            .map(|i| format!("{:?}", batch.slice(i, 1).columns()))
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(rows(&read), rows(&sent));
}

#[test]
fn a_blocks_spans_are_converted_in_the_lakes_storage_order() {
    let span = |status: i32, second: u64, trace: u8, nanos: u64| {
        let mut span = full_span();
        span.status = Some(Status {
            message: String::new(),
            code: status,
        });
        span.start_time_unix_nano = 1_795_551_330_000_000_000 + second * 1_000_000_000 + nanos;
        span.end_time_unix_nano = span.start_time_unix_nano + 1_000;
        span.trace_id = vec![trace; 16];
        span
    };
    // Two rejected: the one sent first would sort after the other.
    let mut short_id = span(0, 5, 4, 0);
    short_id.span_id = vec![1; 4];
    let mut bad = span(2, 0, 8, 0);
    bad.kind = 9;
    let sent = vec![
        short_id,
        span(0, 1, 5, 0),
        span(2, 1, 9, 0),
        span(0, 0, 7, 500),
        bad,
        span(0, 0, 7, 100),
        span(0, 0, 3, 900),
        span(1, 2, 1, 0),
    ];
    let converted = convert(&request(sent), &Limits::default()).unwrap();
    assert_eq!(converted.rejected, 2);
    assert!(
        converted
            .error_message
            .starts_with("2 spans rejected; the first: span_id"),
        "{}",
        converted.error_message
    );
    let batch = converted.batch;
    let rows: Vec<(String, u8, i64)> = (0..batch.num_rows())
        .map(|i| {
            let row = batch.slice(i, 1);
            let trace = row
                .column_by_name(spans::col::TRACE_ID)
                .unwrap()
                .as_binary::<i32>();
            let start = row
                .column_by_name(spans::col::START_TIME)
                .unwrap()
                .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>();
            (
                text(&row, spans::col::STATUS_CODE).unwrap(),
                trace.value(0)[0],
                start.value(0) - 1_795_551_330_000_000_000,
            )
        })
        .collect();
    let at = |second: i64, nanos: i64| second * 1_000_000_000 + nanos;
    assert_eq!(
        rows,
        vec![
            ("ERROR".into(), 9, at(1, 0)),
            ("OK".into(), 1, at(2, 0)),
            ("UNSET".into(), 3, at(0, 900)),
            ("UNSET".into(), 7, at(0, 100)),
            ("UNSET".into(), 7, at(0, 500)),
            ("UNSET".into(), 5, at(1, 0)),
        ]
    );
    // The order the flush sorts into leaves these rows where they are.
    let keys = crate::lake::writer::sort_keys(&crate::schema::spans::TABLE, &batch, None).unwrap();
    let columns: Vec<_> = keys
        .into_iter()
        .map(|values| datafusion::arrow::compute::SortColumn {
            values,
            options: None,
        })
        .collect();
    let order = datafusion::arrow::compute::lexsort_to_indices(&columns, None).unwrap();
    assert_eq!(order.values().to_vec(), (0..6).collect::<Vec<u32>>());
}

#[test]
fn every_field_of_a_span_survives_the_round_trip() {
    let req = request(vec![full_span()]);
    let converted = convert(&req, &Limits::default()).unwrap();
    assert_eq!(converted.rejected, 0);
    let back = read_spans(&converted.batch).unwrap();
    assert_eq!(back.len(), 1);
    let rs = &req.resource_spans[0];
    let ss = &rs.scope_spans[0];
    assert_eq!(back[0].span, ss.spans[0]);
    assert_eq!(Some(&back[0].resource), rs.resource.as_ref());
    assert_eq!(back[0].resource_schema_url, rs.schema_url);
    assert_eq!(Some(&back[0].scope), ss.scope.as_ref());
    assert_eq!(back[0].scope_schema_url, ss.schema_url);
}

fn text(batch: &RecordBatch, name: &str) -> Option<String> {
    let c = batch.column_by_name(name).unwrap().as_string::<i32>();
    (!c.is_null(0)).then(|| c.value(0).to_owned())
}

fn int(batch: &RecordBatch, name: &str) -> Option<i64> {
    let c = batch
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    (!c.is_null(0)).then(|| c.value(0))
}

#[test]
fn semantic_convention_attributes_get_their_own_columns() {
    let batch = convert(&request(vec![full_span()]), &Limits::default())
        .unwrap()
        .batch;
    use crate::schema::spans::col;
    assert_eq!(text(&batch, col::SERVICE_NAME).as_deref(), Some("cart"));
    assert_eq!(text(&batch, col::SERVICE_VERSION).as_deref(), Some("1.4.2"));
    assert_eq!(text(&batch, col::SERVICE_NAMESPACE), None);
    assert_eq!(text(&batch, col::SPAN_KIND).as_deref(), Some("SERVER"));
    assert_eq!(text(&batch, col::STATUS_CODE).as_deref(), Some("ERROR"));
    assert_eq!(text(&batch, col::HTTP_METHOD).as_deref(), Some("GET"));
    assert_eq!(text(&batch, col::HTTP_ROUTE).as_deref(), Some("/cart/{id}"));
    assert_eq!(int(&batch, col::HTTP_STATUS_CODE), Some(503));
    assert_eq!(
        text(&batch, col::SERVER_ADDRESS).as_deref(),
        Some("cart.internal")
    );
    assert_eq!(text(&batch, col::DB_SYSTEM), None);
    assert_eq!(
        text(&batch, col::EXCEPTION_TYPE).as_deref(),
        Some("TimeoutError")
    );
    assert_eq!(int(&batch, col::DURATION_NS), Some(250_000_000));
    // Ids are stored as their bytes.
    let bytes = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_binary_opt::<i32>())
            .map(|a| a.value(0).to_vec())
    };
    assert_eq!(bytes(col::PARENT_SPAN_ID), Some(vec![9; 8]));
    assert_eq!(bytes(col::TRACE_ID), Some((1..=16).collect::<Vec<u8>>()));
}

#[test]
fn older_convention_names_fill_the_same_columns() {
    let mut span = full_span();
    span.attributes = vec![
        kv("http.method", s("POST")),
        kv("http.status_code", Value::IntValue(200)),
        kv("db.system", s("postgresql")),
        kv("net.peer.name", s("db1")),
    ];
    let batch = convert(&request(vec![span]), &Limits::default())
        .unwrap()
        .batch;
    use crate::schema::spans::col;
    assert_eq!(text(&batch, col::HTTP_METHOD).as_deref(), Some("POST"));
    assert_eq!(int(&batch, col::HTTP_STATUS_CODE), Some(200));
    assert_eq!(text(&batch, col::DB_SYSTEM).as_deref(), Some("postgresql"));
    assert_eq!(text(&batch, col::SERVER_ADDRESS).as_deref(), Some("db1"));
}

#[test]
fn a_resource_without_service_name_is_unknown_service() {
    let mut req = request(vec![full_span()]);
    req.resource_spans[0].resource = None;
    let batch = convert(&req, &Limits::default()).unwrap().batch;
    assert_eq!(
        text(&batch, crate::schema::spans::col::SERVICE_NAME).as_deref(),
        Some(UNKNOWN_SERVICE)
    );
}

#[test]
fn invalid_spans_are_rejected_and_the_rest_kept() {
    let good = full_span();
    let mut bad_trace = full_span();
    bad_trace.trace_id = vec![0; 16];
    let mut backwards = full_span();
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    let mut bad_kind = full_span();
    bad_kind.kind = 9;
    let mut short_span_id = full_span();
    short_span_id.span_id = vec![1; 4];
    let mut req = request(vec![good, bad_trace, backwards, bad_kind, short_span_id]);
    let converted = convert(&req, &Limits::default()).unwrap();
    assert_eq!(converted.batch.num_rows(), 1);
    assert_eq!(converted.rejected, 4);
    assert!(
        converted
            .error_message
            .starts_with("4 spans rejected; the first: trace_id"),
        "{}",
        converted.error_message
    );
    retain_valid(&mut req, &Limits::default());
    assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 1);
}

#[test]
fn too_many_attributes_rejects_the_span() {
    let mut span = full_span();
    span.attributes = (0..5).map(|i| kv(&format!("k{i}"), s("v"))).collect();
    let limits = Limits {
        max_attributes: 4,
        ..Limits::default()
    };
    let converted = convert(&request(vec![span]), &limits).unwrap();
    assert_eq!(converted.rejected, 1);
    assert!(converted.error_message.contains("more than the limit of 4"));
}

#[test]
fn an_empty_request_is_an_empty_batch() {
    let converted = convert(&ExportTraceServiceRequest::default(), &Limits::default()).unwrap();
    assert_eq!(converted.batch.num_rows(), 0);
    assert_eq!(converted.rejected, 0);
}

fn any_value() -> impl Strategy<Value = Option<AnyValue>> {
    let scalar = prop_oneof![
        ".{0,12}".prop_map(Value::StringValue),
        any::<i64>().prop_map(Value::IntValue),
        any::<f64>()
            .prop_filter("NaN never equals itself", |d| !d.is_nan())
            .prop_map(Value::DoubleValue),
        any::<bool>().prop_map(Value::BoolValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::BytesValue),
    ];
    proptest::option::weighted(
        0.95,
        scalar.prop_map(|value| AnyValue { value: Some(value) }),
    )
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(("[a-z.]{1,10}", any_value()), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(key, value)| KeyValue {
                key,
                key_strindex: 0,
                value,
            })
            .collect()
    })
}

fn arb_span() -> impl Strategy<Value = Span> {
    (
        proptest::array::uniform16(1u8..),
        proptest::array::uniform8(1u8..),
        proptest::option::of(proptest::array::uniform8(1u8..)),
        0i32..6,
        0i32..3,
        1u64..4_000_000_000_000_000_000,
        0u64..10_000_000_000,
        attributes(),
        ".{0,20}",
        any::<u32>(),
    )
        .prop_map(
            |(trace, span, parent, kind, code, start, dur, attributes, name, flags)| Span {
                trace_id: trace.to_vec(),
                span_id: span.to_vec(),
                parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
                name,
                kind,
                flags,
                start_time_unix_nano: start,
                end_time_unix_nano: start + dur,
                attributes,
                status: (code > 0).then(|| Status {
                    message: String::new(),
                    code,
                }),
                ..Span::default()
            },
        )
}

proptest! {
    #[test]
    fn any_valid_span_round_trips(spans in proptest::collection::vec(arb_span(), 1..20)) {
        let req = request(spans.clone());
        let converted = convert(&req, &Limits::default()).unwrap();
        prop_assert_eq!(converted.rejected, 0);
        // In the lake's order within the block, not necessarily the order sent.
        let by_text = |spans: Vec<Span>| {
            let mut texts: Vec<String> = spans.iter().map(|s| format!("{s:?}")).collect();
            texts.sort();
            texts
        };
        let back: Vec<Span> = read_spans(&converted.batch).unwrap().into_iter().map(|s| s.span).collect();
        prop_assert_eq!(by_text(back), by_text(spans));
    }
}

/// Resources and scopes of any attributes, several to a request: each span comes back with its
/// own block's, although a block's attributes are encoded once for all its spans.
fn arb_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope = (attributes(), proptest::collection::vec(arb_span(), 0..4)).prop_map(
        |(attributes, spans)| ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "scope".into(),
                version: "1".into(),
                attributes,
                dropped_attributes_count: 0,
            }),
            spans,
            schema_url: String::new(),
        },
    );
    let resource = (attributes(), proptest::collection::vec(scope, 1..3)).prop_map(
        |(mut attributes, scope_spans)| {
            attributes.push(kv("service.name", s("svc")));
            ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    dropped_attributes_count: 0,
                    entity_refs: vec![],
                }),
                scope_spans,
                schema_url: String::new(),
            }
        },
    );
    proptest::collection::vec(resource, 1..4)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

proptest! {
    #[test]
    fn every_span_keeps_its_own_resource_and_scope(req in arb_request()) {
        let converted = convert(&req, &Limits::default()).unwrap();
        prop_assert_eq!(converted.rejected, 0);
        let back = read_spans(&converted.batch).unwrap();
        let sent: Vec<_> = req
            .resource_spans
            .iter()
            .flat_map(|rs| rs.scope_spans.iter().map(move |ss| (rs, ss)))
            .flat_map(|(rs, ss)| ss.spans.iter().map(move |span| (rs, ss, span)))
            .collect();
        prop_assert_eq!(back.len(), sent.len());
        // Each block's spans come in the lake's order, not necessarily the order sent.
        let mut back: Vec<String> = back
            .iter()
            .map(|row| format!("{:?}", (&row.span, Some(&row.resource), Some(&row.scope))))
            .collect();
        let mut sent: Vec<String> = sent
            .iter()
            .map(|(rs, ss, span)| format!("{:?}", (span, rs.resource.as_ref(), ss.scope.as_ref())))
            .collect();
        back.sort();
        sent.sort();
        prop_assert_eq!(back, sent);
    }
}

#[test]
fn repeated_bytes_count_the_resource_and_scope_once_per_span() {
    let one = repeated_bytes(&request(vec![full_span()]));
    // The fixture's resource (3 attributes) and scope (name, version, 1 attribute) with their
    // schema URLs: each attribute's key and text plus 9 bytes of offsets and type letter, the
    // service fields again, the URLs, and 64 + 32 bytes of the other origin columns.
    assert_eq!(one, 333);
    assert_eq!(repeated_bytes(&request(vec![full_span(); 40])), 40 * one);
    // A block without spans still has its origin encoded: it counts once.
    assert_eq!(repeated_bytes(&request(vec![])), one);
    let mut empties = request(vec![]);
    let block = empties.resource_spans[0].scope_spans[0].clone();
    empties.resource_spans[0].scope_spans = vec![block; 1000];
    assert_eq!(repeated_bytes(&empties), 1000 * one);

    // A 1 MB attribute on the resource is repeated by each of 20,000 spans: 20 GB.
    let mut big = request(vec![full_span(); 20_000]);
    let resource = big.resource_spans[0].resource.as_mut().unwrap();
    resource
        .attributes
        .push(kv("blob", s(&"x".repeat(1_000_000))));
    let bytes = repeated_bytes(&big);
    assert!(
        (20_000 * 1_000_000..20_000 * 1_000_100).contains(&(bytes - 20_000 * one)),
        "{bytes}"
    );
}

fn id(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![3 => 1u8.., 1 => Just(0u8)], len)
}

/// Spans valid or not (ids of any length, kinds and codes out of range, ends before starts),
/// with events and links.
fn wide_span() -> impl Strategy<Value = Span> {
    let event = (any::<u64>(), ".{0,8}", wide_attributes(), any::<u32>()).prop_map(
        |(time_unix_nano, name, attributes, dropped_attributes_count)| Event {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count,
        },
    );
    let link = (
        id(15..17),
        id(7..9),
        ".{0,8}",
        wide_attributes(),
        any::<u32>(),
    )
        .prop_map(|(trace_id, span_id, trace_state, attributes, flags)| Link {
            trace_id,
            span_id,
            trace_state,
            attributes,
            dropped_attributes_count: flags % 3,
            flags,
        });
    (
        (
            id(15..17),
            id(7..9),
            prop_oneof![Just(vec![]), id(7..9)],
            -1i32..8,
            -1i32..4,
        ),
        (
            0u64..3_000_000_000_000_000_000,
            0u64..10_000_000_000,
            any::<bool>(),
        ),
        wide_attributes(),
        proptest::collection::vec(event, 0..3),
        proptest::collection::vec(link, 0..2),
        (".{0,12}", ".{0,6}", any::<u32>(), any::<u32>()),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent_span_id, kind, code),
                (start, dur, backwards),
                attributes,
                events,
                links,
                (name, message, flags, dropped),
            )| Span {
                trace_id,
                span_id,
                parent_span_id,
                trace_state: message.clone(),
                name,
                kind,
                flags,
                start_time_unix_nano: start,
                end_time_unix_nano: if backwards {
                    start.saturating_sub(dur)
                } else {
                    start + dur
                },
                attributes,
                dropped_attributes_count: dropped,
                events,
                dropped_events_count: dropped / 2,
                links,
                dropped_links_count: dropped / 3,
                status: (code >= 0).then_some(Status { message, code }),
            },
        )
}

fn wide_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope = (
        proptest::option::of((".{0,6}", ".{0,4}", wide_attributes(), any::<u32>())),
        proptest::collection::vec(wide_span(), 0..4),
        ".{0,6}",
    )
        .prop_map(|(scope, spans, schema_url)| ScopeSpans {
            scope: scope.map(|(name, version, attributes, dropped_attributes_count)| {
                InstrumentationScope {
                    name,
                    version,
                    attributes,
                    dropped_attributes_count,
                }
            }),
            spans,
            schema_url,
        });
    let resource = (
        proptest::option::of((wide_attributes(), any::<u32>(), any::<bool>())),
        proptest::collection::vec(scope, 0..3),
        ".{0,6}",
    )
        .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans {
            resource: resource.map(|(mut attributes, dropped_attributes_count, named)| {
                if named {
                    attributes.push(kv("service.name", s("svc")));
                }
                Resource {
                    attributes,
                    dropped_attributes_count,
                    entity_refs: vec![],
                }
            }),
            scope_spans,
            schema_url,
        });
    proptest::collection::vec(resource, 0..3)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

/// A value `2 * arrays` message levels deep below itself: arrays of one item around a string.
fn nested_arrays(arrays: usize) -> AnyValue {
    let mut value = AnyValue {
        value: Some(s("deep")),
    };
    for _ in 0..arrays {
        value = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    value
}

/// A value `3 * lists` message levels deep below itself: key-value lists of one pair around a
/// string.
fn nested_lists(lists: usize) -> AnyValue {
    let mut value = AnyValue {
        value: Some(s("deep")),
    };
    for _ in 0..lists {
        value = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    key_strindex: 0,
                    value: Some(value),
                }],
            })),
        };
    }
    value
}

/// A request of one span with one event whose one attribute is `value`.
fn with_event_value(value: AnyValue) -> Vec<u8> {
    use prost::Message;
    let mut span = full_span();
    span.events = vec![Event {
        time_unix_nano: span.start_time_unix_nano,
        name: "deep".into(),
        attributes: vec![KeyValue {
            key: "deep".into(),
            key_strindex: 0,
            value: Some(value),
        }],
        dropped_attributes_count: 0,
    }];
    request(vec![span]).encode_to_vec()
}

/// Prost decodes a request whose messages nest at most 100 levels below it; an event's attribute
/// value is 6 down. The direct reader takes values nested up to its bound (88 levels below them)
/// and leaves deeper ones to prost, which refuses them from 95 on here.
#[test]
fn nested_values_are_read_directly_up_to_a_depth_well_inside_prosts_limit() {
    use prost::Message;
    let limits = Limits::default();
    let decodes = |bytes: &[u8]| ExportTraceServiceRequest::decode(bytes).is_ok();
    // Arrays: 88 levels, 90, 94, 96; key-value lists: 87, 90, 93, 96.
    for (taken, prost_only, prost_last, refused) in [
        (
            nested_arrays(44),
            nested_arrays(45),
            nested_arrays(47),
            nested_arrays(48),
        ),
        (
            nested_lists(29),
            nested_lists(30),
            nested_lists(31),
            nested_lists(32),
        ),
    ] {
        let bytes = with_event_value(taken);
        let direct = convert_protobuf(&bytes, &limits)
            .expect("read directly")
            .unwrap();
        let decoded = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
        assert_eq!(direct.batch, convert(&decoded, &limits).unwrap().batch);

        let bytes = with_event_value(prost_only);
        assert!(convert_protobuf(&bytes, &limits).is_none());
        assert!(decodes(&bytes));

        assert!(decodes(&with_event_value(prost_last)));
        let bytes = with_event_value(refused);
        assert!(!decodes(&bytes));
        assert!(convert_protobuf(&bytes, &limits).is_none());
    }
}

/// A nested value prost would not decode leaves the request to prost: a string that is not
/// UTF-8, a field of the wrong wire type, a truncated length — deep inside the value.
#[test]
fn nested_values_prost_refuses_are_declined() {
    use prost::Message;
    let limits = Limits::default();
    let marker = "marker-string";
    let bytes = with_event_value(nested_lists(3));
    let mut with_marker = nested_arrays(2);
    if let Some(Value::ArrayValue(outer)) = &mut with_marker.value
        && let Some(Value::ArrayValue(inner)) = &mut outer.values[0].value
    {
        inner.values[0].value = Some(s(marker));
    }
    assert!(convert_protobuf(&bytes, &limits).is_some());
    let good = with_event_value(with_marker);
    assert!(convert_protobuf(&good, &limits).is_some());
    let at = good
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("the string is in the bytes");

    let mut not_utf8 = good.clone();
    not_utf8[at] = 0xff;
    // The string's key, one byte before its length: the same bytes as field 3, an integer.
    let mut wrong_wire = good.clone();
    assert_eq!(wrong_wire[at - 2], 0x0a);
    wrong_wire[at - 2] = 0x1a;
    for damaged in [not_utf8, wrong_wire] {
        assert!(ExportTraceServiceRequest::decode(&damaged[..]).is_err());
        assert!(convert_protobuf(&damaged, &limits).is_none());
    }
}

#[test]
fn the_direct_reader_converts_a_full_request_as_prost_does() {
    use prost::Message;
    let req = request(varied_spans().to_vec());
    let direct = convert_protobuf(&req.encode_to_vec(), &Limits::default())
        .expect("the direct reader takes a request of valid spans")
        .unwrap();
    let general = convert(&req, &Limits::default()).unwrap();
    assert_eq!(direct.batch.num_rows(), 3);
    assert_eq!(direct.batch, general.batch);
    let back: Vec<Span> = read_spans(&direct.batch)
        .unwrap()
        .into_iter()
        .map(|s| s.span)
        .collect();
    assert_eq!(back, varied_spans().to_vec());
}

/// Requests it must leave to prost: a rejected span (so the partial success is reported and
/// only the valid spans are logged), invalid UTF-8 (repaired on the general path), a resource's
/// entity references, and more repeated bytes than the limit.
#[test]
fn the_direct_reader_declines_what_the_general_path_handles() {
    use prost::Message;
    let limits = Limits::default();
    let mut bad = full_span();
    bad.kind = 9;
    let req = request(vec![full_span(), bad]);
    assert!(convert_protobuf(&req.encode_to_vec(), &limits).is_none());

    let mut bytes = request(vec![full_span()]).encode_to_vec();
    let at = bytes
        .windows(4)
        .position(|w| w == b"GET ")
        .expect("the span name is in the bytes");
    bytes[at] = 0xff;
    assert!(convert_protobuf(&bytes, &limits).is_none());
    assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_err());

    let mut with_entity = request(vec![full_span()]);
    with_entity.resource_spans[0]
        .resource
        .as_mut()
        .unwrap()
        .entity_refs
        .push(Default::default());
    assert!(convert_protobuf(&with_entity.encode_to_vec(), &limits).is_none());

    let small = Limits {
        max_repeated_bytes: 332,
        ..Limits::default()
    };
    let req = request(vec![full_span()]);
    assert!(convert_protobuf(&req.encode_to_vec(), &small).is_none());
    let just = Limits {
        max_repeated_bytes: 333,
        ..Limits::default()
    };
    assert!(convert_protobuf(&req.encode_to_vec(), &just).is_some());
}

/// Protobuf allows what encoders rarely do: messages concatenated (their lists joined), fields
/// out of order, fields repeated (the last wins), unknown fields (skipped).
#[test]
fn the_direct_reader_reads_unusual_encodings_as_prost_does() {
    use prost::Message;
    let limits = Limits::default();
    let mut bytes = request(vec![full_span()]).encode_to_vec();
    bytes.extend(request(varied_spans().to_vec()).encode_to_vec());
    // Field 99, a varint, at the top level; then a span given twice over in one message: the
    // second encoding's scalar fields win and its lists are appended.
    bytes.extend([0x98, 0x06, 0x05]);
    let mut twice = full_span().encode_to_vec();
    let mut other = full_span();
    other.name = "second".into();
    other.kind = 3;
    // A second status would be merged into the first by prost: the direct reader declines that.
    other.status = None;
    twice.extend(other.encode_to_vec());
    let scope_spans = {
        let mut v = vec![0x12];
        prost::encoding::encode_varint(twice.len() as u64, &mut v);
        v.extend(&twice);
        v
    };
    let resource_spans = {
        let mut v = vec![0x12];
        prost::encoding::encode_varint(scope_spans.len() as u64, &mut v);
        v.extend(&scope_spans);
        v
    };
    bytes.push(0x0a);
    prost::encoding::encode_varint(resource_spans.len() as u64, &mut bytes);
    bytes.extend(&resource_spans);

    let decoded = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
    let general = convert(&decoded, &limits).unwrap();
    let direct = convert_protobuf(&bytes, &limits).unwrap().unwrap();
    assert_eq!(direct.batch.num_rows(), 5);
    assert_eq!(direct.batch, general.batch);
    let last = read_spans(&direct.batch).unwrap().pop().unwrap().span;
    assert_eq!(
        (last.name.as_str(), last.kind, last.attributes.len()),
        ("second", 3, 18)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Whatever the request, the direct reader's batch is the general path's; it declines only
    /// requests with rejected spans; its bound of repeated bytes is the same.
    #[test]
    fn the_direct_reader_agrees_with_prost(req in wide_request()) {
        use prost::Message;
        let limits = Limits::default();
        let bytes = req.encode_to_vec();
        let general = convert(&req, &limits).unwrap();
        match convert_protobuf(&bytes, &limits) {
            Some(direct) => {
                let direct = direct.unwrap();
                prop_assert_eq!(direct.rejected, 0);
                prop_assert_eq!(&direct.batch, &general.batch);
            }
            None => prop_assert!(
                general.rejected > 0,
                "declined a request of valid spans"
            ),
        }
        if let Some(view) = protobuf::read(&bytes) {
            prop_assert_eq!(view.origins.repeated_bytes(), repeated_bytes(&req));
        }
    }

    /// Damaged bytes: whenever the direct reader takes them, prost decodes them too, to the same
    /// spans.
    #[test]
    fn damaged_bytes_are_read_as_prost_reads_them_or_declined(
        req in wide_request(),
        edits in crate::convert::strategies::edits(),
    ) {
        use prost::Message;
        let limits = Limits::default();
        let bytes = crate::convert::strategies::damaged(req.encode_to_vec(), edits);
        if let Some(direct) = convert_protobuf(&bytes, &limits) {
            let decoded = ExportTraceServiceRequest::decode(&bytes[..]);
            prop_assert!(decoded.is_ok(), "prost refuses what the direct reader took");
            let general = convert(&decoded.unwrap(), &limits).unwrap();
            prop_assert_eq!(direct.unwrap().batch, general.batch);
        }
    }
}
