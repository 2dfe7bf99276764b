//! Alerting and recording rules in Prometheus's rule-file format, evaluated on schedule over the
//! PromQL engine, with alerts delivered to Alertmanager's v2 API and to plain JSON webhooks, and
//! their state served as Prometheus's `/api/v1/rules` and `/api/v1/alerts`.
//!
//! Alert states follow Prometheus: a new result is *pending*, *firing* once it has lasted `for`,
//! and *resolved* (inactive) when it disappears — after `keep_firing_for` if set. Firing alerts
//! are re-sent every [`RulesConfig::resend_delay`], a resolution is sent once, and resolved
//! alerts are kept (and re-sent if their delivery failed) for [`RESOLVED_RETENTION_MS`].
//! Recording rules write their result back through the ingest path as OTLP gauges of the scope
//! [`RECORDING_SCOPE`], whose series carry exactly the result's labels; so does the [`ALERTS`]
//! series of pending and firing alerts.

pub mod file;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

use crate::engine::QueryEngine;
use crate::promql;
use crate::promql::value::{NAME, Value};
use crate::time_range::now_nanos;
pub use file::{Group, Rule};

/// The instrumentation scope of recorded series.
pub const RECORDING_SCOPE: &str = "lakescope.rules";
/// The series of pending and firing alerts, as Prometheus writes it: value 1, the alert's labels
/// plus `alertstate`.
pub const ALERTS: &str = "ALERTS";
/// How long a resolved alert is kept (and its resolution re-sent until delivered).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;

type Labels = BTreeMap<String, String>;

/// Where recorded series go: the ingest path, wired by the binary.
pub type RecordSink = Arc<
    dyn Fn(ExportMetricsServiceRequest) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

#[derive(Clone)]
pub struct RulesConfig {
    /// Alertmanager base URLs (`http://host:9093`); alerts go to `<url>/api/v2/alerts`.
    pub alertmanagers: Vec<String>,
    /// URLs that receive `{"alerts": [...]}` as JSON.
    pub webhooks: Vec<String>,
    /// This server's URL, for the alerts' `generatorURL`.
    pub external_url: String,
    pub resend_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Pending,
    Firing,
    Inactive,
}

impl AlertState {
    fn word(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Inactive => "inactive",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Labels,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent: Option<i64>,
    pub keep_firing_since: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct RuleStatus {
    health: Option<Result<(), String>>,
    last_evaluation: Option<i64>,
    evaluation_seconds: f64,
    alerts: BTreeMap<Labels, Alert>,
    /// The series the last evaluation wrote (recorded series, or `ALERTS`): those missing from
    /// the next one get a staleness marker, as Prometheus writes.
    written: BTreeSet<Labels>,
}

#[derive(Debug, Clone)]
struct GroupStatus {
    group: Group,
    last_evaluation: Option<i64>,
    evaluation_seconds: f64,
    rules: Vec<RuleStatus>,
}

/// The loaded rules and their state, shared by the evaluators and the API.
#[derive(Clone)]
pub struct Rules {
    state: Arc<Mutex<Vec<GroupStatus>>>,
}

fn lock(state: &Mutex<Vec<GroupStatus>>) -> std::sync::MutexGuard<'_, Vec<GroupStatus>> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn rfc3339(ms: i64) -> String {
    crate::views::traces::rfc3339(ms.saturating_mul(1_000_000))
}

fn now_ms() -> i64 {
    now_nanos() / 1_000_000
}

impl Rules {
    pub fn new(groups: Vec<Group>) -> Self {
        let state = groups
            .into_iter()
            .map(|group| GroupStatus {
                rules: vec![RuleStatus::default(); group.rules.len()],
                group,
                last_evaluation: None,
                evaluation_seconds: 0.0,
            })
            .collect();
        Rules {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Starts one evaluator per group; they stop with `stop`.
    pub fn start(
        &self,
        engine: QueryEngine,
        config: RulesConfig,
        sink: RecordSink,
        stop: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let count = lock(&self.state).len();
        (0..count)
            .map(|index| {
                let (rules, engine, config, sink, stop, client) = (
                    self.clone(),
                    engine.clone(),
                    config.clone(),
                    Arc::clone(&sink),
                    stop.clone(),
                    client.clone(),
                );
                tokio::spawn(lakescope_collector::memtag::tagged(
                    lakescope_collector::memtag::Stage::Rules,
                    async move {
                        let interval = lock(&rules.state)[index].group.interval;
                        let mut ticker = tokio::time::interval(interval);
                        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                        loop {
                            tokio::select! {
                                _ = stop.cancelled() => return,
                                _ = ticker.tick() => {}
                            }
                            let t = now_ms();
                            // A shutdown does not wait for a long evaluation to end.
                            tokio::select! {
                                _ = stop.cancelled() => return,
                                _ = rules.evaluate_group(index, &engine, &sink, t) => {}
                            }
                            rules.notify(index, &config, &client, t).await;
                        }
                    },
                ))
            })
            .collect()
    }

    /// Evaluates every rule of group `index` at `t` (ms), in order.
    pub async fn evaluate_group(
        &self,
        index: usize,
        engine: &QueryEngine,
        sink: &RecordSink,
        t: i64,
    ) {
        let group = lock(&self.state)[index].group.clone();
        let started = Instant::now();
        for (r, rule) in group.rules.iter().enumerate() {
            let rule_started = Instant::now();
            let result = promql::instant(engine, rule.expr(), t).await;
            let samples = match result {
                Ok(Value::Vector(v)) => Ok(v),
                Ok(Value::Scalar(v)) if matches!(rule, Rule::Recording { .. }) => {
                    Ok(vec![promql::value::Sample {
                        labels: Labels::new(),
                        t,
                        value: v,
                    }])
                }
                Ok(other) => Err(format!(
                    "rule result is a {}, not an instant vector",
                    other.type_name()
                )),
                Err(e) => Err(e.to_string()),
            };
            let samples = samples.and_then(|s| {
                if group.limit > 0 && s.len() as u64 > group.limit {
                    Err(format!(
                        "exceeded limit of {} with {} series",
                        group.limit,
                        s.len()
                    ))
                } else {
                    Ok(s)
                }
            });
            let outcome = match (rule, samples) {
                (_, Err(e)) => Err(e),
                (Rule::Recording { name, labels, .. }, Ok(samples)) => {
                    let points = recorded_points(samples, labels);
                    let gone = self.swap_written(index, r, &points);
                    record(sink, name, points, gone, t).await
                }
                (Rule::Alerting { .. }, Ok(samples)) => {
                    let points = {
                        let mut state = lock(&self.state);
                        let status = &mut state[index].rules[r];
                        update_alerts(rule, &mut status.alerts, samples, t);
                        alerts_series(&status.alerts)
                    };
                    let gone = self.swap_written(index, r, &points);
                    record(sink, ALERTS, points, gone, t).await
                }
            };
            if let Err(e) = &outcome {
                tracing::warn!(group = %group.name, rule = rule.name(), error = %e, "rule evaluation failed");
            }
            let mut state = lock(&self.state);
            let status = &mut state[index].rules[r];
            status.health = Some(outcome);
            status.last_evaluation = Some(t);
            status.evaluation_seconds = rule_started.elapsed().as_secs_f64();
        }
        let mut state = lock(&self.state);
        state[index].last_evaluation = Some(t);
        state[index].evaluation_seconds = started.elapsed().as_secs_f64();
    }

    /// Remembers what rule `r` of group `index` writes now; returns what it wrote last time
    /// and no longer does.
    fn swap_written(&self, index: usize, r: usize, points: &[(Labels, f64)]) -> Vec<Labels> {
        let now: BTreeSet<Labels> = points.iter().map(|(l, _)| l.clone()).collect();
        let mut state = lock(&self.state);
        let before = std::mem::replace(&mut state[index].rules[r].written, now);
        let now = &state[index].rules[r].written;
        before.into_iter().filter(|l| !now.contains(l)).collect()
    }

    /// Sends what is due of group `index`'s alerts to every Alertmanager and webhook.
    pub async fn notify(
        &self,
        index: usize,
        config: &RulesConfig,
        client: &reqwest::Client,
        t: i64,
    ) {
        let due = {
            let state = lock(&self.state);
            let group = &state[index];
            let resend = config.resend_delay.as_millis() as i64;
            let mut due: Vec<(usize, Labels, Json)> = Vec::new();
            for (r, status) in group.rules.iter().enumerate() {
                let expr = group.group.rules[r].expr();
                for alert in status.alerts.values() {
                    let send = match alert.state {
                        AlertState::Pending => false,
                        AlertState::Inactive => alert
                            .resolved_at
                            .is_some_and(|at| alert.last_sent.is_none_or(|s| at > s)),
                        AlertState::Firing => alert.last_sent.is_none_or(|s| s + resend <= t),
                    };
                    if send {
                        due.push((
                            r,
                            alert.labels.clone(),
                            alert_payload(alert, expr, config, group.group.interval, t),
                        ));
                    }
                }
            }
            due
        };
        if due.is_empty() || (config.alertmanagers.is_empty() && config.webhooks.is_empty()) {
            return;
        }
        let payload: Vec<Json> = due.iter().map(|(_, _, p)| p.clone()).collect();
        let mut delivered = false;
        for am in &config.alertmanagers {
            let url = format!("{}/api/v2/alerts", am.trim_end_matches('/'));
            match client.post(&url).json(&payload).send().await {
                Ok(r) if r.status().is_success() => delivered = true,
                Ok(r) => tracing::warn!(%url, status = %r.status(), "Alertmanager refused alerts"),
                Err(e) => tracing::warn!(%url, error = %e, "cannot send alerts to Alertmanager"),
            }
        }
        for hook in &config.webhooks {
            match client
                .post(hook)
                .json(&json!({ "alerts": payload }))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => delivered = true,
                Ok(r) => {
                    tracing::warn!(url = %hook, status = %r.status(), "webhook refused alerts")
                }
                Err(e) => tracing::warn!(url = %hook, error = %e, "cannot send alerts to webhook"),
            }
        }
        if delivered {
            let mut state = lock(&self.state);
            for (r, labels, _) in due {
                if let Some(a) = state[index].rules[r].alerts.get_mut(&labels) {
                    a.last_sent = Some(t);
                }
            }
        }
    }

    /// Prometheus's `/api/v1/rules` data.
    pub fn rules_json(&self) -> Json {
        let state = lock(&self.state);
        let groups: Vec<Json> = state
            .iter()
            .map(|g| {
                let rules: Vec<Json> = g
                    .group
                    .rules
                    .iter()
                    .zip(&g.rules)
                    .map(|(rule, status)| rule_json(rule, status))
                    .collect();
                json!({
                    "name": g.group.name,
                    "file": g.group.file,
                    "interval": g.group.interval.as_secs_f64(),
                    "limit": g.group.limit,
                    "rules": rules,
                    "evaluationTime": g.evaluation_seconds,
                    "lastEvaluation": g.last_evaluation.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                })
            })
            .collect();
        json!({ "groups": groups })
    }

    /// Prometheus's `/api/v1/alerts` data: pending and firing alerts.
    pub fn alerts_json(&self) -> Json {
        let state = lock(&self.state);
        let alerts: Vec<Json> = state
            .iter()
            .flat_map(|g| g.rules.iter())
            .flat_map(|s| s.alerts.values())
            .filter(|a| a.state != AlertState::Inactive)
            .map(alert_json)
            .collect();
        json!({ "alerts": alerts })
    }
}

fn alert_json(a: &Alert) -> Json {
    let mut j = json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state.word(),
        "activeAt": rfc3339(a.active_at),
        "value": format!("{:e}", a.value),
    });
    if let Some(since) = a.keep_firing_since {
        j["keepFiringSince"] = json!(rfc3339(since));
    }
    j
}

fn rule_json(rule: &Rule, status: &RuleStatus) -> Json {
    let (health, last_error) = match &status.health {
        None => ("unknown", None),
        Some(Ok(())) => ("ok", None),
        Some(Err(e)) => ("err", Some(e.clone())),
    };
    let last = status
        .last_evaluation
        .map(rfc3339)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
    match rule {
        Rule::Alerting {
            name,
            expr,
            for_,
            keep_firing_for,
            labels,
            annotations,
        } => {
            let state = if status
                .alerts
                .values()
                .any(|a| a.state == AlertState::Firing)
            {
                "firing"
            } else if status
                .alerts
                .values()
                .any(|a| a.state == AlertState::Pending)
            {
                "pending"
            } else {
                "inactive"
            };
            let alerts: Vec<Json> = status
                .alerts
                .values()
                .filter(|a| a.state != AlertState::Inactive)
                .map(alert_json)
                .collect();
            let mut j = json!({
                "state": state,
                "name": name,
                "query": expr,
                "duration": for_.as_secs_f64(),
                "keepFiringFor": keep_firing_for.as_secs_f64(),
                "labels": labels,
                "annotations": annotations,
                "alerts": alerts,
                "health": health,
                "evaluationTime": status.evaluation_seconds,
                "lastEvaluation": last,
                "type": "alerting",
            });
            if let Some(e) = last_error {
                j["lastError"] = json!(e);
            }
            j
        }
        Rule::Recording { name, expr, labels } => {
            let mut j = json!({
                "name": name,
                "query": expr,
                "labels": labels,
                "health": health,
                "evaluationTime": status.evaluation_seconds,
                "lastEvaluation": last,
                "type": "recording",
            });
            if let Some(e) = last_error {
                j["lastError"] = json!(e);
            }
            j
        }
    }
}

/// What Alertmanager's v2 API takes for one alert.
fn alert_payload(a: &Alert, expr: &str, config: &RulesConfig, interval: Duration, t: i64) -> Json {
    let ends_at = match (a.state, a.resolved_at) {
        (AlertState::Inactive, Some(at)) => at,
        // Firing: valid for four resend periods unless re-sent, as Prometheus does.
        _ => t + 4 * (config.resend_delay.max(interval).as_millis() as i64),
    };
    let generator = format!(
        "{}/graph?g0.expr={}",
        config.external_url.trim_end_matches('/'),
        urlencode(expr)
    );
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": rfc3339(a.fired_at.unwrap_or(a.active_at)),
        "endsAt": rfc3339(ends_at),
        "generatorURL": generator,
        "status": if a.state == AlertState::Firing { "firing" } else { "resolved" },
    })
}

fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Applies one evaluation's result to an alerting rule's alerts.
fn update_alerts(
    rule: &Rule,
    alerts: &mut BTreeMap<Labels, Alert>,
    samples: Vec<promql::value::Sample>,
    t: i64,
) {
    let Rule::Alerting {
        name,
        for_,
        keep_firing_for,
        labels: rule_labels,
        annotations,
        ..
    } = rule
    else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for s in samples {
        let mut labels = s.labels.clone();
        labels.remove(NAME);
        let template_labels = labels.clone();
        for (k, v) in rule_labels {
            let rendered = template::render(v, &template_labels, s.value);
            if rendered.is_empty() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), rendered);
            }
        }
        labels.insert("alertname".into(), name.clone());
        let rendered: Labels = annotations
            .iter()
            .map(|(k, v)| (k.clone(), template::render(v, &template_labels, s.value)))
            .collect();
        match alerts.get_mut(&labels) {
            Some(a) if a.state != AlertState::Inactive => {
                a.value = s.value;
                a.annotations = rendered;
                a.keep_firing_since = None;
            }
            _ => {
                alerts.insert(
                    labels.clone(),
                    Alert {
                        labels: labels.clone(),
                        annotations: rendered,
                        state: AlertState::Pending,
                        value: s.value,
                        active_at: t,
                        fired_at: None,
                        resolved_at: None,
                        last_sent: None,
                        keep_firing_since: None,
                    },
                );
            }
        }
        seen.insert(labels);
    }
    let hold = for_.as_millis() as i64;
    let keep = keep_firing_for.as_millis() as i64;
    alerts.retain(|labels, a| {
        if seen.contains(labels) {
            if a.state == AlertState::Pending && t - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = Some(t);
            }
            return true;
        }
        match a.state {
            AlertState::Pending => false,
            AlertState::Firing => {
                if keep > 0 {
                    let since = *a.keep_firing_since.get_or_insert(t);
                    if t - since < keep {
                        return true;
                    }
                }
                a.state = AlertState::Inactive;
                a.resolved_at = Some(t);
                true
            }
            AlertState::Inactive => a
                .resolved_at
                .is_some_and(|at| t - at < RESOLVED_RETENTION_MS),
        }
    });
}

/// One `ALERTS` point per pending or firing alert.
fn alerts_series(alerts: &BTreeMap<Labels, Alert>) -> Vec<(Labels, f64)> {
    alerts
        .values()
        .filter(|a| a.state != AlertState::Inactive)
        .map(|a| {
            let mut labels = a.labels.clone();
            labels.insert("alertstate".into(), a.state.word().into());
            (labels, 1.0)
        })
        .collect()
}

/// A recording rule's result with the rule's labels applied: what each series is written as.
fn recorded_points(
    samples: Vec<promql::value::Sample>,
    rule_labels: &Labels,
) -> Vec<(Labels, f64)> {
    samples
        .into_iter()
        .map(|s| {
            let mut labels = s.labels;
            labels.remove(NAME);
            for (k, v) in rule_labels {
                labels.insert(k.clone(), v.clone());
            }
            (labels, s.value)
        })
        .collect()
}

fn text_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

/// Writes `points` as gauge points named `name` at `t`, and a staleness marker (a point flagged
/// "no recorded value") for each series in `gone`.
async fn record(
    sink: &RecordSink,
    name: &str,
    points: Vec<(Labels, f64)>,
    gone: Vec<Labels>,
    t: i64,
) -> Result<(), String> {
    if points.is_empty() && gone.is_empty() {
        return Ok(());
    }
    let time_unix_nano = (t as u64).saturating_mul(1_000_000);
    let point = |labels: &Labels, value: f64, flags: u32| NumberDataPoint {
        attributes: labels.iter().map(|(k, v)| text_kv(k, v)).collect(),
        time_unix_nano,
        value: Some(number_data_point::Value::AsDouble(value)),
        flags,
        ..Default::default()
    };
    const NO_RECORDED_VALUE: u32 = 1;
    let points = points
        .iter()
        .map(|(labels, value)| point(labels, *value, 0))
        .chain(
            gone.iter()
                .map(|labels| point(labels, 0.0, NO_RECORDED_VALUE)),
        )
        .collect();
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text_kv("service.name", "lakescope-rules")],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: RECORDING_SCOPE.into(),
                    ..Default::default()
                }),
                metrics: vec![Metric {
                    name: name.to_owned(),
                    description: "written by a Lakescope rule".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    sink(request).await
}

async fn rules_handler(State(rules): State<Rules>) -> Response {
    axum::Json(json!({"status": "success", "data": rules.rules_json()})).into_response()
}

async fn alerts_handler(State(rules): State<Rules>) -> Response {
    axum::Json(json!({"status": "success", "data": rules.alerts_json()})).into_response()
}

/// `/api/v1/rules` and `/api/v1/alerts`.
pub fn router(rules: Rules) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules_handler))
        .route("/api/v1/alerts", get(alerts_handler))
        .with_state(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::value::Sample;

    fn rule(for_s: u64, keep_s: u64) -> Rule {
        Rule::Alerting {
            name: "High".into(),
            expr: "x > 1".into(),
            for_: Duration::from_secs(for_s),
            keep_firing_for: Duration::from_secs(keep_s),
            labels: Labels::from([("severity".into(), "page".into())]),
            annotations: Labels::from([(
                "summary".into(),
                "{{ $labels.job }} at {{ $value }}".into(),
            )]),
        }
    }

    fn sample(job: &str, v: f64) -> Sample {
        Sample {
            labels: Labels::from([(NAME.into(), "x".into()), ("job".into(), job.into())]),
            t: 0,
            value: v,
        }
    }

    #[test]
    fn alerts_go_pending_firing_resolved() {
        let r = rule(60, 0);
        let mut alerts = BTreeMap::new();
        update_alerts(&r, &mut alerts, vec![sample("a", 2.0)], 0);
        let a = alerts.values().next().unwrap();
        assert_eq!(a.state, AlertState::Pending);
        assert_eq!(a.labels["alertname"], "High");
        assert_eq!(a.labels["severity"], "page");
        assert!(!a.labels.contains_key(NAME));
        assert_eq!(a.annotations["summary"], "a at 2");
        update_alerts(&r, &mut alerts, vec![sample("a", 3.0)], 30_000);
        assert_eq!(alerts.values().next().unwrap().state, AlertState::Pending);
        update_alerts(&r, &mut alerts, vec![sample("a", 3.0)], 60_000);
        assert_eq!(alerts.values().next().unwrap().state, AlertState::Firing);
        update_alerts(&r, &mut alerts, vec![], 90_000);
        let a = alerts.values().next().unwrap();
        assert_eq!(
            (a.state, a.resolved_at),
            (AlertState::Inactive, Some(90_000))
        );
        update_alerts(&r, &mut alerts, vec![], 90_000 + RESOLVED_RETENTION_MS);
        assert!(alerts.is_empty());
        // A pending alert that disappears is dropped, never sent.
        update_alerts(&r, &mut alerts, vec![sample("b", 2.0)], 0);
        update_alerts(&r, &mut alerts, vec![], 10_000);
        assert!(alerts.is_empty());
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let r = rule(0, 120);
        let mut alerts = BTreeMap::new();
        update_alerts(&r, &mut alerts, vec![sample("a", 2.0)], 0);
        assert_eq!(alerts.values().next().unwrap().state, AlertState::Firing);
        update_alerts(&r, &mut alerts, vec![], 60_000);
        assert_eq!(alerts.values().next().unwrap().state, AlertState::Firing);
        update_alerts(&r, &mut alerts, vec![], 180_000);
        assert_eq!(alerts.values().next().unwrap().state, AlertState::Inactive);
    }
}
