//! Wiring: builds the clients, probes, policy, actuator, metrics and admin server from
//! [`Settings`], and runs the decision loop until shutdown.
//!
//! The loop is the only owner of the [`Policy`]: probe results, sync reports and
//! operator commands all arrive as messages, so decisions are made one at a time and
//! a transition in flight finishes before the next event is looked at (which is also
//! why a shutdown never cuts a write in half).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::action::{
    self, ActionError, Actuator, Dns, DnsAction, Fence, Outcome, SyncAction, SyncReport, Transition,
};
use crate::admin::{self, AdminState};
use crate::aws::RegionClients;
use crate::config::{self, Mode, Settings};
use crate::coord::{self, CoordReport, OwnView, Peer};
use crate::metrics::Metrics;
use crate::model::{AppState, AuditRecord, ConfigItem, Role, Trigger};
use crate::notify;
use crate::policy::{
    Coordination, Decision, Health, Observation, Policy, PolicyConfig, ProbeView, Refusal,
    Replication, Verdict,
};
use crate::probe::{self, Prober, Scheduled};

/// Everything an observer (status endpoint, tests) may want to know. Published through
/// a `watch` channel at most every 200 ms, and at once when an operator-visible thing
/// changes (a command, a sync or coordination report, a commit).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Status {
    pub instance_id: String,
    pub mode: String,
    pub paused: bool,
    /// The instance allowed to act: this one when it acts alone, else the lease owner.
    pub leader: Option<String>,
    /// This instance holds the right to act now.
    pub is_leader: bool,
    /// With cooperating instances: each one's published view and liveness.
    pub instances: Vec<Peer>,
    /// With cooperating instances: live instances, down votes, votes needed.
    pub quorum: Option<serde_json::Value>,
    pub item: Option<ConfigItem>,
    pub primary_item: Option<ConfigItem>,
    pub secondary_item: Option<ConfigItem>,
    /// Set while the two regions' copies disagree in a way the sync cannot fix.
    pub divergence: Option<String>,
    pub probes: Vec<ProbeView>,
    /// What the policy would do now ("hold: ...", "blocked (...): ...").
    pub verdict: String,
    /// The first evaluation with a known item has happened.
    pub ready: bool,
}

/// Operator requests into the decision loop.
#[derive(Debug)]
pub enum Command {
    /// Stop (true) or restart (false) automatic transitions; probing goes on. Replies
    /// with whether it was paused before.
    SetPaused {
        paused: bool,
        caller: String,
        reason: String,
        reply: oneshot::Sender<bool>,
    },
    /// A human's move, through the safety rules (unless `force`) and the actuator.
    Move {
        to: AppState,
        reason: String,
        force: bool,
        caller: String,
        reply: oneshot::Sender<Result<MoveDone, MoveError>>,
    },
    /// A new, already validated configuration (SIGHUP).
    Reload {
        settings: Box<Settings>,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct MoveDone {
    pub item: ConfigItem,
    pub record: AuditRecord,
    /// Whether the primary's copy was updated at once (else the sync will).
    pub primary_updated: bool,
}

#[derive(Debug)]
pub enum MoveError {
    Refused(Refusal),
    LostRace(Option<ConfigItem>),
    Failed(ActionError),
}

/// What the caller keeps to observe and steer a running daemon.
#[derive(Clone)]
pub struct Handle {
    pub status: watch::Receiver<Status>,
    pub commands: mpsc::Sender<Command>,
}

/// Backoff between attempts of a transition that failed for want of the secondary.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);
/// Longest a status snapshot may lag behind the decision loop.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// The `run` command: admin server, signals (SIGTERM/SIGINT stop, SIGHUP reloads
/// `config_path`), systemd notifications, and the decision loop.
///
/// Errors that are the configuration's fault come back as [`ConfigError`](config::ConfigError).
pub async fn run(config_path: PathBuf, settings: Settings) -> anyhow::Result<()> {
    let (settings, token) = config::for_run_with_env(settings, std::env::vars())?;
    let listen = settings.admin.listen;
    let metrics = Arc::new(Metrics::new());
    metrics.config_reload_ok.set(1);
    metrics.config_reload_time.set(unix_now());
    let (daemon, handle) = Daemon::build(settings, metrics.clone()).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the admin server to {listen}"))?;
    info!(listen = %listener.local_addr()?, token = token.is_some(), "admin server listening");
    let admin_state = Arc::new(AdminState {
        handle: handle.clone(),
        metrics: metrics.clone(),
        actuator: daemon.actuator.clone(),
        token,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let admin_task = tokio::spawn(admin::serve(
        listener,
        admin::router(admin_state),
        stopped(stop_rx.clone()),
    ));
    let signal_task = tokio::spawn(signals(config_path, handle, metrics, stop_tx));
    notify::notify("READY=1");
    daemon.run(stopped(stop_rx)).await;
    notify::notify("STOPPING=1");
    signal_task.abort();
    match admin_task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e).context("admin server"),
        Err(e) => Err(e).context("admin server task"),
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

async fn signals(
    config_path: PathBuf,
    handle: Handle,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers; stopping");
        let _ = stop.send(true);
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: finishing the write in flight, then exiting"); break }
            _ = int.recv() => { info!("SIGINT: finishing the write in flight, then exiting"); break }
            _ = hup.recv() => reload(&config_path, &handle, &metrics).await,
        }
    }
    let _ = stop.send(true);
}

/// Loads and validates the config file again; a bad one keeps the running config.
async fn reload(path: &std::path::Path, handle: &Handle, metrics: &Metrics) {
    notify::notify("RELOADING=1");
    let result = match config::load(path).and_then(config::for_run) {
        Err(e) => Err(e.to_string()),
        Ok(settings) => {
            let (tx, rx) = oneshot::channel();
            let cmd = Command::Reload {
                settings: Box::new(settings),
                reply: tx,
            };
            match handle.commands.send(cmd).await {
                Ok(()) => rx
                    .await
                    .unwrap_or_else(|_| Err("the daemon is stopping".into())),
                Err(_) => Err("the daemon is stopping".into()),
            }
        }
    };
    match result {
        Ok(()) => {
            metrics.config_reload_ok.set(1);
            metrics.config_reload_time.set(unix_now());
            info!(path = %path.display(), "config reloaded");
        }
        Err(e) => {
            metrics.config_reload_ok.set(0);
            error!(path = %path.display(), error = %e, "config reload failed; keeping the running config");
        }
    }
    notify::notify("READY=1");
}

pub struct Daemon {
    settings: Arc<Settings>,
    policy: Policy,
    actuator: Arc<Actuator>,
    clients: [RegionClients; 2],
    http: reqwest::Client,
    status_tx: watch::Sender<Status>,
    commands: mpsc::Receiver<Command>,
    metrics: Arc<Metrics>,
    probe_metrics: Vec<ProbeMetrics>,
    own_view: watch::Sender<OwnView>,
    recorder: Option<crate::backtest::Recorder>,
}

/// Per-probe metric handles, resolved once instead of per observation.
struct ProbeMetrics {
    success: prometheus::IntGauge,
    duration: prometheus::Histogram,
}

impl Daemon {
    pub async fn build(
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(Self, Handle)> {
        let primary = RegionClients::load(&settings.regions.primary).await;
        let secondary = RegionClients::load(&settings.regions.secondary).await;
        let actuator = Arc::new(actuator_with(&settings, &primary, &secondary).await);
        let policy = Policy::from_settings(&settings);
        let (status_tx, status_rx) = watch::channel(Status {
            instance_id: settings.monitor.instance_id.clone(),
            mode: settings.monitor.mode.as_str().into(),
            ..Status::default()
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        metrics
            .leader
            .set(i64::from(settings.coordination.is_none()));
        let mut daemon = Self {
            settings: Arc::new(settings),
            policy,
            actuator,
            clients: [primary, secondary],
            http: probe::http_client(),
            status_tx,
            commands: cmd_rx,
            metrics,
            probe_metrics: Vec::new(),
            own_view: watch::channel(OwnView::default()).0,
            recorder: None,
        };
        if let Some(path) = &daemon.settings.monitor.record_observations {
            daemon.recorder = Some(crate::backtest::Recorder::open(path).with_context(|| {
                format!("opening monitor.record_observations {}", path.display())
            })?);
            info!(path = %path.display(), "recording probe results for backtests");
        }
        daemon.probe_metrics = daemon.resolve_probe_metrics();
        daemon.warn_about_settings();
        Ok((
            daemon,
            Handle {
                status: status_rx,
                commands: cmd_tx,
            },
        ))
    }

    fn warn_about_settings(&self) {
        let s = &self.settings;
        if s.policy.require_healthy_secondary
            && !s.probes.iter().any(|p| p.region == Role::Secondary)
        {
            warn!(
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

    /// `probe_up` exists only once a probe's health is known (never 0 for "unknown").
    fn set_probe_up(&self, name: &str, region: Role, up: bool) {
        self.metrics
            .probe_up
            .with_label_values(&[name, region.as_str()])
            .set(i64::from(up));
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
                prober: Prober::new(spec, s, &self.clients[spec.region as usize], &self.http),
            })
            .collect()
    }

    pub fn actuator(&self) -> Arc<Actuator> {
        self.actuator.clone()
    }

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
        let (obs_tx, mut obs_rx) = mpsc::channel::<Observation>(1024);
        let mut probe_tasks = probe::spawn_all(
            self.scheduled_probes(),
            obs_tx.clone(),
            Some(self.metrics.schedule_lag.clone()),
        );
        let (sync_tx, mut sync_rx) = mpsc::channel::<SyncReport>(4);
        let sync_now = Arc::new(Notify::new());
        let mut sync_task = self.spawn_sync(&sync_tx, &sync_now);
        let (repl_tx, mut repl_rx) = mpsc::channel::<Replication>(4);
        let mut repl_tick = tokio::time::interval(Duration::from_secs(1));
        let (coord_tx, mut coord_rx) = mpsc::channel::<CoordReport>(4);
        let coord_task = self.settings.coordination.clone().map(|c| {
            tokio::spawn(coord::run(
                self.actuator.clone(),
                c,
                self.settings.monitor.instance_id.clone(),
                self.own_view.subscribe(),
                coord_tx,
            ))
        });

        let mut watchdog =
            tokio::time::interval(notify::watchdog_interval().unwrap_or(Duration::from_secs(3600)));
        let watchdog_on = notify::watchdog_interval().is_some();
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
                    if watchdog_on {
                        notify::notify("WATCHDOG=1");
                    }
                    continue;
                }
                Some(cmd) = self.commands.recv() => {
                    if let Command::Reload { settings, reply } = cmd {
                        let result = self.reload(*settings);
                        if result.is_ok() {
                            // New probes, new sync cadence: restart both.
                            probe_tasks = probe::spawn_all(self.scheduled_probes(), obs_tx.clone(), Some(self.metrics.schedule_lag.clone()));
                            sync_task.abort();
                            sync_task = self.spawn_sync(&sync_tx, &sync_now);
                        }
                        let _ = reply.send(result);
                    } else {
                        self.command(cmd, &mut state, &sync_now).await;
                    }
                    state.publish_now = true;
                }
                Some(report) = sync_rx.recv() => {
                    self.on_sync(report, &mut state);
                    state.publish_now = true;
                }
                _ = repl_tick.tick() => {
                    if let Some(rec) = &mut self.recorder {
                        let _ = rec.flush();
                    }
                    if self.policy.measuring_replication() && !state.measuring {
                        state.measuring = true;
                        let (act, tx) = (self.actuator.clone(), repl_tx.clone());
                        tokio::spawn(async move {
                            let at = Instant::now();
                            let (drained, lag, detail) = act.measure_replication(Duration::from_secs(2)).await;
                            let lag_ms = lag.map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
                            let _ = tx.send(Replication { at, drained, lag_ms, detail }).await;
                        });
                    }
                    continue;
                }
                Some(r) = repl_rx.recv() => {
                    state.measuring = false;
                    info!(drained = r.drained, lag_ms = ?r.lag_ms, detail = %r.detail, "replication measured while fenced");
                    self.policy.observe_replication(r);
                }
                Some(report) = coord_rx.recv() => {
                    if let Some(e) = &report.error {
                        warn!(error = %e, "coordination round failed");
                    }
                    state.coord = Some(report);
                    state.publish_now = true;
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
            self.evaluate(&mut state, &sync_now).await;
        }
        probe_tasks.abort_all();
        sync_task.abort();
        if let Some(rec) = &mut self.recorder {
            let _ = rec.flush();
        }
        if let Some(t) = coord_task {
            t.abort();
        }
        info!("failover-monitor stopped");
    }

    fn spawn_sync(&self, tx: &mpsc::Sender<SyncReport>, now: &Arc<Notify>) -> JoinHandle<()> {
        tokio::spawn(sync_loop(
            self.actuator.clone(),
            self.settings.monitor.state_refresh,
            now.clone(),
            tx.clone(),
        ))
    }

    /// Applies a new configuration. The identity of what is watched (app, project,
    /// regions) cannot change without a restart; admin changes wait for one.
    fn reload(&mut self, new: Settings) -> Result<(), String> {
        let old = &self.settings;
        let same_identity = old.app.id == new.app.id
            && old.app.project == new.app.project
            && old.regions.primary.name == new.regions.primary.name
            && old.regions.primary.endpoint_url == new.regions.primary.endpoint_url
            && old.regions.secondary.name == new.regions.secondary.name
            && old.regions.secondary.endpoint_url == new.regions.secondary.endpoint_url
            && old.monitor.instance_id == new.monitor.instance_id;
        if !same_identity {
            return Err(
                "app, regions and monitor.instance_id cannot change on reload: restart the daemon"
                    .into(),
            );
        }
        if old.admin.listen != new.admin.listen || old.admin.token_file != new.admin.token_file {
            warn!("admin.* changes take effect at the next restart");
        }
        if old.route53 != new.route53 {
            return Err("route53 cannot change on reload: restart the daemon".into());
        }
        let clients = &self.clients;
        let dns = self.actuator.dns();
        self.actuator =
            Arc::new(Actuator::from_settings(&new, &clients[0], &clients[1]).with_dns(dns));
        self.policy.reconfigure(
            PolicyConfig::from_settings(&new),
            new.probes
                .iter()
                .map(|p| (p.name.clone(), p.region, p.fall, p.rise)),
        );
        self.settings = Arc::new(new);
        self.metrics.reset_probes();
        self.probe_metrics = self.resolve_probe_metrics();
        for view in self.policy.probe_views(Instant::now()) {
            if view.health != Health::Unknown {
                self.set_probe_up(&view.name, view.region, view.health == Health::Up);
            }
        }
        self.warn_about_settings();
        Ok(())
    }

    async fn command(&mut self, cmd: Command, state: &mut LoopState, sync_now: &Notify) {
        match cmd {
            Command::SetPaused {
                paused,
                caller,
                reason,
                reply,
            } => {
                let was = self.policy.paused();
                self.policy.set_paused(paused);
                self.metrics.paused.set(i64::from(paused));
                info!(
                    paused,
                    was_paused = was,
                    caller = %caller,
                    reason = %reason,
                    "automatic transitions {}",
                    if paused { "paused" } else { "resumed" }
                );
                let _ = reply.send(was);
            }
            Command::Move {
                to,
                reason,
                force,
                caller,
                reply,
            } => {
                let result = match self.policy.manual(to, force, Instant::now()) {
                    Err(r) => {
                        warn!(to = %to, caller = %caller, refusal = %r, "manual move refused");
                        Err(MoveError::Refused(r))
                    }
                    Ok(decision) => {
                        let t = self.transition_for(
                            decision,
                            reason,
                            Trigger::Manual,
                            format!("admin:{caller}"),
                            force,
                        );
                        match self.commit(&t, state, sync_now).await {
                            Ok(Outcome::Committed {
                                item,
                                record,
                                primary,
                                ..
                            }) => Ok(MoveDone {
                                item,
                                record,
                                primary_updated: primary.is_ok(),
                            }),
                            Ok(Outcome::LostRace { current }) => Err(MoveError::LostRace(current)),
                            Ok(Outcome::Deposed) => Err(MoveError::LostRace(None)),
                            Err(e) => Err(MoveError::Failed(e)),
                        }
                    }
                };
                let _ = reply.send(result);
            }
            Command::Reload { reply, .. } => {
                let _ = reply.send(Err("reload is handled by the loop".into()));
            }
        }
    }

    fn on_observation(&mut self, obs: &Observation) {
        if let Some(rec) = &mut self.recorder
            && let Some(spec) = self.settings.probes.get(obs.probe)
            && let Err(e) = rec.record(obs, &spec.name, spec.region)
        {
            error!(error = %e, "cannot record probe results; recording stops");
            self.recorder = None;
        }
        if let Some(m) = self.probe_metrics.get(obs.probe) {
            m.success.set(i64::from(obs.ok));
            m.duration.observe(obs.latency.as_secs_f64());
        }
        let Some(flip) = self.policy.observe(obs) else {
            return;
        };
        let spec = &self.settings.probes[obs.probe];
        if flip != Health::Unknown {
            self.set_probe_up(&spec.name, spec.region, flip == Health::Up);
        }
        match flip {
            Health::Down => warn!(
                probe = %spec.name,
                region = %spec.region,
                kind = spec.kind(),
                error = obs.error.as_deref().unwrap_or(""),
                "probe down after {} consecutive failures",
                spec.fall
            ),
            Health::Up => info!(
                probe = %spec.name,
                region = %spec.region,
                kind = spec.kind(),
                latency_ms = obs.latency.as_millis() as u64,
                "probe up"
            ),
            Health::Unknown => {}
        }
    }

    fn on_sync(&mut self, report: SyncReport, state: &mut LoopState) {
        let now = Instant::now();
        for (role, read) in [
            (Role::Primary, &report.primary),
            (Role::Secondary, &report.secondary),
        ] {
            let summary = match read {
                Ok(Some(i)) => format!("{} v{}", i.state, i.version),
                Ok(None) => "no item".into(),
                Err(e) => e.to_string(),
            };
            let last = &mut state.last_read[role as usize];
            if *last != summary {
                match read {
                    Ok(_) => info!(region = %role, item = %summary, "config item read"),
                    Err(_) => {
                        warn!(region = %role, error = %summary, "cannot read the config item")
                    }
                }
                *last = summary;
            }
        }
        let divergence = match &report.action {
            SyncAction::None => None,
            SyncAction::CaughtUp {
                region,
                from_version,
                to_version,
            } => {
                info!(region = %region, from_version = ?from_version, to_version, "brought the lagging copy of the config item up to date");
                None
            }
            SyncAction::CatchUpFailed { region, reason } => Some(format!(
                "{region} copy lags and cannot be written: {reason}"
            )),
            SyncAction::Diverged {
                primary,
                secondary,
                version,
            } => Some(format!(
                "primary says {primary}, secondary says {secondary}, both at version {version}: \
                 written outside the version protocol; set the state again to settle it"
            )),
        };
        if divergence != state.divergence {
            match &divergence {
                Some(d) => warn!(divergence = %d, "the regions disagree on the state"),
                None if state.divergence.is_some() => info!("the regions agree on the state again"),
                None => {}
            }
            self.metrics.divergence.set(i64::from(divergence.is_some()));
            state.divergence = divergence;
        }
        match &report.dns {
            Some(Ok(DnsAction::Upserted { from, to })) => {
                info!(from = ?from, to = %to, "DNS record brought in line with the state")
            }
            Some(Err(e)) => {
                let e = e.to_string();
                if state.dns_error.as_deref() != Some(e.as_str()) {
                    warn!(error = %e, "cannot bring the DNS record in line with the state");
                }
                state.dns_error = Some(e);
            }
            _ => state.dns_error = None,
        }
        if let Some(item) = report.newest() {
            let changed_at = action::changed_at(item, now);
            self.policy.observe_item(item.clone(), changed_at, now);
        }
        state.primary_item = report.primary.ok().flatten();
        state.secondary_item = report.secondary.ok().flatten();
    }

    fn transition_for(
        &self,
        d: Decision,
        reason: String,
        trigger: Trigger,
        by: String,
        forced: bool,
    ) -> Transition {
        Transition {
            from: d.from,
            to: d.to,
            expected_version: d.expected_version,
            reason,
            evidence: d.evidence,
            trigger,
            by,
            forced,
            fence: None,
        }
    }

    /// The coordination inputs for the policy as of `now`, and our fence if we lead.
    fn coordination(
        &self,
        state: &LoopState,
        now: Instant,
    ) -> (Option<Coordination>, Option<Fence>) {
        let Some(cfg) = &self.settings.coordination else {
            return (None, None);
        };
        let me = &self.settings.monitor.instance_id;
        let Some(report) = &state.coord else {
            let c = Coordination {
                leader: false,
                leader_id: None,
                live: 1,
                others_down: 0,
                quorum: cfg.quorum,
            };
            return (Some(c), None);
        };
        let held = report.held.filter(|(_, until)| now < *until);
        let live = report.peers.iter().filter(|p| p.live).count().max(1);
        let others_down = report
            .peers
            .iter()
            .filter(|p| {
                p.live && p.instance != *me && p.view.as_ref().is_some_and(|v| v.primary_down)
            })
            .count();
        let c = Coordination {
            leader: held.is_some(),
            leader_id: report.leader.clone(),
            live,
            others_down,
            quorum: cfg.quorum,
        };
        let fence = held.map(|(token, _)| Fence {
            owner: me.clone(),
            token,
        });
        (Some(c), fence)
    }

    /// Hands `t` to the actuator and takes in the outcome (policy, metrics, logs).
    async fn commit(
        &mut self,
        t: &Transition,
        state: &mut LoopState,
        sync_now: &Notify,
    ) -> Result<Outcome, ActionError> {
        let result = self.actuator.transition(t).await;
        let now = Instant::now();
        match &result {
            Ok(Outcome::Committed {
                item, primary, dns, ..
            }) => {
                info!(
                    from = %t.from,
                    to = %t.to,
                    version = item.version,
                    trigger = t.trigger.as_str(),
                    by = %t.by,
                    forced = t.forced,
                    reason = %t.reason,
                    "transition committed in the secondary"
                );
                match primary {
                    Ok(()) => info!(version = item.version, "primary copy updated"),
                    Err(e) => {
                        warn!(error = %e, "primary copy not updated yet; it will be caught up when it answers")
                    }
                }
                match dns {
                    Some(Ok(DnsAction::Upserted { from, to })) => {
                        info!(from = ?from, to = %to, "DNS record updated")
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "DNS record not updated yet; the sync will retry")
                    }
                    _ => {}
                }
                self.metrics.transition(t.from, t.to, t.trigger);
                self.policy.committed(item.clone(), now);
                state.publish_now = true;
                state.retry_at = None;
                state.backoff = RETRY_MIN;
                sync_now.notify_one();
            }
            Ok(Outcome::Deposed) => {
                warn!(
                    from = %t.from,
                    to = %t.to,
                    token = ?t.fence.as_ref().map(|f| f.token),
                    "deposed: another instance holds the leader lease now; the write was refused"
                );
                sync_now.notify_one();
            }
            Ok(Outcome::LostRace { current }) => {
                warn!(
                    from = %t.from,
                    to = %t.to,
                    expected_version = t.expected_version,
                    now_state = ?current.as_ref().map(|i| i.state),
                    now_version = ?current.as_ref().map(|i| i.version),
                    now_by = ?current.as_ref().and_then(|i| i.updated_by.clone()),
                    "lost the race: the config item changed before this write; not overwriting"
                );
                if let Some(item) = current.clone() {
                    let at = action::changed_at(&item, now);
                    self.policy.observe_item(item, at, now);
                }
                sync_now.notify_one();
            }
            Err(e) => {
                error!(from = %t.from, to = %t.to, error = %e, "transition failed; nothing was changed");
            }
        }
        result
    }

    async fn evaluate(&mut self, state: &mut LoopState, sync_now: &Notify) {
        let now = Instant::now();
        let (coordination, fence) = self.coordination(state, now);
        if coordination.is_some() {
            self.metrics.leader.set(i64::from(fence.is_some()));
            let own = OwnView {
                primary_down: self.policy.primary_down(),
                secondary_up: self.policy.region_up(Role::Secondary),
                detail: self
                    .policy
                    .probe_views(now)
                    .iter()
                    .filter(|p| p.health != Health::Up)
                    .map(|p| format!("{} {:?}", p.name, p.health))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            self.own_view.send_if_modified(|v| {
                let changed = v.primary_down != own.primary_down
                    || v.secondary_up != own.secondary_up
                    || v.detail != own.detail;
                *v = own;
                changed
            });
        }
        self.policy.set_coordination(coordination);
        let verdict = self.policy.evaluate(now);
        let summary = verdict.summary();
        if summary != state.last_verdict {
            match &verdict {
                Verdict::Hold { .. } => info!(verdict = %summary, "policy"),
                Verdict::Act(d) => info!(verdict = %summary, reason = %d.reason, "policy"),
                Verdict::Blocked { wanted, because } => {
                    let because = serde_json::to_string(because).unwrap_or_default();
                    if self.settings.monitor.mode != Mode::Auto || self.policy.paused() {
                        warn!(verdict = %summary, reason = %wanted.reason, because = %because, "would move, but does not act");
                    } else {
                        info!(verdict = %summary, reason = %wanted.reason, because = %because, "policy");
                    }
                }
            }
            state.last_verdict = summary;
        }
        if let Verdict::Act(decision) = verdict
            && state.retry_at.is_none_or(|t| now >= t)
        {
            let reason = decision.reason.clone();
            let by = self.settings.monitor.instance_id.clone();
            let mut t = self.transition_for(decision, reason, Trigger::Auto, by, false);
            t.fence = fence.clone();
            if self.commit(&t, state, sync_now).await.is_err() {
                info!(
                    retry_in_ms = state.backoff.as_millis() as u64,
                    "will retry the transition"
                );
                state.retry_at = Some(Instant::now() + state.backoff);
                state.backoff = (state.backoff * 2).min(RETRY_MAX);
            }
        }
        // The snapshot holds every probe: building it after each of thousands of
        // observations a second would cost O(probes) each. Publish at most every
        // PUBLISH_EVERY, and at once when something an operator waits for changed.
        let due = state
            .last_publish
            .is_none_or(|t| now.saturating_duration_since(t) >= PUBLISH_EVERY);
        if due || std::mem::take(&mut state.publish_now) {
            state.last_publish = Some(now);
            self.publish(state, fence.is_some());
        }
    }

    fn publish(&self, state: &LoopState, holds_lease: bool) {
        let now = Instant::now();
        if let Some(item) = self.policy.item() {
            self.metrics.set_state(item.state);
            self.metrics
                .item_version
                .set(i64::try_from(item.version).unwrap_or(i64::MAX));
            if let Some(t) = item
                .updated_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            {
                self.metrics.last_transition.set(t.as_secs_f64());
            }
        }
        let status = Status {
            instance_id: self.settings.monitor.instance_id.clone(),
            mode: self.settings.monitor.mode.as_str().into(),
            paused: self.policy.paused(),
            leader: match &self.settings.coordination {
                None => Some(self.settings.monitor.instance_id.clone()),
                Some(_) => state.coord.as_ref().and_then(|r| r.leader.clone()),
            },
            is_leader: self.settings.coordination.is_none() || holds_lease,
            instances: state
                .coord
                .as_ref()
                .map(|r| r.peers.clone())
                .unwrap_or_default(),
            quorum: self.settings.coordination.as_ref().map(|c| {
                let live = state
                    .coord
                    .as_ref()
                    .map_or(1, |r| r.peers.iter().filter(|p| p.live).count().max(1));
                serde_json::json!({
                    "rule": c.quorum.to_string(),
                    "live": live,
                    "needed": c.quorum.threshold(live),
                    "primary_down": self.policy.effective_primary_down(),
                })
            }),
            item: self.policy.item().cloned(),
            primary_item: state.primary_item.clone(),
            secondary_item: state.secondary_item.clone(),
            divergence: state.divergence.clone(),
            probes: self.policy.probe_views(now),
            verdict: state.last_verdict.clone(),
            ready: self.policy.item().is_some(),
        };
        self.status_tx.send_replace(status);
    }
}

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

/// Reads (and reconciles) both copies of the item every `every`, or at once when
/// notified, and reports to the decision loop.
async fn sync_loop(
    actuator: Arc<Actuator>,
    every: Duration,
    now: Arc<Notify>,
    tx: mpsc::Sender<SyncReport>,
) {
    loop {
        let report = actuator.sync().await;
        debug!(action = ?report.action, "sync");
        if tx.send(report).await.is_err() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = now.notified() => {}
        }
    }
}

/// Builds the actuator alone, for the CLI's `state` commands.
pub async fn actuator(settings: &Settings) -> Actuator {
    let primary = RegionClients::load(&settings.regions.primary).await;
    let secondary = RegionClients::load(&settings.regions.secondary).await;
    actuator_with(settings, &primary, &secondary).await
}

async fn actuator_with(
    settings: &Settings,
    primary: &RegionClients,
    secondary: &RegionClients,
) -> Actuator {
    let dns = match &settings.route53 {
        Some(r) => Some(Arc::new(
            Dns::new(r.clone(), settings.monitor.write_timeout).await,
        )),
        None => None,
    };
    Actuator::from_settings(settings, primary, secondary).with_dns(dns)
}

/// Reads the item from the secondary (the commit point), or says why not.
pub async fn current_item(actuator: &Actuator) -> anyhow::Result<ConfigItem> {
    actuator
        .table(Role::Secondary)
        .read()
        .await
        .context("reading the config item from the secondary region (the commit point)")?
        .ok_or(ActionError::Missing {
            region: Role::Secondary,
        })
        .context("no config item to change")
}
