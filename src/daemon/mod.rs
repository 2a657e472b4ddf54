//! The decision loop: the one owner of the [`Policy`].
//!
//! Probe results, sync reports, coordination reports and operator commands all
//! arrive as messages, so decisions are made one at a time and a transition in
//! flight finishes before the next event is looked at (which is also why a shutdown
//! never cuts a write in half).
//!
//! - here: [`Daemon`] (built from `Settings` and a [`Backend`]) and its `select!` loop;
//! - `events.rs`: what each message does to the loop's state;
//! - `decide.rs`: one evaluation of the policy and the commit it may lead to;
//! - `status.rs`: the [`Status`] snapshot, a pure function of the loop's state.
//!
//! The listener of the admin API and the shutdown signal come from the caller
//! (`crate::app`), so tests run several daemons in one process on paused time.

mod decide;
mod events;
mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::info;

use crate::action::{self, Actuator, SyncReport};
use crate::backend::Backend;
use crate::backtest::Recorder;
use crate::config::Settings;
use crate::control::{Handle, Status};
use crate::coord::{self, CoordReport, OwnView};
use crate::metrics::Metrics;
use crate::model::{ConfigItem, Role};
use crate::notify;
use crate::policy::{Observation, Policy, Replication};
use crate::probe::{self, Scheduled};

/// Backoff between attempts of a transition that failed for want of the secondary.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);
/// Longest a status snapshot may lag behind the decision loop.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

pub struct Daemon {
    settings: Arc<Settings>,
    backend: Arc<dyn Backend>,
    policy: Policy,
    actuator: Arc<Actuator>,
    status_tx: watch::Sender<Status>,
    commands: mpsc::Receiver<crate::control::Command>,
    metrics: Arc<Metrics>,
    probe_metrics: Vec<ProbeMetrics>,
    own_view: watch::Sender<OwnView>,
    recorder: Option<Recorder>,
    rng: fastrand::Rng,
}

/// Per-probe metric handles, resolved once instead of per observation.
struct ProbeMetrics {
    success: prometheus::IntGauge,
    duration: prometheus::Histogram,
}

/// What the loop knows besides the policy.
#[derive(Default)]
struct LoopState {
    last_verdict: String,
    last_read: [String; 2],
    divergence: Option<String>,
    primary_item: Option<ConfigItem>,
    secondary_item: Option<ConfigItem>,
    retry_at: Option<Instant>,
    backoff: Duration,
    coord: Option<CoordReport>,
    /// A replication measurement is under way.
    measuring: bool,
    dns_error: Option<String>,
    last_publish: Option<Instant>,
    /// Publish the status after this evaluation, whatever the time.
    publish_now: bool,
}

/// The channels and tasks of one run of the loop.
struct Tasks {
    obs_tx: mpsc::Sender<Observation>,
    probes: JoinSet<()>,
    sync_tx: mpsc::Sender<SyncReport>,
    sync_now: Arc<Notify>,
    sync: JoinHandle<()>,
    repl_tx: mpsc::Sender<Replication>,
    coord: Option<JoinHandle<()>>,
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
        let actuator = Arc::new(Self::actuator_for(&settings, backend.as_ref(), rng.u64(..)));
        let (status_tx, status_rx) = watch::channel(Status {
            instance_id: settings.monitor.instance_id.clone(),
            mode: settings.monitor.mode.as_str().into(),
            ..Status::default()
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        metrics
            .leader
            .set(i64::from(settings.coordination.is_none()));
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
        let mut daemon = Self {
            policy: Policy::from_settings(&settings),
            settings: Arc::new(settings),
            backend,
            actuator,
            status_tx,
            commands: cmd_rx,
            metrics,
            probe_metrics: Vec::new(),
            own_view: watch::channel(OwnView::default()).0,
            recorder,
            rng,
        };
        daemon.probe_metrics = daemon.resolve_probe_metrics();
        daemon.warn_about_settings();
        let handle = Handle {
            status: status_rx,
            commands: cmd_tx,
        };
        Ok((daemon, handle))
    }

    fn actuator_for(settings: &Settings, backend: &dyn Backend, seed: u64) -> Actuator {
        Actuator::new(
            backend.config_table(settings, Role::Primary),
            backend.config_table(settings, Role::Secondary),
            backend.dns(settings),
            backend.clock(),
            seed,
        )
    }

    /// The actuator the daemon commits with (the admin API reads history through it).
    pub fn actuator(&self) -> Arc<Actuator> {
        self.actuator.clone()
    }

    fn warn_about_settings(&self) {
        let s = &self.settings;
        if s.policy.require_healthy_secondary
            && !s.probes.iter().any(|p| p.region == Role::Secondary)
        {
            tracing::warn!(
                "no probe watches the secondary: require_healthy_secondary cannot check anything"
            );
        }
    }

    fn resolve_probe_metrics(&self) -> Vec<ProbeMetrics> {
        self.settings
            .probes
            .iter()
            .map(|p| {
                let labels = [p.name.as_str(), p.region.as_str(), p.kind()];
                ProbeMetrics {
                    success: self.metrics.probe_success.with_label_values(&labels),
                    duration: self.metrics.probe_duration.with_label_values(&labels),
                }
            })
            .collect()
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
        )
    }

    fn spawn_sync(&self, tx: &mpsc::Sender<SyncReport>, now: &Arc<Notify>) -> JoinHandle<()> {
        tokio::spawn(action::sync_loop(
            self.actuator.clone(),
            self.settings.monitor.state_refresh,
            now.clone(),
            tx.clone(),
        ))
    }

    /// Starts the probe, sync and coordination tasks; their messages come back on
    /// the receivers.
    fn start_tasks(
        &mut self,
    ) -> (
        Tasks,
        mpsc::Receiver<Observation>,
        mpsc::Receiver<SyncReport>,
        mpsc::Receiver<Replication>,
        mpsc::Receiver<CoordReport>,
    ) {
        let (obs_tx, obs_rx) = mpsc::channel::<Observation>(1024);
        let (sync_tx, sync_rx) = mpsc::channel::<SyncReport>(4);
        let (repl_tx, repl_rx) = mpsc::channel::<Replication>(4);
        let (coord_tx, coord_rx) = mpsc::channel::<CoordReport>(4);
        let sync_now = Arc::new(Notify::new());
        let coord = self.settings.coordination.clone().map(|c| {
            tokio::spawn(coord::run(
                self.backend.coordination(&self.settings),
                c,
                self.settings.monitor.instance_id.clone(),
                self.own_view.subscribe(),
                coord_tx,
            ))
        });
        let tasks = Tasks {
            probes: self.spawn_probes(&obs_tx),
            sync: self.spawn_sync(&sync_tx, &sync_now),
            obs_tx,
            sync_tx,
            sync_now,
            repl_tx,
            coord,
        };
        (tasks, obs_rx, sync_rx, repl_rx, coord_rx)
    }

    /// Runs until `shutdown` completes. A transition in flight finishes first.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let s = &self.settings;
        info!(
            instance = %s.monitor.instance_id,
            mode = s.monitor.mode.as_str(),
            app_id = %s.app.id,
            primary = %s.regions.primary.name,
            secondary = %s.regions.secondary.name,
            probes = s.probes.len(),
            "failover-monitor starting"
        );
        let (mut tasks, mut obs_rx, mut sync_rx, mut repl_rx, mut coord_rx) = self.start_tasks();
        let watchdog_every = notify::watchdog_interval();
        let mut watchdog =
            tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
        let mut repl_tick = tokio::time::interval(Duration::from_secs(1));
        let mut state = LoopState {
            backoff: RETRY_MIN,
            ..LoopState::default()
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = watchdog.tick() => {
                    if watchdog_every.is_some() {
                        notify::notify("WATCHDOG=1");
                    }
                    continue;
                }
                Some(cmd) = self.commands.recv() => {
                    self.on_command(cmd, &mut state, &mut tasks).await;
                }
                Some(report) = sync_rx.recv() => {
                    self.on_sync(report, &mut state);
                    state.publish_now = true;
                }
                _ = repl_tick.tick() => {
                    self.on_replication_tick(&mut state, &tasks);
                    continue;
                }
                Some(r) = repl_rx.recv() => {
                    state.measuring = false;
                    info!(drained = r.drained, lag_ms = ?r.lag_ms, detail = %r.detail, "replication measured while fenced");
                    self.policy.observe_replication(r);
                }
                Some(report) = coord_rx.recv() => {
                    self.on_coordination(report, &mut state);
                }
                Some(obs) = obs_rx.recv() => {
                    self.on_observation(&obs);
                    // Take what else is already queued before evaluating once: fewer
                    // wake-ups and evaluations when thousands of probes run.
                    for _ in 0..256 {
                        match obs_rx.try_recv() {
                            Ok(obs) => self.on_observation(&obs),
                            Err(_) => break,
                        }
                    }
                }
                else => break,
            }
            self.evaluate(&mut state, &tasks.sync_now).await;
        }
        self.stop(tasks);
    }

    fn stop(&mut self, mut tasks: Tasks) {
        tasks.probes.abort_all();
        tasks.sync.abort();
        if let Some(rec) = &mut self.recorder {
            let _ = rec.flush();
        }
        if let Some(t) = tasks.coord {
            t.abort();
        }
        info!("failover-monitor stopped");
    }
}
