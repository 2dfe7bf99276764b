//! Alert rules end to end: a real Alertmanager (Debian's `prometheus-alertmanager`) and a JSON
//! webhook receive the alerts that fire when a service's error ratio, its p99 or an OTLP gauge
//! of it crosses a threshold, and that resolve when the service recovers; `/api/v1/rules` and `/api/v1/alerts` show the state;
//! recording rules write their result back as a queryable series; the shipped rule files pass
//! `promtool check rules`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, wait_for};
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use prost::Message;
use serde_json::Value;

struct Process(Child);
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const RULES: &str = r#"
groups:
  - name: checkout-errors
    interval: 1s
    rules:
      - alert: CheckoutErrorBurst
        expr: |
          sum by (service) (rate(traces_spanmetrics_calls_total{span_kind="SPAN_KIND_SERVER", status_code="STATUS_CODE_ERROR"}[30s]))
            / sum by (service) (rate(traces_spanmetrics_calls_total{span_kind="SPAN_KIND_SERVER"}[30s])) > 0.5
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests"
      - alert: CheckoutSlow
        expr: |
          histogram_quantile(0.99, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{span_kind="SPAN_KIND_SERVER"}[30s]))) > 1
        labels:
          severity: ticket
        annotations:
          summary: "{{ $labels.service }} p99 is {{ $value | humanizeDuration }}"
      - alert: CheckoutQueueDeep
        expr: max by (job) (checkout_queue_depth) > 100
        labels:
          severity: ticket
      - record: service:calls:sum
        expr: sum by (service) (traces_spanmetrics_calls_total)
"#;

/// A checkout request; during the burst four in five fail and all take 2 s instead of 20 ms.
fn span(n: u64, end: u64, error: bool, slow: bool) -> Span {
    let duration = if slow { 2_000_000_000 } else { 20_000_000 };
    let mut trace_id = vec![9u8; 16];
    trace_id[8..].copy_from_slice(&n.to_be_bytes());
    Span {
        trace_id,
        span_id: n.to_be_bytes().to_vec(),
        name: "POST /checkout".into(),
        kind: 2,
        start_time_unix_nano: end - duration,
        end_time_unix_nano: end,
        status: error.then(|| Status {
            code: 2,
            message: "card declined".into(),
        }),
        ..Span::default()
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn alertmanager_alerts(url: &str) -> Vec<Value> {
    reqwest::get(format!("{url}/api/v2/alerts"))
        .await
        .expect("GET alertmanager alerts")
        .json::<Vec<Value>>()
        .await
        .expect("alert list")
}

const OURS: [&str; 3] = ["CheckoutErrorBurst", "CheckoutSlow", "CheckoutQueueDeep"];

/// The checkout service's OTLP gauge `checkout.queue.depth` (`{job}` = `checkout`).
fn queue_depth(value: i64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("checkout".into())),
                    }),
                    ..KeyValue::default()
                }],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "checkout.queue.depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: now_nanos(),
                            value: Some(number_data_point::Value::AsInt(value)),
                            ..NumberDataPoint::default()
                        }],
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
    .encode_to_vec()
}

fn ours(alerts: &[Value]) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| OURS.iter().any(|name| a["labels"]["alertname"] == *name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_burst_fires_into_alertmanager_and_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Alertmanager, alone (no cluster), routing everything to a receiver that does nothing.
    let am_port = common::free_port();
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: none\n  group_wait: 1s\nreceivers:\n  - name: none\n",
    )
    .expect("write alertmanager config");
    let _am = Process(
        Command::new(common::debian_tool("prometheus-alertmanager"))
            .arg(format!(
                "--config.file={}",
                dir.path().join("am.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    let am = format!("http://127.0.0.1:{am_port}");
    wait_for("alertmanager to be ready", async || {
        reqwest::get(format!("{am}/-/ready"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    // A webhook that keeps what it receives.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind webhook");
    let hook = format!("http://{}/hook", hook_listener.local_addr().unwrap());
    {
        let received = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let received = Arc::clone(&received);
                async move {
                    received.lock().unwrap().push(body);
                    "ok"
                }
            }),
        );
        tokio::spawn(async move { axum::serve(hook_listener, app).await });
    }

    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::write(rules_dir.join("burst.yml"), RULES).unwrap();
    let lake = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        lake.path(),
        &[
            "--rules-dir",
            rules_dir.to_str().unwrap(),
            "--alertmanager-url",
            &am,
            "--alert-webhook-url",
            &hook,
            "--flush-interval",
            "1s",
        ],
    );

    // Healthy traffic throughout; an error burst of 20 s in the middle.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let burst = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (stop, burst) = (Arc::clone(&stop), Arc::clone(&burst));
        let url = server.otlp_url("/v1/traces");
        let metrics_url = server.otlp_url("/v1/metrics");
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let failing = burst.load(std::sync::atomic::Ordering::Relaxed);
                let spans: Vec<Span> = (0..5)
                    .map(|i| {
                        n += 1;
                        span(n, now_nanos(), failing && i < 4, failing)
                    })
                    .collect();
                let body = common::export_request("checkout", spans).encode_to_vec();
                let res = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .expect("POST spans");
                assert_eq!(res.status().as_u16(), 200);
                let res = client
                    .post(&metrics_url)
                    .header("content-type", "application/x-protobuf")
                    .body(queue_depth(if failing { 500 } else { 10 }))
                    .send()
                    .await
                    .expect("POST metrics");
                assert_eq!(res.status().as_u16(), 200);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(20)).await;
    burst.store(true, std::sync::atomic::Ordering::Relaxed);

    // All three fire: Alertmanager has them, with the rules' and the results' labels.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let fired: Vec<Value> = loop {
        let alerts = alertmanager_alerts(&am).await;
        let found: Vec<Value> = ours(&alerts).into_iter().cloned().collect();
        if found.len() == 3 {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "not all three alerts in Alertmanager after 90 s: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let by_name = |name: &str| {
        fired
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .cloned()
            .unwrap_or_default()
    };
    let errors = by_name("CheckoutErrorBurst");
    assert_eq!(errors["labels"]["service"], "checkout", "{errors}");
    assert_eq!(errors["labels"]["severity"], "page", "{errors}");
    assert_eq!(errors["status"]["state"], "active", "{errors}");
    let summary = errors["annotations"]["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(
        summary.starts_with("checkout fails ") && summary.ends_with("% of requests"),
        "{errors}"
    );
    let slow = by_name("CheckoutSlow");
    assert_eq!(slow["labels"]["service"], "checkout", "{slow}");
    assert_eq!(slow["labels"]["severity"], "ticket", "{slow}");
    // Every request of the burst takes 2 s: the interpolated p99 is between 1 and 2.5 s.
    let summary = slow["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with("checkout p99 is ") && summary.ends_with('s'),
        "{slow}"
    );
    // The rule over an OTLP metric: labels by Prometheus's naming of OTLP (job = service.name).
    let queue = by_name("CheckoutQueueDeep");
    assert_eq!(queue["labels"]["job"], "checkout", "{queue}");
    assert_eq!(queue["labels"]["severity"], "ticket", "{queue}");
    let generator = errors["generatorURL"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        generator.starts_with(&server.url("/graph?g0.expr=")),
        "{errors}"
    );

    // The alerts page shows what the API says, and the generator link charts the expression.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let (page_url, shots_arg) = (server.url("/"), shots.display().to_string());
    let out = tokio::task::spawn_blocking(move || {
        common::run_python("browser/alerts.py", &[&page_url, &generator, &shots_arg])
    })
    .await
    .expect("browser check");
    assert!(out.contains("alerts page OK"), "{out}");
    for page in ["alerts", "graph"] {
        let png = shots.join(format!("{page}.png"));
        assert!(
            std::fs::metadata(&png).is_ok_and(|m| m.len() > 5_000),
            "no screenshot {}",
            png.display()
        );
    }

    // Lakescope's own view of it, in Prometheus's format.
    let alerts = server.get("/api/v1/alerts").await;
    let listed = alerts["data"]["alerts"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|a| a["labels"]["alertname"] == "CheckoutErrorBurst" && a["state"] == "firing"),
        "{alerts}"
    );
    // The ALERTS series, as Prometheus writes it, while they fire.
    wait_for("ALERTS of the three firing alerts", async || {
        let body = server
            .get("/api/v1/query?query=ALERTS%7Balertstate%3D%22firing%22%7D")
            .await;
        body["data"]["result"]
            .as_array()
            .is_some_and(|r| r.len() == 3)
    })
    .await;
    let body = server
        .get("/api/v1/query?query=ALERTS%7Balertname%3D%22CheckoutSlow%22%7D")
        .await;
    assert_eq!(
        body["data"]["result"][0]["metric"],
        serde_json::json!({"__name__": "ALERTS", "alertname": "CheckoutSlow", "alertstate": "firing",
            "service": "checkout", "severity": "ticket"}),
        "{body}"
    );
    let rules = server.get("/api/v1/rules").await;
    let group = &rules["data"]["groups"][0];
    assert_eq!(group["name"], "checkout-errors");
    assert_eq!(group["rules"][0]["state"], "firing", "{rules}");
    assert_eq!(group["rules"][0]["health"], "ok", "{rules}");
    assert_eq!(group["rules"][1]["state"], "firing", "{rules}");
    assert_eq!(group["rules"][2]["state"], "firing", "{rules}");
    assert_eq!(group["rules"][3]["type"], "recording", "{rules}");
    assert_eq!(group["rules"][3]["health"], "ok", "{rules}");

    // Recovery: the alert resolves, and Alertmanager learns it long before the alert's own
    // expiry (four resend periods, 4 minutes).
    burst.store(false, std::sync::atomic::Ordering::Relaxed);
    let recovered = Instant::now();
    let deadline = recovered + Duration::from_secs(100);
    loop {
        let alerts = alertmanager_alerts(&am).await;
        if ours(&alerts).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alert still active in Alertmanager 100 s after recovery: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.await.expect("traffic task");
    let rules = server.get("/api/v1/rules").await;
    for rule in 0..3 {
        assert_eq!(
            rules["data"]["groups"][0]["rules"][rule]["state"], "inactive",
            "{rules}"
        );
    }

    // Resolved alerts leave ALERTS at once (a staleness marker), not after the 5 min lookback.
    wait_for("ALERTS to be empty", async || {
        let body = server.get("/api/v1/query?query=ALERTS").await;
        body["data"]["result"]
            .as_array()
            .is_some_and(|r| r.is_empty())
    })
    .await;

    // The webhook saw it firing, then resolved.
    let statuses: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|body| body["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["alertname"] == "CheckoutErrorBurst")
        .map(|a| a["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("firing"),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("resolved"),
        "{statuses:?}"
    );

    // The recording rule's series is queryable, with exactly the result's labels.
    wait_for("the recorded series", async || {
        let body = server.get("/api/v1/query?query=service:calls:sum").await;
        body["data"]["result"]
            .as_array()
            .is_some_and(|r| r.len() == 1 && r[0]["metric"]["service"] == "checkout")
    })
    .await;
    let body = server.get("/api/v1/query?query=service:calls:sum").await;
    let metric = &body["data"]["result"][0]["metric"];
    assert_eq!(
        metric,
        &serde_json::json!({"__name__": "service:calls:sum", "service": "checkout"}),
        "{body}"
    );
}

#[test]
fn the_shipped_and_tested_rule_files_pass_promtool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/rules");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards/rules")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    assert!(!files.is_empty());
    // The rules the end-to-end test runs are a Prometheus rule file too.
    let scratch = tempfile::tempdir().expect("tempdir");
    files.push(scratch.path().join("test-rules.yml"));
    std::fs::write(files.last().unwrap(), RULES).expect("write rules");
    let out = Command::new(common::debian_tool("promtool"))
        .args(["check", "rules"])
        .args(&files)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_broken_rule_file_stops_the_start_with_its_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(\n",
    )
    .unwrap();
    let lake = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_lakescope"))
        .args(["serve", "--data-dir"])
        .arg(lake.path())
        .args([
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .arg("--rules-dir")
        .arg(dir.path())
        .output()
        .expect("run lakescope");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yml") && stderr.contains("parse error"),
        "{stderr}"
    );
}
