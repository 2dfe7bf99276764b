//! `lakescope demo`: a simulated fleet that sends its traces to the running server over real
//! OTLP/gRPC, so a newcomer sees a live dashboard at once.

pub mod fleet;
mod metrics;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleet::Fleet;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio_util::sync::CancellationToken;

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Sends `traces_per_second` simulated traces to the OTLP/gRPC endpoint at `addr` until `stop`.
pub async fn run(addr: SocketAddr, traces_per_second: f64, stop: CancellationToken) {
    let endpoint = format!("http://{addr}");
    let mut fleet = Fleet::new(SmallRng::from_os_rng());
    let mut rng = SmallRng::from_os_rng();
    let mut fleet_metrics = metrics::FleetMetrics::new(now_nanos());
    let mut ticks: u64 = 0;
    let tick = Duration::from_millis(250);
    let mut interval = tokio::time::interval(tick);
    let mut owed = 0.0;
    let mut client = None;
    let mut sent: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        owed += traces_per_second * tick.as_secs_f64();
        let count = owed.floor() as usize;
        owed -= count as f64;
        if count == 0 {
            continue;
        }
        let now = now_nanos();
        let step = tick.as_nanos() as u64 / count as u64;
        let spans = (0..count)
            .flat_map(|i| fleet.trace(now - step * (count - 1 - i) as u64))
            .collect::<Vec<_>>();
        let logs = Fleet::logs(&spans);
        fleet_metrics.observe(&spans);
        ticks += 1;
        let request = Fleet::request(spans);
        if client.is_none() {
            let channel = match tonic::transport::Endpoint::new(endpoint.clone()) {
                Ok(e) => e.connect().await,
                Err(error) => {
                    tracing::error!(%error, "bad demo endpoint {endpoint}");
                    break;
                }
            };
            match channel {
                Ok(channel) => {
                    client = Some((
                        TraceServiceClient::new(channel.clone()),
                        LogsServiceClient::new(channel.clone()),
                        MetricsServiceClient::new(channel),
                    ))
                }
                Err(error) => {
                    tracing::warn!(%error, "demo fleet cannot reach {endpoint}; retrying");
                    continue;
                }
            }
        }
        let Some((traces, log_client, metric_client)) = client.as_mut() else {
            continue;
        };
        if let Err(status) = log_client.export(logs).await {
            tracing::warn!(%status, "demo log export refused");
        }
        // Metrics every 5 s, as a periodic reader would.
        if ticks.is_multiple_of(20) {
            let request = fleet_metrics.export(now_nanos(), &mut rng);
            if let Err(status) = metric_client.export(request).await {
                tracing::warn!(%status, "demo metric export refused");
            }
        }
        match traces.export(request).await {
            Ok(_) => {
                sent += count as u64;
                if sent.is_multiple_of(1000) || sent < count as u64 * 2 {
                    tracing::info!(traces = sent, "demo fleet sending traces");
                }
            }
            Err(status) => {
                tracing::warn!(%status, "demo export refused");
                client = None;
            }
        }
    }
}
