//! The recovery report of one transition, drill or real: a timeline of first
//! moments (the first failed probe, the quorum, the decision, the fence, the commit,
//! the primary copy, each region's state API answering the new state as a client
//! reads it, the DNS change, the first client-path write in the new region), the
//! recovery time (RTO) derived from it, and the replication lag measured at the
//! decision (RPO), saying plainly what was measured.
//!
//! Pure: the daemon hands in wall-clock times it read; the report only orders,
//! bounds and derives. Bounded in size whatever happens (at most [`MAX_EVENTS`]
//! events, texts cut), so it fits beside the audit record in the config table.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::model::{AppState, Role, Trigger};
use crate::overrides::{format, parse};

/// At most this many events: the first of each kind (and region) is what counts.
pub const MAX_EVENTS: usize = 32;
/// Texts (details, notes) are cut to this many bytes.
pub const MAX_TEXT: usize = 200;
/// At most this many notes.
pub const MAX_NOTES: usize = 8;

/// What happened at a moment of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The first failure of the streak that made a primary probe count as down.
    FirstFailedProbe,
    /// Enough evidence (alone: this instance's; together: a quorum of votes).
    QuorumReached,
    /// A drill began (its preflight).
    DrillStarted,
    /// The move was decided and its commit started.
    Decision,
    /// The application was fenced (writes blocked) on the way to this move.
    FenceStarted,
    /// The fence ended with this move.
    FenceEnded,
    /// The transition committed in the commit region.
    Committed,
    /// The primary's copy of the item shows the new version.
    PrimaryCopyUpdated,
    /// A region's state API answered the new state, read as a client reads it.
    StateApiAnswered,
    /// The DNS record points at the new region.
    DnsChanged,
    /// The first write through the new region's store API that read back.
    ClientWrite,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::FirstFailedProbe => "first_failed_probe",
            EventKind::QuorumReached => "quorum_reached",
            EventKind::DrillStarted => "drill_started",
            EventKind::Decision => "decision",
            EventKind::FenceStarted => "fence_started",
            EventKind::FenceEnded => "fence_ended",
            EventKind::Committed => "committed",
            EventKind::PrimaryCopyUpdated => "primary_copy_updated",
            EventKind::StateApiAnswered => "state_api_answered",
            EventKind::DnsChanged => "dns_changed",
            EventKind::ClientWrite => "client_write",
        }
    }
}

/// One moment of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// RFC 3339 with milliseconds.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Role>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Event {
    pub fn time(&self) -> Option<SystemTime> {
        parse(&self.at)
    }
}

/// The replication lag measured at the decision, with one canary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rpo {
    /// The key measured (`<table>: <key>`).
    pub key: String,
    /// When the newest canary written in the primary was written.
    pub newest_written: Option<String>,
    /// When the newest canary the secondary had was written in the primary.
    pub newest_seen: Option<String>,
    /// Written in the primary but not yet in the secondary at the decision:
    /// `newest_written - newest_seen`.
    pub lag_ms: Option<u64>,
    /// Writes after `newest_seen` may be missing in the secondary: from it to the
    /// decision. `None` when the secondary never had a canary.
    pub bound_ms: Option<u64>,
    /// What was measured, in words.
    pub what: String,
}

impl Rpo {
    /// The lag of `key` at `decision`: `written` the newest canary written in the
    /// primary, `seen` the newest the secondary had (its time of writing).
    pub fn at_decision(
        key: &str,
        written: Option<SystemTime>,
        seen: Option<SystemTime>,
        decision: SystemTime,
    ) -> Self {
        let ms = |a: SystemTime, b: SystemTime| millis(a.duration_since(b).unwrap_or_default());
        let lag_ms = written.zip(seen).map(|(w, s)| ms(w, s));
        let bound_ms = seen.map(|s| ms(decision, s));
        let what = match (written, seen) {
            (None, _) => format!(
                "not measured: no canary was written in the primary ({key}) before the decision"
            ),
            (Some(_), None) => {
                format!("the secondary had no canary yet ({key}): the replication lag is unknown")
            }
            (Some(_), Some(_)) => format!(
                "one canary key ({key}), not every item: at the decision the secondary had \
                 the canary written {} ms before the newest one written in the primary; \
                 writes after it (up to {} ms before the decision) may be missing there",
                lag_ms.unwrap_or_default(),
                bound_ms.unwrap_or_default()
            ),
        };
        Self {
            key: cut(key, MAX_TEXT),
            newest_written: written.map(format),
            newest_seen: seen.map(format),
            lag_ms,
            bound_ms,
            what: cut(&what, 2 * MAX_TEXT),
        }
    }
}

/// How long clients went without the service: from the onset to being served by
/// the new region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rto {
    pub ms: u64,
    /// The event it counts from (`first_failed_probe`, `drill_started`, `decision`).
    pub from: EventKind,
    /// The event it counts to (`client_write` or `state_api_answered`).
    pub until: EventKind,
    pub what: String,
}

/// The recovery report of one transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub version: u64,
    pub from: AppState,
    pub to: AppState,
    pub trigger: Trigger,
    pub by: String,
    pub reason: String,
    /// The drill this transition belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<String>,
    /// First moments, oldest first.
    pub events: Vec<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<Rpo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<Rto>,
    /// What was not measured, or could not be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The observation is over (false while the monitor still watches clients).
    pub complete: bool,
}

impl Report {
    pub fn new(version: u64, from: AppState, to: AppState, trigger: Trigger, by: &str) -> Self {
        Self {
            version,
            from,
            to,
            trigger,
            by: cut(by, MAX_TEXT),
            reason: String::new(),
            drill: None,
            events: Vec::new(),
            rpo: None,
            rto: None,
            notes: Vec::new(),
            complete: false,
        }
    }

    /// The region that serves clients after this move.
    pub fn serving(&self) -> Role {
        serving(self.to)
    }

    /// The move changes the region clients are served by.
    pub fn moves_clients(&self) -> bool {
        serving(self.from) != serving(self.to)
    }

    /// Records the first `kind` (per region) at `at`; later ones, and any beyond
    /// [`MAX_EVENTS`], are dropped. True when recorded.
    pub fn add(
        &mut self,
        kind: EventKind,
        at: SystemTime,
        region: Option<Role>,
        detail: &str,
    ) -> bool {
        if self.has(kind, region) || self.events.len() >= MAX_EVENTS {
            return false;
        }
        let event = Event {
            kind,
            at: format(at),
            region,
            detail: cut(detail, MAX_TEXT),
        };
        let pos = self
            .events
            .partition_point(|e| e.time().zip(Some(at)).is_some_and(|(t, a)| t <= a));
        self.events.insert(pos, event);
        self.rto = self.derive_rto();
        true
    }

    /// The timeline has a `kind` event (in `region`, when given).
    pub fn has(&self, kind: EventKind, region: Option<Role>) -> bool {
        self.first(kind, region).is_some()
    }

    /// The first `kind` event (in `region`, when given).
    pub fn first(&self, kind: EventKind, region: Option<Role>) -> Option<&Event> {
        self.events
            .iter()
            .find(|e| e.kind == kind && (region.is_none() || e.region == region))
    }

    /// When the move was decided (the `decision` event's time, RFC 3339 with
    /// milliseconds: these compare as text). A complete report is final for its
    /// transition; a report decided later is another transition that reused the
    /// version after a reset, and replaces it.
    pub fn decided_at(&self) -> Option<&str> {
        self.first(EventKind::Decision, None).map(|e| e.at.as_str())
    }

    /// Whether this report may be stored over `stored`: a draft or the final report
    /// of the same transition never replaces a complete one; a later transition's
    /// does.
    pub fn replaces(&self, stored: &Report) -> bool {
        !stored.complete
            || match (stored.decided_at(), self.decided_at()) {
                (Some(old), Some(new)) => old < new,
                _ => false,
            }
    }

    /// Adds a note (at most [`MAX_NOTES`], each cut), once.
    pub fn note(&mut self, text: &str) {
        let text = cut(text, MAX_TEXT);
        if self.notes.len() < MAX_NOTES && !self.notes.contains(&text) {
            self.notes.push(text);
        }
    }

    /// RTO: from the onset (the first failed probe, or the drill's start, else the
    /// decision) to clients served by the new region: the first client-path write
    /// there when one was measured, else the first state API answering the new
    /// state. None for a move that leaves clients where they were, or before the
    /// end is observed.
    fn derive_rto(&self) -> Option<Rto> {
        if !self.moves_clients() {
            return None;
        }
        let start = [
            EventKind::DrillStarted,
            EventKind::FirstFailedProbe,
            EventKind::Decision,
        ]
        .into_iter()
        .find_map(|k| self.first(k, None))?;
        let write = self.first(EventKind::ClientWrite, Some(self.serving()));
        let state = self.first(EventKind::StateApiAnswered, None);
        let end = write.or(state)?;
        let ms = end
            .time()?
            .duration_since(start.time()?)
            .map(millis)
            .unwrap_or_default();
        let what = match end.kind {
            EventKind::ClientWrite => format!(
                "from {} to the first write through the {} store API that read back",
                start.kind.as_str(),
                self.serving()
            ),
            _ => format!(
                "from {} to the first state API answering {} (no client write measured)",
                start.kind.as_str(),
                self.to
            ),
        };
        Some(Rto {
            ms,
            from: start.kind,
            until: end.kind,
            what,
        })
    }
}

/// The region clients use in `state`.
pub fn serving(state: AppState) -> Role {
    match state {
        AppState::Failover => Role::Secondary,
        AppState::Active | AppState::Fenced => Role::Primary,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> SystemTime {
        parse(s).unwrap()
    }

    fn failover() -> Report {
        Report::new(
            7,
            AppState::Active,
            AppState::Failover,
            Trigger::Auto,
            "monitor-a",
        )
    }

    #[test]
    fn the_timeline_keeps_first_moments_in_order() {
        let mut r = failover();
        assert!(r.add(EventKind::Committed, t("2026-01-01T00:00:10Z"), None, ""));
        assert!(r.add(
            EventKind::FirstFailedProbe,
            t("2026-01-01T00:00:01Z"),
            Some(Role::Primary),
            "api"
        ));
        assert!(!r.add(
            EventKind::Committed,
            t("2026-01-01T00:00:11Z"),
            None,
            "later"
        ));
        assert!(r.add(
            EventKind::StateApiAnswered,
            t("2026-01-01T00:00:12Z"),
            Some(Role::Secondary),
            ""
        ));
        assert!(r.add(
            EventKind::StateApiAnswered,
            t("2026-01-01T00:00:13Z"),
            Some(Role::Primary),
            ""
        ));
        let kinds: Vec<_> = r.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "first_failed_probe",
                "committed",
                "state_api_answered",
                "state_api_answered"
            ]
        );
        assert_eq!(r.events[0].at, "2026-01-01T00:00:01.000Z");
    }

    #[test]
    fn rto_counts_from_the_onset_to_clients_served_by_the_new_region() {
        let mut r = failover();
        r.add(
            EventKind::FirstFailedProbe,
            t("2026-01-01T00:00:00Z"),
            None,
            "",
        );
        r.add(EventKind::Decision, t("2026-01-01T00:00:05Z"), None, "");
        assert_eq!(r.rto, None, "not served yet");
        r.add(
            EventKind::StateApiAnswered,
            t("2026-01-01T00:00:07Z"),
            Some(Role::Secondary),
            "",
        );
        let rto = r.rto.clone().unwrap();
        assert_eq!((rto.ms, rto.until), (7000, EventKind::StateApiAnswered));
        assert!(
            rto.what.contains("no client write measured"),
            "{}",
            rto.what
        );
        // A write in the old region is not being served by the new one.
        r.add(
            EventKind::ClientWrite,
            t("2026-01-01T00:00:08Z"),
            Some(Role::Primary),
            "",
        );
        assert_eq!(
            r.rto.as_ref().map(|r| r.until),
            Some(EventKind::StateApiAnswered)
        );
        r.add(
            EventKind::ClientWrite,
            t("2026-01-01T00:00:09Z"),
            Some(Role::Secondary),
            "",
        );
        let rto = r.rto.clone().unwrap();
        assert_eq!(
            (rto.ms, rto.from, rto.until),
            (9000, EventKind::FirstFailedProbe, EventKind::ClientWrite)
        );
        // A drill counts from its start.
        let mut d = failover();
        d.add(EventKind::DrillStarted, t("2026-01-01T00:00:02Z"), None, "");
        d.add(
            EventKind::StateApiAnswered,
            t("2026-01-01T00:00:03Z"),
            Some(Role::Primary),
            "",
        );
        assert_eq!(
            d.rto.map(|r| (r.ms, r.from)),
            Some((1000, EventKind::DrillStarted))
        );
        // A fence moves no client.
        let mut f = Report::new(
            1,
            AppState::Active,
            AppState::Fenced,
            Trigger::Manual,
            "admin:a",
        );
        f.add(EventKind::Decision, t("2026-01-01T00:00:00Z"), None, "");
        f.add(
            EventKind::StateApiAnswered,
            t("2026-01-01T00:00:01Z"),
            Some(Role::Primary),
            "",
        );
        assert_eq!(f.rto, None);
    }

    #[test]
    fn rpo_says_what_one_canary_key_measured() {
        let key = "config: app#rpo";
        let r = Rpo::at_decision(
            key,
            Some(t("2026-01-01T00:00:20Z")),
            Some(t("2026-01-01T00:00:10Z")),
            t("2026-01-01T00:00:25Z"),
        );
        assert_eq!((r.lag_ms, r.bound_ms), (Some(10_000), Some(15_000)));
        assert!(
            r.what
                .starts_with("one canary key (config: app#rpo), not every item"),
            "{}",
            r.what
        );
        let never = Rpo::at_decision(
            key,
            Some(t("2026-01-01T00:00:20Z")),
            None,
            t("2026-01-01T00:00:25Z"),
        );
        assert_eq!((never.lag_ms, never.bound_ms), (None, None));
        assert!(never.what.contains("unknown"));
        let none = Rpo::at_decision(key, None, None, t("2026-01-01T00:00:25Z"));
        assert!(none.what.starts_with("not measured"));
    }

    #[test]
    fn a_complete_report_is_replaced_only_by_a_later_transition() {
        let mut stored = failover();
        stored.add(EventKind::Decision, t("2026-01-01T00:00:05Z"), None, "");
        let draft = stored.clone();
        assert!(draft.replaces(&stored), "a draft over a draft");
        stored.complete = true;
        assert!(!draft.replaces(&stored), "a draft never replaces the final");
        assert!(!stored.clone().replaces(&stored));
        let mut reused = failover();
        reused.add(EventKind::Decision, t("2026-01-02T00:00:00Z"), None, "");
        assert!(reused.replaces(&stored), "the version reused after a reset");
        let mut undated = failover();
        undated.complete = true;
        assert!(!reused.replaces(&undated) && !undated.replaces(&stored));
    }

    #[test]
    fn a_report_stays_small_whatever_is_thrown_at_it() {
        let mut r = failover();
        r.reason = cut(&"r".repeat(5000), 1024);
        r.by = cut(&"b".repeat(5000), MAX_TEXT);
        for i in 0..10_000u64 {
            let at = t("2026-01-01T00:00:00Z") + Duration::from_millis(i);
            let region = [None, Some(Role::Primary), Some(Role::Secondary)][(i % 3) as usize];
            let kind = [
                EventKind::Decision,
                EventKind::StateApiAnswered,
                EventKind::ClientWrite,
            ][(i % 3) as usize];
            r.add(kind, at, region, &"é".repeat(1000));
            r.note(&format!("note {i} {}", "x".repeat(1000)));
        }
        r.rpo = Some(Rpo::at_decision(
            &"k".repeat(5000),
            None,
            None,
            SystemTime::UNIX_EPOCH,
        ));
        let size = serde_json::to_string(&r).unwrap().len();
        assert!(size < 16 * 1024, "{size} bytes");
        assert!(r.events.len() <= MAX_EVENTS && r.notes.len() <= MAX_NOTES);
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
