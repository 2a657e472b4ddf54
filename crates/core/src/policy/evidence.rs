//! This instance's vote on the primary, and the evidence a decision carries into
//! its audit record.
//!
//! The evidence is bounded whatever the number of probes: a per-region summary plus
//! the probes that decided (at most [`MAX_LISTED`] of them, errors cut to
//! [`MAX_ERROR`] bytes), so that an audit record stays far below DynamoDB's 400 KB
//! item limit with 10,000 probes.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::{Health, Policy, ProbeView, Replication, Vote, health_index};
use crate::model::Role;

/// Probes listed by name in the evidence, per region.
pub const MAX_LISTED: usize = 20;
/// Longest error text kept per listed probe.
pub const MAX_ERROR: usize = 200;

impl Policy {
    /// The region rule on the primary's probes that can judge it, from their
    /// health alone: down, up (it cannot say down whatever the probes not yet known
    /// turn out) or unknown (nothing known yet, or every probe inconclusive).
    pub fn region_vote(&self) -> Vote {
        let c = &self.counts[Role::Primary as usize];
        let (total, decisive) = self.decisive(Role::Primary);
        let needed = self.cfg.rule.threshold_of(decisive, total);
        let down = c[health_index(Health::Down)];
        let unknown = c[health_index(Health::Unknown)];
        if total == 0 {
            Vote::Up
        } else if decisive == 0 {
            // every probe inconclusive: nothing can be said of the region
            Vote::Unknown
        } else if down >= needed {
            Vote::Down
        } else if down + unknown < needed {
            Vote::Up
        } else {
            Vote::Unknown
        }
    }

    /// This instance's vote on the primary now, the one it publishes and the one it
    /// counts for itself, and the age of its evidence: how long ago the least
    /// recently heard primary probe reported (None before every primary probe has
    /// reported once). A region rule that says down counts as `Down` only while no
    /// primary probe that is down answered its last check: a probe rising again (a
    /// process resumed after a stop finds the primary back) makes the vote `Unknown`
    /// until it fails again or is up. A dead region's probes only fail.
    pub fn vote(&self, now: Instant) -> (Vote, Option<Duration>) {
        let vote = match self.region_vote() {
            Vote::Down if !self.down_is_current() => Vote::Unknown,
            v => v,
        };
        let age = self
            .index
            .oldest_report()
            .map(|t| t.map_or(Duration::ZERO, |t| now.saturating_duration_since(t)));
        (vote, age)
    }

    /// What a decision made now rests on.
    pub(super) fn evidence(&self, now: Instant) -> serde_json::Value {
        let summary = |role: Role| {
            let c = &self.counts[role as usize];
            json!({
                "up": c[health_index(Health::Up)],
                "down": c[health_index(Health::Down)],
                "unknown": c[health_index(Health::Unknown)],
                "inconclusive": c[health_index(Health::Inconclusive)],
            })
        };
        let (listed, omitted) = self.deciding_probes(now);
        let quorum = self.coordination.as_ref().map(|c| {
            json!({
                "configured": c.configured,
                "live": 1 + c.others_live,
                "down_votes": self.down_votes(now),
                "needed": c.needed(),
                "rule": c.quorum.to_string(),
            })
        });
        json!({
            "rule": self.cfg.rule.to_string(),
            "primary_down": self.counts[Role::Primary as usize][health_index(Health::Down)],
            "primary_probes": self.counts[Role::Primary as usize].iter().sum::<usize>(),
            "regions": {"primary": summary(Role::Primary), "secondary": summary(Role::Secondary)},
            "probes": listed,
            "probes_omitted": omitted,
            "quorum": quorum,
            "replication": self.replication_in_fence().map(Replication::evidence),
        })
    }

    /// The probes that decided: per region, those not up (the primary's down ones
    /// first), at most [`MAX_LISTED`] each; and how many were left out.
    fn deciding_probes(&self, now: Instant) -> (Vec<ProbeView>, usize) {
        let mut listed = Vec::new();
        let mut omitted = 0;
        for role in Role::BOTH {
            let c = &self.counts[role as usize];
            let not_up: usize = c.iter().sum::<usize>() - c[health_index(Health::Up)];
            omitted += not_up.saturating_sub(MAX_LISTED);
            // The down ones first, then the others, each in the configured order.
            let chosen = self.index.down(role).chain(self.index.undecided(role));
            listed.extend(chosen.take(MAX_LISTED).map(|i| {
                let mut v = self.probes[i].view(now);
                if let Some(e) = &mut v.last_error
                    && e.len() > MAX_ERROR
                {
                    let mut cut = MAX_ERROR;
                    while !e.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    e.truncate(cut);
                    e.push('…');
                }
                v
            }));
        }
        (listed, omitted)
    }
}
