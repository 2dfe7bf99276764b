//! The span records of a trace export request, read straight from its protobuf bytes (see
//! [`crate::convert::protobuf`] for what every reader shares and what it declines).

use super::view::{EventView, LinkView, SpanRecords, SpanView, TracesView};
use crate::convert::protobuf::{Fields, I32, I64, LEN, VARINT, attribute, read_blocks};

/// Reads `bytes` as an `ExportTraceServiceRequest`, or declines.
pub fn read(bytes: &[u8]) -> Option<TracesView<'_>> {
    let mut view = TracesView::default();
    let TracesView { origins, records } = &mut view;
    read_blocks(bytes, origins, |bytes| span(records, bytes))?;
    Some(view)
}

fn span<'a>(view: &mut SpanRecords<'a>, bytes: &'a [u8]) -> Option<()> {
    let (attributes, events, links) = (
        view.span_attributes.len(),
        view.events.len(),
        view.links.len(),
    );
    let mut span = SpanView::default();
    let mut seen_status = false;
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        let (tag, wire) = fields.key()?;
        match (tag, wire) {
            (1, LEN) => span.trace_id = fields.bytes()?,
            (2, LEN) => span.span_id = fields.bytes()?,
            (3, LEN) => span.trace_state = fields.str()?,
            (4, LEN) => span.parent_span_id = fields.bytes()?,
            (5, LEN) => span.name = fields.str()?,
            (6, VARINT) => span.kind = fields.varint()? as i32,
            (7, I64) => span.start_time_unix_nano = fields.fixed64()?,
            (8, I64) => span.end_time_unix_nano = fields.fixed64()?,
            (9, LEN) => {
                let attr = attribute(fields.bytes()?)?;
                view.span_attributes.push(attr);
            }
            (10, VARINT) => span.dropped_attributes_count = fields.varint()? as u32,
            (11, LEN) => event(view, fields.bytes()?)?,
            (12, VARINT) => span.dropped_events_count = fields.varint()? as u32,
            (13, LEN) => link(view, fields.bytes()?)?,
            (14, VARINT) => span.dropped_links_count = fields.varint()? as u32,
            (15, LEN) => {
                if std::mem::replace(&mut seen_status, true) {
                    return None;
                }
                let mut s = Fields::new(fields.bytes()?);
                while !s.done() {
                    match s.key()? {
                        (2, LEN) => span.status_message = s.str()?,
                        (3, VARINT) => span.status_code = s.varint()? as i32,
                        (2 | 3, _) => return None,
                        (_, wire) => s.skip(wire)?,
                    }
                }
            }
            (16, I32) => span.flags = fields.fixed32()?,
            (1..=16, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    span.attributes = attributes..view.span_attributes.len();
    span.events = events..view.events.len();
    span.links = links..view.links.len();
    view.spans.push(span);
    Some(())
}

fn event<'a>(view: &mut SpanRecords<'a>, bytes: &'a [u8]) -> Option<()> {
    let first = view.event_attributes.len();
    let mut event = EventView::default();
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        match fields.key()? {
            (1, I64) => event.time_unix_nano = fields.fixed64()?,
            (2, LEN) => event.name = fields.str()?,
            (3, LEN) => {
                let attr = attribute(fields.bytes()?)?;
                view.event_attributes.push(attr);
            }
            (4, VARINT) => event.dropped_attributes_count = fields.varint()? as u32,
            (1..=4, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    event.attributes = first..view.event_attributes.len();
    view.events.push(event);
    Some(())
}

fn link<'a>(view: &mut SpanRecords<'a>, bytes: &'a [u8]) -> Option<()> {
    let first = view.link_attributes.len();
    let mut link = LinkView::default();
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        match fields.key()? {
            (1, LEN) => link.trace_id = fields.bytes()?,
            (2, LEN) => link.span_id = fields.bytes()?,
            (3, LEN) => link.trace_state = fields.str()?,
            (4, LEN) => {
                let attr = attribute(fields.bytes()?)?;
                view.link_attributes.push(attr);
            }
            (5, VARINT) => link.dropped_attributes_count = fields.varint()? as u32,
            (6, I32) => link.flags = fields.fixed32()?,
            (1..=6, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    link.attributes = first..view.link_attributes.len();
    view.links.push(link);
    Some(())
}
