//! What each message does to the decision loop's state: probe results, sync and
//! coordination reports, operator commands, a reload.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{Daemon, LoopState, Tasks};
use crate::action::{DnsAction, Outcome, SyncAction, SyncReport};
use crate::config::Settings;
use crate::control::{Command, MoveDone, MoveError};
use crate::coord::CoordReport;
use crate::model::{AppState, Role, Trigger};
use crate::policy::{Health, Observation, PolicyConfig, Replication};

impl Daemon {
    pub(super) async fn on_command(
        &mut self,
        cmd: Command,
        state: &mut LoopState,
        tasks: &mut Tasks,
    ) {
        match cmd {
            Command::Reload { settings, reply } => {
                let result = self.reload(*settings);
                if result.is_ok() {
                    // New probes, new sync cadence: restart both.
                    tasks.probes.abort_all();
                    tasks.probes = self.spawn_probes(&tasks.obs_tx);
                    tasks.sync.abort();
                    tasks.sync = self.spawn_sync(&tasks.sync_tx, &tasks.sync_now);
                }
                let _ = reply.send(result);
            }
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
                let result = self
                    .manual_move(to, reason, force, caller, state, &tasks.sync_now)
                    .await;
                let _ = reply.send(result);
            }
        }
        state.publish_now = true;
    }

    async fn manual_move(
        &mut self,
        to: AppState,
        reason: String,
        force: bool,
        caller: String,
        state: &mut LoopState,
        sync_now: &tokio::sync::Notify,
    ) -> Result<MoveDone, MoveError> {
        let decision = self.policy.manual(to, force, Instant::now()).map_err(|r| {
            warn!(to = %to, caller = %caller, refusal = %r, "manual move refused");
            MoveError::Refused(r)
        })?;
        let t = Self::transition_for(
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

    /// Applies a new configuration. The identity of what is watched (app, project,
    /// regions) cannot change without a restart; admin changes wait for one.
    pub(super) fn reload(&mut self, new: Settings) -> Result<(), String> {
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
        let seed = self.rng.u64(..);
        self.actuator = Arc::new(Self::actuator_for(&new, self.backend.as_ref(), seed));
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

    /// `probe_up` exists only once a probe's health is known (never 0 for "unknown").
    fn set_probe_up(&self, name: &str, region: Role, up: bool) {
        self.metrics
            .probe_up
            .with_label_values(&[name, region.as_str()])
            .set(i64::from(up));
    }

    pub(super) fn on_observation(&mut self, obs: &Observation) {
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

    pub(super) fn on_coordination(&mut self, report: CoordReport, state: &mut LoopState) {
        if let Some(e) = &report.error {
            warn!(error = %e, "coordination round failed");
        }
        state.coord = Some(report);
        state.publish_now = true;
    }

    /// Once a second: flush the trace, and start a replication measurement while
    /// the policy wants one.
    pub(super) fn on_replication_tick(&mut self, state: &mut LoopState, tasks: &Tasks) {
        if let Some(rec) = &mut self.recorder {
            let _ = rec.flush();
        }
        if self.policy.measuring_replication() && !state.measuring {
            state.measuring = true;
            let (act, tx) = (self.actuator.clone(), tasks.repl_tx.clone());
            tokio::spawn(async move {
                let at = Instant::now();
                let (drained, lag, detail) = act.measure_replication(Duration::from_secs(2)).await;
                let lag_ms = lag.map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
                let _ = tx
                    .send(Replication {
                        at,
                        drained,
                        lag_ms,
                        detail,
                    })
                    .await;
            });
        }
    }

    pub(super) fn on_sync(&mut self, report: SyncReport, state: &mut LoopState) {
        let now = Instant::now();
        Self::log_reads(&report, state);
        let divergence = Self::divergence(&report.action);
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
            let changed_at = self.actuator.changed_at(item, now);
            self.policy.observe_item(item.clone(), changed_at, now);
        }
        state.primary_item = report.primary.ok().flatten();
        state.secondary_item = report.secondary.ok().flatten();
    }

    /// Logs each region's read when it differs from the last one.
    fn log_reads(report: &SyncReport, state: &mut LoopState) {
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
    }

    /// What a sync action means for the operator: a disagreement it could not fix.
    fn divergence(action: &SyncAction) -> Option<String> {
        match action {
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
        }
    }
}
