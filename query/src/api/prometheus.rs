//! The Prometheus HTTP API (`/api/v1/query`, `query_range`, `series`, `labels`,
//! `label/{name}/values`, `metadata`, `status/buildinfo`), GET or form POST, in Prometheus's
//! response envelope and error types, so `promtool`, Grafana and alerting tools work unchanged.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json_, json};

use crate::engine::QueryEngine;
use crate::promql::names::format_float;
use crate::promql::value::{Labels, NAME, Series, Value};
use crate::promql::{self, PromError};
use crate::time_range::now_nanos;

/// The parameters of a request: the query string, plus the body of a form POST.
pub struct Form(Vec<(String, String)>);

impl Form {
    fn new(
        method: &Method,
        headers: &HeaderMap,
        Query(query): Query<Vec<(String, String)>>,
        body: &Bytes,
    ) -> Result<Self, PromError> {
        let mut pairs = query;
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if *method == Method::POST && is_form {
            let body: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|e| PromError::BadData(format!("invalid form body: {e}")))?;
            pairs.extend(body);
        }
        Ok(Form(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A time parameter (RFC 3339 or Unix seconds) in milliseconds.
    fn time(&self, key: &str) -> Result<Option<i64>, PromError> {
        self.get(key).map(|v| parse_time(key, v)).transpose()
    }
}

fn parse_time(key: &str, text: &str) -> Result<i64, PromError> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|d| d.timestamp_millis())
        .map_err(|_| {
            PromError::BadData(format!(
                "invalid parameter {key:?}: cannot parse {text:?} to a valid timestamp"
            ))
        })
}

/// A step or duration: Prometheus duration (`15s`, `1m30s`) or seconds.
fn parse_duration(key: &str, text: &str) -> Result<i64, PromError> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    crate::promql::duration_ms(text).ok_or_else(|| {
        PromError::BadData(format!(
            "invalid parameter {key:?}: cannot parse {text:?} to a valid duration"
        ))
    })
}

fn now_ms() -> i64 {
    now_nanos() / 1_000_000
}

fn error_response(e: PromError) -> Response {
    let status = match e {
        PromError::BadData(_) => StatusCode::BAD_REQUEST,
        PromError::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
        PromError::Timeout(_) | PromError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        PromError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::warn!(error = %e, "Prometheus API request failed");
    }
    (
        status,
        Json(json!({"status": "error", "errorType": e.error_type(), "error": e.to_string()})),
    )
        .into_response()
}

fn success(data: Json_) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

fn respond(result: Result<Json_, PromError>) -> Response {
    match result {
        Ok(data) => success(data),
        Err(e) => error_response(e),
    }
}

fn seconds(ms: i64) -> Json_ {
    json!(ms as f64 / 1000.0)
}

fn point(t: i64, v: f64) -> Json_ {
    json!([seconds(t), format_float(v)])
}

fn metric(labels: &Labels) -> Json_ {
    Json_::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Json_::String(v.clone())))
            .collect(),
    )
}

fn value_json(value: Value, t: i64) -> Json_ {
    match value {
        Value::Scalar(v) => json!({"resultType": "scalar", "result": point(t, v)}),
        Value::String(s) => json!({"resultType": "string", "result": [seconds(t), s]}),
        Value::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples
                .iter()
                .map(|s| json!({"metric": metric(&s.labels), "value": point(t, s.value)}))
                .collect::<Vec<_>>(),
        }),
        Value::Matrix(series) => matrix_json(&series),
    }
}

fn matrix_json(series: &[Series]) -> Json_ {
    json!({
        "resultType": "matrix",
        "result": series
            .iter()
            .map(|s| json!({
                "metric": metric(&s.labels),
                "values": s.samples.iter().map(|(t, v)| point(*t, *v)).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>(),
    })
}

macro_rules! form {
    ($method:expr, $headers:expr, $query:expr, $body:expr) => {
        match Form::new(&$method, &$headers, $query, &$body) {
            Ok(f) => f,
            Err(e) => return error_response(e),
        }
    };
}

/// `/api/v1/query`
pub async fn query(
    State(engine): State<QueryEngine>,
    method: Method,
    headers: HeaderMap,
    q: Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let form = form!(method, headers, q, body);
    respond(
        async {
            let text = form.get("query").ok_or_else(|| {
                PromError::BadData("invalid parameter \"query\": query is empty".into())
            })?;
            let t = form.time("time")?.unwrap_or_else(now_ms);
            let value = promql::instant(&engine, text, t).await?;
            Ok(value_json(value, t))
        }
        .await,
    )
}

/// `/api/v1/query_range`
pub async fn query_range(
    State(engine): State<QueryEngine>,
    method: Method,
    headers: HeaderMap,
    q: Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let form = form!(method, headers, q, body);
    respond(
        async {
            let text = form.get("query").ok_or_else(|| {
                PromError::BadData("invalid parameter \"query\": query is empty".into())
            })?;
            let start = form
                .time("start")?
                .ok_or_else(|| PromError::BadData("invalid parameter \"start\": missing".into()))?;
            let end = form
                .time("end")?
                .ok_or_else(|| PromError::BadData("invalid parameter \"end\": missing".into()))?;
            let step = form
                .get("step")
                .map(|s| parse_duration("step", s))
                .transpose()?
                .ok_or_else(|| PromError::BadData("invalid parameter \"step\": missing".into()))?;
            let series = promql::range(&engine, text, start, end, step).await?;
            Ok(matrix_json(&series))
        }
        .await,
    )
}

/// The time range of a metadata request: `start`/`end`, by default the last hour.
fn metadata_range(form: &Form) -> Result<(i64, i64), PromError> {
    let end = form.time("end")?.unwrap_or_else(now_ms);
    let start = form.time("start")?.unwrap_or(end - 3_600_000);
    Ok((start, end))
}

async fn matching_series(engine: &QueryEngine, form: &Form) -> Result<Vec<Labels>, PromError> {
    let (start, end) = metadata_range(form)?;
    let mut matchers = form.all("match[]");
    if matchers.is_empty() {
        matchers.push("{__name__=~\".+\"}".into());
    }
    promql::series(engine, &matchers, start, end).await
}

/// `/api/v1/series`
pub async fn series(
    State(engine): State<QueryEngine>,
    method: Method,
    headers: HeaderMap,
    q: Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let form = form!(method, headers, q, body);
    respond(
        async {
            if form.all("match[]").is_empty() {
                return Err(PromError::BadData("no match[] parameter provided".into()));
            }
            let series = matching_series(&engine, &form).await?;
            Ok(Json_::Array(series.iter().map(metric).collect()))
        }
        .await,
    )
}

/// `/api/v1/labels`
pub async fn labels(
    State(engine): State<QueryEngine>,
    method: Method,
    headers: HeaderMap,
    q: Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let form = form!(method, headers, q, body);
    respond(
        async {
            let series = matching_series(&engine, &form).await?;
            let names: BTreeSet<&String> = series.iter().flat_map(|l| l.keys()).collect();
            Ok(json!(names))
        }
        .await,
    )
}

/// `/api/v1/label/{name}/values`
pub async fn label_values(
    State(engine): State<QueryEngine>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
    q: Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let form = form!(method, headers, q, body);
    respond(
        async {
            let mut values: BTreeSet<String> = BTreeSet::new();
            if name == NAME && form.all("match[]").is_empty() {
                // Names alone need no samples: the catalog and the span-derived families.
                let (start, end) = metadata_range(&form)?;
                let ns = |ms: i64| ms.saturating_mul(1_000_000);
                for e in promql::store::catalog(&engine, ns(start), ns(end)).await? {
                    values.extend(e.series_names());
                }
                values.extend(promql::spanmetrics::series_names());
            } else {
                for l in matching_series(&engine, &form).await? {
                    if let Some(v) = l.get(&name) {
                        values.insert(v.clone());
                    }
                }
            }
            Ok(json!(values))
        }
        .await,
    )
}

/// `/api/v1/metadata`
pub async fn metadata(
    State(engine): State<QueryEngine>,
    method: Method,
    headers: HeaderMap,
    q: Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let form = form!(method, headers, q, body);
    respond(
        async {
            let (start, end) = metadata_range(&form)?;
            let limit = form
                .get("limit")
                .and_then(|l| l.parse::<i64>().ok())
                .filter(|l| *l > 0);
            let only = form.get("metric");
            let mut out = serde_json::Map::new();
            for (name, (kind, help, unit)) in promql::metadata(&engine, start, end).await? {
                if only.is_some_and(|m| m != name) {
                    continue;
                }
                if limit.is_some_and(|l| out.len() as i64 >= l) {
                    break;
                }
                out.insert(name, json!([{"type": kind, "help": help, "unit": unit}]));
            }
            Ok(Json_::Object(out))
        }
        .await,
    )
}

/// `/api/v1/status/buildinfo`: the Prometheus API version Lakescope answers like, and its own.
pub async fn buildinfo() -> Response {
    success(json!({
        "version": "2.42.0",
        "revision": env!("CARGO_PKG_VERSION"),
        "branch": "lakescope",
        "buildUser": "lakescope",
        "buildDate": "",
        "goVersion": "",
        "application": "lakescope",
        "lakescopeVersion": env!("CARGO_PKG_VERSION"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_parse_as_prometheus_accepts_them() {
        assert_eq!(parse_duration("step", "15s").unwrap(), 15_000);
        assert_eq!(parse_duration("step", "1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration("step", "0.5").unwrap(), 500);
        assert!(parse_duration("step", "fast").is_err());
        assert_eq!(
            parse_time("time", "1700000000.5").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(
            parse_time("time", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
    }
}
