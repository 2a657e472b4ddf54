//! `[policy]`: when the primary region counts as down, and whether the secondary must
//! be healthy to fail over into it.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected};
use serde::{Deserialize, Serialize};

use super::probes::ProbeSpec;
use super::{ConfigError, defaults, invalid};
use crate::model::Role;

/// How many of the primary's probes must be down for the primary to count as down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RegionRule {
    /// One of them.
    Any,
    /// All of them.
    All,
    /// More than half of the primary's probes.
    Majority,
    /// At least `n` of the `m` primary probes (`m` must be their count).
    AtLeast { n: usize, m: usize },
}

impl RegionRule {
    /// How many down probes out of `total` make the region down.
    pub fn threshold(self, total: usize) -> usize {
        match self {
            RegionRule::Any => 1,
            RegionRule::All => total,
            RegionRule::Majority => total / 2 + 1,
            RegionRule::AtLeast { n, .. } => n,
        }
    }
}

impl fmt::Display for RegionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionRule::Any => f.write_str("any"),
            RegionRule::All => f.write_str("all"),
            RegionRule::Majority => f.write_str("majority"),
            RegionRule::AtLeast { n, m } => write!(f, "{n} of {m}"),
        }
    }
}

impl<'de> Deserialize<'de> for RegionRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = RegionRule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"any\", \"all\", \"majority\" or \"<n> of <m>\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RegionRule, E> {
                match s {
                    "any" => return Ok(RegionRule::Any),
                    "all" => return Ok(RegionRule::All),
                    "majority" => return Ok(RegionRule::Majority),
                    _ => {}
                }
                let mut words = s.split_whitespace();
                if let (Some(n), Some("of"), Some(m), None) =
                    (words.next(), words.next(), words.next(), words.next())
                    && let (Ok(n), Ok(m)) = (n.parse(), m.parse())
                {
                    return Ok(RegionRule::AtLeast { n, m });
                }
                Err(E::invalid_value(Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(V)
    }
}

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
