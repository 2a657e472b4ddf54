//! The leader lease as a pure state machine, safe without synchronized clocks.
//!
//! The lease item holds `(owner, token, renewals)`. The holder bumps `renewals` every
//! `renew_every`; it counts itself leader until `lease - margin` after the start of
//! its last successful renewal, on its own monotonic clock. A contender may take over only after
//! it has seen the *same* `(token, renewals)` for a whole `lease` on *its* monotonic
//! clock, and its takeover write is conditioned on that value. Since the contender
//! first saw the value after the holder's renewal started, the holder's validity
//! always ends first. Every takeover increments `token`, the fencing token that every
//! transition write is conditioned on.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// The lease item as read from the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseRecord {
    pub owner: String,
    pub token: u64,
    pub renewals: u64,
}

/// What to write next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAction {
    /// Nothing: someone else holds a live lease.
    Wait,
    /// Bump `renewals` on our lease (conditioned on owner and token).
    Renew { token: u64 },
    /// Take the lease: conditioned on the item not existing (`None`) or still being
    /// exactly `expected`. The new token is the old one + 1.
    Acquire { expected: Option<LeaseRecord> },
}

#[derive(Debug)]
pub struct LeaseTracker {
    me: String,
    lease: Duration,
    margin: Duration,
    /// The record last read and when this value was first seen.
    seen: Option<(Option<LeaseRecord>, Instant)>,
    /// Our lease: its token and until when we may act.
    held: Option<(u64, Instant)>,
}

impl LeaseTracker {
    pub fn new(me: String, lease: Duration) -> Self {
        Self {
            me,
            lease,
            // Covers clock-rate differences between hosts and the time between the
            // validity check and the write (which the fencing token covers too).
            margin: (lease / 10).max(Duration::from_millis(200)).min(lease / 2),
            seen: None,
            held: None,
        }
    }

    /// Takes in a read of the lease item.
    pub fn observe(&mut self, record: Option<LeaseRecord>, now: Instant) {
        let changed = self.seen.as_ref().is_none_or(|(r, _)| *r != record);
        if changed {
            self.seen = Some((record.clone(), now));
        }
        // The lease moved to someone else (or another token): ours is gone.
        if let Some((token, _)) = self.held
            && record
                .as_ref()
                .is_none_or(|r| r.owner != self.me || r.token != token)
        {
            self.held = None;
        }
    }

    pub fn next_action(&self, now: Instant) -> LeaseAction {
        if let Some((token, _)) = self.held {
            return LeaseAction::Renew { token };
        }
        match &self.seen {
            None => LeaseAction::Wait,
            Some((None, _)) => LeaseAction::Acquire { expected: None },
            // Released at a clean shutdown (no owner), or this very process's own
            // lease (a renewal whose answer was lost): nobody else acts on it. A
            // restarted process is another owner (its process value differs) and
            // waits the lease out like anyone else.
            Some((Some(r), _)) if r.owner.is_empty() || r.owner == self.me => {
                LeaseAction::Acquire {
                    expected: Some(r.clone()),
                }
            }
            Some((Some(r), since)) if now.saturating_duration_since(*since) >= self.lease => {
                LeaseAction::Acquire {
                    expected: Some(r.clone()),
                }
            }
            Some(_) => LeaseAction::Wait,
        }
    }

    /// A renewal or takeover that started at `started` succeeded with `token`.
    pub fn held_from(&mut self, token: u64, renewals: u64, started: Instant) {
        self.held = Some((token, started + self.lease - self.margin));
        self.seen = Some((
            Some(LeaseRecord {
                owner: self.me.clone(),
                token,
                renewals,
            }),
            started,
        ));
    }

    /// A renewal was refused: someone else holds the lease now.
    pub fn lost(&mut self) {
        self.held = None;
    }

    /// Our fencing token and until when we may act, if we hold the lease.
    pub fn held(&self) -> Option<(u64, Instant)> {
        self.held
    }

    /// The owner of the lease as last seen (None when there is none, or it was
    /// released).
    pub fn owner(&self) -> Option<&str> {
        self.seen
            .as_ref()
            .and_then(|(r, _)| r.as_ref())
            .map(|r| r.owner.as_str())
            .filter(|o| !o.is_empty())
    }
}

/// What this process is in a position to do with the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// It could act on a decision now (mode `auto`, its view of the secondary up
    /// where required).
    pub fit: bool,
    /// A commit of its own is in flight.
    pub committing: bool,
    /// A second live process runs with its instance id.
    pub duplicate: bool,
    /// Another instance is live and could act.
    pub fit_peer_live: bool,
}

/// What to do with the lease this round, once [`LeaseTracker::next_action`] has said
/// what the lease allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseStep {
    Wait,
    Renew {
        token: u64,
    },
    /// Give the lease up (to a peer that can act).
    Release {
        token: u64,
    },
    Acquire {
        expected: Option<LeaseRecord>,
    },
    /// May take the lease, but does not: a duplicate of this instance is live, or
    /// this one cannot act while a live peer can.
    Abstain,
}

/// Rounds in a row a holder that cannot act keeps the lease before handing it to a
/// peer that can: a probe of the secondary that flaps once does not move the lease.
pub const UNFIT_ROUNDS: u32 = 2;

/// Who should hold the lease: a holder that cannot act for [`UNFIT_ROUNDS`] rounds
/// gives it up while a live peer can act (never under its own commit in flight), and
/// a contender that cannot act does not take it while such a peer exists. With no
/// peer able to act the holder keeps it: nobody would do better.
#[derive(Debug, Clone, Default)]
pub struct Handover {
    unfit_rounds: u32,
}

impl Handover {
    pub fn step(&mut self, action: LeaseAction, me: Standing) -> LeaseStep {
        let handover = !me.fit && me.fit_peer_live;
        match action {
            LeaseAction::Renew { token } if handover && !me.committing => {
                self.unfit_rounds += 1;
                if self.unfit_rounds < UNFIT_ROUNDS {
                    return LeaseStep::Renew { token };
                }
                self.unfit_rounds = 0;
                LeaseStep::Release { token }
            }
            other => {
                self.unfit_rounds = 0;
                match other {
                    LeaseAction::Wait => LeaseStep::Wait,
                    LeaseAction::Renew { token } => LeaseStep::Renew { token },
                    LeaseAction::Acquire { .. } if handover || me.duplicate => LeaseStep::Abstain,
                    LeaseAction::Acquire { expected } => LeaseStep::Acquire { expected },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::*;

    fn rec(owner: &str, token: u64, renewals: u64) -> Option<LeaseRecord> {
        Some(LeaseRecord {
            owner: owner.into(),
            token,
            renewals,
        })
    }

    const LEASE: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn an_empty_table_is_acquired_at_once() {
        let mut t = LeaseTracker::new("a".into(), LEASE);
        assert_eq!(
            t.next_action(Instant::now()),
            LeaseAction::Wait,
            "nothing read yet"
        );
        t.observe(None, Instant::now());
        assert_eq!(
            t.next_action(Instant::now()),
            LeaseAction::Acquire { expected: None }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_lease_is_waited_for_until_unchanged_for_a_whole_lease() {
        let mut t = LeaseTracker::new("b".into(), LEASE);
        t.observe(rec("a", 3, 7), Instant::now());
        advance(Duration::from_secs(6)).await;
        // a renewed meanwhile: the wait starts over
        t.observe(rec("a", 3, 8), Instant::now());
        advance(Duration::from_secs(6)).await;
        t.observe(rec("a", 3, 8), Instant::now());
        assert_eq!(t.next_action(Instant::now()), LeaseAction::Wait);
        advance(Duration::from_secs(4)).await;
        assert_eq!(
            t.next_action(Instant::now()),
            LeaseAction::Acquire {
                expected: rec("a", 3, 8)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_holder_stops_acting_before_a_contender_may_take_over() {
        let mut holder = LeaseTracker::new("a".into(), LEASE);
        let mut contender = LeaseTracker::new("b".into(), LEASE);
        let renew_start = Instant::now();
        holder.held_from(1, 5, renew_start);
        // the contender reads the renewed value at the earliest possible moment
        contender.observe(rec("a", 1, 5), renew_start);
        let (_, valid_until) = holder.held().unwrap();
        // it may act for the lease less the margin (1 s of 10), not less
        assert_eq!(valid_until, renew_start + LEASE - Duration::from_secs(1));
        // step through time: never both entitled
        for _ in 0..200 {
            let now = Instant::now();
            let holder_acts = now < valid_until;
            let contender_may = matches!(contender.next_action(now), LeaseAction::Acquire { .. });
            assert!(
                !(holder_acts && contender_may),
                "overlap at {:?}",
                now - renew_start
            );
            advance(Duration::from_millis(100)).await;
        }
        assert!(matches!(
            contender.next_action(Instant::now()),
            LeaseAction::Acquire { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_lease_is_renewed_and_lost_when_someone_else_shows_up() {
        let mut t = LeaseTracker::new("a".into(), LEASE);
        t.held_from(4, 0, Instant::now());
        assert_eq!(
            t.next_action(Instant::now()),
            LeaseAction::Renew { token: 4 }
        );
        t.observe(rec("a", 4, 0), Instant::now());
        assert!(t.held().is_some());
        // our own id with another token (a takeover this process never heard the
        // answer of): not the lease we hold
        t.observe(rec("a", 5, 0), Instant::now());
        assert!(t.held().is_none());
        // a refused renewal
        t.held_from(5, 0, Instant::now());
        t.lost();
        assert!(t.held().is_none());
        t.held_from(5, 0, Instant::now());
        t.observe(rec("b", 6, 0), Instant::now());
        assert!(t.held().is_none());
        assert_eq!(t.owner(), Some("b"));
        assert_eq!(t.next_action(Instant::now()), LeaseAction::Wait);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_process_waits_out_its_previous_incarnations_lease() {
        // The same instance id, another process: another owner.
        let mut t = LeaseTracker::new("a/2".into(), LEASE);
        t.observe(rec("a/1", 9, 100), Instant::now());
        assert_eq!(t.next_action(Instant::now()), LeaseAction::Wait);
        advance(LEASE - Duration::from_millis(1)).await;
        t.observe(rec("a/1", 9, 100), Instant::now());
        assert_eq!(t.next_action(Instant::now()), LeaseAction::Wait);
        advance(Duration::from_millis(1)).await;
        assert_eq!(
            t.next_action(Instant::now()),
            LeaseAction::Acquire {
                expected: rec("a/1", 9, 100)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_lease_and_this_processs_own_are_taken_at_once() {
        let mut t = LeaseTracker::new("a/1".into(), LEASE);
        t.observe(rec("", 9, 101), Instant::now());
        assert_eq!(
            t.next_action(Instant::now()),
            LeaseAction::Acquire {
                expected: rec("", 9, 101)
            }
        );
        t.observe(rec("a/1", 9, 100), Instant::now());
        assert_eq!(
            t.next_action(Instant::now()),
            LeaseAction::Acquire {
                expected: rec("a/1", 9, 100)
            }
        );
    }

    const ABLE: Standing = Standing {
        fit: true,
        committing: false,
        duplicate: false,
        fit_peer_live: true,
    };

    #[test]
    fn a_holder_that_cannot_act_hands_the_lease_to_a_peer_that_can() {
        let mut h = Handover::default();
        let unable = Standing { fit: false, ..ABLE };
        let renew = LeaseAction::Renew { token: 4 };
        assert_eq!(h.step(renew.clone(), unable), LeaseStep::Renew { token: 4 });
        assert_eq!(
            h.step(renew.clone(), unable),
            LeaseStep::Release { token: 4 }
        );
        // one round able again starts the count afresh
        assert_eq!(h.step(renew.clone(), unable), LeaseStep::Renew { token: 4 });
        assert_eq!(h.step(renew.clone(), ABLE), LeaseStep::Renew { token: 4 });
        assert_eq!(h.step(renew.clone(), unable), LeaseStep::Renew { token: 4 });
        // never under its own commit, never without a peer that can act
        let committing = Standing {
            committing: true,
            ..unable
        };
        let alone = Standing {
            fit_peer_live: false,
            ..unable
        };
        for _ in 0..5 {
            assert_eq!(
                h.step(renew.clone(), committing),
                LeaseStep::Renew { token: 4 }
            );
            assert_eq!(h.step(renew.clone(), alone), LeaseStep::Renew { token: 4 });
        }
    }

    #[test]
    fn a_contender_that_cannot_act_or_is_duplicated_does_not_take_the_lease() {
        let mut h = Handover::default();
        let acquire = LeaseAction::Acquire { expected: None };
        assert_eq!(
            h.step(acquire.clone(), ABLE),
            LeaseStep::Acquire { expected: None }
        );
        let unable = Standing { fit: false, ..ABLE };
        assert_eq!(h.step(acquire.clone(), unable), LeaseStep::Abstain);
        // with nobody able to act, taking the lease is better than nobody holding it
        let alone = Standing {
            fit_peer_live: false,
            ..unable
        };
        assert_eq!(
            h.step(acquire.clone(), alone),
            LeaseStep::Acquire { expected: None }
        );
        let duplicated = Standing {
            duplicate: true,
            ..ABLE
        };
        assert_eq!(h.step(acquire.clone(), duplicated), LeaseStep::Abstain);
        assert_eq!(h.step(LeaseAction::Wait, unable), LeaseStep::Wait);
    }
}
