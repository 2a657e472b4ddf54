//! The daemon's outside world in memory, for tests that run real daemons in one
//! process on paused tokio time: config tables with DynamoDB's documented semantics
//! (`table.rs`, `stores.rs`), a DNS record, probes whose outcome a test sets, and a
//! wall clock that follows tokio's (paused) time.
//!
//! [`MemoryBackend`] hands these to [`failover_daemon::decision::Daemon`] through the same
//! [`Backend`] seam as AWS; several daemons built on clones of one backend share its
//! tables, as instances share DynamoDB.

mod client;
pub mod inproc;
mod requests;
mod stores;
mod table;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

pub use client::{MemClientPath, client_part};
pub use stores::{MemCanary, MemCoordStore, MemItemStore};
pub use table::{Change, Entry, Faults, MemTable, Record};

use failover_config::{ProbeSpec, Settings};
use failover_core::model::{AppState, ConfigItem, Role, keys};
use failover_daemon::action::{
    ActionError, Canaries, CanaryPair, DnsRecord, Guard, ItemStore, RecordSet, Seen,
};
use failover_daemon::backend::Backend;
use failover_daemon::client_path::ClientPath;
use failover_daemon::clock::WallClock;
use failover_daemon::coord::CoordStore;
use failover_daemon::gate::Gate;
use failover_daemon::probe::{Probe, ProbeError};
use failover_daemon::readiness::{Finding, ReadinessPart};

/// A wall clock that follows tokio's clock (paused in tests) from a fixed start,
/// shifted by `skew`.
#[derive(Debug, Clone)]
pub struct TokioWallClock {
    start: SystemTime,
    origin: tokio::time::Instant,
    /// Added to (positive) or taken from (negative) the time of day.
    pub skew_ms: i64,
}

impl TokioWallClock {
    pub fn new(start: SystemTime) -> Self {
        Self {
            start,
            origin: tokio::time::Instant::now(),
            skew_ms: 0,
        }
    }

    pub fn skewed(&self, skew_ms: i64) -> Self {
        Self {
            skew_ms,
            ..self.clone()
        }
    }
}

impl WallClock for TokioWallClock {
    fn now(&self) -> SystemTime {
        let t = self.start + self.origin.elapsed();
        let skew = Duration::from_millis(self.skew_ms.unsigned_abs());
        if self.skew_ms >= 0 {
            t + skew
        } else {
            t - skew
        }
    }
}

/// How a scripted probe answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Fail(String),
    /// An answer about the monitor, not the region (access denied, say).
    Denied(String),
    /// Never answers (the scheduler's timeout ends it).
    Hang,
}

/// Probe outcomes a test sets, by probe name; unset probes succeed.
#[derive(Debug, Clone, Default)]
pub struct Script(Arc<Mutex<HashMap<String, Answer>>>);

impl Script {
    pub fn set(&self, probe: &str, answer: Answer) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(probe.to_owned(), answer);
    }

    /// The outcome of `probe` at instance `instance` only (its own path to the
    /// region broke, say); it wins over [`Script::set`] there.
    pub fn set_at(&self, instance: &str, probe: &str, answer: Answer) {
        self.set(&format!("{instance}/{probe}"), answer);
    }

    pub(crate) fn get(&self, instance: &str, probe: &str) -> Answer {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&format!("{instance}/{probe}"))
            .or_else(|| map.get(probe))
            .cloned()
            .unwrap_or(Answer::Ok)
    }
}

struct ScriptedProbe {
    instance: String,
    name: String,
    script: Script,
}

#[async_trait]
impl Probe for ScriptedProbe {
    async fn check(&self) -> Result<(), ProbeError> {
        match self.script.get(&self.instance, &self.name) {
            Answer::Ok => Ok(()),
            Answer::Fail(why) => Err(ProbeError::Transport(why)),
            Answer::Denied(why) => Err(ProbeError::Caller(why)),
            Answer::Hang => std::future::pending().await,
        }
    }
}

/// A DNS record and its version guard in memory, changed only over the exact
/// record and guard read (as Route 53's all-or-nothing DELETE + CREATE batch).
#[derive(Debug, Clone)]
pub struct MemDns {
    pub record: Arc<Mutex<Seen>>,
    /// Every change made: (the writing process, the new value).
    pub changes: Arc<Mutex<Vec<(String, String)>>>,
    /// The process writing through this handle.
    pub writer: String,
    /// Every read of a writer (by process) takes this long first: a slow Route 53,
    /// a process paused before its read (its write follows the read at once).
    pub delays: Arc<Mutex<HashMap<String, Duration>>>,
}

impl Default for MemDns {
    fn default() -> Self {
        Self {
            record: Arc::new(Mutex::new(Seen {
                record: RecordSet::Absent,
                guard: None,
            })),
            changes: Arc::default(),
            writer: String::new(),
            delays: Arc::default(),
        }
    }
}

impl MemDns {
    /// The record's value (its values joined by `,`), if there is one.
    pub fn get(&self) -> Option<String> {
        match &self.lock().record {
            RecordSet::Simple { values, .. } => Some(values.join(",")),
            _ => None,
        }
    }

    /// The version the guard holds.
    pub fn guard(&self) -> Option<u64> {
        self.lock().guard.map(|g| g.version)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The changes made so far: (the writing process, the new value).
    pub fn changes(&self) -> Vec<(String, String)> {
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the record by hand (the guard stays).
    pub fn set(&self, value: &str) {
        self.set_record(RecordSet::Simple {
            values: vec![value.to_owned()],
            ttl: 60,
        });
    }

    /// Sets the record's whole set by hand.
    pub fn set_record(&self, record: RecordSet) {
        self.lock().record = record;
    }

    /// Every read of `writer` (a process id) from now on waits `delay` first.
    pub fn set_delay(&self, writer: &str, delay: Duration) {
        self.delays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(writer.to_owned(), delay);
    }

    async fn wait(&self) {
        let delay = self
            .delays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.writer)
            .copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
    }
}

#[async_trait]
impl DnsRecord for MemDns {
    fn value_for(&self, state: AppState) -> String {
        match state {
            AppState::Failover => "secondary".into(),
            AppState::Active | AppState::Fenced => "primary".into(),
        }
    }

    async fn current(&self) -> Result<Seen, ActionError> {
        self.wait().await;
        Ok(self.lock().clone())
    }

    async fn replace(&self, seen: &Seen, new: &str, version: u64) -> Result<(), ActionError> {
        let mut now = self.lock();
        if *now != *seen {
            return Err(ActionError::Busy {
                region: Role::Secondary,
                reason: "InvalidChangeBatch: the record or its guard is not as read".into(),
            });
        }
        *now = Seen {
            record: RecordSet::Simple {
                values: vec![new.to_owned()],
                ttl: 60,
            },
            guard: Some(Guard { version, ttl: 60 }),
        };
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.writer.clone(), new.to_owned()));
        Ok(())
    }
}

/// The outside world of one or more in-process daemons: both regions' config tables,
/// a DNS record (used when the settings have `[route53]`), probes by script.
#[derive(Clone)]
pub struct MemoryBackend {
    /// The config tables.
    pub tables: [MemTable; 2],
    /// The application's data tables.
    pub data: [MemTable; 2],
    pub dns: MemDns,
    pub script: Script,
    pub clock: TokioWallClock,
    pub seed: u64,
    /// The secondary's readiness as the test sets it; unset, it is not checked.
    pub readiness: ScriptedReadiness,
}

/// The findings of the secondary's readiness check, as a test sets them (shared by
/// every clone of a backend). Unset (the default), the daemon checks nothing.
#[derive(Clone, Default)]
pub struct ScriptedReadiness(
    Arc<Mutex<Option<Vec<Finding>>>>,
    Arc<std::sync::atomic::AtomicBool>,
);

impl ScriptedReadiness {
    /// From now on the check finds `findings` (none: ready).
    pub fn set(&self, findings: Vec<Finding>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(findings);
    }

    /// From now on a check never answers (until the daemon's part timeout ends it),
    /// or answers again.
    pub fn hang(&self, hang: bool) {
        self.1.store(hang, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

#[async_trait]
impl ReadinessPart for ScriptedReadiness {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn check(&self) -> Vec<Finding> {
        if self.1.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let found = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        found.unwrap_or_default()
    }
}

impl MemoryBackend {
    /// Two empty regions; the wall clock starts at `start` and follows tokio's.
    pub fn new(start: SystemTime, seed: u64) -> Self {
        Self {
            tables: [MemTable::new(), MemTable::new()],
            data: [MemTable::new(), MemTable::new()],
            dns: MemDns::default(),
            script: Script::default(),
            clock: TokioWallClock::new(start),
            seed,
            readiness: ScriptedReadiness::default(),
        }
    }

    /// The same world for another instance (its own seed).
    pub fn instance(&self, seed: u64) -> Self {
        Self {
            seed,
            ..self.clone()
        }
    }

    pub fn table(&self, role: Role) -> &MemTable {
        &self.tables[role as usize]
    }

    /// Writes the config item in both regions, as provisioning seeds it.
    pub fn seed_item(&self, app_id: &str, item: &ConfigItem) {
        for t in &self.tables {
            t.put(app_id, Record::Item(item.clone()));
        }
    }

    /// The config item of a region, if any.
    pub fn item(&self, app_id: &str, role: Role) -> Option<ConfigItem> {
        match self.table(role).get(app_id) {
            Some(Record::Item(i)) => Some(i),
            _ => None,
        }
    }
}

impl Backend for MemoryBackend {
    fn config_table(&self, settings: &Settings, role: Role) -> Arc<dyn ItemStore> {
        Arc::new(MemItemStore::new(
            self.table(role).clone(),
            &settings.app.id,
            role,
        ))
    }

    fn coordination(&self, settings: &Settings) -> Arc<dyn CoordStore> {
        Arc::new(MemCoordStore::new(
            self.table(Role::Secondary).clone(),
            &settings.app.id,
        ))
    }

    fn dns(&self, settings: &Settings) -> Option<Arc<dyn DnsRecord>> {
        settings.route53.as_ref().map(|_| {
            Arc::new(MemDns {
                writer: self.process_id(),
                ..self.dns.clone()
            }) as Arc<dyn DnsRecord>
        })
    }

    fn probe(&self, spec: &ProbeSpec, settings: &Settings) -> Arc<dyn Probe> {
        Arc::new(ScriptedProbe {
            instance: settings.monitor.instance_id.clone(),
            name: spec.name.clone(),
            script: self.script.clone(),
        })
    }

    fn canaries(&self, settings: &Settings) -> Canaries {
        let me = &settings.monitor.instance_id;
        let pair = |table: &'static str, tables: &[MemTable; 2], key: String| CanaryPair {
            table,
            key: key.clone(),
            primary: Arc::new(MemCanary {
                table: tables[0].clone(),
                key: key.clone(),
                role: Role::Primary,
            }),
            secondary: Arc::new(MemCanary {
                table: tables[1].clone(),
                key,
                role: Role::Secondary,
            }),
        };
        Canaries(vec![
            pair("config", &self.tables, keys::canary(&settings.app.id, me)),
            pair("data", &self.data, keys::data_canary(&settings.app.id, me)),
        ])
    }

    fn clock(&self) -> Arc<dyn WallClock> {
        Arc::new(self.clock.clone())
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn process_id(&self) -> String {
        format!("p{:x}", self.seed)
    }

    fn readiness(&self, settings: &Settings) -> Vec<Arc<dyn ReadinessPart>> {
        let _ = settings;
        if !self.readiness.is_set() {
            return Vec::new();
        }
        vec![Arc::new(self.readiness.clone())]
    }

    fn client_path(&self, settings: &Settings) -> Option<Arc<dyn ClientPath>> {
        Some(Arc::new(MemClientPath {
            app_id: settings.app.id.clone(),
            instance: settings.monitor.instance_id.clone(),
            tables: self.tables.clone(),
            data: self.data.clone(),
            script: self.script.clone(),
        }))
    }

    fn rpo_canary(&self, settings: &Settings) -> Option<CanaryPair> {
        let key = keys::rpo_canary(&settings.app.id);
        let store = |role: Role| -> Arc<dyn failover_daemon::action::CanaryStore> {
            Arc::new(MemCanary {
                table: self.tables[role as usize].clone(),
                key: key.clone(),
                role,
            })
        };
        Some(CanaryPair {
            table: "config",
            key: key.clone(),
            primary: store(Role::Primary),
            secondary: store(Role::Secondary),
        })
    }
}

/// The simulation's SIGSTOP: a gate closed while `stopped` holds true. Each task of a
/// daemon passes its gate before it acts and before it reports, so a stopped
/// instance neither sends nor takes in anything until it is resumed, and then
/// carries on with what it had, as a stopped process does.
pub fn stoppable_gate(stopped: tokio::sync::watch::Receiver<bool>) -> Gate {
    Gate::pausable(Arc::new(StopSwitch(stopped)))
}

struct StopSwitch(tokio::sync::watch::Receiver<bool>);

#[async_trait]
impl failover_daemon::gate::Pause for StopSwitch {
    async fn wait_while_stopped(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stopped| !*stopped).await;
    }
}
