//! Drills: practice failovers, run by the acting instance (on demand through the
//! admin API, or on the `[drills]` schedule), one at a time across the fleet.
//!
//! The runner is a task beside the decision loop. It never writes the config item
//! itself: each of its moves is a [`Request::DrillMove`] into the loop, checked by
//! the same safety rules as a human's (never forced) and committed with `updatedBy`
//! `drill:<id>` and an end (`expiresAt`). Should the runner stop (a crash, a lost
//! lease), the policy ends the drill's moves on its own: a drill's fence ends, its
//! failover fails back onto a healthy primary once its time is up, and a real
//! outage is failed over by the normal rules at once (`failover_core::policy`).
//!
//! The drill record (`<app>#drill`, in the commit region, written with a condition
//! on its `seq`) says which drill runs, its step, its checks and its outcome; every
//! instance reads it for status and metrics, and the acting one ends a record
//! whose runner stopped writing it ([`failover_core::drill::STALE`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::action::{Actuator, RecordSet, WriteError};
use crate::client_path::ClientPath;
use crate::control::{DrillMove, MoveError, Request, Status};
use crate::coord::Identity;
use crate::gate::Gate;
use crate::metrics::Metrics;
use crate::probe::Probe;
use failover_config::{BlockingAlarm, Settings};
use failover_core::drill::{self, DrillRecord, HEARTBEAT, Outcome, Step};
use failover_core::model::{AppState, Role};
use failover_core::overrides;
use failover_core::policy::{Health, Refusal};

/// How often the runner reads the drill record and looks at the schedule.
pub const TICK: Duration = Duration::from_secs(15);
/// A drill's fence and failover last this much longer than the drill needs them,
/// so that the drill moves on before the monitors would end them.
pub const MARGIN: Duration = Duration::from_secs(30);
/// How often a drill looks at its abort conditions while it waits.
const POLL: Duration = Duration::from_secs(1);
/// Longest one blocking-alarm read may take.
const ALARM_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin API asks of the runner.
#[derive(Debug)]
pub enum DrillRequest {
    /// Start a drill now (preflight first); answered once its record is stored.
    Start {
        plan: Plan,
        reply: oneshot::Sender<Result<DrillRecord, DrillError>>,
    },
    /// Stop the running drill (it is brought back to `active` when the primary is
    /// healthy); answered once the stop was handed to it.
    Abort {
        caller: String,
        reason: String,
        reply: oneshot::Sender<Result<DrillRecord, DrillError>>,
    },
}

/// A drill as asked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// None: `drills.hold`.
    pub hold: Option<Duration>,
    /// None: `drills.fence`.
    pub fence: Option<Duration>,
    pub reason: String,
    /// `admin:<caller>`, or `schedule`.
    pub by: String,
    pub scheduled: bool,
}

/// Why a drill was not started or stopped.
#[derive(Debug)]
pub enum DrillError {
    /// Only the acting instance runs drills; this is who acts, if known.
    NotLeader(Option<String>),
    /// A drill runs already.
    Running(Box<DrillRecord>),
    /// No drill runs.
    NotRunning,
    /// The drill record could not be read or written.
    Store(String),
    /// The plan is not allowed (a hold or fence too long).
    Invalid(String),
}

impl std::fmt::Display for DrillError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrillError::NotLeader(Some(l)) => {
                write!(f, "only the acting instance runs drills: {l} acts now")
            }
            DrillError::NotLeader(None) => {
                f.write_str("only the acting instance runs drills, and none acts now")
            }
            DrillError::Running(r) => write!(f, "drill {} is running (step {})", r.id, r.step),
            DrillError::NotRunning => f.write_str("no drill is running"),
            DrillError::Store(e) => write!(f, "the drill record: {e}"),
            DrillError::Invalid(e) => f.write_str(e),
        }
    }
}

/// Everything a drill works with; shared by the runner and the drill's task.
pub(crate) struct Ctx {
    pub settings: Arc<Settings>,
    pub actuator: Arc<Actuator>,
    pub client: Option<Arc<dyn ClientPath>>,
    pub alarms: Vec<(BlockingAlarm, Arc<dyn Probe>)>,
    pub identity: Identity,
    pub status: watch::Receiver<Status>,
    pub acts: watch::Receiver<bool>,
    pub moves: mpsc::Sender<Request>,
    pub metrics: Arc<Metrics>,
    /// The drill record as last read or written, for status.
    pub seen: watch::Sender<Option<DrillRecord>>,
    /// The backend checks the secondary's readiness (`[readiness]`): a drill then
    /// needs it ready.
    pub readiness_checked: bool,
    pub gate: Gate,
}

impl Ctx {
    fn now(&self) -> SystemTime {
        self.actuator.clock().now()
    }

    async fn read(&self) -> Result<Option<DrillRecord>, String> {
        self.actuator
            .table(Role::Secondary)
            .read_drill()
            .await
            .map_err(|e| e.to_string())
    }

    /// Stores `rec` over the record of `expected`; bumps `seq` and the heartbeat.
    async fn write(&self, rec: &mut DrillRecord, expected: Option<u64>) -> Result<(), WriteError> {
        let before = (rec.seq, rec.heartbeat_at.clone());
        rec.seq = expected.map_or(1, |s| s + 1);
        rec.heartbeat_at = Some(overrides::format(self.now()));
        match self
            .actuator
            .table(Role::Secondary)
            .write_drill(expected, rec)
            .await
        {
            Ok(()) => {
                self.show(Some(rec.clone()));
                Ok(())
            }
            Err(e) => {
                (rec.seq, rec.heartbeat_at) = before;
                Err(e)
            }
        }
    }

    /// Publishes what is known of the drill record: status and metrics.
    fn show(&self, rec: Option<DrillRecord>) {
        let m = &self.metrics;
        if let Some(r) = &rec {
            m.drill_running.set(i64::from(r.running()));
            if let Some(t) = r.last_success() {
                m.drill_last_success.set(
                    t.duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64(),
                );
            }
            if let Some(o) = r.outcome {
                for each in Outcome::ALL {
                    m.drill_last_outcome
                        .with_label_values(&[each.as_str()])
                        .set(i64::from(each == o));
                }
            }
        }
        self.seen.send_replace(rec);
    }
}

/// The runner: takes requests, reads the record, starts scheduled drills, runs one
/// drill at a time in a task of its own.
pub(crate) async fn run(ctx: Arc<Ctx>, mut requests: mpsc::Receiver<DrillRequest>) {
    let period = ctx.settings.drills.every.map_or(0.0, |d| d.as_secs_f64());
    ctx.metrics.drill_period.set(period);
    let mut tick = tokio::time::interval(TICK);
    let mut running: Option<Running> = None;
    loop {
        ctx.gate.pass().await;
        tokio::select! {
            request = requests.recv() => match request {
                None => break,
                Some(r) => on_request(&ctx, r, &mut running).await,
            },
            ended = async { (&mut running.as_mut().expect("guarded").task).await },
                if running.is_some() =>
            {
                running = None;
                if let Ok(rec) = ended {
                    info!(drill = %rec.id, outcome = ?rec.outcome, why = ?rec.why, "drill ended");
                    ctx.show(Some(rec));
                }
            }
            _ = tick.tick() => on_tick(&ctx, &mut running).await,
        }
    }
    if let Some(mut r) = running {
        r.abort.send_replace(Some("the monitor is stopping".into()));
        let _ = (&mut r.task).await;
    }
}

/// The drill running in this process.
struct Running {
    id: String,
    abort: watch::Sender<Option<String>>,
    task: JoinHandle<DrillRecord>,
}

impl Drop for Running {
    /// The runner gone (the daemon stopped or aborted, as a killed process), the
    /// drill goes with it: its moves end by themselves (the policy), and the next
    /// acting instance ends its record.
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn on_request(ctx: &Arc<Ctx>, request: DrillRequest, running: &mut Option<Running>) {
    match request {
        DrillRequest::Start { plan, reply } => {
            let _ = reply.send(start(ctx, plan, running).await);
        }
        DrillRequest::Abort {
            caller,
            reason,
            reply,
        } => {
            let answer = match running {
                Some(r) => {
                    info!(drill = %r.id, caller = %caller, "drill aborted by a human");
                    r.abort
                        .send_replace(Some(format!("aborted by admin:{caller}: {reason}")));
                    ctx.seen.borrow().clone().ok_or(DrillError::NotRunning)
                }
                None => Err(DrillError::NotRunning),
            };
            let _ = reply.send(answer);
        }
    }
}

/// Reads the record (status, metrics), ends one whose runner is gone, and starts a
/// scheduled drill when one is due.
async fn on_tick(ctx: &Arc<Ctx>, running: &mut Option<Running>) {
    let rec = match ctx.read().await {
        Ok(rec) => rec,
        Err(e) => {
            warn!(error = %e, "cannot read the drill record");
            return;
        }
    };
    if running.is_some() {
        return;
    }
    ctx.show(rec.clone());
    if !*ctx.acts.borrow() {
        return;
    }
    let now = ctx.now();
    if let Some(mut r) = rec.clone().filter(|r| r.running()) {
        let mine_gone = r.instance == ctx.identity.instance && r.process != ctx.identity.process;
        if mine_gone || r.stale(now) {
            let expected = Some(r.seq);
            r.end(
                Outcome::Interrupted,
                Some(format!(
                    "the instance running it ({}, process {}) stopped writing its record at step {}",
                    r.instance, r.process, r.step
                )),
                now,
            );
            match ctx.write(&mut r, expected).await {
                Ok(()) => warn!(drill = %r.id, "a drill whose runner is gone ended as interrupted"),
                Err(e) => {
                    warn!(drill = %r.id, error = %e, "cannot end a drill whose runner is gone")
                }
            }
        }
        return;
    }
    let Some(schedule) = ctx.settings.drills.schedule() else {
        return;
    };
    // Not before the monitor has an opinion of every probe: a scheduled drill
    // right after a start would fail its preflight on probes still unknown.
    let settled = {
        let st = ctx.status.borrow();
        st.ready && st.probes.iter().all(|p| p.health != Health::Unknown)
    };
    if !settled {
        return;
    }
    if schedule.due(now, rec.as_ref()).is_ok() {
        let plan = Plan {
            hold: None,
            fence: None,
            reason: format!(
                "scheduled (every {})",
                humantime::format_duration(schedule.every)
            ),
            by: "schedule".into(),
            scheduled: true,
        };
        match start(ctx, plan, running).await {
            Ok(r) => info!(drill = %r.id, "scheduled drill started"),
            Err(e) => warn!(error = %e, "scheduled drill not started"),
        }
    }
}

/// Stores a new drill record (one at a time across the fleet: the write is
/// conditional on the record read) and starts its task.
async fn start(
    ctx: &Arc<Ctx>,
    plan: Plan,
    running: &mut Option<Running>,
) -> Result<DrillRecord, DrillError> {
    if let Some(r) = running {
        let current = ctx.seen.borrow().clone().filter(|c| c.id == r.id);
        return Err(current.map_or(DrillError::NotRunning, |c| DrillError::Running(Box::new(c))));
    }
    if !*ctx.acts.borrow() {
        return Err(DrillError::NotLeader(ctx.status.borrow().leader.clone()));
    }
    let d = &ctx.settings.drills;
    let (hold, fence) = (plan.hold.unwrap_or(d.hold), plan.fence.unwrap_or(d.fence));
    for (name, v) in [("hold", hold), ("fence", fence)] {
        if v > failover_config::MAX_DRILL_STEP {
            return Err(DrillError::Invalid(format!("{name}: at most 24h")));
        }
    }
    if hold.is_zero() {
        return Err(DrillError::Invalid("hold: at least 1s".into()));
    }
    let previous = ctx.read().await.map_err(DrillError::Store)?;
    let now = ctx.now();
    if let Some(p) = previous.as_ref().filter(|p| p.running() && !p.stale(now)) {
        return Err(DrillError::Running(Box::new(p.clone())));
    }
    let limit = d.limit(fence, hold);
    let id = drill::id(now, &ctx.identity.instance);
    let mut rec = DrillRecord {
        id: id.clone(),
        seq: 0,
        scheduled: plan.scheduled,
        by: plan.by,
        reason: failover_core::report::cut(&plan.reason, 512),
        instance: ctx.identity.instance.clone(),
        process: ctx.identity.process.clone(),
        started_at: overrides::format(now),
        hold_s: hold.as_secs(),
        fence_s: fence.as_secs(),
        deadline: overrides::format(now + limit),
        step: Step::Preflight,
        outcome: None,
        why: None,
        ended_at: None,
        versions: Vec::new(),
        checks: Vec::new(),
        last_success_at: previous.as_ref().and_then(|p| p.last_success_at.clone()),
        heartbeat_at: None,
    };
    // A stale record of a runner that is gone is ended by this one's start.
    match ctx.write(&mut rec, previous.as_ref().map(|p| p.seq)).await {
        Ok(()) => {}
        Err(WriteError::Conflict) => {
            let now_there = ctx.read().await.ok().flatten();
            return Err(match now_there {
                Some(r) if r.running() => DrillError::Running(Box::new(r)),
                _ => DrillError::Store("the drill record changed while starting; try again".into()),
            });
        }
        Err(e) => return Err(DrillError::Store(e.to_string())),
    }
    info!(drill = %id, hold = ?hold, fence = ?fence, by = %rec.by, "drill started");
    let (abort, abort_rx) = watch::channel(None);
    let task = tokio::spawn(execute(
        ctx.clone(),
        rec.clone(),
        Timing {
            hold,
            fence,
            deadline: Instant::now() + limit,
            limit,
        },
        abort_rx,
    ));
    *running = Some(Running { id, abort, task });
    Ok(rec)
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    hold: Duration,
    fence: Duration,
    deadline: Instant,
    limit: Duration,
}

/// Why a drill stopped before it succeeded.
#[derive(Debug)]
struct Stop {
    outcome: Outcome,
    why: String,
}

impl Stop {
    fn failed(why: impl Into<String>) -> Self {
        Stop {
            outcome: Outcome::Failed,
            why: why.into(),
        }
    }

    fn interrupted(why: impl Into<String>) -> Self {
        Stop {
            outcome: Outcome::Interrupted,
            why: why.into(),
        }
    }
}

/// One drill, step by step.
struct Drill {
    ctx: Arc<Ctx>,
    rec: DrillRecord,
    timing: Timing,
    abort: watch::Receiver<Option<String>>,
    /// The version the drill's last move committed: a newer one is someone else's.
    ours: Option<u64>,
    last_alarm_check: Option<Instant>,
    last_write: Instant,
}

async fn execute(
    ctx: Arc<Ctx>,
    rec: DrillRecord,
    timing: Timing,
    abort: watch::Receiver<Option<String>>,
) -> DrillRecord {
    let mut d = Drill {
        ctx,
        rec,
        timing,
        abort,
        ours: None,
        last_alarm_check: None,
        last_write: Instant::now(),
    };
    let result = d.steps().await;
    let now = d.ctx.now();
    match result {
        Ok(()) => d.rec.end(Outcome::Succeeded, None, now),
        Err(stop) => {
            warn!(drill = %d.rec.id, step = %d.rec.step, outcome = %stop.outcome, why = %stop.why, "drill stopped");
            let left = d.restore(&stop).await;
            let why = match left {
                Some(left) => format!("{}; {left}", stop.why),
                None => stop.why,
            };
            let at = d.ctx.now();
            d.rec.end(stop.outcome, Some(why), at);
        }
    }
    d.save_final().await;
    d.rec
}

impl Drill {
    fn id(&self) -> &str {
        &self.rec.id
    }

    fn status(&self) -> Status {
        self.ctx.status.borrow().clone()
    }

    fn check(&mut self, name: &str, ok: bool, detail: impl AsRef<str>) {
        let now = self.ctx.now();
        let step = self.rec.step;
        self.rec.check(step, name, ok, detail.as_ref(), now);
    }

    /// Writes the record (a new step, a heartbeat). A record changed by someone
    /// else (a human removed it, another instance ended it) stops the drill.
    async fn save(&mut self) -> Result<(), Stop> {
        let expected = Some(self.rec.seq);
        match self.ctx.write(&mut self.rec, expected).await {
            Ok(()) => {
                self.last_write = Instant::now();
                Ok(())
            }
            Err(WriteError::Conflict) => Err(Stop::interrupted(
                "the drill record was changed by someone else",
            )),
            Err(e) => {
                // A record that cannot be written now is written later; the drill
                // goes on (its moves end by themselves if it cannot).
                warn!(drill = %self.rec.id, error = %e, "cannot write the drill record");
                Ok(())
            }
        }
    }

    async fn enter(&mut self, step: Step) -> Result<(), Stop> {
        info!(drill = %self.rec.id, step = %step, "drill step");
        self.rec.step = step;
        self.save().await
    }

    async fn save_final(&mut self) {
        for attempt in 0..5u32 {
            let expected = Some(self.rec.seq);
            match self.ctx.write(&mut self.rec, expected).await {
                Ok(()) => return,
                Err(WriteError::Conflict) => {
                    warn!(drill = %self.rec.id, "the drill record changed under its end; not overwritten");
                    return;
                }
                Err(e) => {
                    warn!(drill = %self.rec.id, error = %e, attempt, "cannot store the drill's outcome");
                    tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                }
            }
        }
    }

    async fn steps(&mut self) -> Result<(), Stop> {
        self.preflight().await?;
        let (hold, fence) = (self.timing.hold, self.timing.fence);
        if !fence.is_zero() {
            self.enter(Step::Fence).await?;
            self.move_to(AppState::Fenced, Some(fence + MARGIN)).await?;
            self.wait(fence).await?;
        }
        self.enter(Step::Failover).await?;
        let verify_for = self.ctx.settings.drills.verify_for;
        self.move_to(AppState::Failover, Some(verify_for + hold + MARGIN))
            .await?;
        self.enter(Step::VerifySecondary).await?;
        self.verify(AppState::Failover, Role::Secondary).await?;
        self.enter(Step::Hold).await?;
        self.wait(hold).await?;
        self.enter(Step::Failback).await?;
        self.move_to(AppState::Active, None).await?;
        self.enter(Step::VerifyPrimary).await?;
        self.verify(AppState::Active, Role::Primary).await?;
        Ok(())
    }

    /// Everything a drill needs before it moves anything; every check is recorded,
    /// and all that failed are named.
    async fn preflight(&mut self) -> Result<(), Stop> {
        let st = self.status();
        let mut failed: Vec<String> = Vec::new();
        let mut check = |d: &mut Self, name: &str, problem: Option<String>, ok: &str| {
            d.check(name, problem.is_none(), problem.as_deref().unwrap_or(ok));
            if let Some(p) = problem {
                failed.push(format!("{name}: {p}"));
            }
        };
        let acts = *self.ctx.acts.borrow();
        check(
            self,
            "leader",
            (!acts).then(|| "this instance does not act now".to_owned()),
            "this instance acts",
        );
        let quorum = st
            .quorum
            .as_ref()
            .and_then(|q| q.get("reachable"))
            .and_then(serde_json::Value::as_bool);
        check(
            self,
            "quorum",
            (quorum == Some(false)).then(|| "the failover quorum cannot be reached".to_owned()),
            if quorum.is_some() {
                "reachable"
            } else {
                "acting alone"
            },
        );
        check(
            self,
            "not_paused",
            st.paused.then(|| "automatic moves are paused".to_owned()),
            "not paused",
        );
        let item_problem = match &st.item {
            None => Some("the config item has not been read yet".to_owned()),
            Some(i) if i.state != AppState::Active => Some(format!("the state is {}", i.state)),
            Some(_) if st.needs_human.is_some() => st.needs_human.clone(),
            Some(_) if st.divergence.is_some() => st.divergence.clone(),
            Some(_) if st.committing => Some("a transition is being committed".to_owned()),
            Some(_) => None,
        };
        check(self, "state_active", item_problem, "active");
        for role in [Role::Primary, Role::Secondary] {
            check(
                self,
                &format!("{role}_probes_up"),
                not_up(&st, role).map(|n| format!("not up: {n}")),
                "every probe up",
            );
        }
        // The secondary's readiness (`[readiness]`): a drill needs it ready; one
        // not checked yet, or that could not be known, stops it too (a drill is
        // optional, so doubt stops it).
        let readiness = match &st.secondary_readiness {
            None if !self.ctx.readiness_checked => None,
            None => Some(
                "not checked yet (the readiness check runs at start-up, then every \
                 readiness.every)"
                    .to_owned(),
            ),
            Some(r) if !r.ready => Some(r.reasons.join("; ")),
            Some(_) => None,
        };
        check(self, "secondary_ready", readiness, "ready");
        let alarms = self.alarms_firing().await;
        check(self, "blocking_alarms", alarms, "none firing");
        let client = self.ctx.client.clone();
        match client {
            None => check(
                self,
                "client_path",
                Some("no client path: the drill could not verify what clients see".into()),
                "",
            ),
            Some(c) => {
                for role in [Role::Primary, Role::Secondary] {
                    let problem = if c.reads(role) {
                        match c.state(role).await {
                            Ok(s) => (s.state != AppState::Active)
                                .then(|| format!("answers {}, not active", s.state)),
                            Err(e) => Some(e),
                        }
                    } else {
                        Some(format!(
                            "no state API is known ([client_path] {role}_state_url)"
                        ))
                    };
                    check(
                        self,
                        &format!("{role}_state_api"),
                        problem,
                        "answers active",
                    );
                }
            }
        }
        let _ = self.save().await;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Stop::failed(format!("preflight: {}", failed.join("; "))))
        }
    }

    /// The blocking alarms firing now, or that cannot be read (counted as firing:
    /// a drill is optional, so doubt stops it).
    async fn alarms_firing(&mut self) -> Option<String> {
        self.last_alarm_check = Some(Instant::now());
        let mut firing = Vec::new();
        for (alarm, probe) in &self.ctx.alarms {
            let answer = tokio::time::timeout(ALARM_TIMEOUT, probe.check()).await;
            match answer {
                Ok(Ok(())) => {}
                Ok(Err(e)) => firing.push(format!("{} ({}): {e}", alarm.name, alarm.region)),
                Err(_) => firing.push(format!(
                    "{} ({}): not read within {ALARM_TIMEOUT:?}",
                    alarm.name, alarm.region
                )),
            }
        }
        (!firing.is_empty()).then(|| firing.join("; "))
    }

    /// One of the drill's moves, through the loop and the safety rules.
    async fn move_to(&mut self, to: AppState, lasts: Option<Duration>) -> Result<(), Stop> {
        self.watch().await?;
        let (reply, answer) = oneshot::channel();
        let reason = format!(
            "drill {}: {} ({})",
            self.id(),
            self.rec.step,
            self.rec.reason
        );
        let drill = DrillMove {
            id: self.rec.id.clone(),
            lasts,
        };
        if self
            .ctx
            .moves
            .send(Request::DrillMove {
                to,
                drill,
                reason,
                reply,
            })
            .await
            .is_err()
        {
            return Err(Stop::interrupted("the monitor is stopping"));
        }
        match answer.await {
            Ok(Ok(done)) => {
                self.ours = Some(done.item.version);
                self.rec.versions.push(done.item.version);
                self.check(
                    "commit",
                    true,
                    format!("{to} at version {}", done.item.version),
                );
                Ok(())
            }
            Ok(Err(e)) => {
                let why = describe(&e);
                self.check("commit", false, &why);
                Err(match e {
                    MoveError::Refused(Refusal::PrimaryUnhealthy(_)) if to == AppState::Active => {
                        Stop::interrupted(format!(
                            "failback refused: {why}; staying in failover (the monitors fail \
                             back once the primary is up and the drill's time has ended)"
                        ))
                    }
                    MoveError::LostRace(_) | MoveError::NeedsHuman(_) => {
                        Stop::interrupted(format!("move to {to}: {why}"))
                    }
                    _ => Stop::failed(format!("move to {to}: {why}")),
                })
            }
            Err(_) => Err(Stop::interrupted("the monitor is stopping")),
        }
    }

    /// Waits `d`, watching the abort conditions and writing the heartbeat.
    async fn wait(&mut self, d: Duration) -> Result<(), Stop> {
        let until = Instant::now() + d;
        loop {
            self.watch().await?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let mut abort = self.abort.clone();
            tokio::select! {
                () = tokio::time::sleep((until - now).min(POLL)) => {}
                changed = abort.changed() => {
                    if changed.is_err() {
                        return Err(Stop::interrupted("the drill runner stopped"));
                    }
                }
            }
        }
    }

    /// The conditions that stop a drill at any step.
    async fn watch(&mut self) -> Result<(), Stop> {
        // A stopped process's drill waits with it (the simulation's SIGSTOP).
        self.ctx.gate.pass().await;
        if let Some(why) = self.abort.borrow().clone() {
            return Err(Stop::interrupted(why));
        }
        if Instant::now() >= self.timing.deadline {
            return Err(Stop::failed(format!(
                "{}: the drill's time limit ({}) was reached",
                self.rec.step,
                humantime::format_duration(self.timing.limit)
            )));
        }
        if !*self.ctx.acts.borrow() {
            return Err(Stop::interrupted("this instance lost the right to act"));
        }
        let st = self.status();
        if let Some(down) = down(&st, Role::Primary) {
            return Err(Stop::interrupted(format!(
                "a real outage: primary down ({down}); the normal rules are in control"
            )));
        }
        if let Some(down) = down(&st, Role::Secondary) {
            return Err(Stop::failed(format!(
                "{}: the secondary went down ({down})",
                self.rec.step
            )));
        }
        if let (Some(ours), Some(item)) = (self.ours, &st.item)
            && item.version > ours
        {
            return Err(Stop::interrupted(format!(
                "the config item was moved by {} ({} at version {})",
                item.updated_by.as_deref().unwrap_or("someone else"),
                item.state,
                item.version
            )));
        }
        let alarm_every = self.ctx.settings.drills.alarm_every;
        if self
            .last_alarm_check
            .is_none_or(|t| t.elapsed() >= alarm_every)
            && let Some(firing) = self.alarms_firing().await
        {
            self.check("blocking_alarms", false, &firing);
            return Err(Stop::interrupted(format!("blocking alarm: {firing}")));
        }
        if self.last_write.elapsed() >= HEARTBEAT {
            self.save().await?;
        }
        Ok(())
    }

    /// Clients served by `region` in `state`, as a client sees it: both state APIs
    /// answer it, a signed write through the region's store API reads back, a photo
    /// put, get and delete in its bucket works, and the DNS record points there.
    async fn verify(&mut self, state: AppState, region: Role) -> Result<(), Stop> {
        let Some(client) = self.ctx.client.clone() else {
            return Err(Stop::failed("no client path to verify with"));
        };
        let until = Instant::now() + self.ctx.settings.drills.verify_for;
        let started = Instant::now();
        for role in [Role::Primary, Role::Secondary] {
            if !client.reads(role) {
                self.check(&format!("{role}_state_api"), true, "not known: not checked");
                continue;
            }
            let mut last;
            loop {
                self.watch().await?;
                match client.state(role).await {
                    Ok(s) if s.state == state => break,
                    Ok(s) => last = format!("answers {}", s.state),
                    Err(e) => last = e,
                }
                if Instant::now() >= until {
                    let why = format!("{role}'s state API: {last} after {:?}", started.elapsed());
                    self.check(&format!("{role}_state_api"), false, &why);
                    return Err(Stop::failed(format!("{}: {why}", self.rec.step)));
                }
                tokio::time::sleep(self.ctx.settings.client_path.poll_every).await;
            }
            self.check(
                &format!("{role}_state_api"),
                true,
                format!("answers {state} after {} ms", started.elapsed().as_millis()),
            );
        }
        if client.writes(region) {
            let nonce = format!("{}-{}", self.rec.id, self.rec.step);
            let result = client.write(region, &self.rec.id, &nonce).await;
            self.check(
                "client_write",
                result.is_ok(),
                result.as_ref().err().map_or("read back", String::as_str),
            );
            if let Err(e) = result {
                return Err(Stop::failed(format!(
                    "{}: the write through the {region}'s store API: {e}",
                    self.rec.step
                )));
            }
        } else {
            self.check(
                "client_write",
                true,
                format!("not checked: no {region}_store_url in [client_path]"),
            );
        }
        // Under `health/`, the prefix the monitor's role may write (the S3 probes'
        // canaries): no wider grant for drills.
        let key = format!("health/failover-monitor-drill-{}.png", self.rec.id);
        let result = client.photo(region, &key).await;
        self.check(
            "photo",
            result.is_ok(),
            result
                .as_ref()
                .err()
                .map_or("put, get, delete", String::as_str),
        );
        if let Err(e) = result {
            return Err(Stop::failed(format!("{}: {e}", self.rec.step)));
        }
        if let Some(dns) = self.ctx.actuator.dns() {
            let want = dns.value_for(state);
            let result = match dns.current().await {
                Ok(seen) => match seen.record {
                    RecordSet::Simple { values, .. } if values.contains(&want) => Ok(()),
                    other => Err(format!("the record is {other:?}, not {want}")),
                },
                Err(e) => Err(e.to_string()),
            };
            self.check(
                "dns",
                result.is_ok(),
                result
                    .as_ref()
                    .err()
                    .map_or("points at the new region", String::as_str),
            );
            if let Err(e) = result {
                return Err(Stop::failed(format!("{}: DNS: {e}", self.rec.step)));
            }
        }
        let _ = self.save().await;
        Ok(())
    }

    /// After a stop: back to `active` when the drill's own move is in force and the
    /// primary is healthy; else where it is safe, said plainly.
    async fn restore(&mut self, stop: &Stop) -> Option<String> {
        let st = self.status();
        let item = st.item.clone()?;
        if item.set_by_drill() != Some(self.id()) || item.state == AppState::Active {
            return None;
        }
        if let Some(down) = down(&st, Role::Primary) {
            return Some(format!(
                "left in {} (primary down: {down}): the normal rules are in control",
                item.state
            ));
        }
        let reason = format!(
            "drill {}: {} at {}: {}",
            self.id(),
            stop.outcome,
            self.rec.step,
            stop.why
        );
        for attempt in 0..3u32 {
            let (reply, answer) = oneshot::channel();
            let sent = self
                .ctx
                .moves
                .send(Request::DrillMove {
                    to: AppState::Active,
                    drill: DrillMove {
                        id: self.rec.id.clone(),
                        lasts: None,
                    },
                    reason: reason.clone(),
                    reply,
                })
                .await;
            if sent.is_err() {
                break;
            }
            match answer.await {
                Ok(Ok(done)) => {
                    self.rec.versions.push(done.item.version);
                    self.check(
                        "restore",
                        true,
                        format!("back to active at version {}", done.item.version),
                    );
                    return Some("back to active".into());
                }
                Ok(Err(e)) => {
                    let why = describe(&e);
                    warn!(drill = %self.rec.id, attempt, error = %why, "cannot bring the drill back to active");
                    self.check("restore", false, &why);
                    if matches!(e, MoveError::Refused(_) | MoveError::LostRace(_)) {
                        break;
                    }
                }
                Err(_) => break,
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Some(format!(
            "left in {}: the monitors end the drill's {} at {} (back to active on a healthy \
             primary)",
            item.state,
            item.state,
            item.expires_at.as_deref().unwrap_or("its end")
        ))
    }
}

/// The region's probes that are down now, named.
fn down(st: &Status, role: Role) -> Option<String> {
    let names: Vec<&str> = st
        .probes
        .iter()
        .filter(|p| p.region == role && p.health == Health::Down)
        .map(|p| p.name.as_str())
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// The region's probes that are not up now, named.
fn not_up(st: &Status, role: Role) -> Option<String> {
    let names: Vec<String> = st
        .probes
        .iter()
        .filter(|p| p.region == role && p.health != Health::Up)
        .map(|p| format!("{} ({:?})", p.name, p.health).to_lowercase())
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// A move's refusal or failure, as a sentence.
pub fn describe(e: &MoveError) -> String {
    match e {
        MoveError::Refused(r) => format!("refused: {r}"),
        MoveError::LostRace(Some(i)) => format!(
            "the config item changed first (now {} version {})",
            i.state, i.version
        ),
        MoveError::LostRace(None) => "the config item changed first".into(),
        MoveError::NeedsHuman(why) => format!("needs a human: {why}"),
        MoveError::Failed(e) => format!("not written: {e}"),
        MoveError::Unknown(e) => format!("outcome unknown: {e}"),
        MoveError::Expired => "waited too long behind another commit".into(),
        MoveError::Lasts(why) => why.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the admin API answers (`drill_error` sends the text as the message).
    #[test]
    fn why_a_drill_is_refused_reads_as_a_sentence() {
        let said = |e: DrillError| e.to_string();
        assert_eq!(
            said(DrillError::NotLeader(Some("b".into()))),
            "only the acting instance runs drills: b acts now"
        );
        assert_eq!(
            said(DrillError::NotLeader(None)),
            "only the acting instance runs drills, and none acts now"
        );
        assert_eq!(said(DrillError::NotRunning), "no drill is running");
        assert_eq!(
            said(DrillError::Store("throttled".into())),
            "the drill record: throttled"
        );
        assert_eq!(
            said(DrillError::Invalid("hold: at most 24h".into())),
            "hold: at most 24h"
        );
    }
}
