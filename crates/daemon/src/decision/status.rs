//! The [`Status`] snapshot: a pure function of the settings, the policy and the
//! loop's state, published on a `watch` channel (and the gauges that follow the item).

use std::time::SystemTime;

use tokio::time::Instant;

use super::{Daemon, LoopState};
use crate::control::{OverrideView, Overrides, Status};
use crate::coord::{Leadership, instance_of};
use failover_config::Settings;
use failover_core::overrides::Left;
use failover_core::policy::Policy;

/// What an observer sees of the loop at `now`.
pub(super) fn snapshot(
    settings: &Settings,
    policy: &Policy,
    state: &LoopState,
    leadership: &Leadership,
    now: Instant,
) -> Status {
    let me = &settings.monitor.instance_id;
    let coordination = settings.coordination.as_ref();
    let report = state.coord.as_ref();
    Status {
        instance_id: me.clone(),
        mode: settings.monitor.mode.as_str().into(),
        paused: policy.paused(),
        pause: state.pause.clone(),
        leader: match coordination {
            None => Some(me.clone()),
            Some(_) => report
                .and_then(|r| r.leader.as_deref())
                .map(|o| instance_of(o).to_owned()),
        },
        is_leader: leadership.acts(),
        instances: report
            .zip(coordination)
            .map(|(r, c)| r.instances(me, c.view_ttl, now))
            .unwrap_or_default(),
        quorum: coordination.map(|_| quorum(policy, now)),
        duplicate: report.and_then(|r| r.duplicate.clone()),
        coordination_mismatch: report.map(|r| r.mismatch.clone()).unwrap_or_default(),
        needs_human: state.commits.needs_human().map(|n| n.reason.clone()),
        committing: state.commits.in_flight(),
        item: policy.item().cloned(),
        primary_item: state.primary_item.clone(),
        secondary_item: state.secondary_item.clone(),
        divergence: state.divergence.clone(),
        dns_error: state.dns_error.clone(),
        probes: policy.probe_views(now),
        verdict: state.last_verdict.clone(),
        ready: policy.item().is_some(),
        overrides: overrides(policy, state),
        secondary_readiness: state.readiness.clone(),
        drill: state.drill.as_ref().and_then(|d| d.borrow().clone()),
    }
}

/// A human's pause and fence in force, and what is left of each.
fn overrides(policy: &Policy, state: &LoopState) -> Overrides {
    let view = |by: Option<&str>, end: Option<SystemTime>, left: Option<Left>| {
        let (end, left) = (end?, left?);
        Some(OverrideView {
            by: by.unwrap_or_default().to_owned(),
            until: failover_core::overrides::format(end),
            left_s: left.seconds() as u64,
        })
    };
    let pause = state.pause.as_ref().filter(|p| p.paused);
    let pause_end = pause.and_then(|p| {
        failover_core::overrides::end(
            p.until.as_deref(),
            Some(&p.at),
            policy.config().max_override,
        )
    });
    let item = policy.item();
    Overrides {
        pause: view(pause.map(|p| p.by.as_str()), pause_end, policy.pause_left()),
        fence: view(
            item.and_then(|i| i.updated_by.as_deref()),
            policy.fence_end(),
            policy.fence_left(),
        ),
    }
}

/// The quorum as the policy counts it now.
fn quorum(policy: &Policy, now: Instant) -> serde_json::Value {
    let Some(c) = policy.coordination() else {
        return serde_json::Value::Null;
    };
    let (vote, _) = policy.vote(now);
    serde_json::json!({
        "rule": c.quorum.to_string(),
        "configured": c.configured,
        "live": 1 + c.others_live,
        "needed": c.needed(),
        "down_votes": policy.down_votes(now),
        "own_vote": vote,
        "reachable": c.reachable(),
        "primary_down": policy.effective_primary_down(now),
    })
}

impl Daemon {
    /// Updates the item's gauges and publishes a fresh snapshot.
    pub(super) fn publish(&self, state: &LoopState, leadership: &Leadership) {
        let fenced = self.policy.fenced_for(Instant::now()).unwrap_or_default();
        self.metrics.fenced_seconds.set(fenced.as_secs_f64());
        if let Some(item) = self.policy.item() {
            self.metrics.set_state(item.state);
            self.metrics
                .item_version
                .set(i64::try_from(item.version).unwrap_or(i64::MAX));
            if let Some(t) = item
                .updated_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            {
                self.metrics.last_transition.set(t.as_secs_f64());
            }
        }
        let expiry = &self.metrics.override_expiry;
        for (kind, left) in [
            ("pause", self.policy.pause_left()),
            ("fence", self.policy.fence_left()),
        ] {
            match left {
                Some(left) => expiry.with_label_values(&[kind]).set(left.seconds()),
                None => {
                    let _ = expiry.remove_label_values(&[kind]);
                }
            }
        }
        self.metrics.paused.set(i64::from(self.policy.paused()));
        let status = snapshot(
            &self.settings,
            &self.policy,
            state,
            leadership,
            Instant::now(),
        );
        self.status_tx.send_replace(status);
    }
}
