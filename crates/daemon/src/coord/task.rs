//! The coordination task: every `renew_every` it reads the lease and the views in
//! one batch, renews or takes the lease, publishes this instance's view, and reports
//! to the decision loop. At a clean stop it gives the lease up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::store::{CoordError, CoordStore, PeerView};
use super::{CoordReport, Identity, OwnView, Peer};
use crate::gate::Gate;
use failover_config::CoordinationSettings;
use failover_core::lease::{LeaseAction, LeaseTracker};
use failover_core::policy::Vote;

/// Runs the lease and view protocol every `renew_every` until `tx` closes or `stop`
/// turns true (then the lease, if held, is released).
pub async fn run(
    store: Arc<dyn CoordStore>,
    cfg: CoordinationSettings,
    id: Identity,
    own: watch::Receiver<OwnView>,
    tx: mpsc::Sender<CoordReport>,
    mut stop: watch::Receiver<bool>,
    gate: Gate,
) {
    let mut round = Round {
        store,
        tracker: LeaseTracker::new(id.owner(), cfg.lease),
        id,
        cfg,
        seen: HashMap::new(),
        foreign: None,
        duplicate_until: None,
        seq: 0,
        was_leader: false,
        last_read: None,
    };
    loop {
        gate.pass().await;
        let started = Instant::now();
        let report = round.once(&own, started).await;
        gate.pass().await;
        if tx.send(report).await.is_err() {
            return;
        }
        let next = started + round.cfg.renew_every;
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep_until(next.max(Instant::now() + Duration::from_millis(10))) => {}
        }
    }
    round.release().await;
}

/// What was last seen of another instance's view.
struct Seen {
    seq: u64,
    process: String,
    /// When it was last seen to change (None: seen once, never changed since).
    changed_at: Option<Instant>,
}

/// The task's memory between rounds.
struct Round {
    store: Arc<dyn CoordStore>,
    tracker: LeaseTracker,
    id: Identity,
    cfg: CoordinationSettings,
    seen: HashMap<String, Seen>,
    /// Another process's last write under this instance id: (process, seq).
    foreign: Option<(String, u64)>,
    /// A second live process with this instance id was seen writing until then.
    duplicate_until: Option<Instant>,
    seq: u64,
    was_leader: bool,
    /// When the last successful read of the views was issued: a change seen now
    /// happened after it, and is dated then (the oldest it can be), so that views
    /// read again after a gap in our reads (the table unreachable, this process
    /// stopped) are as old as they may be, not as new as our read.
    last_read: Option<Instant>,
}

impl Round {
    async fn once(&mut self, own: &watch::Receiver<OwnView>, started: Instant) -> CoordReport {
        let issued = Instant::now();
        let (mut error, views, previous_read) = match self.store.read(&self.cfg.instances).await {
            Ok((lease, views)) => {
                let previous_read = self.last_read.replace(issued);
                let now = Instant::now();
                self.tracker.observe(lease, now);
                self.watch_for_duplicates(&views, now);
                (self.lease_step(started).await, views, previous_read)
            }
            Err(e) => (Some(e.to_string()), Vec::new(), None),
        };
        let now = Instant::now();
        self.log_leadership(now);
        self.seq += 1;
        let mine = own.borrow().clone();
        let view = PeerView {
            seq: self.seq,
            process: self.id.process.clone(),
            vote: mine.vote,
            evidence_age_ms: mine
                .evidence_since
                .map(|t| millis(now.saturating_duration_since(t))),
            secondary_up: mine.secondary_up,
            detail: mine.detail,
        };
        if let Err(e) = self.store.publish(&self.id.instance, &view).await {
            error.get_or_insert(e.to_string());
        }
        let now = Instant::now();
        CoordReport {
            leader: self.tracker.owner().map(str::to_owned),
            held: self.tracker.held(),
            peers: self.peers(view, &views, previous_read, now),
            duplicate: self.duplicate(now),
            error,
        }
    }

    /// Another process writing this instance's view: seen when the view under our
    /// id is not ours and has changed since the last such sighting. (A view left by
    /// a dead previous incarnation is seen once and never changes.)
    fn watch_for_duplicates(&mut self, views: &[(String, PeerView)], now: Instant) {
        let Some((_, v)) = views.iter().find(|(i, _)| *i == self.id.instance) else {
            return;
        };
        if v.process == self.id.process {
            return;
        }
        let sighting = (v.process.clone(), v.seq);
        if self.foreign.as_ref().is_some_and(|f| *f != sighting) {
            if self.duplicate(now).is_none() {
                error!(
                    instance = %self.id.instance,
                    other_process = %v.process,
                    "another live process runs with this instance id: it does not lead while that lasts"
                );
            }
            self.duplicate_until = Some(now + self.cfg.view_ttl);
        }
        self.foreign = Some(sighting);
    }

    fn duplicate(&self, now: Instant) -> Option<String> {
        self.duplicate_until
            .filter(|until| now < *until)
            .and(self.foreign.as_ref().map(|(p, _)| p.clone()))
    }

    /// Renews or takes the lease as the tracker says; returns what failed. While a
    /// duplicate of this instance is alive, it never takes the lease.
    async fn lease_step(&mut self, started: Instant) -> Option<String> {
        match self.tracker.next_action(Instant::now()) {
            LeaseAction::Wait => None,
            LeaseAction::Renew { token } => match self.store.renew(&self.id.owner(), token).await {
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
            LeaseAction::Acquire { .. } if self.duplicate(Instant::now()).is_some() => None,
            LeaseAction::Acquire { expected } => {
                match self
                    .store
                    .acquire(&self.id.owner(), expected.as_ref())
                    .await
                {
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

    /// Every configured instance with its view, liveness and vote as counted here.
    /// A peer is live once its view has been seen to change, for `view_ttl` after the
    /// last change on our clock (dated at our previous successful read, the oldest
    /// it can be); its down vote counts while the evidence behind it is younger than
    /// `view_ttl`.
    fn peers(
        &mut self,
        mine: PeerView,
        views: &[(String, PeerView)],
        previous_read: Option<Instant>,
        now: Instant,
    ) -> Vec<Peer> {
        let mut peers = Vec::with_capacity(self.cfg.instances.len());
        for instance in &self.cfg.instances {
            if *instance == self.id.instance {
                peers.push(Peer::counted(instance, Some(mine.clone()), true, mine.vote));
                continue;
            }
            let v = views
                .iter()
                .find(|(i, _)| i == instance)
                .map(|(_, v)| v.clone());
            let Some(view) = v else {
                peers.push(Peer::counted(instance, None, false, Vote::Unknown));
                continue;
            };
            let seen = self.seen.entry(instance.clone()).or_insert(Seen {
                seq: view.seq,
                process: view.process.clone(),
                changed_at: None,
            });
            if seen.seq != view.seq || seen.process != view.process {
                seen.seq = view.seq;
                seen.process = view.process.clone();
                seen.changed_at = Some(previous_read.unwrap_or(now));
            }
            let since = seen.changed_at.map(|t| now.saturating_duration_since(t));
            let live = since.is_some_and(|s| s < self.cfg.view_ttl);
            let fresh = match (since, view.evidence_age_ms) {
                (Some(s), Some(age)) => s + Duration::from_millis(age) <= self.cfg.view_ttl,
                _ => false,
            };
            let vote = match view.vote {
                Vote::Down if !fresh => Vote::Unknown,
                v if live => v,
                _ => Vote::Unknown,
            };
            peers.push(Peer::counted(instance, Some(view), live, vote));
        }
        peers
    }

    /// Gives the lease up if this process holds it.
    async fn release(&mut self) {
        let Some((token, _)) = self.tracker.held() else {
            return;
        };
        match self.store.release(&self.id.owner(), token).await {
            Ok(()) => info!(token, "gave the leader lease up"),
            Err(e) => {
                warn!(token, error = %e, "could not give the leader lease up; it runs out on its own")
            }
        }
        self.tracker.lost();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
