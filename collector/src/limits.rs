//! The bounds every client-controlled input is held to. Documented in `docs/operations.md` ("Limits").

/// Limits applied while decoding and converting OTLP requests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted, before and after decompression (HTTP 413, gRPC
    /// RESOURCE_EXHAUSTED beyond it).
    pub max_request_bytes: usize,
    /// Most attributes on one span, event, link, resource or scope; a span over it is rejected
    /// and reported in `partial_success`.
    pub max_attributes: usize,
    /// Most events, and most links, on one span.
    pub max_events_or_links: usize,
    /// Most bytes a request's records may repeat: every record stores its resource and scope
    /// (and a data point its metric's name, description, unit and metadata), so a request within
    /// `max_request_bytes` could otherwise expand without bound. Beyond it the request is refused
    /// whole (HTTP 413, gRPC RESOURCE_EXHAUSTED) before anything is converted.
    pub max_repeated_bytes: usize,
    /// Most records (spans, log records, data points) in one request, counted on its bytes
    /// before it is decoded: a record costs a few hundred bytes of memory once decoded and
    /// converted however little of the body it takes (an empty log record is 2 bytes of
    /// protobuf). Beyond it the request is refused whole (HTTP 413, gRPC RESOURCE_EXHAUSTED).
    pub max_request_records: usize,
    /// Most Arrow bytes acknowledged but not yet flushed to Parquet, over all tables; OTLP
    /// requests are refused as retryable (HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo)
    /// while the buffers hold this much.
    pub max_buffer_bytes: usize,
    /// Free bytes the data directory's file system keeps in reserve: with less free, OTLP
    /// requests are refused as retryable, so that what was acknowledged can still be flushed to
    /// Parquet and merged. 0 turns the check off.
    pub min_free_disk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 16 * 1024 * 1024,
            max_attributes: 1024,
            max_events_or_links: 1024,
            max_repeated_bytes: 128 * 1024 * 1024,
            max_request_records: 256 * 1024,
            max_buffer_bytes: 256 * 1024 * 1024,
            min_free_disk_bytes: 1024 * 1024 * 1024,
        }
    }
}
