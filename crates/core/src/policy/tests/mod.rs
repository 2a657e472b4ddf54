//! The policy's tests, one file per theme; the helpers here.

mod drills;
mod items;
mod manual;
mod overrides;
mod quorum;
mod readiness;
mod rules;
mod timers;

pub(super) use std::time::Duration;

pub(super) use tokio::time::{Instant, advance};

pub(super) use super::*;
pub(super) use crate::model::AppState;
pub(super) use crate::rules::{Failback, Mode, RegionRule};
pub(super) use failover_config::defaults;

pub(super) fn cfg() -> PolicyConfig {
    PolicyConfig {
        mode: Mode::Auto,
        failback: Failback::Manual,
        failback_after: Duration::from_secs(600),
        hold_down: Duration::from_secs(300),
        fence_for: Duration::ZERO,
        max_fence: Duration::ZERO,
        rule: RegionRule::Any,
        require_healthy_secondary: true,
        evidence_ttl: Duration::from_secs(3600),
        fence_expiry: Duration::from_secs(600),
        max_override: Duration::from_secs(72 * 3600),
    }
}

/// `primary` and `secondary` probes, all with the given fall and rise.
pub(super) fn policy(
    cfg: PolicyConfig,
    primary: usize,
    secondary: usize,
    fall: u32,
    rise: u32,
) -> Policy {
    let probes = (0..primary)
        .map(|i| (format!("p{i}"), Role::Primary, fall, rise))
        .chain((0..secondary).map(|i| (format!("s{i}"), Role::Secondary, fall, rise)));
    Policy::new(cfg, probes)
}

pub(super) fn item(state: AppState, version: u64) -> ConfigItem {
    ConfigItem {
        state,
        version,
        updated_at: None,
        updated_by: Some("monitor-a".into()),
        reason: None,
        expires_at: None,
    }
}

pub(super) fn obs(probe: usize, ok: bool, at: Instant) -> Observation {
    Observation {
        probe,
        at,
        ok,
        latency: Duration::from_millis(3),
        error: (!ok).then(|| "connection refused".into()),
        monitor_side: false,
    }
}

/// Feeds `n` results to every probe of the given indices.
pub(super) fn feed(
    p: &mut Policy,
    probes: impl IntoIterator<Item = usize> + Clone,
    ok: bool,
    n: u32,
    at: Instant,
) {
    for _ in 0..n {
        for i in probes.clone() {
            p.observe(&obs(i, ok, at));
        }
    }
}

pub(super) fn target(v: &Verdict) -> Option<AppState> {
    match v {
        Verdict::Act(d) => Some(d.to),
        _ => None,
    }
}
