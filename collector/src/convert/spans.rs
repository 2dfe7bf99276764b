//! OTLP spans → one Arrow batch of the `spans` table, with the validation that decides which
//! spans are rejected (and reported back in `partial_success`).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, Int64Builder, ListArray, StringBuilder, StructArray,
    TimestampNanosecondBuilder, UInt32Builder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::Field;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::attributes::{Attr, AttributeColumns, AttributeSizes};
use super::origin::{Origin, OriginColumns, resource_bytes, scope_bytes};
use super::rejections::Rejections;
use super::view::BlockView;
use crate::limits::Limits;
use crate::schema::spans::{self, SPAN_KINDS, STATUS_CODES};

mod protobuf;
pub mod view;

use view::{SpanView, TracesView};

/// Why one span was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanRejection {
    #[error("trace_id must be 16 bytes and not all zero (got {0} bytes)")]
    TraceId(usize),
    #[error("span_id must be 8 bytes and not all zero (got {0} bytes)")]
    SpanId(usize),
    #[error("parent_span_id must be empty or 8 bytes (got {0} bytes)")]
    ParentSpanId(usize),
    #[error("start_time_unix_nano must be set and before year 2262")]
    StartTime,
    #[error("end_time_unix_nano is before start_time_unix_nano")]
    EndBeforeStart,
    #[error("unknown span kind {0}")]
    Kind(i32),
    #[error("unknown status code {0}")]
    StatusCode(i32),
    #[error("{what} has {count} attributes, more than the limit of {limit}")]
    TooManyAttributes {
        what: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("{count} {what}, more than the limit of {limit}")]
    TooMany {
        what: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("link {0}: trace_id must be 16 bytes and span_id 8 bytes")]
    LinkIds(usize),
}

fn check_attrs(what: &'static str, count: usize, limits: &Limits) -> Result<(), SpanRejection> {
    if count > limits.max_attributes {
        return Err(SpanRejection::TooManyAttributes {
            what,
            count,
            limit: limits.max_attributes,
        });
    }
    Ok(())
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|b| *b != 0)
}

/// Checks one span of `view` against the OTLP rules and Lakescope's limits.
pub fn validate_span(
    span: &SpanView<'_>,
    view: &TracesView<'_>,
    limits: &Limits,
) -> Result<(), SpanRejection> {
    if !valid_id(span.trace_id, 16) {
        return Err(SpanRejection::TraceId(span.trace_id.len()));
    }
    if !valid_id(span.span_id, 8) {
        return Err(SpanRejection::SpanId(span.span_id.len()));
    }
    if !(span.parent_span_id.is_empty() || span.parent_span_id.len() == 8) {
        return Err(SpanRejection::ParentSpanId(span.parent_span_id.len()));
    }
    if span.start_time_unix_nano == 0 || i64::try_from(span.end_time_unix_nano).is_err() {
        return Err(SpanRejection::StartTime);
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(SpanRejection::EndBeforeStart);
    }
    if usize::try_from(span.kind).map_or(true, |k| k >= SPAN_KINDS.len()) {
        return Err(SpanRejection::Kind(span.kind));
    }
    let status = span.status_code;
    if usize::try_from(status).map_or(true, |c| c >= STATUS_CODES.len()) {
        return Err(SpanRejection::StatusCode(status));
    }
    check_attrs("span", span.attributes.len(), limits)?;
    for (what, count) in [("events", span.events.len()), ("links", span.links.len())] {
        if count > limits.max_events_or_links {
            return Err(SpanRejection::TooMany {
                what,
                count,
                limit: limits.max_events_or_links,
            });
        }
    }
    for event in &view.records.events[span.events.clone()] {
        check_attrs("event", event.attributes.len(), limits)?;
    }
    for (i, link) in view.records.links[span.links.clone()].iter().enumerate() {
        if link.trace_id.len() != 16 || link.span_id.len() != 8 {
            return Err(SpanRejection::LinkIds(i));
        }
        check_attrs("link", link.attributes.len(), limits)?;
    }
    Ok(())
}

/// Whether each span of `view`, in order, is accepted: its resource and scope within the limits
/// and the span itself valid.
fn verdicts<'v>(
    view: &'v TracesView<'_>,
    limits: &'v Limits,
) -> impl Iterator<Item = Result<(), SpanRejection>> + 'v {
    view.origins.blocks.iter().flat_map(move |block| {
        let shared = shared_verdict(view, block, limits);
        view.records.spans[block.records.clone()]
            .iter()
            .map(move |span| {
                shared
                    .clone()
                    .and_then(|_| validate_span(span, view, limits))
            })
    })
}

/// Checks the attributes every span of a block shares: its resource's, then its scope's.
fn shared_verdict(
    view: &TracesView<'_>,
    block: &BlockView<'_>,
    limits: &Limits,
) -> Result<(), SpanRejection> {
    let (resource, scope) = view.origins.attribute_counts(block);
    check_attrs("resource", resource, limits)?;
    check_attrs("scope", scope, limits)
}

/// Keeps only the spans [`validate_span`] accepts (used to log exactly what was acknowledged).
pub fn retain_valid(request: &mut ExportTraceServiceRequest, limits: &Limits) {
    let accepted: Vec<bool> = verdicts(&TracesView::from_request(request), limits)
        .map(|verdict| verdict.is_ok())
        .collect();
    // `retain` visits every element once, in order: the spans in the order of `accepted`.
    let mut accepted = accepted.into_iter();
    request.resource_spans.retain_mut(|rs| {
        rs.scope_spans.retain_mut(|ss| {
            ss.spans.retain(|_| accepted.next().unwrap_or(false));
            !ss.spans.is_empty()
        });
        !rs.scope_spans.is_empty()
    });
}

fn hex_into(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

/// Lowercase hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    hex_into(&mut s, bytes);
    s
}

/// The semantic-convention attributes that get columns of their own. The first key listed for a
/// column is the current convention; later ones are older names used when it is absent.
#[derive(Default)]
struct Promoted<'a> {
    http_method: [Option<&'a str>; 2],
    http_route: Option<&'a str>,
    http_status: [Option<i64>; 2],
    rpc_system: Option<&'a str>,
    rpc_service: Option<&'a str>,
    rpc_method: Option<&'a str>,
    rpc_grpc_status: Option<i64>,
    db_system: [Option<&'a str>; 2],
    messaging_system: Option<&'a str>,
    messaging_destination: Option<&'a str>,
    server_address: [Option<&'a str>; 2],
    server_port: [Option<i64>; 2],
    peer_service: Option<&'a str>,
    exception_type: Option<&'a str>,
    exception_message: Option<&'a str>,
    exception_stacktrace: Option<&'a str>,
}

impl<'a> Promoted<'a> {
    fn from_span(span: &SpanView<'a>, view: &TracesView<'a>) -> Self {
        let mut p = Promoted::default();
        for kv in &view.records.span_attributes[span.attributes.clone()] {
            let v = kv.value;
            match kv.key {
                "http.request.method" => p.http_method[0] = v.as_str(),
                "http.method" => p.http_method[1] = v.as_str(),
                "http.route" => p.http_route = v.as_str(),
                "http.response.status_code" => p.http_status[0] = v.as_int(),
                "http.status_code" => p.http_status[1] = v.as_int(),
                "rpc.system" => p.rpc_system = v.as_str(),
                "rpc.service" => p.rpc_service = v.as_str(),
                "rpc.method" => p.rpc_method = v.as_str(),
                "rpc.grpc.status_code" => p.rpc_grpc_status = v.as_int(),
                "db.system.name" => p.db_system[0] = v.as_str(),
                "db.system" => p.db_system[1] = v.as_str(),
                "messaging.system" => p.messaging_system = v.as_str(),
                "messaging.destination.name" => p.messaging_destination = v.as_str(),
                "server.address" => p.server_address[0] = v.as_str(),
                "net.peer.name" => p.server_address[1] = v.as_str(),
                "server.port" => p.server_port[0] = v.as_int(),
                "net.peer.port" => p.server_port[1] = v.as_int(),
                "peer.service" => p.peer_service = v.as_str(),
                "exception.type" => p.exception_type = v.as_str(),
                "exception.message" => p.exception_message = v.as_str(),
                "exception.stacktrace" => p.exception_stacktrace = v.as_str(),
                _ => {}
            }
        }
        let events = &view.records.events[span.events.clone()];
        if let Some(event) = events.iter().find(|e| e.name == "exception") {
            let attributes = &view.records.event_attributes[event.attributes.clone()];
            let get = |key: &str| attributes.iter().find(|kv| kv.key == key)?.value.as_str();
            p.exception_type = get("exception.type").or(p.exception_type);
            p.exception_message = get("exception.message").or(p.exception_message);
            p.exception_stacktrace = get("exception.stacktrace").or(p.exception_stacktrace);
        }
        p
    }
}

fn first<T: Copy>(options: [Option<T>; 2]) -> Option<T> {
    options[0].or(options[1])
}

/// Column builders for the `spans` schema.
struct SpanColumns {
    trace_id: BinaryBuilder,
    span_id: BinaryBuilder,
    parent_span_id: BinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    name: StringBuilder,
    kind: StringBuilder,
    start: TimestampNanosecondBuilder,
    duration: Int64Builder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    origin: OriginColumns,
    http_method: StringBuilder,
    http_route: StringBuilder,
    http_status_code: Int64Builder,
    rpc_system: StringBuilder,
    rpc_service: StringBuilder,
    rpc_method: StringBuilder,
    rpc_grpc_status_code: Int64Builder,
    db_system: StringBuilder,
    messaging_system: StringBuilder,
    messaging_destination: StringBuilder,
    server_address: StringBuilder,
    server_port: Int64Builder,
    peer_service: StringBuilder,
    exception_type: StringBuilder,
    exception_message: StringBuilder,
    exception_stacktrace: StringBuilder,
    attributes: AttributeColumns,
    dropped_attributes: UInt32Builder,
    events: EventColumns,
    dropped_events: UInt32Builder,
    links: LinkColumns,
    dropped_links: UInt32Builder,
}

fn timestamps(rows: usize) -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::with_capacity(rows).with_timezone("UTC")
}

impl SpanColumns {
    /// For the rows `origin` is sized for, with span attributes of `attributes`' size.
    fn with_capacity(origin: OriginColumns, attributes: AttributeSizes) -> Self {
        let rows = origin.rows();
        let s = || StringBuilder::with_capacity(rows, rows * 8);
        Self {
            trace_id: BinaryBuilder::with_capacity(rows, rows * 16),
            span_id: BinaryBuilder::with_capacity(rows, rows * 8),
            parent_span_id: BinaryBuilder::with_capacity(rows, rows * 8),
            trace_state: s(),
            flags: UInt32Builder::with_capacity(rows),
            name: s(),
            kind: s(),
            start: timestamps(rows),
            duration: Int64Builder::with_capacity(rows),
            status_code: s(),
            status_message: s(),
            origin,
            http_method: s(),
            http_route: s(),
            http_status_code: Int64Builder::with_capacity(rows),
            rpc_system: s(),
            rpc_service: s(),
            rpc_method: s(),
            rpc_grpc_status_code: Int64Builder::with_capacity(rows),
            db_system: s(),
            messaging_system: s(),
            messaging_destination: s(),
            server_address: s(),
            server_port: Int64Builder::with_capacity(rows),
            peer_service: s(),
            exception_type: s(),
            exception_message: s(),
            exception_stacktrace: s(),
            attributes: AttributeColumns::with_sizes(rows, attributes),
            dropped_attributes: UInt32Builder::with_capacity(rows),
            events: EventColumns::default(),
            dropped_events: UInt32Builder::with_capacity(rows),
            links: LinkColumns::default(),
            dropped_links: UInt32Builder::with_capacity(rows),
        }
    }

    fn append(
        &mut self,
        span: &SpanView<'_>,
        view: &TracesView<'_>,
        origin: &Origin<'_, Attr<'_>>,
    ) {
        self.trace_id.append_value(span.trace_id);
        self.span_id.append_value(span.span_id);
        if span.parent_span_id.is_empty() {
            self.parent_span_id.append_null();
        } else {
            self.parent_span_id.append_value(span.parent_span_id);
        }
        self.trace_state.append_value(span.trace_state);
        self.flags.append_value(span.flags);
        self.name.append_value(span.name);
        // validate_span has checked kind and status code are in range, and the times fit i64.
        let kind = usize::try_from(span.kind).unwrap_or(0);
        self.kind
            .append_value(SPAN_KINDS[kind.min(SPAN_KINDS.len() - 1)]);
        let start = i64::try_from(span.start_time_unix_nano).unwrap_or(i64::MAX);
        let end = i64::try_from(span.end_time_unix_nano).unwrap_or(i64::MAX);
        self.start.append_value(start);
        self.duration.append_value(end.saturating_sub(start).max(0));
        let code = usize::try_from(span.status_code).unwrap_or(0);
        self.status_code
            .append_value(STATUS_CODES[code.min(STATUS_CODES.len() - 1)]);
        self.status_message.append_value(span.status_message);

        self.origin.append(origin);

        let p = Promoted::from_span(span, view);
        self.http_method.append_option(first(p.http_method));
        self.http_route.append_option(p.http_route);
        self.http_status_code.append_option(first(p.http_status));
        self.rpc_system.append_option(p.rpc_system);
        self.rpc_service.append_option(p.rpc_service);
        self.rpc_method.append_option(p.rpc_method);
        self.rpc_grpc_status_code.append_option(p.rpc_grpc_status);
        self.db_system.append_option(first(p.db_system));
        self.messaging_system.append_option(p.messaging_system);
        self.messaging_destination
            .append_option(p.messaging_destination);
        self.server_address.append_option(first(p.server_address));
        self.server_port.append_option(first(p.server_port));
        self.peer_service.append_option(p.peer_service);
        self.exception_type.append_option(p.exception_type);
        self.exception_message.append_option(p.exception_message);
        self.exception_stacktrace
            .append_option(p.exception_stacktrace);

        self.attributes
            .append(&view.records.span_attributes[span.attributes.clone()]);
        self.dropped_attributes
            .append_value(span.dropped_attributes_count);
        self.events.append(span, view);
        self.dropped_events.append_value(span.dropped_events_count);
        self.links.append(span, view);
        self.dropped_links.append_value(span.dropped_links_count);
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let origin = self.origin.finish();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(spans::COLUMNS.len());
        let mut push = |a: ArrayRef| columns.push(a);
        push(Arc::new(self.trace_id.finish()));
        push(Arc::new(self.span_id.finish()));
        push(Arc::new(self.parent_span_id.finish()));
        push(Arc::new(self.trace_state.finish()));
        push(Arc::new(self.flags.finish()));
        push(Arc::new(self.name.finish()));
        push(Arc::new(self.kind.finish()));
        push(Arc::new(self.start.finish()));
        push(Arc::new(self.duration.finish()));
        push(Arc::new(self.status_code.finish()));
        push(Arc::new(self.status_message.finish()));
        push(origin.service_name);
        push(origin.service_namespace);
        push(origin.service_version);
        push(origin.service_instance_id);
        push(Arc::new(self.http_method.finish()));
        push(Arc::new(self.http_route.finish()));
        push(Arc::new(self.http_status_code.finish()));
        push(Arc::new(self.rpc_system.finish()));
        push(Arc::new(self.rpc_service.finish()));
        push(Arc::new(self.rpc_method.finish()));
        push(Arc::new(self.rpc_grpc_status_code.finish()));
        push(Arc::new(self.db_system.finish()));
        push(Arc::new(self.messaging_system.finish()));
        push(Arc::new(self.messaging_destination.finish()));
        push(Arc::new(self.server_address.finish()));
        push(Arc::new(self.server_port.finish()));
        push(Arc::new(self.peer_service.finish()));
        push(Arc::new(self.exception_type.finish()));
        push(Arc::new(self.exception_message.finish()));
        push(Arc::new(self.exception_stacktrace.finish()));
        let (attrs, types) = self.attributes.finish();
        push(attrs);
        push(types);
        push(Arc::new(self.dropped_attributes.finish()));
        push(self.events.finish()?);
        push(Arc::new(self.dropped_events.finish()));
        push(self.links.finish()?);
        push(Arc::new(self.dropped_links.finish()));
        push(origin.resource_attributes);
        push(origin.resource_attribute_types);
        push(origin.resource_dropped);
        push(origin.resource_schema_url);
        push(origin.scope_name);
        push(origin.scope_version);
        push(origin.scope_attributes);
        push(origin.scope_attribute_types);
        push(origin.scope_dropped);
        push(origin.scope_schema_url);
        RecordBatch::try_new(spans::schema(), columns)
    }
}

/// Offsets of a list column: one entry per span.
fn offsets(lengths: &[usize]) -> OffsetBuffer<i32> {
    OffsetBuffer::from_lengths(lengths.iter().copied())
}

#[derive(Default)]
struct EventColumns {
    lengths: Vec<usize>,
    time: Option<TimestampNanosecondBuilder>,
    name: StringBuilder,
    attributes: Option<AttributeColumns>,
    dropped: UInt32Builder,
}

impl EventColumns {
    fn append(&mut self, span: &SpanView<'_>, view: &TracesView<'_>) {
        self.lengths.push(span.events.len());
        let time = self.time.get_or_insert_with(|| timestamps(0));
        let attributes = self
            .attributes
            .get_or_insert_with(|| AttributeColumns::with_capacity(0));
        for event in &view.records.events[span.events.clone()] {
            time.append_value(i64::try_from(event.time_unix_nano).unwrap_or(i64::MAX));
            self.name.append_value(event.name);
            attributes.append(&view.records.event_attributes[event.attributes.clone()]);
            self.dropped.append_value(event.dropped_attributes_count);
        }
    }

    fn finish(mut self) -> Result<ArrayRef, ArrowError> {
        let (attrs, types) = self
            .attributes
            .unwrap_or_else(|| AttributeColumns::with_capacity(0))
            .finish();
        let time = self.time.unwrap_or_else(|| timestamps(0)).finish();
        let values = StructArray::try_new(
            spans::event_fields(),
            vec![
                Arc::new(time),
                Arc::new(self.name.finish()),
                attrs,
                types,
                Arc::new(self.dropped.finish()),
            ],
            None,
        )?;
        list(values, &self.lengths)
    }
}

fn list(values: StructArray, lengths: &[usize]) -> Result<ArrayRef, ArrowError> {
    let field = Arc::new(Field::new("item", Array::data_type(&values).clone(), true));
    Ok(Arc::new(ListArray::try_new(
        field,
        offsets(lengths),
        Arc::new(values),
        None,
    )?))
}

#[derive(Default)]
struct LinkColumns {
    lengths: Vec<usize>,
    trace_id: BinaryBuilder,
    span_id: BinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    attributes: Option<AttributeColumns>,
    dropped: UInt32Builder,
}

impl LinkColumns {
    fn append(&mut self, span: &SpanView<'_>, view: &TracesView<'_>) {
        self.lengths.push(span.links.len());
        let attributes = self
            .attributes
            .get_or_insert_with(|| AttributeColumns::with_capacity(0));
        for link in &view.records.links[span.links.clone()] {
            self.trace_id.append_value(link.trace_id);
            self.span_id.append_value(link.span_id);
            self.trace_state.append_value(link.trace_state);
            self.flags.append_value(link.flags);
            attributes.append(&view.records.link_attributes[link.attributes.clone()]);
            self.dropped.append_value(link.dropped_attributes_count);
        }
    }

    fn finish(mut self) -> Result<ArrayRef, ArrowError> {
        let (attrs, types) = self
            .attributes
            .unwrap_or_else(|| AttributeColumns::with_capacity(0))
            .finish();
        let values = StructArray::try_new(
            spans::link_fields(),
            vec![
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.trace_state.finish()),
                Arc::new(self.flags.finish()),
                attrs,
                types,
                Arc::new(self.dropped.finish()),
            ],
            None,
        )?;
        list(values, &self.lengths)
    }
}

/// Bytes the request's spans repeat between them (an upper bound): each span stores its
/// resource and scope; a block without spans counts as one, as its origin is still encoded.
/// Checked against [`Limits::max_repeated_bytes`] before converting.
pub fn repeated_bytes(request: &ExportTraceServiceRequest) -> usize {
    let mut total = 0usize;
    for rs in &request.resource_spans {
        let resource = resource_bytes(rs.resource.as_ref(), &rs.schema_url);
        for ss in &rs.scope_spans {
            let per_span = resource + scope_bytes(ss.scope.as_ref(), &ss.schema_url);
            total = total.saturating_add(per_span.saturating_mul(ss.spans.len().max(1)));
        }
    }
    total
}

/// Converts every valid span of `request`; invalid ones are counted and skipped.
pub fn convert(
    request: &ExportTraceServiceRequest,
    limits: &Limits,
) -> Result<super::Converted, ArrowError> {
    convert_view(&TracesView::from_request(request), limits)
}

/// Converts a request straight from its protobuf bytes, when every span in it is accepted and it
/// is within [`Limits::max_repeated_bytes`]. `None` leaves the request to the general path
/// (prost's decoding, [`convert`], and the partial success for rejected spans): see
/// [`protobuf`] for what the direct reader declines.
pub fn convert_protobuf(
    bytes: &[u8],
    limits: &Limits,
) -> Option<Result<super::Converted, ArrowError>> {
    let view = protobuf::read(bytes)?;
    if view.origins.repeated_bytes() > limits.max_repeated_bytes
        || verdicts(&view, limits).any(|verdict| verdict.is_err())
    {
        return None;
    }
    Some(convert_view(&view, limits))
}

fn convert_view(view: &TracesView<'_>, limits: &Limits) -> Result<super::Converted, ArrowError> {
    // Each scope block's origin, encoded once, and whether its resource and scope are within
    // the limits. The blocks accepted size every column up front, so that none grows (and is
    // copied) as spans are appended.
    let blocks: Vec<_> = view
        .origins
        .blocks
        .iter()
        .map(|block| {
            let origin = view.origins.origin(block);
            (block, origin, shared_verdict(view, block, limits))
        })
        .collect();
    let accepted = || blocks.iter().filter(|(_, _, shared)| shared.is_ok());
    let mut attributes = AttributeSizes::default();
    for (block, _, _) in accepted() {
        for span in &view.records.spans[block.records.clone()] {
            let span_attributes = &view.records.span_attributes[span.attributes.clone()];
            attributes.entries += span_attributes.len();
            for kv in span_attributes {
                attributes.key_bytes += kv.key.len();
                attributes.value_bytes += kv.value.as_str().map_or(8, str::len);
            }
        }
    }
    let origin =
        OriginColumns::for_blocks(accepted().map(|(block, o, _)| (block.records.len(), o)));
    let mut columns = SpanColumns::with_capacity(origin, attributes);
    let mut rejected = Rejections::new("span", "spans");
    let (mut accepted, mut keys) = (Vec::new(), Vec::new());
    for (block, origin, shared) in &blocks {
        let spans = &view.records.spans[block.records.clone()];
        // Judged in the order sent, so that the first rejection reported is the first sent.
        accepted.clear();
        for (i, span) in spans.iter().enumerate() {
            match shared
                .clone()
                .and_then(|_| validate_span(span, view, limits))
            {
                Ok(()) => accepted.push(i as u32),
                Err(e) => rejected.add(e),
            }
        }
        sort_in_storage_order(spans, &mut accepted, &mut keys);
        for &i in &accepted {
            columns.append(&spans[i as usize], view, origin);
        }
    }
    Ok(super::Converted {
        batch: columns.finish()?,
        rejected: rejected.count,
        error_message: rejected.message(),
    })
}

/// Sorts `order` (indices into a block's `spans`) as the lake's files order spans after the
/// service, which the block shares: by status, second of the start, trace, start; equal ones
/// as they came. Each request's batch then holds sorted runs, and reordering a flush into
/// storage order reads every batch's columns front to back instead of at random (arrow's
/// `take` of text had been 13 % of a loaded server's time, docs/benchmarks.md).
fn sort_in_storage_order(spans: &[SpanView<'_>], order: &mut [u32], keys: &mut Vec<SortKey>) {
    // The status as its stored name sorts: ERROR, OK, UNSET.
    let status = |code: i32| match code {
        2 => 0u64,
        1 => 1,
        _ => 2,
    };
    keys.clear();
    keys.extend(order.iter().map(|&i| {
        let span = &spans[i as usize];
        let start = span.start_time_unix_nano;
        // Accepted spans have 16-byte trace ids and starts below 2^63 ns (under 2^34 seconds).
        let trace = <[u8; 16]>::try_from(span.trace_id).map_or(0, u128::from_be_bytes);
        (
            (status(span.status_code) << 40) | (start / 1_000_000_000),
            trace,
            start,
            i,
        )
    }));
    keys.sort_unstable();
    for (slot, key) in order.iter_mut().zip(keys.iter()) {
        *slot = key.3;
    }
}

/// A span's place in storage order within its block: status and second, trace id, start, and
/// its index (so that equal spans keep the order they came in).
type SortKey = (u64, u128, u64, u32);

#[cfg(test)]
mod tests;
