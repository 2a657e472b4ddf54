//! The [`Status`] snapshot: a pure function of the settings, the policy and the
//! loop's state, published on a `watch` channel (and the gauges that follow the item).

use std::time::SystemTime;

use tokio::time::Instant;

use super::{Daemon, LoopState};
use crate::config::Settings;
use crate::control::Status;
use crate::policy::Policy;

/// What an observer sees of the loop at `now`. `holds_lease`: this instance may act.
pub(super) fn snapshot(
    settings: &Settings,
    policy: &Policy,
    state: &LoopState,
    holds_lease: bool,
    now: Instant,
) -> Status {
    let me = &settings.monitor.instance_id;
    let coordination = settings.coordination.as_ref();
    Status {
        instance_id: me.clone(),
        mode: settings.monitor.mode.as_str().into(),
        paused: policy.paused(),
        leader: match coordination {
            None => Some(me.clone()),
            Some(_) => state.coord.as_ref().and_then(|r| r.leader.clone()),
        },
        is_leader: coordination.is_none() || holds_lease,
        instances: state
            .coord
            .as_ref()
            .map(|r| r.peers.clone())
            .unwrap_or_default(),
        quorum: coordination.map(|c| {
            let live = state.coord.as_ref().map_or(1, |r| r.live());
            serde_json::json!({
                "rule": c.quorum.to_string(),
                "live": live,
                "needed": c.quorum.threshold(live),
                "primary_down": policy.effective_primary_down(),
            })
        }),
        item: policy.item().cloned(),
        primary_item: state.primary_item.clone(),
        secondary_item: state.secondary_item.clone(),
        divergence: state.divergence.clone(),
        probes: policy.probe_views(now),
        verdict: state.last_verdict.clone(),
        ready: policy.item().is_some(),
    }
}

impl Daemon {
    /// Updates the item's gauges and publishes a fresh snapshot.
    pub(super) fn publish(&self, state: &LoopState, holds_lease: bool) {
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
        let status = snapshot(
            &self.settings,
            &self.policy,
            state,
            holds_lease,
            Instant::now(),
        );
        self.status_tx.send_replace(status);
    }
}
