//! How the world outside the decision loop observes and steers it: the [`Status`]
//! snapshot the loop publishes, the [`Request`]s it takes, and the [`Handle`] that
//! holds both ends. The admin API and the in-process tests depend on this module,
//! never on the loop itself.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::action::{ActionError, PrimaryCopy};
use crate::coord::Peer;
use crate::readiness::Readiness;
use failover_config::Settings;
use failover_core::model::{AppState, AuditRecord, ConfigItem, PauseRecord};
use failover_core::policy::{ProbeView, Refusal};

/// Everything an observer (status endpoint, tests) may want to know. Published through
/// a `watch` channel at most every 200 ms, and at once when an operator-visible thing
/// changes (a command, a sync or coordination report, a commit).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Status {
    pub instance_id: String,
    pub mode: String,
    pub paused: bool,
    /// The stored pause (who, why, when), honoured by every instance.
    pub pause: Option<PauseRecord>,
    /// The instance allowed to act: this one when it acts alone, else the lease owner.
    pub leader: Option<String>,
    /// This instance holds the right to act now.
    pub is_leader: bool,
    /// With cooperating instances: each one's published view and liveness.
    pub instances: Vec<Peer>,
    /// With cooperating instances: configured and live instances, down votes, votes
    /// needed, and whether the quorum can be reached at all.
    pub quorum: Option<serde_json::Value>,
    /// Another live process with this instance id (it never takes the lease).
    pub duplicate: Option<String>,
    /// Live instances running another `[coordination]` section: automatic moves
    /// wait until every live instance agrees.
    pub coordination_mismatch: Vec<String>,
    /// Set while the item is in a state only a human can settle; automatic moves
    /// are stopped until it changes.
    pub needs_human: Option<String>,
    /// A transition is being committed now.
    pub committing: bool,
    pub item: Option<ConfigItem>,
    pub primary_item: Option<ConfigItem>,
    pub secondary_item: Option<ConfigItem>,
    /// Set while the two regions' copies disagree in a way the sync cannot fix.
    pub divergence: Option<String>,
    /// Why the DNS record (`[route53]`) is not in line with the state, while it is
    /// not (an alias or routing-policy record the monitor never changes, say).
    pub dns_error: Option<String>,
    pub probes: Vec<ProbeView>,
    /// What the policy would do now ("hold: ...", "blocked (...): ...").
    pub verdict: String,
    /// The first evaluation with a known item has happened.
    pub ready: bool,
    /// A human's pause and fence in force, with what is left of each.
    pub overrides: Overrides,
    /// The secondary's last readiness check: ready or not, when, and why (None
    /// before the first check, or when it is not checked).
    pub secondary_readiness: Option<Readiness>,
    /// The drill running now, or the last one (the drill record in the commit
    /// region, as last read or written here).
    pub drill: Option<failover_core::drill::DrillRecord>,
}

/// Operator requests into the decision loop.
#[derive(Debug)]
pub enum Request {
    /// Stop (true) or restart (false) automatic transitions; probing goes on. The
    /// pause is stored in the commit region so that every instance honours it.
    /// Replies with whether it was paused before, or why it could not be stored.
    SetPaused {
        paused: bool,
        caller: String,
        reason: String,
        /// How long a pause lasts (at most `monitor.max_override`, which is also
        /// the default); must be `None` to resume.
        lasts: Option<Duration>,
        reply: oneshot::Sender<Result<bool, PauseError>>,
    },
    /// A human's move, through the safety rules (unless `force`) and the actuator.
    /// Waits while another commit is in flight; dropped (answered
    /// [`MoveError::Expired`]) if it could not start within [`move_wait`].
    Move {
        to: AppState,
        reason: String,
        force: bool,
        caller: String,
        /// A fence: how long it lasts (at most `monitor.max_override`, which is also
        /// the default). Must be `None` for the other moves.
        lasts: Option<Duration>,
        reply: oneshot::Sender<Result<MoveDone, MoveError>>,
    },
    /// A drill's move (its fence, failover, failback or abort): checked against
    /// the safety rules like a human's (never forced), committed with `updatedBy`
    /// `drill:<id>`, its fence and failover ending by themselves after `lasts`.
    /// Waits behind a commit in flight like a human's move.
    DrillMove {
        to: AppState,
        drill: DrillMove,
        reason: String,
        reply: oneshot::Sender<Result<MoveDone, MoveError>>,
    },
    /// A drill to start or stop, for the drill runner ([`crate::drill`]).
    Drill(crate::drill::DrillRequest),
    /// A new, already validated configuration (SIGHUP).
    Reload {
        settings: Box<Settings>,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Who a drill's move is, and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillMove {
    /// The drill's id (`d-<start in ms>-<instance>`).
    pub id: String,
    /// How long a fence or failover lasts before the monitors end it (the item's
    /// `expiresAt`); None for the move back to `active`.
    pub lasts: Option<Duration>,
}

/// A manual move that was committed.
#[derive(Debug, Clone, Serialize)]
pub struct MoveDone {
    pub item: ConfigItem,
    pub record: AuditRecord,
    /// Whether the primary's copy was updated at once (else the sync or replication
    /// will).
    pub primary_updated: bool,
    pub primary: PrimaryCopy,
}

/// Why a manual move was not committed.
#[derive(Debug)]
pub enum MoveError {
    /// A safety rule or the state refused it.
    Refused(Refusal),
    /// The item changed first; this is what it is now, if known.
    LostRace(Option<ConfigItem>),
    /// The item is in a state only a human can settle (why).
    NeedsHuman(String),
    /// Nothing was written.
    Failed(ActionError),
    /// The write failed in a way that leaves it unknown whether it applied; the
    /// monitor recognises it on its next read of the item.
    Unknown(ActionError),
    /// It waited behind another commit for longer than [`move_wait`], or could no
    /// longer be answered in time: not started.
    Expired,
    /// How long it should last is not allowed: more than `monitor.max_override`,
    /// zero, or given for a move that does not expire.
    Lasts(String),
}

/// Why a pause or resume was not stored.
#[derive(Debug)]
pub enum PauseError {
    /// How long it should last is not allowed (more than `monitor.max_override`,
    /// zero, or given to a resume).
    Lasts(String),
    /// The commit region could not store it.
    Store(ActionError),
}

impl std::fmt::Display for PauseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PauseError::Lasts(why) => f.write_str(why),
            PauseError::Store(e) => write!(f, "{e}"),
        }
    }
}

/// A human's override in force: who set it, when it ends, what is left.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OverrideView {
    pub by: String,
    /// RFC 3339.
    pub until: String,
    /// Seconds left; 0 once ended (the monitors then lift it).
    pub left_s: u64,
}

/// The overrides in force: a pause, a human's fence.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Overrides {
    pub pause: Option<OverrideView>,
    pub fence: Option<OverrideView>,
}

/// How long a human's move may take to be answered: the admin API's request
/// timeout. A move that could not be answered within it is not started, so that an
/// answer that timed out always means "not started".
pub const ANSWER_WITHIN: std::time::Duration = failover_config::ANSWER_WITHIN;

/// Longest a manual move waits behind a commit in flight before it is answered
/// [`MoveError::Expired`], unstarted: what is left of [`ANSWER_WITHIN`] once the
/// longest commit ([`Settings::longest_commit`](failover_config::Settings::longest_commit)) and a second of
/// slack are taken off. `monitor.write_timeout` is validated to leave at least 5 s.
pub fn move_wait(settings: &Settings) -> std::time::Duration {
    ANSWER_WITHIN
        .saturating_sub(std::time::Duration::from_secs(1))
        .saturating_sub(settings.longest_commit())
}

/// What the caller keeps to observe and steer a running daemon.
#[derive(Clone)]
pub struct Handle {
    pub status: watch::Receiver<Status>,
    pub requests: mpsc::Sender<Request>,
}

impl Handle {
    /// Sends `make(reply)` into the loop and waits for the answer; `None` when the
    /// daemon is gone.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(make(tx)).await.ok()?;
        rx.await.ok()
    }
}
