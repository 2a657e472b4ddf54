//! How the world outside the decision loop observes and steers it: the [`Status`]
//! snapshot the loop publishes, the [`Command`]s it takes, and the [`Handle`] that
//! holds both ends. The admin API and the in-process tests depend on this module,
//! never on the loop itself.

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::action::ActionError;
use crate::config::Settings;
use crate::coord::Peer;
use crate::model::{AppState, AuditRecord, ConfigItem};
use crate::policy::{ProbeView, Refusal};

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

/// A manual move that was committed.
#[derive(Debug, Clone, Serialize)]
pub struct MoveDone {
    pub item: ConfigItem,
    pub record: AuditRecord,
    /// Whether the primary's copy was updated at once (else the sync will).
    pub primary_updated: bool,
}

/// Why a manual move was not committed.
#[derive(Debug)]
pub enum MoveError {
    /// A safety rule or the state refused it.
    Refused(Refusal),
    /// The item changed first; this is what it is now, if known.
    LostRace(Option<ConfigItem>),
    Failed(ActionError),
}

/// What the caller keeps to observe and steer a running daemon.
#[derive(Clone)]
pub struct Handle {
    pub status: watch::Receiver<Status>,
    pub commands: mpsc::Sender<Command>,
}

impl Handle {
    /// Sends `make(reply)` into the loop and waits for the answer; `None` when the
    /// daemon is gone.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }
}
