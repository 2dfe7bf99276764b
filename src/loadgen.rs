//! `lakescope loadgen`: sends the demo fleet's traffic — traces, their logs, or a fleet's
//! metrics — over OTLP/gRPC or OTLP/HTTP (protobuf), flat out or at a fixed rate, from several
//! connections; reports accepted records per second, export latency percentiles and refusals,
//! and optionally freshness: how long after its acknowledgement a trace is visible in the API.

mod metrics;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, ValueEnum};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::json;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use lakescope::demo::fleet::Fleet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Args)]
pub struct LoadgenConfig {
    /// OTLP/gRPC address of the server under test.
    #[arg(long, env = "LAKESCOPE_OTLP_GRPC", default_value = "127.0.0.1:4317")]
    pub otlp_grpc: SocketAddr,

    /// OTLP/HTTP address of the server under test (with `--protocol http`).
    #[arg(long, env = "LAKESCOPE_OTLP_HTTP", default_value = "127.0.0.1:4318")]
    pub otlp_http: SocketAddr,

    /// How to send: OTLP/gRPC, or OTLP/HTTP with protobuf bodies.
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,

    /// What to send: the fleet's traces, the log records its services write while serving
    /// them (2–3 per trace), or metrics of its pods (counters, histograms, gauges).
    #[arg(long, value_enum, default_value = "traces")]
    pub signal: Signal,

    /// How long to send.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,

    /// Traces per export request (about ten spans each); for logs, the records of that many
    /// traces.
    #[arg(long, default_value_t = 50)]
    pub traces_per_request: usize,

    /// Data points per metrics export request.
    #[arg(long, default_value_t = 1000)]
    pub points_per_request: usize,

    /// Records (spans, log records or data points) per second over all connections; flat out
    /// when absent. A connection that falls behind sends its next request at once, so the
    /// achieved rate is what is reported.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Date the traffic this far in the past (e.g. `2h`, to fill an hour that has ended and
    /// that compaction will merge).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub backdate: Duration,

    /// The server's API address (e.g. `127.0.0.1:8080`): once a second a separate connection
    /// sends one trace over OTLP/gRPC and asks `/api/v1/traces/{id}` every 10 ms until all its
    /// spans are there; the time from acknowledgement to visible is reported as freshness.
    #[arg(long)]
    pub freshness: Option<SocketAddr>,
}

#[derive(Default)]
struct Tally {
    requests: u64,
    records: u64,
    refused: u64,
    otlp_bytes: u64,
    latencies_us: Vec<u64>,
}

/// One export request of any signal.
enum Request {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

impl Request {
    fn encoded_len(&self) -> usize {
        match self {
            Request::Traces(r) => r.encoded_len(),
            Request::Logs(r) => r.encoded_len(),
            Request::Metrics(r) => r.encoded_len(),
        }
    }

    fn encode_to_vec(&self) -> Vec<u8> {
        match self {
            Request::Traces(r) => r.encode_to_vec(),
            Request::Logs(r) => r.encode_to_vec(),
            Request::Metrics(r) => r.encode_to_vec(),
        }
    }
}

struct Payload {
    records: u64,
    request: Request,
}

/// What the server said to one export.
enum Outcome {
    /// Accepted, with the number of records it rejected in a partial success.
    Accepted { rejected: u64 },
    /// Refused; retry after the server's delay, if it gave one.
    Refused(Option<Duration>),
}

enum Sender {
    Grpc(Channel),
    Http {
        client: reqwest::Client,
        base: String,
    },
}

impl Sender {
    async fn connect(config: &LoadgenConfig) -> anyhow::Result<Self> {
        Ok(match config.protocol {
            Protocol::Grpc => Sender::Grpc(
                tonic::transport::Endpoint::new(format!("http://{}", config.otlp_grpc))?
                    .connect()
                    .await
                    .with_context(|| format!("connecting to {}", config.otlp_grpc))?,
            ),
            Protocol::Http => Sender::Http {
                client: reqwest::Client::builder().build()?,
                base: format!("http://{}", config.otlp_http),
            },
        })
    }

    async fn send(&self, signal: Signal, request: Request) -> anyhow::Result<Outcome> {
        match self {
            Sender::Grpc(channel) => grpc_send(channel.clone(), request).await,
            Sender::Http { client, base } => {
                let path = match signal {
                    Signal::Traces => "/v1/traces",
                    Signal::Logs => "/v1/logs",
                    Signal::Metrics => "/v1/metrics",
                };
                let response = client
                    .post(format!("{base}{path}"))
                    .header("content-type", "application/x-protobuf")
                    .body(request.encode_to_vec())
                    .send()
                    .await?;
                let status = response.status();
                let retry = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                let bytes = response.bytes().await?;
                if !status.is_success() {
                    tracing::debug!(%status, "export refused");
                    return Ok(Outcome::Refused(retry));
                }
                Ok(Outcome::Accepted {
                    rejected: rejected(signal, &bytes)?,
                })
            }
        }
    }
}

/// Records rejected in an OTLP/HTTP export response body.
fn rejected(signal: Signal, body: &[u8]) -> anyhow::Result<u64> {
    Ok(match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)?
            .partial_success
            .map_or(0, |p| p.rejected_spans as u64),
        Signal::Logs => ExportLogsServiceResponse::decode(body)?
            .partial_success
            .map_or(0, |p| p.rejected_log_records as u64),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)?
            .partial_success
            .map_or(0, |p| p.rejected_data_points as u64),
    })
}

async fn grpc_send(channel: Channel, request: Request) -> anyhow::Result<Outcome> {
    const MAX: usize = 64 * 1024 * 1024;
    let result = match request {
        Request::Traces(r) => TraceServiceClient::new(channel)
            .max_encoding_message_size(MAX)
            .export(r)
            .await
            .map(|r| {
                r.into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_spans as u64)
            }),
        Request::Logs(r) => LogsServiceClient::new(channel)
            .max_encoding_message_size(MAX)
            .export(r)
            .await
            .map(|r| {
                r.into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_log_records as u64)
            }),
        Request::Metrics(r) => MetricsServiceClient::new(channel)
            .max_encoding_message_size(MAX)
            .export(r)
            .await
            .map(|r| {
                r.into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_data_points as u64)
            }),
    };
    Ok(match result {
        Ok(rejected) => Outcome::Accepted { rejected },
        Err(status) => {
            tracing::debug!(%status, "export refused");
            Outcome::Refused(status.get_details_retry_info().and_then(|r| r.retry_delay))
        }
    })
}

fn now_nanos(backdate: Duration) -> anyhow::Result<u64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    Ok(now.saturating_sub(backdate.as_nanos() as u64))
}

/// Builds the requests one connection sends.
struct Source {
    signal: Signal,
    fleet: Fleet,
    metrics: metrics::MetricLoad,
    rng: SmallRng,
    traces_per_request: usize,
    points_per_request: usize,
}

impl Source {
    fn next(&mut self, now: u64) -> Payload {
        match self.signal {
            Signal::Traces | Signal::Logs => {
                let spans: Vec<_> = (0..self.traces_per_request)
                    .flat_map(|_| self.fleet.trace(now))
                    .collect();
                if self.signal == Signal::Traces {
                    Payload {
                        records: spans.len() as u64,
                        request: Request::Traces(Fleet::request(spans)),
                    }
                } else {
                    let logs = Fleet::logs(&spans);
                    Payload {
                        records: logs
                            .resource_logs
                            .iter()
                            .flat_map(|r| &r.scope_logs)
                            .map(|s| s.log_records.len() as u64)
                            .sum(),
                        request: Request::Logs(logs),
                    }
                }
            }
            Signal::Metrics => {
                let request = self
                    .metrics
                    .request(self.points_per_request, now, &mut self.rng);
                Payload {
                    records: metrics::points(&request),
                    request: Request::Metrics(request),
                }
            }
        }
    }
}

async fn connection(config: LoadgenConfig, seed: u64, deadline: Instant) -> anyhow::Result<Tally> {
    let sender = Sender::connect(&config).await?;
    let start = now_nanos(config.backdate)?;
    let mut source = Source {
        signal: config.signal,
        fleet: Fleet::new(SmallRng::seed_from_u64(seed)),
        metrics: metrics::MetricLoad::new(start),
        rng: SmallRng::seed_from_u64(seed ^ 0x5eed),
        traces_per_request: config.traces_per_request,
        points_per_request: config.points_per_request,
    };
    let per_connection = config.rate.map(|r| r / config.connections.max(1) as f64);
    let mut next_at = Instant::now();
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let payload = source.next(now_nanos(config.backdate)?);
        let (records, bytes) = (payload.records, payload.request.encoded_len() as u64);
        let sent = Instant::now();
        match sender.send(config.signal, payload.request).await? {
            Outcome::Accepted { rejected } => {
                tally.requests += 1;
                tally.records += records.saturating_sub(rejected);
                tally.otlp_bytes += bytes;
                tally.latencies_us.push(sent.elapsed().as_micros() as u64);
                if let Some(rate) = per_connection.filter(|r| *r > 0.0) {
                    next_at += Duration::from_secs_f64(records as f64 / rate);
                    tokio::time::sleep_until(next_at.into()).await;
                }
            }
            Outcome::Refused(delay) => {
                tally.refused += 1;
                // Wait as long as the server asks, as the OpenTelemetry SDKs do; a refusal
                // without a delay is retried at once.
                if let Some(delay) = delay {
                    tokio::time::sleep(delay.min(Duration::from_secs(5))).await;
                }
                next_at = Instant::now();
            }
        }
    }
    Ok(tally)
}

/// Once a second until `deadline`: one trace sent alone, then the API asked for it until every
/// span is visible; returns the milliseconds from acknowledgement to visible.
async fn freshness(
    config: LoadgenConfig,
    api: SocketAddr,
    deadline: Instant,
) -> anyhow::Result<Vec<u64>> {
    let mut client = TraceServiceClient::connect(format!("http://{}", config.otlp_grpc)).await?;
    let http = reqwest::Client::new();
    let mut fleet = Fleet::new(SmallRng::seed_from_u64(0xf7e5));
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < deadline {
        tick.tick().await;
        let spans = fleet.trace(now_nanos(config.backdate)?);
        let Some(first) = spans.first() else { continue };
        let id = const_hex::encode(&first.1.trace_id);
        let want = spans.len();
        if client.export(Fleet::request(spans)).await.is_err() {
            continue;
        }
        let acked = Instant::now();
        let url = format!("http://{api}/api/v1/traces/{id}");
        // Give up on a sample after 30 s; it is reported as such.
        while acked.elapsed() < Duration::from_secs(30) {
            let response = http.get(&url).send().await?;
            if response.status().is_success() {
                let body: serde_json::Value = response.json().await?;
                if body["spans"].as_array().map(Vec::len) == Some(want) {
                    samples.push(acked.elapsed().as_micros() as u64);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(samples)
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub async fn run(config: LoadgenConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + config.duration;
    let tasks: Vec<_> = (0..config.connections)
        .map(|i| tokio::spawn(connection(config.clone(), i as u64 + 1, deadline)))
        .collect();
    let fresh = config
        .freshness
        .map(|api| tokio::spawn(freshness(config.clone(), api, deadline)));
    let mut total = Tally::default();
    for task in tasks {
        let t = task.await??;
        total.requests += t.requests;
        total.records += t.records;
        total.refused += t.refused;
        total.otlp_bytes += t.otlp_bytes;
        total.latencies_us.extend(t.latencies_us);
    }
    let elapsed = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let per_s = total.records as f64 / elapsed;
    let bytes_per_record = total.otlp_bytes as f64 / total.records.max(1) as f64;
    let mut report = json!({
        "signal": config.signal.to_possible_value().map(|v| v.get_name().to_owned()),
        "protocol": config.protocol.to_possible_value().map(|v| v.get_name().to_owned()),
        "seconds": round2(elapsed),
        "target_rate": config.rate,
        "requests": total.requests,
        "records": total.records,
        "records_per_s": per_s.round(),
        "refused": total.refused,
        "otlp_bytes_per_record": (bytes_per_record * 10.0).round() / 10.0,
        "latency_ms": {
            "p50": round2(percentile(&total.latencies_us, 0.5)),
            "p90": round2(percentile(&total.latencies_us, 0.9)),
            "p99": round2(percentile(&total.latencies_us, 0.99)),
            "max": round2(percentile(&total.latencies_us, 1.0)),
        },
    });
    if config.signal == Signal::Traces {
        // The names the benchmark scripts read.
        report["spans"] = json!(total.records);
        report["spans_per_s"] = json!(per_s.round());
        report["otlp_bytes_per_span"] = report["otlp_bytes_per_record"].clone();
    }
    if let Some(task) = fresh {
        let mut samples = task.await??;
        samples.sort_unstable();
        report["freshness_ms"] = json!({
            "samples": samples.len(),
            "p50": round2(percentile(&samples, 0.5)),
            "p90": round2(percentile(&samples, 0.9)),
            "max": round2(percentile(&samples, 1.0)),
        });
    }
    println!("{report}");
    Ok(())
}
