//! The deterministic simulation of the whole system: N real daemons (the library's
//! decision loop, policy, coordination and actuator) in one process, on paused tokio
//! time, in a simulated two-region world (`world.rs`, `net.rs`), with faults placed
//! at random by one seeded generator (`faults.rs`) and the properties checked as it
//! runs (`props.rs`). The same seed gives the same trace.

pub mod faults;
pub mod net;
pub mod props;
pub mod world;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use failover_config::{self as config, Settings, TablesMode};
use failover_core::model::{AppState, ConfigItem, Role, keys};
use failover_daemon::control::{Handle, Status};
use failover_daemon::metrics::Metrics;
use failover_daemon::{Daemon, failover_bound};
use failover_testkit::{Faults, Record, TokioWallClock};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use faults::{Fault, Outage, Path, Plan};
use net::SimBackend;
use world::{Health, Region, World};

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
    clock_start: SystemTime,
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

fn config_text(me: &str, instances: &[String], global: bool, fence: bool) -> String {
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
    let fence = if fence {
        "fence_for = \"1s\"\nmax_fence = \"3s\"\n"
    } else {
        ""
    };
    let tables = if global { "global" } else { "per-region" };
    let probe = |name: &str, kind: &str, region: &str| {
        let url = if kind == "http" {
            format!("url = \"https://{region}.invalid/state\"\n")
        } else {
            String::new()
        };
        format!("[[probes]]\nname = \"{name}\"\nkind = \"{kind}\"\nregion = \"{region}\"\n{url}")
    };
    format!(
        "[app]\nid = \"{APP}\"\n[regions.primary]\nname = \"us-east-1\"\n[regions.secondary]\nname = \"ap-northeast-1\"\n\
         [monitor]\ninstance_id = \"{me}\"\nhold_down = \"0s\"\nstate_refresh = \"1s\"\nwrite_timeout = \"1s\"\n{fence}\
         [probe_defaults]\ninterval = \"500ms\"\ntimeout = \"400ms\"\njitter = \"50ms\"\nfall = 3\nrise = 2\n\
         {}{}{}{}{}\
         [stack]\ntables = \"{tables}\"\n\
         [route53]\nzone_id = \"Z0SIM\"\nrecord_name = \"app.example.com\"\nprimary_value = \"primary\"\nsecondary_value = \"secondary\"\n\
         {coordination}",
        probe("p-api-1", "http", "primary"),
        probe("p-api-2", "http", "primary"),
        probe("p-table", "dynamodb", "primary"),
        probe("s-api", "http", "secondary"),
        probe("s-table", "dynamodb", "secondary"),
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
        let clock = TokioWallClock::new(self.clock_start).skewed(skew);
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

    fn set_path(&self, instance: &str, path: Path, up: bool) {
        if let Some(slot) = self.world.lock().slots.get_mut(instance) {
            match path {
                Path::Primary => slot.paths.primary = up,
                Path::Secondary => slot.paths.secondary = up,
                Path::Peers => slot.paths.peers = up,
            }
        }
        self.world.trace(format!(
            "{} {instance} {} the {path:?}",
            if up { "restore" } else { "cut" },
            if up { "to" } else { "from" }
        ));
    }

    fn primary(&self, region: Region) {
        self.world.lock().regions[0] = region;
    }

    fn apply(&mut self, fault: &Fault) {
        self.world.trace(format!("fault: {fault:?}"));
        match fault {
            Fault::PrimaryDown(o) => self.primary(match o {
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
            }),
            Fault::PrimaryUp => self.primary(Region::UP),
            Fault::SecondaryDown => {
                self.world.lock().regions[1] = Region {
                    api: Health::Refused,
                    table: Health::Refused,
                    slow_ms: 0,
                }
            }
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
            Fault::Throttle(n) => {
                self.world.lock().write_fault_at = Some(Instant::now());
                self.world.tables[1].set_faults(Faults {
                    throttle: *n,
                    ..Faults::default()
                })
            }
            Fault::TimeoutAfterApply => {
                self.world.lock().write_fault_at = Some(Instant::now());
                self.world.tables[1].set_faults(Faults {
                    fail_after_apply: 1,
                    ..Faults::default()
                })
            }
            Fault::DeleteLease => self.world.tables[1].delete(&keys::lease(APP)),
            Fault::Pause(paused) => self.pause(*paused),
            Fault::Reseed => self.reseed(),
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
        }
    }

    /// A person writes the stored pause (as the admin API would, by hand).
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
        self.world.lock().paused = paused;
    }

    fn reseed(&mut self) {
        let item = Record::Item(seed_item());
        self.world.tables[1].put(APP, item.clone());
        if self.world.mode == TablesMode::PerRegion {
            self.world.tables[0].put(APP, item);
        }
        self.world.lock().reseeded = true;
    }

    fn heal_all(&mut self) {
        self.primary(Region::UP);
        self.world.lock().regions[1] = Region::UP;
        self.world.lock().replicating = true;
        let instances: Vec<String> = self.settings.keys().cloned().collect();
        for i in &instances {
            for p in [Path::Primary, Path::Secondary, Path::Peers] {
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
        self.world.tables[1].set_faults(Faults::default());
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
    ConfigItem {
        state: AppState::Active,
        version: 0,
        updated_at: None,
        updated_by: None,
        reason: None,
        expires_at: None,
    }
}

async fn simulate(seed: u64) -> Outcome {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = [3, 3, 3, 3, 5, 1][rng.usize(..6)];
    let global = rng.bool();
    let fence = rng.u8(..4) == 0;
    let instances: Vec<String> = ["a", "b", "c", "d", "e"][..n]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mode = if global {
        TablesMode::Global
    } else {
        TablesMode::PerRegion
    };
    let world = World::new(rng.u64(..), mode);
    for t in &world.tables {
        t.put(APP, Record::Item(seed_item()));
    }
    let mut settings = BTreeMap::new();
    for i in &instances {
        let text = config_text(i, &instances, global, fence);
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
        "seed {seed}: {n} instances, {} tables, fence {fence}, bound {} ms",
        if global { "global" } else { "per-region" },
        bound.as_millis()
    ));
    let mut sim = Sim {
        world: world.clone(),
        settings,
        procs: BTreeMap::new(),
        extra: BTreeMap::new(),
        stopping: Vec::new(),
        incarnations: BTreeMap::new(),
        bound,
        needed,
        clock_start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
    };
    for i in &instances {
        sim.start(i, false);
    }
    let plan = faults::plan(&mut rng, &instances, global);
    let faults = plan
        .events
        .iter()
        .map(|(_, f)| f.kind())
        .filter(|k| !k.is_empty())
        .collect();
    let outcome = drive(&mut sim, plan).await;
    sim.stop_all().await;
    let s = world.lock();
    Outcome {
        seed,
        trace: s.trace.clone(),
        violations: s.violations.clone(),
        failovers_ms: outcome,
        bound_ms: bound.as_millis() as u64,
        faults,
        instances: n,
        global,
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
    checker.failovers_ms
}

/// The commit region's item and the primary's copy.
pub fn items(world: &World) -> [Option<ConfigItem>; 2] {
    Role::BOTH.map(|r| match world.tables[r as usize].get(APP) {
        Some(Record::Item(i)) => Some(i),
        _ => None,
    })
}
