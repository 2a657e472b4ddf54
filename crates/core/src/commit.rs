//! The commit lifecycle: one transition committed at a time, as one state machine.
//!
//! ```text
//!            start(key, origin)                 finish(key) -> origin
//!   idle ─────────────────────────▶ in flight ─────────────────────────▶ idle
//!    ▲                                  │ committed: retry, backoff and needs-human cleared
//!    │                                  │ unknown:   the prepared write kept for a retry
//!    │                                  │            with its token, backoff
//!    │                                  │ refused:   nothing written, backoff
//!    │                                  └ needs a human: automatic moves stop
//!    └── a human's move waits in the queue while one is in flight (at most `max_wait`)
//! ```
//!
//! The backoff belongs to a move ([`MoveKey`]): a different move (the item changed,
//! the policy wants another state) starts at once, with the shortest delay. A
//! prepared write whose outcome was unknown is retried only as itself (same client
//! request token), and taken in as committed once the item shows it. An automatic
//! move is never started while one is in flight, before its backoff ends, or while
//! the item is the one a human must settle. [`Commits::finish`] for a commit that is
//! not in flight is an error, never a guess.
//!
//! Generic over what it holds (`P` the prepared write, `R` where a human's answer
//! goes, `Q` a human's request waiting in the queue), so that it is pure: the daemon
//! owns the I/O, the tests below drive it with paused time.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::{AppState, ConfigItem};

/// What a move is about: from which state to which, from which version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MoveKey {
    pub from: AppState,
    pub to: AppState,
    /// The version the item must still have for the write to succeed.
    pub version: u64,
}

/// A write prepared once and sent as is by every attempt.
pub trait PreparedMove {
    fn key(&self) -> MoveKey;
    /// The item shows this very write (its version, state and writer).
    fn wrote(&self, item: &ConfigItem) -> bool;
}

/// Who asked for the commit in flight.
#[derive(Debug)]
pub enum Origin<R> {
    /// The policy.
    Auto,
    /// A human, whose answer goes to `R`.
    Manual(R),
}

/// A commit was started while another was in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a commit is already in flight")]
pub struct Busy;

/// An outcome arrived for a commit that is not the one in flight. Only a bug makes
/// it; the caller logs it loudly instead of answering anyone a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an outcome for {key:?}, but the commit in flight is {in_flight:?}")]
pub struct NotInFlight {
    pub key: MoveKey,
    pub in_flight: Option<MoveKey>,
}

/// Why automatic moves stopped, and the item (state, version) it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsHuman {
    pub reason: String,
    pub item: (AppState, u64),
}

/// The backoff of one move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    key: MoveKey,
    until: Instant,
}

/// A human's request waiting for the commit in flight.
#[derive(Debug)]
struct Queued<Q> {
    request: Q,
    since: Instant,
}

/// The whole lifecycle of commits: see the module documentation.
#[derive(Debug)]
pub struct Commits<P, R, Q> {
    min_delay: Duration,
    max_delay: Duration,
    in_flight: Option<(MoveKey, Origin<R>)>,
    /// A transition whose last attempt ended with an unknown outcome.
    pending: Option<P>,
    backoff: Option<Backoff>,
    /// The delay the next backoff of the same move waits.
    next_delay: Duration,
    needs_human: Option<NeedsHuman>,
    queue: VecDeque<Queued<Q>>,
}

impl<P: PreparedMove, R, Q> Commits<P, R, Q> {
    /// Nothing in flight; backoffs double from `min_delay` up to `max_delay`.
    pub fn new(min_delay: Duration, max_delay: Duration) -> Self {
        Self {
            min_delay,
            max_delay,
            in_flight: None,
            pending: None,
            backoff: None,
            next_delay: min_delay,
            needs_human: None,
            queue: VecDeque::new(),
        }
    }

    /// A commit is running.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Why automatic moves stopped, while they are stopped.
    pub fn needs_human(&self) -> Option<&NeedsHuman> {
        self.needs_human.as_ref()
    }

    /// The write whose outcome is unknown, if any.
    pub fn pending(&self) -> Option<&P> {
        self.pending.as_ref()
    }

    /// Whether the policy's move `key` may be started now: nothing in flight, its
    /// backoff over (another move's backoff does not hold it), and no item waiting for
    /// a human.
    pub fn may_start_auto(&self, key: MoveKey, now: Instant) -> bool {
        self.in_flight.is_none()
            && self.needs_human.is_none()
            && self.backoff.is_none_or(|b| b.key != key || now >= b.until)
    }

    /// The pending write, taken out if `same` says it is the move about to start
    /// (then it is sent again with its token); dropped otherwise.
    pub fn take_retry(&mut self, same: impl FnOnce(&P) -> bool) -> Option<P> {
        self.pending.take().filter(|p| same(p))
    }

    /// Marks `key` in flight for `origin`.
    pub fn start(&mut self, key: MoveKey, origin: Origin<R>) -> Result<(), Busy> {
        if self.in_flight.is_some() {
            return Err(Busy);
        }
        if self.backoff.is_some_and(|b| b.key != key) {
            self.backoff = None;
            self.next_delay = self.min_delay;
        }
        self.in_flight = Some((key, origin));
        Ok(())
    }

    /// The commit of `key` ended: who asked for it. An error when `key` is not in
    /// flight (the caller's bug); the state is left as it was.
    pub fn finish(&mut self, key: MoveKey) -> Result<Origin<R>, NotInFlight> {
        match self.in_flight.take() {
            Some((k, origin)) if k == key => Ok(origin),
            other => {
                let in_flight = other.as_ref().map(|(k, _)| *k);
                self.in_flight = other;
                Err(NotInFlight { key, in_flight })
            }
        }
    }

    /// The write applied (or was recognised as applied): retry, backoff and the stop
    /// for a human are over.
    pub fn committed(&mut self) {
        self.pending = None;
        self.backoff = None;
        self.next_delay = self.min_delay;
        self.needs_human = None;
    }

    /// The outcome of `p` is unknown: kept, to be retried with its token or
    /// recognised in the item; the move backs off.
    pub fn unknown(&mut self, p: P, now: Instant) -> Duration {
        let key = p.key();
        self.pending = Some(p);
        self.back_off(key, now)
    }

    /// Nothing was written (a lost race, refused, busy, deposed): the move backs off.
    pub fn refused(&mut self, key: MoveKey, now: Instant) -> Duration {
        self.pending = None;
        self.back_off(key, now)
    }

    /// The item is one a human must settle: automatic moves stop until it changes.
    pub fn stop_for_a_human(&mut self, reason: String, key: MoveKey, now: Instant) -> Duration {
        self.needs_human = Some(NeedsHuman {
            reason,
            item: (key.from, key.version),
        });
        self.refused(key, now)
    }

    /// The item as read now: a stop for a human ends once the item is another one.
    /// True when it just ended.
    pub fn item_changed(&mut self, item: Option<(AppState, u64)>) -> bool {
        match &self.needs_human {
            Some(n) if Some(n.item) != item => {
                self.needs_human = None;
                true
            }
            _ => false,
        }
    }

    /// The item a human had to settle was settled without changing it (the audit
    /// records above it were removed): automatic moves resume. True when a stop for
    /// that item ended.
    pub fn settled(&mut self, item: (AppState, u64)) -> bool {
        if self.needs_human.as_ref().is_some_and(|n| n.item == item) {
            self.needs_human = None;
            return true;
        }
        false
    }

    /// The item was found lower than what we knew (re-seeded, restored, set back by
    /// hand): what we remember of moves from the old item means nothing now. The
    /// pending write, the backoff and the stop for a human are dropped; a commit in
    /// flight and queued human requests stay (their outcome and their checks come
    /// from the tables).
    pub fn reset(&mut self) {
        self.committed();
    }

    /// The pending write shows in `item`: it applied. Returns it, taken in.
    pub fn recognise(&mut self, item: &ConfigItem) -> Option<P> {
        if !self.pending.as_ref().is_some_and(|p| p.wrote(item)) {
            return None;
        }
        let p = self.pending.take();
        self.committed();
        p
    }

    /// A human's request waits for the commit in flight.
    pub fn enqueue(&mut self, request: Q, now: Instant) {
        self.queue.push_back(Queued {
            request,
            since: now,
        });
    }

    /// The next human request to start (with when it was queued), once nothing is in
    /// flight, and those that waited longer than `max_wait` (to be answered that they
    /// expired, never started late).
    pub fn next_request(
        &mut self,
        now: Instant,
        max_wait: Duration,
    ) -> (Option<(Q, Instant)>, Vec<Q>) {
        let mut expired = Vec::new();
        if self.in_flight.is_some() {
            return (None, expired);
        }
        while let Some(q) = self.queue.pop_front() {
            if now.saturating_duration_since(q.since) > max_wait {
                expired.push(q.request);
            } else {
                return (Some((q.request, q.since)), expired);
            }
        }
        (None, expired)
    }

    /// Requests waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Until when the move `key` backs off, if it does.
    pub fn backoff_until(&self, key: MoveKey) -> Option<Instant> {
        self.backoff.filter(|b| b.key == key).map(|b| b.until)
    }

    fn back_off(&mut self, key: MoveKey, now: Instant) -> Duration {
        if self.backoff.is_some_and(|b| b.key != key) {
            self.next_delay = self.min_delay;
        }
        let delay = self.next_delay;
        self.backoff = Some(Backoff {
            key,
            until: now + delay,
        });
        self.next_delay = (delay * 2).min(self.max_delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Write(MoveKey, &'static str);

    impl PreparedMove for Write {
        fn key(&self) -> MoveKey {
            self.0
        }
        fn wrote(&self, item: &ConfigItem) -> bool {
            item.version == self.0.version + 1
                && item.state == self.0.to
                && item.updated_by.as_deref() == Some(self.1)
        }
    }

    type C = Commits<Write, &'static str, &'static str>;

    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(15);

    fn key(version: u64) -> MoveKey {
        MoveKey {
            from: AppState::Active,
            to: AppState::Failover,
            version,
        }
    }

    fn item(state: AppState, version: u64, by: &str) -> ConfigItem {
        ConfigItem {
            state,
            version,
            updated_at: None,
            updated_by: Some(by.into()),
            reason: None,
            expires_at: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_commit_at_a_time_and_finish_names_who_asked() {
        let mut c = C::new(MIN, MAX);
        let now = Instant::now();
        assert!(c.may_start_auto(key(1), now));
        c.start(key(1), Origin::Auto).unwrap();
        assert!(c.in_flight());
        assert!(
            !c.may_start_auto(key(1), now),
            "nothing starts while one is in flight"
        );
        assert_eq!(c.start(key(1), Origin::Manual("alice")), Err(Busy));
        assert!(matches!(c.finish(key(1)), Ok(Origin::Auto)));
        assert!(!c.in_flight());
        c.start(key(1), Origin::Manual("alice")).unwrap();
        assert!(matches!(c.finish(key(1)), Ok(Origin::Manual("alice"))));
    }

    #[tokio::test(start_paused = true)]
    async fn an_outcome_for_a_commit_not_in_flight_is_an_error_not_a_guess() {
        let mut c = C::new(MIN, MAX);
        assert_eq!(
            c.finish(key(1)).unwrap_err(),
            NotInFlight {
                key: key(1),
                in_flight: None
            }
        );
        c.start(key(2), Origin::Manual("bob")).unwrap();
        assert_eq!(c.finish(key(1)).unwrap_err().in_flight, Some(key(2)));
        assert!(c.in_flight(), "the commit in flight is still there");
        assert!(matches!(c.finish(key(2)), Ok(Origin::Manual("bob"))));
    }

    #[tokio::test(start_paused = true)]
    async fn the_backoff_doubles_per_move_and_another_move_starts_at_once() {
        let mut c = C::new(MIN, MAX);
        let mut delays = Vec::new();
        for _ in 0..7 {
            let now = Instant::now();
            c.start(key(1), Origin::Auto).unwrap();
            c.finish(key(1)).unwrap();
            let d = c.refused(key(1), now);
            delays.push(d.as_millis());
            assert_eq!(c.backoff_until(key(1)), Some(now + d));
            assert!(!c.may_start_auto(key(1), now + d - Duration::from_millis(1)));
            assert!(c.may_start_auto(key(2), now), "another move is not held");
            advance(d).await;
            assert!(c.may_start_auto(key(1), Instant::now()));
        }
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 15000, 15000]);
        // another move starts afresh, at the shortest delay
        let now = Instant::now();
        c.start(key(2), Origin::Auto).unwrap();
        c.finish(key(2)).unwrap();
        assert_eq!(c.refused(key(2), now), MIN);
        assert_eq!(c.backoff_until(key(1)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_outcome_is_retried_as_itself_or_recognised() {
        let mut c = C::new(MIN, MAX);
        let w = Write(key(3), "monitor-a");
        c.start(key(3), Origin::Auto).unwrap();
        c.finish(key(3)).unwrap();
        c.unknown(w.clone(), Instant::now());
        assert_eq!(c.pending(), Some(&w));
        // a different move drops it
        assert_eq!(c.take_retry(|p| p.key() == key(4)), None);
        assert_eq!(c.pending(), None);
        // the same move takes it again
        c.unknown(w.clone(), Instant::now());
        assert_eq!(c.take_retry(|p| p.key() == key(3)), Some(w.clone()));
        // the item shows it: recognised, and the backoff is over
        c.unknown(w.clone(), Instant::now());
        assert_eq!(c.recognise(&item(AppState::Failover, 4, "monitor-b")), None);
        assert_eq!(
            c.recognise(&item(AppState::Failover, 4, "monitor-a")),
            Some(w)
        );
        assert_eq!(c.pending(), None);
        assert!(c.may_start_auto(key(3), Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_for_a_human_holds_every_automatic_move_until_the_item_changes() {
        let mut c = C::new(MIN, MAX);
        c.start(key(2), Origin::Auto).unwrap();
        c.finish(key(2)).unwrap();
        c.stop_for_a_human("records above v2".into(), key(2), Instant::now());
        advance(MAX).await;
        assert!(!c.may_start_auto(key(2), Instant::now()));
        assert!(!c.may_start_auto(key(5), Instant::now()));
        assert!(
            !c.item_changed(Some((AppState::Active, 2))),
            "the same item"
        );
        assert!(c.needs_human().is_some());
        assert!(c.item_changed(Some((AppState::Active, 3))));
        assert!(c.needs_human().is_none());
        assert!(c.may_start_auto(key(3), Instant::now()));
        // settled without changing the item (its stale records removed)
        c.stop_for_a_human("records above v3".into(), key(3), Instant::now());
        assert!(!c.settled((AppState::Active, 2)), "another item");
        assert!(c.needs_human().is_some());
        assert!(c.settled((AppState::Active, 3)));
        assert!(c.needs_human().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_forgets_the_old_items_moves_but_not_the_commit_in_flight() {
        let mut c = C::new(MIN, MAX);
        c.unknown(Write(key(2), "monitor-a"), Instant::now());
        c.stop_for_a_human("x".into(), key(2), Instant::now());
        c.start(key(0), Origin::Manual("ops")).unwrap();
        c.reset();
        assert_eq!(c.pending(), None);
        assert!(c.needs_human().is_none());
        assert_eq!(c.backoff_until(key(2)), None);
        assert!(c.in_flight(), "its outcome still comes back");
        assert!(matches!(c.finish(key(0)), Ok(Origin::Manual("ops"))));
    }

    #[tokio::test(start_paused = true)]
    async fn humans_wait_in_order_and_those_who_waited_too_long_expire() {
        let mut c = C::new(MIN, MAX);
        let wait = Duration::from_secs(15);
        c.start(key(1), Origin::Auto).unwrap();
        c.enqueue("first", Instant::now());
        advance(Duration::from_secs(10)).await;
        let queued = Instant::now();
        c.enqueue("second", Instant::now());
        c.enqueue("third", Instant::now());
        assert_eq!(c.queued(), 3);
        assert_eq!(c.next_request(Instant::now(), wait), (None, vec![]));
        advance(Duration::from_secs(6)).await;
        c.finish(key(1)).unwrap();
        assert_eq!(
            c.next_request(Instant::now(), wait),
            (Some(("second", queued)), vec!["first"])
        );
        assert_eq!(c.queued(), 1);
        assert_eq!(
            c.next_request(Instant::now(), wait),
            (Some(("third", queued)), vec![])
        );
        assert_eq!(c.next_request(Instant::now(), wait), (None, vec![]));
        // one that waited exactly `max_wait` still starts
        c.enqueue("fourth", Instant::now());
        advance(wait).await;
        assert_eq!(
            c.next_request(Instant::now(), wait),
            (Some(("fourth", Instant::now() - wait)), vec![])
        );
    }
}
