//! The actuator: the only code that writes the config item, its audit records, the
//! operator's pause and the DNS record.
//!
//! The secondary region's copy of the config item is the commit point: every
//! transition is a conditional, versioned, idempotent write there (with its audit
//! record in the same transaction). One commit point means two writers, whatever
//! they want, can never both win; the secondary is the one that must survive for a
//! failover to mean anything. How the primary's copy follows depends on the tables:
//! with DynamoDB global tables (`TablesMode::Global`, AWS) replication carries the
//! commit and the primary replica is only read, to measure lag and divergence
//! (writing it too would race replication, last writer wins); with one table per
//! region (`PerRegion`, an emulator) the actuator copies the commit over itself.
//!
//! - `store.rs`: the [`ItemStore`] and [`CanaryStore`] seams; `dynamo.rs` on DynamoDB;
//! - `commit.rs`: a transition prepared once and committed (retried with its token);
//! - `sync.rs`: the sync pass (read both copies, catch up, DNS) and its task;
//! - `replication.rs`: the canary measurement while fenced;
//! - `history.rs`: the audit records, one bounded page at a time;
//! - `reports.rs`: the recovery reports beside them;
//! - `dns.rs`: the DNS record that follows the state.
//!
//! Architecture Invariant: a copy of the item only ever moves to a higher version,
//! and only the commit decides which transition happened; a lost race is reported,
//! never retried over the winner.

mod commit;
mod dns;
mod dynamo;
mod history;
mod replication;
mod reports;
mod store;
mod sync;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

pub use commit::{CommitTimes, Outcome, Prepared, PrimaryCopy};
pub use dns::{
    DnsAction, DnsRecord, Guard, RecordSet, Route53, Seen, follow, follow_seen, guard_name,
};
pub use dynamo::{DynamoCanary, DynamoItemStore, copy_refusal, refusal};
pub use history::{HISTORY_CACHE_TTL, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, HistoryPage};
pub use replication::{Canaries, CanaryPair, Measurement};
pub use store::{AUDITS_PER_WRITE, CanaryStore, Commit, CopyFrom, ItemStore, WriteError};
pub use sync::{SyncAction, SyncReport, sync_loop};

use crate::clock::WallClock;
use failover_config::TablesMode;
use failover_core::commit::MoveKey;
use failover_core::model::{AppState, ConfigItem, Fence, PauseRecord, Role, Trigger};
use failover_core::overrides;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The call failed or timed out; a write may or may not have been applied.
    #[error("{region} region unavailable: {reason}")]
    Unavailable { region: Role, reason: String },
    /// Refused without writing (throttled, another transaction on the item).
    #[error("{region} region busy: {reason}")]
    Busy { region: Role, reason: String },
    #[error("{region} config item is malformed: {reason}")]
    Malformed { region: Role, reason: String },
    #[error("the config item does not exist in the {region} region")]
    Missing { region: Role },
}

impl Serialize for ActionError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A transition to commit.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: AppState,
    pub to: AppState,
    pub expected_version: u64,
    /// The `updatedAt` of the item the move starts from, when known: the `at` of its
    /// audit record (unless a person set the version by hand), which the primary's
    /// copy must hold for the commit's own copy to build on it.
    pub from_at: Option<String>,
    pub reason: String,
    pub evidence: serde_json::Value,
    pub trigger: Trigger,
    /// `updatedBy`: the instance id, or `admin:<caller>` / `cli:<user>`.
    pub by: String,
    pub forced: bool,
    /// With cooperating instances: the lease this write is conditioned on.
    pub fence: Option<Fence>,
    /// A human's fence: how long it lasts (the item's `expiresAt` is the commit's
    /// time plus this). `None` for every other move.
    pub lasts: Option<Duration>,
}

impl Transition {
    /// What the move is about: from, to, and the version it starts from.
    pub fn key(&self) -> MoveKey {
        MoveKey {
            from: self.from,
            to: self.to,
            version: self.expected_version,
        }
    }
}

/// What the actuator writes to, besides the config tables.
pub struct Extras {
    pub dns: Option<Arc<dyn DnsRecord>>,
    /// This instance's replication canaries (config table and data table).
    pub canaries: Canaries,
    pub clock: Arc<dyn WallClock>,
    pub tables: TablesMode,
}

pub struct Actuator {
    primary: Arc<dyn ItemStore>,
    secondary: Arc<dyn ItemStore>,
    dns: Option<Arc<dyn DnsRecord>>,
    canaries: Canaries,
    clock: Arc<dyn WallClock>,
    tables: TablesMode,
    /// Canary nonces and commit tokens.
    rng: Mutex<fastrand::Rng>,
    /// Audit records recently read for history pages. A std mutex: held only to
    /// copy records in or out, never across an await.
    history_cache: Mutex<history::HistoryCache>,
    /// One table per region: the (primary, commit region) items of the last pass
    /// that found the primary ahead.
    primary_ahead: Mutex<Option<(ConfigItem, ConfigItem)>>,
    /// One table per region: reports whose primary copy is still to be made.
    unreplicated: Mutex<reports::Unreplicated>,
}

impl Actuator {
    /// The actuator over both regions' config tables; `seed` makes its random
    /// choices (canary nonces, commit tokens) repeatable in tests.
    pub fn new(
        primary: Arc<dyn ItemStore>,
        secondary: Arc<dyn ItemStore>,
        extras: Extras,
        seed: u64,
    ) -> Self {
        Self {
            primary,
            secondary,
            dns: extras.dns,
            canaries: extras.canaries,
            clock: extras.clock,
            tables: extras.tables,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            history_cache: Mutex::new(Default::default()),
            primary_ahead: Mutex::new(None),
            unreplicated: Mutex::new(Default::default()),
        }
    }

    pub fn dns(&self) -> Option<Arc<dyn DnsRecord>> {
        self.dns.clone()
    }

    pub fn clock(&self) -> &dyn WallClock {
        self.clock.as_ref()
    }

    pub fn tables(&self) -> TablesMode {
        self.tables
    }

    pub fn table(&self, role: Role) -> &dyn ItemStore {
        match role {
            Role::Primary => self.primary.as_ref(),
            Role::Secondary => self.secondary.as_ref(),
        }
    }

    fn random_hex(&self) -> String {
        let n = self.rng.lock().map_or(0, |mut r| r.u128(..));
        format!("{n:032x}")
    }

    /// The time a copy of the item took its version, as an instant, from its
    /// `updatedAt` on this process's wall clock. When that cannot say (no or an
    /// unreadable `updatedAt`, or one in our future because our clock is behind the
    /// writer's), `now`: a hold-down then runs from now, never skipped.
    pub fn changed_at(
        &self,
        item: &ConfigItem,
        now: tokio::time::Instant,
    ) -> Option<tokio::time::Instant> {
        let Some(at) = item
            .updated_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        else {
            return Some(now);
        };
        let age: Duration = self.clock.now().duration_since(at).unwrap_or_default();
        // Older than this process's monotonic clock can say: long past.
        now.checked_sub(age)
    }

    /// Whether the commit region holds the audit record of `version` (strongly
    /// consistent): a record above the item means the item was reset below versions
    /// already used.
    pub async fn audit_exists(&self, version: u64) -> Result<bool, ActionError> {
        Ok(!self.secondary.audits(&[version], true).await?.is_empty())
    }

    /// Reads the item from the secondary (the commit point), or says why not.
    pub async fn current(&self) -> Result<ConfigItem, ActionError> {
        self.secondary.read().await?.ok_or(ActionError::Missing {
            region: Role::Secondary,
        })
    }
}

impl Actuator {
    /// Stores the operator's pause in the commit region (conditioned on the stored
    /// one, retried when another instance wrote meanwhile). Returns whether it was
    /// paused before, and the record now stored.
    pub async fn set_pause(
        &self,
        paused: bool,
        by: &str,
        reason: &str,
        lasts: Option<Duration>,
    ) -> Result<(bool, PauseRecord), ActionError> {
        for _ in 0..3 {
            let current = self.secondary.read_pause().await?;
            let now = self.clock.now();
            let new = PauseRecord {
                paused,
                by: by.to_owned(),
                reason: reason.to_owned(),
                at: overrides::format(now),
                seq: current.as_ref().map_or(1, |p| p.seq + 1),
                until: lasts.filter(|_| paused).map(|d| overrides::format(now + d)),
            };
            let was = current.as_ref().is_some_and(|p| p.paused);
            match self
                .secondary
                .write_pause(current.map(|p| p.seq), &new)
                .await
            {
                Ok(()) => return Ok((was, new)),
                Err(WriteError::Conflict) => continue,
                Err(WriteError::Busy(e) | WriteError::Failed(e)) => return Err(e),
                Err(other) => {
                    return Err(ActionError::Unavailable {
                        region: Role::Secondary,
                        reason: format!("{other:?}"),
                    });
                }
            }
        }
        Err(ActionError::Busy {
            region: Role::Secondary,
            reason: "the pause changed three times while being stored; try again".into(),
        })
    }
}

impl Actuator {
    /// Lifts `ended`, a pause whose end has passed, only while it is still the
    /// stored one (its `seq`): a newer pause is never lifted by this. `Ok(None)`
    /// when another write came first.
    pub async fn lift_ended_pause(
        &self,
        ended: &PauseRecord,
    ) -> Result<Option<PauseRecord>, ActionError> {
        let new = PauseRecord {
            paused: false,
            by: "expiry".into(),
            reason: format!(
                "the pause set by {} ({}) ended at {}",
                ended.by,
                ended.reason,
                ended.until.as_deref().unwrap_or("its maximum")
            ),
            at: self.clock.rfc3339(),
            seq: ended.seq + 1,
            until: None,
        };
        match self.secondary.write_pause(Some(ended.seq), &new).await {
            Ok(()) => Ok(Some(new)),
            Err(WriteError::Conflict) => Ok(None),
            Err(WriteError::Busy(e) | WriteError::Failed(e)) => Err(e),
            Err(other) => Err(ActionError::Unavailable {
                region: Role::Secondary,
                reason: format!("{other:?}"),
            }),
        }
    }
}
