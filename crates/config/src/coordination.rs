//! `[coordination]`: several instances cooperating through the config table in the
//! secondary region (a leader lease and a quorum of views; see ARCHITECTURE.md).

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{HumanDuration, check_at_least, or_default};
use super::{ConfigError, QuorumRule, defaults, invalid};

/// `[coordination]` as written. Without `instances` the section must be empty: the
/// instance acts alone.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCoordination {
    /// Every cooperating instance's `monitor.instance_id`, this one included; unique,
    /// non-empty, without `#`. Setting it turns coordination on. Default: none (this
    /// instance acts alone).
    pub(super) instances: Option<Vec<String>>,
    /// How long a leader's lease lasts without renewal; at least 3 x `renew_every`.
    /// Duration. Default: `"10s"`.
    pub(super) lease: Option<HumanDuration>,
    /// How often the leader renews its lease and every instance publishes its view;
    /// at least `"100ms"`. Duration. Default: `"2s"`.
    pub(super) renew_every: Option<HumanDuration>,
    /// A peer whose view has not changed for this long is not live (and its vote does
    /// not count); a down vote counts while the evidence behind it plus the time since
    /// its view changed (dated at the reader's previous read) is within it. At least
    /// 2 x `renew_every` plus the slowest primary probe's `interval + jitter +
    /// timeout`. Duration. Default: `lease`.
    pub(super) view_ttl: Option<HumanDuration>,
    /// How many of the configured `instances` must see the primary down before the
    /// leader fails over, however many are live: `"majority"` (more than half of
    /// them) or a whole number from 1 to the number of `instances`. Default:
    /// `"majority"`. A number at most half of `instances` needs
    /// `allow_minority_quorum`.
    pub(super) quorum: Option<QuorumRule>,
    /// `true` allows a `quorum` of at most half of the `instances`: a minority that
    /// sees the primary down (its own network broken, say) may then fail a healthy
    /// primary over, and two sides of a partition may both think they decide. Only
    /// for a deployment that accepts that. Default: `false`.
    pub(super) allow_minority_quorum: Option<bool>,
}

/// Several instances cooperating through the config table in the secondary region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoordinationSettings {
    /// Every cooperating instance's `instance_id` (this one included).
    pub instances: Vec<String>,
    /// How long a leader's lease lasts without renewal.
    pub lease: Duration,
    /// How often the lease is renewed and this instance's view published.
    pub renew_every: Duration,
    /// A peer whose view has not changed for this long is not live.
    pub view_ttl: Duration,
    /// How many of the configured instances must see the primary down.
    pub quorum: QuorumRule,
    /// A quorum of at most half of the instances was allowed explicitly.
    pub allow_minority_quorum: bool,
}

impl CoordinationSettings {
    /// A digest of the section as it counts for cooperation: the instances (in any
    /// order), the lease, the renewal, the view TTL and the quorum. Published in
    /// every view, so that instances running different sections notice. FNV-1a, 64
    /// bits, in hex: stable across builds and versions, unlike Rust's own hasher.
    pub fn digest(&self) -> String {
        let mut instances = self.instances.clone();
        instances.sort();
        let text = format!(
            "instances={};lease={};renew_every={};view_ttl={};quorum={};minority={}",
            instances.join(","),
            self.lease.as_millis(),
            self.renew_every.as_millis(),
            self.view_ttl.as_millis(),
            self.quorum,
            self.allow_minority_quorum
        );
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{hash:016x}")
    }
}

impl RawCoordination {
    /// `me` is this instance's `monitor.instance_id`. None: no coordination.
    pub(super) fn validate(self, me: &str) -> Result<Option<CoordinationSettings>, ConfigError> {
        let Some(instances) = self.instances else {
            if self.lease.is_some()
                || self.renew_every.is_some()
                || self.view_ttl.is_some()
                || self.quorum.is_some()
                || self.allow_minority_quorum.is_some()
            {
                return Err(ConfigError::Parse {
                    key: "coordination.instances".into(),
                    message: "missing; the other coordination keys need the list of \
                              cooperating instances"
                        .into(),
                });
            }
            return Ok(None);
        };
        check_instances(&instances, me)?;
        let renew_every = or_default(self.renew_every, defaults::RENEW_EVERY);
        let lease = or_default(self.lease, defaults::LEASE);
        let view_ttl = or_default(self.view_ttl, lease);
        check_timing(renew_every, lease, view_ttl)?;
        let quorum = self.quorum.unwrap_or(defaults::QUORUM);
        if let QuorumRule::AtLeast(n) = quorum
            && (n == 0 || n > instances.len())
        {
            return Err(invalid(
                "coordination.quorum",
                n,
                format!(
                    "must be \"majority\" or between 1 and the number of instances ({})",
                    instances.len()
                ),
            ));
        }
        let allow_minority_quorum = self.allow_minority_quorum.unwrap_or(false);
        if quorum.threshold(instances.len()) * 2 <= instances.len() && !allow_minority_quorum {
            return Err(invalid(
                "coordination.quorum",
                quorum,
                format!(
                    "at most half of the {} instances: a minority that sees the primary down \
                     (its own network broken) could fail a healthy primary over; use \
                     \"majority\", or set coordination.allow_minority_quorum = true to accept that",
                    instances.len()
                ),
            ));
        }
        Ok(Some(CoordinationSettings {
            instances,
            lease,
            renew_every,
            view_ttl,
            quorum,
            allow_minority_quorum,
        }))
    }
}

/// A peer's down vote counts while its evidence is younger than `view_ttl`: the
/// evidence is up to one probe round old (interval, jitter, timeout) when the view
/// is published, and a reader dates the view's change at its previous read, up to
/// one round of reading and the round's own calls earlier (2 x renew_every leaves a
/// whole `renew_every` for those calls). A shorter `view_ttl` would let no vote ever
/// count, and no failover ever happen.
pub(super) fn check_votes_can_be_fresh(
    c: &CoordinationSettings,
    probes: &[super::ProbeSpec],
) -> Result<(), ConfigError> {
    let round = probes
        .iter()
        .filter(|p| p.region == failover_core::model::Role::Primary)
        .map(|p| p.interval + p.jitter + p.timeout)
        .max()
        .unwrap_or_default();
    let needed = c.renew_every * 2 + round;
    if c.view_ttl < needed {
        return Err(invalid(
            "coordination.view_ttl",
            HumanDuration(c.view_ttl),
            format!(
                "must be at least 2 x renew_every + the slowest primary probe's \
                 interval + jitter + timeout ({}): a vote on older evidence never counts",
                HumanDuration(needed)
            ),
        ));
    }
    Ok(())
}

fn check_instances(instances: &[String], me: &str) -> Result<(), ConfigError> {
    if !instances.iter().any(|i| i == me) {
        return Err(invalid(
            "coordination.instances",
            format!("{instances:?}"),
            format!("must include this instance's monitor.instance_id ({me:?})"),
        ));
    }
    let unique: HashSet<&String> = instances.iter().collect();
    if unique.len() != instances.len() || instances.iter().any(|i| i.is_empty() || i.contains('#'))
    {
        return Err(invalid(
            "coordination.instances",
            format!("{instances:?}"),
            "instance ids must be unique, non-empty and without '#'",
        ));
    }
    Ok(())
}

/// The lease must outlive a few lost renewals, and a view must survive a late one.
fn check_timing(
    renew_every: Duration,
    lease: Duration,
    view_ttl: Duration,
) -> Result<(), ConfigError> {
    check_at_least(
        "coordination.renew_every",
        renew_every,
        Duration::from_millis(100),
    )?;
    if lease < renew_every * 3 {
        return Err(invalid(
            "coordination.lease",
            HumanDuration(lease),
            format!(
                "must be at least 3 x renew_every ({})",
                HumanDuration(renew_every * 3)
            ),
        ));
    }
    if view_ttl < renew_every * 2 {
        return Err(invalid(
            "coordination.view_ttl",
            HumanDuration(view_ttl),
            format!(
                "must be at least 2 x renew_every ({})",
                HumanDuration(renew_every * 2)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instances(ids: &[&str]) -> RawCoordination {
        RawCoordination {
            instances: Some(ids.iter().map(|s| s.to_string()).collect()),
            ..RawCoordination::default()
        }
    }

    #[test]
    fn coordination_is_off_without_instances_and_defaults_otherwise() {
        assert_eq!(RawCoordination::default().validate("a").unwrap(), None);
        let c = instances(&["a", "b", "c"]).validate("a").unwrap().unwrap();
        assert_eq!(
            (c.lease, c.renew_every, c.view_ttl, c.quorum),
            (
                defaults::LEASE,
                defaults::RENEW_EVERY,
                defaults::LEASE,
                QuorumRule::Majority
            )
        );
        let orphan = RawCoordination {
            quorum: Some(QuorumRule::AtLeast(2)),
            ..RawCoordination::default()
        };
        assert_eq!(
            orphan.validate("a").unwrap_err().to_string(),
            "coordination.instances: missing; the other coordination keys need the list of \
             cooperating instances"
        );
    }

    #[test]
    fn quorum_reads_words_and_numbers() {
        let q: QuorumRule = serde_json::from_value(serde_json::json!(2)).unwrap();
        assert_eq!(q, QuorumRule::AtLeast(2));
        let q: QuorumRule = serde_json::from_value(serde_json::json!("majority")).unwrap();
        assert_eq!(q.threshold(5), 3);
        assert!(serde_json::from_value::<QuorumRule>(serde_json::json!(-1)).is_err());
        let mut c = instances(&["a", "b"]);
        c.quorum = Some(QuorumRule::AtLeast(3));
        assert!(c.validate("a").is_err());
    }

    #[test]
    fn a_minority_quorum_needs_an_explicit_key() {
        for (n, of, ok) in [
            (1, 3, false),
            (2, 3, true),
            (2, 4, false),
            (3, 4, true),
            (1, 1, true),
        ] {
            let names: Vec<String> = (0..of).map(|i| format!("m{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut c = instances(&names);
            c.quorum = Some(QuorumRule::AtLeast(n));
            assert_eq!(c.validate("m0").is_ok(), ok, "{n} of {of}");
            let mut c = instances(&names);
            c.quorum = Some(QuorumRule::AtLeast(n));
            c.allow_minority_quorum = Some(true);
            assert!(c.validate("m0").is_ok(), "{n} of {of}, allowed");
        }
        assert!(
            instances(&["a", "b"]).validate("a").is_ok(),
            "majority of two is two"
        );
    }

    #[test]
    fn ids_are_unique_and_include_this_instance() {
        assert!(instances(&["a", "a"]).validate("a").is_err());
        assert!(instances(&["a", "b#c"]).validate("a").is_err());
        assert!(instances(&["b"]).validate("a").is_err());
    }

    #[test]
    fn the_digest_follows_what_counts_for_cooperation_only() {
        let a = instances(&["a", "b", "c"]).validate("a").unwrap().unwrap();
        let b = instances(&["c", "a", "b"]).validate("b").unwrap().unwrap();
        assert_eq!(a.digest(), b.digest(), "order and own id do not matter");
        assert_eq!(a.digest().len(), 16);
        let mut c = instances(&["a", "b", "c"]);
        c.view_ttl = Some(HumanDuration(Duration::from_secs(20)));
        let c = c.validate("a").unwrap().unwrap();
        assert_ne!(a.digest(), c.digest());
        let d = instances(&["a", "b", "d"]).validate("a").unwrap().unwrap();
        assert_ne!(a.digest(), d.digest());
        // pinned: the same section gives the same digest in every build
        assert_eq!(a.digest(), a.digest());
    }
}
