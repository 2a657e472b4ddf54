//! What each message does to the decision loop's state: operator requests, a
//! reload, probe results, coordination and sync reports, the replication tick.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{Daemon, Done, LoopState, Tasks};
use crate::action::{DnsAction, SyncAction, SyncReport};
use crate::backend;
use crate::control::{PauseError, Request};
use crate::coord::CoordReport;
use failover_config::Settings;
use failover_core::model::{ConfigItem, PauseRecord, Role};
use failover_core::overrides;
use failover_core::policy::{Health, ItemChange, Observation, Replication};

impl Daemon {
    pub(super) fn on_command(&mut self, cmd: Request, state: &mut LoopState, tasks: &mut Tasks) {
        match cmd {
            Request::Reload { settings, reply } => {
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
            Request::SetPaused {
                paused,
                caller,
                reason,
                lasts,
                reply,
            } => {
                let lasts = match self.pause_lasts(paused, lasts) {
                    Ok(lasts) => lasts,
                    Err(why) => {
                        let _ = reply.send(Err(PauseError::Lasts(why)));
                        return;
                    }
                };
                info!(paused, caller = %caller, reason = %reason, lasts = ?lasts, "storing the operator's pause");
                let (actuator, tx) = (self.actuator.clone(), tasks.done_tx.clone());
                tasks.jobs.spawn(async move {
                    let result = actuator
                        .set_pause(paused, &format!("admin:{caller}"), &reason, lasts)
                        .await;
                    let _ = tx.send(Done::Pause { result, reply }).await;
                });
            }
            Request::Drill(request) => {
                // The runner answers; a runner gone drops the reply (the caller
                // sees the daemon stopping).
                let tx = tasks.drill_tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(request).await;
                });
            }
            cmd @ (Request::Move { .. } | Request::DrillMove { .. }) => {
                self.on_move(cmd, state, tasks)
            }
        }
        state.publish_now = true;
    }

    /// How long a pause lasts: what was asked, at most `monitor.max_override`
    /// (the default); a resume takes none.
    fn pause_lasts(
        &self,
        paused: bool,
        lasts: Option<Duration>,
    ) -> Result<Option<Duration>, String> {
        if !paused {
            return match lasts {
                None => Ok(None),
                Some(_) => Err("for: a resume does not last, it ends the pause".into()),
            };
        }
        overrides::duration(lasts, self.settings.monitor.max_override)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// The pause's end has passed: every instance stops honouring it at once (the
    /// policy compares its end with the wall clock); the acting one also stores the
    /// lift, on the condition that the pause is still the one that ended.
    pub(super) fn lift_an_ended_pause(&mut self, state: &mut LoopState, tasks: &mut Tasks) {
        let ended = self.policy.pause_left().is_some_and(overrides::Left::ended);
        if !ended || state.lifting_pause || !*self.acts.borrow() {
            return;
        }
        let Some(record) = state.pause.clone().filter(|p| p.paused) else {
            return;
        };
        info!(by = %record.by, until = ?record.until, "the pause ended: automatic moves resume; storing the lift");
        state.lifting_pause = true;
        let (actuator, tx) = (self.actuator.clone(), tasks.done_tx.clone());
        tasks.jobs.spawn(async move {
            let result = actuator.lift_ended_pause(&record).await;
            let _ = tx.send(Done::PauseLifted(result)).await;
        });
    }

    /// The commit region's item went back to a lower version (re-seeded, restored,
    /// set back by hand) and the policy took it as the truth: moves prepared from the
    /// old item, their backoff and a stop for a human no longer apply.
    pub(super) fn take_reset(&mut self, item: &ConfigItem, state: &mut LoopState) {
        warn!(state = %item.state, version = item.version, by = ?item.updated_by,
            "the config item went back to a lower version in the commit region: taken as the truth");
        state.commits.reset();
        self.metrics.needs_human.set(0);
    }

    /// Takes in the stored pause: from a sync pass (`issued`: when its read was
    /// issued; `None` meaning no pause is stored) or this instance's own write
    /// (`issued` None). A read issued after what we know of the pause was learned is
    /// the truth, whatever its sequence number: a pause item deleted or rewritten by
    /// hand is honoured as a fresh process would; an earlier read never goes back.
    pub(super) fn apply_pause(
        &mut self,
        record: Option<PauseRecord>,
        issued: Option<Instant>,
        state: &mut LoopState,
    ) {
        let authoritative = issued.is_some_and(|i| state.pause_learned_at.is_none_or(|l| i >= l));
        let older = match (&state.pause, &record) {
            (Some(known), Some(r)) => r.seq < known.seq,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if older && !authoritative {
            return;
        }
        state.pause_learned_at = Some(issued.unwrap_or_else(Instant::now));
        let Some(record) = record else {
            if self.policy.paused() {
                info!("the stored pause is gone: automatic transitions resumed");
            }
            self.policy.set_paused(false);
            self.metrics.paused.set(0);
            state.pause = None;
            return;
        };
        let end = overrides::end(
            record.until.as_deref(),
            Some(&record.at),
            self.settings.monitor.max_override,
        );
        if self.policy.paused() != record.paused {
            info!(
                paused = record.paused,
                by = %record.by,
                reason = %record.reason,
                at = %record.at,
                "automatic transitions {}",
                if record.paused { "paused" } else { "resumed" }
            );
        }
        // An unreadable time ends the pause at once rather than never.
        let end = end.or(Some(std::time::SystemTime::UNIX_EPOCH));
        self.policy.set_pause(record.paused, end);
        self.metrics.paused.set(i64::from(self.policy.paused()));
        state.pause = Some(record);
    }

    /// Applies a new configuration. The identity of what is watched (app, project,
    /// regions, instance) and the cooperation of instances cannot change without a
    /// restart; admin changes wait for one.
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
        if old.coordination != new.coordination {
            return Err(
                "[coordination] cannot change on reload: an instance joining or \
                 leaving the lease, or changing its terms, must restart (a clean stop gives \
                 the lease up first)"
                    .into(),
            );
        }
        if old.route53 != new.route53 {
            return Err("route53 cannot change on reload: restart the daemon".into());
        }
        if old.tables_mode() != new.tables_mode() {
            return Err("stack.tables cannot change on reload: restart the daemon".into());
        }
        if old.admin.listen != new.admin.listen || old.admin.token_file != new.admin.token_file {
            warn!("admin.* changes take effect at the next restart");
        }
        if old.drills != new.drills {
            warn!(
                "[drills] changes take effect at the next restart (the drill runner keeps the ones it started with)"
            );
        }
        let seed = self.rng.u64(..);
        self.actuator = Arc::new(backend::actuator(self.backend.as_ref(), &new, seed));
        self.policy.reconfigure(
            new.policy_config(),
            new.probes
                .iter()
                .map(|p| (p.name.clone(), p.region, p.fall, p.rise)),
        );
        self.policy.set_readiness_rule(new.readiness.failover);
        self.settings = Arc::new(new);
        self.resolve_probe_metrics();
        for (index, view) in self.policy.probe_views(Instant::now()).iter().enumerate() {
            self.probe_rows.set_health(index, view.health);
        }
        self.warn_about_settings();
        Ok(())
    }

    pub(super) fn on_observation(&mut self, obs: &Observation) {
        if let Some(rec) = &mut self.recorder
            && let Some(spec) = self.settings.probes.get(obs.probe)
            && let Err(e) = rec.record(obs, &spec.name, spec.region)
        {
            error!(error = %e, "cannot record probe results; recording stops");
            self.recorder = None;
        }
        self.probe_rows.observe(obs.probe, obs.ok, obs.latency);
        let Some(flip) = self.policy.observe(obs) else {
            return;
        };
        let spec = &self.settings.probes[obs.probe];
        self.probe_rows.set_health(obs.probe, flip);
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
            Health::Inconclusive => warn!(
                probe = %spec.name,
                region = %spec.region,
                kind = spec.kind(),
                error = obs.error.as_deref().unwrap_or(""),
                "probe inconclusive: its last {} results were about the monitor, not the region",
                spec.fall
            ),
            Health::Unknown => {}
        }
    }

    pub(super) fn on_coordination(&mut self, report: CoordReport, state: &mut LoopState) {
        if let Some(e) = &report.error {
            warn!(error = %e, "coordination round failed");
        }
        self.metrics
            .duplicate_instance
            .set(i64::from(report.duplicate.is_some()));
        let mismatch = !report.mismatch.is_empty();
        if mismatch && self.metrics.coordination_mismatch.get() == 0 {
            warn!(instances = ?report.mismatch,
                "live instances run another [coordination] section: automatic moves wait until all agree");
        }
        self.metrics.coordination_mismatch.set(i64::from(mismatch));
        state.coord = Some(report);
        state.publish_now = true;
    }

    /// Once a second: flush the trace, and, on the acting instance, start a
    /// replication measurement while the policy wants one.
    pub(super) fn on_replication_tick(&mut self, state: &mut LoopState, tasks: &mut Tasks) {
        if let Some(rec) = &mut self.recorder {
            let _ = rec.flush();
        }
        if self.policy.measuring_replication() && *self.acts.borrow() && !state.measuring {
            state.measuring = true;
            let (act, tx) = (self.actuator.clone(), tasks.repl_tx.clone());
            tasks.jobs.spawn(async move {
                let at = Instant::now();
                let m = act.measure_replication(Duration::from_secs(2)).await;
                let lag_ms = m
                    .lag
                    .map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
                let _ = tx
                    .send(Replication {
                        at,
                        canary_arrived: m.canary_arrived,
                        lag_ms,
                        items: m.items,
                        detail: m.detail,
                    })
                    .await;
            });
        }
    }

    /// While automatic moves wait for a human, every sync pass also looks whether the
    /// audit record above the item is still there: removing the stale records is one
    /// of the documented repairs, and it leaves the item as it was.
    fn check_settled(&self, state: &mut LoopState, tasks: &mut Tasks) {
        let Some(item) = state.commits.needs_human().map(|n| n.item) else {
            return;
        };
        if state.checking_settled || self.policy.item().map(|i| (i.state, i.version)) != Some(item)
        {
            return;
        }
        state.checking_settled = true;
        let (actuator, tx) = (self.actuator.clone(), tasks.done_tx.clone());
        tasks.jobs.spawn(async move {
            let record_exists = actuator.audit_exists(item.1 + 1).await;
            let _ = tx
                .send(Done::Settled {
                    item,
                    record_exists,
                })
                .await;
        });
    }

    pub(super) fn on_sync(&mut self, report: SyncReport, state: &mut LoopState, tasks: &mut Tasks) {
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
        Self::log_dns(&report.dns, state);
        self.report_synced(&report, state);
        if let Ok(pause) = &report.pause {
            self.apply_pause(pause.clone(), Some(report.issued), state);
        }
        if let Some((item, commit_region)) = report.item() {
            let changed_at = self.actuator.changed_at(item, now);
            let issued = commit_region.then_some(report.issued);
            if self
                .policy
                .observe_read(item.clone(), changed_at, issued, now)
                == ItemChange::Reset
            {
                self.take_reset(item, state);
            }
        }
        self.check_settled(state, tasks);
        state.primary_item = report.primary.ok().flatten();
        state.secondary_item = report.secondary.ok().flatten();
        self.recognise_pending(state);
        state.publish_now = true;
    }

    fn log_dns(dns: &Option<Result<DnsAction, crate::action::ActionError>>, state: &mut LoopState) {
        match dns {
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
            SyncAction::None | SyncAction::Replicating { .. } => None,
            SyncAction::PrimaryAhead { primary, secondary } => Some(format!(
                "the primary copy is at version {primary}, the commit region at {secondary}: \
                 the commit region was reset or the primary written by hand; the primary \
                 follows the commit region if it still holds on the next pass"
            )),
            SyncAction::OtherHistory { version } => Some(format!(
                "the primary copy is at version {version} like the commit region, but holds \
                 another audit record of it (written before a reset); the primary follows \
                 the commit region, records included, if it still holds on the next pass"
            )),
            SyncAction::FollowedReset {
                from_version,
                to_version,
            } => {
                warn!(
                    from_version,
                    to_version, "the primary copy followed the commit region's reset"
                );
                None
            }
            SyncAction::CaughtUp {
                region,
                from_version,
                to_version,
            } => {
                info!(region = %region, from_version = ?from_version, to_version, "brought the lagging copy of the config item up to date");
                None
            }
            SyncAction::CatchUpFailed { region, reason } => Some(format!(
                "{region} copy lags and cannot be brought up: {reason}"
            )),
            SyncAction::AheadOfCommit { primary, secondary } => Some(format!(
                "the primary replica is at version {primary}, the commit region at {secondary}: \
                 the primary was written outside the protocol; set the state again to settle it"
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
