//! The rules a user picks in `monitor.toml` and the pure core applies: what the
//! daemon may do on its own ([`Mode`]), whether it fails back by itself
//! ([`Failback`]), when the primary counts as down ([`RegionRule`]) and how many
//! instances must agree ([`QuorumRule`]). `failover-config` parses them; the policy
//! reads them.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected};
use serde::{Deserialize, Serialize};

/// What the daemon may do on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Decide and write.
    Auto,
    /// Observe and report what it would do; only humans move the state.
    Manual,
    /// Decide and log the decision, never write.
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Manual => "manual",
            Mode::DryRun => "dry-run",
        }
    }
}

/// What a secondary found not ready does to an automatic failover
/// (`[readiness] failover`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadinessRule {
    /// The failover goes on; its reason (and the audit record) says the secondary
    /// was not ready, and why.
    #[default]
    Warn,
    /// No automatic failover while the last check found the secondary not ready.
    Block,
}

impl ReadinessRule {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadinessRule::Warn => "warn",
            ReadinessRule::Block => "block",
        }
    }
}

/// Whether the daemon moves `failover` back to `active` by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Failback {
    /// Only a human moves `failover` back to `active`.
    Manual,
    /// Back to `active` once the primary has been up for `failback_after`.
    Auto,
}

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
        self.threshold_of(total, total)
    }

    /// How many down probes make the region down when only `decisive` of the
    /// region's `total` probes can judge it (the others inconclusive: their errors
    /// are about the monitor). The rule applies to the decisive ones: `all` of them,
    /// a majority of them, and `n of m` in proportion, `ceil(n x decisive / m)`.
    pub fn threshold_of(self, decisive: usize, total: usize) -> usize {
        match self {
            RegionRule::Any => 1,
            RegionRule::All => decisive,
            RegionRule::Majority => decisive / 2 + 1,
            RegionRule::AtLeast { n, m } => {
                let m = m.max(total).max(1);
                (n * decisive).div_ceil(m).max(1)
            }
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

/// How many of the configured instances must see the primary down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum QuorumRule {
    /// More than half of the configured instances.
    Majority,
    /// At least this many.
    AtLeast(usize),
}

impl<'de> Deserialize<'de> for QuorumRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = QuorumRule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"majority\" or a whole number of instances")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<QuorumRule, E> {
                match s {
                    "majority" => Ok(QuorumRule::Majority),
                    other => other
                        .parse()
                        .map(QuorumRule::AtLeast)
                        .map_err(|_| E::invalid_value(Unexpected::Str(s), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<QuorumRule, E> {
                usize::try_from(n)
                    .map(QuorumRule::AtLeast)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(n), &self))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<QuorumRule, E> {
                usize::try_from(n)
                    .map(QuorumRule::AtLeast)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
            }
        }
        d.deserialize_any(V)
    }
}

impl QuorumRule {
    /// Down votes needed among `configured` instances.
    pub fn threshold(self, configured: usize) -> usize {
        match self {
            QuorumRule::Majority => configured / 2 + 1,
            QuorumRule::AtLeast(n) => n,
        }
    }
}

impl fmt::Display for QuorumRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumRule::Majority => f.write_str("majority"),
            QuorumRule::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mode_is_named_as_monitor_toml_spells_it() {
        for (mode, name) in [
            (Mode::Auto, "auto"),
            (Mode::Manual, "manual"),
            (Mode::DryRun, "dry-run"),
        ] {
            assert_eq!(mode.as_str(), name);
            assert_eq!(serde_json::to_value(mode).unwrap(), name);
        }
    }

    #[test]
    fn a_readiness_rule_is_named_as_monitor_toml_spells_it() {
        for (rule, name) in [
            (ReadinessRule::Warn, "warn"),
            (ReadinessRule::Block, "block"),
        ] {
            assert_eq!(rule.as_str(), name);
            assert_eq!(serde_json::to_value(rule).unwrap(), name);
        }
    }

    #[test]
    fn a_region_rule_counts_the_down_probes_that_make_the_region_down() {
        assert_eq!(RegionRule::Any.threshold(4), 1);
        assert_eq!(RegionRule::All.threshold(4), 4);
        assert_eq!(RegionRule::Majority.threshold(4), 3);
        assert_eq!(RegionRule::Majority.threshold(5), 3);
        assert_eq!(RegionRule::AtLeast { n: 3, m: 4 }.threshold(4), 3);
        // Of the decisive probes only: `all` of them, `n of m` in proportion.
        assert_eq!(RegionRule::All.threshold_of(2, 4), 2);
        assert_eq!(RegionRule::AtLeast { n: 3, m: 4 }.threshold_of(2, 4), 2);
        assert_eq!(RegionRule::AtLeast { n: 1, m: 4 }.threshold_of(1, 4), 1);
    }

    #[test]
    fn a_region_rule_reads_and_prints_as_written() {
        for (text, rule) in [
            ("any", RegionRule::Any),
            ("all", RegionRule::All),
            ("majority", RegionRule::Majority),
            ("2 of 3", RegionRule::AtLeast { n: 2, m: 3 }),
        ] {
            let read: RegionRule = serde_json::from_value(text.into()).unwrap();
            assert_eq!(read, rule);
            assert_eq!(rule.to_string(), text);
        }
        let e = serde_json::from_value::<RegionRule>("most".into()).unwrap_err();
        assert!(
            e.to_string()
                .contains(r#""any", "all", "majority" or "<n> of <m>""#),
            "{e}"
        );
    }

    #[test]
    fn a_quorum_rule_counts_the_down_votes_needed() {
        assert_eq!(QuorumRule::Majority.threshold(3), 2);
        assert_eq!(QuorumRule::Majority.threshold(4), 3);
        assert_eq!(QuorumRule::Majority.threshold(5), 3);
        assert_eq!(QuorumRule::AtLeast(2).threshold(5), 2);
        for (text, rule) in [
            ("majority", QuorumRule::Majority),
            ("2", QuorumRule::AtLeast(2)),
        ] {
            let read: QuorumRule = serde_json::from_value(text.into()).unwrap();
            assert_eq!(read, rule);
            assert_eq!(rule.to_string(), text);
        }
        let e = serde_json::from_value::<QuorumRule>("most".into()).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"majority\" or a whole number of instances"),
            "{e}"
        );
    }
}
