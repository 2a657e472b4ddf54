//! Overrides that expire: a human's pause of automatic moves and a human's fence
//! each carry the wall-clock time they end (`until`), stored with them in the commit
//! region so that every instance, restarted or not, honours the same end.
//!
//! Pure: the wall-clock time is handed in (`SystemTime`), never read here, so the
//! tests below run on made-up times. A forgotten pause must never disable failover
//! for weeks: every override has an end, at most `monitor.max_override` (72 h by
//! default) after it was set, and an override without one (written before overrides
//! expired) counts from when it was set.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Which override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Pause,
    Fence,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pause => "pause",
            Kind::Fence => "fence",
        }
    }
}

/// A requested duration longer than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("for = {}: at most {} (monitor.max_override)", humantime::format_duration(*.asked), humantime::format_duration(*.max))]
pub struct TooLong {
    pub asked: Duration,
    pub max: Duration,
}

/// How long an override set now lasts: `asked`, or the maximum when none was asked;
/// zero or more than `max` is refused.
pub fn duration(asked: Option<Duration>, max: Duration) -> Result<Duration, TooLong> {
    match asked {
        None => Ok(max),
        Some(d) if d.is_zero() || d > max => Err(TooLong { asked: d, max }),
        Some(d) => Ok(d),
    }
}

/// RFC 3339, as the tables store times (milliseconds).
pub fn format(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A stored time, if it reads as RFC 3339.
pub fn parse(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

/// The end of an override set at `set_at` with the stored end `until` (RFC 3339):
/// `until` when it reads; otherwise `set_at + max` (an override stored before
/// overrides expired, or an unreadable end, still ends); `None` when neither reads,
/// which a caller treats as ended.
pub fn end(until: Option<&str>, set_at: Option<&str>, max: Duration) -> Option<SystemTime> {
    until
        .and_then(parse)
        .or_else(|| set_at.and_then(parse).map(|t| t + max))
}

/// What is left of an override ending at `end`, at the wall-clock time `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Still on for this long.
    On(Duration),
    /// Ended (at or before `now`).
    Ended,
}

impl Left {
    pub fn at(end: Option<SystemTime>, now: SystemTime) -> Self {
        match end.and_then(|e| e.duration_since(now).ok()) {
            Some(d) if !d.is_zero() => Left::On(d),
            _ => Left::Ended,
        }
    }

    pub fn ended(self) -> bool {
        self == Left::Ended
    }

    /// Seconds left (0 once ended).
    pub fn seconds(self) -> f64 {
        match self {
            Left::On(d) => d.as_secs_f64(),
            Left::Ended => 0.0,
        }
    }
}

impl fmt::Display for Left {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Left::On(d) => write!(
                f,
                "{} left",
                humantime::format_duration(Duration::from_secs(d.as_secs()))
            ),
            Left::Ended => f.write_str("ended"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    fn t(s: &str) -> SystemTime {
        parse(s).unwrap()
    }

    #[test]
    fn an_override_lasts_what_was_asked_or_the_maximum_never_more() {
        assert_eq!(duration(None, 72 * H), Ok(72 * H));
        assert_eq!(duration(Some(2 * H), 72 * H), Ok(2 * H));
        assert_eq!(duration(Some(72 * H), 72 * H), Ok(72 * H));
        let e = duration(Some(73 * H), 72 * H).unwrap_err();
        assert_eq!(
            e.to_string(),
            "for = 3days 1h: at most 3days (monitor.max_override)"
        );
        assert!(duration(Some(Duration::ZERO), 72 * H).is_err());
    }

    #[test]
    fn the_stored_end_wins_and_an_override_without_one_still_ends() {
        let set = "2026-01-01T00:00:00.000Z";
        assert_eq!(
            end(Some("2026-01-01T02:00:00.000Z"), Some(set), 72 * H),
            Some(t("2026-01-01T02:00:00Z"))
        );
        // Stored before overrides expired: it ends max after it was set.
        assert_eq!(
            end(None, Some(set), 72 * H),
            Some(t("2026-01-04T00:00:00Z"))
        );
        assert_eq!(
            end(Some("garbage"), Some(set), 72 * H),
            Some(t("2026-01-04T00:00:00Z"))
        );
        assert_eq!(end(None, None, 72 * H), None);
    }

    #[test]
    fn what_is_left_counts_down_to_ended() {
        let e = Some(t("2026-01-01T02:00:00Z"));
        assert_eq!(Left::at(e, t("2026-01-01T01:00:00Z")), Left::On(H));
        assert_eq!(Left::at(e, t("2026-01-01T02:00:00Z")), Left::Ended);
        assert_eq!(Left::at(e, t("2026-01-05T00:00:00Z")), Left::Ended);
        assert_eq!(Left::at(None, t("2026-01-01T00:00:00Z")), Left::Ended);
        assert_eq!(Left::On(90 * H / 60).to_string(), "1h 30m left");
        assert_eq!(Left::On(H).seconds(), 3600.0);
        assert_eq!(
            format(t("2026-01-01T02:00:00Z")),
            "2026-01-01T02:00:00.000Z"
        );
    }
}
