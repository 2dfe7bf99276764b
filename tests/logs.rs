//! Logs from the Rust OpenTelemetry SDK over gRPC and HTTP: exact counts by severity and service,
//! text and attribute search, trace correlation, the histogram, and bad input.

mod common;

use std::time::{Duration, SystemTime};

use common::Server;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry_otlp::{LogExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use serde_json::Value;

fn provider(server: &Server, grpc: bool, service: &str) -> SdkLoggerProvider {
    let exporter = if grpc {
        LogExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{}", server.grpc))
            .build()
    } else {
        LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(server.otlp_url("/v1/logs"))
            .build()
    }
    .expect("log exporter");
    SdkLoggerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// 30 INFO, 6 WARN, 4 ERROR records; the errors carry a trace id and an attribute.
fn emit(provider: &SdkLoggerProvider) {
    let logger = provider.logger("e2e");
    let base = SystemTime::now() - Duration::from_secs(60);
    for i in 0..40u64 {
        let mut r = logger.create_log_record();
        r.set_timestamp(base + Duration::from_millis(i * 100));
        let (severity, text) = match i {
            0..30 => (Severity::Info, "INFO"),
            30..36 => (Severity::Warn, "WARN"),
            _ => (Severity::Error, "ERROR"),
        };
        r.set_severity_number(severity);
        r.set_severity_text(text);
        r.set_body(AnyValue::from(format!(
            "order {i} processed by Worker-{}",
            i % 3
        )));
        r.add_attribute("order.id", i as i64);
        if severity == Severity::Error {
            r.add_attribute("failure", "payment");
            r.set_trace_context(
                TraceId::from_hex(TRACE).unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                Some(TraceFlags::SAMPLED),
            );
        }
        logger.emit(r);
    }
}

async fn logs(server: &Server, query: &str) -> Vec<Value> {
    server.get(&format!("/api/v1/logs?{query}")).await["logs"]
        .as_array()
        .unwrap()
        .clone()
}

async fn check(server: &Server, service: &str) {
    let range = format!("start=now-10m&service={service}&limit=1000");
    assert_eq!(logs(server, &range).await.len(), 40);
    assert_eq!(
        logs(server, &format!("{range}&min_severity=warn"))
            .await
            .len(),
        10
    );
    assert_eq!(
        logs(server, &format!("{range}&min_severity=error"))
            .await
            .len(),
        4
    );
    // Case-insensitive text search in the body.
    assert_eq!(logs(server, &format!("{range}&q=WORKER-2")).await.len(), 13);
    assert_eq!(
        logs(server, &format!("{range}&attribute=failure=payment"))
            .await
            .len(),
        4
    );
    // Newest first, with every field.
    let newest = &logs(server, &range).await[0];
    assert_eq!(newest["body"], "order 39 processed by Worker-0");
    assert_eq!(newest["severity"], "ERROR");
    assert_eq!(newest["severity_number"], 17);
    assert_eq!(newest["attributes"]["order.id"], 39);
    assert_eq!(newest["trace_id"], TRACE);
    assert_eq!(newest["span_id"], "00f067aa0ba902b7");
    assert_eq!(newest["service_name"], service);
    // A trace's logs need no time range.
    let of_trace = logs(server, &format!("trace_id={TRACE}&service={service}")).await;
    assert_eq!(of_trace.len(), 4);
    // The histogram counts the same records by severity.
    let h = server.get(&format!("/api/v1/logs/histogram?{range}")).await;
    assert_eq!(h["total"], 40);
    let by: Vec<(String, u64)> = h["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["severity"].as_str().unwrap().to_owned(),
                s["counts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_u64().unwrap())
                    .sum(),
            )
        })
        .collect();
    assert_eq!(
        by,
        vec![("INFO".into(), 30), ("WARN".into(), 6), ("ERROR".into(), 4)]
    );
    // And SQL sees the logs table.
    assert_eq!(
        server
            .count(&format!("SELECT count(*) FROM logs WHERE service_name = '{service}' AND severity_number >= 13"))
            .await,
        10
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_from_the_rust_sdk_over_grpc_and_http_are_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let grpc = provider(&server, true, "billing-grpc");
    emit(&grpc);
    grpc.force_flush().expect("acknowledged");
    check(&server, "billing-grpc").await;

    let server_ref = &server;
    std::thread::scope(|s| {
        s.spawn(|| {
            let http = provider(server_ref, false, "billing-http");
            emit(&http);
            http.force_flush().expect("acknowledged");
            http.shutdown().unwrap();
        });
    });
    check(&server, "billing-http").await;
    grpc.shutdown().unwrap();

    // Survives a restart: flushed to Parquet on SIGTERM and read back.
    server.stop();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.count("SELECT count(*) FROM logs").await, 80);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_log_records_are_rejected_alone_and_bad_parameters_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let body = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"x"}}]},
      "scopeLogs":[{"logRecords":[
        {"timeUnixNano":"1795551330000000000","severityNumber":9,"body":{"stringValue":"fine"}},
        {"severityNumber":42,"body":{"stringValue":"bad severity"}},
        {"traceId":"abcd","body":{"stringValue":"bad trace id"}},
        {"body":{"kvlistValue":{"values":[{"key":"k","value":{"intValue":"1"}}]}}}
      ]}]}]}"#;
    let post = |body: String| {
        reqwest::Client::new()
            .post(server.otlp_url("/v1/logs"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Text that is not hex cannot be decoded: the whole request is refused.
    let res = post(body.replace("abcd", "zz")).await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    // A wrong-length id and an unknown severity reject only their own records.
    let res = post(body.to_owned()).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"]
            .to_string()
            .trim_matches('"'),
        "2"
    );
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("severity_number 42")
    );
    assert_eq!(server.count("SELECT count(*) FROM logs").await, 2);
    // A record without a time is placed at its observed (receive) time, so it is recent.
    let recent = logs(&server, "start=now-1m").await;
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["body"], serde_json::json!({"k": 1}));

    for bad in [
        "/api/v1/logs?min_severity=loud",
        "/api/v1/logs?trace_id=xyz",
        "/api/v1/logs?limit=100000",
        "/api/v1/logs?attribute=novalue",
    ] {
        let (status, body) = server.get_status(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_one_record_loses_nothing_valid() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::AnyValue as Any;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let record = |body: &str| LogRecord {
        time_unix_nano: now,
        severity_number: 9,
        body: Some(Any {
            value: Some(V::StringValue(body.into())),
        }),
        ..LogRecord::default()
    };
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: None,
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![record("all good here"), record("broken ZZZZ text")],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let mut bytes = request.encode_to_vec();
    let at = bytes.windows(4).position(|w| w == b"ZZZZ").unwrap();
    bytes[at] = 0xff;
    let res = reqwest::Client::new()
        .post(server.otlp_url("/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let answer =
        opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::decode(
            res.bytes().await.unwrap(),
        )
        .unwrap();
    let partial = answer.partial_success.expect("a warning");
    assert_eq!(partial.rejected_log_records, 0);
    assert!(
        partial.error_message.contains("invalid UTF-8"),
        "{partial:?}"
    );
    let stored = logs(&server, "start=now-5m").await;
    let bodies: Vec<&str> = stored.iter().map(|l| l["body"].as_str().unwrap()).collect();
    assert!(bodies.contains(&"all good here"), "{bodies:?}");
    assert!(bodies.contains(&"broken \u{fffd}ZZZ text"), "{bodies:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_body_is_stored_whole_and_a_request_over_the_limit_is_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-request-bytes", "4000000"]);
    let big = "x".repeat(3_000_000);
    let body = |text: &str| {
        format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"severityNumber":9,"body":{{"stringValue":"{text}"}}}}]}}]}}]}}"#
        )
    };
    assert_eq!(post_json(&server, body(&big)).await, 200);
    let (status, rows) = server.sql("SELECT length(body) AS n FROM logs").await;
    assert_eq!(status, 200);
    assert_eq!(rows["rows"][0]["n"], 3_000_000);
    let too_big = "y".repeat(5_000_000);
    assert_eq!(post_json(&server, body(&too_big)).await, 413);
    assert_eq!(
        server.count("SELECT count(*) FROM logs").await,
        1,
        "still serving, nothing else stored"
    );
}

/// The first page of a word search looks in the newest sixteenth of the range first: pages that
/// end inside it, cross into the rest, or take everything come out newest first, complete and
/// without repeats, from the buffer and from Parquet alike.
#[tokio::test(flavor = "multi_thread")]
async fn a_word_searched_newest_first_across_the_range_pages_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // 60 records with the word, one every 15 s over the 15 minutes before `now` (4 of them in
    // the newest minute, the first slice of the 16-minute range asked for, whatever the time
    // the test takes), and others without it between.
    let records: Vec<String> = (0..60u64)
        .flat_map(|k| {
            let at = now - k * 15_000_000_000 - 1_000_000_000;
            [
                format!(r#"{{"timeUnixNano":"{at}","severityNumber":9,"body":{{"stringValue":"Needle {k} found"}}}}"#),
                format!(r#"{{"timeUnixNano":"{}","severityNumber":9,"body":{{"stringValue":"hay {k}"}}}}"#, at - 5_000_000_000),
            ]
        })
        .collect();
    let body = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"pager"}}}}]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    );
    let mut server = Server::start(dir.path(), &[]);
    assert_eq!(post_json(&server, body).await, 200);
    for round in ["buffer", "parquet"] {
        // Within the newest slice; across both; everything; a later page (one query).
        needles(&server, now, "limit=3", 0, 3, true).await;
        needles(&server, now, "limit=10", 0, 10, true).await;
        needles(&server, now, "limit=1000", 0, 60, false).await;
        needles(&server, now, "limit=5&offset=5", 5, 5, true).await;
        needles(&server, now, "limit=4", 0, 4, true).await;
        if round == "buffer" {
            // A restart writes the buffered records to Parquet.
            server.stop();
            server = Server::start(dir.path(), &[]);
        }
    }
}

/// Asserts that a search for "needle" over the 16 minutes before `now` with `query` returns records
/// `first..first + n` (newest first) and says whether more follow.
async fn needles(server: &Server, now: u64, query: &str, first: u64, n: u64, more: bool) {
    let page = server
        .get(&format!(
            "/api/v1/logs?q=needle&start={}&end={now}&{query}",
            now - 960_000_000_000
        ))
        .await;
    let bodies: Vec<String> = page["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["body"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = (first..first + n)
        .map(|k| format!("Needle {k} found"))
        .collect();
    assert_eq!(bodies, want, "{query}");
    assert_eq!(page["has_more"], more, "{query}");
}

/// Posts an OTLP/JSON logs export; the HTTP status.
async fn post_json(server: &Server, body: String) -> u16 {
    reqwest::Client::new()
        .post(server.otlp_url("/v1/logs"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
