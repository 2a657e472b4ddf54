//! Commits run in a task of their own, one at a time. An automatic one starts from
//! a decision; a human's from a command (waiting behind the one in flight). Their
//! outcome comes back as a message and is taken in here: policy, metrics, logs, the
//! human's answer, the backoff, and a transition left pending when the outcome is
//! unknown.

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{Daemon, Done, LoopState, Origin, QueuedMove, RETRY_MAX, RETRY_MIN, Tasks};
use crate::action::{ActionError, DnsAction, Outcome, Prepared, PrimaryCopy, Transition};
use crate::control::{Command, MOVE_WAIT, MoveDone, MoveError};
use failover_core::model::{AppState, AuditRecord, ConfigItem, Fence, Trigger};
use failover_core::policy::Decision;

impl Daemon {
    fn transition_for(
        d: Decision,
        reason: String,
        trigger: Trigger,
        by: String,
        forced: bool,
        fence: Option<Fence>,
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
            fence,
        }
    }

    /// Starts `p` in a task; its outcome comes back as [`Done::Commit`].
    fn spawn_commit(&self, p: Prepared, origin: Origin, state: &mut LoopState, tasks: &mut Tasks) {
        state.in_flight = Some(origin);
        state.publish_now = true;
        let (actuator, tx) = (self.actuator.clone(), tasks.done_tx.clone());
        tasks.jobs.spawn(async move {
            let result = actuator.commit(&p).await;
            let _ = tx.send(Done::Commit(Box::new(p), result)).await;
        });
    }

    /// Commits the policy's decision: the pending transition again when it is the
    /// same move (same token: it applies at most once), else a new one.
    pub(super) fn start_auto(
        &mut self,
        decision: Decision,
        fence: Option<Fence>,
        state: &mut LoopState,
        tasks: &mut Tasks,
    ) {
        let key = (decision.from, decision.to, decision.expected_version);
        if state.backoff_move != Some(key) {
            state.backoff_move = None;
            state.retry_at = None;
            state.backoff = RETRY_MIN;
        }
        let same = |p: &Prepared| {
            let t = &p.transition;
            t.trigger == Trigger::Auto
                && t.from == decision.from
                && t.to == decision.to
                && t.expected_version == decision.expected_version
                && t.fence == fence
                && p.reusable(Instant::now())
        };
        let prepared = match state.pending.take() {
            Some(p) if same(&p) => {
                info!(token = %p.token, "retrying the transition whose outcome was unknown, with its token");
                p
            }
            _ => {
                let reason = decision.reason.clone();
                let by = self.identity.instance.clone();
                let t = Self::transition_for(decision, reason, Trigger::Auto, by, false, fence);
                self.actuator.prepare(t)
            }
        };
        self.spawn_commit(prepared, Origin::Auto, state, tasks);
    }

    /// A human's move: checked against the safety rules now, committed in a task.
    fn start_manual(&mut self, cmd: Command, state: &mut LoopState, tasks: &mut Tasks) {
        let Command::Move {
            to,
            reason,
            force,
            caller,
            reply,
        } = cmd
        else {
            return;
        };
        match self.policy.manual(to, force, Instant::now()) {
            Err(r) => {
                warn!(to = %to, caller = %caller, refusal = %r, "manual move refused");
                let _ = reply.send(Err(MoveError::Refused(r)));
            }
            Ok(decision) => {
                let by = format!("admin:{caller}");
                let t = Self::transition_for(decision, reason, Trigger::Manual, by, force, None);
                let p = self.actuator.prepare(t);
                self.spawn_commit(p, Origin::Manual(reply), state, tasks);
            }
        }
    }

    /// A human's move now, or after the commit in flight.
    pub(super) fn on_move(&mut self, cmd: Command, state: &mut LoopState, tasks: &mut Tasks) {
        if state.in_flight.is_some() {
            state.queued.push_back(QueuedMove {
                cmd,
                since: Instant::now(),
            });
        } else {
            self.start_manual(cmd, state, tasks);
        }
    }

    /// Starts the next queued move, dropping those that waited too long.
    fn next_queued(&mut self, state: &mut LoopState, tasks: &mut Tasks) {
        while state.in_flight.is_none() {
            let Some(q) = state.queued.pop_front() else {
                return;
            };
            if q.since.elapsed() > MOVE_WAIT {
                if let Command::Move { reply, .. } = q.cmd {
                    let _ = reply.send(Err(MoveError::Expired));
                }
                continue;
            }
            self.start_manual(q.cmd, state, tasks);
        }
    }

    pub(super) fn on_done(&mut self, done: Done, state: &mut LoopState, tasks: &mut Tasks) {
        match done {
            Done::Pause { result, reply } => {
                if let Ok((_, record)) = &result {
                    self.apply_pause(record.clone(), state);
                }
                let _ = reply.send(result.map(|(was, _)| was));
            }
            Done::Commit(p, result) => {
                let origin = state.in_flight.take().unwrap_or(Origin::Auto);
                let answer = self.take_outcome(*p, result, state);
                match origin {
                    Origin::Manual(reply) => {
                        let _ = reply.send(answer);
                    }
                    Origin::Auto => {}
                }
                tasks.sync_now.notify_one();
                self.next_queued(state, tasks);
            }
        }
        state.publish_now = true;
    }

    /// Takes in a commit's outcome; the human's answer if it was a human's move.
    fn take_outcome(
        &mut self,
        p: Prepared,
        result: Result<Outcome, ActionError>,
        state: &mut LoopState,
    ) -> Result<MoveDone, MoveError> {
        let key = (
            p.transition.from,
            p.transition.to,
            p.transition.expected_version,
        );
        let label = match &result {
            Ok(Outcome::Committed { .. }) => "committed",
            Ok(Outcome::LostRace { .. }) => "lost_race",
            Ok(Outcome::Deposed) => "deposed",
            Ok(Outcome::NeedsHuman { .. }) => "needs_human",
            Err(ActionError::Busy { .. }) => "busy",
            Err(_) => "unknown",
        };
        self.metrics
            .commit_attempts
            .with_label_values(&[label])
            .inc();
        let answer = match result {
            Ok(Outcome::Committed {
                item,
                record,
                primary,
                dns,
            }) => return Ok(self.take_commit(&p.transition, item, record, primary, &dns, state)),
            Ok(other) => self.take_refusal(&p.transition, other, state),
            Err(e @ ActionError::Busy { .. }) => {
                let t = &p.transition;
                warn!(from = %t.from, to = %t.to, error = %e, "transition refused for now (nothing written); will retry");
                state.pending = None;
                Err(MoveError::Failed(e))
            }
            Err(e) => {
                let t = &p.transition;
                error!(from = %t.from, to = %t.to, error = %e, token = %p.token,
                    "transition outcome unknown: it may have been applied; the next read of the item tells");
                state.pending = Some(p);
                Err(MoveError::Unknown(e))
            }
        };
        self.back_off(key, state);
        answer
    }

    /// A commit that applied: the policy, the metrics, the timers.
    fn take_commit(
        &mut self,
        t: &Transition,
        item: ConfigItem,
        record: AuditRecord,
        primary: PrimaryCopy,
        dns: &Option<Result<DnsAction, ActionError>>,
        state: &mut LoopState,
    ) -> MoveDone {
        log_committed(t, &item, &primary, dns);
        self.metrics.transition(t.from, t.to, t.trigger);
        self.policy.committed(item.clone(), Instant::now());
        state.pending = None;
        state.needs_human = None;
        state.retry_at = None;
        state.backoff = RETRY_MIN;
        MoveDone {
            item,
            record,
            primary_updated: !matches!(primary, PrimaryCopy::Pending { .. }),
            primary,
        }
    }

    /// A commit the table refused: lost race, deposed, or an item for a human.
    fn take_refusal(
        &mut self,
        t: &Transition,
        outcome: Outcome,
        state: &mut LoopState,
    ) -> Result<MoveDone, MoveError> {
        state.pending = None;
        match outcome {
            Outcome::Deposed => {
                warn!(from = %t.from, to = %t.to, token = ?t.fence.as_ref().map(|f| f.token),
                    "deposed: another instance holds the leader lease now; the write was refused");
                Err(MoveError::LostRace(None))
            }
            Outcome::LostRace { current } => {
                warn!(from = %t.from, to = %t.to, expected_version = t.expected_version,
                    now_state = ?current.as_ref().map(|i| i.state),
                    now_version = ?current.as_ref().map(|i| i.version),
                    now_by = ?current.as_ref().and_then(|i| i.updated_by.clone()),
                    "lost the race: the config item changed before this write; not overwriting");
                if let Some(item) = current.clone() {
                    let now = Instant::now();
                    let at = self.actuator.changed_at(&item, now);
                    self.policy.observe_item(item, at, now);
                }
                Err(MoveError::LostRace(current))
            }
            Outcome::NeedsHuman { reason } => {
                error!(reason = %reason, "automatic moves stop: the config item needs a human");
                state.needs_human = Some((reason.clone(), (t.from, t.expected_version)));
                self.metrics.needs_human.set(1);
                Err(MoveError::NeedsHuman(reason))
            }
            Outcome::Committed { .. } => Err(MoveError::LostRace(None)),
        }
    }

    /// Every attempt that did not commit backs off, whatever the reason: a refused
    /// or lost write is looked at again after the next reads, not in a tight loop
    /// against the table. The backoff belongs to the move (`key`): a different move
    /// (the item changed, the policy wants another state) starts afresh.
    fn back_off(&self, key: (AppState, AppState, u64), state: &mut LoopState) {
        state.backoff_move = Some(key);
        info!(
            retry_in_ms = state.backoff.as_millis() as u64,
            "will look at the transition again"
        );
        state.retry_at = Some(Instant::now() + state.backoff);
        state.backoff = (state.backoff * 2).min(RETRY_MAX);
    }

    /// The pending transition (outcome unknown) shows in the commit region's item:
    /// it was applied. Takes it in as a commit (the sync brings the rest along).
    pub(super) fn recognise_pending(&mut self, state: &mut LoopState) {
        let applied = state
            .pending
            .as_ref()
            .is_some_and(|p| state.secondary_item.as_ref().is_some_and(|i| p.wrote(i)));
        if !applied {
            return;
        }
        let Some(p) = state.pending.take() else {
            return;
        };
        let t = &p.transition;
        info!(from = %t.from, to = %t.to, version = p.item.version, token = %p.token,
            "the attempt whose outcome was unknown had been applied");
        self.metrics.transition(t.from, t.to, t.trigger);
        self.metrics
            .commit_attempts
            .with_label_values(&["recognised"])
            .inc();
        self.policy.committed(p.item.clone(), Instant::now());
        state.retry_at = None;
        state.backoff = RETRY_MIN;
    }
}

fn log_committed(
    t: &Transition,
    item: &ConfigItem,
    primary: &PrimaryCopy,
    dns: &Option<Result<DnsAction, ActionError>>,
) {
    info!(from = %t.from, to = %t.to, version = item.version, trigger = t.trigger.as_str(),
        by = %t.by, forced = t.forced, reason = %t.reason, "transition committed in the secondary");
    match primary {
        PrimaryCopy::Written => info!(version = item.version, "primary copy updated"),
        PrimaryCopy::Replicates => {
            info!(
                version = item.version,
                "global table: replication carries it to the primary"
            )
        }
        PrimaryCopy::Pending { error } => {
            warn!(error = %error, "primary copy not updated yet; it will be caught up when it answers")
        }
    }
    match dns {
        Some(Ok(DnsAction::Upserted { from, to })) => {
            info!(from = ?from, to = %to, "DNS record updated")
        }
        Some(Err(e)) => warn!(error = %e, "DNS record not updated yet; the sync will retry"),
        _ => {}
    }
}
