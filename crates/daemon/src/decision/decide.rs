//! One evaluation of the policy: the coordination input, this instance's vote, the
//! verdict, and the commit it may start.

use tokio::time::Instant;
use tracing::{info, warn};

use super::{Daemon, LoopState, PUBLISH_EVERY, Tasks};
use crate::coord::{self, Leadership, OwnView};
use failover_config::Mode;
use failover_core::model::Role;
use failover_core::policy::{Coordination, Verdict};

impl Daemon {
    /// The coordination inputs for the policy as of `now`, and whether we lead.
    pub(super) fn coordination(
        &self,
        state: &LoopState,
        now: Instant,
    ) -> (Option<Coordination>, Leadership) {
        let Some(cfg) = &self.settings.coordination else {
            return (None, Leadership::Alone);
        };
        let (c, leadership) = coord::policy_input(cfg, &self.identity, state.coord.as_ref(), now);
        (Some(c), leadership)
    }

    /// Whether this instance could act on a decision now: mode `auto`, and the
    /// secondary up where the policy requires it. A lease holder that cannot act
    /// hands the lease to one that can. (A duplicate of this instance's id does not
    /// make it unfit: the holder keeps the lease, the duplicate never takes it.)
    fn fit(&self) -> bool {
        self.settings.monitor.mode == Mode::Auto
            && (!self.settings.policy.require_healthy_secondary
                || self.policy.region_up(Role::Secondary))
    }

    /// Hands this instance's view to the coordination task, which publishes it.
    fn share_view(&self, state: &LoopState, now: Instant) {
        let (vote, evidence_age) = self.policy.vote(now);
        let own = OwnView {
            vote,
            evidence_since: evidence_age.and_then(|a| now.checked_sub(a)),
            secondary_up: self.policy.region_up(Role::Secondary),
            fit: self.fit(),
            committing: state.commits.in_flight(),
            // The first 20 not up, found without walking every probe.
            detail: self
                .policy
                .probes_not_up(now, 20)
                .iter()
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

    /// A stop for a human ends once the item is another one.
    fn release_a_stop_for_a_human(&self, state: &mut LoopState) {
        let item = self.policy.item().map(|i| (i.state, i.version));
        if state.commits.item_changed(item) {
            info!("the config item changed: automatic moves resume");
            self.metrics.needs_human.set(0);
        }
    }

    pub(super) fn evaluate(&mut self, state: &mut LoopState, tasks: &mut Tasks) {
        let now = Instant::now();
        let (coordination, leadership) = self.coordination(state, now);
        if let Some(c) = &coordination {
            self.metrics.leader.set(i64::from(leadership.acts()));
            self.metrics.quorum_reachable.set(i64::from(c.reachable()));
            self.share_view(state, now);
        }
        let acts = leadership.acts();
        self.acts
            .send_if_modified(|a| std::mem::replace(a, acts) != acts);
        self.policy.set_coordination(coordination);
        self.policy.set_wall_clock(self.actuator.clock().now());
        self.lift_an_ended_pause(state, tasks);
        self.track_down(state, now);
        let verdict = self.policy.evaluate(now);
        self.log_verdict(&verdict, state);
        self.release_a_stop_for_a_human(state);
        if let Verdict::Act(decision) = verdict
            && state.commits.may_start_auto(decision.key(), now)
        {
            self.start_auto(decision, leadership.fence(), state, tasks);
        }
        // The snapshot holds every probe: building it after each of thousands of
        // observations a second would cost O(probes) each. Publish at most every
        // PUBLISH_EVERY, and at once when something an operator waits for changed.
        let due = state
            .last_publish
            .is_none_or(|t| now.saturating_duration_since(t) >= PUBLISH_EVERY);
        if due || std::mem::take(&mut state.publish_now) {
            state.last_publish = Some(now);
            self.publish(state, &leadership);
        }
    }
}
