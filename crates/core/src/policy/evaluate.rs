//! What to do now: the move the rules want from the current state, then the gates
//! that may hold it back (mode, pause, leadership, hold-down, the secondary's health);
//! and a human's move, checked against the safety rules.

use std::time::Duration;

use tokio::time::Instant;

use super::{Blocked, Decision, Policy, Refusal, Verdict, Vote, millis};
use crate::model::{AppState, ConfigItem, Role};
use crate::overrides::{self, Left};
use crate::rules::{Failback, Mode};

/// A move the rules want, before the gates.
struct Wanted {
    to: AppState,
    reason: String,
    /// Subject to `hold_down` (automatic moves out of a settled state).
    hold_down: bool,
}

impl Policy {
    /// What to do now.
    pub fn evaluate(&self, now: Instant) -> Verdict {
        let Some(item) = &self.item else {
            return Verdict::Hold {
                why: "config item not read yet".into(),
            };
        };
        let wanted = match item.state {
            AppState::Active => self.wanted_in_active(now),
            AppState::Fenced => self.wanted_in_fence(item, now),
            AppState::Failover => self.wanted_in_failover(item, now),
        };
        match wanted {
            Ok(w) => self.gate(item, w, now),
            Err(why) => Verdict::Hold { why },
        }
    }

    fn wanted_in_active(&self, now: Instant) -> Result<Wanted, String> {
        if self.effective_primary_down(now) {
            let to = if self.cfg.fence_for.is_zero() {
                AppState::Failover
            } else {
                AppState::Fenced
            };
            return Ok(Wanted {
                to,
                reason: format!("primary down ({} of its probes)", self.cfg.rule),
                hold_down: true,
            });
        }
        match &self.coordination {
            Some(c) if self.primary_down() => {
                let votes = self.down_votes(now);
                if c.reachable() {
                    Err(format!(
                        "primary down here, but only {votes} of the {} votes needed",
                        c.needed()
                    ))
                } else {
                    Err(format!(
                        "quorum unreachable: {} of {} configured instances live, {} needed; \
                         a human can force a failover",
                        1 + c.others_live,
                        c.configured,
                        c.needed()
                    ))
                }
            }
            None if self.primary_down() => Err(format!(
                "primary down here, but the evidence is {} ms old (more than {} ms): \
                 waiting for fresh probe results",
                self.vote(now).1.unwrap_or_default().as_millis(),
                self.cfg.evidence_ttl.as_millis()
            )),
            _ => Err(self.healthy_or_inconclusive()),
        }
    }

    /// Why there is nothing to do in `active`: the primary is healthy, or nothing can
    /// be said of it because its probes only got errors about the monitor (named).
    fn healthy_or_inconclusive(&self) -> String {
        let inconclusive: Vec<&str> = self
            .index
            .inconclusive(Role::Primary)
            .map(|i| self.probes[i].name.as_str())
            .collect();
        if inconclusive.is_empty() {
            return "primary healthy".into();
        }
        let judging =
            self.counts[Role::Primary as usize].iter().sum::<usize>() - inconclusive.len();
        if judging == 0 {
            return format!(
                "no probe can judge the primary: every one is inconclusive (errors about the \
                 monitor, not the region): {}; an outage would not be failed over on its own",
                inconclusive.join(", ")
            );
        }
        format!(
            "primary healthy on {judging} probe(s); inconclusive (errors about the monitor, \
             not the region): {}",
            inconclusive.join(", ")
        )
    }

    fn wanted_in_fence(&self, item: &ConfigItem, now: Instant) -> Result<Wanted, String> {
        if let Some(drill) = item.set_by_drill()
            && !self.effective_primary_down(now)
        {
            // A drill's fence on a primary that is not down: it lasts until the
            // drill moves on, or until it ends (a drill never leaves the application
            // fenced). With the primary down, the normal rules below take over.
            return match self.drill_left() {
                Some(Left::Ended) => Ok(Wanted {
                    to: AppState::Active,
                    reason: format!(
                        "the fence of drill {drill} ended: writes are no longer blocked"
                    ),
                    hold_down: false,
                }),
                Some(left) => Err(format!("fenced by drill {drill} ({left})")),
                None => Err(format!("fenced by drill {drill}")),
            };
        }
        if item.set_by_human() {
            return match self.fence_left() {
                Some(Left::Ended) => Ok(self.after_a_human_fence(item, now)),
                Some(left) => Err(format!(
                    "fenced by a human ({left}); only a human moves it on before it ends"
                )),
                None => Err("fenced by a human; only a human moves it on".into()),
            };
        }
        let fenced_for = self
            .fenced_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if !self.effective_primary_down(now) {
            if self.vote(now).0 != Vote::Up {
                // Neither down on fresh evidence nor up (stale or unknown results,
                // a process just started, the quorum lost): neither lift the fence
                // nor go on, for as long as a real outage may take to be confirmed.
                if fenced_for >= self.cfg.fence_expiry {
                    return Ok(Wanted {
                        to: AppState::Active,
                        reason: format!(
                            "fence expired: fenced for {} s without the primary down on \
                             fresh evidence (no quorum?) nor up; writes are no longer blocked",
                            fenced_for.as_secs()
                        ),
                        hold_down: false,
                    });
                }
                return Err(
                    "fenced; the primary is neither down on fresh evidence nor up: waiting".into(),
                );
            }
            // The fence was ours and the primary recovered: lift it.
            return Ok(Wanted {
                to: AppState::Active,
                reason: "primary recovered during the fence".into(),
                hold_down: false,
            });
        }
        let d = self
            .fenced_at
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
        if d < self.cfg.fence_for {
            return Err(format!(
                "fenced; failover in {} ms at the earliest",
                millis(self.cfg.fence_for - d)
            ));
        }
        match self.replication_in_fence() {
            Some(r) if r.canary_arrived => Ok(Wanted {
                to: AppState::Failover,
                reason: format!(
                    "primary still down; canary arrived: {}, written in the primary after \
                     the fence began, reached the secondary in {} ms; other items and S3 \
                     objects were not measured",
                    r.items.join(", "),
                    r.lag_ms.unwrap_or_default()
                ),
                hold_down: false,
            }),
            _ if d >= self.cfg.max_fence => Ok(Wanted {
                to: AppState::Failover,
                reason: format!(
                    "primary still down after fencing for {:?}; the replication canary did \
                     not arrive in the secondary, so nothing was confirmed replicated",
                    self.cfg.max_fence
                ),
                hold_down: false,
            }),
            _ => Err(format!(
                "fenced; waiting for the replication canary, at most {} ms more",
                millis(self.cfg.max_fence - d)
            )),
        }
    }

    /// A human's fence ended: writes are unblocked, or, with the primary down on
    /// the evidence a failover needs, the application fails over.
    fn after_a_human_fence(&self, item: &ConfigItem, now: Instant) -> Wanted {
        let by = item.updated_by.as_deref().unwrap_or("a human");
        let end = self.fence_end().map(overrides::format).unwrap_or_default();
        if self.effective_primary_down(now) {
            return Wanted {
                to: AppState::Failover,
                reason: format!("the fence set by {by} ended at {end}, and the primary is down"),
                hold_down: false,
            };
        }
        Wanted {
            to: AppState::Active,
            reason: format!("the fence set by {by} ended at {end}: writes are no longer blocked"),
            hold_down: false,
        }
    }

    fn wanted_in_failover(&self, item: &ConfigItem, now: Instant) -> Result<Wanted, String> {
        if let Some(drill) = item.set_by_drill() {
            // A drill's failover: the drill fails back after its hold; should it not
            // (its runner gone), the monitors do once the hold has ended, onto a
            // healthy primary only. A drill never leaves a healthy primary failed
            // over, and never fails back onto a sick one.
            return match self.drill_left() {
                Some(Left::Ended) if self.region_up(Role::Primary) && !self.primary_down() => {
                    Ok(Wanted {
                        to: AppState::Active,
                        reason: format!(
                            "the hold of drill {drill} ended and the primary is up: failing back"
                        ),
                        // An automatic move out of a settled state: the hold-down
                        // holds it like any other (the drill's own failback is not
                        // held: it is the drill's move).
                        hold_down: true,
                    })
                }
                Some(Left::Ended) => Err(format!(
                    "the hold of drill {drill} ended, but the primary is {}: staying in failover",
                    self.not_up(Role::Primary)
                )),
                Some(left) => Err(format!("failed over by drill {drill} ({left})")),
                None => Err(format!("failed over by drill {drill}")),
            };
        }
        if item.set_by_human() {
            return Err("failed over by a human; only a human fails back".into());
        }
        let due = match self.cfg.failback {
            Failback::Manual => false,
            Failback::Auto => {
                !self.effective_primary_down(now)
                    && self.primary_up_since.is_some_and(|s| {
                        now.saturating_duration_since(s) >= self.cfg.failback_after
                    })
            }
        };
        if !due {
            return Err("in failover; failback not due".into());
        }
        Ok(Wanted {
            to: AppState::Active,
            reason: format!(
                "primary up for {:?} (failback = auto)",
                self.cfg.failback_after
            ),
            hold_down: true,
        })
    }

    /// The gates between a wanted move and acting on it.
    fn gate(&self, item: &ConfigItem, w: Wanted, now: Instant) -> Verdict {
        let decision = Decision {
            from: item.state,
            to: w.to,
            expected_version: item.version,
            reason: w.reason,
            evidence: self.evidence(now),
        };
        let block = |because| Verdict::Blocked {
            wanted: decision.clone(),
            because,
        };
        if self.cfg.mode == Mode::Manual {
            return block(Blocked::ManualMode);
        }
        if self.paused() {
            return block(Blocked::Paused);
        }
        if let Some(c) = &self.coordination {
            if !c.leader {
                return block(Blocked::NotLeader {
                    leader: c.leader_id.clone(),
                });
            }
            if !c.mismatch.is_empty() {
                return block(Blocked::CoordinationMismatch {
                    instances: c.mismatch.clone(),
                });
            }
        }
        if w.hold_down
            && let Some(last) = self.last_transition_at
        {
            let elapsed = now.saturating_duration_since(last);
            if elapsed < self.cfg.hold_down {
                return block(Blocked::HoldDown {
                    remaining_ms: millis(self.cfg.hold_down - elapsed),
                });
            }
        }
        if w.to != AppState::Active
            && self.cfg.require_healthy_secondary
            && !self.region_up(Role::Secondary)
        {
            let down = self.not_up_names(Role::Secondary);
            return block(Blocked::SecondaryUnhealthy { down });
        }
        let warning = if w.to != AppState::Active {
            match self.readiness_gate() {
                Err(because) => return block(because),
                Ok(warning) => warning,
            }
        } else {
            None
        };
        if self.cfg.mode == Mode::DryRun {
            return block(Blocked::DryRun);
        }
        let mut decision = decision;
        if let Some(warning) = warning {
            decision.reason = format!("{}; {warning}", decision.reason);
        }
        Verdict::Act(decision)
    }

    fn not_up_names(&self, role: Role) -> Vec<String> {
        self.index
            .not_up(role)
            .map(|i| self.probes[i].name.clone())
            .collect()
    }

    fn not_up(&self, role: Role) -> String {
        format!("not up: {}", self.not_up_names(role).join(", "))
    }

    /// A human's move to `to`, checked against the safety rules unless `force`.
    /// Hold-down, pause, quorum and `mode = "manual"` do not apply to humans.
    pub fn manual(&self, to: AppState, force: bool, now: Instant) -> Result<Decision, Refusal> {
        let item = self.item.as_ref().ok_or(Refusal::NotReady)?;
        if item.state == to {
            return Err(Refusal::AlreadyThere(to));
        }
        if self.cfg.mode == Mode::DryRun {
            return Err(Refusal::DryRun);
        }
        if !force {
            let back_to_primary = to != AppState::Failover && item.state == AppState::Failover;
            if (back_to_primary || to == AppState::Active) && !self.region_up(Role::Primary) {
                return Err(Refusal::PrimaryUnhealthy(self.not_up(Role::Primary)));
            }
            if to == AppState::Failover && !self.region_up(Role::Secondary) {
                return Err(Refusal::SecondaryUnhealthy(self.not_up(Role::Secondary)));
            }
        }
        Ok(Decision {
            from: item.state,
            to,
            expected_version: item.version,
            reason: String::new(),
            evidence: self.evidence(now),
        })
    }
}
