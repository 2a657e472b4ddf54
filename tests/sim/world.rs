//! The simulated two-region world: each region's health (API, table, or the whole
//! region refusing or hanging), each instance's own network paths (to the primary,
//! to the secondary, to its peers through the coordination items), the config and
//! data tables with DynamoDB's semantics (`failover_testkit`), global-table
//! replication with a varying lag (last writer wins per item), a DNS record, and
//! the log the properties are checked on. Everything random comes from one seeded
//! generator, so a seed replays exactly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use failover_config::TablesMode;
use failover_core::model::{AppState, ConfigItem, Role};
use failover_testkit::{Change, MemDns, MemTable};
use tokio::sync::watch;
use tokio::time::Instant;

/// How a region (or a part of it) answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    /// Connections refused at once (the process is gone).
    Refused,
    /// Requests hang (the process is stopped, or the network eats them).
    Hang,
}

/// One region's parts.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    /// API Gateway (the `http` probes).
    pub api: Health,
    /// DynamoDB (the config and data tables, the `dynamodb` probes).
    pub table: Health,
    /// Extra latency of every answer, ms.
    pub slow_ms: u64,
}

impl Region {
    pub const UP: Region = Region {
        api: Health::Up,
        table: Health::Up,
        slow_ms: 0,
    };

    /// Every part answers, faster than the probes wait (400 ms in the simulation).
    pub fn healthy(&self) -> bool {
        self.api == Health::Up && self.table == Health::Up && self.slow_ms < 400
    }
}

/// One instance's network paths.
#[derive(Debug, Clone, Copy)]
pub struct Paths {
    pub primary: bool,
    pub secondary: bool,
    /// The lease and views (the other instances), in the secondary's table.
    pub peers: bool,
    /// The secondary's API (its `http` probe) alone: a route to its endpoint broken
    /// while its table answers.
    pub secondary_api: bool,
}

impl Paths {
    pub const ALL: Paths = Paths {
        primary: true,
        secondary: true,
        peers: true,
        secondary_api: true,
    };
}

/// What a call needs to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Api(Role),
    Table(Role),
    /// The coordination items in the secondary's table.
    Peers,
    /// Route 53 (a global service): reachable with a way out, while the secondary's
    /// side of the network answers.
    Dns,
}

/// How a call from an instance fares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Answered after this many ms.
    Answers(u64),
    Refused,
    Hang,
}

/// A successful commit, as the commit region's table saw it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub at: Instant,
    pub process: String,
    pub item: ConfigItem,
    pub from: AppState,
    pub auto: bool,
}

/// A write of the config item in the commit region, by a daemon or a person.
#[derive(Debug, Clone)]
pub struct ItemWrite {
    pub at: Instant,
    pub item: ConfigItem,
    /// The writer's clock skew (ms), which dated its `updatedAt`.
    pub skew_ms: i64,
}

/// One instance slot: its paths, and whether its process is stopped.
pub struct Slot {
    pub paths: Paths,
    pub stopped: watch::Sender<bool>,
    pub skew_ms: i64,
    /// A process of this instance runs (not killed).
    pub running: bool,
    /// A second process with this instance id runs (a duplicate).
    pub duplicate: bool,
}

pub struct State {
    pub regions: [Region; 2],
    pub slots: BTreeMap<String, Slot>,
    /// Global tables: the two regions' replication link is up.
    pub replicating: bool,
    /// Changes on their way: (due, to region, to the data table, change).
    pub in_flight: Vec<(Instant, Role, bool, Change)>,
    pub commits: Vec<Committed>,
    pub trace: Vec<String>,
    pub violations: Vec<String>,
    pub rng: fastrand::Rng,
    /// Every write of the config item in the commit region, in order.
    pub item_writes: Vec<ItemWrite>,
    /// Commits before this index were made before a person reset the versions
    /// (and removed their records): a version may be committed again after it.
    pub epoch: usize,
    /// Copies a person's repair left at a version whose audit record they deleted
    /// (one the monitor could not set back: its region did not answer in time), as
    /// they were then: exempt from `every-version-audited` until they change.
    pub orphaned: Vec<ConfigItem>,
    /// Credential-needing probes answer AccessDenied in the primary (0) or the
    /// secondary (1): a permission change of the monitor's role.
    pub denied: [bool; 2],
    /// Write requests the commit region refused as busy (throttled, in another
    /// transaction's hands) or whose outcome the caller could not know: when, and
    /// whether it was a commit (a transition's transaction).
    pub refused: Vec<(Instant, bool)>,
    /// The skew (ms) of the clock of the person who writes the item by hand.
    pub human_skew_ms: i64,
    /// `monitor.hold_down` of every instance.
    pub hold_down: Duration,
    /// The time of day at the start, on a clock without skew.
    pub wall_start: std::time::SystemTime,
    /// Automatic moves are paused by hand.
    pub paused: bool,
    /// Since when (while paused).
    pub paused_since: Option<Instant>,
    /// The application's transactions run in the commit region.
    pub app_transactions: bool,
    /// History of the world, for the properties: (from, primary healthy, instances
    /// running with a path to the primary, instances running without one).
    pub history: Vec<(Instant, bool, Vec<String>, Vec<String>)>,
}

/// The world, shared by the daemons' backends and the scenario.
#[derive(Clone)]
pub struct World {
    inner: Arc<Mutex<State>>,
    pub tables: [MemTable; 2],
    pub data: [MemTable; 2],
    pub dns: MemDns,
    pub mode: TablesMode,
    pub start: Instant,
}

impl State {
    /// The time of day now on a clock `skew_ms` off.
    pub fn wall(&self, start: Instant, skew_ms: i64) -> std::time::SystemTime {
        let t = self.wall_start + start.elapsed();
        let skew = Duration::from_millis(skew_ms.unsigned_abs());
        if skew_ms >= 0 { t + skew } else { t - skew }
    }
}

impl World {
    pub fn new(seed: u64, mode: TablesMode) -> Self {
        let table = || match mode {
            TablesMode::Global => MemTable::replicated(),
            TablesMode::PerRegion => MemTable::new(),
        };
        Self {
            inner: Arc::new(Mutex::new(State {
                regions: [Region::UP; 2],
                slots: BTreeMap::new(),
                replicating: true,
                in_flight: Vec::new(),
                commits: Vec::new(),
                trace: Vec::new(),
                violations: Vec::new(),
                rng: fastrand::Rng::with_seed(seed),
                item_writes: Vec::new(),
                epoch: 0,
                orphaned: Vec::new(),
                denied: [false; 2],
                refused: Vec::new(),
                human_skew_ms: 0,
                hold_down: Duration::ZERO,
                wall_start: std::time::SystemTime::UNIX_EPOCH,
                paused: false,
                paused_since: None,
                app_transactions: false,
                history: Vec::new(),
            })),
            tables: [table(), table()],
            data: [table(), table()],
            dns: MemDns::default(),
            mode,
            start: Instant::now(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulated time since the start, as `12.345s`.
    pub fn clock(&self) -> String {
        let t = self.start.elapsed();
        format!("{:>8.3}s", t.as_secs_f64())
    }

    pub fn trace(&self, line: impl AsRef<str>) {
        let stamp = self.clock();
        self.lock()
            .trace
            .push(format!("[{stamp}] {}", line.as_ref()));
    }

    /// Records a violation of `property` (the first of each property only).
    pub fn violation(&self, property: &str, detail: impl AsRef<str>) {
        let stamp = self.clock();
        let line = format!("[{stamp}] VIOLATION {property}: {}", detail.as_ref());
        let mut s = self.lock();
        if s.violations
            .iter()
            .any(|v| v.contains(&format!("VIOLATION {property}:")))
        {
            return;
        }
        s.trace.push(line.clone());
        s.violations.push(line);
    }

    pub fn random(&self, below: u64) -> u64 {
        self.lock().rng.u64(..below.max(1))
    }

    /// How a call from `instance` to `target` fares now.
    pub fn reach(&self, instance: &str, target: Target) -> Reach {
        let s = self.lock();
        let Some(slot) = s.slots.get(instance) else {
            return Reach::Refused;
        };
        let (role, path_ok, health) = match target {
            Target::Api(Role::Secondary) => (
                Role::Secondary,
                slot.paths.secondary && slot.paths.secondary_api,
                s.regions[1].api,
            ),
            Target::Dns => (Role::Secondary, slot.paths.secondary, s.regions[1].api),
            Target::Api(r) => (r, path(&slot.paths, r), s.regions[r as usize].api),
            Target::Table(r) => (r, path(&slot.paths, r), s.regions[r as usize].table),
            Target::Peers => (
                Role::Secondary,
                slot.paths.secondary && slot.paths.peers,
                s.regions[1].table,
            ),
        };
        if !path_ok {
            return Reach::Hang;
        }
        match health {
            Health::Up => Reach::Answers(2 + s.regions[role as usize].slow_ms),
            Health::Refused => Reach::Refused,
            Health::Hang => Reach::Hang,
        }
    }

    /// Adds an instance slot (all paths up); its stop switch.
    pub fn add_slot(&self, instance: &str, skew_ms: i64) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        self.lock().slots.insert(
            instance.to_owned(),
            Slot {
                paths: Paths::ALL,
                stopped: tx,
                skew_ms,
                running: true,
                duplicate: false,
            },
        );
        rx
    }

    /// A fresh stop switch for a restarted process of `instance`.
    pub fn new_switch(&self, instance: &str) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        if let Some(slot) = self.lock().slots.get_mut(instance) {
            slot.stopped = tx;
        }
        rx
    }

    /// Global tables: takes every write made since the last call and sends it to
    /// the other region with a random lag; delivers what is due (last writer wins).
    pub fn replicate(&self, lag_ms: (u64, u64)) {
        if self.mode != TablesMode::Global {
            return;
        }
        let now = Instant::now();
        let mut outgoing = Vec::new();
        for (tables, is_data) in [(&self.tables, false), (&self.data, true)] {
            for role in Role::BOTH {
                for change in tables[role as usize].drain() {
                    outgoing.push((role.other(), is_data, change));
                }
            }
        }
        let mut s = self.lock();
        for (to, is_data, change) in outgoing {
            let lag = lag_ms.0 + s.rng.u64(..=(lag_ms.1 - lag_ms.0));
            s.in_flight
                .push((now + Duration::from_millis(lag), to, is_data, change));
        }
        if !s.replicating {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut s.in_flight)
            .into_iter()
            .partition(|(at, _, _, _)| *at <= now);
        s.in_flight = later;
        drop(s);
        for (_, to, is_data, change) in due {
            let target = if is_data {
                &self.data[to as usize]
            } else {
                &self.tables[to as usize]
            };
            target.receive(&change);
        }
    }

    /// Nothing left to replicate.
    pub fn replication_settled(&self) -> bool {
        self.lock().in_flight.is_empty()
    }

    /// Records the world's state for the properties.
    pub fn remember(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        let primary_ok = s.regions[0].healthy();
        // A duplicate is another process: SIGSTOP of the instance does not stop it.
        let running = |slot: &Slot| (slot.running && !*slot.stopped.borrow()) || slot.duplicate;
        let seeing: Vec<String> = s
            .slots
            .iter()
            .filter(|(_, slot)| running(slot) && slot.paths.primary)
            .map(|(i, _)| i.clone())
            .collect();
        let blind: Vec<String> = s
            .slots
            .iter()
            .filter(|(_, slot)| running(slot) && !slot.paths.primary)
            .map(|(i, _)| i.clone())
            .collect();
        let changed = s
            .history
            .last()
            .is_none_or(|(_, ok, who, b)| *ok != primary_ok || *who != seeing || *b != blind);
        if changed {
            s.history.push((now, primary_ok, seeing, blind));
        }
    }
}

fn path(p: &Paths, role: Role) -> bool {
    match role {
        Role::Primary => p.primary,
        Role::Secondary => p.secondary,
    }
}
