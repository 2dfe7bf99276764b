//! A trace export request as the span converter reads it: every string, id and attribute
//! borrowed, from a decoded message ([`TracesView::from_request`]) or straight from the
//! request's protobuf bytes ([`super::protobuf`]).

use std::ops::Range;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::convert::attributes::Attr;
use crate::convert::view::{Origins, push_attributes};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SpanView<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub trace_state: &'a str,
    pub parent_span_id: &'a [u8],
    pub flags: u32,
    pub name: &'a str,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// Into [`SpanRecords::span_attributes`].
    pub attributes: Range<usize>,
    pub dropped_attributes_count: u32,
    /// Into [`SpanRecords::events`].
    pub events: Range<usize>,
    pub dropped_events_count: u32,
    /// Into [`SpanRecords::links`].
    pub links: Range<usize>,
    pub dropped_links_count: u32,
    pub status_code: i32,
    pub status_message: &'a str,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct EventView<'a> {
    pub time_unix_nano: u64,
    pub name: &'a str,
    /// Into [`SpanRecords::event_attributes`].
    pub attributes: Range<usize>,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct LinkView<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub trace_state: &'a str,
    /// Into [`SpanRecords::link_attributes`].
    pub attributes: Range<usize>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

/// A request's spans. Each kind of attribute list has an array of its own, so that a list stays
/// one range even when an encoder interleaves a span's fields.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SpanRecords<'a> {
    pub spans: Vec<SpanView<'a>>,
    pub events: Vec<EventView<'a>>,
    pub links: Vec<LinkView<'a>>,
    pub span_attributes: Vec<Attr<'a>>,
    pub event_attributes: Vec<Attr<'a>>,
    pub link_attributes: Vec<Attr<'a>>,
}

/// A whole request: its blocks (whose records index [`SpanRecords::spans`]) and its spans.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TracesView<'a> {
    pub origins: Origins<'a>,
    pub records: SpanRecords<'a>,
}

impl<'a> TracesView<'a> {
    /// The view of a decoded request (OTLP/JSON, or protobuf the direct reader left to prost).
    pub fn from_request(request: &'a ExportTraceServiceRequest) -> Self {
        let mut origins = Origins::default();
        let mut v = SpanRecords::default();
        for rs in &request.resource_spans {
            let resource = origins.push_resource(rs.resource.as_ref(), &rs.schema_url);
            for ss in &rs.scope_spans {
                let first = v.spans.len();
                for span in &ss.spans {
                    let attributes = push_attributes(&mut v.span_attributes, &span.attributes);
                    let first_event = v.events.len();
                    for event in &span.events {
                        let attributes =
                            push_attributes(&mut v.event_attributes, &event.attributes);
                        v.events.push(EventView {
                            time_unix_nano: event.time_unix_nano,
                            name: &event.name,
                            attributes,
                            dropped_attributes_count: event.dropped_attributes_count,
                        });
                    }
                    let first_link = v.links.len();
                    for link in &span.links {
                        let attributes = push_attributes(&mut v.link_attributes, &link.attributes);
                        v.links.push(LinkView {
                            trace_id: &link.trace_id,
                            span_id: &link.span_id,
                            trace_state: &link.trace_state,
                            attributes,
                            dropped_attributes_count: link.dropped_attributes_count,
                            flags: link.flags,
                        });
                    }
                    let (status_code, status_message) = span
                        .status
                        .as_ref()
                        .map_or((0, ""), |s| (s.code, s.message.as_str()));
                    v.spans.push(SpanView {
                        trace_id: &span.trace_id,
                        span_id: &span.span_id,
                        trace_state: &span.trace_state,
                        parent_span_id: &span.parent_span_id,
                        flags: span.flags,
                        name: &span.name,
                        kind: span.kind,
                        start_time_unix_nano: span.start_time_unix_nano,
                        end_time_unix_nano: span.end_time_unix_nano,
                        attributes,
                        dropped_attributes_count: span.dropped_attributes_count,
                        events: first_event..v.events.len(),
                        dropped_events_count: span.dropped_events_count,
                        links: first_link..v.links.len(),
                        dropped_links_count: span.dropped_links_count,
                        status_code,
                        status_message,
                    });
                }
                origins.push_block(
                    resource,
                    ss.scope.as_ref(),
                    &ss.schema_url,
                    first..v.spans.len(),
                );
            }
        }
        TracesView {
            origins,
            records: v,
        }
    }
}
