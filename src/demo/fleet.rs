//! A simulated microservice fleet: an online shop whose services call each other over HTTP and
//! gRPC, use PostgreSQL and Redis, publish to Kafka, and call external APIs. Each call to
//! [`Fleet::trace`] produces one trace's spans, with the attributes real instrumentation sets,
//! occasional errors (with exception events) and occasional slow calls.

// The span builders take every property of a call positionally so each simulated request reads as
// one call per hop.
#![allow(clippy::too_many_arguments)]

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::Rng;
use rand::rngs::SmallRng;

const MS: u64 = 1_000_000;

fn kv(key: &str, value: impl Into<Attr>) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(value.into().0),
        }),
    }
}

struct Attr(Value);

impl From<&str> for Attr {
    fn from(s: &str) -> Self {
        Attr(Value::StringValue(s.into()))
    }
}

impl From<String> for Attr {
    fn from(s: String) -> Self {
        Attr(Value::StringValue(s))
    }
}

impl From<i64> for Attr {
    fn from(i: i64) -> Self {
        Attr(Value::IntValue(i))
    }
}

/// A failure to attach to a span.
struct Failure {
    exception: &'static str,
    message: String,
}

/// Builds the spans of one trace.
struct TraceBuilder<'r> {
    rng: &'r mut SmallRng,
    trace_id: Vec<u8>,
    spans: Vec<(&'static str, Span)>,
}

/// A span under construction: where it sits and when it starts.
#[derive(Clone)]
struct Ctx {
    span_id: Vec<u8>,
    start: u64,
}

impl<'r> TraceBuilder<'r> {
    fn new(rng: &'r mut SmallRng) -> Self {
        let trace_id = rng.random::<[u8; 16]>().to_vec();
        Self {
            rng,
            trace_id,
            spans: Vec::new(),
        }
    }

    /// Latency in ns: a base with jitter, and rarely a long tail.
    fn latency(&mut self, base_ms: f64, slow_chance: f64) -> u64 {
        let jitter: f64 = self.rng.random_range(0.6..1.6);
        let mut ms = base_ms * jitter;
        if self.rng.random_bool(slow_chance) {
            ms *= self.rng.random_range(8.0..25.0);
        }
        (ms * MS as f64) as u64
    }

    fn new_id(&mut self) -> Vec<u8> {
        self.rng.random::<[u8; 8]>().to_vec()
    }

    fn span(
        &mut self,
        span_id: Vec<u8>,
        service: &'static str,
        parent: Option<&Ctx>,
        name: &str,
        kind: SpanKind,
        start: u64,
        duration: u64,
        attributes: Vec<KeyValue>,
        failure: Option<&Failure>,
    ) -> Ctx {
        let mut events = Vec::new();
        let status = match failure {
            Some(f) => {
                events.push(Event {
                    time_unix_nano: start + duration,
                    name: "exception".into(),
                    attributes: vec![
                        kv("exception.type", f.exception),
                        kv("exception.message", f.message.clone()),
                    ],
                    dropped_attributes_count: 0,
                });
                Some(Status {
                    message: f.message.clone(),
                    code: StatusCode::Error as i32,
                })
            }
            None => None,
        };
        self.spans.push((
            service,
            Span {
                trace_id: self.trace_id.clone(),
                span_id: span_id.clone(),
                parent_span_id: parent.map(|p| p.span_id.clone()).unwrap_or_default(),
                flags: 0x101,
                name: name.into(),
                kind: kind as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration,
                attributes,
                events,
                status,
                ..Span::default()
            },
        ));
        Ctx { span_id, start }
    }

    /// A gRPC call: the caller's CLIENT span and the callee's SERVER span, the server's work
    /// done by `work` (which returns the time it took and whether it failed).
    fn grpc<F>(
        &mut self,
        caller: &'static str,
        parent: &Ctx,
        start: u64,
        callee: &'static str,
        service: &str,
        method: &str,
        work: F,
    ) -> (u64, Option<Failure>)
    where
        F: FnOnce(&mut Self, &Ctx) -> (u64, Option<Failure>),
    {
        let net = self.latency(0.4, 0.0);
        let server_start = start + net / 2;
        let server_ctx = Ctx {
            span_id: self.new_id(),
            start: server_start,
        };
        let (work_ns, failure) = work(self, &server_ctx);
        let code: i64 = if failure.is_some() { 13 } else { 0 };
        let attrs = |side_addr: bool| {
            let mut a = vec![
                kv("rpc.system", "grpc"),
                kv("rpc.service", service),
                kv("rpc.method", method),
                kv("rpc.grpc.status_code", code),
            ];
            if side_addr {
                a.push(kv("server.address", callee));
                a.push(kv("server.port", 50051));
            }
            a
        };
        let name = format!("{service}/{method}");
        let client_id = self.new_id();
        let client = self.span(
            client_id,
            caller,
            Some(parent),
            &name,
            SpanKind::Client,
            start,
            work_ns + net,
            attrs(true),
            failure.as_ref(),
        );
        // The server span gets the id its children already point at.
        self.span(
            server_ctx.span_id,
            callee,
            Some(&client),
            &name,
            SpanKind::Server,
            server_start,
            work_ns,
            attrs(false),
            failure.as_ref(),
        );
        (work_ns + net, failure)
    }

    fn db(
        &mut self,
        service: &'static str,
        parent: &Ctx,
        start: u64,
        system: &str,
        host: &str,
        operation: &str,
        base_ms: f64,
    ) -> u64 {
        let d = self.latency(base_ms, 0.01);
        let attrs = vec![
            kv("db.system.name", system),
            kv(
                "db.operation.name",
                operation.split(' ').next().unwrap_or(operation),
            ),
            kv("db.query.text", operation),
            kv("server.address", host),
        ];
        let id = self.new_id();
        self.span(
            id,
            service,
            Some(parent),
            operation,
            SpanKind::Client,
            start,
            d,
            attrs,
            None,
        );
        d
    }

    fn external_http(
        &mut self,
        service: &'static str,
        parent: &Ctx,
        start: u64,
        method: &str,
        host: &str,
        path: &str,
        base_ms: f64,
        failure: Option<&Failure>,
    ) -> u64 {
        let d = self.latency(base_ms, 0.02);
        let status: i64 = if failure.is_some() { 502 } else { 200 };
        let attrs = vec![
            kv("http.request.method", method),
            kv("server.address", host),
            kv("url.full", format!("https://{host}{path}")),
            kv("http.response.status_code", status),
        ];
        let id = self.new_id();
        self.span(
            id,
            service,
            Some(parent),
            method,
            SpanKind::Client,
            start,
            d,
            attrs,
            failure,
        );
        d
    }
}

/// What one simulated service instance reports about itself.
struct ServiceInfo {
    name: &'static str,
    version: &'static str,
    language: &'static str,
}

const SERVICES: &[ServiceInfo] = &[
    ServiceInfo {
        name: "frontend",
        version: "2.3.1",
        language: "go",
    },
    ServiceInfo {
        name: "product-catalog",
        version: "1.8.0",
        language: "go",
    },
    ServiceInfo {
        name: "recommendation",
        version: "0.9.4",
        language: "python",
    },
    ServiceInfo {
        name: "cart",
        version: "3.0.2",
        language: "dotnet",
    },
    ServiceInfo {
        name: "checkout",
        version: "1.2.7",
        language: "go",
    },
    ServiceInfo {
        name: "payment",
        version: "4.1.0",
        language: "nodejs",
    },
    ServiceInfo {
        name: "email",
        version: "1.0.3",
        language: "ruby",
    },
];

fn resource(info: &ServiceInfo) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", info.name),
            kv("service.namespace", "shop"),
            kv("service.version", info.version),
            kv("service.instance.id", format!("{}-7d9f8-1", info.name)),
            kv("telemetry.sdk.language", info.language),
            kv("deployment.environment.name", "demo"),
        ],
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    }
}

/// The simulated fleet.
pub struct Fleet {
    rng: SmallRng,
}

impl Fleet {
    pub fn new(rng: SmallRng) -> Self {
        Self { rng }
    }

    /// The names of the fleet's services.
    pub fn service_names() -> impl Iterator<Item = &'static str> {
        SERVICES.iter().map(|s| s.name)
    }

    /// The resource a service reports (unknown names get an empty resource).
    pub fn resource_of(service: &str) -> Resource {
        SERVICES
            .iter()
            .find(|s| s.name == service)
            .map(resource)
            .unwrap_or_default()
    }

    /// One request into the shop, ending at `end_unix_nanos`, as spans by service.
    pub fn trace(&mut self, end_unix_nanos: u64) -> Vec<(&'static str, Span)> {
        let pick: f64 = self.rng.random();
        let mut b = TraceBuilder::new(&mut self.rng);
        // Built from time 0, then shifted so the trace ends at `end_unix_nanos`.
        if pick < 0.45 {
            product_page(&mut b);
        } else if pick < 0.75 {
            add_to_cart(&mut b);
        } else if pick < 0.9 {
            checkout(&mut b);
        } else {
            home_page(&mut b);
        }
        let end = b
            .spans
            .iter()
            .map(|(_, s)| s.end_time_unix_nano)
            .max()
            .unwrap_or(0);
        let shift = end_unix_nanos.saturating_sub(end);
        for (_, span) in &mut b.spans {
            span.start_time_unix_nano += shift;
            span.end_time_unix_nano += shift;
            for e in &mut span.events {
                e.time_unix_nano += shift;
            }
        }
        b.spans
    }

    /// The log records the fleet's services write while serving these spans: one per request
    /// they handle, ERROR for failures (with the exception), WARN for slow ones, each carrying
    /// its trace and span id.
    pub fn logs(spans: &[(&'static str, Span)]) -> ExportLogsServiceRequest {
        let mut by_service: BTreeMap<&'static str, Vec<LogRecord>> = BTreeMap::new();
        for (service, span) in spans {
            let entry =
                span.kind == SpanKind::Server as i32 || span.kind == SpanKind::Consumer as i32;
            let failed = span
                .status
                .as_ref()
                .is_some_and(|s| s.code == StatusCode::Error as i32);
            if !entry && !failed {
                continue;
            }
            let ms = (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6;
            let (severity, text, body) = if failed {
                let message = span
                    .status
                    .as_ref()
                    .map(|s| s.message.clone())
                    .unwrap_or_default();
                (17, "ERROR", format!("{} failed: {message}", span.name))
            } else if ms > 500.0 {
                (13, "WARN", format!("{} was slow: {ms:.0} ms", span.name))
            } else {
                (9, "INFO", format!("{} handled in {ms:.1} ms", span.name))
            };
            let mut attributes = vec![kv("code.function", span.name.as_str())];
            if let Some(e) = span.events.iter().find(|e| e.name == "exception") {
                attributes.extend(e.attributes.iter().cloned());
            }
            by_service.entry(service).or_default().push(LogRecord {
                time_unix_nano: span.end_time_unix_nano,
                observed_time_unix_nano: span.end_time_unix_nano,
                severity_number: severity,
                severity_text: text.into(),
                body: Some(AnyValue {
                    value: Some(Value::StringValue(body)),
                }),
                attributes,
                dropped_attributes_count: 0,
                flags: span.flags & 0xff,
                trace_id: span.trace_id.clone(),
                span_id: span.span_id.clone(),
                event_name: String::new(),
            });
        }
        let resource_logs = by_service
            .into_iter()
            .filter_map(|(service, log_records)| {
                let info = SERVICES.iter().find(|s| s.name == service)?;
                Some(ResourceLogs {
                    resource: Some(resource(info)),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: "lakescope.demo".into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            attributes: Vec::new(),
                            dropped_attributes_count: 0,
                        }),
                        log_records,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                })
            })
            .collect();
        ExportLogsServiceRequest { resource_logs }
    }

    /// Traces grouped into one export request, the way an SDK batch looks.
    pub fn request(spans: Vec<(&'static str, Span)>) -> ExportTraceServiceRequest {
        let mut by_service: BTreeMap<&'static str, Vec<Span>> = BTreeMap::new();
        for (service, span) in spans {
            by_service.entry(service).or_default().push(span);
        }
        let resource_spans = by_service
            .into_iter()
            .filter_map(|(service, spans)| {
                let info = SERVICES.iter().find(|s| s.name == service)?;
                Some(ResourceSpans {
                    resource: Some(resource(info)),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "lakescope.demo".into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            attributes: Vec::new(),
                            dropped_attributes_count: 0,
                        }),
                        spans,
                        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                    }],
                    schema_url: String::new(),
                })
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }
}

fn http_server_attrs(method: &str, route: &str, path: String, status: i64) -> Vec<KeyValue> {
    vec![
        kv("http.request.method", method),
        kv("http.route", route),
        kv("url.path", path),
        kv("url.scheme", "https"),
        kv("http.response.status_code", status),
        kv("server.address", "shop.example.com"),
        kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
    ]
}

/// The frontend's SERVER span around `work`.
fn frontend<F>(b: &mut TraceBuilder<'_>, method: &str, route: &str, path: String, work: F)
where
    F: FnOnce(&mut TraceBuilder<'_>, &Ctx) -> (u64, Option<Failure>),
{
    let id = b.new_id();
    let overhead = b.latency(1.5, 0.0);
    let (work_ns, failure) = work(
        b,
        &Ctx {
            span_id: id.clone(),
            start: overhead / 2,
        },
    );
    let status = if failure.is_some() { 500 } else { 200 };
    let name = format!("{method} {route}");
    b.span(
        id,
        "frontend",
        None,
        &name,
        SpanKind::Server,
        0,
        work_ns + overhead,
        http_server_attrs(method, route, path, status),
        failure.as_ref(),
    );
}

fn product_page(b: &mut TraceBuilder<'_>) {
    let product = b.rng.random_range(1..400);
    frontend(
        b,
        "GET",
        "/product/{id}",
        format!("/product/{product}"),
        |b, ctx| {
            let (catalog, failure) = b.grpc(
                "frontend",
                ctx,
                ctx.start,
                "product-catalog",
                "shop.ProductCatalog",
                "GetProduct",
                |b, server| {
                    let d = b.db(
                        "product-catalog",
                        server,
                        server.start + 200_000,
                        "postgresql",
                        "catalog-db",
                        "SELECT products",
                        2.0,
                    );
                    (d + 400_000, None)
                },
            );
            let (recs, _) = b.grpc(
                "frontend",
                ctx,
                ctx.start + catalog,
                "recommendation",
                "shop.Recommendation",
                "ListRecommendations",
                |b, server| {
                    let d = b.latency(6.0, 0.03);
                    let child = b.db(
                        "recommendation",
                        server,
                        server.start + 100_000,
                        "redis",
                        "recs-cache",
                        "GET recs",
                        0.3,
                    );
                    (d.max(child + 200_000), None)
                },
            );
            (catalog + recs, failure)
        },
    );
}

fn add_to_cart(b: &mut TraceBuilder<'_>) {
    frontend(b, "POST", "/cart", "/cart".into(), |b, ctx| {
        let fail = b.rng.random_bool(0.01);
        b.grpc(
            "frontend",
            ctx,
            ctx.start,
            "cart",
            "shop.Cart",
            "AddItem",
            |b, server| {
                let d = b.db(
                    "cart",
                    server,
                    server.start + 100_000,
                    "redis",
                    "cart-cache",
                    "HSET cart",
                    0.5,
                );
                let failure = fail.then(|| Failure {
                    exception: "RedisTimeoutException",
                    message: format!(
                        "Timeout performing HSET cart:{}, inst: 1, queue: 3",
                        b.rng.random_range(1000..9999)
                    ),
                });
                (d + 300_000, failure)
            },
        )
    });
}

fn checkout(b: &mut TraceBuilder<'_>) {
    frontend(b, "POST", "/checkout", "/checkout".into(), |b, ctx| {
        b.grpc(
            "frontend",
            ctx,
            ctx.start,
            "checkout",
            "shop.Checkout",
            "PlaceOrder",
            |b, server| {
                let mut t = server.start + 200_000;
                let (cart, _) = b.grpc(
                    "checkout",
                    server,
                    t,
                    "cart",
                    "shop.Cart",
                    "GetCart",
                    |b, s| {
                        let d = b.db(
                            "cart",
                            s,
                            s.start + 100_000,
                            "redis",
                            "cart-cache",
                            "HGETALL cart",
                            0.4,
                        );
                        (d + 200_000, None)
                    },
                );
                t += cart;
                let declined = b.rng.random_bool(0.04);
                let (pay, failure) = b.grpc(
                    "checkout",
                    server,
                    t,
                    "payment",
                    "shop.Payment",
                    "Charge",
                    |b, s| {
                        let failure = declined.then(|| Failure {
                            exception: "CardDeclinedError",
                            message: format!(
                                "card ending {} declined: insufficient funds",
                                b.rng.random_range(1000..9999)
                            ),
                        });
                        let d = b.external_http(
                            "payment",
                            s,
                            s.start + 300_000,
                            "POST",
                            "api.payments.example",
                            "/v1/charges",
                            45.0,
                            failure.as_ref(),
                        );
                        (d + 600_000, failure)
                    },
                );
                t += pay;
                if failure.is_some() {
                    return (t - server.start, failure);
                }
                let d = b.db(
                    "checkout",
                    server,
                    t,
                    "postgresql",
                    "orders-db",
                    "INSERT orders",
                    3.0,
                );
                t += d;
                // Publish the order; the email service consumes it.
                let publish = b.latency(1.2, 0.0);
                let producer_id = b.new_id();
                let producer = b.span(
                    producer_id,
                    "checkout",
                    Some(server),
                    "publish orders",
                    SpanKind::Producer,
                    t,
                    publish,
                    vec![
                        kv("messaging.system", "kafka"),
                        kv("messaging.destination.name", "orders"),
                        kv("messaging.operation.type", "publish"),
                        kv("server.address", "kafka"),
                    ],
                    None,
                );
                let consume_start = t + publish + b.latency(15.0, 0.05);
                let consume = b.latency(4.0, 0.0);
                let consumer_id = b.new_id();
                let consumer = b.span(
                    consumer_id,
                    "email",
                    Some(&producer),
                    "process orders",
                    SpanKind::Consumer,
                    consume_start,
                    consume,
                    vec![
                        kv("messaging.system", "kafka"),
                        kv("messaging.destination.name", "orders"),
                        kv("messaging.operation.type", "process"),
                    ],
                    None,
                );
                b.external_http(
                    "email",
                    &consumer,
                    consume_start + 500_000,
                    "POST",
                    "smtp-relay.example",
                    "/send",
                    2.5,
                    None,
                );
                t += publish;
                (t - server.start, None)
            },
        )
    });
}

fn home_page(b: &mut TraceBuilder<'_>) {
    frontend(b, "GET", "/", "/".into(), |b, ctx| {
        b.grpc(
            "frontend",
            ctx,
            ctx.start,
            "product-catalog",
            "shop.ProductCatalog",
            "ListProducts",
            |b, s| {
                let d = b.db(
                    "product-catalog",
                    s,
                    s.start + 100_000,
                    "postgresql",
                    "catalog-db",
                    "SELECT products",
                    4.0,
                );
                (d + 300_000, None)
            },
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashSet;

    #[test]
    fn every_span_has_a_parent_in_its_trace_except_the_root() {
        let mut fleet = Fleet::new(SmallRng::seed_from_u64(7));
        for _ in 0..200 {
            let spans = fleet.trace(1_795_551_330_000_000_000);
            let ids: HashSet<&Vec<u8>> = spans.iter().map(|(_, s)| &s.span_id).collect();
            let roots = spans
                .iter()
                .filter(|(_, s)| s.parent_span_id.is_empty())
                .count();
            assert_eq!(roots, 1);
            for (_, s) in &spans {
                assert!(s.parent_span_id.is_empty() || ids.contains(&s.parent_span_id));
                assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
                assert!(s.end_time_unix_nano <= 1_795_551_330_000_000_000);
            }
        }
    }

    #[test]
    fn the_fleets_requests_repeat_far_less_than_the_default_limit() {
        use lakescope_collector::convert::{logs, spans};
        let mut fleet = Fleet::new(SmallRng::seed_from_u64(3));
        // The load generator's default request: 50 traces.
        let traces: Vec<_> = (0..50)
            .flat_map(|_| fleet.trace(1_795_551_330_000_000_000))
            .collect();
        let request = Fleet::request(traces.clone());
        let count: usize = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        let repeated = spans::repeated_bytes(&request);
        eprintln!("{count} spans repeat {repeated} bytes");
        let limit = lakescope_collector::limits::Limits::default().max_repeated_bytes;
        assert!(
            repeated > 100 * count && repeated < 1000 * count,
            "{repeated}"
        );
        assert!(repeated * 100 < limit);
        assert!(logs::repeated_bytes(&Fleet::logs(&traces)) * 100 < limit);
    }

    #[test]
    fn the_fleet_has_errors_and_several_services() {
        let mut fleet = Fleet::new(SmallRng::seed_from_u64(1));
        let spans: Vec<_> = (0..500)
            .flat_map(|_| fleet.trace(1_795_551_330_000_000_000))
            .collect();
        let services: HashSet<&str> = spans.iter().map(|(s, _)| *s).collect();
        assert_eq!(services.len(), SERVICES.len());
        let errors = spans.iter().filter(|(_, s)| s.status.is_some()).count();
        assert!(errors > 0);
        let request = Fleet::request(spans);
        assert_eq!(request.resource_spans.len(), SERVICES.len());
    }
}
