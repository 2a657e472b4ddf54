//! What an evaluation needs to know of the probes without walking them all: the
//! least recently heard primary probe, the probes not up (by region and health, in
//! their configured order), and how many of the primary's down probes passed their
//! last check. A result updates it in O(log n) and an evaluation reads it in O(1)
//! (plus the probes it lists), so deciding costs the same with 10 probes or 10,000.

use std::collections::BTreeSet;

use tokio::time::Instant;

use super::{Health, ProbeSlot};
use crate::model::Role;

#[derive(Debug, Clone, Default)]
pub(super) struct ProbeIndex {
    /// A tournament tree over the probes: leaf `size + i` holds probe `i`'s last
    /// report if it is a primary probe, each inner node the earliest below it.
    heard: Vec<Option<Instant>>,
    size: usize,
    /// Primary probes not heard from yet.
    unheard: usize,
    /// Per region, the probes unknown, down and inconclusive.
    not_up: [[BTreeSet<usize>; 3]; 2],
    /// Primary probes that are down and whose last check did not fail: it passed,
    /// or it said something only about the monitor (not evidence about the region).
    down_passing: usize,
}

/// The slot of a health in `not_up` (None for up).
fn not_up_slot(h: Health) -> Option<usize> {
    match h {
        Health::Up => None,
        Health::Unknown => Some(0),
        Health::Down => Some(1),
        Health::Inconclusive => Some(2),
    }
}

fn down_passing(p: &ProbeSlot) -> bool {
    p.role == Role::Primary && p.health.health() == Health::Down && !p.last_failed
}

impl ProbeIndex {
    pub(super) fn of(probes: &[ProbeSlot]) -> Self {
        let size = probes.len().next_power_of_two();
        let mut index = Self {
            heard: vec![None; 2 * size],
            size,
            ..Self::default()
        };
        for (i, p) in probes.iter().enumerate() {
            if p.role == Role::Primary {
                match p.last_at {
                    Some(at) => index.heard[size + i] = Some(at),
                    None => index.unheard += 1,
                }
            }
            if let Some(s) = not_up_slot(p.health.health()) {
                index.not_up[p.role as usize][s].insert(i);
            }
            index.down_passing += usize::from(down_passing(p));
        }
        for n in (1..size).rev() {
            index.heard[n] = earlier(index.heard[2 * n], index.heard[2 * n + 1]);
        }
        index
    }

    /// Takes in the result probe `i` (now `after`) just had, as `before` it was.
    pub(super) fn update(&mut self, i: usize, before: (Health, bool, bool), after: &ProbeSlot) {
        let (health, was_passing, was_heard) = before;
        if after.role == Role::Primary
            && let Some(at) = after.last_at
        {
            self.unheard -= usize::from(!was_heard);
            let mut n = self.size + i;
            self.heard[n] = Some(at);
            while n > 1 {
                n /= 2;
                self.heard[n] = earlier(self.heard[2 * n], self.heard[2 * n + 1]);
            }
        }
        let now = after.health.health();
        if now != health {
            let sets = &mut self.not_up[after.role as usize];
            if let Some(s) = not_up_slot(health) {
                sets[s].remove(&i);
            }
            if let Some(s) = not_up_slot(now) {
                sets[s].insert(i);
            }
        }
        self.down_passing =
            self.down_passing + usize::from(down_passing(after)) - usize::from(was_passing);
    }

    /// What [`ProbeIndex::update`] needs of a probe before its result.
    pub(super) fn before(p: &ProbeSlot) -> (Health, bool, bool) {
        (p.health.health(), down_passing(p), p.last_at.is_some())
    }

    /// When the least recently heard primary probe reported: None before every
    /// primary probe has, `Some(None)` without primary probes.
    pub(super) fn oldest_report(&self) -> Option<Option<Instant>> {
        (self.unheard == 0).then(|| self.heard.get(1).copied().flatten())
    }

    /// Whether every primary probe that is down failed its last check (none passed
    /// it, none said only something about the monitor).
    pub(super) fn down_is_current(&self) -> bool {
        self.down_passing == 0
    }

    /// The region's probes that are down, in order.
    pub(super) fn down(&self, role: Role) -> impl Iterator<Item = usize> + '_ {
        self.not_up[role as usize][1].iter().copied()
    }

    /// The region's probes that are inconclusive, in order.
    pub(super) fn inconclusive(&self, role: Role) -> impl Iterator<Item = usize> + '_ {
        self.not_up[role as usize][2].iter().copied()
    }

    /// The region's probes neither up nor down (unknown, inconclusive), in order.
    pub(super) fn undecided(&self, role: Role) -> impl Iterator<Item = usize> + '_ {
        let [unknown, _, inconclusive] = &self.not_up[role as usize];
        merge(unknown.iter().copied(), inconclusive.iter().copied())
    }

    /// The region's probes not up, in order.
    pub(super) fn not_up(&self, role: Role) -> impl Iterator<Item = usize> + '_ {
        merge(self.down(role), self.undecided(role))
    }
}

fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Two ascending sequences as one.
pub(super) fn merge(
    a: impl Iterator<Item = usize>,
    b: impl Iterator<Item = usize>,
) -> impl Iterator<Item = usize> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x <= y => a.next(),
        (Some(_), Some(_)) | (None, Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, None) => None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::super::{Health, Observation, Policy, PolicyConfig, ProbeSlot};
    use crate::model::Role;
    use crate::rules::{Failback, Mode, RegionRule};

    /// What the index answers, worked out by walking every probe.
    fn walked(probes: &[ProbeSlot]) -> (Option<Option<Instant>>, bool, Vec<usize>, Vec<usize>) {
        let primary = || probes.iter().filter(|p| p.role == Role::Primary);
        let oldest = primary()
            .map(|p| p.last_at)
            .try_fold(None, |o: Option<Instant>, t| {
                t.map(|t| Some(o.map_or(t, |o| o.min(t))))
            });
        let current = primary().all(|p| p.health.health() != Health::Down || p.last_failed);
        let not_up = |role| {
            (0..probes.len())
                .filter(|&i| probes[i].role == role && probes[i].health.health() != Health::Up)
                .collect()
        };
        (
            oldest,
            current,
            not_up(Role::Primary),
            not_up(Role::Secondary),
        )
    }

    /// Random results (passes, failures, errors about the monitor, out of order in
    /// time) and reloads: after each, the index says what a walk says.
    #[test]
    fn the_index_agrees_with_a_walk_over_every_probe() {
        let cfg = PolicyConfig {
            mode: Mode::Auto,
            failback: Failback::Manual,
            failback_after: Duration::from_secs(600),
            hold_down: Duration::from_secs(300),
            fence_for: Duration::ZERO,
            max_fence: Duration::ZERO,
            rule: RegionRule::Any,
            require_healthy_secondary: true,
            evidence_ttl: Duration::from_secs(3600),
            max_override: Duration::from_secs(72 * 3600),
            fence_expiry: Duration::from_secs(600),
        };
        let spec = |n: usize| {
            (0..n).map(|i| {
                let role = if i % 3 == 0 {
                    Role::Secondary
                } else {
                    Role::Primary
                };
                (format!("p{i}"), role, 2, 2)
            })
        };
        let mut rng = fastrand::Rng::with_seed(20);
        let t0 = Instant::now();
        let mut policy = Policy::new(cfg.clone(), spec(13));
        for step in 0..5_000 {
            if step % 1_000 == 999 {
                policy.reconfigure(cfg.clone(), spec(rng.usize(1..20)));
            }
            let ok = rng.bool();
            let obs = Observation {
                probe: rng.usize(..policy.probes.len()),
                at: t0 + Duration::from_millis(rng.u64(..100_000)),
                ok,
                latency: Duration::from_millis(3),
                error: None,
                monitor_side: !ok && rng.u8(..5) == 0,
            };
            policy.observe(&obs);
            let index = &policy.index;
            let (oldest, current, primary, secondary) = walked(&policy.probes);
            assert_eq!(index.oldest_report(), oldest, "step {step}");
            assert_eq!(index.down_is_current(), current, "step {step}");
            assert_eq!(index.not_up(Role::Primary).collect::<Vec<_>>(), primary);
            assert_eq!(index.not_up(Role::Secondary).collect::<Vec<_>>(), secondary);
        }
    }
}
