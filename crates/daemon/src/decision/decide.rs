//! One evaluation of the policy: the coordination input, this instance's vote, the
//! verdict, and the commit it may start.

use tokio::time::Instant;
use tracing::{info, warn};

use super::{Daemon, LoopState, PUBLISH_EVERY, Tasks};
use crate::coord::{self, OwnView};
use failover_config::Mode;
use failover_core::model::{Fence, Role};
use failover_core::policy::{Coordination, Health, Verdict};

impl Daemon {
    /// The coordination inputs for the policy as of `now`, and our fence if we lead.
    fn coordination(
        &self,
        state: &LoopState,
        now: Instant,
    ) -> (Option<Coordination>, Option<Fence>) {
        let Some(cfg) = &self.settings.coordination else {
            return (None, None);
        };
        let (c, fence) = coord::policy_input(cfg, &self.identity, state.coord.as_ref(), now);
        (Some(c), fence)
    }

    /// Hands this instance's view to the coordination task, which publishes it.
    fn share_view(&self, now: Instant) {
        let (vote, evidence_age) = self.policy.vote(now);
        let own = OwnView {
            vote,
            evidence_since: evidence_age.and_then(|a| now.checked_sub(a)),
            secondary_up: self.policy.region_up(Role::Secondary),
            detail: self
                .policy
                .probe_views(now)
                .iter()
                .filter(|p| p.health != Health::Up)
                .take(20)
                .map(|p| format!("{} {:?}", p.name, p.health))
                .collect::<Vec<_>>()
                .join(", "),
        };
        self.own_view.send_replace(own);
    }

    fn log_verdict(&self, verdict: &Verdict, state: &mut LoopState) {
        let summary = verdict.summary();
        if summary == state.last_verdict {
            return;
        }
        match verdict {
            Verdict::Hold { .. } => info!(verdict = %summary, "policy"),
            Verdict::Act(d) => info!(verdict = %summary, reason = %d.reason, "policy"),
            Verdict::Blocked { wanted, because } => {
                let because = serde_json::to_string(because).unwrap_or_default();
                if self.settings.monitor.mode != Mode::Auto || self.policy.paused() {
                    warn!(verdict = %summary, reason = %wanted.reason, because = %because, "would move, but does not act");
                } else {
                    info!(verdict = %summary, reason = %wanted.reason, because = %because, "policy");
                }
            }
        }
        state.last_verdict = summary;
    }

    /// Automatic moves are stopped while the item is the one a human must settle.
    fn held_for_a_human(&self, state: &mut LoopState) -> bool {
        let Some((_, key)) = &state.needs_human else {
            return false;
        };
        let now = self.policy.item().map(|i| (i.state, i.version));
        if now == Some(*key) {
            return true;
        }
        info!("the config item changed: automatic moves resume");
        state.needs_human = None;
        self.metrics.needs_human.set(0);
        false
    }

    pub(super) fn evaluate(&mut self, state: &mut LoopState, tasks: &mut Tasks) {
        let now = Instant::now();
        let (coordination, fence) = self.coordination(state, now);
        if let Some(c) = &coordination {
            self.metrics.leader.set(i64::from(fence.is_some()));
            self.metrics.quorum_reachable.set(i64::from(c.reachable()));
            self.share_view(now);
        }
        let acting = coordination.is_none() || fence.is_some();
        self.acting
            .send_if_modified(|a| std::mem::replace(a, acting) != acting);
        self.policy.set_coordination(coordination);
        let verdict = self.policy.evaluate(now);
        self.log_verdict(&verdict, state);
        if let Verdict::Act(decision) = verdict
            && state.due(&decision, now)
            && state.in_flight.is_none()
            && !self.held_for_a_human(state)
        {
            self.start_auto(decision, fence.clone(), state, tasks);
        }
        // The snapshot holds every probe: building it after each of thousands of
        // observations a second would cost O(probes) each. Publish at most every
        // PUBLISH_EVERY, and at once when something an operator waits for changed.
        let due = state
            .last_publish
            .is_none_or(|t| now.saturating_duration_since(t) >= PUBLISH_EVERY);
        if due || std::mem::take(&mut state.publish_now) {
            state.last_publish = Some(now);
            self.publish(state, fence.is_some());
        }
    }
}
