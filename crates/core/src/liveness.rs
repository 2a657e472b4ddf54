//! Peer liveness and duplicate detection, as a state machine beside the lease's.
//!
//! Every instance publishes a [`PeerView`] each round, with a sequence number that
//! changes on every publish. A reader counts a peer as live only once it has seen
//! the peer's view *change*, for `view_ttl` after the last change on the reader's
//! clock: a view left by a dead process is seen once and never changes, so it is
//! never a vote. A change is dated at the reader's *previous* successful read, the
//! oldest it can be, so that a reader whose reads failed for a while (the table
//! unreachable, the reader stopped) does not take the views it reads again as new.
//!
//! A peer's `down` vote counts while `evidence age + time since the change <=
//! view_ttl`, judged at the moment the decision is made ([`PeerState::vote`]), not
//! when the views were read.
//!
//! A second live process with this instance's id is seen when the view stored under
//! the id is another process's and has changed since the last such sighting; it is
//! reported for `view_ttl` after the last sighting.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::policy::Vote;

/// One instance's published view of the regions (what the coordination store keeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerView {
    /// Bumped on every publish; liveness is judged by it changing.
    pub seq: u64,
    /// The publishing process (two processes with one instance id tell apart by it).
    pub process: String,
    /// Its vote on the primary.
    pub vote: Vote,
    /// How old the evidence behind the vote was when published (None: no evidence).
    pub evidence_age_ms: Option<u64>,
    pub secondary_up: bool,
    /// The instance could act on a decision now: its mode is `auto`, and the
    /// secondary passes its probes where the policy requires it. A lease holder that
    /// cannot act gives the lease to one that can.
    pub fit: bool,
    /// A digest of the instance's `[coordination]` section (empty: not published,
    /// an older version): instances that disagree on the instances, the lease or the
    /// quorum must not decide together.
    pub digest: String,
    /// The instance's probe summary, for humans.
    pub detail: String,
}

/// Another instance as this reader knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerState {
    pub instance: String,
    /// Its view as last read (None: never published, or unreadable).
    pub view: Option<PeerView>,
    /// When its view was last seen to change, dated at the read before (None: seen
    /// once at most, never changed since).
    #[serde(skip)]
    pub changed_at: Option<Instant>,
}

impl PeerState {
    /// Its view changed within `ttl` of `now`.
    pub fn live(&self, now: Instant, ttl: Duration) -> bool {
        self.changed_at
            .is_some_and(|t| now.saturating_duration_since(t) < ttl)
    }

    /// Its vote as counted at `now`: unknown unless live, and a `down` only while the
    /// evidence behind it, aged by the time since the change, is within `ttl`.
    pub fn vote(&self, now: Instant, ttl: Duration) -> Vote {
        let (Some(view), Some(changed)) = (&self.view, self.changed_at) else {
            return Vote::Unknown;
        };
        if !self.live(now, ttl) {
            return Vote::Unknown;
        }
        let since = now.saturating_duration_since(changed);
        let age = view.evidence_age_ms.map(Duration::from_millis);
        match view.vote {
            Vote::Down if !counts_as_down(Vote::Down, age, since, ttl) => Vote::Unknown,
            v => v,
        }
    }
}

/// Whether a vote counts as `down` now, for this instance's own vote (`since_change`
/// zero) and for a peer's alike: it says down, and the evidence behind it, `age` old
/// when the vote was made, aged by the time since the vote was seen, is within `ttl`.
pub fn counts_as_down(
    vote: Vote,
    age: Option<Duration>,
    since_change: Duration,
    ttl: Duration,
) -> bool {
    vote == Vote::Down && age.is_some_and(|a| a + since_change <= ttl)
}

/// What was last seen of another instance's view.
#[derive(Debug, Clone)]
struct Seen {
    view: PeerView,
    changed_at: Option<Instant>,
}

/// The reader's memory of the other instances' views, and of a second process
/// writing under its own id.
#[derive(Debug, Clone)]
pub struct Liveness {
    instance: String,
    process: String,
    view_ttl: Duration,
    seen: HashMap<String, Seen>,
    /// When the last successful read was issued.
    last_read: Option<Instant>,
    /// Another process's last write under this instance id: (process, seq).
    foreign: Option<(String, u64)>,
    /// A second live process with this instance id was seen writing until then.
    duplicate_until: Option<Instant>,
}

/// What one read taught about a duplicate of this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sighting {
    /// Nothing new.
    None,
    /// Another process writes under this instance's id, seen for the first time
    /// since it was last reported (its process value).
    Duplicate(String),
}

impl Liveness {
    /// The memory of instance `instance`, process `process`.
    pub fn new(instance: &str, process: &str, view_ttl: Duration) -> Self {
        Self {
            instance: instance.to_owned(),
            process: process.to_owned(),
            view_ttl,
            seen: HashMap::new(),
            last_read: None,
            foreign: None,
            duplicate_until: None,
        }
    }

    /// Takes in one successful read of the views, issued at `issued` and answered by
    /// `now`.
    pub fn observe(
        &mut self,
        views: &[(String, PeerView)],
        issued: Instant,
        now: Instant,
    ) -> Sighting {
        let previous = self.last_read.replace(issued);
        let mut sighting = Sighting::None;
        for (instance, view) in views {
            if *instance == self.instance {
                sighting = self.watch_for_duplicates(view, now);
                continue;
            }
            match self.seen.get_mut(instance) {
                Some(s) if s.view.seq == view.seq && s.view.process == view.process => {
                    s.view = view.clone();
                }
                Some(s) => {
                    s.view = view.clone();
                    s.changed_at = Some(previous.unwrap_or(issued));
                }
                None => {
                    self.seen.insert(
                        instance.clone(),
                        Seen {
                            view: view.clone(),
                            changed_at: None,
                        },
                    );
                }
            }
        }
        sighting
    }

    fn watch_for_duplicates(&mut self, view: &PeerView, now: Instant) -> Sighting {
        if view.process == self.process {
            return Sighting::None;
        }
        let sighting = (view.process.clone(), view.seq);
        let mut out = Sighting::None;
        if self.foreign.as_ref().is_some_and(|f| *f != sighting) {
            if self.duplicate(now).is_none() {
                out = Sighting::Duplicate(view.process.clone());
            }
            self.duplicate_until = Some(now + self.view_ttl);
        }
        self.foreign = Some(sighting);
        out
    }

    /// Another live process with this instance id, while one is seen (its process).
    pub fn duplicate(&self, now: Instant) -> Option<&str> {
        self.duplicate_until
            .filter(|until| now < *until)
            .and(self.foreign.as_ref().map(|(p, _)| p.as_str()))
    }

    /// Some other instance is live at `now` and could act (publishes `fit`).
    pub fn fit_peer_live(&self, now: Instant) -> bool {
        self.seen.values().any(|s| {
            s.view.fit
                && s.changed_at
                    .is_some_and(|t| now.saturating_duration_since(t) < self.view_ttl)
        })
    }

    /// The live instances at `now` that publish another `[coordination]` digest than
    /// `mine` (an empty digest, from an older version, is not compared).
    pub fn mismatched(&self, mine: &str, now: Instant) -> Vec<String> {
        let mut out: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, s)| {
                !s.view.digest.is_empty()
                    && s.view.digest != mine
                    && s.changed_at
                        .is_some_and(|t| now.saturating_duration_since(t) < self.view_ttl)
            })
            .map(|(i, _)| i.clone())
            .collect();
        out.sort();
        out
    }

    /// Every other configured instance as known now.
    pub fn peers<'a>(&self, configured: impl IntoIterator<Item = &'a String>) -> Vec<PeerState> {
        configured
            .into_iter()
            .filter(|i| **i != self.instance)
            .map(|i| {
                let seen = self.seen.get(i);
                PeerState {
                    instance: i.clone(),
                    view: seen.map(|s| s.view.clone()),
                    changed_at: seen.and_then(|s| s.changed_at),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn view(seq: u64, process: &str, vote: Vote, age_ms: u64) -> PeerView {
        PeerView {
            seq,
            process: process.into(),
            vote,
            evidence_age_ms: Some(age_ms),
            secondary_up: true,
            fit: true,
            digest: "d1".into(),
            detail: String::new(),
        }
    }

    fn configured() -> Vec<String> {
        ["a", "b", "c"].map(String::from).to_vec()
    }

    fn peer(l: &Liveness, name: &str) -> PeerState {
        l.peers(&configured())
            .into_iter()
            .find(|p| p.instance == name)
            .unwrap()
    }

    /// Reads `views` as one round: issued now, answered now.
    fn read(l: &mut Liveness, views: &[(&str, PeerView)]) -> Sighting {
        let views: Vec<_> = views
            .iter()
            .map(|(i, v)| (i.to_string(), v.clone()))
            .collect();
        let now = Instant::now();
        l.observe(&views, now, now)
    }

    #[tokio::test(start_paused = true)]
    async fn a_view_that_never_changes_is_never_live_nor_a_vote() {
        let mut l = Liveness::new("a", "pa", TTL);
        for _ in 0..5 {
            read(&mut l, &[("b", view(7, "pb", Vote::Down, 0))]);
            advance(Duration::from_secs(2)).await;
        }
        let b = peer(&l, "b");
        assert!(!b.live(Instant::now(), TTL));
        assert_eq!(b.vote(Instant::now(), TTL), Vote::Unknown);
        assert_eq!(peer(&l, "c").view, None);
        assert!(
            l.peers(&configured()).iter().all(|p| p.instance != "a"),
            "not itself"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_dated_at_the_previous_read_and_lives_for_the_ttl() {
        let mut l = Liveness::new("a", "pa", TTL);
        read(&mut l, &[("b", view(1, "pb", Vote::Up, 0))]);
        let previous = Instant::now();
        // our reads fail for 8 s; the next one sees a change
        advance(Duration::from_secs(8)).await;
        read(&mut l, &[("b", view(2, "pb", Vote::Down, 0))]);
        let b = peer(&l, "b");
        assert_eq!(b.changed_at, Some(previous), "the oldest it can be");
        assert!(b.live(Instant::now(), TTL));
        advance(Duration::from_secs(2)).await;
        assert!(!b.live(Instant::now(), TTL), "10 s after the previous read");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fit_peer_is_live_only_while_its_last_change_is_within_the_ttl() {
        let mut l = Liveness::new("a", "pa", TTL);
        assert!(!l.fit_peer_live(Instant::now()), "no peer seen");
        read(&mut l, &[("b", view(1, "pb", Vote::Up, 0))]);
        assert!(!l.fit_peer_live(Instant::now()), "never seen to change");
        let unfit = PeerView {
            fit: false,
            ..view(2, "pb", Vote::Up, 0)
        };
        read(&mut l, &[("b", unfit)]);
        assert!(!l.fit_peer_live(Instant::now()), "live, but it cannot act");
        read(&mut l, &[("b", view(3, "pb", Vote::Up, 0))]);
        let changed = Instant::now();
        assert!(l.fit_peer_live(changed));
        assert!(l.fit_peer_live(changed + TTL - Duration::from_millis(1)));
        assert!(
            !l.fit_peer_live(changed + TTL),
            "a whole ttl since its change"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_vote_counts_while_evidence_age_plus_time_since_change_is_within_the_ttl() {
        let mut l = Liveness::new("a", "pa", TTL);
        read(&mut l, &[("b", view(1, "pb", Vote::Down, 0))]);
        read(&mut l, &[("b", view(2, "pb", Vote::Down, 4_000))]);
        let b = peer(&l, "b");
        assert_eq!(b.vote(Instant::now(), TTL), Vote::Down);
        // judged when the decision is made, not when the views were read
        advance(Duration::from_secs(6)).await;
        assert_eq!(b.vote(Instant::now(), TTL), Vote::Down);
        advance(Duration::from_millis(1)).await;
        assert_eq!(b.vote(Instant::now(), TTL), Vote::Unknown);
        assert!(b.live(Instant::now(), TTL), "still live, the vote is stale");
        // an up vote is not aged
        read(&mut l, &[("b", view(3, "pb", Vote::Up, 9_999))]);
        assert_eq!(peer(&l, "b").vote(Instant::now(), TTL), Vote::Up);
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_without_evidence_is_unknown() {
        let mut l = Liveness::new("a", "pa", TTL);
        let mut v = view(1, "pb", Vote::Down, 0);
        read(&mut l, &[("b", v.clone())]);
        v.seq = 2;
        v.evidence_age_ms = None;
        read(&mut l, &[("b", v)]);
        assert_eq!(peer(&l, "b").vote(Instant::now(), TTL), Vote::Unknown);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_peer_is_a_change() {
        let mut l = Liveness::new("a", "pa", TTL);
        read(&mut l, &[("b", view(5, "old", Vote::Up, 0))]);
        read(&mut l, &[("b", view(5, "new", Vote::Up, 0))]);
        assert!(peer(&l, "b").live(Instant::now(), TTL));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_process_with_our_id_is_reported_once_it_writes_twice() {
        let mut l = Liveness::new("a", "pa", TTL);
        // our own view: nothing
        assert_eq!(
            read(&mut l, &[("a", view(1, "pa", Vote::Up, 0))]),
            Sighting::None
        );
        // a dead incarnation's view is seen once: not a duplicate
        assert_eq!(
            read(&mut l, &[("a", view(9, "old", Vote::Up, 0))]),
            Sighting::None
        );
        assert_eq!(
            read(&mut l, &[("a", view(9, "old", Vote::Up, 0))]),
            Sighting::None
        );
        assert_eq!(l.duplicate(Instant::now()), None);
        // it changes: a live second process
        assert_eq!(
            read(&mut l, &[("a", view(10, "old", Vote::Up, 0))]),
            Sighting::Duplicate("old".into())
        );
        assert_eq!(l.duplicate(Instant::now()), Some("old"));
        // reported once while it lasts
        assert_eq!(
            read(&mut l, &[("a", view(11, "old", Vote::Up, 0))]),
            Sighting::None
        );
        advance(TTL).await;
        assert_eq!(l.duplicate(Instant::now()), None, "gone for a whole ttl");
    }

    #[tokio::test(start_paused = true)]
    async fn live_peers_with_another_coordination_section_are_named() {
        let mut l = Liveness::new("a", "pa", TTL);
        let mut other = view(1, "pc", Vote::Up, 0);
        other.digest = "d2".into();
        let mut old = view(1, "pd", Vote::Up, 0);
        old.digest = String::new();
        read(
            &mut l,
            &[
                ("b", view(1, "pb", Vote::Up, 0)),
                ("c", other.clone()),
                ("d", old.clone()),
            ],
        );
        assert!(
            l.mismatched("d1", Instant::now()).is_empty(),
            "not live yet"
        );
        other.seq = 2;
        old.seq = 2;
        read(
            &mut l,
            &[("b", view(2, "pb", Vote::Up, 0)), ("c", other), ("d", old)],
        );
        assert_eq!(l.mismatched("d1", Instant::now()), ["c"]);
        advance(TTL).await;
        assert!(
            l.mismatched("d1", Instant::now()).is_empty(),
            "no longer live"
        );
    }
}
