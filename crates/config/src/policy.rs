//! `[policy]`: when the primary region counts as down, and whether the secondary must
//! be healthy to fail over into it.

use serde::{Deserialize, Serialize};

use super::probes::ProbeSpec;
use super::{ConfigError, RegionRule, defaults, invalid};
use failover_core::model::Role;

/// `[policy]` as written; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    /// How many of the primary's probes must be down (after fall/rise) for the primary
    /// to count as down: `"any"`, `"all"`, `"majority"` (more than half) or
    /// `"<n> of <m>"`, where `m` is the number of primary probes and `n` is 1 to `m`.
    /// Default: `"majority"`.
    pub(super) failover_when: Option<RegionRule>,
    /// `true`: no automatic failover unless every secondary probe is up (a human can
    /// still force one). Default: `true`.
    pub(super) require_healthy_secondary: Option<bool>,
}

/// `[policy]`, validated, with the defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct PolicySettings {
    /// How many of the primary's probes must be down for the primary to count as down.
    pub failover_when: RegionRule,
    /// No automatic failover unless every secondary probe is up.
    pub require_healthy_secondary: bool,
}

impl RawPolicy {
    /// `probes` are the validated probes: `"<n> of <m>"` must count the primary's.
    pub(super) fn validate(self, probes: &[ProbeSpec]) -> Result<PolicySettings, ConfigError> {
        let policy = PolicySettings {
            failover_when: self.failover_when.unwrap_or(defaults::FAILOVER_WHEN),
            require_healthy_secondary: self
                .require_healthy_secondary
                .unwrap_or(defaults::REQUIRE_HEALTHY_SECONDARY),
        };
        let primary = probes.iter().filter(|p| p.region == Role::Primary).count();
        if let RegionRule::AtLeast { n, m } = policy.failover_when
            && (n == 0 || n > m || m != primary)
        {
            return Err(invalid(
                "policy.failover_when",
                format!("\"{n} of {m}\""),
                format!(
                    "n must be between 1 and m, and m must equal the number of primary \
                     probes ({primary})"
                ),
            ));
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_rules_parse_and_count() {
        let rule: RegionRule = serde_json::from_value(serde_json::json!("2 of 3")).unwrap();
        assert_eq!(rule, RegionRule::AtLeast { n: 2, m: 3 });
        assert_eq!(rule.threshold(3), 2);
        assert_eq!(rule.to_string(), "2 of 3");
        assert_eq!(RegionRule::Majority.threshold(1), 1);
        assert_eq!(RegionRule::Majority.threshold(4), 3);
        assert_eq!(RegionRule::All.threshold(4), 4);
        assert!(serde_json::from_value::<RegionRule>(serde_json::json!("2 of")).is_err());
    }

    #[test]
    fn n_of_m_must_count_the_primary_probes() {
        let policy = RawPolicy {
            failover_when: Some(RegionRule::AtLeast { n: 1, m: 2 }),
            require_healthy_secondary: None,
        };
        assert_eq!(
            policy.validate(&[]).unwrap_err().to_string(),
            "policy.failover_when = \"1 of 2\": n must be between 1 and m, and m must equal \
             the number of primary probes (0)"
        );
        let defaults = RawPolicy::default().validate(&[]).unwrap();
        assert_eq!(defaults.failover_when, RegionRule::Majority);
        assert!(defaults.require_healthy_secondary);
    }
}
