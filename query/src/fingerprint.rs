//! What an error is, independent of its variable parts, so that one failure repeated with
//! different ids, numbers or durations is one group.
//!
//! In order of preference, a failing span is fingerprinted by:
//! 1. its exception type and the top three frames of `exception.stacktrace`, line numbers
//!    stripped (messages vary; code locations do not);
//! 2. its exception type and message, with UUIDs, hex, numbers and quoted values replaced by
//!    placeholders;
//! 3. its status message, normalised the same way;
//! 4. its HTTP or gRPC status code;
//! 5. else `ERROR`.
//!
//! Exposed to SQL as `error_fingerprint(exception_type, exception_message, exception_stacktrace,
//! status_message, http_status_code, rpc_grpc_status_code)`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use regex::Regex;

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>"),
        (r"(?i)\b0x[0-9a-f]+\b", "<hex>"),
        (r"(?i)\b[0-9a-f]*[0-9][0-9a-f]*[a-f][0-9a-f]*\b|\b[0-9a-f]*[a-f][0-9a-f]*[0-9][0-9a-f]*\b", "<hex>"),
        (r#""[^"]*"|'[^']*'"#, "<str>"),
        (r"\d+(\.\d+)?", "<n>"),
        (r"\s+", " "),
    ]
    .into_iter()
    .filter_map(|(pattern, with)| Regex::new(pattern).ok().map(|r| (r, with)))
    .collect()
});

static LINE_NUMBERS: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(:\d+)+|,? line \d+|\+0x[0-9a-fA-F]+").ok());

/// Longest text kept of a normalised message.
const MAX_LEN: usize = 200;

/// A message with its variable parts replaced by placeholders.
pub fn normalize(message: &str) -> String {
    let mut out = message.to_owned();
    for (pattern, with) in PATTERNS.iter() {
        out = pattern.replace_all(&out, *with).into_owned();
    }
    let out = out.trim();
    match out.char_indices().nth(MAX_LEN) {
        Some((cut, _)) => out[..cut].to_owned(),
        None => out.to_owned(),
    }
}

/// The top frames of a stack trace, without line numbers, skipping the header line that repeats
/// the exception's type or message.
fn top_frames(stacktrace: &str, exception_type: &str, message: &str) -> Vec<String> {
    stacktrace
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            !(l.starts_with("Traceback")
                || (!exception_type.is_empty() && l.starts_with(exception_type))
                || (!message.is_empty() && l.contains(message)))
        })
        .take(3)
        .map(|l| match LINE_NUMBERS.as_ref() {
            Some(re) => re.replace_all(l, "").into_owned(),
            None => l.to_owned(),
        })
        .collect()
}

/// What went wrong, as the fields of a failing span say it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Failure<'a> {
    pub exception_type: Option<&'a str>,
    pub exception_message: Option<&'a str>,
    pub stacktrace: Option<&'a str>,
    pub status_message: Option<&'a str>,
    pub http_status_code: Option<i64>,
    pub rpc_grpc_status_code: Option<i64>,
}

/// The fingerprint of a failure (see the module docs).
pub fn fingerprint(f: &Failure<'_>) -> String {
    let ty = f.exception_type.unwrap_or("").trim();
    let message = f.exception_message.unwrap_or("").trim();
    if let Some(trace) = f.stacktrace.filter(|s| !s.trim().is_empty()) {
        let frames = top_frames(trace, ty, message);
        if !frames.is_empty() {
            let ty = if ty.is_empty() { "exception" } else { ty };
            return format!("{ty} | {}", frames.join(" | "));
        }
    }
    if !ty.is_empty() || !message.is_empty() {
        return match (ty.is_empty(), message.is_empty()) {
            (false, false) => format!("{ty}: {}", normalize(message)),
            (false, true) => ty.to_owned(),
            _ => normalize(message),
        };
    }
    if let Some(status) = f.status_message.filter(|s| !s.trim().is_empty()) {
        return normalize(status);
    }
    if let Some(code) = f.http_status_code.filter(|c| *c >= 400) {
        return format!("HTTP {code}");
    }
    if let Some(code) = f.rpc_grpc_status_code.filter(|c| *c != 0) {
        return format!("gRPC status {code}");
    }
    "ERROR".to_owned()
}

/// A short stable id of a group: FNV-1a of the service and the fingerprint, as 16 hex digits.
pub fn group_id(service: &str, fingerprint: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in service.bytes().chain([0]).chain(fingerprint.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn opt_text(a: &datafusion::arrow::array::StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

fn bad_args() -> DataFusionError {
    DataFusionError::Execution(
        "error_fingerprint(exception_type, exception_message, exception_stacktrace, status_message, http_status_code, rpc_grpc_status_code)".into(),
    )
}

/// `error_fingerprint(...)` for SQL.
pub fn udf() -> ScalarUDF {
    use DataType::{Int64, Utf8};
    create_udf(
        "error_fingerprint",
        vec![Utf8, Utf8, Utf8, Utf8, Int64, Int64],
        Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays: Vec<ArrayRef> = ColumnarValue::values_to_arrays(args)?;
            let text = |i: usize| {
                arrays
                    .get(i)
                    .and_then(|a| a.as_string_opt::<i32>())
                    .ok_or_else(bad_args)
            };
            let int = |i: usize| {
                arrays
                    .get(i)
                    .and_then(|a| a.as_primitive_opt::<Int64Type>())
                    .ok_or_else(bad_args)
            };
            let (ty, msg, trace, status) = (text(0)?, text(1)?, text(2)?, text(3)?);
            let (http, rpc) = (int(4)?, int(5)?);
            let mut out = StringBuilder::with_capacity(ty.len(), ty.len() * 32);
            for i in 0..ty.len() {
                out.append_value(fingerprint(&Failure {
                    exception_type: opt_text(ty, i),
                    exception_message: opt_text(msg, i),
                    stacktrace: opt_text(trace, i),
                    status_message: opt_text(status, i),
                    http_status_code: (!http.is_null(i)).then(|| http.value(i)),
                    rpc_grpc_status_code: (!rpc.is_null(i)).then(|| rpc.value(i)),
                }));
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_parts_of_messages_are_stripped() {
        let a = normalize("card ending 4242 declined for order 7f9c2a1be0d94c1e after 1.5s");
        let b = normalize("card ending 1881 declined for order 00aa11bb22cc33dd after 12s");
        assert_eq!(a, b);
        assert_eq!(a, "card ending <n> declined for order <hex> after <n>s");
        assert_eq!(
            normalize("user 3f2b8c1e-9a4d-4f5e-8c7b-1a2b3c4d5e6f not found at 0xdeadBEEF"),
            "user <uuid> not found at <hex>"
        );
        assert_eq!(normalize("key 'cart:17' missing"), "key <str> missing");
        // Words that merely contain hex letters stay.
        assert_eq!(normalize("deadline exceeded"), "deadline exceeded");
    }

    #[test]
    fn stack_traces_group_by_type_and_top_frames_without_line_numbers() {
        let java = |line: u32, msg: &str| {
            format!(
                "java.lang.IllegalStateException: {msg}\n\tat shop.Cart.add(Cart.java:{line})\n\tat shop.Api.post(Api.java:88)\n\tat shop.Server.handle(Server.java:12)\n\tat shop.Main.run(Main.java:3)"
            )
        };
        let f = |trace: &str, msg: &'static str| Failure {
            exception_type: Some("java.lang.IllegalStateException"),
            exception_message: Some(msg),
            stacktrace: Some(Box::leak(trace.to_owned().into_boxed_str())),
            ..Failure::default()
        };
        let a = fingerprint(&f(&java(41, "item 12 gone"), "item 12 gone"));
        let b = fingerprint(&f(
            &java(41, "totally different text 9"),
            "totally different text 9",
        ));
        assert_eq!(a, b);
        assert_eq!(
            a,
            "java.lang.IllegalStateException | at shop.Cart.add(Cart.java) | at shop.Api.post(Api.java) | at shop.Server.handle(Server.java)"
        );
        let python = "Traceback (most recent call last):\n  File \"app.py\", line 10, in handler\n    charge()\nValueError: bad amount";
        let p = fingerprint(&Failure {
            exception_type: Some("ValueError"),
            exception_message: Some("bad amount"),
            stacktrace: Some(python),
            ..Failure::default()
        });
        assert_eq!(p, "ValueError | File \"app.py\", in handler | charge()");
    }

    #[test]
    fn fallbacks_in_order() {
        let status = Failure {
            status_message: Some("timeout after 300ms"),
            http_status_code: Some(504),
            ..Failure::default()
        };
        assert_eq!(fingerprint(&status), "timeout after <n>ms");
        let http = Failure {
            http_status_code: Some(503),
            ..Failure::default()
        };
        assert_eq!(fingerprint(&http), "HTTP 503");
        let grpc = Failure {
            rpc_grpc_status_code: Some(14),
            ..Failure::default()
        };
        assert_eq!(fingerprint(&grpc), "gRPC status 14");
        assert_eq!(fingerprint(&Failure::default()), "ERROR");
        let ty_only = Failure {
            exception_type: Some("KeyError"),
            ..Failure::default()
        };
        assert_eq!(fingerprint(&ty_only), "KeyError");
    }

    #[test]
    fn group_ids_are_stable_and_distinct() {
        assert_eq!(group_id("a", "x"), group_id("a", "x"));
        assert_ne!(group_id("a", "x"), group_id("b", "x"));
        assert_eq!(group_id("a", "x").len(), 16);
    }
}
