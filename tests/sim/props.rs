//! The properties, checked as the simulation runs and at its end; each violation
//! names its property:
//!
//! - `one-commit-per-version`: at most one committed transition per version in the
//!   commit region (checked at the table, in `net.rs`; a person who removes the
//!   audit records above a reset item frees their versions), and after replication
//!   settles no two copies with the same version and different states;
//! - `healthy-primary-never-failed-over`: no automatic failover while the primary is
//!   healthy as seen by a quorum of the configured instances;
//! - `deposed-leader-never-commits`: an automatic commit applies only while its fence
//!   is the lease (checked at the table, in `net.rs`);
//! - `hold-down-respected`: an automatic move out of a settled state applies only
//!   once `hold_down` has passed since the item's `updatedAt` on the committing
//!   instance's clock (checked at the table, in `net.rs`);
//! - `every-version-audited`: every committed version has its audit record in the
//!   commit region, and a caught-up copy has no gaps;
//! - `needs-human-only-for-a-reset`: no instance stops for a human unless the item
//!   was reset below used versions;
//! - `pause-kept`: an instance that holds the stored pause does not drop it while it
//!   is still stored (an unreadable pause is not a lifted one);
//! - the liveness properties of `liveness.rs`;
//! - `copies-and-dns-converge`: after the faults end, both copies and the DNS record
//!   agree with the committed state;
//! - `drill-never-leaves-fenced`, `drill-never-leaves-a-healthy-primary-failed-over`:
//!   at the end, nothing a drill set is left;
//! - `never-failed-back-onto-a-sick-primary`: no move back to `active` while the
//!   primary was down throughout the time its probes needed to see it.

use std::collections::BTreeMap;
use std::time::Duration;

use failover_config::TablesMode;
use failover_core::model::{AppState, ConfigItem, Role};
use failover_daemon::control::Status;
use failover_testkit::Record;
use tokio::time::Instant;

use super::liveness::Liveness;
use super::world::World;
use super::{APP, Sim, items};

pub struct Checker {
    seen_commits: usize,
    live: Liveness,
    steps: u64,
    /// The item has been reset below used versions at some step.
    ever_stale: bool,
    /// Processes that showed the pause, and since when.
    showed_paused: BTreeMap<String, Instant>,
}

impl Checker {
    pub fn new(_sim: &Sim) -> Self {
        Self {
            seen_commits: 0,
            live: Liveness::default(),
            steps: 0,
            ever_stale: false,
            showed_paused: BTreeMap::new(),
        }
    }

    pub fn failovers_ms(&self) -> Vec<u64> {
        self.live.failovers_ms.clone()
    }

    pub fn step(&mut self, sim: &Sim, healing: bool) {
        self.steps += 1;
        self.new_commits(sim);
        let stale = super::apply::stale(&sim.world);
        self.ever_stale |= stale;
        let statuses = sim.statuses();
        let needs_human = statuses
            .iter()
            .any(|(_, _, stopped, s)| !stopped && s.needs_human.is_some());
        self.live.step(sim, healing, stale, needs_human);
        self.needs_human_only_for_a_reset(sim, &statuses);
        self.pause_kept(sim, &statuses);
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
            if c.item.state == AppState::Failover {
                self.live.failover(sim, c.at);
            }
            if c.from == AppState::Failover && c.item.state == AppState::Active {
                sick_primary_check(sim, c.at, &format!("{} ({:?})", c.process, c.item.reason));
            }
        }
    }

    fn needs_human_only_for_a_reset(&self, sim: &Sim, statuses: &[(String, String, bool, Status)]) {
        if self.ever_stale {
            return;
        }
        for (_, process, stopped, s) in statuses {
            if let Some(why) = s.needs_human.as_ref().filter(|_| !stopped) {
                sim.world.violation(
                    "needs-human-only-for-a-reset",
                    format!("{process} stopped for a human, the item never reset: {why}"),
                );
            }
        }
    }

    /// A process that showed the pause shows it as long as the pause it read is
    /// stored: nothing but a resume (or a new pause record) lifts it.
    fn pause_kept(&mut self, sim: &Sim, statuses: &[(String, String, bool, Status)]) {
        let now = Instant::now();
        let (paused, since) = {
            let s = sim.world.lock();
            (s.paused, s.paused_since)
        };
        for (_, process, stopped, s) in statuses {
            if *stopped {
                continue;
            }
            if s.paused {
                self.showed_paused.entry(process.clone()).or_insert(now);
            } else if let Some(shown) = self.showed_paused.remove(process)
                && paused
                && since.is_some_and(|t| t <= shown)
            {
                sim.world.violation(
                    "pause-kept",
                    format!(
                        "{process} dropped the stored pause it held since {:?} ago",
                        now - shown
                    ),
                );
            }
        }
    }

    pub fn finish(&mut self, sim: &Sim) {
        audited(sim, true);
        let [p, s] = items(&sim.world);
        // Long after the heal, nothing of a drill is left: not its fence, not its
        // failover of a primary that has been healthy since.
        if let Some(i) = s.as_ref().filter(|i| i.state != AppState::Active)
            && let Some(drill) = i.set_by_drill()
        {
            sim.world.violation(
                if i.state == AppState::Fenced {
                    "drill-never-leaves-fenced"
                } else {
                    "drill-never-leaves-a-healthy-primary-failed-over"
                },
                format!(
                    "drill {drill} left the item {} (version {}, ends {:?})",
                    i.state, i.version, i.expires_at
                ),
            );
        }
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

/// An automatic move out of a settled state (`before` to `new`, the move a
/// hold-down holds) applied now by `process`, whose clock is `skew_ms` off: at
/// least `hold_down` has passed since `before`'s `updatedAt` was read off its
/// writer's clock, less the lead the committer's clock has over the writer's (a
/// clock ahead shortens the hold-down by its lead; one behind never skips it, the
/// hold-down then runs from the reading). The earliest of the writes of `before`'s
/// state and version counts.
pub fn hold_down_respected(
    world: &World,
    process: &str,
    skew_ms: i64,
    before: &ConfigItem,
    new: &ConfigItem,
) {
    let out_of_settled = match before.state {
        AppState::Active => new.state != AppState::Active,
        AppState::Failover => new.state == AppState::Active,
        AppState::Fenced => false,
    };
    let s = world.lock();
    if s.hold_down.is_zero() || before.version == 0 || !out_of_settled {
        return;
    }
    // When (ms since the start, on no clock) each write's updatedAt was read off
    // its writer's clock, and that writer's skew.
    let written = s
        .item_writes
        .iter()
        .filter(|w| (w.item.state, w.item.version) == (before.state, before.version))
        .filter_map(|w| {
            let at = humantime::parse_rfc3339_weak(w.item.updated_at.as_deref()?).ok()?;
            let wall_ms = match at.duration_since(s.wall_start) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            };
            Some((wall_ms - w.skew_ms, w.skew_ms))
        })
        .min();
    let Some((written_ms, writer_skew)) = written else {
        return;
    };
    let now_ms = world.start.elapsed().as_millis() as i64;
    let lead = (skew_ms - writer_skew).max(0);
    let hold_down = s.hold_down.as_millis() as i64;
    drop(s);
    if now_ms - written_ms + lead + 2 < hold_down {
        world.violation(
            "hold-down-respected",
            format!(
                "{process} moved {} v{} -> {} {} ms after its updatedAt was written (its clock {lead} ms ahead of the writer's; hold-down {hold_down} ms)",
                before.state,
                before.version,
                new.state,
                now_ms - written_ms,
            ),
        );
    }
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

/// A move back to `active` (a drill's failback, or the monitors ending a drill's
/// failover) committed at `at` onto a primary that was down throughout the time
/// its probes needed to see it: never onto a sick primary.
fn sick_primary_check(sim: &Sim, at: Instant, process: &str) {
    let window = Duration::from_millis(2 * 500 + 50 + 400 + 2 * 1000 + 500);
    let Some(from) = at.checked_sub(window) else {
        return;
    };
    let s = sim.world.lock();
    let mut down_throughout = true;
    let mut seen = false;
    for (i, (t, ok, _, _)) in s.history.iter().enumerate() {
        let until = s.history.get(i + 1).map_or(at, |n| n.0);
        if until < from || *t > at {
            continue;
        }
        seen = true;
        down_throughout &= !*ok;
    }
    if seen && down_throughout {
        drop(s);
        sim.world.violation(
            "never-failed-back-onto-a-sick-primary",
            format!("{process} moved back to active while the primary was down"),
        );
    }
}

/// Every version of each copy has its audit record (the commit region always; the
/// primary's copy with one table per region, or once replication settled).
fn audited(sim: &Sim, settled: bool) {
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
        if sim.world.lock().orphaned.contains(item) {
            continue;
        }
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
