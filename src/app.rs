//! Wiring: builds the clients, probes, policy and actuator from [`Settings`] and runs
//! the decision loop until the caller's shutdown future resolves.
//!
//! The loop is the only owner of the [`Policy`]: probe results, sync reports and
//! operator commands all arrive as messages, so decisions are made one at a time and
//! a transition in flight finishes before the next event is looked at (which is also
//! why a shutdown never cuts a write in half).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::action::{self, ActionError, Actuator, Outcome, SyncAction, SyncReport, Transition};
use crate::aws::RegionClients;
use crate::config::{Mode, Settings};
use crate::model::{ConfigItem, Role, Trigger};
use crate::policy::{Health, Observation, Policy, ProbeView, Verdict};
use crate::probe::{self, Prober, Scheduled};

/// Everything an observer (status endpoint, metrics, tests) may want to know, as of
/// the last evaluation. Published through a `watch` channel.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Status {
    pub instance_id: String,
    pub mode: String,
    pub paused: bool,
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
    /// Stop (true) or restart (false) automatic transitions; probing goes on.
    SetPaused {
        paused: bool,
        reply: oneshot::Sender<bool>,
    },
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

/// Runs the daemon until `shutdown` resolves.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (daemon, _handle) = Daemon::build(settings).await?;
    daemon.run(shutdown).await;
    Ok(())
}

pub struct Daemon {
    settings: Arc<Settings>,
    policy: Policy,
    actuator: Arc<Actuator>,
    probes: Vec<Scheduled>,
    status_tx: watch::Sender<Status>,
    commands: mpsc::Receiver<Command>,
}

impl Daemon {
    pub async fn build(settings: Settings) -> anyhow::Result<(Self, Handle)> {
        let primary = RegionClients::load(&settings.regions.primary).await;
        let secondary = RegionClients::load(&settings.regions.secondary).await;
        let http = probe::http_client();
        let probes = settings
            .probes
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                let clients = match spec.region {
                    Role::Primary => &primary,
                    Role::Secondary => &secondary,
                };
                Scheduled {
                    index,
                    name: spec.name.clone(),
                    region: spec.region,
                    interval: spec.interval,
                    timeout: spec.timeout,
                    jitter: spec.jitter,
                    prober: Prober::new(spec, &settings, clients, &http),
                }
            })
            .collect();
        let actuator = Arc::new(Actuator::from_settings(&settings, &primary, &secondary));
        let policy = Policy::from_settings(&settings);
        if settings.policy.require_healthy_secondary
            && !settings.probes.iter().any(|p| p.region == Role::Secondary)
        {
            warn!(
                "no probe watches the secondary: require_healthy_secondary cannot check anything"
            );
        }
        let (status_tx, status_rx) = watch::channel(Status {
            instance_id: settings.monitor.instance_id.clone(),
            mode: settings.monitor.mode.as_str().into(),
            ..Status::default()
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let daemon = Self {
            settings: Arc::new(settings),
            policy,
            actuator,
            probes,
            status_tx,
            commands: cmd_rx,
        };
        Ok((
            daemon,
            Handle {
                status: status_rx,
                commands: cmd_tx,
            },
        ))
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
        let _probe_tasks = probe::spawn_all(std::mem::take(&mut self.probes), obs_tx);

        let (sync_tx, mut sync_rx) = mpsc::channel::<SyncReport>(4);
        let sync_now = Arc::new(Notify::new());
        let sync_task = tokio::spawn(sync_loop(
            self.actuator.clone(),
            self.settings.monitor.state_refresh,
            sync_now.clone(),
            sync_tx,
        ));

        let mut state = LoopState {
            backoff: RETRY_MIN,
            ..LoopState::default()
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(cmd) = self.commands.recv() => self.command(cmd),
                Some(report) = sync_rx.recv() => self.on_sync(report, &mut state),
                Some(obs) = obs_rx.recv() => self.on_observation(&obs),
                else => break,
            }
            self.evaluate(&mut state, &sync_now).await;
        }
        sync_task.abort();
        info!("failover-monitor stopped");
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::SetPaused { paused, reply } => {
                let was = self.policy.paused();
                self.policy.set_paused(paused);
                if was != paused {
                    info!(
                        paused,
                        "automatic transitions {}",
                        if paused { "paused" } else { "resumed" }
                    );
                }
                let _ = reply.send(was);
            }
        }
    }

    fn on_observation(&mut self, obs: &Observation) {
        let Some(flip) = self.policy.observe(obs) else {
            return;
        };
        let spec = &self.settings.probes[obs.probe];
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
            state.divergence = divergence;
        }
        if let Some(item) = report.newest() {
            let changed_at = action::changed_at(item, now);
            self.policy.observe_item(item.clone(), changed_at, now);
        }
        state.primary_item = report.primary.ok().flatten();
        state.secondary_item = report.secondary.ok().flatten();
    }

    async fn evaluate(&mut self, state: &mut LoopState, sync_now: &Notify) {
        let now = Instant::now();
        let verdict = self.policy.evaluate(now);
        let summary = verdict.summary();
        if summary != state.last_verdict {
            match &verdict {
                Verdict::Hold { .. } => info!(verdict = %summary, "policy"),
                Verdict::Act(d) => info!(verdict = %summary, reason = %d.reason, "policy"),
                Verdict::Blocked { wanted, because } => {
                    let level_warn =
                        self.settings.monitor.mode != Mode::Auto || self.policy.paused();
                    let because = serde_json::to_string(because).unwrap_or_default();
                    if level_warn {
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
            let t = Transition {
                from: decision.from,
                to: decision.to,
                expected_version: decision.expected_version,
                reason: decision.reason.clone(),
                evidence: decision.evidence.clone(),
                trigger: Trigger::Auto,
                by: self.settings.monitor.instance_id.clone(),
                forced: false,
            };
            match self.actuator.transition(&t).await {
                Ok(Outcome::Committed { item, primary, .. }) => {
                    info!(from = %t.from, to = %t.to, version = item.version, reason = %t.reason, "transition committed in the secondary");
                    match primary {
                        Ok(()) => info!(version = item.version, "primary copy updated"),
                        Err(e) => {
                            warn!(error = %e, "primary copy not updated yet; it will be caught up when it answers")
                        }
                    }
                    self.policy.committed(item, Instant::now());
                    state.retry_at = None;
                    state.backoff = RETRY_MIN;
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
                    if let Some(item) = current {
                        let at = action::changed_at(&item, now);
                        self.policy.observe_item(item, at, now);
                    }
                    sync_now.notify_one();
                }
                Err(e) => {
                    error!(from = %t.from, to = %t.to, error = %e, retry_in_ms = state.backoff.as_millis() as u64, "transition failed; nothing was changed");
                    state.retry_at = Some(Instant::now() + state.backoff);
                    state.backoff = (state.backoff * 2).min(RETRY_MAX);
                }
            }
        }
        self.publish(state);
    }

    fn publish(&self, state: &LoopState) {
        let now = Instant::now();
        let status = Status {
            instance_id: self.settings.monitor.instance_id.clone(),
            mode: self.settings.monitor.mode.as_str().into(),
            paused: self.policy.paused(),
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
    Actuator::from_settings(settings, &primary, &secondary)
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
