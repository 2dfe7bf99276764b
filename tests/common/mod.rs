//! Runs the real `lakescope` binary for end-to-end tests: port 0 everywhere, a temporary data
//! directory, addresses read from the server's own log.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub struct Server {
    child: Child,
    pub grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
}

fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

impl Server {
    /// Starts `lakescope serve` on `data_dir` with extra flags, and waits until it listens.
    pub fn start(data_dir: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lakescope"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--otlp-grpc",
                "127.0.0.1:0",
                "--otlp-http",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("RUST_LOG", "info")
            // The server's own choice of when freed memory goes back (src/memory.rs).
            .env_remove("MIMALLOC_PURGE_DELAY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lakescope");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    for (i, marker) in [
                        "OTLP/gRPC listening on ",
                        "OTLP/HTTP listening on ",
                        "dashboard and API listening on ",
                    ]
                    .iter()
                    .enumerate()
                    {
                        if let Some(addr) = addr_after(&line, marker) {
                            let _ = tx.send((i, addr));
                        }
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let mut addrs = [None; 3];
        while addrs.iter().any(Option::is_none) {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok((i, addr)) => addrs[i] = Some(addr),
                Err(_) => panic!(
                    "lakescope did not start; log:\n{}",
                    logs.lock().unwrap().join("\n")
                ),
            }
        }
        let [grpc, otlp_http, http] = addrs.map(Option::unwrap);
        Server {
            child,
            grpc,
            otlp_http,
            http,
            data_dir: data_dir.to_owned(),
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status");
        kib * 1024
    }

    /// The server's `/metrics` sample with exactly this name and labels, or 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter_map(|l| l.strip_prefix(series))
            .filter_map(|rest| rest.strip_prefix(' '))
            .find_map(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn otlp_url(&self, path: &str) -> String {
        format!("http://{}{}", self.otlp_http, path)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status must be success.
    pub fn stop(mut self) {
        self.signal("-TERM");
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "lakescope exited with {status}; log:\n{}",
            self.logs()
        );
    }

    pub async fn get(&self, path: &str) -> Value {
        let res = reqwest::get(self.url(path)).await.expect("GET");
        let status = res.status();
        let body: Value = res.json().await.expect("JSON body");
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    pub async fn get_status(&self, path: &str) -> (u16, Value) {
        let res = reqwest::get(self.url(path)).await.expect("GET");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn sql(&self, query: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(self.url("/api/v1/sql"))
            .json(&serde_json::json!({ "query": query }))
            .send()
            .await
            .expect("POST sql");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Posts an OTLP/HTTP protobuf trace export and requires it to be accepted.
    pub async fn post_traces(&self, body: Vec<u8>) {
        let res = reqwest::Client::new()
            .post(self.otlp_url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .expect("POST /v1/traces");
        assert_eq!(res.status().as_u16(), 200);
    }

    /// Requires exactly `n` spans, each stored once (no span id twice).
    pub async fn assert_spans_exactly_once(&self, n: u64) {
        let total = self.count("SELECT count(*) FROM spans").await as u64;
        let distinct = self
            .count("SELECT count(DISTINCT span_id) FROM spans")
            .await as u64;
        assert_eq!((total, distinct), (n, n), "(spans, distinct span ids)");
    }

    /// The one number a `SELECT count(*) ...` returns.
    pub async fn count(&self, query: &str) -> i64 {
        let (status, body) = self.sql(query).await;
        assert_eq!(status, 200, "{body}");
        let row = body["rows"][0].as_object().expect("a row").clone();
        row.values()
            .next()
            .and_then(Value::as_i64)
            .expect("a count")
    }

    /// The services overview entry of one service.
    pub async fn service(&self, name: &str, range: &str) -> Value {
        let body = self.get(&format!("/api/v1/services?{range}")).await;
        body["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("service {name} not in {body}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nearest-rank quantile, the definition the API documents.
pub fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

/// Asserts `got` is within 1 % of `want`, the accuracy the API promises for percentiles.
pub fn assert_within_1pct(got: &Value, want: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {got}"));
    assert!(
        (got - want).abs() <= want * 0.01,
        "{what}: got {got}, want {want} ± 1 %"
    );
}

/// The Python with the test dependencies (`tests/python/requirements.txt`): `LAKESCOPE_PYTHON`,
/// else the virtualenv `tests/run` creates, else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("LAKESCOPE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/lakescope/venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Runs a script from `tests/` with [`python`] and returns its standard output; fails the test
/// with the script's own error output when it fails.
pub fn run_python(script: &str, args: &[&str]) -> String {
    run_python_with_env(script, args, &[])
}

/// [`run_python`] with extra environment variables.
pub fn run_python_with_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; run ./tests/run to install the test dependencies",
                python().display()
            )
        });
    assert!(
        out.status.success(),
        "{script} failed ({}); if a module is missing, run ./tests/run to install the test dependencies.\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// An export request of `spans` from one service.
pub fn export_request(
    service: &str,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    key_strindex: 0,
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                }],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// The span table's Parquet files under `data_dir` with their sizes, sorted by path.
pub fn span_files(data_dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![data_dir.join("spans")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((p, size));
            }
        }
    }
    out.sort();
    out
}

/// Polls `done` every 100 ms; fails the test after 30 s.
pub async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free TCP port on the loopback interface, for a helper server the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The path of a program from Debian's `prometheus` or `prometheus-alertmanager` package, the
/// references the PromQL and alerting tests compare with or deliver to.
pub fn debian_tool(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: install Debian's prometheus and prometheus-alertmanager packages (./tests/run does)"
    );
    path
}

/// `google.rpc.Status` as the OTLP/HTTP error bodies carry it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The `google.rpc.Status` of an OTLP/HTTP error body.
pub fn proto_status(body: &[u8]) -> RpcStatus {
    <RpcStatus as prost::Message>::decode(body).expect("a google.rpc.Status body")
}
