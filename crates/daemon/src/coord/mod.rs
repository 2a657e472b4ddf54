//! Cooperation of several monitor instances through the config table in the
//! secondary region (the failover target, which must survive a primary outage):
//! a leader lease with a fencing token, and each instance's published view of the
//! primary, from which the leader counts a quorum.
//!
//! - `failover_core::lease` and `failover_core::liveness`: the lease and the peers'
//!   liveness as pure state machines.
//! - `store.rs`: the [`CoordStore`] seam; `dynamo.rs` its DynamoDB implementation.
//! - `task.rs`: the coordination task, one round every `renew_every`.
//! - here: what a round reports, and its translation into the policy's input
//!   ([`policy_input`], pure).
//!
//! Architecture Invariant: only the lease holder acts on its own decisions, and only
//! while its lease is valid on its own monotonic clock; every automatic transition
//! write is conditioned on its fencing token, so a deposed leader's late write fails.

mod dynamo;
pub use failover_core::lease;
mod store;
mod task;

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

pub use dynamo::DynamoCoordStore;
pub use failover_core::liveness::PeerState;
pub use store::{CoordError, CoordStore, PeerView};
pub use task::run;

use failover_config::CoordinationSettings;
use failover_core::model::Fence;
use failover_core::policy::{Coordination, Vote};

/// Who this process is: the configured instance id, and a value of this process
/// alone (the ECS task id, or a random one), so that a restarted or duplicated
/// process is another lease owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance: String,
    pub process: String,
}

impl Identity {
    /// The lease owner: `<instance>/<process>`.
    pub fn owner(&self) -> String {
        format!("{}/{}", self.instance, self.process)
    }
}

/// The instance part of a lease owner.
pub fn instance_of(owner: &str) -> &str {
    owner.rsplit_once('/').map_or(owner, |(i, _)| i)
}

/// This instance's own view, as the decision loop publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnView {
    pub vote: Vote,
    /// When the oldest evidence behind the vote was gathered (None before every
    /// probe reported): its age is taken when the view is published.
    pub evidence_since: Option<Instant>,
    pub secondary_up: bool,
    /// This instance could act on a decision now ([`PeerView::fit`]).
    pub fit: bool,
    /// A commit of this instance is in flight: the lease is not given up under it.
    pub committing: bool,
    pub detail: String,
}

impl Default for OwnView {
    fn default() -> Self {
        Self {
            vote: Vote::Unknown,
            evidence_since: None,
            secondary_up: false,
            fit: false,
            committing: false,
            detail: String::new(),
        }
    }
}

/// One instance as status shows it: its view, whether it is live and its vote as
/// counted at the moment the status was made.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    pub instance: String,
    /// Its view has been seen to change within `view_ttl`.
    pub live: bool,
    /// Its vote as this instance counts it (unknown when not live or stale).
    pub vote: Vote,
    pub view: Option<PeerView>,
}

/// What one coordination round found.
#[derive(Debug, Clone)]
pub struct CoordReport {
    /// The lease owner as last read (`<instance>/<process>`).
    pub leader: Option<String>,
    /// Our fencing token and until when we may act (monotonic), if we hold the lease.
    pub held: Option<(u64, Instant)>,
    /// This instance's view as it published it this round.
    pub own: PeerView,
    /// The other configured instances as this one knows them.
    pub peers: Vec<PeerState>,
    /// Another live process with this instance id (its process value).
    pub duplicate: Option<String>,
    /// Live instances that publish another `[coordination]` digest.
    pub mismatch: Vec<String>,
    pub error: Option<String>,
}

impl CoordReport {
    /// Every configured instance, this one first, as counted at `now`.
    pub fn instances(&self, instance: &str, view_ttl: Duration, now: Instant) -> Vec<Peer> {
        let me = Peer {
            instance: instance.to_owned(),
            live: true,
            vote: self.own.vote,
            view: Some(self.own.clone()),
        };
        std::iter::once(me)
            .chain(self.peers.iter().map(|p| Peer {
                instance: p.instance.clone(),
                live: p.live(now, view_ttl),
                vote: p.vote(now, view_ttl),
                view: p.view.clone(),
            }))
            .collect()
    }
}

/// Whether this instance acts on its own decisions: computed once per evaluation
/// and handed on as this one value (the sync task's DNS writes, the replication
/// measurement, the fence on every automatic write, status and the `leader` gauge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// No coordination: this instance acts alone.
    Alone,
    /// It holds a valid lease: it acts, every automatic write fenced by the lease.
    Leader(Fence),
    /// Another instance holds the lease, or nobody does.
    Follower,
}

impl Leadership {
    /// This instance acts on its own decisions now.
    pub fn acts(&self) -> bool {
        !matches!(self, Leadership::Follower)
    }

    /// The lease every automatic write is conditioned on (None when alone).
    pub fn fence(&self) -> Option<Fence> {
        match self {
            Leadership::Leader(f) => Some(f.clone()),
            _ => None,
        }
    }
}

/// The policy's coordination input as of `now`, and whether we lead. Before the
/// first round this instance knows nothing: not leader, no live peer. Liveness and
/// the peers' votes are judged at `now`, the moment of the decision.
pub fn policy_input(
    cfg: &CoordinationSettings,
    id: &Identity,
    report: Option<&CoordReport>,
    now: Instant,
) -> (Coordination, Leadership) {
    let others = report
        .map(|r| r.peers.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|p| p.live(now, cfg.view_ttl));
    let held = report
        .and_then(|r| r.held)
        .filter(|(_, until)| now < *until);
    let c = Coordination {
        leader: held.is_some(),
        leader_id: report
            .and_then(|r| r.leader.as_deref())
            .map(|o| instance_of(o).to_owned()),
        configured: cfg.instances.len(),
        others_live: others.clone().count(),
        others_down: others
            .filter(|p| p.vote(now, cfg.view_ttl) == Vote::Down)
            .count(),
        max_evidence_age: cfg.view_ttl,
        quorum: cfg.quorum,
        mismatch: report.map(|r| r.mismatch.clone()).unwrap_or_default(),
    };
    let leadership = match held {
        Some((token, _)) => Leadership::Leader(Fence {
            owner: id.owner(),
            token,
        }),
        None => Leadership::Follower,
    };
    (c, leadership)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use failover_core::liveness::{PeerState, PeerView};
    use tokio::time::advance;

    use super::*;

    fn cfg() -> CoordinationSettings {
        CoordinationSettings {
            instances: ["a", "b", "c"].map(String::from).to_vec(),
            lease: Duration::from_secs(3),
            renew_every: Duration::from_millis(300),
            view_ttl: Duration::from_millis(1_500),
            quorum: failover_config::QuorumRule::Majority,
            allow_minority_quorum: false,
        }
    }

    /// Issue 17, item 5a: a peer's vote is judged when the decision is made, not
    /// when the report was built. A report built at t0 holds a peer whose view
    /// changed a second before with fresh evidence: counted at t0, not a second
    /// later (1.5 s view TTL), however long the report is kept.
    #[tokio::test(start_paused = true)]
    async fn a_peers_vote_is_judged_at_the_moment_of_the_decision() {
        let t0 = Instant::now();
        advance(Duration::from_secs(1)).await;
        let built = Instant::now();
        let view = PeerView {
            seq: 9,
            process: "pb".into(),
            vote: Vote::Down,
            evidence_age_ms: Some(0),
            secondary_up: true,
            fit: true,
            digest: String::new(),
            detail: String::new(),
        };
        let report = CoordReport {
            leader: Some("a/pa".into()),
            held: Some((1, built + Duration::from_secs(10))),
            own: PeerView {
                process: "pa".into(),
                ..view.clone()
            },
            peers: vec![PeerState {
                instance: "b".into(),
                view: Some(view),
                changed_at: Some(t0),
            }],
            duplicate: None,
            mismatch: Vec::new(),
            error: None,
        };
        let id = Identity {
            instance: "a".into(),
            process: "pa".into(),
        };
        let (c, leadership) = policy_input(&cfg(), &id, Some(&report), built);
        assert_eq!((c.others_live, c.others_down), (1, 1));
        assert!(leadership.acts());
        advance(Duration::from_secs(1)).await;
        let (c, _) = policy_input(&cfg(), &id, Some(&report), Instant::now());
        assert_eq!(
            (c.others_live, c.others_down),
            (0, 0),
            "stale at the decision"
        );
    }

    /// The lease is ours to act on only strictly before the end of the hold the
    /// coordination task reported: at that instant this instance is a follower, and
    /// its writes carry no fence.
    #[tokio::test(start_paused = true)]
    async fn a_held_lease_stops_acting_at_the_end_of_the_hold() {
        let until = Instant::now() + Duration::from_secs(2);
        let report = CoordReport {
            leader: Some("a/pa".into()),
            held: Some((7, until)),
            own: PeerView {
                seq: 1,
                process: "pa".into(),
                vote: Vote::Up,
                evidence_age_ms: Some(0),
                secondary_up: true,
                fit: true,
                digest: String::new(),
                detail: String::new(),
            },
            peers: Vec::new(),
            duplicate: None,
            mismatch: Vec::new(),
            error: None,
        };
        let id = Identity {
            instance: "a".into(),
            process: "pa".into(),
        };
        advance(Duration::from_millis(1_999)).await;
        let (c, leadership) = policy_input(&cfg(), &id, Some(&report), Instant::now());
        assert!(c.leader);
        assert_eq!(
            leadership.fence(),
            Some(Fence {
                owner: "a/pa".into(),
                token: 7
            })
        );
        advance(Duration::from_millis(1)).await;
        let (c, leadership) = policy_input(&cfg(), &id, Some(&report), until);
        assert!(!c.leader);
        assert_eq!(leadership, Leadership::Follower);
        assert_eq!(leadership.fence(), None);
    }
}
