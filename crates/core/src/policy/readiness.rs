//! The secondary's readiness as an input of the safety rules: what the last check
//! concluded ([`SecondaryReadiness`]) and what `[readiness] failover` makes of a
//! secondary found not ready: a block, or a warning in the move's reason.
//!
//! A readiness never checked (a process just started) or a check that could say
//! nothing about the secondary (its calls refused for the monitor's own
//! permissions, say) is `Unknown`, and never blocks: evidence about the monitor is
//! not evidence about the region, and a real outage must still be failed over.

use super::{Blocked, Policy};
use crate::rules::ReadinessRule;

/// What the last readiness check of the secondary concluded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SecondaryReadiness {
    /// Not checked yet, or the check could say nothing about the secondary.
    #[default]
    Unknown,
    /// Every part that could be checked was as it should be.
    Ready,
    /// Something the secondary needs to take the traffic is missing or wrong (why).
    NotReady(Vec<String>),
}

impl Policy {
    /// What a secondary found not ready does to an automatic failover.
    pub fn set_readiness_rule(&mut self, rule: ReadinessRule) {
        self.readiness.0 = rule;
    }

    /// Takes in the conclusion of a readiness check.
    pub fn observe_readiness(&mut self, readiness: SecondaryReadiness) {
        self.readiness.1 = readiness;
    }

    /// The last readiness check's conclusion, as the gate reads it.
    pub fn readiness(&self) -> &SecondaryReadiness {
        &self.readiness.1
    }

    /// The readiness gate of a move towards the secondary: blocked (`block` and
    /// found not ready), or allowed with a warning for its reason (`warn`), or
    /// allowed as it is (ready, or unknown).
    pub(super) fn readiness_gate(&self) -> Result<Option<String>, Blocked> {
        let SecondaryReadiness::NotReady(reasons) = &self.readiness.1 else {
            return Ok(None);
        };
        match self.readiness.0 {
            ReadinessRule::Block => Err(Blocked::SecondaryNotReady {
                reasons: reasons.clone(),
            }),
            ReadinessRule::Warn => Ok(Some(format!(
                "warning: the secondary was not ready at its last check \
                 ([readiness] failover = \"warn\"): {}",
                reasons.join("; ")
            ))),
        }
    }
}
