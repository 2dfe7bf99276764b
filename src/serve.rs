//! `lakescope serve`: opens the lake, replays the log, starts the receivers, the flusher and the
//! HTTP server, and shuts them down in order on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use lakescope_collector::ingest::LogConfig;
use lakescope_collector::lake::compaction::{self, CompactionPolicy};
use lakescope_collector::lake::flusher::{self, FlushPolicy};
use lakescope_collector::lake::retention;
use lakescope_collector::otlp;
use lakescope_collector::{Ingest, Lake, Limits};
use lakescope_query::rules::file::{self as rules_file, Group};
use lakescope_query::rules::{RecordSink, RulesConfig};
use lakescope_query::{QueryEngine, QueryLimits};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The built-in rules, used when no rules directory is given and `dashboards/rules` does not
/// exist.
const DEFAULT_RULES: &str = include_str!("../dashboards/rules/red.yml");

/// Every rule group of the rules directory (or the built-in defaults); a broken file stops the
/// start with its error, as Prometheus does.
fn load_rules(config: &ServeConfig) -> anyhow::Result<Vec<Group>> {
    let dir = config.rules_dir.clone().or_else(|| {
        let default = std::path::PathBuf::from("dashboards/rules");
        default.is_dir().then_some(default)
    });
    let mut groups = Vec::new();
    match dir {
        Some(dir) => {
            for path in rules_file::files_in(&dir)? {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read rule file {}", path.display()))?;
                groups.extend(rules_file::parse(
                    &path.display().to_string(),
                    &text,
                    config.rule_interval,
                )?);
            }
            tracing::info!(dir = %dir.display(), groups = groups.len(), "rules loaded");
        }
        None => {
            groups = rules_file::parse("built-in red.yml", DEFAULT_RULES, config.rule_interval)?;
            tracing::info!(groups = groups.len(), "built-in rules loaded");
        }
    }
    Ok(groups)
}

pub async fn run(config: ServeConfig, demo_rate: Option<f64>) -> anyhow::Result<()> {
    tracing::info!(?config, "starting lakescope {}", env!("CARGO_PKG_VERSION"));
    let lake = Arc::new(Lake::open(&config.data_dir).with_context(|| {
        format!(
            "cannot open the data directory {}",
            config.data_dir.display()
        )
    })?);
    let limits = Limits {
        max_request_bytes: config.max_request_bytes,
        max_attributes: config.max_attributes,
        max_events_or_links: config.max_events_or_links,
        max_repeated_bytes: config.max_repeated_bytes,
        max_request_records: config.max_request_records,
        max_buffer_bytes: config.max_buffer_bytes,
        min_free_disk_bytes: config.min_free_disk,
    };
    let (ingest, log_thread) = Ingest::start(Arc::clone(&lake), limits, LogConfig::default())
        .context("cannot open the write-ahead log")?;
    let engine = QueryEngine::new(
        &lake,
        QueryLimits {
            timeout: config.query_timeout,
            max_rows: config.sql_max_rows,
            max_concurrent: config.max_queries,
            memory_bytes: config.query_memory,
            metadata_cache_bytes: config.query_metadata_cache,
            graph_cache_bytes: config.query_graph_cache,
            rollup_cache_bytes: config.query_rollup_cache,
        },
    )?;

    let (grpc_listener, grpc_addr) = bind(config.otlp_grpc, "OTLP/gRPC").await?;
    let (otlp_http_listener, otlp_http_addr) = bind(config.otlp_http, "OTLP/HTTP").await?;
    let (http_listener, http_addr) = bind(config.http, "the dashboard").await?;
    tracing::info!("OTLP/gRPC listening on {grpc_addr}");
    tracing::info!("OTLP/HTTP listening on {otlp_http_addr}");
    tracing::info!("dashboard and API listening on {http_addr} (open http://{http_addr}/)");

    let stop = CancellationToken::new();
    let flusher = tokio::spawn(flusher::run(
        Arc::clone(&lake),
        ingest.clone(),
        FlushPolicy {
            max_age: config.flush_interval,
            max_bytes: config.flush_bytes,
        },
        stop.child_token(),
    ));

    let graph_warmer = tokio::spawn(lakescope_collector::memtag::tagged(
        lakescope_collector::memtag::Stage::Summaries,
        lakescope_query::views::edges::warm(engine.clone(), stop.child_token()),
    ));
    let rollup_warmer = tokio::spawn(lakescope_collector::memtag::tagged(
        lakescope_collector::memtag::Stage::Summaries,
        lakescope_query::views::rollup::warm(engine.clone(), stop.child_token()),
    ));
    let trace_indexer = tokio::spawn(lakescope_collector::memtag::tagged(
        lakescope_collector::memtag::Stage::TraceIndex,
        lakescope_query::trace_index::warm(engine.clone(), stop.child_token()),
    ));

    let retention = tokio::spawn(retention::run(
        Arc::clone(&lake),
        config.retention(),
        config.retention_interval,
        stop.child_token(),
    ));

    let compaction = tokio::spawn(lakescope_collector::memtag::tagged(
        lakescope_collector::memtag::Stage::Merge,
        compaction::run(
            Arc::clone(&lake),
            CompactionPolicy {
                delay: config.compaction_delay,
                live_min_files: config.compaction_live_files,
                max_input_bytes: config.compaction_max_input_bytes,
                max_input_files: usize::try_from(config.compaction_max_input_files)
                    .unwrap_or(usize::MAX),
                ..CompactionPolicy::default()
            },
            config.compaction_interval,
            stop.child_token(),
        ),
    ));

    let servers = CancellationToken::new();
    let grpc = tonic::transport::Server::builder()
        .add_service(otlp::grpc::OtlpService::<otlp::Traces>::new(ingest.clone()))
        .add_service(otlp::grpc::OtlpService::<otlp::Logs>::new(ingest.clone()))
        .add_service(otlp::grpc::OtlpService::<otlp::Metrics>::new(
            ingest.clone(),
        ))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener),
            servers.clone().cancelled_owned(),
        );
    let otlp_http = axum::serve(otlp_http_listener, otlp::http::router(ingest.clone()))
        .with_graceful_shutdown(servers.clone().cancelled_owned());
    let dashboards = lakescope_query::dashboards::Dashboards {
        dir: Some(
            config
                .dashboards_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("dashboards")),
        ),
    };
    let rules = lakescope_query::rules::Rules::new(load_rules(&config)?);
    let sink: RecordSink = {
        let ingest = ingest.clone();
        Arc::new(move |request| {
            let ingest = ingest.clone();
            Box::pin(async move {
                ingest
                    .export_metrics(request, None)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
    };
    let rule_tasks = rules.start(
        engine.clone(),
        RulesConfig {
            alertmanagers: config.alertmanager_urls.clone(),
            webhooks: config.alert_webhook_urls.clone(),
            external_url: config
                .external_url
                .clone()
                .unwrap_or_else(|| format!("http://{http_addr}")),
            resend_delay: config.alert_resend_delay,
        },
        sink,
        stop.child_token(),
    );
    let app = lakescope_query::api::router(engine, dashboards)
        .merge(lakescope_query::rules::router(rules))
        .merge(crate::ops::router(Arc::clone(&lake), ingest.clone()))
        .merge(lakescope_ui::router());
    let http =
        axum::serve(http_listener, app).with_graceful_shutdown(servers.clone().cancelled_owned());

    let demo = demo_rate.map(|rate| {
        tracing::info!(rate, "demo fleet starting");
        tokio::spawn(lakescope::demo::run(grpc_addr, rate, servers.child_token()))
    });

    let grpc = tokio::spawn(grpc);
    let otlp_http = tokio::spawn(async move { otlp_http.await });
    let http = tokio::spawn(async move { http.await });

    shutdown_signal().await;
    tracing::info!("shutting down: no new requests; flushing");
    servers.cancel();
    // Connections a client keeps open would hold a graceful shutdown forever: after the grace
    // period the servers are dropped. Nothing is lost: every acknowledged request is logged.
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        if let Some(demo) = demo {
            let _ = demo.await;
        }
        grpc.await?.context("OTLP/gRPC server failed")?;
        otlp_http.await?.context("OTLP/HTTP server failed")?;
        http.await?.context("dashboard server failed")?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => tracing::warn!(
            grace = ?config.shutdown_grace,
            "connections still open after the grace period; closing them"
        ),
    }
    stop.cancel();
    // Rule evaluators write recorded series through the ingest path: done before it closes.
    for task in rule_tasks {
        task.await?;
    }
    flusher.await?;
    graph_warmer.await?;
    rollup_warmer.await?;
    trace_indexer.await?;
    retention.await?;
    compaction.await?;
    drop(ingest);
    tokio::task::spawn_blocking(move || log_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("write-ahead log thread panicked"))?;
    tracing::info!("stopped");
    Ok(())
}
