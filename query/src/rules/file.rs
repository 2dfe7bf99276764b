//! Rule files in Prometheus's format: `groups` of alerting and recording rules, YAML.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum RuleFileError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    groups: Vec<GroupDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    name: String,
    interval: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    query_offset: Option<String>,
    rules: Vec<RuleDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    alert: Option<String>,
    record: Option<String>,
    expr: serde_yaml_ng::Value,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// One rule, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Alerting {
        name: String,
        expr: String,
        for_: Duration,
        keep_firing_for: Duration,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    },
    Recording {
        name: String,
        expr: String,
        labels: BTreeMap<String, String>,
    },
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Alerting { name, .. } | Rule::Recording { name, .. } => name,
        }
    }

    pub fn expr(&self) -> &str {
        match self {
            Rule::Alerting { expr, .. } | Rule::Recording { expr, .. } => expr,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub file: String,
    pub interval: Duration,
    /// Most alerts (or recorded series) one evaluation may produce; 0 = no limit.
    pub limit: u64,
    pub rules: Vec<Rule>,
}

/// A Prometheus duration: `90s`, `5m`, `1h30m`, `1d`, `1w`, `1y`, `500ms`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let ms = crate::promql::duration_ms(text)?;
    u64::try_from(ms).ok().map(Duration::from_millis)
}

fn label_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn metric_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses one rule file; `default_interval` applies to groups without `interval`.
pub fn parse(
    path: &str,
    text: &str,
    default_interval: Duration,
) -> Result<Vec<Group>, RuleFileError> {
    let invalid = |message: String| RuleFileError::Invalid {
        path: path.to_owned(),
        message,
    };
    let doc: FileDoc = serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let mut groups = Vec::new();
    let mut names = std::collections::HashSet::new();
    for g in doc.groups {
        if g.name.is_empty() {
            return Err(invalid("a group has no name".into()));
        }
        if !names.insert(g.name.clone()) {
            return Err(invalid(format!(
                "group {:?}: repeated in the same file",
                g.name
            )));
        }
        if g.query_offset.is_some() {
            return Err(invalid(format!(
                "group {:?}: query_offset is not supported by Lakescope",
                g.name
            )));
        }
        let interval = match &g.interval {
            Some(i) => parse_duration(i)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| invalid(format!("group {:?}: bad interval {i:?}", g.name)))?,
            None => default_interval,
        };
        let mut rules = Vec::new();
        for (i, r) in g.rules.into_iter().enumerate() {
            let at = format!("group {:?}, rule {}", g.name, i + 1);
            let expr = match &r.expr {
                serde_yaml_ng::Value::String(s) => s.clone(),
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                _ => return Err(invalid(format!("{at}: expr must be a string"))),
            };
            crate::promql::parse(&expr).map_err(|e| invalid(format!("{at}: {e}")))?;
            for k in r.labels.keys() {
                if !label_name_ok(k) {
                    return Err(invalid(format!("{at}: invalid label name {k:?}")));
                }
            }
            let duration = |v: &Option<String>, what: &str| -> Result<Duration, RuleFileError> {
                match v {
                    None => Ok(Duration::ZERO),
                    Some(t) => {
                        parse_duration(t).ok_or_else(|| invalid(format!("{at}: bad {what} {t:?}")))
                    }
                }
            };
            let rule = match (r.alert, r.record) {
                (Some(name), None) => {
                    if name.is_empty() {
                        return Err(invalid(format!("{at}: empty alert name")));
                    }
                    Rule::Alerting {
                        name,
                        expr,
                        for_: duration(&r.for_, "for")?,
                        keep_firing_for: duration(&r.keep_firing_for, "keep_firing_for")?,
                        labels: r.labels,
                        annotations: r.annotations,
                    }
                }
                (None, Some(name)) => {
                    if !metric_name_ok(&name) {
                        return Err(invalid(format!(
                            "{at}: invalid recording rule name {name:?}"
                        )));
                    }
                    if r.for_.is_some() || r.keep_firing_for.is_some() || !r.annotations.is_empty()
                    {
                        return Err(invalid(format!(
                            "{at}: for, keep_firing_for and annotations are for alerting rules"
                        )));
                    }
                    Rule::Recording {
                        name,
                        expr,
                        labels: r.labels,
                    }
                }
                _ => {
                    return Err(invalid(format!(
                        "{at}: exactly one of alert and record is required"
                    )));
                }
            };
            rules.push(rule);
        }
        groups.push(Group {
            name: g.name,
            file: path.to_owned(),
            interval,
            limit: g.limit.unwrap_or(0),
            rules,
        });
    }
    Ok(groups)
}

/// The rule files of a directory (`*.yml`, `*.yaml`), in name order.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, RuleFileError> {
    let entries = std::fs::read_dir(dir).map_err(|source| RuleFileError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prometheus_rule_file_parses() {
        let text = r#"
groups:
  - name: red
    interval: 30s
    rules:
      - record: job:errors:rate5m
        expr: sum by (job) (rate(errors_total[5m]))
      - alert: HighErrors
        expr: job:errors:rate5m > 1
        for: 5m
        keep_firing_for: 1m
        labels: { severity: page }
        annotations: { summary: "{{ $labels.job }} fails" }
"#;
        let groups = parse("r.yml", text, Duration::from_secs(60)).unwrap();
        assert_eq!(groups[0].interval, Duration::from_secs(30));
        assert_eq!(groups[0].rules.len(), 2);
        match &groups[0].rules[1] {
            Rule::Alerting {
                for_,
                keep_firing_for,
                ..
            } => {
                assert_eq!(*for_, Duration::from_secs(300));
                assert_eq!(*keep_firing_for, Duration::from_secs(60));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            parse(
                "r.yml",
                "groups: [{name: a, rules: [{alert: x, expr: 'sum('}]}]",
                Duration::from_secs(60)
            )
            .is_err()
        );
        assert!(
            parse(
                "r.yml",
                "groups: [{name: a, rules: [{record: 'bad name', expr: '1'}]}]",
                Duration::from_secs(60)
            )
            .is_err()
        );
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    }
}
