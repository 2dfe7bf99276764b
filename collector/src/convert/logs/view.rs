//! A logs export request as the log converter reads it: every string, id and attribute
//! borrowed, from a decoded message ([`LogsView::from_request`]) or straight from the request's
//! protobuf bytes ([`super::protobuf`]).

use std::ops::Range;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use crate::convert::attributes::Attr;
use crate::convert::view::{Origins, push_attributes};
use crate::schema::attributes::ValueRef;

#[derive(Debug, Clone, PartialEq)]
pub struct LogView<'a> {
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: &'a str,
    pub body: ValueRef<'a>,
    /// Into [`LogRecords::attributes`].
    pub attributes: Range<usize>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub event_name: &'a str,
}

impl Default for LogView<'_> {
    fn default() -> Self {
        Self {
            time_unix_nano: 0,
            observed_time_unix_nano: 0,
            severity_number: 0,
            severity_text: "",
            body: ValueRef::Empty,
            attributes: 0..0,
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: &[],
            span_id: &[],
            event_name: "",
        }
    }
}

/// A request's log records and their attributes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogRecords<'a> {
    pub records: Vec<LogView<'a>>,
    pub attributes: Vec<Attr<'a>>,
}

/// A whole request: its blocks (whose records index [`LogRecords::records`]) and its records.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogsView<'a> {
    pub origins: Origins<'a>,
    pub records: LogRecords<'a>,
}

impl<'a> LogsView<'a> {
    /// The view of a decoded request (OTLP/JSON, or protobuf the direct reader left to prost).
    pub fn from_request(request: &'a ExportLogsServiceRequest) -> Self {
        let mut origins = Origins::default();
        let mut v = LogRecords::default();
        for rl in &request.resource_logs {
            let resource = origins.push_resource(rl.resource.as_ref(), &rl.schema_url);
            for sl in &rl.scope_logs {
                let first = v.records.len();
                for r in &sl.log_records {
                    let attributes = push_attributes(&mut v.attributes, &r.attributes);
                    v.records.push(LogView {
                        time_unix_nano: r.time_unix_nano,
                        observed_time_unix_nano: r.observed_time_unix_nano,
                        severity_number: r.severity_number,
                        severity_text: &r.severity_text,
                        body: ValueRef::from(r.body.as_ref()),
                        attributes,
                        dropped_attributes_count: r.dropped_attributes_count,
                        flags: r.flags,
                        trace_id: &r.trace_id,
                        span_id: &r.span_id,
                        event_name: &r.event_name,
                    });
                }
                origins.push_block(
                    resource,
                    sl.scope.as_ref(),
                    &sl.schema_url,
                    first..v.records.len(),
                );
            }
        }
        LogsView {
            origins,
            records: v,
        }
    }
}
