//! The headline views over a known fleet sent with the Rust SDK: exact edges of the service graph
//! (with database, cache, queue and external peers), call and error counts, percentiles, error
//! groups with origin, series, operations and latency distributions.

mod common;

use std::time::{Duration, SystemTime};

use common::{Server, assert_within_1pct, nearest_rank};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use serde_json::Value;

const REQUESTS: u64 = 40;

fn provider(server: &Server, service: &str) -> SdkTracerProvider {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{}", server.grpc))
        .build()
        .unwrap();
    SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A child span of `parent` in `tracer`'s service, from `start` for `dur`.
#[allow(clippy::too_many_arguments)]
fn child(
    tracer: &SdkTracer,
    parent: &Context,
    name: &str,
    kind: SpanKind,
    start: SystemTime,
    dur: Duration,
    attrs: Vec<KeyValue>,
    error: Option<&str>,
) -> Context {
    let mut span = tracer
        .span_builder(name.to_owned())
        .with_kind(kind)
        .with_start_time(start)
        .with_attributes(attrs)
        .start_with_context(tracer, parent);
    if let Some(message) = error {
        span.set_status(Status::error(message.to_owned()));
    }
    span.end_with_timestamp(start + dur);
    parent.with_span(span)
}

fn failing(i: u64) -> bool {
    i.is_multiple_of(8)
}

/// Sends the fleet; the mailer's consumer spans go in a later, separate export (and a separate
/// flush), as if they had arrived minutes later. Returns web's SERVER durations and web→orders
/// CLIENT durations, in ms.
fn send_fleet(server: &Server) -> (Vec<f64>, Vec<f64>) {
    let (web_p, orders_p, mailer_p) = (
        provider(server, "web"),
        provider(server, "orders"),
        provider(server, "mailer"),
    );
    let (web, orders, mailer) = (
        web_p.tracer("web"),
        orders_p.tracer("orders"),
        mailer_p.tracer("mailer"),
    );
    let base = SystemTime::now() - Duration::from_secs(120);
    let (mut web_ms, mut client_ms) = (Vec::new(), Vec::new());
    let mut to_consume = Vec::new();
    for i in 0..REQUESTS {
        let t0 = base + ms(i * 100);
        let fail = failing(i);
        let client_dur = 10 + i;
        let server_dur = client_dur + 30;
        web_ms.push(server_dur as f64);
        client_ms.push(client_dur as f64);
        let root = web
            .span_builder("GET /buy")
            .with_kind(SpanKind::Server)
            .with_start_time(t0)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/buy"),
            ])
            .start(&web);
        let root_cx = Context::current_with_span(root);
        child(
            &web,
            &root_cx,
            "GET session",
            SpanKind::Client,
            t0 + ms(1),
            ms(2),
            vec![
                KeyValue::new("db.system.name", "redis"),
                KeyValue::new("server.address", "session-cache"),
            ],
            None,
        );
        child(
            &web,
            &root_cx,
            "POST",
            SpanKind::Client,
            t0 + ms(4),
            ms(5),
            vec![
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("server.address", "api.partner.example"),
            ],
            None,
        );
        // web → orders over gRPC; orders' server span is a child of web's client span.
        let call_cx = {
            let mut span = web
                .span_builder("shop.Orders/PlaceOrder")
                .with_kind(SpanKind::Client)
                .with_start_time(t0 + ms(10))
                .with_attributes([
                    KeyValue::new("rpc.system", "grpc"),
                    KeyValue::new("server.address", "orders"),
                ])
                .start_with_context(&web, &root_cx);
            if fail {
                span.set_status(Status::error("order failed"));
            }
            root_cx.with_span(span)
        };
        let mut place = orders
            .span_builder("PlaceOrder")
            .with_kind(SpanKind::Server)
            .with_start_time(t0 + ms(11))
            .start_with_context(&orders, &call_cx);
        let place_cx_start = t0 + ms(11);
        if fail {
            place.add_event_with_timestamp(
                "exception",
                place_cx_start + ms(3),
                vec![
                    KeyValue::new("exception.type", "InventoryError"),
                    KeyValue::new(
                        "exception.message",
                        format!("item {} out of stock", 100 + i),
                    ),
                ],
            );
            place.set_status(Status::error(format!("item {} out of stock", 100 + i)));
        }
        let place_cx = call_cx.with_span(place);
        child(
            &orders,
            &place_cx,
            "INSERT orders",
            SpanKind::Client,
            place_cx_start + ms(1),
            ms(3),
            vec![
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new("server.address", "orders-db"),
            ],
            None,
        );
        child(
            &orders,
            &place_cx,
            "publish audit-log",
            SpanKind::Producer,
            place_cx_start + ms(5),
            ms(1),
            vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.destination.name", "audit-log"),
            ],
            None,
        );
        if !fail {
            let producer = child(
                &orders,
                &place_cx,
                "publish order-events",
                SpanKind::Producer,
                place_cx_start + ms(6),
                ms(1),
                vec![
                    KeyValue::new("messaging.system", "kafka"),
                    KeyValue::new("messaging.destination.name", "order-events"),
                ],
                None,
            );
            to_consume.push((
                producer.span().span_context().clone(),
                place_cx_start + ms(40),
            ));
        }
        place_cx
            .span()
            .end_with_timestamp(t0 + ms(10 + client_dur - 1));
        call_cx.span().end_with_timestamp(t0 + ms(10 + client_dur));
        if fail {
            root_cx.span().set_status(Status::error("order failed"));
        }
        root_cx.span().end_with_timestamp(t0 + ms(server_dur));
    }
    web_p.force_flush().unwrap();
    orders_p.force_flush().unwrap();

    // Later, through another request: the consumer side.
    std::thread::sleep(Duration::from_millis(300));
    for (producer, start) in to_consume {
        let cx = Context::new().with_remote_span_context(producer);
        child(
            &mailer,
            &cx,
            "process order-events",
            SpanKind::Consumer,
            start,
            ms(4),
            vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.destination.name", "order-events"),
            ],
            None,
        );
    }
    mailer_p.force_flush().unwrap();
    for p in [web_p, orders_p, mailer_p] {
        p.shutdown().unwrap();
    }
    (web_ms, client_ms)
}

fn edge<'a>(graph: &'a Value, source: &str, target: &str) -> &'a Value {
    graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == source && e["target"] == target)
        .unwrap_or_else(|| panic!("no edge {source} -> {target} in {graph}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_views_give_exact_numbers_for_a_known_fleet() {
    let dir = tempfile::tempdir().unwrap();
    // Flush often, so the two halves of a call may sit in different files.
    let server = Server::start(dir.path(), &["--flush-interval", "100ms"]);
    let (web_ms, client_ms) = {
        let runtime = tokio::runtime::Handle::current();
        let server = &server;
        std::thread::scope(|s| {
            s.spawn(move || {
                let _rt = runtime.enter();
                send_fleet(server)
            })
            .join()
            .unwrap()
        })
    };
    let range = "start=now-10m";
    let failures = (0..REQUESTS).filter(|i| failing(*i)).count() as u64;

    // --- dependencies ---
    let graph = server.get(&format!("/api/v1/dependencies?{range}")).await;
    let mut nodes: Vec<(String, String)> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_owned(),
                n["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    nodes.sort();
    let want: Vec<(String, String)> = [
        ("api.partner.example", "external"),
        ("audit-log", "queue"),
        ("mailer", "service"),
        ("orders", "service"),
        ("orders-db", "database"),
        ("session-cache", "cache"),
        ("web", "service"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(nodes, want);
    assert_eq!(graph["edges"].as_array().unwrap().len(), 6, "{graph}");

    let e = edge(&graph, "web", "orders");
    assert_eq!(e["target_kind"], "service");
    assert_eq!(e["calls"], REQUESTS);
    assert_eq!(e["errors"], failures);
    assert_within_1pct(
        &e["p50_ms"],
        nearest_rank(&client_ms, 0.5),
        "web->orders p50",
    );
    assert_within_1pct(
        &e["p99_ms"],
        nearest_rank(&client_ms, 0.99),
        "web->orders p99",
    );
    assert_eq!(e["callee"]["requests"], REQUESTS);
    assert_eq!(e["callee"]["errors"], failures);
    let callee_ms: Vec<f64> = client_ms.iter().map(|c| c - 2.0).collect();
    assert_within_1pct(
        &e["callee"]["p50_ms"],
        nearest_rank(&callee_ms, 0.5),
        "orders side p50",
    );

    let e = edge(&graph, "orders", "mailer");
    assert_eq!(
        (e["calls"].as_u64(), e["errors"].as_u64()),
        (Some(REQUESTS - failures), Some(0))
    );
    assert_eq!(e["callee"]["requests"], REQUESTS - failures);
    for (target, kind, calls) in [
        ("session-cache", "cache", REQUESTS),
        ("api.partner.example", "external", REQUESTS),
        ("orders-db", "database", REQUESTS),
        ("audit-log", "queue", REQUESTS),
    ] {
        let source = if target == "orders-db" || target == "audit-log" {
            "orders"
        } else {
            "web"
        };
        let e = edge(&graph, source, target);
        assert_eq!(e["target_kind"], kind);
        assert_eq!(e["calls"], calls, "{source} -> {target}");
        assert!(e["callee"].is_null());
    }

    // --- errors ---
    let errors = server.get(&format!("/api/v1/errors?{range}")).await;
    let groups = errors["groups"].as_array().unwrap();
    let orders = groups
        .iter()
        .find(|g| g["service"] == "orders")
        .expect("orders group");
    assert_eq!(
        orders["fingerprint"],
        "InventoryError: item <n> out of stock"
    );
    assert_eq!(orders["count"], failures);
    assert_eq!(orders["originated"], failures);
    assert_eq!(orders["propagated"], 0);
    assert_eq!(orders["operations"], serde_json::json!(["PlaceOrder"]));
    assert_eq!(orders["trace_ids"].as_array().unwrap().len(), 5);
    assert_eq!(
        orders["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum::<u64>(),
        failures
    );
    let web = groups
        .iter()
        .find(|g| g["service"] == "web")
        .expect("web group");
    assert_eq!(web["fingerprint"], "order failed");
    // The client span and the server span of each failed request; both only propagated.
    assert_eq!(web["count"], 2 * failures);
    assert_eq!(web["originated"], 0);
    assert_eq!(
        web["operations"],
        serde_json::json!(["GET /buy", "shop.Orders/PlaceOrder"])
    );
    assert_eq!(groups.len(), 2, "{errors}");
    let only_orders = server
        .get(&format!("/api/v1/errors?service=orders&{range}"))
        .await;
    assert_eq!(only_orders["groups"].as_array().unwrap().len(), 1);

    // --- services, series, operations ---
    let web_service = server.service("web", range).await;
    assert_eq!(web_service["requests"], REQUESTS);
    assert_eq!(web_service["errors"], failures);
    assert_within_1pct(
        &web_service["p95_ms"],
        nearest_rank(&web_ms, 0.95),
        "web p95",
    );
    let series = server
        .get(&format!("/api/v1/services/web/series?{range}&step=60s"))
        .await;
    assert_eq!(series["step_seconds"], 60.0);
    assert_eq!(series["points"].as_array().unwrap().len(), 10);
    let sum = |key: &str| {
        series["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((sum("requests"), sum("errors")), (REQUESTS, failures));
    let ops = server
        .get(&format!("/api/v1/services/orders/operations?{range}"))
        .await;
    assert_eq!(ops["operations"].as_array().unwrap().len(), 1);
    assert_eq!(ops["operations"][0]["name"], "PlaceOrder");
    assert_eq!(ops["operations"][0]["requests"], REQUESTS);
    assert_eq!(ops["operations"][0]["errors"], failures);
    let mailer = server.service("mailer", range).await;
    assert_eq!(
        mailer["requests"],
        REQUESTS - failures,
        "CONSUMER spans are requests"
    );

    // --- latency ---
    let latency = server
        .get(&format!("/api/v1/latency?service=web&{range}"))
        .await;
    assert_eq!(latency["total"], REQUESTS);
    // web's durations are 40..=79 ms: buckets (20, 50] and (50, 100].
    let count_le = |le: f64| {
        latency["histogram"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["le_ms"] == le)
            .unwrap()["count"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        count_le(50.0),
        web_ms.iter().filter(|d| **d <= 50.0).count() as u64
    );
    assert_eq!(
        count_le(100.0),
        web_ms.iter().filter(|d| **d > 50.0).count() as u64
    );
    let heat: u64 = latency["heatmap"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(heat, REQUESTS);

    let compare = server
        .get(&format!(
            "/api/v1/latency/compare?service=web&min_ms=70&{range}"
        ))
        .await;
    let slow = web_ms.iter().filter(|d| **d >= 70.0).count() as u64;
    assert_eq!(
        (compare["selected"].as_u64(), compare["rest"].as_u64()),
        (Some(slow), Some(REQUESTS - slow))
    );
    // Per value of each dimension (and per other service in the traces): how many of the slow
    // and of the other requests have it.
    let contrast = |dimension: &str, value: &str| {
        compare["contrasts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["dimension"] == dimension && c["value"] == value)
            .map(|c| (c["selected"].as_u64().unwrap(), c["rest"].as_u64().unwrap()))
    };
    let slow_failing = (0..REQUESTS)
        .filter(|i| web_ms[*i as usize] >= 70.0 && failing(*i))
        .count() as u64;
    assert!(slow_failing > 0 && slow_failing < failures);
    let all = Some((slow, REQUESTS - slow));
    assert_eq!(contrast("operation", "GET /buy"), all);
    assert_eq!(contrast("http.route", "/buy"), all);
    assert_eq!(
        contrast("status", "ERROR"),
        Some((slow_failing, failures - slow_failing))
    );
    assert_eq!(contrast("service in trace", "orders"), all);
    assert_eq!(
        contrast("service in trace", "mailer"),
        Some((
            slow - slow_failing,
            REQUESTS - slow - (failures - slow_failing)
        ))
    );

    // --- trace search by attribute and duration ---
    let found = server
        .get(&format!(
            "/api/v1/traces?{range}&attribute=server.address=orders-db&limit=100"
        ))
        .await;
    assert_eq!(found["traces"].as_array().unwrap().len() as u64, REQUESTS);
    let longest = server
        .get(&format!(
            "/api/v1/traces?{range}&service=web&sort=duration&limit=3"
        ))
        .await;
    let durations: Vec<f64> = longest["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["duration_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(durations, vec![79.0, 78.0, 77.0]);
}
