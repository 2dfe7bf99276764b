//! Metrics from the Rust OpenTelemetry SDK over gRPC and HTTP, stored with the exact values the
//! SDK recorded: counter sums, up-down counters, gauges, histogram counts, sums and buckets.

mod common;

use common::Server;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use serde_json::Value;

fn provider(server: &Server, grpc: bool, service: &str) -> SdkMeterProvider {
    let exporter = if grpc {
        MetricExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{}", server.grpc))
            .build()
    } else {
        MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(server.otlp_url("/v1/metrics"))
            .build()
    }
    .expect("metric exporter");
    SdkMeterProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .with_periodic_exporter(exporter)
        .build()
}

fn record(provider: &SdkMeterProvider) {
    let meter = provider.meter("e2e");
    let orders = meter.u64_counter("orders").with_unit("{order}").build();
    for i in 0..10u64 {
        let region = if i % 2 == 0 { "eu" } else { "us" };
        orders.add(i + 1, &[KeyValue::new("region", region)]);
    }
    let in_flight = meter.i64_up_down_counter("requests.in_flight").build();
    in_flight.add(5, &[]);
    in_flight.add(-2, &[]);
    let temperature = meter.f64_gauge("cpu.temperature").with_unit("Cel").build();
    temperature.record(61.0, &[]);
    temperature.record(63.5, &[]);
    let latency = meter
        .f64_histogram("checkout.duration")
        .with_unit("ms")
        .build();
    for v in [3.0, 7.0, 12.0, 30.0, 30.0, 260.0] {
        latency.record(v, &[]);
    }
}

async fn rows(server: &Server, sql: &str) -> Vec<Value> {
    let (status, body) = server.sql(sql).await;
    assert_eq!(status, 200, "{body}");
    body["rows"].as_array().unwrap().clone()
}

async fn check(server: &Server, service: &str) {
    let w = format!("service_name = '{service}'");
    let orders = rows(
        server,
        &format!(
            "SELECT attributes['region'] AS region, \
               first_value(value_int ORDER BY time DESC) AS value_int, \
               first_value(temporality) AS temporality, first_value(is_monotonic) AS is_monotonic, \
               first_value(metric_unit) AS metric_unit \
             FROM metrics WHERE {w} AND metric_name = 'orders' GROUP BY 1 ORDER BY region"
        ),
    )
    .await;
    // The SDK re-exports cumulative points at each collection: the latest of each series counts.
    // eu: 1+3+5+7+9, us: 2+4+6+8+10.
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert_eq!(orders[0]["region"], "eu");
    assert_eq!(orders[0]["value_int"], 25);
    assert_eq!(orders[1]["value_int"], 30);
    assert_eq!(orders[0]["temporality"], "cumulative");
    assert_eq!(orders[0]["is_monotonic"], true);
    assert_eq!(orders[0]["metric_unit"], "{order}");

    let in_flight = rows(server, &format!("SELECT value_int, is_monotonic, metric_type FROM metrics WHERE {w} AND metric_name = 'requests.in_flight' ORDER BY time DESC LIMIT 1")).await;
    assert_eq!(in_flight[0]["value_int"], 3);
    assert_eq!(in_flight[0]["is_monotonic"], false);
    assert_eq!(in_flight[0]["metric_type"], "sum");

    let gauge = rows(server, &format!("SELECT value, metric_type FROM metrics WHERE {w} AND metric_name = 'cpu.temperature' ORDER BY time DESC LIMIT 1")).await;
    assert_eq!(gauge[0]["value"], 63.5);
    assert_eq!(gauge[0]["metric_type"], "gauge");

    let h = rows(
        server,
        &format!(
            "SELECT count, sum, min, max, bucket_counts, explicit_bounds, metric_type FROM metrics \
             WHERE {w} AND metric_name = 'checkout.duration' ORDER BY time DESC LIMIT 1"
        ),
    )
    .await;
    let h = &h[0];
    assert_eq!(h["metric_type"], "histogram");
    assert_eq!(h["count"], 6);
    assert_eq!(h["sum"], 342.0);
    assert_eq!(
        (h["min"].as_f64(), h["max"].as_f64()),
        (Some(3.0), Some(260.0))
    );
    // The SDK's default bounds: 0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000.
    let bounds: Vec<f64> = serde_json::from_value(h["explicit_bounds"].clone()).unwrap();
    assert_eq!(bounds[..4], [0.0, 5.0, 10.0, 25.0]);
    let counts: Vec<u64> = serde_json::from_value(h["bucket_counts"].clone()).unwrap();
    assert_eq!(counts.len(), bounds.len() + 1);
    // ≤0: 0, (0,5]: 3, (5,10]: 7, (10,25]: 12, (25,50]: 30 30, …, (250,500]: 260.
    assert_eq!(counts[..9], [0, 1, 1, 1, 2, 0, 0, 0, 1]);
}

/// One value per group over the whole last half hour.
async fn one_step(server: &Server, query: &str) -> Vec<(Value, f64)> {
    let body = server
        .get(&format!(
            "/api/v1/metrics/query?start=now-30m&step=1h&{query}"
        ))
        .await;
    assert_eq!(body["times"].as_array().unwrap().len(), 1, "{body}");
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["labels"].clone(),
                s["values"][0].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

async fn check_api(server: &Server, service: &str) {
    let f = format!("filter=service.name={service}");
    let list = server.get("/api/v1/metrics?start=now-30m").await;
    let orders = list["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "orders")
        .unwrap();
    assert_eq!(orders["type"], "sum");
    assert_eq!(orders["monotonic"], true);
    assert_eq!(orders["attribute_keys"], serde_json::json!(["region"]));
    assert!(
        orders["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == service)
    );

    // Counter: the increase per region, and in total; the rate is the increase per second.
    let by_region = one_step(
        server,
        &format!("name=orders&{f}&agg=increase&group_by=region"),
    )
    .await;
    assert_eq!(
        by_region,
        vec![
            (serde_json::json!({"region": "eu"}), 25.0),
            (serde_json::json!({"region": "us"}), 30.0)
        ]
    );
    let total = one_step(server, &format!("name=orders&{f}&agg=increase")).await;
    assert_eq!(total[0].1, 55.0);
    let eu = one_step(
        server,
        &format!("name=orders&{f}&filter=region=eu&agg=rate"),
    )
    .await;
    assert!((eu[0].1 - 25.0 / 3600.0).abs() < 1e-12, "{eu:?}");

    // Gauge: the latest value; up-down counter likewise.
    assert_eq!(
        one_step(server, &format!("name=cpu.temperature&{f}")).await[0].1,
        63.5
    );
    assert_eq!(
        one_step(server, &format!("name=cpu.temperature&{f}&agg=max")).await[0].1,
        63.5
    );
    assert_eq!(
        one_step(server, &format!("name=requests.in_flight&{f}&agg=last")).await[0].1,
        3.0
    );

    // Histogram: count, sum, average, and quantiles inside the right bucket.
    let h = |agg: &str| format!("name=checkout.duration&{f}&agg={agg}");
    assert_eq!(one_step(server, &h("count")).await[0].1, 6.0);
    assert_eq!(one_step(server, &h("sum")).await[0].1, 342.0);
    assert_eq!(one_step(server, &h("avg")).await[0].1, 57.0);
    // Values 3, 7, 12, 30, 30, 260: the median 12 is in (10, 25], the p99 260 in (250, 500].
    let p50 = one_step(server, &format!("{}&q=0.5", h("quantile"))).await[0].1;
    assert!((10.0..=25.0).contains(&p50), "{p50}");
    let p99 = one_step(server, &format!("{}&q=0.99", h("quantile"))).await[0].1;
    assert!((250.0..=500.0).contains(&p99), "{p99}");

    for bad in [
        "/api/v1/metrics/query?start=now-30m",
        "/api/v1/metrics/query?name=orders&agg=median",
        "/api/v1/metrics/query?name=orders&agg=quantile",
        "/api/v1/metrics/query?name=checkout.duration&agg=rate",
        "/api/v1/metrics/query?name=orders&q=2",
        "/api/v1/metrics/query?name=no.such.metric",
    ] {
        let (status, body) = server.get_status(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_from_the_rust_sdk_over_grpc_and_http_keep_their_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let grpc = provider(&server, true, "shop-grpc");
    record(&grpc);
    grpc.force_flush().expect("acknowledged");
    check(&server, "shop-grpc").await;
    check_api(&server, "shop-grpc").await;

    let server_ref = &server;
    std::thread::scope(|s| {
        s.spawn(|| {
            let http = provider(server_ref, false, "shop-http");
            record(&http);
            http.force_flush().expect("acknowledged");
            http.shutdown().unwrap();
        });
    });
    check(&server, "shop-http").await;
    check_api(&server, "shop-http").await;
    grpc.shutdown().unwrap();

    // Kept across a restart, in Parquet.
    server.stop();
    let server = Server::start(dir.path(), &[]);
    check(&server, "shop-grpc").await;
}

/// Every point type through OTLP/JSON (exponential histograms and summaries included, which the
/// SDKs above do not produce by default), exemplars, and points that must be rejected alone.
#[tokio::test(flavor = "multi_thread")]
async fn every_point_type_is_stored_and_bad_points_are_rejected_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let (t0, t1, start) = (
        now - 120_000_000_000,
        now - 60_000_000_000,
        now - 600_000_000_000,
    );
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"raw"}}}}]}},
        "scopeMetrics":[{{"metrics":[
          {{"name":"queue.size","gauge":{{"dataPoints":[
             {{"timeUnixNano":"{t0}","asDouble":3.5}},
             {{"timeUnixNano":"{t1}","asDouble":"NaN"}}]}}}},
          {{"name":"bytes.sent","sum":{{"aggregationTemporality":1,"isMonotonic":true,"dataPoints":[
             {{"timeUnixNano":"{t0}","startTimeUnixNano":"{t0}","asInt":"100"}},
             {{"timeUnixNano":"{t1}","startTimeUnixNano":"{t0}","asInt":"250"}}]}}}},
          {{"name":"payload.size","exponentialHistogram":{{"aggregationTemporality":1,"dataPoints":[
             {{"timeUnixNano":"{t1}","startTimeUnixNano":"{start}","count":"10","sum":1200,"scale":0,"zeroCount":"1",
               "positive":{{"offset":6,"bucketCounts":["2","7"]}}}}]}}}},
          {{"name":"rpc.latency","summary":{{"dataPoints":[
             {{"timeUnixNano":"{t1}","startTimeUnixNano":"{start}","count":"20","sum":35.5,"quantileValues":[{{"quantile":0.5,"value":1.25}},{{"quantile":0.99,"value":9.75}}]}},
             {{"timeUnixNano":"{t1}","count":"1","sum":1,"quantileValues":[{{"quantile":1.5,"value":1}}]}}]}}}},
          {{"name":"req.time","histogram":{{"aggregationTemporality":2,"dataPoints":[
             {{"timeUnixNano":"{t1}","startTimeUnixNano":"{start}","count":"4","sum":40,"bucketCounts":["1","3","0"],"explicitBounds":[5,50],
               "exemplars":[{{"timeUnixNano":"{t1}","asDouble":30,"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}}]}},
             {{"timeUnixNano":"{t1}","count":"4","bucketCounts":["1","3"],"explicitBounds":[5,50]}},
             {{"timeUnixNano":"{t1}","count":"4","bucketCounts":["1","3","0"],"explicitBounds":[50,5]}},
             {{"timeUnixNano":"{t1}","count":"9","bucketCounts":["1","3","0"],"explicitBounds":[5,50]}}]}}}}
        ]}}]}}]}}"#
    );
    let res = reqwest::Client::new()
        .post(server.otlp_url("/v1/metrics"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let answer: Value = res.json().await.unwrap();
    let partial = &answer["partialSuccess"];
    assert_eq!(
        partial["rejectedDataPoints"].to_string().trim_matches('"'),
        "4",
        "{answer}"
    );

    let kinds = rows(
        &server,
        "SELECT metric_type, count(*) AS n FROM metrics GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(
        kinds,
        serde_json::json!([
            {"metric_type": "exponential_histogram", "n": 1}, {"metric_type": "gauge", "n": 2},
            {"metric_type": "histogram", "n": 1}, {"metric_type": "sum", "n": 2}, {"metric_type": "summary", "n": 1}
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    // NaN (a staleness marker in Prometheus) is stored as sent, from OTLP/JSON ("NaN") and
    // from protobuf.
    let json_nan = rows(
        &server,
        "SELECT isnan(value) AS nan FROM metrics WHERE metric_name = 'queue.size' ORDER BY time",
    )
    .await;
    assert_eq!(json_nan[1]["nan"], true, "NaN from JSON is kept");
    let nan_request = {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::metrics::v1::{
            Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
            number_data_point,
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: None,
                scope_metrics: vec![ScopeMetrics {
                    scope: None,
                    metrics: vec![Metric {
                        name: "stale".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: t1 as u64,
                                value: Some(number_data_point::Value::AsDouble(f64::NAN)),
                                ..NumberDataPoint::default()
                            }],
                        })),
                        ..Metric::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    };
    let res = reqwest::Client::new()
        .post(server.otlp_url("/v1/metrics"))
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&nan_request))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let nan = rows(
        &server,
        "SELECT isnan(value) AS nan FROM metrics WHERE metric_name = 'stale'",
    )
    .await;
    assert_eq!(nan[0]["nan"], true, "NaN is kept");

    let one = |q: &str| {
        let server = &server;
        let q = q.to_owned();
        async move {
            let body = server
                .get(&format!("/api/v1/metrics/query?start=now-30m&step=1h&{q}"))
                .await;
            (body["series"][0]["values"][0].as_f64(), body)
        }
    };
    // A delta counter: the values themselves.
    assert_eq!(one("name=bytes.sent&agg=increase").await.0, Some(350.0));
    // Exponential histogram, scale 0: 1 zero, 2 in (64, 128], 7 in (128, 256]. Median → (128, 256].
    let (p50, _) = one("name=payload.size&agg=quantile&q=0.5").await;
    assert!((128.0..=256.0).contains(&p50.unwrap()), "{p50:?}");
    assert_eq!(one("name=payload.size&agg=count").await.0, Some(10.0));
    // Summary: the reported quantile.
    assert_eq!(
        one("name=rpc.latency&agg=quantile&q=0.99").await.0,
        Some(9.75)
    );
    assert_eq!(one("name=rpc.latency&agg=count").await.0, Some(20.0));
    // Explicit histogram, with its exemplar linking to a trace.
    let (p75, body) = one("name=req.time&agg=quantile&q=0.75").await;
    assert!((5.0..=50.0).contains(&p75.unwrap()), "{p75:?}");
    assert_eq!(
        body["exemplars"][0]["trace_id"],
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(body["exemplars"][0]["value"], 30.0);
}
