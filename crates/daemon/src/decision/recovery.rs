//! The recovery report of each transition this instance commits: the moments
//! before the commit (the first failed probe, the quorum, the decision, a fence)
//! are taken when it starts, the commit's own when it returns, and then the client
//! path is watched (both state APIs, the client-path write) until `observe_for`
//! ends. The report is stored when committed (a draft) and again when complete;
//! the sync adds the primary copy and a late DNS change meanwhile.

use std::time::SystemTime;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{Daemon, Done, LoopState, Tasks};
use crate::action::{CommitTimes, DnsAction, Prepared, SyncReport};
use crate::observe::{self, RpoSample, Seen, Watch};
use failover_core::model::{AppState, Role};
use failover_core::report::{EventKind, Report, Rpo, serving};

/// What the loop keeps for reports.
#[derive(Debug, Default)]
pub(super) struct Recovery {
    /// The report of the commit in flight, its moments before the commit.
    pending: Option<Report>,
    /// The report of the last commit, while its clients are watched.
    watching: Option<Report>,
    /// Since when the primary has been down as far as acting goes.
    pub(super) down_since: Option<Instant>,
    /// The RPO canary as last read.
    pub(super) rpo: RpoSample,
}

/// The wall-clock time of the instant `at`, given `now` and the wall clock's `wall`.
fn wall_of(at: Instant, now: Instant, wall: SystemTime) -> SystemTime {
    wall - now.saturating_duration_since(at)
}

impl Daemon {
    /// The moments before the commit of `p`, which starts now.
    pub(super) fn report_decided(
        &self,
        p: &Prepared,
        drill: Option<String>,
        state: &mut LoopState,
    ) {
        let (now, wall) = (Instant::now(), self.actuator.clock().now());
        let t = &p.transition;
        let mut r = Report::new(p.item.version, t.from, t.to, t.trigger, &t.by);
        r.reason = failover_core::report::cut(&t.reason, 1024);
        // A drill's fence and failover count from the drill's start (its id
        // carries it); its failback, like any move, from the decision.
        if let Some(id) = &drill
            && t.to != AppState::Active
            && let Some(started) = failover_core::drill::started(id)
        {
            r.add(EventKind::DrillStarted, started, None, id);
        }
        r.drill = drill;
        if self.policy.primary_down()
            && let Some((probe, since)) = self.policy.onset(Role::Primary)
        {
            r.add(
                EventKind::FirstFailedProbe,
                wall_of(since, now, wall),
                Some(Role::Primary),
                &probe,
            );
            if let Some(down) = state.recovery.down_since {
                let detail = match self.policy.coordination() {
                    Some(c) => format!(
                        "{} of {} configured instances' votes",
                        c.needed(),
                        c.configured
                    ),
                    None => "this instance alone".into(),
                };
                r.add(
                    EventKind::QuorumReached,
                    wall_of(down, now, wall),
                    None,
                    &detail,
                );
            }
        }
        r.add(EventKind::Decision, wall, None, &t.reason);
        if t.from == AppState::Fenced
            && let Some(at) = self
                .policy
                .item()
                .and_then(|i| i.updated_at.as_deref())
                .and_then(failover_core::overrides::parse)
        {
            r.add(EventKind::FenceStarted, at, None, "");
        }
        if t.to == AppState::Failover {
            let key = format!(
                "config: {}",
                failover_core::model::keys::rpo_canary(&self.settings.app.id)
            );
            let s = state.recovery.rpo;
            r.rpo = Some(Rpo::at_decision(&key, s.written, s.seen, wall));
        } else {
            r.note("RPO is measured for moves to the secondary only (the canary goes from the primary to the secondary)");
        }
        state.recovery.pending = Some(r);
    }

    /// The commit of version `version` returned committed: its moments, the draft
    /// stored, the client path watched.
    pub(super) fn report_committed(
        &mut self,
        version: u64,
        times: CommitTimes,
        dns_changed: bool,
        state: &mut LoopState,
        tasks: &mut Tasks,
    ) {
        let Some(mut r) = state
            .recovery
            .pending
            .take()
            .filter(|r| r.version == version)
        else {
            return;
        };
        if let Some(previous) = state.recovery.watching.take() {
            self.finish_report(
                previous,
                vec![format!("watching cut short by version {version}")],
                tasks,
            );
        }
        r.add(
            EventKind::Committed,
            times.committed,
            Some(Role::Secondary),
            "",
        );
        if r.from == AppState::Fenced {
            r.add(EventKind::FenceEnded, times.committed, None, "");
        }
        if let Some(at) = times.primary {
            r.add(
                EventKind::PrimaryCopyUpdated,
                at,
                Some(Role::Primary),
                "written with the commit",
            );
        }
        if let (Some(at), true) = (times.dns, dns_changed) {
            r.add(EventKind::DnsChanged, at, None, "");
        }
        self.store_report(&r, tasks);
        match self.backend.client_path(&self.settings) {
            Some(path) => {
                let cp = &self.settings.client_path;
                let w = Watch {
                    version,
                    to: r.to,
                    serving: serving(r.to),
                    comment_id: format!("failover-monitor-{}", self.identity.instance),
                    every: cp.poll_every,
                    until: Instant::now() + cp.observe_for,
                };
                let clock = self.backend.clock();
                tasks.jobs.spawn(observe::watch_clients(
                    path,
                    clock,
                    w,
                    tasks.seen_tx.clone(),
                ));
                state.recovery.watching = Some(r);
            }
            None => self.finish_report(r, vec!["no client path to watch".into()], tasks),
        }
    }

    /// The commit did not apply: its draft goes.
    pub(super) fn report_dropped(&self, state: &mut LoopState) {
        state.recovery.pending = None;
    }

    /// What the client-path watcher saw.
    pub(super) fn on_seen(&mut self, seen: Seen, state: &mut LoopState, tasks: &mut Tasks) {
        let Some(r) = state.recovery.watching.as_mut() else {
            return;
        };
        match seen {
            Seen::Event {
                version,
                kind,
                region,
                at,
                detail,
            } if version == r.version => {
                r.add(kind, at, Some(region), &detail);
            }
            Seen::Over { version, notes } if version == r.version => {
                if let Some(r) = state.recovery.watching.take() {
                    self.finish_report(r, notes, tasks);
                }
            }
            _ => {}
        }
    }

    /// A sync pass: the primary's copy reaching the version, a DNS change.
    pub(super) fn report_synced(&self, report: &SyncReport, state: &mut LoopState) {
        let Some(r) = state.recovery.watching.as_mut() else {
            return;
        };
        let wall = self.actuator.clock().now();
        if let Ok(Some(p)) = &report.primary
            && p.version >= r.version
        {
            r.add(
                EventKind::PrimaryCopyUpdated,
                wall,
                Some(Role::Primary),
                "read by a sync pass",
            );
        }
        if let Some(Ok(DnsAction::Upserted { .. })) = &report.dns {
            r.add(EventKind::DnsChanged, wall, None, "by a sync pass");
        }
    }

    fn finish_report(&self, mut r: Report, notes: Vec<String>, tasks: &mut Tasks) {
        for n in &notes {
            r.note(n);
        }
        if self.settings.route53.is_none() {
            r.note("no [route53] record: no DNS change to date");
        }
        r.complete = true;
        if let Some(rto) = &r.rto {
            self.metrics.last_recovery.set(rto.ms as f64 / 1000.0);
            info!(
                version = r.version,
                rto_ms = rto.ms,
                until = rto.until.as_str(),
                "recovery report complete"
            );
        } else {
            info!(
                version = r.version,
                "recovery report complete (no recovery time: clients did not move, or were not seen served)"
            );
        }
        if let Some(bound) = r.rpo.as_ref().and_then(|p| p.bound_ms) {
            self.metrics.rpo_bound.set(bound as f64 / 1000.0);
        }
        self.store_report(&r, tasks);
    }

    fn store_report(&self, r: &Report, tasks: &mut Tasks) {
        let (actuator, r) = (self.actuator.clone(), r.clone());
        let tx = tasks.done_tx.clone();
        tasks.jobs.spawn(async move {
            let result = actuator.store_report(&r).await;
            let _ = tx
                .send(Done::ReportStored {
                    version: r.version,
                    complete: r.complete,
                    result,
                })
                .await;
        });
    }

    /// The primary is down as far as acting goes since `down_since` (for the
    /// report's "quorum reached").
    pub(super) fn track_down(&self, state: &mut LoopState, now: Instant) {
        if self.policy.effective_primary_down(now) {
            state.recovery.down_since.get_or_insert(now);
        } else {
            state.recovery.down_since = None;
        }
    }
}

/// Logs a report that could not be stored (it is written again when complete).
pub(super) fn log_stored(
    version: u64,
    complete: bool,
    result: &Result<(), crate::action::ActionError>,
) {
    if let Err(e) = result {
        warn!(version, complete, error = %e, "cannot store the recovery report");
    }
}
