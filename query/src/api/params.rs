//! Query-string parameters shared by the endpoints, parsed once into typed values.

use axum::extract::Query;

use super::ApiError;
use crate::time_range::{TimeRange, parse_duration};
use crate::views::red::choose_step;

/// Default time range of the views: the last 15 minutes.
pub const DEFAULT_RANGE_NANOS: i64 = 15 * 60 * 1_000_000_000;

/// The raw parameters, repeated keys kept.
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn from_query(Query(pairs): Query<Vec<(String, String)>>) -> Self {
        Params(pairs)
    }

    /// The last non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every non-empty value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn range(&self) -> Result<TimeRange, ApiError> {
        Ok(TimeRange::parse(
            self.get("start"),
            self.get("end"),
            DEFAULT_RANGE_NANOS,
        )?)
    }

    /// `step` as a duration (`30s`, `5m`) or seconds, else chosen from the range.
    pub fn step(&self, range: TimeRange) -> Result<i64, ApiError> {
        let requested = self
            .get("step")
            .map(|s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .map(|secs| (secs * 1e9) as i64)
                    .or_else(|| parse_duration(s))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "step {s:?}: use seconds or a duration like 30s"
                        ))
                    })
            })
            .transpose()?;
        choose_step(range, requested).map_err(ApiError::BadRequest)
    }

    /// A duration in milliseconds (`250`, `1.5`) or with a unit (`2s`), as nanoseconds.
    pub fn millis(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|text| {
                let bad = || {
                    ApiError::BadRequest(format!("{key} {text:?} is not a number of milliseconds"))
                };
                match text.parse::<f64>() {
                    Ok(ms) if ms.is_finite() && ms >= 0.0 => Ok((ms * 1e6) as i64),
                    Ok(_) => Err(bad()),
                    Err(_) => parse_duration(text).ok_or_else(bad),
                }
            })
            .transpose()
    }

    pub fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_owned)
    }
}
