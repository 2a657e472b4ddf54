//! Drills: practice failovers, run by the acting instance on demand or on a
//! schedule. The pure parts: the record every instance reads in the commit region
//! (`<app>#drill`), the steps and outcomes, and when a scheduled drill is due.
//!
//! The steps are fixed: preflight, an optional fence, the failover, a client's
//! verification of the secondary, the hold, the failback (only onto a healthy
//! primary) and the verification of the primary. The daemon runs them
//! (`failover_daemon::drill`); the policy makes sure that a drill's moves end even
//! if nothing runs them any more: a drill's fence and failover carry an expiry
//! ([`crate::model::ConfigItem::expires_at`]), after which the monitors lift the
//! fence and fail back onto a healthy primary.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::overrides;

/// How a drill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// Every step passed and the application is back on the primary.
    Succeeded,
    /// A step failed (named, with the reason); the application was brought back to
    /// `active` when the primary was healthy, else left where it is safe.
    Failed,
    /// Something outside the drill stopped it: a real outage, a human, the loss of
    /// the right to act, a restart.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "SUCCEEDED",
            Outcome::Failed => "FAILED",
            Outcome::Interrupted => "INTERRUPTED",
        }
    }

    /// Every outcome, in the order the metric's label values are exported.
    pub const ALL: [Outcome; 3] = [Outcome::Succeeded, Outcome::Failed, Outcome::Interrupted];
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The steps of a drill, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Preflight,
    Fence,
    Failover,
    VerifySecondary,
    Hold,
    Failback,
    VerifyPrimary,
    Done,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Fence => "fence",
            Step::Failover => "failover",
            Step::VerifySecondary => "verify_secondary",
            Step::Hold => "hold",
            Step::Failback => "failback",
            Step::VerifyPrimary => "verify_primary",
            Step::Done => "done",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check a drill made, passed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub step: Step,
    /// What was checked (`quorum`, `secondary_state_api`, `photo`, ...).
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// RFC 3339.
    pub at: String,
}

/// Longest a drill record's list of checks grows: the record stays small (it is
/// one DynamoDB item, read by every instance).
pub const MAX_CHECKS: usize = 64;

/// The drill record in the commit region: the drill running now or the last one,
/// and when a drill last succeeded. Written with a condition on `seq`, so that one
/// drill at a time runs across the fleet and a late writer never overwrites a newer
/// record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// `d-<start time in ms>-<instance>`.
    pub id: String,
    /// Bumped by every write.
    pub seq: u64,
    /// Started by the schedule (`[drills]`), not by a human.
    pub scheduled: bool,
    /// `admin:<caller>` or `schedule`.
    pub by: String,
    pub reason: String,
    /// The instance and process running it.
    pub instance: String,
    pub process: String,
    /// RFC 3339.
    pub started_at: String,
    /// The hold in the secondary, and the fence before the failover (0: none).
    pub hold_s: u64,
    pub fence_s: u64,
    /// The drill aborts if it is not done by then (RFC 3339).
    pub deadline: String,
    /// The step it is at (or ended at).
    pub step: Step,
    /// None while it runs.
    pub outcome: Option<Outcome>,
    /// Why it failed or was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// The config item versions its moves committed (each has a recovery report).
    #[serde(default)]
    pub versions: Vec<u64>,
    #[serde(default)]
    pub checks: Vec<Check>,
    /// When a drill last succeeded (this one, or carried from the record before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// The runner's last write (RFC 3339): it writes at least every
    /// [`HEARTBEAT`] while the drill runs, so that a record whose runner is gone is
    /// recognised and ended as interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<String>,
}

/// How often a running drill's runner writes its record.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A running drill whose record was not written for this long has no runner any
/// more: the acting instance ends it as interrupted.
pub const STALE: Duration = Duration::from_secs(60);

impl DrillRecord {
    /// Still running (by the record: its runner may be gone).
    pub fn running(&self) -> bool {
        self.outcome.is_none()
    }

    /// Adds a check, keeping at most [`MAX_CHECKS`] (the newest).
    pub fn check(&mut self, step: Step, name: &str, ok: bool, detail: &str, at: SystemTime) {
        if self.checks.len() >= MAX_CHECKS {
            self.checks.remove(0);
        }
        self.checks.push(Check {
            step,
            name: name.to_owned(),
            ok,
            detail: crate::report::cut(detail, 512),
            at: overrides::format(at),
        });
    }

    /// Ends it with `outcome` at `at`; a success becomes the last success.
    pub fn end(&mut self, outcome: Outcome, why: Option<String>, at: SystemTime) {
        self.outcome = Some(outcome);
        self.why = why.map(|w| crate::report::cut(&w, 1024));
        self.ended_at = Some(overrides::format(at));
        if outcome == Outcome::Succeeded {
            self.last_success_at = self.ended_at.clone();
            self.step = Step::Done;
        }
    }

    /// The runner is gone: the record says running, but it was not written for
    /// [`STALE`] (or never had a heartbeat and started that long ago).
    pub fn stale(&self, now: SystemTime) -> bool {
        let last = self
            .heartbeat_at
            .as_deref()
            .or(Some(self.started_at.as_str()))
            .and_then(overrides::parse);
        self.running() && last.is_none_or(|t| now.duration_since(t).unwrap_or_default() >= STALE)
    }

    /// When a drill last succeeded, as a time.
    pub fn last_success(&self) -> Option<SystemTime> {
        self.last_success_at.as_deref().and_then(overrides::parse)
    }
}

/// A UTC time-of-day window, `HH:MM-HH:MM`; it may wrap past midnight
/// (`22:00-02:00`). Equal ends mean the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Minutes after 00:00 UTC.
    pub start: u32,
    pub end: u32,
}

impl Window {
    pub const ALWAYS: Window = Window { start: 0, end: 0 };

    /// `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| format!("{text:?} is not HH:MM-HH:MM (UTC)"))?;
        let minutes = |t: &str| -> Result<u32, String> {
            let (h, m) = t
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("{t:?} is not HH:MM"))?;
            let (h, m) = (
                h.parse::<u32>()
                    .map_err(|_| format!("{t:?} is not HH:MM"))?,
                m.parse::<u32>()
                    .map_err(|_| format!("{t:?} is not HH:MM"))?,
            );
            if h > 23 || m > 59 || t.trim().len() != 5 {
                return Err(format!("{t:?} is not a time of day HH:MM"));
            }
            Ok(h * 60 + m)
        };
        Ok(Window {
            start: minutes(a)?,
            end: minutes(b)?,
        })
    }

    /// Whether `minute` (after 00:00 UTC) is inside.
    pub fn contains(self, minute: u32) -> bool {
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => minute >= self.start && minute < self.end,
            std::cmp::Ordering::Greater => minute >= self.start || minute < self.end,
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// A UTC calendar date, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub u64);

impl Day {
    /// `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a date YYYY-MM-DD");
        if text.len() != 10 {
            return Err(bad());
        }
        let t = humantime::parse_rfc3339(&format!("{text}T00:00:00Z")).map_err(|_| bad())?;
        Ok(Day::of(t))
    }

    pub fn of(t: SystemTime) -> Self {
        Day(secs(t) / 86_400)
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// When scheduled drills run (`[drills]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// A drill is due once the last success is this old.
    pub every: Duration,
    /// Only inside this UTC window.
    pub window: Window,
    /// Never on these UTC dates.
    pub blocked: Vec<Day>,
    /// After a scheduled drill that did not succeed, the next try waits this long.
    pub retry_after: Duration,
}

/// Why a scheduled drill does not start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotDue {
    /// The last success is recent enough; the next is due then.
    Recent {
        due_at: SystemTime,
    },
    /// A drill runs now (by the record).
    Running {
        id: String,
    },
    /// The last try did not succeed; the next waits until then.
    Retry {
        at: SystemTime,
    },
    OutsideWindow,
    BlockedDate,
}

impl std::fmt::Display for NotDue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotDue::Recent { due_at } => write!(f, "not due before {}", overrides::format(*due_at)),
            NotDue::Running { id } => write!(f, "drill {id} is running"),
            NotDue::Retry { at } => write!(
                f,
                "the last scheduled try did not succeed; the next at {}",
                overrides::format(*at)
            ),
            NotDue::OutsideWindow => f.write_str("outside the window"),
            NotDue::BlockedDate => f.write_str("a blocked date"),
        }
    }
}

impl Schedule {
    /// Whether a scheduled drill should start at `now`, given the stored record.
    /// With no drill ever run, one is due at once (inside the window).
    pub fn due(&self, now: SystemTime, last: Option<&DrillRecord>) -> Result<(), NotDue> {
        if let Some(r) = last {
            if r.running() {
                return Err(NotDue::Running { id: r.id.clone() });
            }
            if let Some(ok) = r.last_success() {
                let due_at = ok + self.every;
                if now < due_at {
                    return Err(NotDue::Recent { due_at });
                }
            }
            if r.outcome != Some(Outcome::Succeeded)
                && let Some(ended) = r.ended_at.as_deref().and_then(overrides::parse)
            {
                let at = ended + self.retry_after;
                if now < at {
                    return Err(NotDue::Retry { at });
                }
            }
        }
        if self.blocked.contains(&Day::of(now)) {
            return Err(NotDue::BlockedDate);
        }
        let minute = ((secs(now) % 86_400) / 60) as u32;
        if !self.window.contains(minute) {
            return Err(NotDue::OutsideWindow);
        }
        Ok(())
    }
}

/// A drill's id: unique per start time and instance.
pub fn id(started: SystemTime, instance: &str) -> String {
    let ms = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("d-{ms}-{instance}")
}

/// When the drill `id` started (its id carries it).
pub fn started(id: &str) -> Option<SystemTime> {
    let ms: u64 = id.strip_prefix("d-")?.split('-').next()?.parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    fn record(outcome: Option<Outcome>, ended: Option<&str>, success: Option<&str>) -> DrillRecord {
        DrillRecord {
            id: "d-1-a".into(),
            seq: 3,
            scheduled: true,
            by: "schedule".into(),
            reason: "weekly".into(),
            instance: "a".into(),
            process: "p".into(),
            started_at: "2026-12-01T02:00:00Z".into(),
            hold_s: 600,
            fence_s: 0,
            deadline: "2026-12-01T02:30:00Z".into(),
            step: Step::Hold,
            outcome,
            why: None,
            ended_at: ended.map(Into::into),
            versions: vec![],
            checks: vec![],
            last_success_at: success.map(Into::into),
            heartbeat_at: None,
        }
    }

    fn weekly() -> Schedule {
        Schedule {
            every: 7 * 24 * H,
            window: Window::parse("02:00-04:00").unwrap(),
            blocked: vec![Day::parse("2026-12-24").unwrap()],
            retry_after: H,
        }
    }

    #[test]
    fn a_drills_id_carries_its_start() {
        let t = at("2026-12-04T02:00:00.123Z");
        let id = id(t, "monitor-a");
        assert_eq!(id, "d-1796349600123-monitor-a");
        assert_eq!(started(&id), Some(t));
        assert_eq!(started("x-1-a"), None);
    }

    #[test]
    fn a_running_record_without_a_recent_heartbeat_is_stale() {
        let mut r = record(None, None, None);
        assert!(!r.stale(at("2026-12-01T02:00:59Z")));
        assert!(r.stale(at("2026-12-01T02:01:00Z")));
        r.heartbeat_at = Some("2026-12-01T02:10:00Z".into());
        assert!(!r.stale(at("2026-12-01T02:10:59Z")));
        assert!(r.stale(at("2026-12-01T02:11:00Z")));
        r.end(Outcome::Failed, None, at("2026-12-01T02:11:00Z"));
        assert!(
            !r.stale(at("2027-01-01T00:00:00Z")),
            "an ended drill is never stale"
        );
    }

    #[test]
    fn windows_parse_and_contain_their_minutes_even_across_midnight() {
        let w = Window::parse("02:00-04:00").unwrap();
        assert_eq!((w.start, w.end), (120, 240));
        assert!(!w.contains(119) && w.contains(120) && w.contains(239) && !w.contains(240));
        let night = Window::parse("22:30-01:00").unwrap();
        assert!(night.contains(22 * 60 + 30) && night.contains(0) && night.contains(59));
        assert!(!night.contains(60) && !night.contains(22 * 60 + 29));
        assert!(Window::ALWAYS.contains(0) && Window::ALWAYS.contains(1439));
        assert_eq!(night.to_string(), "22:30-01:00");
        let last = Window::parse("23:59-00:00").unwrap();
        assert_eq!((last.start, last.end), (23 * 60 + 59, 0));
        for bad in [
            "",
            "02:00",
            "2:00-04:00",
            "24:00-01:00",
            "02:60-03:00",
            "a-b",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn outcomes_and_steps_are_named_as_the_record_stores_them() {
        for o in Outcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
            assert_eq!(o.to_string(), o.as_str());
        }
        assert_eq!(Outcome::Interrupted.as_str(), "INTERRUPTED");
        for s in [
            Step::Preflight,
            Step::Fence,
            Step::Failover,
            Step::VerifySecondary,
            Step::Hold,
            Step::Failback,
            Step::VerifyPrimary,
            Step::Done,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(Step::VerifySecondary.as_str(), "verify_secondary");
    }

    #[test]
    fn why_a_scheduled_drill_is_not_due_reads_as_a_sentence() {
        let at = at("2026-12-04T03:05:00Z");
        assert_eq!(
            NotDue::Recent { due_at: at }.to_string(),
            "not due before 2026-12-04T03:05:00.000Z"
        );
        assert_eq!(
            NotDue::Running { id: "d-1-a".into() }.to_string(),
            "drill d-1-a is running"
        );
        assert_eq!(
            NotDue::Retry { at }.to_string(),
            "the last scheduled try did not succeed; the next at 2026-12-04T03:05:00.000Z"
        );
        assert_eq!(NotDue::OutsideWindow.to_string(), "outside the window");
        assert_eq!(NotDue::BlockedDate.to_string(), "a blocked date");
    }

    #[test]
    fn dates_parse_to_utc_days() {
        assert_eq!(Day::parse("1970-01-02").unwrap(), Day(1));
        assert_eq!(
            Day::parse("2026-12-24").unwrap(),
            Day::of(at("2026-12-24T23:59:59Z"))
        );
        assert_ne!(
            Day::parse("2026-12-24").unwrap(),
            Day::of(at("2026-12-25T00:00:00Z"))
        );
        for bad in [
            "2026-13-01",
            "2026-12-1",
            "tomorrow",
            "2026-12-24T00:00:00Z",
        ] {
            assert!(Day::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_scheduled_drill_is_due_in_its_window_once_the_last_success_is_old_enough() {
        let s = weekly();
        // Never drilled: due at once, inside the window only.
        assert_eq!(s.due(at("2026-12-03T02:00:00Z"), None), Ok(()));
        assert_eq!(
            s.due(at("2026-12-03T04:00:00Z"), None),
            Err(NotDue::OutsideWindow)
        );
        assert_eq!(
            s.due(at("2026-12-24T03:00:00Z"), None),
            Err(NotDue::BlockedDate)
        );
        // A success six days ago: not yet; seven: due.
        let ok = record(
            Some(Outcome::Succeeded),
            Some("2026-11-27T02:10:00Z"),
            Some("2026-11-27T02:10:00Z"),
        );
        assert_eq!(
            s.due(at("2026-12-04T02:09:59Z"), Some(&ok)),
            Err(NotDue::Recent {
                due_at: at("2026-12-04T02:10:00Z")
            })
        );
        assert_eq!(s.due(at("2026-12-04T02:10:00Z"), Some(&ok)), Ok(()));
        // One runs: never a second.
        let running = record(None, None, None);
        assert!(matches!(
            s.due(at("2026-12-04T03:00:00Z"), Some(&running)),
            Err(NotDue::Running { .. })
        ));
    }

    #[test]
    fn after_a_try_that_did_not_succeed_the_next_waits_retry_after() {
        let s = weekly();
        let failed = record(
            Some(Outcome::Failed),
            Some("2026-12-04T02:05:00Z"),
            Some("2026-11-01T02:00:00Z"),
        );
        assert_eq!(
            s.due(at("2026-12-04T03:04:59Z"), Some(&failed)),
            Err(NotDue::Retry {
                at: at("2026-12-04T03:05:00Z")
            })
        );
        assert_eq!(s.due(at("2026-12-04T03:05:00Z"), Some(&failed)), Ok(()));
    }

    #[test]
    fn ending_a_record_keeps_the_last_success_and_bounds_the_checks() {
        let mut r = record(None, None, Some("2026-11-01T00:00:00Z"));
        for i in 0..(MAX_CHECKS + 5) {
            r.check(
                Step::Hold,
                &format!("c{i}"),
                true,
                "",
                at("2026-12-01T02:00:00Z"),
            );
        }
        assert_eq!(r.checks.len(), MAX_CHECKS);
        assert_eq!(r.checks[0].name, "c5");
        r.end(
            Outcome::Failed,
            Some("x".into()),
            at("2026-12-01T02:05:00Z"),
        );
        assert_eq!(r.last_success_at.as_deref(), Some("2026-11-01T00:00:00Z"));
        assert_eq!(r.step, Step::Hold, "a failure keeps the step it failed at");
        r.end(Outcome::Succeeded, None, at("2026-12-01T02:06:00Z"));
        assert_eq!(
            r.last_success_at.as_deref(),
            Some("2026-12-01T02:06:00.000Z")
        );
        assert_eq!(r.step, Step::Done);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["outcome"], "SUCCEEDED");
        assert_eq!(serde_json::from_value::<DrillRecord>(json).unwrap(), r);
    }
}
