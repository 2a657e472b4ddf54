//! The decision loop: the one owner of the [`Policy`].
//!
//! Probe results, sync reports, coordination reports, operator requests and the
//! results of commits all arrive as messages, so decisions are made one at a time.
//! A commit runs in a task of its own (one at a time), so the loop keeps taking
//! probe results, answering status and pinging the watchdog while a write waits on
//! a slow region; a shutdown waits for the commit in flight to finish.
//!
//! - here: [`Daemon`] (built from `Settings` and a [`Backend`]) and its `select!` loop;
//! - `events.rs`: what each message does to the loop's state;
//! - `decide.rs`: one evaluation of the policy;
//! - `commit.rs`: starting a commit (automatic or manual) and taking in its outcome;
//! - `recovery.rs`: the recovery report of each commit (timeline, RTO, RPO);
//! - `status.rs`: the [`Status`] snapshot, a pure function of the loop's state;
//! - `bound.rs`: how long a real outage may take to be failed over;
//! - `readiness.rs`: the secondary's readiness check and what its reports do.
//!
//! The listener of the admin API and the shutdown signal come from the caller
//! (`crate::app`), so tests run several daemons in one process on paused time.

mod bound;
mod commit;
mod decide;
mod events;
mod readiness;
mod recovery;
mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use bound::failover_bound;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::action::{self, ActionError, Actuator, Outcome, Prepared, SyncReport};
use crate::backend::{self, Backend};
use crate::backtest::Recorder;
use crate::control::{Handle, Request, Status};
use crate::coord::{self, CoordReport, Identity, OwnView};
use crate::gate::Gate;
use crate::metrics::{Metrics, ProbeRows};
use crate::notify;
use crate::probe::{self, Scheduled};
use failover_config::Settings;
use failover_core::commit::Commits;
use failover_core::model::{ConfigItem, PauseRecord, Role};
use failover_core::policy::{Observation, Policy, Replication};

/// Backoff between attempts of a transition that did not commit.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);
/// Longest a status snapshot may lag behind the decision loop.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

pub struct Daemon {
    settings: Arc<Settings>,
    backend: Arc<dyn Backend>,
    identity: Identity,
    policy: Policy,
    actuator: Arc<Actuator>,
    status_tx: watch::Sender<Status>,
    requests: mpsc::Receiver<Request>,
    metrics: Arc<Metrics>,
    /// The per-probe series, in the order observations index the probes.
    probe_rows: Arc<ProbeRows>,
    own_view: watch::Sender<OwnView>,
    /// This instance acts now ([`Leadership::acts`](crate::coord::Leadership::acts)):
    /// it alone measures replication and changes DNS.
    acts: watch::Sender<bool>,
    recorder: Option<Recorder>,
    rng: fastrand::Rng,
    gate: Gate,
    /// The loop's own request channel, for the drill runner's moves.
    requests_tx: mpsc::Sender<Request>,
    /// The drill record as the drill runner last saw it.
    drill_seen: watch::Sender<Option<failover_core::drill::DrillRecord>>,
}

/// A human's move in flight: what was asked (to ask it again once after finding the
/// item reset under us) and where the answer goes.
struct HumanMove {
    to: failover_core::model::AppState,
    reason: String,
    force: bool,
    caller: String,
    /// A fence: how long it lasts, as asked.
    lasts: Option<Duration>,
    reply:
        tokio::sync::oneshot::Sender<Result<crate::control::MoveDone, crate::control::MoveError>>,
    /// A drill's move, not a human's.
    drill: Option<crate::control::DrillMove>,
    /// Already asked again once.
    again: bool,
    /// When the loop received it: it is answered within
    /// [`ANSWER_WITHIN`](crate::control::ANSWER_WITHIN) of then, or not started.
    since: Instant,
}

/// The commit lifecycle of this loop: prepared writes, humans' answers, and their
/// requests waiting for the commit in flight.
type Lifecycle = Commits<Prepared, HumanMove, Request>;

/// What the loop knows besides the policy.
struct LoopState {
    last_verdict: String,
    last_read: [String; 2],
    divergence: Option<String>,
    primary_item: Option<ConfigItem>,
    secondary_item: Option<ConfigItem>,
    coord: Option<CoordReport>,
    /// A replication measurement is under way.
    measuring: bool,
    dns_error: Option<String>,
    last_publish: Option<Instant>,
    /// Publish the status after this evaluation, whatever the time.
    publish_now: bool,
    /// The commit in flight, the retry, the backoff, a stop for a human, the queue.
    commits: Lifecycle,
    /// The stored pause.
    pause: Option<PauseRecord>,
    /// When what we know of the pause was learned (our write returned, or the read
    /// that brought it was issued).
    pause_learned_at: Option<Instant>,
    /// A read of the audit record above an item a human must settle is under way.
    checking_settled: bool,
    /// The lift of a pause that ended is being stored.
    lifting_pause: bool,
    /// Recovery reports under way, the RPO canary, when the primary went down.
    recovery: recovery::Recovery,
    /// The secondary's last readiness check (None: not checked yet).
    readiness: Option<crate::readiness::Readiness>,
    /// The drill record as the drill runner last saw it.
    drill: Option<watch::Receiver<Option<failover_core::drill::DrillRecord>>>,
}

impl LoopState {
    fn new() -> Self {
        Self {
            last_verdict: String::new(),
            last_read: Default::default(),
            divergence: None,
            primary_item: None,
            secondary_item: None,
            coord: None,
            measuring: false,
            dns_error: None,
            last_publish: None,
            publish_now: false,
            commits: Commits::new(RETRY_MIN, RETRY_MAX),
            pause: None,
            pause_learned_at: None,
            checking_settled: false,
            lifting_pause: false,
            recovery: Default::default(),
            readiness: None,
            drill: None,
        }
    }
}

/// What a finished background job reports to the loop.
enum Done {
    /// A commit's outcome, and when it started.
    Commit(Box<(Prepared, Result<Outcome, ActionError>, Instant)>),
    /// Whether the audit record above the item a human must settle still exists.
    Settled {
        item: (failover_core::model::AppState, u64),
        record_exists: Result<bool, ActionError>,
    },
    Pause {
        result: Result<(bool, PauseRecord), ActionError>,
        reply: tokio::sync::oneshot::Sender<Result<bool, crate::control::PauseError>>,
    },
    /// The lift of a pause that ended was stored (`None`: another write came first).
    PauseLifted(Result<Option<PauseRecord>, ActionError>),
    /// A recovery report was stored (or not).
    ReportStored {
        version: u64,
        complete: bool,
        result: Result<(), ActionError>,
    },
}

/// The channels and tasks of one run of the loop.
struct Tasks {
    obs_tx: mpsc::Sender<Observation>,
    probes: JoinSet<()>,
    sync_tx: mpsc::Sender<SyncReport>,
    sync_now: Arc<Notify>,
    sync: JoinHandle<()>,
    repl_tx: mpsc::Sender<Replication>,
    done_tx: mpsc::Sender<Done>,
    /// What the client-path watcher of a report sees.
    seen_tx: mpsc::Sender<crate::observe::Seen>,
    /// The RPO canary's task, when the backend has one.
    rpo: Option<JoinHandle<()>>,
    /// One-off jobs: commits, pause writes, replication measurements.
    jobs: JoinSet<()>,
    coord: Option<JoinHandle<()>>,
    coord_stop: watch::Sender<bool>,
    /// The drill runner and its requests.
    drills: JoinHandle<()>,
    drill_tx: mpsc::Sender<crate::drill::DrillRequest>,
}

impl Drop for Tasks {
    /// Dropping the loop (a test aborting a daemon, the runtime shutting down) stops
    /// its tasks too: none outlives it.
    fn drop(&mut self) {
        self.probes.abort_all();
        self.jobs.abort_all();
        self.sync.abort();
        self.drills.abort();
        if let Some(t) = &self.coord {
            t.abort();
        }
        if let Some(t) = &self.rpo {
            t.abort();
        }
    }
}

/// The receiving ends of [`Tasks`].
struct Inbox {
    obs: mpsc::Receiver<Observation>,
    sync: mpsc::Receiver<SyncReport>,
    repl: mpsc::Receiver<Replication>,
    coord: mpsc::Receiver<CoordReport>,
    done: mpsc::Receiver<Done>,
    seen: mpsc::Receiver<crate::observe::Seen>,
    rpo: mpsc::Receiver<crate::observe::RpoSample>,
    readiness: readiness::ReadinessInbox,
}

impl Daemon {
    /// The daemon for `settings` on `backend`, and the handle to observe and steer
    /// it. Nothing runs until [`Daemon::run`].
    pub fn new(
        settings: Settings,
        backend: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(Self, Handle)> {
        let mut rng = fastrand::Rng::with_seed(backend.seed());
        let actuator = Arc::new(backend::actuator(backend.as_ref(), &settings, rng.u64(..)));
        let (status_tx, status_rx) = watch::channel(Status {
            instance_id: settings.monitor.instance_id.clone(),
            mode: settings.monitor.mode.as_str().into(),
            ..Status::default()
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        // Alone, this instance is its own quorum (and may act): the gauges say so
        // from the start, so that alerts on them never fire for a lone deployment.
        let alone = i64::from(settings.coordination.is_none());
        metrics.leader.set(alone);
        metrics.quorum_reachable.set(alone);
        let recorder = match &settings.monitor.record_observations {
            None => None,
            Some(path) => {
                let r = Recorder::open(path).map_err(|e| {
                    anyhow::anyhow!(
                        "opening monitor.record_observations {}: {e}",
                        path.display()
                    )
                })?;
                info!(path = %path.display(), "recording probe results for backtests");
                Some(r)
            }
        };
        let identity = Identity {
            instance: settings.monitor.instance_id.clone(),
            process: backend.process_id(),
        };
        let mut daemon = Self {
            policy: settings.policy(),
            settings: Arc::new(settings),
            backend,
            identity,
            actuator,
            status_tx,
            requests: cmd_rx,
            metrics,
            probe_rows: Arc::default(),
            own_view: watch::channel(OwnView::default()).0,
            acts: watch::channel(false).0,
            recorder,
            rng,
            gate: Gate::open(),
            requests_tx: cmd_tx.clone(),
            drill_seen: watch::channel(None).0,
        };
        daemon.gate = daemon.backend.gate();
        let rule = daemon.settings.readiness.failover;
        daemon.policy.set_readiness_rule(rule);
        daemon.resolve_probe_metrics();
        daemon.warn_about_settings();
        let handle = Handle {
            status: status_rx,
            requests: cmd_tx,
        };
        Ok((daemon, handle))
    }

    /// The actuator the daemon commits with (the admin API reads history through it).
    pub fn actuator(&self) -> Arc<Actuator> {
        self.actuator.clone()
    }

    fn warn_about_settings(&self) {
        let s = &self.settings;
        if let Some(c) = &s.coordination
            && c.allow_minority_quorum
        {
            warn!(quorum = %c.quorum, instances = c.instances.len(),
                "coordination.allow_minority_quorum: a minority of the instances may fail the primary over");
        }
        if !s
            .probes
            .iter()
            .any(|p| p.region == Role::Primary && p.kind() == "http")
        {
            warn!(
                "no http probe watches the primary: after a permission change every primary \
                 probe is inconclusive and an outage is not failed over on its own"
            );
        }
        if s.policy.require_healthy_secondary
            && !s.probes.iter().any(|p| p.region == Role::Secondary)
        {
            warn!(
                "no probe watches the secondary: require_healthy_secondary cannot check anything"
            );
        }
    }

    /// New series for the configured probes, exported from now on.
    fn resolve_probe_metrics(&mut self) {
        let probes = self.settings.probes.iter();
        self.probe_rows = Arc::new(ProbeRows::new(
            probes.map(|p| (p.name.as_str(), p.region, p.kind())),
        ));
        self.metrics.set_probes(self.probe_rows.clone());
    }

    fn scheduled_probes(&self) -> Vec<Scheduled> {
        let s = &self.settings;
        s.probes
            .iter()
            .enumerate()
            .map(|(index, spec)| Scheduled {
                index,
                name: spec.name.clone(),
                region: spec.region,
                interval: spec.interval,
                timeout: spec.timeout,
                jitter: spec.jitter,
                prober: self.backend.probe(spec, s),
            })
            .collect()
    }

    fn spawn_probes(&mut self, tx: &mpsc::Sender<Observation>) -> JoinSet<()> {
        probe::spawn_all(
            self.scheduled_probes(),
            tx.clone(),
            Some(self.metrics.schedule_lag.clone()),
            &mut self.rng,
            &self.gate,
        )
    }

    fn spawn_sync(&self, tx: &mpsc::Sender<SyncReport>, now: &Arc<Notify>) -> JoinHandle<()> {
        tokio::spawn(action::sync_loop(
            self.actuator.clone(),
            self.settings.monitor.state_refresh,
            now.clone(),
            self.acts.subscribe(),
            tx.clone(),
            self.gate.clone(),
        ))
    }

    /// What the drill runner works with (its record shown in status).
    fn drill_ctx(&self) -> Arc<crate::drill::Ctx> {
        let s = &self.settings;
        let alarms = s
            .drills
            .blocking_alarms
            .iter()
            .map(|a| {
                let spec = failover_config::ProbeSpec {
                    name: format!("drill-blocking-alarm/{}/{}", a.region, a.name),
                    region: a.region,
                    interval: s.drills.alarm_every,
                    timeout: Duration::from_secs(10),
                    jitter: Duration::ZERO,
                    fall: 1,
                    rise: 1,
                    check: failover_config::CheckSpec::CloudwatchAlarm {
                        alarms: vec![a.name.clone()],
                        insufficient_data: failover_config::InsufficientData::Ok,
                    },
                };
                (a.clone(), self.backend.probe(&spec, s))
            })
            .collect();
        Arc::new(crate::drill::Ctx {
            settings: s.clone(),
            actuator: self.actuator.clone(),
            client: self.backend.client_path(s),
            alarms,
            identity: self.identity.clone(),
            status: self.status_tx.subscribe(),
            acts: self.acts.subscribe(),
            moves: self.requests_tx.clone(),
            metrics: self.metrics.clone(),
            seen: self.drill_seen.clone(),
            readiness_checked: !self.backend.readiness(s).is_empty(),
            gate: self.gate.clone(),
        })
    }

    /// Starts the probe, sync and coordination tasks; their messages come back in
    /// the inbox.
    fn start_tasks(&mut self) -> (Tasks, Inbox) {
        let (obs_tx, obs) = mpsc::channel::<Observation>(1024);
        let (sync_tx, sync) = mpsc::channel::<SyncReport>(4);
        let (repl_tx, repl) = mpsc::channel::<Replication>(4);
        let (coord_tx, coord) = mpsc::channel::<CoordReport>(4);
        let (done_tx, done) = mpsc::channel::<Done>(4);
        let (seen_tx, seen) = mpsc::channel(8);
        let (rpo_tx, rpo) = mpsc::channel(2);
        let rpo_task = self.backend.rpo_canary(&self.settings).map(|pair| {
            tokio::spawn(crate::observe::rpo_canary(
                pair,
                self.backend.clock(),
                self.settings.client_path.canary_every,
                self.acts.subscribe(),
                rpo_tx,
                self.gate.clone(),
            ))
        });
        let (coord_stop, stop_rx) = watch::channel(false);
        let sync_now = Arc::new(Notify::new());
        let coord_task = self.settings.coordination.clone().map(|c| {
            tokio::spawn(coord::run(
                self.backend.coordination(&self.settings),
                c,
                self.identity.clone(),
                self.own_view.subscribe(),
                coord_tx,
                stop_rx,
                self.gate.clone(),
            ))
        });
        let (drill_tx, drill_rx) = mpsc::channel(4);
        let drills = tokio::spawn(crate::drill::run(self.drill_ctx(), drill_rx));
        let tasks = Tasks {
            drills,
            drill_tx,
            probes: self.spawn_probes(&obs_tx),
            sync: self.spawn_sync(&sync_tx, &sync_now),
            obs_tx,
            sync_tx,
            sync_now,
            repl_tx,
            done_tx,
            seen_tx,
            rpo: rpo_task,
            jobs: JoinSet::new(),
            coord: coord_task,
            coord_stop,
        };
        let inbox = Inbox {
            obs,
            sync,
            repl,
            coord,
            done,
            seen,
            rpo,
            readiness: self.spawn_readiness(),
        };
        (tasks, inbox)
    }

    /// Runs until `shutdown` completes. A commit in flight finishes first, and a
    /// held lease is given up.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let s = &self.settings;
        info!(
            instance = %s.monitor.instance_id,
            process = %self.identity.process,
            mode = s.monitor.mode.as_str(),
            app_id = %s.app.id,
            primary = %s.regions.primary.name,
            secondary = %s.regions.secondary.name,
            tables = ?s.tables_mode(),
            probes = s.probes.len(),
            "failover-monitor starting"
        );
        let (mut tasks, mut inbox) = self.start_tasks();
        let watchdog_every = notify::watchdog_interval();
        let mut watchdog =
            tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
        let mut repl_tick = tokio::time::interval(Duration::from_secs(1));
        let mut state = LoopState::new();
        state.drill = Some(self.drill_seen.subscribe());
        tokio::pin!(shutdown);
        loop {
            self.gate.pass().await;
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = watchdog.tick() => {
                    if watchdog_every.is_some() {
                        notify::notify("WATCHDOG=1");
                    }
                    continue;
                }
                Some(done) = inbox.done.recv() => self.on_done(done, &mut state, &mut tasks),
                Some(cmd) = self.requests.recv() => self.on_command(cmd, &mut state, &mut tasks),
                Some(report) = inbox.sync.recv() => self.on_sync(report, &mut state, &mut tasks),
                _ = repl_tick.tick() => {
                    self.on_replication_tick(&mut state, &mut tasks);
                    continue;
                }
                Some(r) = inbox.repl.recv() => {
                    state.measuring = false;
                    info!(canary_arrived = r.canary_arrived, lag_ms = ?r.lag_ms, detail = %r.detail, "replication canary measured while fenced");
                    self.policy.observe_replication(r);
                }
                Some(report) = inbox.coord.recv() => self.on_coordination(report, &mut state),
                Some(seen) = inbox.seen.recv() => self.on_seen(seen, &mut state, &mut tasks),
                Some(report) = inbox.readiness.reports.recv() => self.on_readiness(report, &mut state),
                Some(sample) = inbox.rpo.recv() => {
                    state.recovery.rpo.merge(sample);
                    continue;
                }
                Some(obs) = inbox.obs.recv() => {
                    self.on_observation(&obs);
                    // Take what else is already queued before evaluating once: fewer
                    // wake-ups and evaluations when thousands of probes run.
                    for _ in 0..256 {
                        match inbox.obs.try_recv() {
                            Ok(obs) => self.on_observation(&obs),
                            Err(_) => break,
                        }
                    }
                }
                else => break,
            }
            self.evaluate(&mut state, &mut tasks);
        }
        self.stop(tasks, inbox, state).await;
    }

    /// Lets a commit in flight finish (its outcome taken in), gives the lease up and
    /// stops the tasks.
    async fn stop(&mut self, mut tasks: Tasks, mut inbox: Inbox, mut state: LoopState) {
        let bound = self.settings.monitor.write_timeout * 4 + Duration::from_secs(1);
        if state.commits.in_flight() {
            info!("waiting for the commit in flight before stopping");
            if let Ok(Some(done)) = tokio::time::timeout(bound, inbox.done.recv()).await {
                self.on_done(done, &mut state, &mut tasks);
            }
        }
        let _ = tasks.coord_stop.send(true);
        if let Some(coord) = &tasks.coord {
            let wait = self.settings.monitor.write_timeout + Duration::from_secs(1);
            let _ = tokio::time::timeout(wait, async {
                while !coord.is_finished() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
        }
        if let Some(rec) = &mut self.recorder {
            let _ = rec.flush();
        }
        drop(tasks);
        info!("failover-monitor stopped");
    }
}
