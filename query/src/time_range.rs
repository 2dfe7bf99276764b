//! Time ranges as the API accepts them: RFC 3339 (`2026-11-24T20:00:00Z`), Unix nanoseconds
//! (`1795550400000000000`), or relative to now (`now`, `now-15m`, `now-2h`, `now-1d`, with units
//! `ms`, `s`, `m`, `h`, `d`, `w`).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::DateTime;

/// A half-open interval `[start, end)` in Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("{0:?} is not a time: use RFC 3339, Unix nanoseconds or now-<n><unit>")]
    Unparsable(String),
    #[error("start {start} is not before end {end}")]
    Empty { start: String, end: String },
}

/// The current time in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn unit_nanos(unit: &str) -> Option<i64> {
    Some(match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        "w" => 7 * 86_400_000_000_000,
        _ => return None,
    })
}

/// Parses a duration such as `15m` or `500ms` into nanoseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    number.parse::<i64>().ok()?.checked_mul(unit_nanos(unit)?)
}

/// Parses one point in time, relative forms against `now`.
pub fn parse_time(text: &str, now: i64) -> Result<i64, TimeError> {
    let t = text.trim();
    let bad = || TimeError::Unparsable(text.to_owned());
    if let Some(rest) = t.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, amount) = match rest.split_at(1) {
            ("-", amount) => (-1, amount),
            ("+", amount) => (1, amount),
            _ => return Err(bad()),
        };
        let nanos = parse_duration(amount).ok_or_else(bad)?;
        return now.checked_add(sign * nanos).ok_or_else(bad);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    DateTime::parse_from_rfc3339(t)
        .ok()
        .and_then(|d| d.timestamp_nanos_opt())
        .ok_or_else(bad)
}

impl TimeRange {
    /// Parses optional `start` and `end`; they default to `now-<default_span>` and `now`.
    pub fn parse(
        start: Option<&str>,
        end: Option<&str>,
        default_span_nanos: i64,
    ) -> Result<Self, TimeError> {
        let now = now_nanos();
        let end_ns = match end {
            Some(e) if !e.is_empty() => parse_time(e, now)?,
            _ => now,
        };
        let start_ns = match start {
            Some(s) if !s.is_empty() => parse_time(s, now)?,
            _ => end_ns.saturating_sub(default_span_nanos),
        };
        if start_ns >= end_ns {
            return Err(TimeError::Empty {
                start: start.unwrap_or_default().to_owned(),
                end: end.unwrap_or("now").to_owned(),
            });
        }
        Ok(Self {
            start: start_ns,
            end: end_ns,
        })
    }

    pub fn seconds(&self) -> f64 {
        (self.end - self.start) as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_551_330_000_000_000;

    #[test]
    fn relative_times() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("now-15m", NOW), Ok(NOW - 900_000_000_000));
        assert_eq!(parse_time("now-2h", NOW), Ok(NOW - 7_200_000_000_000));
        assert_eq!(parse_time("now+500ms", NOW), Ok(NOW + 500_000_000));
        assert!(parse_time("now-15x", NOW).is_err());
        assert!(parse_time("now-", NOW).is_err());
    }

    #[test]
    fn absolute_times() {
        assert_eq!(parse_time("2026-11-24T20:15:30Z", NOW), Ok(NOW));
        assert_eq!(parse_time("2026-11-24T21:15:30+01:00", NOW), Ok(NOW));
        assert_eq!(parse_time("1795551330000000000", NOW), Ok(NOW));
        assert!(parse_time("yesterday", NOW).is_err());
        assert!(parse_time("", NOW).is_err());
    }

    #[test]
    fn ranges_default_and_must_not_be_empty() {
        let r = TimeRange::parse(Some("now-1h"), None, 0).unwrap();
        assert!((r.seconds() - 3600.0).abs() < 1.0);
        let r = TimeRange::parse(None, None, 900_000_000_000).unwrap();
        assert!((r.seconds() - 900.0).abs() < 1e-6);
        assert!(TimeRange::parse(Some("now"), Some("now-1h"), 0).is_err());
    }
}
