//! The part of Prometheus's alert templates that rules use: `{{ $labels.name }}`, `{{ $value }}`
//! (also `.Labels.name`, `.Value`), the functions `humanize`, `humanizePercentage`,
//! `humanizeDuration`, `printf "%.Nf"`, `toUpper`, `toLower`, called directly or in a pipeline
//! (`{{ $value | humanizePercentage }}`). Anything else is kept as written, with a warning.

use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Val {
    Num(f64),
    Text(String),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Num(v) => crate::promql::names::format_float(*v),
            Val::Text(s) => s.clone(),
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            Val::Num(v) => Some(*v),
            Val::Text(s) => s.parse().ok(),
        }
    }
}

fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let units = [
        (1e24, "Y"),
        (1e21, "Z"),
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
    ];
    if v.abs() >= 1.0 {
        for (scale, prefix) in units {
            if v.abs() >= scale {
                return format!("{}{prefix}", trim4(v / scale));
            }
        }
        return trim4(v);
    }
    for (scale, prefix) in [(1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")] {
        if v.abs() >= scale {
            return format!("{}{prefix}", trim4(v / scale));
        }
    }
    trim4(v)
}

/// Four significant digits, as Go's `%.4g`.
fn trim4(v: f64) -> String {
    let digits = if v.abs() >= 1000.0 {
        0
    } else if v.abs() >= 100.0 {
        1
    } else if v.abs() >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() < 1.0 {
        return format!("{}ms", trim4(v * 1000.0));
    }
    let total = v.abs() as u64;
    let (d, h, m, s) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    let sign = if v < 0.0 { "-" } else { "" };
    if d > 0 {
        format!("{sign}{d}d {h}h {m}m {s}s")
    } else if h > 0 {
        format!("{sign}{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{sign}{m}m {s}s")
    } else {
        format!("{sign}{}s", trim4(v.abs()))
    }
}

fn printf(format: &str, v: &Val) -> Option<String> {
    let spec = format.strip_prefix('%')?;
    if spec == "s" || spec == "v" {
        return Some(v.text());
    }
    if spec == "d" {
        return Some(format!("{}", v.num()? as i64));
    }
    let precision: usize = spec
        .strip_prefix('.')
        .and_then(|p| p.strip_suffix('f'))
        .and_then(|p| p.parse().ok())?;
    Some(format!("{:.precision$}", v.num()?))
}

fn apply(function: &str, args: &[String], input: Option<Val>) -> Option<Val> {
    let v = input?;
    Some(Val::Text(match function {
        "humanize" => humanize(v.num()?),
        "humanizePercentage" => format!("{}%", trim4(v.num()? * 100.0)),
        "humanizeDuration" => humanize_duration(v.num()?),
        "toUpper" => v.text().to_uppercase(),
        "toLower" => v.text().to_lowercase(),
        "printf" => printf(args.first()?, &v)?,
        _ => return None,
    }))
}

fn operand(token: &str, labels: &BTreeMap<String, String>, value: f64) -> Option<Val> {
    if token == "$value" || token == ".Value" {
        return Some(Val::Num(value));
    }
    if let Some(name) = token
        .strip_prefix("$labels.")
        .or_else(|| token.strip_prefix(".Labels."))
    {
        return Some(Val::Text(labels.get(name).cloned().unwrap_or_default()));
    }
    if token.starts_with("$externalLabels.") {
        return Some(Val::Text(String::new()));
    }
    if let Some(s) = token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return Some(Val::Text(s.to_owned()));
    }
    None
}

/// Splits a template action into words, keeping quoted strings whole.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn action(inner: &str, labels: &BTreeMap<String, String>, value: f64) -> Option<String> {
    let mut result: Option<Val> = None;
    for (i, stage) in inner.split('|').enumerate() {
        let w = words(stage);
        let (first, rest) = w.split_first()?;
        if let Some(v) = operand(first, labels, value) {
            if i > 0 || !rest.is_empty() {
                return None;
            }
            result = Some(v);
            continue;
        }
        // A function: its last argument is the input when it is the first stage.
        let (args, input) = if i == 0 {
            let (last, args) = rest.split_last()?;
            (args.to_vec(), operand(last, labels, value))
        } else {
            (rest.to_vec(), result.take())
        };
        let args: Vec<String> = args
            .iter()
            .map(|a| a.trim_matches('"').to_owned())
            .collect();
        result = Some(apply(first, &args, input)?);
    }
    result.map(|v| v.text())
}

/// Renders `template` for an alert with `labels` and `value`.
pub fn render(template: &str, labels: &BTreeMap<String, String>, value: f64) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = after[..close]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        match action(inner, labels, value) {
            Some(text) => out.push_str(&text),
            None => {
                tracing::warn!(
                    template,
                    action = inner,
                    "unsupported template action kept as written"
                );
                out.push_str(&rest[open..open + 2 + close + 2]);
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_values_and_the_usual_functions() {
        let labels = BTreeMap::from([("service".to_owned(), "checkout".to_owned())]);
        assert_eq!(
            render(
                "{{ $labels.service }} fails {{ $value | humanizePercentage }}",
                &labels,
                0.1234
            ),
            "checkout fails 12.34%"
        );
        assert_eq!(
            render("p99 {{ printf \"%.2f\" $value }}s", &labels, 1.23456),
            "p99 1.23s"
        );
        assert_eq!(render("{{ humanize $value }}", &labels, 12346.0), "12.35k");
        assert_eq!(render("{{ .Value }}", &labels, 2.5), "2.5");
        assert_eq!(
            render("{{ $value | humanizeDuration }}", &labels, 90.0),
            "1m 30s"
        );
        assert_eq!(
            render("{{ range . }}x{{ end }}", &labels, 1.0),
            "{{ range . }}x{{ end }}"
        );
    }
}
