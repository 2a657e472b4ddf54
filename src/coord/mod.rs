//! Cooperation of several monitor instances through the config table in the
//! secondary region (the failover target, which must survive a primary outage):
//! a leader lease with a fencing token, and each instance's published view of the
//! primary, from which the leader counts a quorum.
//!
//! Architecture Invariant: only the lease holder acts on its own decisions, and only
//! while its lease is valid on its own monotonic clock; every automatic transition
//! write is conditioned on its fencing token, so a deposed leader's late write fails.

pub mod lease;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::action::{Actuator, PeerView, WriteError};
use crate::config::CoordinationSettings;
use crate::model::Role;
use lease::{LeaseAction, LeaseTracker};

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

/// Runs the lease and view protocol every `renew_every` until `tx` closes.
pub async fn run(
    actuator: Arc<Actuator>,
    cfg: CoordinationSettings,
    me: String,
    own: watch::Receiver<OwnView>,
    tx: mpsc::Sender<CoordReport>,
) {
    let table = actuator.table(Role::Secondary);
    let mut tracker = LeaseTracker::new(me.clone(), cfg.lease);
    // instance -> (last seq seen, when it was first seen)
    let mut seen: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut seq = 0u64;
    let mut was_leader = false;
    loop {
        let started = Instant::now();
        let mut error = None;
        let mut views = Vec::new();
        match table.read_coordination(&cfg.instances).await {
            Ok((lease, v)) => {
                tracker.observe(lease, Instant::now());
                views = v;
            }
            Err(e) => error = Some(e.to_string()),
        }
        if error.is_none() {
            match tracker.next_action(Instant::now()) {
                LeaseAction::Wait => {}
                LeaseAction::Renew { token } => match table.renew_lease(&me, token).await {
                    Ok(renewals) => tracker.held_from(token, renewals, started),
                    Err(WriteError::Conflict | WriteError::Fenced) => {
                        warn!(
                            token,
                            "lease renewal refused: another instance holds the lease"
                        );
                        tracker.lost();
                    }
                    Err(WriteError::Failed(e)) => error = Some(e.to_string()),
                },
                LeaseAction::Acquire { expected } => {
                    match table.acquire_lease(&me, expected.as_ref()).await {
                        Ok(token) => {
                            info!(token, previous = ?expected.as_ref().map(|r| &r.owner), "took the leader lease");
                            tracker.held_from(token, 0, started);
                        }
                        Err(WriteError::Conflict | WriteError::Fenced) => {}
                        Err(WriteError::Failed(e)) => error = Some(e.to_string()),
                    }
                }
            }
        }
        let now = Instant::now();
        let leader_now = tracker.held().is_some_and(|(_, until)| now < until);
        if leader_now != was_leader {
            if leader_now {
                info!("this instance is the leader");
            } else {
                warn!("this instance is no longer the leader");
            }
            was_leader = leader_now;
        }

        seq += 1;
        let mine = own.borrow().clone();
        let view = PeerView {
            seq,
            primary_down: mine.primary_down,
            secondary_up: mine.secondary_up,
            detail: mine.detail,
        };
        if let Err(e) = table.publish_view(&me, &view).await {
            error.get_or_insert(e.to_string());
        }
        let mut peers = Vec::with_capacity(cfg.instances.len());
        for instance in &cfg.instances {
            if *instance == me {
                peers.push(Peer {
                    instance: me.clone(),
                    live: true,
                    view: Some(view.clone()),
                });
                continue;
            }
            let v = views
                .iter()
                .find(|(i, _)| i == instance)
                .map(|(_, v)| v.clone());
            let live = match &v {
                None => false,
                Some(v) => {
                    let entry = seen.entry(instance.clone()).or_insert((v.seq, now));
                    if entry.0 != v.seq {
                        *entry = (v.seq, now);
                    }
                    now.saturating_duration_since(entry.1) < cfg.view_ttl
                }
            };
            peers.push(Peer {
                instance: instance.clone(),
                live,
                view: v,
            });
        }
        let report = CoordReport {
            leader: tracker.owner().map(str::to_owned),
            held: tracker.held(),
            peers,
            error,
        };
        if tx.send(report).await.is_err() {
            return;
        }
        let next = started + cfg.renew_every;
        tokio::time::sleep_until(next.max(Instant::now() + Duration::from_millis(10))).await;
    }
}
