//! `[monitor]`: who this instance is, what it may do on its own, and its timing.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{HumanDuration, check_at_least, or_default};
use super::{ConfigError, Failback, Mode, defaults, invalid};

/// `[monitor]` as written; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitor {
    /// This instance's name, written as `updatedBy` of the items it commits; unique per
    /// cooperating instance. Must not be empty or start with `admin:` or `cli:`.
    /// Default: the host name.
    pub(super) instance_id: Option<String>,
    /// What the daemon may do on its own: `"auto"` (decide and write), `"manual"`
    /// (observe and report; only humans move the state) or `"dry-run"` (decide and
    /// log, never write). Default: `"auto"`.
    pub(super) mode: Option<Mode>,
    /// `"manual"`: only a human moves `failover` back to `active`; `"auto"`: the
    /// daemon does, once the primary has been up for `failback_after`.
    /// Default: `"manual"`.
    pub(super) failback: Option<Failback>,
    /// With `failback = "auto"`: how long the primary must have been up before the
    /// daemon fails back. Duration. Default: `"10m"`.
    pub(super) failback_after: Option<HumanDuration>,
    /// No automatic transition sooner than this after the last one. Duration.
    /// Default: `"5m"`.
    pub(super) hold_down: Option<HumanDuration>,
    /// Above zero, a failover takes two steps: `active` -> `fenced` (writes blocked),
    /// wait at least this long, -> `failover`. Duration. Default: `"0s"` (one step).
    pub(super) fence_for: Option<HumanDuration>,
    /// While fenced, wait for replication to drain, but no longer than this; at least
    /// `fence_for`. Duration. Default: `fence_for` (a fixed fence).
    pub(super) max_fence: Option<HumanDuration>,
    /// How often both regions' copies of the config item are read (and a lagging one
    /// caught up). Duration, at least `"100ms"`. Default: `"5s"`.
    pub(super) state_refresh: Option<HumanDuration>,
    /// Upper bound of one AWS write attempt by the actuator. Duration, at least
    /// `"100ms"`, at most `"8s"` (`"4800ms"` with `[route53]`): a human's move makes
    /// up to 3 such calls (5 with `[route53]`) and is answered within the admin API's
    /// 30 s or not started. Default: `"3s"`.
    pub(super) write_timeout: Option<HumanDuration>,
    /// Append every probe result to this JSONL file, for `failover-monitor backtest`.
    /// Default: none (nothing recorded).
    pub(super) record_observations: Option<PathBuf>,
    /// The longest a human's pause or fence lasts: each ends after its `--for`
    /// (`"for"` in the admin API), at most this, and this when none is given; the
    /// monitors then lift it. Duration, above zero. Default: `"72h"`.
    pub(super) max_override: Option<HumanDuration>,
}

/// `[monitor]`, validated, with the defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorSettings {
    /// Unique per cooperating instance; written as `updatedBy`.
    pub instance_id: String,
    /// What the daemon may do on its own.
    pub mode: Mode,
    /// Whether the daemon moves `failover` back to `active` by itself.
    pub failback: Failback,
    /// With `failback = "auto"`: how long the primary must have been up.
    pub failback_after: Duration,
    /// No automatic transition sooner than this after the last one.
    pub hold_down: Duration,
    /// > 0: fail over in two steps, active -> fenced, wait this long, -> failover.
    pub fence_for: Duration,
    /// While fenced, wait for replication to drain, but no longer than this
    /// (default: `fence_for`, i.e. a fixed fence).
    pub max_fence: Duration,
    /// How often both copies of the config item are read (and the lagging one caught up).
    pub state_refresh: Duration,
    /// Upper bound of one AWS write attempt by the actuator.
    pub write_timeout: Duration,
    /// Append every probe result to this JSONL file, for `failover-monitor backtest`.
    pub record_observations: Option<PathBuf>,
    /// The longest a human's pause or fence lasts.
    pub max_override: Duration,
}

/// The shortest `state_refresh` and `write_timeout`: below it, AWS calls time out
/// before they can succeed.
const MIN_PERIOD: Duration = Duration::from_millis(100);

impl RawMonitor {
    pub(super) fn validate(self) -> Result<MonitorSettings, ConfigError> {
        let instance_id = self.instance_id.unwrap_or_else(defaults::instance_id);
        if instance_id.is_empty()
            || instance_id.starts_with("admin:")
            || instance_id.starts_with("cli:")
        {
            return Err(invalid(
                "monitor.instance_id",
                format!("{instance_id:?}"),
                "must be non-empty and must not start with \"admin:\" or \"cli:\"",
            ));
        }
        let fence_for = or_default(self.fence_for, defaults::FENCE_FOR);
        let monitor = MonitorSettings {
            instance_id,
            mode: self.mode.unwrap_or(defaults::MODE),
            failback: self.failback.unwrap_or(defaults::FAILBACK),
            failback_after: or_default(self.failback_after, defaults::FAILBACK_AFTER),
            hold_down: or_default(self.hold_down, defaults::HOLD_DOWN),
            fence_for,
            max_fence: or_default(self.max_fence, fence_for),
            state_refresh: or_default(self.state_refresh, defaults::STATE_REFRESH),
            write_timeout: or_default(self.write_timeout, defaults::WRITE_TIMEOUT),
            record_observations: self.record_observations,
            max_override: or_default(self.max_override, defaults::MAX_OVERRIDE),
        };
        if monitor.max_override.is_zero() {
            return Err(invalid(
                "monitor.max_override",
                HumanDuration(monitor.max_override),
                "must be greater than 0: every pause and fence a human sets ends",
            ));
        }
        if monitor.max_fence < monitor.fence_for {
            return Err(invalid(
                "monitor.max_fence",
                HumanDuration(monitor.max_fence),
                format!(
                    "must be at least monitor.fence_for ({})",
                    HumanDuration(monitor.fence_for)
                ),
            ));
        }
        check_at_least("monitor.state_refresh", monitor.state_refresh, MIN_PERIOD)?;
        check_at_least("monitor.write_timeout", monitor.write_timeout, MIN_PERIOD)?;
        Ok(monitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Option<HumanDuration> {
        Some(HumanDuration(Duration::from_secs(s)))
    }

    #[test]
    fn max_fence_follows_fence_for_and_may_not_be_shorter() {
        let m = RawMonitor {
            instance_id: Some("m".into()),
            fence_for: secs(30),
            ..RawMonitor::default()
        };
        assert_eq!(m.validate().unwrap().max_fence, Duration::from_secs(30));
        let m = RawMonitor {
            instance_id: Some("m".into()),
            fence_for: secs(30),
            max_fence: secs(10),
            ..RawMonitor::default()
        };
        assert_eq!(
            m.validate().unwrap_err().to_string(),
            "monitor.max_fence = 10s: must be at least monitor.fence_for (30s)"
        );
    }

    #[test]
    fn instance_ids_cannot_pose_as_humans() {
        for bad in ["", "admin:alice", "cli:bob"] {
            let m = RawMonitor {
                instance_id: Some(bad.into()),
                ..RawMonitor::default()
            };
            assert!(m.validate().is_err(), "{bad:?}");
        }
        let m = RawMonitor::default().validate().unwrap();
        assert!(!m.instance_id.is_empty());
    }
}
