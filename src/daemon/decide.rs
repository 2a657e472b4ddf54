//! One evaluation of the policy, and the commit it may lead to.

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{Daemon, LoopState, PUBLISH_EVERY, RETRY_MAX, RETRY_MIN};
use crate::action::{ActionError, DnsAction, Outcome, Transition};
use crate::config::Mode;
use crate::coord::{self, OwnView};
use crate::model::{Fence, Role, Trigger};
use crate::policy::{Coordination, Decision, Health, Verdict};

impl Daemon {
    pub(super) fn transition_for(
        d: Decision,
        reason: String,
        trigger: Trigger,
        by: String,
        forced: bool,
    ) -> Transition {
        Transition {
            from: d.from,
            to: d.to,
            expected_version: d.expected_version,
            reason,
            evidence: d.evidence,
            trigger,
            by,
            forced,
            fence: None,
        }
    }

    /// The coordination inputs for the policy as of `now`, and our fence if we lead.
    fn coordination(
        &self,
        state: &LoopState,
        now: Instant,
    ) -> (Option<Coordination>, Option<Fence>) {
        let Some(cfg) = &self.settings.coordination else {
            return (None, None);
        };
        let (c, fence) = coord::policy_input(
            cfg,
            &self.settings.monitor.instance_id,
            state.coord.as_ref(),
            now,
        );
        (Some(c), fence)
    }

    /// Hands this instance's view to the coordination task, which publishes it.
    fn share_view(&self, now: Instant) {
        let own = OwnView {
            primary_down: self.policy.primary_down(),
            secondary_up: self.policy.region_up(Role::Secondary),
            detail: self
                .policy
                .probe_views(now)
                .iter()
                .filter(|p| p.health != Health::Up)
                .map(|p| format!("{} {:?}", p.name, p.health))
                .collect::<Vec<_>>()
                .join(", "),
        };
        self.own_view.send_if_modified(|v| {
            let changed = *v != own;
            *v = own;
            changed
        });
    }

    /// Hands `t` to the actuator and takes in the outcome (policy, metrics, logs).
    pub(super) async fn commit(
        &mut self,
        t: &Transition,
        state: &mut LoopState,
        sync_now: &Notify,
    ) -> Result<Outcome, ActionError> {
        let result = self.actuator.transition(t).await;
        let now = Instant::now();
        match &result {
            Ok(Outcome::Committed {
                item, primary, dns, ..
            }) => {
                info!(
                    from = %t.from,
                    to = %t.to,
                    version = item.version,
                    trigger = t.trigger.as_str(),
                    by = %t.by,
                    forced = t.forced,
                    reason = %t.reason,
                    "transition committed in the secondary"
                );
                match primary {
                    Ok(()) => info!(version = item.version, "primary copy updated"),
                    Err(e) => {
                        warn!(error = %e, "primary copy not updated yet; it will be caught up when it answers")
                    }
                }
                match dns {
                    Some(Ok(DnsAction::Upserted { from, to })) => {
                        info!(from = ?from, to = %to, "DNS record updated")
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "DNS record not updated yet; the sync will retry")
                    }
                    _ => {}
                }
                self.metrics.transition(t.from, t.to, t.trigger);
                self.policy.committed(item.clone(), now);
                state.publish_now = true;
                state.retry_at = None;
                state.backoff = RETRY_MIN;
                sync_now.notify_one();
            }
            Ok(Outcome::Deposed) => {
                warn!(
                    from = %t.from,
                    to = %t.to,
                    token = ?t.fence.as_ref().map(|f| f.token),
                    "deposed: another instance holds the leader lease now; the write was refused"
                );
                sync_now.notify_one();
            }
            Ok(Outcome::LostRace { current }) => {
                warn!(
                    from = %t.from,
                    to = %t.to,
                    expected_version = t.expected_version,
                    now_state = ?current.as_ref().map(|i| i.state),
                    now_version = ?current.as_ref().map(|i| i.version),
                    now_by = ?current.as_ref().and_then(|i| i.updated_by.clone()),
                    "lost the race: the config item changed before this write; not overwriting"
                );
                if let Some(item) = current.clone() {
                    let at = self.actuator.changed_at(&item, now);
                    self.policy.observe_item(item, at, now);
                }
                sync_now.notify_one();
            }
            Err(e) => {
                error!(from = %t.from, to = %t.to, error = %e, "transition failed; nothing was changed");
            }
        }
        result
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

    pub(super) async fn evaluate(&mut self, state: &mut LoopState, sync_now: &Notify) {
        let now = Instant::now();
        let (coordination, fence) = self.coordination(state, now);
        if coordination.is_some() {
            self.metrics.leader.set(i64::from(fence.is_some()));
            self.share_view(now);
        }
        self.policy.set_coordination(coordination);
        let verdict = self.policy.evaluate(now);
        self.log_verdict(&verdict, state);
        if let Verdict::Act(decision) = verdict
            && state.retry_at.is_none_or(|t| now >= t)
        {
            let reason = decision.reason.clone();
            let by = self.settings.monitor.instance_id.clone();
            let mut t = Self::transition_for(decision, reason, Trigger::Auto, by, false);
            t.fence = fence.clone();
            // Every attempt that did not commit backs off, whatever the reason: a
            // refused or lost write is looked at again after the next reads, not in a
            // tight loop against the table.
            if !matches!(
                self.commit(&t, state, sync_now).await,
                Ok(Outcome::Committed { .. })
            ) {
                info!(
                    retry_in_ms = state.backoff.as_millis() as u64,
                    "will retry the transition"
                );
                state.retry_at = Some(Instant::now() + state.backoff);
                state.backoff = (state.backoff * 2).min(RETRY_MAX);
            }
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
