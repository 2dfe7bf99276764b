//! `lakescope loadgen`: sends the demo fleet's traffic to an OTLP/gRPC endpoint as fast as it is
//! accepted, from several connections, and reports accepted spans per second, export latency
//! percentiles and refusals.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic_types::StatusExt;

use clap::Args;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use lakescope::demo::fleet::Fleet;

#[derive(Debug, Clone, Args)]
pub struct LoadgenConfig {
    /// OTLP/gRPC address of the server under test.
    #[arg(long, env = "LAKESCOPE_OTLP_GRPC", default_value = "127.0.0.1:4317")]
    pub otlp_grpc: SocketAddr,

    /// How long to send.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,

    /// Traces per export request (about ten spans each).
    #[arg(long, default_value_t = 50)]
    pub traces_per_request: usize,

    /// Date the traffic this far in the past (e.g. `2h`, to fill an hour that has ended and
    /// that compaction will merge).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub backdate: Duration,
}

#[derive(Default)]
struct Tally {
    requests: u64,
    spans: u64,
    refused: u64,
    otlp_bytes: u64,
    latencies_us: Vec<u64>,
}

async fn connection(config: LoadgenConfig, seed: u64, deadline: Instant) -> anyhow::Result<Tally> {
    let mut client = TraceServiceClient::connect(format!("http://{}", config.otlp_grpc))
        .await?
        .max_encoding_message_size(64 * 1024 * 1024);
    let mut fleet = Fleet::new(SmallRng::seed_from_u64(seed));
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64
            - config.backdate.as_nanos() as u64;
        let spans: Vec<_> = (0..config.traces_per_request)
            .flat_map(|_| fleet.trace(now))
            .collect();
        let count = spans.len() as u64;
        let request = Fleet::request(spans);
        let bytes = prost::Message::encoded_len(&request) as u64;
        let sent = Instant::now();
        match client.export(request).await {
            Ok(response) => {
                let rejected = response
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_spans as u64);
                tally.requests += 1;
                tally.spans += count - rejected;
                tally.otlp_bytes += bytes;
                tally.latencies_us.push(sent.elapsed().as_micros() as u64);
            }
            Err(status) => {
                tally.refused += 1;
                tracing::debug!(%status, "export refused");
                // Wait as long as the server asks, as the OpenTelemetry SDKs do; a refusal
                // without a delay is retried at once.
                if let Some(delay) = status.get_details_retry_info().and_then(|r| r.retry_delay) {
                    tokio::time::sleep(delay.min(Duration::from_secs(5))).await;
                }
            }
        }
    }
    Ok(tally)
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

pub async fn run(config: LoadgenConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + config.duration;
    let tasks: Vec<_> = (0..config.connections)
        .map(|i| tokio::spawn(connection(config.clone(), i as u64 + 1, deadline)))
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let t = task.await??;
        total.requests += t.requests;
        total.spans += t.spans;
        total.refused += t.refused;
        total.otlp_bytes += t.otlp_bytes;
        total.latencies_us.extend(t.latencies_us);
    }
    let elapsed = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    println!(
        "{{\"seconds\": {elapsed:.2}, \"requests\": {}, \"spans\": {}, \"spans_per_s\": {:.0}, \"refused\": {}, \"otlp_bytes_per_span\": {:.1}, \"latency_ms\": {{\"p50\": {:.2}, \"p99\": {:.2}}}}}",
        total.requests,
        total.spans,
        total.spans as f64 / elapsed,
        total.refused,
        total.otlp_bytes as f64 / total.spans.max(1) as f64,
        percentile(&total.latencies_us, 0.5),
        percentile(&total.latencies_us, 0.99),
    );
    Ok(())
}
