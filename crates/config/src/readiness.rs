//! `[readiness]`: the continuous check that the secondary can take the traffic, how
//! often it runs, and what a secondary found not ready does to an automatic
//! failover. Optional; every key has a default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{HumanDuration, check_at_least, or_default};
use super::{ConfigError, defaults};
use failover_core::rules::ReadinessRule;

/// `[readiness]` as written; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReadiness {
    /// How often the secondary's readiness is checked (its half of the stack as
    /// `provision plan` wants it, its REST APIs' stage, its table replicas, a write
    /// in the commit region). Duration, at least `"1s"`. Default: `"5m"`.
    every: Option<HumanDuration>,
    /// What a secondary found not ready at its last check does to an automatic
    /// failover: `"warn"` (it goes on, its reason and audit record say why the
    /// secondary was not ready) or `"block"` (no automatic failover until a check
    /// finds it ready; a human can still move). A readiness not yet known never
    /// blocks. Default: `"warn"`.
    failover: Option<ReadinessRule>,
}

/// `[readiness]`, validated, with the defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadinessSettings {
    /// How often the check runs.
    pub every: Duration,
    /// What a not-ready secondary does to an automatic failover.
    pub failover: ReadinessRule,
}

impl Default for ReadinessSettings {
    fn default() -> Self {
        Self {
            every: defaults::READINESS_EVERY,
            failover: ReadinessRule::default(),
        }
    }
}

impl RawReadiness {
    pub(super) fn validate(self) -> Result<ReadinessSettings, ConfigError> {
        let every = or_default(self.every, defaults::READINESS_EVERY);
        check_at_least("readiness.every", every, Duration::from_secs(1))?;
        Ok(ReadinessSettings {
            every,
            failover: self.failover.unwrap_or_default(),
        })
    }
}
