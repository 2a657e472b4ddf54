//! The coordination task: every `renew_every` it reads the lease and the views in
//! one batch, renews or takes the lease, publishes this instance's view, and reports
//! to the decision loop. At a clean stop it gives the lease up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::store::{CoordError, CoordStore, PeerView};
use super::{CoordReport, Identity, OwnView};
use crate::gate::Gate;
use failover_config::CoordinationSettings;
use failover_core::lease::{Handover, LeaseStep, LeaseTracker, Standing};
use failover_core::liveness::{Liveness, Sighting};

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
    let digest = cfg.digest();
    let mut round = Round {
        store,
        tracker: LeaseTracker::new(id.owner(), cfg.lease),
        liveness: Liveness::new(&id.instance, &id.process, cfg.view_ttl),
        id,
        cfg,
        seq: 0,
        was_leader: false,
        handover: Handover::default(),
        digest,
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

/// The task's memory between rounds.
struct Round {
    store: Arc<dyn CoordStore>,
    tracker: LeaseTracker,
    liveness: Liveness,
    id: Identity,
    cfg: CoordinationSettings,
    seq: u64,
    was_leader: bool,
    handover: Handover,
    /// This instance's `[coordination]` digest, published in every view.
    digest: String,
}

impl Round {
    async fn once(&mut self, own: &watch::Receiver<OwnView>, started: Instant) -> CoordReport {
        let issued = Instant::now();
        let mine = own.borrow().clone();
        let mut error = match self.store.read(&self.cfg.instances).await {
            Ok((lease, views)) => {
                let now = Instant::now();
                self.tracker.observe(lease, now);
                if let Sighting::Duplicate(other) = self.liveness.observe(&views, issued, now) {
                    error!(
                        instance = %self.id.instance,
                        other_process = %other,
                        "another live process runs with this instance id: it does not lead while that lasts"
                    );
                }
                self.lease_step(&mine, started).await
            }
            Err(e) => Some(e.to_string()),
        };
        let now = Instant::now();
        self.log_leadership(now);
        self.seq += 1;
        let view = PeerView {
            seq: self.seq,
            process: self.id.process.clone(),
            vote: mine.vote,
            evidence_age_ms: mine
                .evidence_since
                .map(|t| millis(now.saturating_duration_since(t))),
            secondary_up: mine.secondary_up,
            fit: mine.fit,
            digest: self.digest.clone(),
            detail: mine.detail,
        };
        if let Err(e) = self.store.publish(&self.id.instance, &view).await {
            error.get_or_insert(e.to_string());
        }
        let now = Instant::now();
        CoordReport {
            leader: self.tracker.owner().map(str::to_owned),
            held: self.tracker.held(),
            own: view,
            peers: self.liveness.peers(&self.cfg.instances),
            duplicate: self.liveness.duplicate(now).map(str::to_owned),
            mismatch: self.liveness.mismatched(&self.digest, now),
            error,
        }
    }

    /// Renews, gives up or takes the lease as the tracker and the handover rule
    /// (`failover_core::lease::Handover`) say; returns what failed.
    async fn lease_step(&mut self, mine: &OwnView, started: Instant) -> Option<String> {
        let now = Instant::now();
        let standing = Standing {
            fit: mine.fit,
            committing: mine.committing,
            duplicate: self.liveness.duplicate(now).is_some(),
            fit_peer_live: self.liveness.fit_peer_live(now),
        };
        match self.handover.step(self.tracker.next_action(now), standing) {
            LeaseStep::Wait | LeaseStep::Abstain => None,
            LeaseStep::Renew { token } => self.renew(token, started).await,
            LeaseStep::Release { token } => {
                warn!(
                    token,
                    "this instance cannot act (its mode, or its view of the secondary): handing the leader lease to one that can"
                );
                self.release().await;
                None
            }
            LeaseStep::Acquire { expected } => {
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

    async fn renew(&mut self, token: u64, started: Instant) -> Option<String> {
        match self.store.renew(&self.id.owner(), token).await {
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
