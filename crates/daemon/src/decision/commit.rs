//! Commits run in a task of their own, one at a time. An automatic one starts from
//! a decision; a human's from a command (waiting behind the one in flight). Their
//! outcome comes back as a message and is taken in here: policy, metrics, logs, the
//! human's answer, the backoff, and a transition left pending when the outcome is
//! unknown.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{Daemon, Done, HumanMove, LoopState, Tasks};
use crate::action::{ActionError, DnsAction, Outcome, Prepared, PrimaryCopy, Transition};
use crate::control::{ANSWER_WITHIN, MoveDone, MoveError, PauseError, Request, move_wait};
use failover_core::commit::Origin;
use failover_core::model::{AppState, AuditRecord, ConfigItem, Fence, Role, Trigger};
use failover_core::overrides;
use failover_core::policy::{Decision, ItemChange, Refusal};

impl Daemon {
    /// The `updatedAt` of the policy's item when the decision starts from it.
    fn start_written_at(&self, d: &Decision) -> Option<String> {
        self.policy
            .item()
            .filter(|i| i.version == d.expected_version && i.state == d.from)
            .and_then(|i| i.updated_at.clone())
    }

    fn transition_for(
        d: Decision,
        from_at: Option<String>,
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
            from_at,
            reason,
            evidence: d.evidence,
            trigger,
            by,
            forced,
            fence,
            lasts: None,
        }
    }

    /// How long a human's move lasts: a fence lasts what was asked, at most
    /// `monitor.max_override` (the default); the other moves do not end by themselves.
    fn move_lasts(
        &self,
        to: AppState,
        lasts: Option<Duration>,
    ) -> Result<Option<Duration>, MoveError> {
        if to != AppState::Fenced {
            return match lasts {
                None => Ok(None),
                Some(_) => Err(MoveError::Lasts(format!(
                    "for: only a fence (and a pause) ends by itself, not a move to {to}"
                ))),
            };
        }
        overrides::duration(lasts, self.settings.monitor.max_override)
            .map(Some)
            .map_err(|e| MoveError::Lasts(e.to_string()))
    }

    /// Starts `p` in a task; its outcome comes back as [`Done::Commit`].
    fn spawn_commit(
        &self,
        p: Prepared,
        origin: Origin<HumanMove>,
        state: &mut LoopState,
        tasks: &mut Tasks,
    ) {
        if let Err(e) = state.commits.start(p.transition.key(), origin) {
            // Callers check first; a bug here must not start a second writer.
            error!(error = %e, "not starting a commit while another is in flight");
            return;
        }
        state.publish_now = true;
        let drill = p.transition.by.strip_prefix("drill:").map(str::to_owned);
        self.report_decided(&p, drill, state);
        let (actuator, tx) = (self.actuator.clone(), tasks.done_tx.clone());
        let started = Instant::now();
        tasks.jobs.spawn(async move {
            let result = actuator.commit(&p).await;
            let _ = tx.send(Done::Commit(Box::new((p, result, started)))).await;
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
        let now = Instant::now();
        let same = |p: &Prepared| {
            p.transition.trigger == Trigger::Auto
                && p.transition.key() == decision.key()
                && p.transition.fence == fence
                && p.reusable(now)
        };
        let prepared = match state.commits.take_retry(same) {
            Some(p) => {
                info!(token = %p.token, "retrying the transition whose outcome was unknown, with its token");
                p
            }
            None => {
                let reason = decision.reason.clone();
                let by = self.identity.instance.clone();
                let from_at = self.start_written_at(&decision);
                let t = Self::transition_for(
                    decision,
                    from_at,
                    reason,
                    Trigger::Auto,
                    by,
                    false,
                    fence,
                );
                self.actuator.prepare(t)
            }
        };
        self.spawn_commit(prepared, Origin::Auto, state, tasks);
    }

    /// A human's move, received at `since`: checked against the safety rules now,
    /// committed in a task.
    fn start_manual(
        &mut self,
        request: Request,
        since: Instant,
        state: &mut LoopState,
        tasks: &mut Tasks,
    ) {
        let human = match request {
            Request::Move {
                to,
                reason,
                force,
                caller,
                lasts,
                reply,
            } => HumanMove {
                to,
                reason,
                force,
                caller,
                lasts,
                reply,
                drill: None,
                again: false,
                since,
            },
            Request::DrillMove {
                to,
                drill,
                reason,
                reply,
            } => HumanMove {
                to,
                reason,
                force: false,
                caller: format!("drill {}", drill.id),
                lasts: drill.lasts,
                reply,
                drill: Some(drill),
                again: false,
                since,
            },
            _ => return,
        };
        self.start_human(human, state, tasks);
    }

    /// Whether a commit of a human's move received at `since`, started now, is
    /// answered within [`ANSWER_WITHIN`] of then (a second of slack for the way
    /// from the HTTP handler to the loop).
    fn answerable(&self, since: Instant) -> bool {
        Instant::now() + self.settings.longest_commit() + std::time::Duration::from_secs(1)
            <= since + ANSWER_WITHIN
    }

    fn start_human(&mut self, human: HumanMove, state: &mut LoopState, tasks: &mut Tasks) {
        if human.reply.is_closed() {
            info!(to = %human.to, caller = %human.caller, "the caller of a move is gone: not starting it");
            return;
        }
        if !self.answerable(human.since) {
            let _ = human.reply.send(Err(MoveError::Expired));
            return;
        }
        let lasts = match &human.drill {
            // A drill's fence and failover end by themselves (the drill runner
            // bounds them by its own limits).
            Some(d) => d.lasts.filter(|_| human.to != AppState::Active),
            None => match self.move_lasts(human.to, human.lasts) {
                Ok(lasts) => lasts,
                Err(e) => {
                    let _ = human.reply.send(Err(e));
                    return;
                }
            },
        };
        // A drill's move is a program's, not a person's: only while this instance
        // acts (its lease held as of now, not as of a read before a pause), and
        // fenced by the lease like an automatic move, so that a runner that was
        // stopped and resumes on stale probe results never writes.
        let fence = match &human.drill {
            None => None,
            Some(d) => {
                let (_, leadership) = self.coordination(state, Instant::now());
                if !leadership.acts() {
                    warn!(drill = %d.id, to = %human.to, "a drill's move while this instance does not act: not started");
                    let _ = human.reply.send(Err(MoveError::LostRace(None)));
                    return;
                }
                // Nor on evidence older than a lone instance may act on.
                let ttl = self.settings.policy_config().evidence_ttl;
                let age = self.policy.vote(Instant::now()).1;
                // Back onto the primary only while its every probe's last run passed:
                // health alone lags by `fall` runs (a process resumed after a pause has
                // fresh failures that have not yet turned a probe down).
                let failing: Vec<String> = if human.to == AppState::Active {
                    self.policy
                        .probe_views(Instant::now())
                        .into_iter()
                        .filter(|p| p.region == Role::Primary && p.last_ok != Some(true))
                        .map(|p| p.name)
                        .collect()
                } else {
                    Vec::new()
                };
                if !failing.is_empty() {
                    warn!(drill = %d.id, failing = ?failing, "a drill's failback while a primary probe's last run did not pass: not started");
                    let why = format!("last run not passed: {}", failing.join(", "));
                    let _ = human
                        .reply
                        .send(Err(MoveError::Refused(Refusal::PrimaryUnhealthy(why))));
                    return;
                }
                if age.is_none_or(|a| a > ttl) {
                    warn!(drill = %d.id, to = %human.to, age = ?age, "a drill's move on stale probe results: not started");
                    let _ = human.reply.send(Err(MoveError::LostRace(None)));
                    return;
                }
                leadership.fence()
            }
        };
        match self.policy.manual(human.to, human.force, Instant::now()) {
            Err(r) => {
                warn!(to = %human.to, caller = %human.caller, refusal = %r, "manual move refused");
                let _ = human.reply.send(Err(MoveError::Refused(r)));
            }
            Ok(decision) => {
                let (by, trigger) = match &human.drill {
                    Some(d) => (format!("drill:{}", d.id), Trigger::Drill),
                    None => (format!("admin:{}", human.caller), Trigger::Manual),
                };
                let reason = human.reason.clone();
                let from_at = self.start_written_at(&decision);
                let mut t = Self::transition_for(
                    decision,
                    from_at,
                    reason,
                    trigger,
                    by,
                    human.force,
                    fence,
                );
                t.lasts = lasts;
                let p = self.actuator.prepare(t);
                self.spawn_commit(p, Origin::Manual(human), state, tasks);
            }
        }
    }

    /// A human's move now, or after the commit in flight.
    pub(super) fn on_move(&mut self, request: Request, state: &mut LoopState, tasks: &mut Tasks) {
        if state.commits.in_flight() {
            state.commits.enqueue(request, Instant::now());
        } else {
            self.start_manual(request, Instant::now(), state, tasks);
        }
    }

    /// Starts the next queued move, answering those that waited too long.
    fn next_queued(&mut self, state: &mut LoopState, tasks: &mut Tasks) {
        loop {
            let max_wait = move_wait(&self.settings);
            let (next, expired) = state.commits.next_request(Instant::now(), max_wait);
            for request in expired {
                if let Request::Move { reply, .. } | Request::DrillMove { reply, .. } = request {
                    let _ = reply.send(Err(MoveError::Expired));
                }
            }
            match next {
                Some((request, since)) => self.start_manual(request, since, state, tasks),
                None => return,
            }
            if state.commits.in_flight() {
                return;
            }
        }
    }

    pub(super) fn on_done(&mut self, done: Done, state: &mut LoopState, tasks: &mut Tasks) {
        match done {
            Done::Pause { result, reply } => {
                if let Ok((_, record)) = &result {
                    self.apply_pause(Some(record.clone()), Some(Instant::now()), state);
                }
                let _ = reply.send(result.map(|(was, _)| was).map_err(PauseError::Store));
            }
            Done::ReportStored {
                version,
                complete,
                result,
            } => super::recovery::log_stored(version, complete, &result),
            Done::PauseLifted(result) => {
                state.lifting_pause = false;
                match result {
                    Ok(Some(record)) => self.apply_pause(Some(record), Some(Instant::now()), state),
                    Ok(None) => info!("the pause changed before its lift was stored: not lifted"),
                    Err(e) => {
                        warn!(error = %e, "cannot store the lift of the ended pause; every instance honours its end all the same")
                    }
                }
            }
            Done::Settled {
                item,
                record_exists,
            } => {
                state.checking_settled = false;
                if let Ok(false) = record_exists
                    && state.commits.settled(item)
                {
                    info!(state = %item.0, version = item.1,
                        "the audit records above the config item are gone: automatic moves resume");
                    self.metrics.needs_human.set(0);
                }
            }
            Done::Commit(done) => {
                let (p, result, started) = *done;
                let version = p.item.version;
                let landed = match &result {
                    Ok(Outcome::Committed { times, dns, .. }) => {
                        Some((*times, matches!(dns, Some(Ok(DnsAction::Upserted { .. })))))
                    }
                    _ => None,
                };
                match state.commits.finish(p.transition.key()) {
                    Ok(origin) => {
                        let (answer, reset) = self.take_outcome(p, result, started, state);
                        match landed {
                            Some((times, dns)) => {
                                self.report_committed(version, times, dns, state, tasks)
                            }
                            None => self.report_dropped(state),
                        }
                        match origin {
                            // The item was found reset under us: what the human asked
                            // is decided again, once, from the item as it is.
                            Origin::Manual(human)
                                if reset && !human.again && self.answerable(human.since) =>
                            {
                                info!(to = %human.to, caller = %human.caller,
                                    "the config item was reset under this move: deciding it again from the item as it is");
                                let human = HumanMove {
                                    again: true,
                                    ..human
                                };
                                self.start_human(human, state, tasks);
                            }
                            Origin::Manual(human) => {
                                let _ = human.reply.send(answer);
                            }
                            Origin::Auto => {}
                        }
                    }
                    Err(e) => {
                        error!(error = %e, "a commit's outcome that nobody waits for; not taken in")
                    }
                }
                tasks.sync_now.notify_one();
                self.next_queued(state, tasks);
            }
        }
        state.publish_now = true;
    }

    /// Takes in a commit's outcome: the human's answer if it was a human's move, and
    /// whether the item was found reset under it.
    fn take_outcome(
        &mut self,
        p: Prepared,
        result: Result<Outcome, ActionError>,
        started: Instant,
        state: &mut LoopState,
    ) -> (Result<MoveDone, MoveError>, bool) {
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
        let now = Instant::now();
        let key = p.transition.key();
        let mut reset = false;
        let answer = match result {
            Ok(Outcome::Committed {
                item,
                record,
                primary,
                dns,
                ..
            }) => Ok(self.take_commit(&p.transition, item, *record, primary, &dns, state)),
            Ok(Outcome::LostRace { current }) => {
                log_backoff(state.commits.refused(key, now));
                reset = self.take_lost_race(&p.transition, current.as_ref(), started, state);
                Err(MoveError::LostRace(current))
            }
            Ok(Outcome::Deposed) => {
                let t = &p.transition;
                warn!(from = %t.from, to = %t.to, token = ?t.fence.as_ref().map(|f| f.token),
                    "deposed: another instance holds the leader lease now; the write was refused");
                log_backoff(state.commits.refused(key, now));
                Err(MoveError::LostRace(None))
            }
            Ok(Outcome::NeedsHuman { reason }) => {
                error!(reason = %reason, "automatic moves stop: the config item needs a human");
                log_backoff(state.commits.stop_for_a_human(reason.clone(), key, now));
                self.metrics.needs_human.set(1);
                Err(MoveError::NeedsHuman(reason))
            }
            Err(e @ ActionError::Busy { .. }) => {
                let t = &p.transition;
                warn!(from = %t.from, to = %t.to, error = %e, "transition refused for now (nothing written); will retry");
                log_backoff(state.commits.refused(key, now));
                Err(MoveError::Failed(e))
            }
            Err(e) => {
                let t = &p.transition;
                error!(from = %t.from, to = %t.to, error = %e, token = %p.token,
                    "transition outcome unknown: it may have been applied; the next read of the item tells");
                log_backoff(state.commits.unknown(p, now));
                Err(MoveError::Unknown(e))
            }
        };
        (answer, reset)
    }

    /// A commit that applied: the policy, the metrics, the lifecycle.
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
        state.commits.committed();
        self.metrics.needs_human.set(0);
        MoveDone {
            item,
            record,
            primary_updated: !matches!(primary, PrimaryCopy::Pending { .. }),
            primary,
        }
    }

    /// Someone else moved the item first: the policy learns what it is now. `current`
    /// was read in the commit region after the write was refused, which is after the
    /// commit `started`: a lower version than ours is the truth (a reset). True when
    /// it was one.
    fn take_lost_race(
        &mut self,
        t: &Transition,
        current: Option<&ConfigItem>,
        started: Instant,
        state: &mut LoopState,
    ) -> bool {
        warn!(from = %t.from, to = %t.to, expected_version = t.expected_version,
            now_state = ?current.map(|i| i.state),
            now_version = ?current.map(|i| i.version),
            now_by = ?current.and_then(|i| i.updated_by.clone()),
            "lost the race: the config item changed before this write; not overwriting");
        let Some(item) = current else {
            return false;
        };
        let now = Instant::now();
        let at = self.actuator.changed_at(item, now);
        let change = self
            .policy
            .observe_read(item.clone(), at, Some(started), now);
        if change == ItemChange::Reset {
            self.take_reset(item, state);
        }
        change == ItemChange::Reset
    }

    /// The pending transition (outcome unknown) shows in the commit region's item:
    /// it was applied. Takes it in as a commit (the sync brings the rest along).
    pub(super) fn recognise_pending(&mut self, state: &mut LoopState) {
        let Some(item) = state.secondary_item.clone() else {
            return;
        };
        let Some(p) = state.commits.recognise(&item) else {
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
        self.metrics.needs_human.set(0);
        self.policy.committed(p.item.clone(), Instant::now());
    }
}

/// Every attempt that did not commit backs off, whatever the reason: a refused or
/// lost write is looked at again after the next reads, not in a tight loop against
/// the table.
fn log_backoff(delay: std::time::Duration) {
    info!(
        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        "will look at the transition again"
    );
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
            warn!(version = item.version, error = %error, "primary copy not updated yet; it will be caught up when it answers")
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
