//! The log records of a logs export request, read straight from its protobuf bytes (see
//! [`crate::convert::protobuf`] for what every reader shares and what it declines).

use super::view::{LogRecords, LogView, LogsView};
use crate::convert::protobuf::{Fields, I32, I64, LEN, VARINT, attribute, read_blocks, value};

/// Reads `bytes` as an `ExportLogsServiceRequest`, or declines.
pub fn read(bytes: &[u8]) -> Option<LogsView<'_>> {
    let mut view = LogsView::default();
    let LogsView { origins, records } = &mut view;
    read_blocks(bytes, origins, |bytes| record(records, bytes))?;
    Some(view)
}

fn record<'a>(view: &mut LogRecords<'a>, bytes: &'a [u8]) -> Option<()> {
    let first = view.attributes.len();
    let mut record = LogView::default();
    let mut seen_body = false;
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        match fields.key()? {
            (1, I64) => record.time_unix_nano = fields.fixed64()?,
            (2, VARINT) => record.severity_number = fields.varint()? as i32,
            (3, LEN) => record.severity_text = fields.str()?,
            (5, LEN) => {
                // A second body would be merged into the first by prost.
                if std::mem::replace(&mut seen_body, true) {
                    return None;
                }
                record.body = value(fields.bytes()?)?;
            }
            (6, LEN) => {
                let attr = attribute(fields.bytes()?)?;
                view.attributes.push(attr);
            }
            (7, VARINT) => record.dropped_attributes_count = fields.varint()? as u32,
            (8, I32) => record.flags = fields.fixed32()?,
            (9, LEN) => record.trace_id = fields.bytes()?,
            (10, LEN) => record.span_id = fields.bytes()?,
            (11, I64) => record.observed_time_unix_nano = fields.fixed64()?,
            (12, LEN) => record.event_name = fields.str()?,
            (1..=3 | 5..=12, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    record.attributes = first..view.attributes.len();
    view.records.push(record);
    Some(())
}
