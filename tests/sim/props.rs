//! The properties, checked as the simulation runs and at its end; each violation
//! names its property:
//!
//! - `one-commit-per-version`: at most one committed transition per version in the
//!   commit region (checked at the table, in `net.rs`), and after replication
//!   settles no two copies with the same version and different states;
//! - `healthy-primary-never-failed-over`: no automatic failover while the primary is
//!   healthy as seen by a quorum of the configured instances;
//! - `deposed-leader-never-commits`: an automatic commit applies only while its fence
//!   is the lease (checked at the table, in `net.rs`);
//! - `every-version-audited`: every committed version has its audit record in the
//!   commit region, and a caught-up copy has no gaps;
//! - `outage-failed-over-within-bound`: a real outage, with a quorum of instances
//!   running and the secondary reachable, is committed within `failover_bound`;
//! - `copies-and-dns-converge`: after the faults end, both copies and the DNS record
//!   agree with the committed state.

use std::time::Duration;

use failover_config::TablesMode;
use failover_core::model::{AppState, Role};
use failover_testkit::Record;
use tokio::time::Instant;

use super::world::Health;
use super::{APP, Sim, items};

/// An outage of the primary as the region rule sees it, from `start`.
struct Window {
    start: Instant,
    qualified: bool,
    checked: bool,
}

pub struct Checker {
    seen_commits: usize,
    window: Option<Window>,
    pub failovers_ms: Vec<u64>,
    steps: u64,
}

impl Checker {
    pub fn new(_sim: &Sim) -> Self {
        Self {
            seen_commits: 0,
            window: None,
            failovers_ms: Vec::new(),
            steps: 0,
        }
    }

    pub fn step(&mut self, sim: &Sim, healing: bool) {
        self.steps += 1;
        self.new_commits(sim);
        self.outage(sim, healing);
        if self.steps.is_multiple_of(10) {
            audited(sim, false);
        }
    }

    /// Automatic failovers checked against the world's recent history.
    fn new_commits(&mut self, sim: &Sim) {
        let commits: Vec<_> = sim.world.lock().commits[self.seen_commits..].to_vec();
        self.seen_commits += commits.len();
        for c in commits {
            if c.auto && c.from == AppState::Active && c.item.state != AppState::Active {
                healthy_primary_check(sim, c.at, &c.process);
            }
            if c.item.state == AppState::Failover
                && let Some(w) = &mut self.window
                && !w.checked
            {
                let took = c.at.saturating_duration_since(w.start);
                if w.qualified {
                    self.failovers_ms.push(took.as_millis() as u64);
                    sim.world
                        .trace(format!("failover {} ms after the outage", took.as_millis()));
                }
                w.checked = true;
            }
        }
    }

    fn outage(&mut self, sim: &Sim, healing: bool) {
        let now = Instant::now();
        let down = {
            let s = sim.world.lock();
            let p = s.regions[0];
            p.api != Health::Up || p.slow_ms >= 400
        };
        if !down || healing {
            self.window = None;
            return;
        }
        let active = items(&sim.world)[1]
            .as_ref()
            .is_some_and(|i| i.state == AppState::Active);
        let w = self.window.get_or_insert(Window {
            start: now,
            qualified: active,
            checked: !active,
        });
        if w.checked {
            return;
        }
        if !qualifies(sim, now) {
            w.qualified = false;
        }
        if w.qualified && now.saturating_duration_since(w.start) > sim.bound {
            sim.world.violation(
                "outage-failed-over-within-bound",
                format!(
                    "no failover {} ms after the outage began",
                    sim.bound.as_millis()
                ),
            );
            w.checked = true;
        }
    }

    pub fn finish(&mut self, sim: &Sim) {
        audited(sim, true);
        let [p, s] = items(&sim.world);
        if p.as_ref().map(|i| (i.version, i.state)) != s.as_ref().map(|i| (i.version, i.state)) {
            sim.world.violation(
                "copies-and-dns-converge",
                format!("primary {p:?}, secondary {s:?}"),
            );
        }
        let want = match s.as_ref().map(|i| i.state) {
            Some(AppState::Failover) => "secondary",
            _ => "primary",
        };
        if sim.world.dns.get().as_deref() != Some(want) {
            sim.world.violation(
                "copies-and-dns-converge",
                format!(
                    "DNS {:?}, committed {:?}",
                    sim.world.dns.get(),
                    s.map(|i| i.state)
                ),
            );
        }
    }
}

/// The outage may be held to the bound now: a quorum of the configured instances
/// runs (not stopped, paths to the secondary and the peers intact), the secondary
/// answers, no write fault in the commit region, no item reset for a human, not
/// paused.
fn qualifies(sim: &Sim, now: Instant) -> bool {
    if sim.world.tables[1].write_faults_armed() {
        return false;
    }
    let s = sim.world.lock();
    if !s.regions[1].healthy() || s.reseeded || s.paused || s.write_fault_since(now) {
        return false;
    }
    let running = s
        .slots
        .values()
        .filter(|slot| {
            slot.running && !*slot.stopped.borrow() && slot.paths.secondary && slot.paths.peers
        })
        .count();
    running >= sim.needed
}

/// An automatic failover committed at `at`: the primary must not have been healthy
/// the whole time before it in which the votes could have turned (rise x interval +
/// jitter + timeout + 2 x renew_every, and a margin) unless at least a quorum of the
/// instances could have seen it down through their own broken paths. (While a
/// majority sees it healthy, at most a minority can; a lone survivor with a broken
/// path is such a minority.)
fn healthy_primary_check(sim: &Sim, at: Instant, process: &str) {
    let window = Duration::from_millis(2 * 500 + 50 + 400 + 2 * 1000 + 500);
    let Some(from) = at.checked_sub(window) else {
        return;
    };
    let s = sim.world.lock();
    let mut healthy_throughout = true;
    let mut cut: Vec<String> = Vec::new();
    for (i, (t, ok, _, blind)) in s.history.iter().enumerate() {
        let until = s.history.get(i + 1).map_or(at, |n| n.0);
        if until < from || *t > at {
            continue;
        }
        healthy_throughout &= *ok;
        for b in blind {
            if !cut.contains(b) {
                cut.push(b.clone());
            }
        }
    }
    if healthy_throughout && cut.len() < sim.needed {
        drop(s);
        sim.world.violation(
            "healthy-primary-never-failed-over",
            format!(
                "{process} failed over a healthy primary; only {cut:?} could see it down ({} needed)",
                sim.needed
            ),
        );
    }
}

/// Every version of each copy has its audit record (the commit region always; the
/// primary's copy with one table per region, or once replication settled).
fn audited(sim: &Sim, settled: bool) {
    if sim.world.lock().reseeded {
        return;
    }
    let roles: &[Role] = if settled || sim.world.mode == TablesMode::PerRegion {
        &Role::BOTH
    } else {
        &[Role::Secondary]
    };
    let copies = items(&sim.world);
    for role in roles {
        let Some(item) = &copies[*role as usize] else {
            continue;
        };
        let table = &sim.world.tables[*role as usize];
        let missing: Vec<u64> = (1..=item.version)
            .filter(|v| {
                !matches!(
                    table.get(&failover_core::model::keys::audit(APP, *v)),
                    Some(Record::Audit(_))
                )
            })
            .collect();
        if !missing.is_empty() {
            sim.world.violation(
                "every-version-audited",
                format!(
                    "the {role} copy is at v{} without the records of {missing:?}",
                    item.version
                ),
            );
        }
    }
}
