//! Dashboards as data: JSON files of panels, each backed by read-only SQL over the lake or by one
//! of the view endpoints. The built-in ones (the repository's `dashboards/*.json`) are embedded
//! in the binary; a user's own are read from a directory on every request, so a new file shows up
//! in the UI without a rebuild or a restart. The format is documented in `docs/dashboards.md`.

use std::path::{Path, PathBuf};

use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};

#[derive(RustEmbed)]
#[folder = "../dashboards/"]
#[include = "*.json"]
struct BuiltIn;

/// How a panel draws its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanelKind {
    Table,
    Line,
    Bar,
    Stat,
}

/// One panel: exactly one of `sql` and `endpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    pub title: String,
    pub kind: PanelKind,
    /// A read-only query; `$1` and `$2` are the start and end of the page's time range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// A view endpoint under `/api/v1/`, called with the page's `start` and `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Where the rows are in the endpoint's answer (a top-level key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Columns to show, in order (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// For `line`: the time column (default `time`), the value columns (default: every other
    /// numeric column) and an optional column whose values name separate series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub y: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    #[serde(default)]
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub panels: Vec<Panel>,
    /// `built-in` or the file it was read from.
    #[serde(default)]
    pub source: String,
}

/// A file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadError {
    pub file: String,
    pub error: String,
}

/// Endpoints a panel may use.
const ENDPOINTS: [&str; 4] = ["services", "errors", "dependencies", "latency"];

fn validate(d: &Dashboard) -> Result<(), String> {
    if d.panels.is_empty() {
        return Err("a dashboard needs at least one panel".into());
    }
    for (i, p) in d.panels.iter().enumerate() {
        match (&p.sql, &p.endpoint) {
            (Some(_), None) => {}
            (None, Some(e)) if ENDPOINTS.contains(&e.as_str()) => {}
            (None, Some(e)) => {
                return Err(format!(
                    "panel {i}: endpoint {e:?} is not one of {ENDPOINTS:?}"
                ));
            }
            _ => {
                return Err(format!(
                    "panel {i}: give exactly one of \"sql\" and \"endpoint\""
                ));
            }
        }
    }
    Ok(())
}

fn parse(id: &str, source: &str, text: &str) -> Result<Dashboard, String> {
    let mut d: Dashboard = serde_json::from_str(text).map_err(|e| e.to_string())?;
    validate(&d)?;
    d.id = id.to_owned();
    d.source = source.to_owned();
    Ok(d)
}

/// Where dashboards come from.
#[derive(Debug, Clone, Default)]
pub struct Dashboards {
    /// A directory of the user's own `*.json` dashboards (may not exist).
    pub dir: Option<PathBuf>,
}

/// Largest dashboard file read.
const MAX_FILE: u64 = 1024 * 1024;

impl Dashboards {
    /// Every dashboard, built-in first, and the files that could not be read.
    pub fn load(&self) -> (Vec<Dashboard>, Vec<LoadError>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let mut builtin: Vec<String> = BuiltIn::iter().map(|f| f.into_owned()).collect();
        builtin.sort();
        for name in builtin {
            let Some(file) = BuiltIn::get(&name) else {
                continue;
            };
            let id = name.trim_end_matches(".json");
            match parse(id, "built-in", &String::from_utf8_lossy(&file.data)) {
                Ok(d) => out.push(d),
                Err(error) => errors.push(LoadError {
                    file: name.clone(),
                    error,
                }),
            }
        }
        if let Some(dir) = &self.dir {
            self.load_dir(dir, &mut out, &mut errors);
        }
        (out, errors)
    }

    fn load_dir(&self, dir: &Path, out: &mut Vec<Dashboard>, errors: &mut Vec<LoadError>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let file = path.display().to_string();
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("dashboard");
            let id = format!("user-{stem}");
            let text = match std::fs::metadata(&path) {
                Ok(m) if m.len() > MAX_FILE => Err(format!("larger than {MAX_FILE} bytes")),
                _ => std::fs::read_to_string(&path).map_err(|e| e.to_string()),
            };
            match text.and_then(|t| parse(&id, &file, &t)) {
                Ok(d) => out.push(d),
                Err(error) => {
                    tracing::warn!(file, %error, "dashboard file skipped");
                    errors.push(LoadError { file, error });
                }
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Dashboard> {
        self.load().0.into_iter().find(|d| d.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_dashboards_load() {
        let (dashboards, errors) = Dashboards::default().load();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!dashboards.is_empty());
        assert!(dashboards.iter().all(|d| d.source == "built-in"));
    }

    #[test]
    fn user_files_are_read_and_bad_ones_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.json"),
            r#"{"title": "Mine", "panels": [{"title": "n", "kind": "stat", "sql": "SELECT count(*) FROM spans"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("broken.json"),
            r#"{"title": "x", "panels": []}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("both.json"),
            r#"{"title": "x", "panels": [{"title": "n", "kind": "table", "sql": "SELECT 1", "endpoint": "services"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let boards = Dashboards {
            dir: Some(dir.path().to_owned()),
        };
        let (all, errors) = boards.load();
        let mine = all
            .iter()
            .find(|d| d.id == "user-mine")
            .expect("user dashboard");
        assert_eq!(mine.panels[0].kind, PanelKind::Stat);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.error.contains("at least one panel"))
        );
        assert!(errors.iter().any(|e| e.error.contains("exactly one")));
        assert!(boards.get("user-mine").is_some());
    }
}
