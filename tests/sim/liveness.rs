//! The liveness properties, checked on every step:
//!
//! - `outage-failed-over-within-bound`: a real outage (the region rule says down
//!   over the probes that can judge it), while a quorum of the configured instances
//!   runs with its paths to the secondary and to each other intact, the secondary
//!   is healthy and nothing holds moves back (the pause, the hold-down, an item for
//!   a human, a table refusing every request), is failed over within
//!   `failover_bound`, plus the documented backoff of each write the commit region
//!   refused meanwhile (throttled, in another transaction's hands, timed out);
//! - `reset-item-needs-human-within-bound`: while the item is reset below used
//!   versions (its next audit record exists) under such an outage, automatic moves
//!   stop for a human within the bound (an instance says `needs_human`); once a
//!   person repairs it, the failover follows within the bound of the repair.

use std::time::Duration;

use failover_core::model::AppState;
use tokio::time::Instant;

use super::world::Health;
use super::{Sim, items};

/// One outage as the checker holds it to the bound: from `start`, until a failover
/// commits (`done`), or the outage ends.
struct Episode {
    start: Instant,
    /// From when the bound runs: the start, or later when something the bound's
    /// proviso excludes ended later (the hold-down, a repair). Never moves back.
    from: Instant,
    qualified: bool,
    done: bool,
    /// An instance said `needs_human` while the item was stale.
    noticed: bool,
    /// Refused writes before the episode (an index into the world's list).
    refused_from: usize,
}

#[derive(Default)]
pub struct Liveness {
    episode: Option<Episode>,
    stale_since: Option<Instant>,
    repaired_at: Option<Instant>,
    /// Failover times of the episodes that qualified, and their bounds (ms).
    pub failovers_ms: Vec<u64>,
}

impl Liveness {
    /// One step: `stale` whether the item is reset below used versions now,
    /// `needs_human` whether a running instance says so now.
    pub fn step(&mut self, sim: &Sim, healing: bool, stale: bool, needs_human: bool) {
        let now = Instant::now();
        match (stale, self.stale_since) {
            (true, None) => self.stale_since = Some(now),
            (false, Some(_)) => {
                self.stale_since = None;
                self.repaired_at = Some(now);
            }
            _ => {}
        }
        if !primary_down(sim) || healing {
            self.episode = None;
            return;
        }
        // A drill's fence holds nothing back: an outage under it is the normal
        // rules', held to the same bound.
        let active = items(&sim.world)[1].as_ref().is_some_and(|i| {
            i.state == AppState::Active
                || (i.state == AppState::Fenced && i.set_by_drill().is_some())
        });
        if self.episode.as_ref().is_none_or(|e| e.done && active) {
            self.episode = Some(Episode {
                start: now,
                from: now,
                qualified: active,
                done: !active,
                noticed: false,
                refused_from: sim.world.lock().refused.len(),
            });
        }
        let from = self.from(sim);
        let (stale_since, bound) = (self.stale_since, sim.bound);
        let Some(e) = self.episode.as_mut().filter(|e| !e.done) else {
            return;
        };
        e.from = e.from.max(from);
        e.noticed |= needs_human;
        if !qualifies(sim) {
            e.qualified = false;
        }
        let allowance = allowance(&sim.world.lock().refused[e.refused_from..]);
        let Some(allowance) = allowance.filter(|_| e.qualified) else {
            e.qualified = false;
            return;
        };
        if let Some(since) = stale_since {
            let deadline = e.start.max(since) + bound + allowance;
            if !e.noticed && now > deadline {
                sim.world.violation(
                    "reset-item-needs-human-within-bound",
                    format!("no instance says needs_human {} ms after the item was reset under an outage", (now - e.start.max(since)).as_millis()),
                );
                e.qualified = false;
            }
        } else if now > e.from + bound + allowance {
            sim.world.violation(
                "outage-failed-over-within-bound",
                format!(
                    "no failover {} ms after the outage began ({} ms after the bound's proviso held; allowance {} ms)",
                    (now - e.start).as_millis(),
                    (now - e.from).as_millis(),
                    allowance.as_millis()
                ),
            );
            e.done = true;
        }
    }

    /// When the bound runs from now: after the hold-down (when the item is in a
    /// settled state a hold-down applies to), and after the last repair.
    fn from(&self, sim: &Sim) -> Instant {
        let start = self.episode.as_ref().map_or_else(Instant::now, |e| e.start);
        let repaired = self.repaired_at.filter(|r| *r > start).unwrap_or(start);
        start.max(repaired).max(hold_end(sim).unwrap_or(start))
    }

    /// A failover committed at `at`.
    pub fn failover(&mut self, sim: &Sim, at: Instant) {
        let Some(e) = self.episode.as_mut().filter(|e| !e.done) else {
            return;
        };
        e.done = true;
        if e.qualified && self.stale_since.is_none() {
            let took = at.saturating_duration_since(e.from);
            self.failovers_ms.push(took.as_millis() as u64);
            sim.world.trace(format!(
                "failover {} ms after the outage ({} ms after the bound's proviso held)",
                at.saturating_duration_since(e.start).as_millis(),
                took.as_millis()
            ));
        }
    }
}

/// The region rule (a majority of the primary's probes that can judge it) says
/// down, as every instance's probes see the primary through intact paths: a signed
/// probe whose region answers while its permission is denied judges nothing.
pub fn primary_down(sim: &Sim) -> bool {
    let s = sim.world.lock();
    let p = s.regions[0];
    let (mut decisive, mut failing) = (0, 0);
    for (_, signed) in super::primary_probes(&sim.setup) {
        let health = if signed { p.table } else { p.api };
        let fails = health != Health::Up || p.slow_ms >= 400;
        if signed && s.denied[0] && !fails {
            continue;
        }
        decisive += 1;
        failing += usize::from(fails);
    }
    decisive > 0 && failing > decisive / 2
}

/// The bound's proviso holds now: a quorum of the configured instances runs (not
/// stopped, its paths to the secondary, to its API and to the peers intact), the
/// secondary is healthy, the commit region answers requests, not paused.
fn qualifies(sim: &Sim) -> bool {
    let table = &sim.world.tables[1];
    if table.requests_refused() {
        return false;
    }
    let s = sim.world.lock();
    if !s.regions[1].healthy() || s.paused {
        return false;
    }
    let running = s
        .slots
        .values()
        .filter(|slot| {
            let p = slot.paths;
            slot.running && !*slot.stopped.borrow() && p.secondary && p.peers && p.secondary_api
        })
        .count();
    running >= sim.needed
}

/// Until when the hold-down may hold an automatic move out of the item as it is
/// (a settled state, written at a version above 0), on the slowest instance's
/// clock: the write, the hold-down, and the most a reader's clock behind the
/// writer's (or the writer's own commit returning, or being recognised, later)
/// moves it.
fn hold_end(sim: &Sim) -> Option<Instant> {
    let s = sim.world.lock();
    let w = s.item_writes.last()?;
    if s.hold_down.is_zero() || w.item.version == 0 || w.item.state != AppState::Active {
        return None;
    }
    let slowest = s.slots.values().map(|slot| slot.skew_ms).min().unwrap_or(0);
    let behind = u64::try_from(w.skew_ms - slowest).unwrap_or(0) + 100;
    Some(w.at + s.hold_down + Duration::from_millis(behind.max(5_000)))
}

/// How much longer than the bound the refused writes may make a failover: each
/// refused commit its backoff (0.5 s doubling, at most 15 s), an attempt and the
/// next evaluation; each other refused write a coordination round. None when there
/// were too many to hold the outage to anything.
fn allowance(refused: &[(Instant, bool)]) -> Option<Duration> {
    if refused.len() > 16 {
        return None;
    }
    let mut ms = 0;
    let mut commits = 0u32;
    for (_, commit) in refused {
        if *commit {
            ms += (500u64 << commits.min(5)).min(15_000) + 1_600;
            commits += 1;
        } else {
            ms += 1_000;
        }
    }
    Some(Duration::from_millis(ms))
}
