//! The coordination task: every `renew_every` it reads the lease and the peers'
//! views in one batch, renews or takes the lease, publishes this instance's view,
//! and reports to the decision loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::lease::{LeaseAction, LeaseTracker};
use super::store::{CoordError, CoordStore, PeerView};
use super::{CoordReport, OwnView, Peer};
use crate::config::CoordinationSettings;

/// Runs the lease and view protocol every `renew_every` until `tx` closes.
pub async fn run(
    store: Arc<dyn CoordStore>,
    cfg: CoordinationSettings,
    me: String,
    own: watch::Receiver<OwnView>,
    tx: mpsc::Sender<CoordReport>,
) {
    let mut round = Round {
        store,
        tracker: LeaseTracker::new(me.clone(), cfg.lease),
        me,
        cfg,
        seen: HashMap::new(),
        seq: 0,
        was_leader: false,
    };
    loop {
        let started = Instant::now();
        let report = round.once(&own, started).await;
        if tx.send(report).await.is_err() {
            return;
        }
        let next = started + round.cfg.renew_every;
        tokio::time::sleep_until(next.max(Instant::now() + Duration::from_millis(10))).await;
    }
}

/// The task's memory between rounds.
struct Round {
    store: Arc<dyn CoordStore>,
    tracker: LeaseTracker,
    me: String,
    cfg: CoordinationSettings,
    /// instance -> (last seq seen, when it was first seen)
    seen: HashMap<String, (u64, Instant)>,
    seq: u64,
    was_leader: bool,
}

impl Round {
    async fn once(&mut self, own: &watch::Receiver<OwnView>, started: Instant) -> CoordReport {
        let (mut error, views) = match self.store.read(&self.cfg.instances).await {
            Ok((lease, views)) => {
                self.tracker.observe(lease, Instant::now());
                (self.lease_step(started).await, views)
            }
            Err(e) => (Some(e.to_string()), Vec::new()),
        };
        self.log_leadership(Instant::now());
        self.seq += 1;
        let mine = own.borrow().clone();
        let view = PeerView {
            seq: self.seq,
            primary_down: mine.primary_down,
            secondary_up: mine.secondary_up,
            detail: mine.detail,
        };
        if let Err(e) = self.store.publish(&self.me, &view).await {
            error.get_or_insert(e.to_string());
        }
        CoordReport {
            leader: self.tracker.owner().map(str::to_owned),
            held: self.tracker.held(),
            peers: self.peers(view, &views, Instant::now()),
            error,
        }
    }

    /// Renews or takes the lease as the tracker says; returns what failed.
    async fn lease_step(&mut self, started: Instant) -> Option<String> {
        match self.tracker.next_action(Instant::now()) {
            LeaseAction::Wait => None,
            LeaseAction::Renew { token } => match self.store.renew(&self.me, token).await {
                Ok(renewals) => {
                    self.tracker.held_from(token, renewals, started);
                    None
                }
                Err(CoordError::Refused) => {
                    warn!(
                        token,
                        "lease renewal refused: another instance holds the lease"
                    );
                    self.tracker.lost();
                    None
                }
                Err(e) => Some(e.to_string()),
            },
            LeaseAction::Acquire { expected } => {
                match self.store.acquire(&self.me, expected.as_ref()).await {
                    Ok(token) => {
                        info!(token, previous = ?expected.as_ref().map(|r| &r.owner), "took the leader lease");
                        self.tracker.held_from(token, 0, started);
                        None
                    }
                    Err(CoordError::Refused) => None,
                    Err(e) => Some(e.to_string()),
                }
            }
        }
    }

    fn log_leadership(&mut self, now: Instant) {
        let leader_now = self.tracker.held().is_some_and(|(_, until)| now < until);
        if leader_now != self.was_leader {
            if leader_now {
                info!("this instance is the leader");
            } else {
                warn!("this instance is no longer the leader");
            }
            self.was_leader = leader_now;
        }
    }

    /// Every configured instance with its view and liveness: a peer is live while its
    /// `seq` keeps changing within `view_ttl` on our clock.
    fn peers(&mut self, mine: PeerView, views: &[(String, PeerView)], now: Instant) -> Vec<Peer> {
        let mut peers = Vec::with_capacity(self.cfg.instances.len());
        for instance in &self.cfg.instances {
            if *instance == self.me {
                peers.push(Peer {
                    instance: self.me.clone(),
                    live: true,
                    view: Some(mine.clone()),
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
                    let entry = self.seen.entry(instance.clone()).or_insert((v.seq, now));
                    if entry.0 != v.seq {
                        *entry = (v.seq, now);
                    }
                    now.saturating_duration_since(entry.1) < self.cfg.view_ttl
                }
            };
            peers.push(Peer {
                instance: instance.clone(),
                live,
                view: v,
            });
        }
        peers
    }
}
