//! Turning an OTLP/HTTP request body into a request message: content type, content encoding,
//! size limits, protobuf or JSON.

use std::io::Read;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use prost::Message;

/// The two OTLP/HTTP body encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    #[error("unsupported content encoding {0:?}: use gzip, zstd or none")]
    UnsupportedEncoding(String),
    #[error("request body larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error(
        "request holds {records} records, more than the limit of {limit} (--max-request-records); send fewer records per request"
    )]
    TooManyRecords { records: usize, limit: usize },
    #[error("could not decompress the {encoding} body: {message}")]
    Decompress {
        encoding: &'static str,
        message: String,
    },
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid OTLP/JSON {0}")]
    Json(#[from] super::json::JsonError),
}

/// The body encoding named by the Content-Type header (parameters such as charset ignored).
pub fn encoding(headers: &HeaderMap) -> Result<Encoding, DecodeError> {
    let raw = headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(DecodeError::UnsupportedMediaType(raw)),
    }
}

fn read_limited(
    mut reader: impl Read,
    limit: usize,
    encoding: &'static str,
) -> Result<Bytes, DecodeError> {
    let mut out = Vec::new();
    let read = reader
        .by_ref()
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Decompress {
            encoding,
            message: e.to_string(),
        })?;
    if read > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// Undoes the Content-Encoding, never producing more than `limit` bytes.
pub fn decompress(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    let encoding = headers
        .get(CONTENT_ENCODING)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            read_limited(flate2::read::MultiGzDecoder::new(&body[..]), limit, "gzip")
        }
        "zstd" => {
            let decoder = zstd::stream::read::Decoder::new(&body[..]).map_err(|e| {
                DecodeError::Decompress {
                    encoding: "zstd",
                    message: e.to_string(),
                }
            })?;
            read_limited(decoder, limit, "zstd")
        }
        _ => Err(DecodeError::UnsupportedEncoding(encoding)),
    }
}

/// A decoded request, the protobuf bytes it was decoded from (after any repair), and how many
/// strings had invalid UTF-8 replaced.
pub struct Decoded<M> {
    pub message: M,
    pub protobuf: Option<Bytes>,
    pub repaired: usize,
}

/// Decodes protobuf; when that fails, replaces invalid UTF-8 in the schema's string fields (see
/// [`super::utf8`]) and tries again, so one bad string does not lose a whole request.
pub fn decode_protobuf<M: Message + Default>(
    body: Bytes,
    schema: &super::utf8::Schema,
) -> Result<Decoded<M>, DecodeError> {
    match M::decode(body.clone()) {
        Ok(message) => Ok(Decoded {
            message,
            protobuf: Some(body),
            repaired: 0,
        }),
        Err(error) => match super::utf8::repair(&body, schema) {
            Some((fixed, repaired)) if repaired > 0 => {
                let fixed = Bytes::from(fixed);
                let message = M::decode(fixed.clone()).map_err(|_| DecodeError::Protobuf(error))?;
                Ok(Decoded {
                    message,
                    protobuf: Some(fixed),
                    repaired,
                })
            }
            _ => Err(DecodeError::Protobuf(error)),
        },
    }
}

/// Decodes a request message from a (decompressed) body; `from_json` reads OTLP/JSON.
pub fn decode<M: Message + Default>(
    body: Bytes,
    encoding: Encoding,
    schema: &super::utf8::Schema,
    from_json: fn(&[u8]) -> Result<M, super::json::JsonError>,
) -> Result<Decoded<M>, DecodeError> {
    match encoding {
        Encoding::Protobuf => decode_protobuf(body, schema),
        Encoding::Json => Ok(Decoded {
            message: from_json(&body)?,
            protobuf: None,
            repaired: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use std::io::Write;

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        Bytes::from(enc.finish().unwrap())
    }

    #[test]
    fn content_types_map_to_encodings() {
        let h = headers(&[(CONTENT_TYPE, "application/json; charset=utf-8")]);
        assert_eq!(encoding(&h).unwrap(), Encoding::Json);
        let h = headers(&[(CONTENT_TYPE, "application/x-protobuf")]);
        assert_eq!(encoding(&h).unwrap(), Encoding::Protobuf);
        let h = headers(&[(CONTENT_TYPE, "text/plain")]);
        assert!(matches!(
            encoding(&h),
            Err(DecodeError::UnsupportedMediaType(_))
        ));
        assert!(encoding(&HeaderMap::new()).is_err());
    }

    #[test]
    fn gzip_bodies_are_inflated() {
        let h = headers(&[(CONTENT_ENCODING, "gzip")]);
        let out = decompress(&h, gzip(b"hello"), 100).unwrap();
        assert_eq!(&out[..], b"hello");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let h = headers(&[(CONTENT_ENCODING, "gzip")]);
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024);
        assert!(matches!(
            decompress(&h, bomb, 1024 * 1024),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn corrupt_gzip_is_a_decompress_error() {
        let h = headers(&[(CONTENT_ENCODING, "gzip")]);
        let err = decompress(&h, Bytes::from_static(b"not gzip at all"), 100).unwrap_err();
        assert!(matches!(err, DecodeError::Decompress { .. }), "{err}");
    }

    #[test]
    fn otlp_json_uses_hex_ids_and_accepts_string_or_number_times() {
        let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000",
            "endTimeUnixNano":1544712661000000000,
            "attributes":[{"key":"n","value":{"intValue":"7"}}]}]}]}]}"#;
        let req: ExportTraceServiceRequest = decode(
            Bytes::from(json),
            Encoding::Json,
            &crate::otlp::utf8::TRACES,
            crate::otlp::json::traces,
        )
        .unwrap()
        .message;
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id[0], 0x5b);
        assert_eq!(span.span_id.len(), 8);
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    }

    #[test]
    fn wrongly_typed_json_is_rejected() {
        let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"two"}]}]}]}"#;
        let err = decode::<ExportTraceServiceRequest>(
            Bytes::from(json),
            Encoding::Json,
            &crate::otlp::utf8::TRACES,
            crate::otlp::json::traces,
        );
        assert!(matches!(err, Err(DecodeError::Json(_))));
    }
}
