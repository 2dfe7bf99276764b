//! OTLP metric names and attributes as Prometheus names and labels, following the OpenTelemetry
//! → Prometheus compatibility specification: invalid characters become `_`, the unit is appended
//! as a word (`s` → `_seconds`, `By` → `_bytes`, `1` on a gauge → `_ratio`, `{…}` annotations
//! dropped, `a/b` → `_a_per_b`), monotonic sums get `_total`, histograms and summaries expand to
//! `_bucket` (with `le`), `_sum` and `_count`; `job` is `service.namespace/service.name` (or
//! `service.name`) and `instance` is `service.instance.id`.

/// A metric or label name with every character Prometheus does not allow replaced by `_`,
/// runs of `_` collapsed, and a leading digit prefixed.
pub fn sanitize(name: &str, is_label: bool) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '_' || (!is_label && c == ':');
        let c = if ok { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, if is_label { "key_" } else { "_" });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// The Prometheus label for an OTLP attribute key.
pub fn label_name(key: &str) -> String {
    sanitize(key, true)
}

fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tebibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// The unit as the words of a name suffix (`s` → `seconds`, `By/s` → `bytes_per_second`), empty
/// for no unit or only an annotation.
pub fn unit_suffix(unit: &str) -> String {
    // Annotations in braces carry no unit.
    let mut plain = String::new();
    let mut depth = 0;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            c if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let plain = plain.trim();
    if plain.is_empty() || plain == "1" {
        return String::new();
    }
    let word = |u: &str, per: bool| {
        let mapped = if per { per_unit_word(u) } else { unit_word(u) };
        mapped
            .map(str::to_owned)
            .unwrap_or_else(|| sanitize(u, true))
    };
    match plain.split_once('/') {
        Some((a, b)) if !a.trim().is_empty() => {
            format!("{}_per_{}", word(a.trim(), false), word(b.trim(), true))
        }
        Some((_, b)) => format!("per_{}", word(b.trim(), true)),
        None => word(plain, false),
    }
}

/// What kind of Prometheus metric an OTLP metric becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

impl Family {
    /// The family of an OTLP metric (`metric_type`, `is_monotonic`).
    pub fn of(metric_type: &str, monotonic: bool) -> Option<Self> {
        Some(match metric_type {
            "gauge" => Family::Gauge,
            "sum" if monotonic => Family::Counter,
            "sum" => Family::Gauge,
            "histogram" | "exponential_histogram" => Family::Histogram,
            "summary" => Family::Summary,
            _ => return None,
        })
    }

    /// The type word of `/api/v1/metadata`.
    pub fn type_word(self) -> &'static str {
        match self {
            Family::Gauge => "gauge",
            Family::Counter => "counter",
            Family::Histogram => "histogram",
            Family::Summary => "summary",
        }
    }
}

/// The Prometheus family name of an OTLP metric: sanitized, unit appended unless the name
/// already has it, `_ratio` for unit `1` gauges, `_total` for counters.
pub fn family_name(otlp_name: &str, unit: &str, family: Family) -> String {
    let mut name = sanitize(otlp_name, false);
    let suffix = unit_suffix(unit);
    if !suffix.is_empty() && !name.split('_').any(|w| w == suffix) && !name.ends_with(&suffix) {
        name = format!("{name}_{suffix}");
    }
    if family == Family::Gauge && unit.trim() == "1" && !name.ends_with("_ratio") {
        name.push_str("_ratio");
    }
    if family == Family::Counter {
        name = name.strip_suffix("_total").unwrap_or(&name).to_owned();
        name.push_str("_total");
    }
    name
}

/// The series names a family is exposed under.
pub fn series_names(family_name: &str, family: Family) -> Vec<String> {
    match family {
        Family::Gauge | Family::Counter => vec![family_name.to_owned()],
        Family::Histogram => vec![
            format!("{family_name}_bucket"),
            format!("{family_name}_sum"),
            format!("{family_name}_count"),
        ],
        Family::Summary => vec![
            family_name.to_owned(),
            format!("{family_name}_sum"),
            format!("{family_name}_count"),
        ],
    }
}

/// The `job` label of a resource.
pub fn job(service_namespace: Option<&str>, service_name: &str) -> String {
    match service_namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{service_name}"),
        _ => service_name.to_owned(),
    }
}

/// A float as Prometheus prints sample values and `le`/`quantile` labels.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        let text = format!("{v}");
        // Go prints large and tiny numbers with an exponent; so do we, matching `strconv`'s
        // shortest form closely enough for a label to be typed by hand.
        if text.len() > 21 {
            format!("{v:e}").replace("e", "e+").replace("e+-", "e-")
        } else {
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_compatibility_specification() {
        assert_eq!(
            family_name("http.server.request.duration", "s", Family::Histogram),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            family_name("http.server.requests", "{request}", Family::Counter),
            "http_server_requests_total"
        );
        assert_eq!(
            family_name("system.memory.usage", "By", Family::Gauge),
            "system_memory_usage_bytes"
        );
        assert_eq!(
            family_name("cpu.utilization", "1", Family::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            family_name("net.io", "By/s", Family::Gauge),
            "net_io_bytes_per_second"
        );
        assert_eq!(family_name("jobs_total", "", Family::Counter), "jobs_total");
        assert_eq!(
            family_name("latency_seconds", "s", Family::Histogram),
            "latency_seconds"
        );
        assert_eq!(
            label_name("http.response.status_code"),
            "http_response_status_code"
        );
        assert_eq!(label_name("2xx"), "key_2xx");
        assert_eq!(job(Some("shop"), "cart"), "shop/cart");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
    }
}
