//! Cooperation of several monitor instances through the config table in the
//! secondary region (the failover target, which must survive a primary outage):
//! a leader lease with a fencing token, and each instance's published view of the
//! primary, from which the leader counts a quorum.
//!
//! - `lease.rs`: the lease as a pure state machine (`LeaseTracker`).
//! - `store.rs`: the [`CoordStore`] seam; `dynamo.rs` its DynamoDB implementation.
//! - `task.rs`: the coordination task, one round every `renew_every`.
//! - here: what a round reports, and its translation into the policy's input
//!   ([`policy_input`], pure).
//!
//! Architecture Invariant: only the lease holder acts on its own decisions, and only
//! while its lease is valid on its own monotonic clock; every automatic transition
//! write is conditioned on its fencing token, so a deposed leader's late write fails.

mod dynamo;
pub mod lease;
mod store;
mod task;

use serde::Serialize;
use tokio::time::Instant;

pub use dynamo::DynamoCoordStore;
pub use store::{CoordError, CoordStore, PeerView};
pub use task::run;

use crate::config::CoordinationSettings;
use crate::model::Fence;
use crate::policy::Coordination;

/// This instance's own view, as the decision loop publishes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnView {
    pub primary_down: bool,
    pub secondary_up: bool,
    pub detail: String,
}

/// One instance as the coordinator last saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    pub instance: String,
    pub live: bool,
    pub view: Option<PeerView>,
}

/// What one coordination round found.
#[derive(Debug, Clone, Serialize)]
pub struct CoordReport {
    /// The lease owner as last read.
    pub leader: Option<String>,
    /// Our fencing token and until when we may act (monotonic), if we hold the lease.
    #[serde(skip)]
    pub held: Option<(u64, Instant)>,
    pub peers: Vec<Peer>,
    pub error: Option<String>,
}

impl CoordReport {
    /// Live instances, this one included (at least 1: this one).
    pub fn live(&self) -> usize {
        self.peers.iter().filter(|p| p.live).count().max(1)
    }
}

/// The policy's coordination input as of `now`, and our fence if we lead. Before the
/// first round, this instance knows nothing: not leader, alone.
pub fn policy_input(
    cfg: &CoordinationSettings,
    me: &str,
    report: Option<&CoordReport>,
    now: Instant,
) -> (Coordination, Option<Fence>) {
    let Some(report) = report else {
        let c = Coordination {
            leader: false,
            leader_id: None,
            live: 1,
            others_down: 0,
            quorum: cfg.quorum,
        };
        return (c, None);
    };
    let held = report.held.filter(|(_, until)| now < *until);
    let others_down = report
        .peers
        .iter()
        .filter(|p| p.live && p.instance != me && p.view.as_ref().is_some_and(|v| v.primary_down))
        .count();
    let c = Coordination {
        leader: held.is_some(),
        leader_id: report.leader.clone(),
        live: report.live(),
        others_down,
        quorum: cfg.quorum,
    };
    let fence = held.map(|(token, _)| Fence {
        owner: me.to_owned(),
        token,
    });
    (c, fence)
}
