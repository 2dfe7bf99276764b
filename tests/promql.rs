//! The Prometheus API against a real Prometheus: the same samples are loaded into Debian's
//! `prometheus` (`promtool tsdb create-blocks-from openmetrics`) and into Lakescope (OTLP/HTTP
//! metrics exports of the same points), and the same PromQL expressions, at the same instants
//! and over the same ranges, must give the same series and values (floats within 1e-9
//! relative). `promtool query` must work against Lakescope too. `./tests/run` installs the
//! package.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{Server, wait_for};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;

const STEP_S: i64 = 15;
const POINTS: i64 = 241; // one hour and its end
const BOUNDS: [f64; 5] = [0.05, 0.1, 0.25, 0.5, 1.0];

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

/// A deterministic pseudo-random sequence (xorshift), so both systems get the same numbers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Cumulative bucket counts (per bound, then +Inf) and the sum.
type HistogramPoint = (Vec<u64>, f64);

/// One series of the data set: its service, instance, attributes and values per step.
struct Data {
    t0: i64,
    /// (job, instance, code) → counter values.
    counters: Vec<(&'static str, &'static str, &'static str, Vec<f64>)>,
    /// (job, instance) → gauge values.
    gauges: Vec<(&'static str, &'static str, Vec<f64>)>,
    /// (job, instance) → cumulative bucket counts (per bound and +Inf), sum.
    histograms: Vec<(&'static str, &'static str, Vec<HistogramPoint>)>,
}

fn data(t0: i64) -> Data {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut counters = Vec::new();
    for (job, instance, code) in [
        ("checkout", "i1", "200"),
        ("checkout", "i1", "500"),
        ("cart", "i2", "200"),
        ("cart", "i2", "500"),
    ] {
        let mut v = 0.0;
        let mut values = Vec::new();
        for i in 0..POINTS {
            v += (rng.next() % 40) as f64;
            // A restart of checkout's 200 series halfway.
            if job == "checkout" && code == "200" && i == POINTS / 2 {
                v = 3.0;
            }
            values.push(v);
        }
        counters.push((job, instance, code, values));
    }
    let mut gauges = Vec::new();
    for (job, instance) in [("checkout", "i1"), ("cart", "i2"), ("payment", "i3")] {
        let values = (0..POINTS)
            .map(|_| (rng.next() % 10_000) as f64 / 1000.0)
            .collect();
        gauges.push((job, instance, values));
    }
    let mut histograms = Vec::new();
    for (job, instance) in [("checkout", "i1"), ("cart", "i2")] {
        let mut counts = vec![0u64; BOUNDS.len() + 1];
        let mut sum = 0.0;
        let mut values = Vec::new();
        for _ in 0..POINTS {
            for _ in 0..(rng.next() % 20) {
                let bucket = (rng.next() % (BOUNDS.len() as u64 + 1)) as usize;
                counts[bucket] += 1;
                sum += BOUNDS.get(bucket).copied().unwrap_or(2.0) * 0.9;
            }
            let cumulative: Vec<u64> = counts
                .iter()
                .scan(0, |acc, c| {
                    *acc += c;
                    Some(*acc)
                })
                .collect();
            values.push((cumulative, sum));
        }
        histograms.push((job, instance, values));
    }
    Data {
        t0,
        counters,
        gauges,
        histograms,
    }
}

fn time_of(d: &Data, i: i64) -> i64 {
    d.t0 + i * STEP_S
}

/// The data set in the OpenMetrics text format (timestamps in seconds).
fn openmetrics(d: &Data) -> String {
    let mut out = String::new();
    out.push_str("# TYPE test_requests counter\n");
    for (job, instance, code, values) in &d.counters {
        for (i, v) in values.iter().enumerate() {
            out.push_str(&format!(
                "test_requests_total{{code=\"{code}\",instance=\"{instance}\",job=\"{job}\"}} {v} {}\n",
                time_of(d, i as i64)
            ));
        }
    }
    out.push_str("# TYPE test_queue_depth gauge\n");
    for (job, instance, values) in &d.gauges {
        for (i, v) in values.iter().enumerate() {
            out.push_str(&format!(
                "test_queue_depth{{instance=\"{instance}\",job=\"{job}\"}} {v} {}\n",
                time_of(d, i as i64)
            ));
        }
    }
    out.push_str("# TYPE test_latency_seconds histogram\n");
    for (job, instance, values) in &d.histograms {
        for (i, (cumulative, sum)) in values.iter().enumerate() {
            let t = time_of(d, i as i64);
            let labels = format!("instance=\"{instance}\",job=\"{job}\"");
            for (b, c) in cumulative.iter().enumerate() {
                let le = BOUNDS
                    .get(b)
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "+Inf".into());
                out.push_str(&format!(
                    "test_latency_seconds_bucket{{{labels},le=\"{le}\"}} {c} {t}\n"
                ));
            }
            out.push_str(&format!("test_latency_seconds_sum{{{labels}}} {sum} {t}\n"));
            out.push_str(&format!(
                "test_latency_seconds_count{{{labels}}} {} {t}\n",
                cumulative[cumulative.len() - 1]
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

fn resource(job: &str, instance: &str) -> Resource {
    Resource {
        attributes: vec![kv("service.name", job), kv("service.instance.id", instance)],
        dropped_attributes_count: 0,
        entity_refs: vec![],
    }
}

fn nanos(seconds: i64) -> u64 {
    seconds as u64 * 1_000_000_000
}

/// The points of steps `range` as OTLP exports, one request per service.
fn otlp(d: &Data, range: std::ops::Range<i64>) -> Vec<ExportMetricsServiceRequest> {
    let mut by_job: BTreeMap<(&str, &str), Vec<Metric>> = BTreeMap::new();
    for (job, instance, code, values) in &d.counters {
        // The restarted series has a new start time from the restart on.
        let points = range
            .clone()
            .map(|i| {
                let restarted = *job == "checkout" && *code == "200" && i >= POINTS / 2;
                let start = if restarted {
                    time_of(d, POINTS / 2) - 1
                } else {
                    d.t0 - 60
                };
                NumberDataPoint {
                    attributes: vec![kv("code", code)],
                    start_time_unix_nano: nanos(start),
                    time_unix_nano: nanos(time_of(d, i)),
                    value: Some(number_data_point::Value::AsDouble(values[i as usize])),
                    ..Default::default()
                }
            })
            .collect();
        by_job.entry((job, instance)).or_default().push(Metric {
            name: "test.requests".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        });
    }
    for (job, instance, values) in &d.gauges {
        let points = range
            .clone()
            .map(|i| NumberDataPoint {
                time_unix_nano: nanos(time_of(d, i)),
                value: Some(number_data_point::Value::AsDouble(values[i as usize])),
                ..Default::default()
            })
            .collect();
        by_job.entry((job, instance)).or_default().push(Metric {
            name: "test.queue.depth".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: points,
            })),
            ..Default::default()
        });
    }
    for (job, instance, values) in &d.histograms {
        let points = range
            .clone()
            .map(|i| {
                let (cumulative, sum) = &values[i as usize];
                let counts: Vec<u64> = cumulative
                    .iter()
                    .enumerate()
                    .map(|(b, c)| if b == 0 { *c } else { c - cumulative[b - 1] })
                    .collect();
                HistogramDataPoint {
                    start_time_unix_nano: nanos(d.t0 - 60),
                    time_unix_nano: nanos(time_of(d, i)),
                    count: cumulative[cumulative.len() - 1],
                    sum: Some(*sum),
                    bucket_counts: counts,
                    explicit_bounds: BOUNDS.to_vec(),
                    ..Default::default()
                }
            })
            .collect();
        by_job.entry((job, instance)).or_default().push(Metric {
            name: "test.latency".into(),
            unit: "s".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        });
    }
    by_job
        .into_iter()
        .map(|((job, instance), metrics)| ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource(job, instance)),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        })
        .collect()
}

struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_prometheus(dir: &Path, om: &str) -> Prometheus {
    let input = dir.join("data.om");
    std::fs::write(&input, om).expect("write openmetrics");
    let tsdb = dir.join("tsdb");
    let out = Command::new(common::debian_tool("promtool"))
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&tsdb)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool create-blocks-from failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").expect("write config");
    let port = common::free_port();
    let child = Command::new(common::debian_tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let url = format!("http://127.0.0.1:{port}");
    let p = Prometheus { child, url };
    wait_for("prometheus to be ready", async || {
        reqwest::get(format!("{}/-/ready", p.url))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    p
}

/// A form POST (what `promtool` and Grafana send), or a GET for the endpoints Prometheus only
/// serves that way.
async fn api(base: &str, path: &str, params: &[(&str, String)]) -> Value {
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    let request = if path.starts_with("/api/v1/label/") {
        client.get(url).query(params)
    } else {
        client.post(url).form(params)
    };
    let res = request.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{base}{path} {params:?}: {status} {e}: {text}"));
    assert!(
        status.is_success() && body["status"] == "success",
        "{base}{path} {params:?}: {status} {body}"
    );
    body["data"].clone()
}

fn number(v: &Value) -> f64 {
    match v.as_str().expect("a value string") {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().expect("a float"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || ((a - b).abs() <= 1e-9 * a.abs().max(b.abs()))
}

/// The result as comparable data: label set → points (time, value).
fn normalise(data: &Value) -> (String, BTreeMap<String, Vec<(f64, f64)>>) {
    let kind = data["resultType"].as_str().unwrap_or("").to_owned();
    let mut out = BTreeMap::new();
    match kind.as_str() {
        "scalar" => {
            let r = &data["result"];
            out.insert(
                "{}".to_owned(),
                vec![(r[0].as_f64().unwrap(), number(&r[1]))],
            );
        }
        _ => {
            for s in data["result"].as_array().expect("result list") {
                let labels = s["metric"].to_string();
                let points = if let Some(v) = s.get("value") {
                    vec![(v[0].as_f64().unwrap(), number(&v[1]))]
                } else {
                    s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (p[0].as_f64().unwrap(), number(&p[1])))
                        .collect()
                };
                out.insert(labels, points);
            }
        }
    }
    (kind, out)
}

fn compare(what: &str, want: &Value, got: &Value) {
    let (wk, w) = normalise(want);
    let (gk, g) = normalise(got);
    assert_eq!(gk, wk, "{what}: result type");
    assert_eq!(
        g.keys().collect::<Vec<_>>(),
        w.keys().collect::<Vec<_>>(),
        "{what}: series"
    );
    for (labels, wp) in &w {
        let gp = &g[labels];
        assert_eq!(gp.len(), wp.len(), "{what} {labels}: number of points");
        for ((wt, wv), (gt, gv)) in wp.iter().zip(gp) {
            assert_eq!(gt, wt, "{what} {labels}: timestamps");
            assert!(
                close(*wv, *gv),
                "{what} {labels} at {wt}: Prometheus {wv}, Lakescope {gv}"
            );
        }
    }
}

const EXPRESSIONS: &[&str] = &[
    "test_requests_total",
    "test_requests_total{code=\"500\"}",
    "test_requests_total{code!=\"500\"}",
    "test_requests_total{job=~\"check.*\"}",
    "test_requests_total{job!~\"cart\"}",
    "{__name__=~\"test_req.*\", code=\"200\"}",
    "test_requests_total offset 5m",
    "rate(test_requests_total[5m])",
    "rate(test_requests_total[1m] offset 2m)",
    "irate(test_requests_total[5m])",
    "increase(test_requests_total[10m])",
    "delta(test_queue_depth[5m])",
    "avg_over_time(test_queue_depth[5m])",
    "min_over_time(test_queue_depth[5m])",
    "max_over_time(test_queue_depth[5m])",
    "sum_over_time(test_queue_depth[5m])",
    "count_over_time(test_queue_depth[5m])",
    "last_over_time(test_queue_depth[5m])",
    "stddev_over_time(test_queue_depth[10m])",
    "quantile_over_time(0.9, test_queue_depth[10m])",
    "sum(rate(test_requests_total[5m]))",
    "sum by (job) (rate(test_requests_total[5m]))",
    "sum without (code) (rate(test_requests_total[5m]))",
    "avg by (code) (test_requests_total)",
    "min(test_queue_depth)",
    "max by (job) (test_queue_depth)",
    "count(test_queue_depth)",
    "topk(2, test_queue_depth)",
    "bottomk(1, test_queue_depth)",
    "histogram_quantile(0.9, sum by (le) (rate(test_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(test_latency_seconds_bucket[5m]))",
    "histogram_quantile(0.99, sum by (job, le) (rate(test_latency_seconds_bucket[10m])))",
    "rate(test_latency_seconds_sum[5m]) / rate(test_latency_seconds_count[5m])",
    "rate(test_requests_total[5m]) * 60",
    "test_queue_depth > 3",
    "test_queue_depth > bool 3",
    "3 < test_queue_depth",
    "2 * test_queue_depth",
    "1 - test_queue_depth",
    "test_queue_depth ^ 2 % 7",
    "sum by (job) (rate(test_requests_total{code=\"500\"}[5m])) / sum by (job) (rate(test_requests_total[5m]))",
    "rate(test_requests_total[5m]) / on (job, instance) group_left test_queue_depth",
    "test_requests_total / ignoring (code) group_left test_queue_depth",
    "test_queue_depth / on (job) group_right sum by (job) (test_requests_total)",
    "test_queue_depth == bool on (job) test_queue_depth",
    "test_queue_depth >= on (job, instance) test_queue_depth",
    "abs(1 - test_queue_depth)",
    "clamp_max(test_queue_depth, 4)",
    "clamp_min(test_queue_depth, 4)",
    "clamp(test_queue_depth, 2, 4)",
    "absent(test_requests_total{job=\"nope\"})",
    "absent(test_queue_depth)",
    "vector(1)",
    "scalar(sum(test_queue_depth))",
    "time()",
    "time() - 5",
    "test_queue_depth and test_queue_depth > 3",
    "test_queue_depth unless test_queue_depth > 3",
    "test_queue_depth > 5 or vector(0)",
    "sum by (job) (test_queue_depth) > 3",
    "-test_queue_depth",
    "count_values(\"value\", floor(test_queue_depth))",
    "round(test_queue_depth, 0.5)",
    "sqrt(test_queue_depth) + ln(test_queue_depth + 1)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_answers_equal_prometheus_on_the_same_samples() {
    let now = chrono::Utc::now().timestamp();
    // Two hours ago, on a minute: within Prometheus's retention, outside its head block.
    let t0 = (now - 2 * 3600) / 60 * 60;
    let d = data(t0);

    let dir = tempfile::tempdir().expect("tempdir");
    let prom = start_prometheus(dir.path(), &openmetrics(&d)).await;

    let lake = tempfile::tempdir().expect("tempdir");
    let server = Server::start(lake.path(), &[]);
    let client = reqwest::Client::new();
    for chunk in (0..POINTS).step_by(60) {
        for req in otlp(&d, chunk..(chunk + 60).min(POINTS)) {
            let res = client
                .post(server.otlp_url("/v1/metrics"))
                .header("content-type", "application/x-protobuf")
                .body(req.encode_to_vec())
                .send()
                .await
                .expect("POST /v1/metrics");
            assert_eq!(res.status().as_u16(), 200);
        }
    }
    let expected_rows = POINTS * (4 + 3 + 2);
    wait_for("the points to be stored", async || {
        server.count("SELECT count(*) FROM metrics").await == expected_rows
    })
    .await;

    let lakescope = server.url("");
    let lakescope = lakescope.trim_end_matches('/');
    // Instants on a sample, between samples, and near the end (where the lookback matters).
    let instants = [t0 + 600, t0 + 1807, t0 + 3540, t0 + 3600 + 200];
    for expr in EXPRESSIONS {
        for t in instants {
            let params = [("query", expr.to_string()), ("time", t.to_string())];
            let want = api(&prom.url, "/api/v1/query", &params).await;
            let got = api(lakescope, "/api/v1/query", &params).await;
            compare(&format!("{expr} at {t}"), &want, &got);
        }
        let params = [
            ("query", expr.to_string()),
            ("start", (t0 + 300).to_string()),
            ("end", (t0 + 3300).to_string()),
            ("step", "37s".to_string()),
        ];
        let want = api(&prom.url, "/api/v1/query_range", &params).await;
        let got = api(lakescope, "/api/v1/query_range", &params).await;
        compare(&format!("{expr} over a range"), &want, &got);
    }

    // The metadata endpoints agree too.
    let series_params = [
        ("match[]", "test_queue_depth".to_string()),
        ("start", t0.to_string()),
        ("end", (t0 + 3600).to_string()),
    ];
    let want = api(&prom.url, "/api/v1/series", &series_params).await;
    let got = api(lakescope, "/api/v1/series", &series_params).await;
    assert_eq!(got, want, "series");
    let values_params = [("start", t0.to_string()), ("end", (t0 + 3600).to_string())];
    let want = api(&prom.url, "/api/v1/label/job/values", &values_params).await;
    let got = api(lakescope, "/api/v1/label/job/values", &values_params).await;
    assert_eq!(got, want, "label values");

    // promtool, the Prometheus client, queries Lakescope unchanged.
    let out = Command::new(common::debian_tool("promtool"))
        .args(["query", "instant", "--time"])
        .arg((t0 + 600).to_string())
        .arg(lakescope)
        .arg("sum by (job) (test_queue_depth)")
        .output()
        .expect("run promtool query");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "promtool query: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for job in ["checkout", "cart", "payment"] {
        assert!(
            stdout.contains(&format!("job=\"{job}\"")),
            "promtool output: {stdout}"
        );
    }
}

#[tokio::test]
async fn errors_come_in_prometheus_form() {
    let lake = tempfile::tempdir().expect("tempdir");
    let server = Server::start(lake.path(), &[]);
    let cases = [
        ("/api/v1/query?query=sum(", 400, "bad_data"),
        ("/api/v1/query?query={job=~\".*\"}", 400, "bad_data"),
        ("/api/v1/query?query=foo[5m:1m]", 400, "bad_data"),
        ("/api/v1/query?query=up&time=yesterday", 400, "bad_data"),
        (
            "/api/v1/query_range?query=up&start=10&end=5&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            400,
            "bad_data",
        ),
        ("/api/v1/series", 400, "bad_data"),
    ];
    for (path, status, kind) in cases {
        let (got, body) = server.get_status(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["status"], "error", "{path}: {body}");
        assert_eq!(body["errorType"], kind, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Still serving, and an empty lake answers an empty vector.
    let body = server.get("/api/v1/query?query=up").await;
    assert_eq!(body["data"]["result"], serde_json::json!([]));
    let info = server.get("/api/v1/status/buildinfo").await;
    assert_eq!(info["status"], "success");
}

/// A span of a test trace.
#[allow(clippy::too_many_arguments)]
fn test_span(
    trace: u32,
    id: u8,
    parent: Option<u8>,
    name: &str,
    kind: i32,
    start: u64,
    duration_ms: u64,
    error: bool,
    attributes: Vec<KeyValue>,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};
    let mut trace_id = vec![7u8; 16];
    trace_id[12..].copy_from_slice(&trace.to_be_bytes());
    let span_id = |i: u8| {
        let mut s = vec![0u8; 8];
        s[3..7].copy_from_slice(&trace.to_be_bytes());
        s[7] = i;
        s
    };
    Span {
        trace_id,
        span_id: span_id(id),
        parent_span_id: parent.map(span_id).unwrap_or_default(),
        name: name.into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration_ms * 1_000_000,
        attributes,
        status: error.then(|| Status {
            code: 2,
            message: "failed".into(),
        }),
        ..Span::default()
    }
}

async fn value_at(server: &Server, expr: &str, t: i64) -> Value {
    let base = server.url("");
    api(
        base.trim_end_matches('/'),
        "/api/v1/query",
        &[("query", expr.to_string()), ("time", t.to_string())],
    )
    .await
}

/// The one value of an instant vector with exactly one series.
fn single(data: &Value) -> f64 {
    let result = data["result"].as_array().expect("result");
    assert_eq!(result.len(), 1, "one series expected: {data}");
    number(&result[0]["value"][1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_derived_red_and_service_graph_metrics_count_the_stored_spans() {
    // Traces every 30 s from ten minutes into the previous hour, so every tick asked for has
    // passed: frontend SERVER → frontend CLIENT → checkout SERVER → checkout CLIENT to a database.
    // Every fourth trace fails in checkout (900 ms instead of 90 ms) and at frontend's client.
    let now = chrono::Utc::now().timestamp();
    let hour = (now / 3600 - 1) * 3600;
    let base = hour + 600;
    let lake = tempfile::tempdir().expect("tempdir");
    let server = Server::start(lake.path(), &[]);
    let traces = 40u32;
    for i in 0..traces {
        let start = (base + i as i64 * 30) as u64 * 1_000_000_000;
        let failed = i % 4 == 0;
        let ms = 1_000_000u64;
        let frontend = vec![
            test_span(i, 1, None, "GET /checkout", 2, start, 120, false, vec![]),
            test_span(
                i,
                2,
                Some(1),
                "POST checkout",
                3,
                start + ms,
                100,
                failed,
                vec![],
            ),
        ];
        let checkout = vec![
            test_span(
                i,
                3,
                Some(2),
                "POST /pay",
                2,
                start + 2 * ms,
                if failed { 900 } else { 90 },
                failed,
                vec![],
            ),
            test_span(
                i,
                4,
                Some(3),
                "INSERT orders",
                3,
                start + 3 * ms,
                5,
                false,
                vec![
                    kv("db.system", "postgresql"),
                    kv("server.address", "orders-db"),
                ],
            ),
        ];
        server
            .post_traces(common::export_request("frontend", frontend).encode_to_vec())
            .await;
        server
            .post_traces(common::export_request("checkout", checkout).encode_to_vec())
            .await;
    }
    wait_for("the spans to be stored", async || {
        server.count("SELECT count(*) FROM spans").await == 4 * traces as i64
    })
    .await;

    // Ten minutes after the first trace: traces 0–19 started before, 5 of them failed.
    let t = base + 600;
    let checkout_server = "service=\"checkout\",span_kind=\"SPAN_KIND_SERVER\"";
    let calls = value_at(
        &server,
        &format!("sum by (status_code) (traces_spanmetrics_calls_total{{{checkout_server}}})"),
        t,
    )
    .await;
    let by_status: BTreeMap<String, f64> = calls["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["status_code"].as_str().unwrap().to_owned(),
                number(&s["value"][1]),
            )
        })
        .collect();
    assert_eq!(
        by_status,
        BTreeMap::from([
            ("STATUS_CODE_ERROR".to_owned(), 5.0),
            ("STATUS_CODE_UNSET".to_owned(), 15.0)
        ]),
        "{calls}"
    );
    let all = value_at(&server, "sum(traces_spanmetrics_calls_total)", t).await;
    assert_eq!(single(&all), 80.0, "4 spans × 20 traces: {all}");
    // Buckets: 15 at 90 ms (le 0.128), 5 at 900 ms (le 1.024).
    let bucket = |le: &str| {
        format!("sum(traces_spanmetrics_latency_bucket{{{checkout_server},le=\"{le}\"}})")
    };
    for (le, want) in [
        ("0.064", 0.0),
        ("0.128", 15.0),
        ("0.512", 15.0),
        ("1.024", 20.0),
        ("+Inf", 20.0),
    ] {
        let got = value_at(&server, &bucket(le), t).await;
        assert_eq!(single(&got), want, "bucket le={le}: {got}");
    }
    let median = value_at(
        &server,
        &format!(
            "histogram_quantile(0.5, sum by (le) (traces_spanmetrics_latency_bucket{{{checkout_server}}}))"
        ),
        t,
    )
    .await;
    let want = 0.064 + 0.064 * (10.0 / 15.0);
    assert!((single(&median) - want).abs() < 1e-9, "{median}");
    let sum = value_at(
        &server,
        &format!("sum(traces_spanmetrics_latency_sum{{{checkout_server}}})"),
        t,
    )
    .await;
    assert!(
        (single(&sum) - (15.0 * 0.09 + 5.0 * 0.9)).abs() < 1e-9,
        "{sum}"
    );

    // The service graph: the same edges and counts as the dependencies view over [hour, t).
    let edge = "client=\"frontend\",server=\"checkout\"";
    let total = value_at(
        &server,
        &format!("traces_service_graph_request_total{{{edge}}}"),
        t,
    )
    .await;
    assert_eq!(single(&total), 20.0, "{total}");
    let failed = value_at(
        &server,
        &format!("traces_service_graph_request_failed_total{{{edge}}}"),
        t,
    )
    .await;
    assert_eq!(single(&failed), 5.0, "{failed}");
    let db = value_at(
        &server,
        "traces_service_graph_request_total{client=\"checkout\",server=\"orders-db\",connection_type=\"database\"}",
        t,
    )
    .await;
    assert_eq!(single(&db), 20.0, "{db}");
    let server_side = value_at(
        &server,
        &format!("traces_service_graph_request_server_seconds_count{{{edge}}}"),
        t,
    )
    .await;
    assert_eq!(single(&server_side), 20.0, "{server_side}");
    let graph = server
        .get(&format!(
            "/api/v1/dependencies?start={}&end={}",
            hour * 1_000_000_000,
            t * 1_000_000_000
        ))
        .await;
    let view = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == "frontend" && e["target"] == "checkout")
        .unwrap_or_else(|| panic!("no frontend → checkout edge: {graph}"));
    assert_eq!(view["calls"], 20, "{view}");
    assert_eq!(view["errors"], 5, "{view}");

    // As counters: the increase over the whole hour is all 40 traces (the counter starts at the
    // hour with its first tick, so the increase is exact but for Prometheus's extrapolation).
    let end_of_hour = hour + 3600;
    let raw = value_at(
        &server,
        "sum(traces_spanmetrics_calls_total{service=\"frontend\",span_kind=\"SPAN_KIND_SERVER\"})",
        end_of_hour,
    )
    .await;
    assert_eq!(single(&raw), 40.0, "{raw}");
    // A minute into the next hour, which has no spans, the hour's last sample is still within
    // the five-minute lookback.
    let next = value_at(
        &server,
        "sum(traces_spanmetrics_calls_total)",
        end_of_hour + 60,
    )
    .await;
    assert_eq!(single(&next), 160.0, "{next}");
}
