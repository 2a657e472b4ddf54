//! The deterministic simulation of the whole system: N real daemons (the library's
//! decision loop, policy, coordination and actuator) in one process, on paused tokio
//! time, in a simulated two-region world (`world.rs`, `net.rs`), with faults placed
//! at random by one seeded generator (`faults.rs`) and the properties checked as it
//! runs (`props.rs`). The same seed gives the same trace.

pub mod apply;
pub mod faults;
pub mod liveness;
pub mod net;
pub mod props;
pub mod scenarios;
pub mod world;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use failover_config::{self as config, Settings, TablesMode};
use failover_core::model::{AppState, ConfigItem, Role, keys};
use failover_daemon::control::{Handle, Status};
use failover_daemon::metrics::Metrics;
use failover_daemon::{Daemon, failover_bound};
use failover_testkit::{Record, TokioWallClock};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use faults::{Path, Plan, Setup};
use net::SimBackend;
use world::World;

pub const APP: &str = "sim-app";
/// How often the scenario looks at the world (faults, replication, properties).
const STEP: Duration = Duration::from_millis(50);

/// What one seed produced.
pub struct Outcome {
    pub seed: u64,
    pub trace: Vec<String>,
    pub violations: Vec<String>,
    /// Failover times of the outages that qualified for the bound, ms.
    pub failovers_ms: Vec<u64>,
    pub bound_ms: u64,
    pub faults: Vec<&'static str>,
    pub instances: usize,
    pub global: bool,
}

/// One running process of an instance.
struct Proc {
    process: String,
    handle: Handle,
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
    leading: bool,
}

/// The simulation of one seed.
pub struct Sim {
    pub world: World,
    pub settings: BTreeMap<String, Settings>,
    procs: BTreeMap<String, Proc>,
    /// Duplicates started by the scenario, by instance.
    extra: BTreeMap<String, Proc>,
    /// Processes stopping cleanly.
    stopping: Vec<Proc>,
    incarnations: BTreeMap<String, u32>,
    pub bound: Duration,
    pub needed: usize,
    /// The wall clock every process's is skewed from (from the world's start).
    clock: TokioWallClock,
    /// The instance whose path [`faults::Fault::CutLeader`] cut, and which path.
    cut_leader: Option<(String, Path)>,
    pub setup: Setup,
}

/// Runs seed `seed` on a fresh single-threaded runtime with paused time.
pub fn run(seed: u64) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(simulate(seed))
}

/// The primary's probes: (name, signed). Two `http` and one signed probe, or (with
/// `signed_majority`) one `http` and two signed ones, which a permission change can
/// silence together.
pub fn primary_probes(setup: &Setup) -> Vec<(&'static str, bool)> {
    if setup.signed_majority {
        vec![("p-api-1", false), ("p-table", true), ("p-data", true)]
    } else {
        vec![("p-api-1", false), ("p-api-2", false), ("p-table", true)]
    }
}

fn config_text(me: &str, instances: &[String], setup: &Setup) -> String {
    let list = instances
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let coordination = if instances.len() > 1 {
        format!(
            "[coordination]\ninstances = [{list}]\nlease = \"4s\"\nrenew_every = \"1s\"\nview_ttl = \"3s\"\n"
        )
    } else {
        String::new()
    };
    let fence = if setup.fence {
        "fence_for = \"1s\"\nmax_fence = \"3s\"\n"
    } else {
        ""
    };
    let tables = if setup.global { "global" } else { "per-region" };
    let probe = |name: &str, signed: bool, region: &str| {
        if signed {
            format!("[[probes]]\nname = \"{name}\"\nkind = \"dynamodb\"\nregion = \"{region}\"\n")
        } else {
            format!(
                "[[probes]]\nname = \"{name}\"\nkind = \"http\"\nregion = \"{region}\"\nurl = \"https://{region}.invalid/state\"\n"
            )
        }
    };
    let probes: String = primary_probes(setup)
        .into_iter()
        .map(|(name, signed)| probe(name, signed, "primary"))
        .chain([
            probe("s-api", false, "secondary"),
            probe("s-table", true, "secondary"),
        ])
        .collect();
    format!(
        "[app]\nid = \"{APP}\"\n[regions.primary]\nname = \"us-east-1\"\n[regions.secondary]\nname = \"ap-northeast-1\"\n\
         [monitor]\ninstance_id = \"{me}\"\nhold_down = \"{}ms\"\nstate_refresh = \"1s\"\nwrite_timeout = \"1s\"\n{fence}\
         [probe_defaults]\ninterval = \"500ms\"\ntimeout = \"400ms\"\njitter = \"50ms\"\nfall = 3\nrise = 2\n\
         {probes}\
         [stack]\ntables = \"{tables}\"\n\
         [drills]\nverify_for = \"5s\"\nalarm_every = \"1s\"\n\
         [route53]\nzone_id = \"Z0SIM\"\nrecord_name = \"app.example.com\"\nprimary_value = \"primary\"\nsecondary_value = \"secondary\"\n\
         {coordination}",
        setup.hold_down.as_millis(),
    )
}

impl Sim {
    fn set_duplicate(&self, instance: &str, running: bool) {
        if let Some(slot) = self.world.lock().slots.get_mut(instance) {
            slot.duplicate = running;
        }
    }

    fn start(&mut self, instance: &str, duplicate: bool) {
        let inc = self.incarnations.entry(instance.to_owned()).or_insert(0);
        *inc += 1;
        let seed = self.world.random(u64::MAX);
        let process = format!("{instance}/{}-{:04x}", inc, seed & 0xffff);
        let stopped = if duplicate {
            watch::channel(false).1
        } else {
            self.world.new_switch(instance)
        };
        let skew = self
            .world
            .lock()
            .slots
            .get(instance)
            .map_or(0, |s| s.skew_ms);
        let settings = self.settings[instance].clone();
        let clock = self.clock.skewed(skew);
        let backend = SimBackend::new(
            &self.world,
            instance,
            &process,
            seed,
            stopped,
            clock,
            settings.monitor.write_timeout,
        );
        let metrics = Arc::new(Metrics::new());
        let (daemon, handle) = Daemon::new(settings, Arc::new(backend), metrics).expect("a daemon");
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(daemon.run(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        self.world.trace(format!("start {process}"));
        let p = Proc {
            process,
            handle,
            task,
            stop,
            leading: false,
        };
        if duplicate {
            self.extra.insert(instance.to_owned(), p);
            self.set_duplicate(instance, true);
        } else {
            if let Some(slot) = self.world.lock().slots.get_mut(instance) {
                slot.running = true;
            }
            self.procs.insert(instance.to_owned(), p);
        }
    }

    fn kill(&mut self, instance: &str) {
        if let Some(p) = self.procs.remove(instance) {
            p.task.abort();
            self.world.trace(format!("kill {}", p.process));
        }
        if let Some(slot) = self.world.lock().slots.get_mut(instance) {
            slot.running = false;
        }
    }

    /// A clean stop (SIGTERM): the daemon finishes on its own, giving its lease up.
    fn term(&mut self, instance: &str) {
        if let Some(p) = self.procs.remove(instance) {
            let _ = p.stop.send(true);
            self.world.trace(format!("SIGTERM {}", p.process));
            self.stopping.push(p);
        }
        if let Some(slot) = self.world.lock().slots.get_mut(instance) {
            slot.running = false;
        }
    }

    fn stopped(&self, instance: &str, stopped: bool) {
        if let Some(slot) = self.world.lock().slots.get(instance) {
            let _ = slot.stopped.send(stopped);
        }
        self.world.trace(format!(
            "{} {instance}",
            if stopped { "SIGSTOP" } else { "SIGCONT" }
        ));
    }

    /// Every running process (duplicates too): its instance, its process value,
    /// whether the instance is stopped (SIGSTOP) and its status now.
    pub fn statuses(&self) -> Vec<(String, String, bool, Status)> {
        let s = self.world.lock();
        let stopped = |i: &str| s.slots.get(i).is_some_and(|slot| *slot.stopped.borrow());
        self.procs
            .iter()
            .map(|(i, p)| (i, p, stopped(i)))
            .chain(self.extra.iter().map(|(i, p)| (i, p, false)))
            .map(|(i, p, stopped)| {
                (
                    i.clone(),
                    p.process.clone(),
                    stopped,
                    p.handle.status.borrow().clone(),
                )
            })
            .collect()
    }

    /// The handles of the running processes (not the stopping ones).
    pub fn handles(&self) -> Vec<Handle> {
        self.procs.values().map(|p| p.handle.clone()).collect()
    }

    /// Traces leadership changes of the running processes.
    fn watch_leaders(&mut self) {
        for p in self.procs.values_mut().chain(self.extra.values_mut()) {
            let s: Status = p.handle.status.borrow().clone();
            let leading = s.is_leader && s.quorum.is_some();
            if leading != p.leading {
                p.leading = leading;
                self.world.trace(format!(
                    "{} {}",
                    p.process,
                    if leading { "leads" } else { "no longer leads" }
                ));
            }
        }
    }

    async fn stop_all(&mut self) {
        let stopping = std::mem::take(&mut self.stopping)
            .into_iter()
            .map(|p| (String::new(), p));
        for (_, p) in std::mem::take(&mut self.procs)
            .into_iter()
            .chain(std::mem::take(&mut self.extra))
            .chain(stopping)
        {
            let _ = p.stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(10), p.task).await;
        }
    }
}

fn seed_item() -> ConfigItem {
    ConfigItem::seeded(AppState::Active)
}

/// The configured versions a person left behind: the item at version `version`,
/// written `ago` before the start on their clock, and its audit records.
fn written_item(world: &World, setup: &Setup, wall_start: SystemTime) {
    let ago = Duration::from_millis(setup.written_ago_ms);
    let skew = Duration::from_millis(setup.human_skew_ms.unsigned_abs());
    let wall = if setup.human_skew_ms >= 0 {
        wall_start - ago + skew
    } else {
        wall_start - ago - skew
    };
    let at = humantime::format_rfc3339_millis(wall).to_string();
    let item = ConfigItem {
        version: setup.start_version,
        updated_at: Some(at.clone()),
        updated_by: Some("admin:ana".into()),
        reason: Some("failback".into()),
        ..seed_item()
    };
    for v in 1..=setup.start_version {
        // The last one a failback, those before alternating.
        let back = (setup.start_version - v).is_multiple_of(2);
        let (from, to) = if back {
            (AppState::Failover, AppState::Active)
        } else {
            (AppState::Active, AppState::Failover)
        };
        let record = failover_core::model::AuditRecord {
            version: v,
            from,
            to,
            at: at.clone(),
            by: "admin:ana".into(),
            trigger: failover_core::model::Trigger::Manual,
            reason: "earlier".into(),
            evidence: serde_json::Value::Null,
            forced: false,
        };
        for t in &world.tables {
            t.put(&keys::audit(APP, v), Record::Audit(record.clone()));
        }
    }
    for t in &world.tables {
        t.put(APP, Record::Item(item.clone()));
    }
    let mut s = world.lock();
    let when = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
    s.item_writes.push(world::ItemWrite {
        at: when,
        item,
        skew_ms: setup.human_skew_ms,
    });
}

/// The world and the daemons of a seed, before its faults.
fn build(seed: u64, rng: &mut fastrand::Rng) -> (Sim, Vec<String>) {
    let setup = Setup::draw(rng);
    let instances: Vec<String> = ["a", "b", "c", "d", "e"][..setup.instances]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mode = if setup.global {
        TablesMode::Global
    } else {
        TablesMode::PerRegion
    };
    let world = World::new(rng.u64(..), mode);
    let wall_start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let clock = TokioWallClock::new(wall_start);
    {
        let mut s = world.lock();
        s.wall_start = wall_start;
        s.hold_down = setup.hold_down;
        s.human_skew_ms = setup.human_skew_ms;
    }
    written_item(&world, &setup, wall_start);
    for t in world.tables.iter().chain(&world.data) {
        t.set_transaction_time(Duration::from_millis(setup.transaction_ms));
    }
    let mut settings = BTreeMap::new();
    for i in &instances {
        let text = config_text(i, &instances, &setup);
        settings.insert(
            i.clone(),
            config::parse(&text, Vec::new()).expect("sim config"),
        );
        world.add_slot(i, rng.i64(-3000..=3000));
    }
    let any = &settings[&instances[0]];
    let bound = failover_bound(any);
    let needed = any
        .coordination
        .as_ref()
        .map_or(1, |c| c.quorum.threshold(c.instances.len()));
    world.trace(format!(
        "seed {seed}: {setup:?}, bound {} ms",
        bound.as_millis()
    ));
    let sim = Sim {
        world,
        settings,
        procs: BTreeMap::new(),
        extra: BTreeMap::new(),
        stopping: Vec::new(),
        incarnations: BTreeMap::new(),
        bound,
        needed,
        clock,
        cut_leader: None,
        setup,
    };
    (sim, instances)
}

async fn simulate(seed: u64) -> Outcome {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut sim, instances) = build(seed, &mut rng);
    for i in &instances {
        sim.start(i, false);
    }
    let plan = faults::plan(&mut rng, &instances, &sim.setup);
    let faults = plan
        .events
        .iter()
        .map(|(_, f)| f.kind())
        .filter(|k| !k.is_empty())
        .collect();
    let outcome = drive(&mut sim, plan).await;
    sim.stop_all().await;
    let s = sim.world.lock();
    Outcome {
        seed,
        trace: s.trace.clone(),
        violations: s.violations.clone(),
        failovers_ms: outcome,
        bound_ms: sim.bound.as_millis() as u64,
        faults,
        instances: sim.setup.instances,
        global: sim.setup.global,
    }
}

/// Runs the plan, checking the properties every step; returns the measured
/// failover times.
async fn drive(sim: &mut Sim, plan: Plan) -> Vec<u64> {
    let mut checker = props::Checker::new(sim);
    let mut events = plan.events.into_iter().peekable();
    while sim.world.start.elapsed() < plan.end {
        tokio::time::sleep(STEP).await;
        let now = sim.world.start.elapsed();
        while let Some((at, fault)) = events.next_if(|(at, _)| *at <= now) {
            let _ = at;
            sim.apply(&fault);
        }
        sim.app_transactions();
        sim.world.replicate((50, 1500));
        sim.world.remember();
        sim.watch_leaders();
        checker.step(sim, now >= plan.heal_at);
    }
    // Let replication drain before the end checks.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sim.world.replication_settled() && Instant::now() < deadline {
        tokio::time::sleep(STEP).await;
        sim.world.replicate((50, 1500));
    }
    checker.finish(sim);
    checker.failovers_ms()
}

/// The commit region's item and the primary's copy.
pub fn items(world: &World) -> [Option<ConfigItem>; 2] {
    Role::BOTH.map(|r| match world.tables[r as usize].get(APP) {
        Some(Record::Item(i)) => Some(i),
        _ => None,
    })
}
