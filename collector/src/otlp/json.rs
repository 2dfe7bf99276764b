//! OTLP/JSON → OTLP messages, following the OTLP/JSON rules: trace and span ids as hex, other
//! bytes as base64, lowerCamelCase field names (original snake_case names accepted too), 64-bit
//! integers as strings or numbers, enums as integers (names accepted too), doubles as numbers or
//! the strings `NaN`, `Infinity` and `-Infinity`, unknown fields ignored, `null` as absent.
//! Errors name the path of the offending value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point, metric, number_data_point,
    summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use serde_json::{Map, Value};

/// Why an OTLP/JSON body could not be read, and where.
#[derive(Debug, thiserror::Error)]
#[error("at {path}: {message}")]
pub struct JsonError {
    pub path: String,
    pub message: String,
}

type Result<T> = std::result::Result<T, JsonError>;

/// A JSON object being read, with its path for error messages.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

fn err<T>(path: &str, message: impl Into<String>) -> Result<T> {
    Err(JsonError {
        path: if path.is_empty() {
            "$".into()
        } else {
            path.to_owned()
        },
        message: message.into(),
    })
}

/// `resourceSpans` → `resource_spans`.
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, path: String) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Self { map, path }),
            other => err(&path, format!("expected an object, found {}", kind(other))),
        }
    }

    fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map
            .get(key)
            .or_else(|| self.map.get(&snake(key)))
            .filter(|v| !v.is_null())
    }

    fn obj(&self, key: &str) -> Result<Option<Obj<'a>>> {
        self.get(key)
            .map(|v| Obj::new(v, self.path(key)))
            .transpose()
    }

    fn list<T>(&self, key: &str, each: impl Fn(&Value, String) -> Result<T>) -> Result<Vec<T>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| each(v, format!("{}[{i}]", self.path(key))))
                .collect(),
            Some(other) => err(
                &self.path(key),
                format!("expected an array, found {}", kind(other)),
            ),
        }
    }

    fn string(&self, key: &str) -> Result<String> {
        match self.get(key) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => err(
                &self.path(key),
                format!("expected a string, found {}", kind(other)),
            ),
        }
    }

    fn bool(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => err(
                &self.path(key),
                format!("expected a boolean, found {}", kind(other)),
            ),
        }
    }

    fn u64(&self, key: &str) -> Result<u64> {
        self.get(key).map_or(Ok(0), |v| as_u64(v, &self.path(key)))
    }

    fn i64(&self, key: &str) -> Result<i64> {
        self.get(key).map_or(Ok(0), |v| as_i64(v, &self.path(key)))
    }

    fn u32(&self, key: &str) -> Result<u32> {
        let v = self.u64(key)?;
        u32::try_from(v).or_else(|_| err(&self.path(key), format!("{v} does not fit 32 bits")))
    }

    fn i32(&self, key: &str) -> Result<i32> {
        let v = self.i64(key)?;
        i32::try_from(v).or_else(|_| err(&self.path(key), format!("{v} does not fit 32 bits")))
    }

    /// An enum: its number, or one of its names.
    fn enumeration(&self, key: &str, names: &[&str]) -> Result<i32> {
        match self.get(key) {
            Some(Value::String(s)) if s.parse::<i64>().is_err() => names
                .iter()
                .position(|n| n == s)
                .map(|i| i as i32)
                .map_or_else(|| err(&self.path(key), format!("unknown value {s:?}")), Ok),
            _ => self.i32(key),
        }
    }

    fn f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| as_f64(v, &self.path(key)))
            .transpose()
    }

    fn hex(&self, key: &str) -> Result<Vec<u8>> {
        let text = self.string(key)?;
        const_hex::decode(&text).or_else(|_| err(&self.path(key), format!("{text:?} is not hex")))
    }

    fn base64(&self, key: &str) -> Result<Vec<u8>> {
        let text = self.string(key)?;
        BASE64
            .decode(&text)
            .or_else(|_| err(&self.path(key), "not base64".to_owned()))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn as_u64(v: &Value, path: &str) -> Result<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map_or_else(|| err(path, format!("{n} is not an unsigned integer")), Ok),
        Value::String(s) => s
            .parse()
            .or_else(|_| err(path, format!("{s:?} is not an unsigned integer"))),
        other => err(path, format!("expected an integer, found {}", kind(other))),
    }
}

fn as_i64(v: &Value, path: &str) -> Result<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| err(path, format!("{n} is not an integer")), Ok),
        Value::String(s) => s
            .parse()
            .or_else(|_| err(path, format!("{s:?} is not an integer"))),
        other => err(path, format!("expected an integer, found {}", kind(other))),
    }
}

fn as_f64(v: &Value, path: &str) -> Result<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map_or_else(|| err(path, format!("{n} is not a number")), Ok),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => s
                .parse()
                .or_else(|_| err(path, format!("{s:?} is not a number"))),
        },
        other => err(path, format!("expected a number, found {}", kind(other))),
    }
}

fn any_value(v: &Value, path: String) -> Result<AnyValue> {
    let o = Obj::new(v, path)?;
    use any_value::Value as V;
    let value = if let Some(s) = o.get("stringValue") {
        let Value::String(s) = s else {
            return err(&o.path("stringValue"), "expected a string");
        };
        Some(V::StringValue(s.clone()))
    } else if o.get("boolValue").is_some() {
        Some(V::BoolValue(o.bool("boolValue")?))
    } else if o.get("intValue").is_some() {
        Some(V::IntValue(o.i64("intValue")?))
    } else if let Some(d) = o.f64("doubleValue")? {
        Some(V::DoubleValue(d))
    } else if let Some(a) = o.obj("arrayValue")? {
        Some(V::ArrayValue(ArrayValue {
            values: a.list("values", any_value)?,
        }))
    } else if let Some(l) = o.obj("kvlistValue")? {
        Some(V::KvlistValue(KeyValueList {
            values: l.list("values", key_value)?,
        }))
    } else if o.get("bytesValue").is_some() {
        Some(V::BytesValue(o.base64("bytesValue")?))
    } else {
        None
    };
    Ok(AnyValue { value })
}

fn key_value(v: &Value, path: String) -> Result<KeyValue> {
    let o = Obj::new(v, path)?;
    Ok(KeyValue {
        key: o.string("key")?,
        key_strindex: 0,
        value: o
            .get("value")
            .map(|v| any_value(v, o.path("value")))
            .transpose()?,
    })
}

fn resource(o: &Obj<'_>) -> Result<Option<Resource>> {
    o.obj("resource")?
        .map(|r| {
            Ok(Resource {
                attributes: r.list("attributes", key_value)?,
                dropped_attributes_count: r.u32("droppedAttributesCount")?,
                entity_refs: r.list("entityRefs", |v, p| {
                    let e = Obj::new(v, p)?;
                    let strings = |key: &str| {
                        e.list(key, |v, p| match v {
                            Value::String(s) => Ok(s.clone()),
                            other => err(&p, format!("expected a string, found {}", kind(other))),
                        })
                    };
                    Ok(EntityRef {
                        schema_url: e.string("schemaUrl")?,
                        r#type: e.string("type")?,
                        id_keys: strings("idKeys")?,
                        description_keys: strings("descriptionKeys")?,
                    })
                })?,
            })
        })
        .transpose()
}

fn scope(o: &Obj<'_>) -> Result<Option<InstrumentationScope>> {
    o.obj("scope")?
        .map(|s| {
            Ok(InstrumentationScope {
                name: s.string("name")?,
                version: s.string("version")?,
                attributes: s.list("attributes", key_value)?,
                dropped_attributes_count: s.u32("droppedAttributesCount")?,
            })
        })
        .transpose()
}

fn parse(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).or_else(|e| err("", e.to_string()))
}

const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn span(v: &Value, path: String) -> Result<Span> {
    let o = Obj::new(v, path)?;
    Ok(Span {
        trace_id: o.hex("traceId")?,
        span_id: o.hex("spanId")?,
        trace_state: o.string("traceState")?,
        parent_span_id: o.hex("parentSpanId")?,
        flags: o.u32("flags")?,
        name: o.string("name")?,
        kind: o.enumeration("kind", &SPAN_KINDS)?,
        start_time_unix_nano: o.u64("startTimeUnixNano")?,
        end_time_unix_nano: o.u64("endTimeUnixNano")?,
        attributes: o.list("attributes", key_value)?,
        dropped_attributes_count: o.u32("droppedAttributesCount")?,
        events: o.list("events", |v, p| {
            let e = Obj::new(v, p)?;
            Ok(span::Event {
                time_unix_nano: e.u64("timeUnixNano")?,
                name: e.string("name")?,
                attributes: e.list("attributes", key_value)?,
                dropped_attributes_count: e.u32("droppedAttributesCount")?,
            })
        })?,
        dropped_events_count: o.u32("droppedEventsCount")?,
        links: o.list("links", |v, p| {
            let l = Obj::new(v, p)?;
            Ok(span::Link {
                trace_id: l.hex("traceId")?,
                span_id: l.hex("spanId")?,
                trace_state: l.string("traceState")?,
                attributes: l.list("attributes", key_value)?,
                dropped_attributes_count: l.u32("droppedAttributesCount")?,
                flags: l.u32("flags")?,
            })
        })?,
        dropped_links_count: o.u32("droppedLinksCount")?,
        status: o
            .obj("status")?
            .map(|s| {
                Ok(Status {
                    message: s.string("message")?,
                    code: s.enumeration("code", &STATUS_CODES)?,
                })
            })
            .transpose()?,
    })
}

/// An `ExportTraceServiceRequest` from OTLP/JSON.
pub fn traces(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let root = parse(body)?;
    let o = Obj::new(&root, String::new())?;
    Ok(ExportTraceServiceRequest {
        resource_spans: o.list("resourceSpans", |v, p| {
            let rs = Obj::new(v, p)?;
            Ok(ResourceSpans {
                resource: resource(&rs)?,
                scope_spans: rs.list("scopeSpans", |v, p| {
                    let ss = Obj::new(v, p)?;
                    Ok(ScopeSpans {
                        scope: scope(&ss)?,
                        spans: ss.list("spans", span)?,
                        schema_url: ss.string("schemaUrl")?,
                    })
                })?,
                schema_url: rs.string("schemaUrl")?,
            })
        })?,
    })
}

const SEVERITY_NAMES: [&str; 25] = [
    "SEVERITY_NUMBER_UNSPECIFIED",
    "SEVERITY_NUMBER_TRACE",
    "SEVERITY_NUMBER_TRACE2",
    "SEVERITY_NUMBER_TRACE3",
    "SEVERITY_NUMBER_TRACE4",
    "SEVERITY_NUMBER_DEBUG",
    "SEVERITY_NUMBER_DEBUG2",
    "SEVERITY_NUMBER_DEBUG3",
    "SEVERITY_NUMBER_DEBUG4",
    "SEVERITY_NUMBER_INFO",
    "SEVERITY_NUMBER_INFO2",
    "SEVERITY_NUMBER_INFO3",
    "SEVERITY_NUMBER_INFO4",
    "SEVERITY_NUMBER_WARN",
    "SEVERITY_NUMBER_WARN2",
    "SEVERITY_NUMBER_WARN3",
    "SEVERITY_NUMBER_WARN4",
    "SEVERITY_NUMBER_ERROR",
    "SEVERITY_NUMBER_ERROR2",
    "SEVERITY_NUMBER_ERROR3",
    "SEVERITY_NUMBER_ERROR4",
    "SEVERITY_NUMBER_FATAL",
    "SEVERITY_NUMBER_FATAL2",
    "SEVERITY_NUMBER_FATAL3",
    "SEVERITY_NUMBER_FATAL4",
];

fn log_record(v: &Value, path: String) -> Result<LogRecord> {
    let o = Obj::new(v, path)?;
    Ok(LogRecord {
        time_unix_nano: o.u64("timeUnixNano")?,
        observed_time_unix_nano: o.u64("observedTimeUnixNano")?,
        severity_number: o.enumeration("severityNumber", &SEVERITY_NAMES)?,
        severity_text: o.string("severityText")?,
        body: o
            .get("body")
            .map(|v| any_value(v, o.path("body")))
            .transpose()?,
        attributes: o.list("attributes", key_value)?,
        dropped_attributes_count: o.u32("droppedAttributesCount")?,
        flags: o.u32("flags")?,
        trace_id: o.hex("traceId")?,
        span_id: o.hex("spanId")?,
        event_name: o.string("eventName")?,
    })
}

/// An `ExportLogsServiceRequest` from OTLP/JSON.
pub fn logs(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    let root = parse(body)?;
    let o = Obj::new(&root, String::new())?;
    Ok(ExportLogsServiceRequest {
        resource_logs: o.list("resourceLogs", |v, p| {
            let rl = Obj::new(v, p)?;
            Ok(ResourceLogs {
                resource: resource(&rl)?,
                scope_logs: rl.list("scopeLogs", |v, p| {
                    let sl = Obj::new(v, p)?;
                    Ok(ScopeLogs {
                        scope: scope(&sl)?,
                        log_records: sl.list("logRecords", log_record)?,
                        schema_url: sl.string("schemaUrl")?,
                    })
                })?,
                schema_url: rl.string("schemaUrl")?,
            })
        })?,
    })
}

const TEMPORALITIES: [&str; 3] = [
    "AGGREGATION_TEMPORALITY_UNSPECIFIED",
    "AGGREGATION_TEMPORALITY_DELTA",
    "AGGREGATION_TEMPORALITY_CUMULATIVE",
];

fn exemplars(o: &Obj<'_>) -> Result<Vec<Exemplar>> {
    o.list("exemplars", |v, p| {
        let e = Obj::new(v, p)?;
        let value = if e.get("asInt").is_some() {
            Some(exemplar::Value::AsInt(e.i64("asInt")?))
        } else {
            e.f64("asDouble")?.map(exemplar::Value::AsDouble)
        };
        Ok(Exemplar {
            filtered_attributes: e.list("filteredAttributes", key_value)?,
            time_unix_nano: e.u64("timeUnixNano")?,
            span_id: e.hex("spanId")?,
            trace_id: e.hex("traceId")?,
            value,
        })
    })
}

fn u64_list(o: &Obj<'_>, key: &str) -> Result<Vec<u64>> {
    o.list(key, |v, p| as_u64(v, &p))
}

fn number_point(v: &Value, path: String) -> Result<NumberDataPoint> {
    let o = Obj::new(v, path)?;
    let value = if o.get("asInt").is_some() {
        Some(number_data_point::Value::AsInt(o.i64("asInt")?))
    } else {
        o.f64("asDouble")?.map(number_data_point::Value::AsDouble)
    };
    Ok(NumberDataPoint {
        attributes: o.list("attributes", key_value)?,
        start_time_unix_nano: o.u64("startTimeUnixNano")?,
        time_unix_nano: o.u64("timeUnixNano")?,
        exemplars: exemplars(&o)?,
        flags: o.u32("flags")?,
        value,
    })
}

fn histogram_point(v: &Value, path: String) -> Result<HistogramDataPoint> {
    let o = Obj::new(v, path)?;
    Ok(HistogramDataPoint {
        attributes: o.list("attributes", key_value)?,
        start_time_unix_nano: o.u64("startTimeUnixNano")?,
        time_unix_nano: o.u64("timeUnixNano")?,
        count: o.u64("count")?,
        sum: o.f64("sum")?,
        bucket_counts: u64_list(&o, "bucketCounts")?,
        explicit_bounds: o.list("explicitBounds", |v, p| as_f64(v, &p))?,
        exemplars: exemplars(&o)?,
        flags: o.u32("flags")?,
        min: o.f64("min")?,
        max: o.f64("max")?,
    })
}

fn exponential_point(v: &Value, path: String) -> Result<ExponentialHistogramDataPoint> {
    let o = Obj::new(v, path)?;
    let buckets = |key: &str| {
        o.obj(key)?
            .map(|b| {
                Ok(exponential_histogram_data_point::Buckets {
                    offset: b.i32("offset")?,
                    bucket_counts: u64_list(&b, "bucketCounts")?,
                })
            })
            .transpose()
    };
    Ok(ExponentialHistogramDataPoint {
        attributes: o.list("attributes", key_value)?,
        start_time_unix_nano: o.u64("startTimeUnixNano")?,
        time_unix_nano: o.u64("timeUnixNano")?,
        count: o.u64("count")?,
        sum: o.f64("sum")?,
        scale: o.i32("scale")?,
        zero_count: o.u64("zeroCount")?,
        positive: buckets("positive")?,
        negative: buckets("negative")?,
        flags: o.u32("flags")?,
        exemplars: exemplars(&o)?,
        min: o.f64("min")?,
        max: o.f64("max")?,
        zero_threshold: o.f64("zeroThreshold")?.unwrap_or(0.0),
    })
}

fn summary_point(v: &Value, path: String) -> Result<SummaryDataPoint> {
    let o = Obj::new(v, path)?;
    Ok(SummaryDataPoint {
        attributes: o.list("attributes", key_value)?,
        start_time_unix_nano: o.u64("startTimeUnixNano")?,
        time_unix_nano: o.u64("timeUnixNano")?,
        count: o.u64("count")?,
        sum: o.f64("sum")?.unwrap_or(0.0),
        quantile_values: o.list("quantileValues", |v, p| {
            let q = Obj::new(v, p)?;
            Ok(summary_data_point::ValueAtQuantile {
                quantile: q.f64("quantile")?.unwrap_or(0.0),
                value: q.f64("value")?.unwrap_or(0.0),
            })
        })?,
        flags: o.u32("flags")?,
    })
}

fn metric(v: &Value, path: String) -> Result<Metric> {
    let o = Obj::new(v, path)?;
    let data = if let Some(g) = o.obj("gauge")? {
        Some(metric::Data::Gauge(Gauge {
            data_points: g.list("dataPoints", number_point)?,
        }))
    } else if let Some(s) = o.obj("sum")? {
        Some(metric::Data::Sum(Sum {
            data_points: s.list("dataPoints", number_point)?,
            aggregation_temporality: s.enumeration("aggregationTemporality", &TEMPORALITIES)?,
            is_monotonic: s.bool("isMonotonic")?,
        }))
    } else if let Some(h) = o.obj("histogram")? {
        Some(metric::Data::Histogram(Histogram {
            data_points: h.list("dataPoints", histogram_point)?,
            aggregation_temporality: h.enumeration("aggregationTemporality", &TEMPORALITIES)?,
        }))
    } else if let Some(h) = o.obj("exponentialHistogram")? {
        Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: h.list("dataPoints", exponential_point)?,
            aggregation_temporality: h.enumeration("aggregationTemporality", &TEMPORALITIES)?,
        }))
    } else if let Some(s) = o.obj("summary")? {
        Some(metric::Data::Summary(Summary {
            data_points: s.list("dataPoints", summary_point)?,
        }))
    } else {
        None
    };
    Ok(Metric {
        name: o.string("name")?,
        description: o.string("description")?,
        unit: o.string("unit")?,
        metadata: o.list("metadata", key_value)?,
        data,
    })
}

/// An `ExportMetricsServiceRequest` from OTLP/JSON.
pub fn metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest> {
    let root = parse(body)?;
    let o = Obj::new(&root, String::new())?;
    Ok(ExportMetricsServiceRequest {
        resource_metrics: o.list("resourceMetrics", |v, p| {
            let rm = Obj::new(v, p)?;
            Ok(ResourceMetrics {
                resource: resource(&rm)?,
                scope_metrics: rm.list("scopeMetrics", |v, p| {
                    let sm = Obj::new(v, p)?;
                    Ok(ScopeMetrics {
                        scope: scope(&sm)?,
                        metrics: sm.list("metrics", metric)?,
                        schema_url: sm.string("schemaUrl")?,
                    })
                })?,
                schema_url: rm.string("schemaUrl")?,
            })
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_otlp_json_rules() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[
              {"key":"service.name","value":{"stringValue":"cart"}},
              {"key":"n","value":{"intValue":"7","futureField":{"x":1}}},
              {"key":"d","value":{"doubleValue":"NaN"}},
              {"key":"b","value":{"bytesValue":"AP8="}}]},
            "scope_spans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
              "kind":"SPAN_KIND_SERVER","startTimeUnixNano":1544712660000000000,"endTimeUnixNano":"1544712661000000000",
              "status":{"code":2},"unknownField":[1,2,3],"parentSpanId":null}]}]}]}"#;
        let req = traces(body).unwrap();
        let rs = &req.resource_spans[0];
        let attrs = &rs.resource.as_ref().unwrap().attributes;
        assert_eq!(
            attrs[1].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(7))
        );
        let Some(any_value::Value::DoubleValue(d)) = attrs[2].value.as_ref().unwrap().value else {
            panic!("not a double")
        };
        assert!(d.is_nan());
        assert_eq!(
            attrs[3].value.as_ref().unwrap().value,
            Some(any_value::Value::BytesValue(vec![0, 255]))
        );
        let span = &rs.scope_spans[0].spans[0];
        assert_eq!(
            (span.kind, span.trace_id[0], span.span_id.len()),
            (2, 0x5b, 8)
        );
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        assert!(span.parent_span_id.is_empty());
    }

    #[test]
    fn special_floats_in_metrics() {
        let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"g","gauge":{"dataPoints":[{"timeUnixNano":"1","asDouble":"Infinity"}]}},
            {"name":"h","histogram":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA","dataPoints":[
               {"timeUnixNano":"1","count":"1","sum":"NaN","bucketCounts":["0","1"],"explicitBounds":["-Infinity"]}]}}]}]}]}"#;
        let req = metrics(body).unwrap();
        let ms = &req.resource_metrics[0].scope_metrics[0].metrics;
        let Some(metric::Data::Gauge(g)) = &ms[0].data else {
            panic!()
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(f64::INFINITY))
        );
        let Some(metric::Data::Histogram(h)) = &ms[1].data else {
            panic!()
        };
        assert_eq!(h.aggregation_temporality, 1);
        assert!(h.data_points[0].sum.unwrap().is_nan());
        assert_eq!(h.data_points[0].explicit_bounds, vec![f64::NEG_INFINITY]);
    }

    #[test]
    fn errors_name_the_path() {
        let e = traces(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#)
            .unwrap_err();
        assert_eq!(e.path, "resourceSpans[0].scopeSpans[0].spans[0].traceId");
        assert!(e.message.contains("not hex"));
        let e = logs(
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"LOUD"}]}]}]}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("logRecords[0].severityNumber"),
            "{e}"
        );
        assert!(traces(b"[1,2]").is_err());
        assert!(traces(b"{\"resourceSpans\": 5}").is_err());
    }
}
