//! How each fault changes the world: regions, paths, processes, the tables' faults,
//! and what people do to the items by hand.

use std::time::Duration;

use failover_config::TablesMode;
use failover_core::model::{ConfigItem, Role, keys};
use failover_testkit::{Faults, Record};
use tokio::time::Instant;

use super::faults::{Fault, Outage, Path, Repair};
use super::world::{Health, ItemWrite, Region};
use super::{APP, Sim, items};

/// The primary's parts during an outage of this kind.
fn outage(o: Outage) -> Region {
    match o {
        Outage::Refused => Region {
            api: Health::Refused,
            table: Health::Refused,
            slow_ms: 0,
        },
        Outage::Hang => Region {
            api: Health::Hang,
            table: Health::Hang,
            slow_ms: 0,
        },
        Outage::ApiOnly => Region {
            api: Health::Refused,
            ..Region::UP
        },
        Outage::TableOnly => Region {
            table: Health::Refused,
            ..Region::UP
        },
        Outage::Slow => Region {
            slow_ms: 1500,
            ..Region::UP
        },
    }
}

impl Sim {
    pub(super) fn apply(&mut self, fault: &Fault) {
        self.world.trace(format!("fault: {fault:?}"));
        match fault {
            Fault::PrimaryDown(o) => self.world.lock().regions[0] = outage(*o),
            Fault::PrimaryUp => self.world.lock().regions[0] = Region::UP,
            Fault::SecondaryDown => self.world.lock().regions[1] = outage(Outage::Refused),
            Fault::SecondaryUp => self.world.lock().regions[1] = Region::UP,
            Fault::Kill(i) => self.kill(i),
            Fault::Term(i) => self.term(i),
            Fault::Restart(i) => {
                if !self.procs.contains_key(i) {
                    self.start(i, false);
                }
            }
            Fault::Stop(i) => self.stopped(i, true),
            Fault::Cont(i) => self.stopped(i, false),
            Fault::Cut(i, p) => self.set_path(i, *p, false),
            Fault::Heal(i, p) => self.set_path(i, *p, true),
            Fault::CutLeader(p) => self.cut_leader(*p),
            Fault::HealLeader => {
                if let Some((i, p)) = self.cut_leader.take() {
                    self.set_path(&i, p, true);
                }
            }
            Fault::Duplicate(i) => {
                if !self.extra.contains_key(i) {
                    self.start(i, true);
                }
            }
            Fault::DuplicateGone(i) => {
                if let Some(p) = self.extra.remove(i) {
                    p.task.abort();
                    self.world.trace(format!("kill {}", p.process));
                }
                self.set_duplicate(i, false);
            }
            Fault::SplitRegions => self.world.lock().replicating = false,
            Fault::JoinRegions => self.world.lock().replicating = true,
            Fault::HealAll => self.heal_all(),
            Fault::Drill { hold, fence } => self.drill(*hold, *fence),
            other => self.apply_to_tables(other),
        }
    }

    /// The faults of the commit region's table, and what people do by hand.
    fn apply_to_tables(&mut self, fault: &Fault) {
        let table = &self.world.tables[1];
        let faults = |f: Faults| table.set_faults(f);
        match fault {
            Fault::Throttle(n) => faults(Faults {
                throttle: *n,
                ..Faults::default()
            }),
            Fault::TimeoutAfterApply => faults(Faults {
                fail_after_apply: 1,
                ..Faults::default()
            }),
            Fault::ThrottleRequests(d) => faults(Faults {
                throttle_requests_until: Some(Instant::now() + *d),
                ..Faults::default()
            }),
            Fault::Unprocessed(n) => faults(Faults {
                unprocessed: *n,
                ..Faults::default()
            }),
            Fault::AppTransactions(on) => self.world.lock().app_transactions = *on,
            Fault::Deny { secondary } => {
                self.world.lock().denied = [true, *secondary];
            }
            Fault::Allow => self.world.lock().denied = [false; 2],
            Fault::DeleteLease => table.delete(&keys::lease(APP)),
            Fault::Pause(paused) => self.pause(*paused),
            Fault::Reseed => self.reseed(),
            Fault::Repair(r) => self.repair(*r),
            _ => {}
        }
    }

    fn set_path(&self, instance: &str, path: Path, up: bool) {
        if let Some(slot) = self.world.lock().slots.get_mut(instance) {
            match path {
                Path::Primary => slot.paths.primary = up,
                Path::Secondary => slot.paths.secondary = up,
                Path::Peers => slot.paths.peers = up,
                Path::SecondaryApi => slot.paths.secondary_api = up,
            }
        }
        self.world.trace(format!(
            "{} {instance} {} the {path:?}",
            if up { "restore" } else { "cut" },
            if up { "to" } else { "from" }
        ));
    }

    /// Cuts the path of the instance leading now (if one does).
    fn cut_leader(&mut self, path: Path) {
        let leader = self
            .procs
            .iter()
            .find(|(_, p)| p.leading)
            .map(|(i, _)| i.clone());
        if let Some(i) = leader {
            self.set_path(&i, path, false);
            self.cut_leader = Some((i, path));
        }
    }

    /// A person writes the stored pause (as the admin API would, by hand).
    /// Asks every running process for a drill, without waiting for the answers.
    fn drill(&mut self, hold: Duration, fence: Duration) {
        for handle in self.handles() {
            let plan = failover_daemon::drill::Plan {
                hold: Some(hold),
                fence: Some(fence),
                reason: "the scenario".into(),
                by: "admin:sim".into(),
                scheduled: false,
            };
            tokio::spawn(async move {
                let _ = handle
                    .ask(|reply| {
                        failover_daemon::control::Request::Drill(
                            failover_daemon::drill::DrillRequest::Start { plan, reply },
                        )
                    })
                    .await;
            });
        }
    }

    fn pause(&mut self, paused: bool) {
        let key = keys::pause(APP);
        let seq = match self.world.tables[1].get(&key) {
            Some(Record::Pause(p)) => p.seq + 1,
            _ => 1,
        };
        let record = failover_core::model::PauseRecord {
            paused,
            by: "admin:sim".into(),
            reason: "the scenario".into(),
            at: "2030-01-01T00:00:00Z".into(),
            seq,
            until: None,
        };
        self.world.tables[1].put(&key, Record::Pause(record));
        let mut s = self.world.lock();
        if paused && !s.paused {
            s.paused_since = Some(Instant::now());
        }
        if !paused {
            s.paused_since = None;
        }
        s.paused = paused;
    }

    /// A person writes `item` as the config item in the commit region, and, when
    /// `both`, in the primary's table too (with one table per region; replication
    /// carries it otherwise).
    pub(super) fn write_item(&self, item: ConfigItem, both: bool) {
        let record = Record::Item(item.clone());
        self.world.tables[1].put(APP, record.clone());
        if both && self.world.mode == TablesMode::PerRegion {
            self.world.tables[0].put(APP, record);
        }
        let mut s = self.world.lock();
        let skew_ms = s.human_skew_ms;
        s.item_writes.push(ItemWrite {
            at: Instant::now(),
            item,
            skew_ms,
        });
    }

    fn reseed(&mut self) {
        self.write_item(super::seed_item(), true);
    }

    /// A person settles an item reset below used versions, as the needs-human
    /// message says: deletes the audit records above it, or sets its version to the
    /// newest one's (in the commit region: the primary's copy, reset to 0 with it,
    /// is caught up by the monitor with the records it lacks). Nothing to do when
    /// no record is above it.
    fn repair(&mut self, how: Repair) {
        let Some(item) = items(&self.world)[1].clone() else {
            return;
        };
        let above: Vec<u64> = (item.version + 1..item.version + 200)
            .take_while(|v| self.world.tables[1].get(&keys::audit(APP, *v)).is_some())
            .collect();
        let Some(newest) = above.last().copied() else {
            return;
        };
        match how {
            Repair::DeleteRecords => {
                for v in &above {
                    for t in self.record_tables() {
                        t.delete(&keys::audit(APP, *v));
                    }
                }
                // Those versions will be committed again. A copy still at one of
                // them (a copy write of the monitor's that landed after the reset,
                // in a region too slow for it to set back) is the person's gap.
                let copies = items(&self.world);
                let mut s = self.world.lock();
                s.epoch = s.commits.len();
                for c in copies.into_iter().flatten() {
                    if c.version > item.version && c.version <= newest {
                        s.orphaned.push(c);
                    }
                }
            }
            Repair::SetVersion => {
                let wall = {
                    let s = self.world.lock();
                    s.wall(self.world.start, s.human_skew_ms)
                };
                self.write_item(
                    ConfigItem {
                        version: newest,
                        updated_at: Some(humantime::format_rfc3339_millis(wall).to_string()),
                        updated_by: Some("admin:repair".into()),
                        reason: Some("version set to the newest audit record's".into()),
                        ..item
                    },
                    false,
                );
            }
        }
        self.world.trace(format!(
            "repaired v{} ({how:?}, newest record v{newest})",
            item.version
        ));
    }

    /// The tables a person removes audit records from: the commit region's, and the
    /// primary's with one table per region (replication carries deletes otherwise).
    fn record_tables(&self) -> Vec<&failover_testkit::MemTable> {
        match self.world.mode {
            TablesMode::PerRegion => vec![&self.world.tables[1], &self.world.tables[0]],
            TablesMode::Global => vec![&self.world.tables[1]],
        }
    }

    fn heal_all(&mut self) {
        {
            let mut s = self.world.lock();
            s.regions = [Region::UP; 2];
            s.replicating = true;
            s.denied = [false; 2];
            s.app_transactions = false;
        }
        let instances: Vec<String> = self.settings.keys().cloned().collect();
        for i in &instances {
            for p in [
                Path::Primary,
                Path::Secondary,
                Path::Peers,
                Path::SecondaryApi,
            ] {
                self.set_path(i, p, true);
            }
            self.stopped(i, false);
            if !self.procs.contains_key(i) {
                self.start(i, false);
            }
            if let Some(p) = self.extra.remove(i) {
                p.task.abort();
            }
            self.set_duplicate(i, false);
        }
        self.cut_leader = None;
        self.world.tables[1].set_faults(Faults::default());
    }

    /// While the application's transactions run, one starts now and then, with a
    /// condition check on the config item in the commit region.
    pub(super) fn app_transactions(&self) {
        let mut s = self.world.lock();
        if !s.app_transactions || s.rng.u8(..2) != 0 {
            return;
        }
        drop(s);
        self.world.tables[1].foreign_transaction(&[APP]);
    }
}

/// Whether the commit region's item is at a version whose next audit record exists:
/// reset below used versions, for a human to settle.
pub fn stale(world: &super::world::World) -> bool {
    items(world)[Role::Secondary as usize]
        .as_ref()
        .is_some_and(|i| {
            world.tables[1]
                .get(&keys::audit(APP, i.version + 1))
                .is_some()
        })
}
