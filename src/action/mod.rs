//! The actuator: the only code that writes the config item, its audit records and
//! the DNS record.
//!
//! The secondary region's copy of the config item is the commit point: every
//! transition is a conditional, versioned write there (with its audit record in the
//! same transaction), and the primary's copy follows by version. One commit point
//! means two writers, whatever they want, can never both win; the secondary is the
//! one that must survive for a failover to mean anything.
//!
//! Architecture Invariant: a copy of the item only ever moves to a higher version,
//! and only the commit decides which transition happened; a lost race is reported,
//! never retried over the winner.

mod dns;
mod dynamo;
mod store;
mod sync;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

pub use dns::{DnsAction, DnsRecord, Route53, follow};
pub use dynamo::DynamoItemStore;
pub use store::{Commit, ItemStore, WriteError};
pub use sync::sync_loop;

use crate::clock::WallClock;
use crate::model::{AppState, AuditRecord, ConfigItem, Fence, Role, Trigger};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("{region} region unavailable: {reason}")]
    Unavailable { region: Role, reason: String },
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
    pub reason: String,
    pub evidence: serde_json::Value,
    pub trigger: Trigger,
    /// `updatedBy`: the instance id, or `admin:<caller>` / `cli:<user>`.
    pub by: String,
    pub forced: bool,
    /// With cooperating instances: the lease this write is conditioned on.
    pub fence: Option<Fence>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Committed in the secondary; `primary` says whether the primary's copy was
    /// brought along at once (else the periodic sync will).
    Committed {
        item: ConfigItem,
        record: AuditRecord,
        primary: Result<(), ActionError>,
        /// The Route 53 record, when one is configured.
        dns: Option<Result<DnsAction, ActionError>>,
    },
    /// Someone else changed the item first; this is what it is now.
    LostRace { current: Option<ConfigItem> },
    /// The fencing token is stale: another instance holds the lease now.
    Deposed,
}

/// What one sync pass found and did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub primary: Result<Option<ConfigItem>, ActionError>,
    pub secondary: Result<Option<ConfigItem>, ActionError>,
    pub action: SyncAction,
    /// The Route 53 record brought in line with the newest item, when configured.
    pub dns: Option<Result<DnsAction, ActionError>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SyncAction {
    /// Both copies agree (or one could not be read, so nothing can be said).
    None,
    /// The lagging copy was brought up to the other's version.
    CaughtUp {
        region: Role,
        from_version: Option<u64>,
        to_version: u64,
    },
    /// The lagging copy could not be written.
    CatchUpFailed { region: Role, reason: String },
    /// Same version, different state: someone wrote without the version protocol
    /// (for example the original stack's `switch-state`). Needs a human.
    Diverged {
        primary: AppState,
        secondary: AppState,
        version: u64,
    },
}

impl SyncReport {
    /// The freshest item either region holds (the higher version; the secondary's on a
    /// tie, as it is the commit point).
    pub fn newest(&self) -> Option<&ConfigItem> {
        let p = self.primary.as_ref().ok().and_then(Option::as_ref);
        let s = self.secondary.as_ref().ok().and_then(Option::as_ref);
        match (p, s) {
            (Some(p), Some(s)) if p.version > s.version => Some(p),
            (_, Some(s)) => Some(s),
            (p, None) => p,
        }
    }
}

pub struct Actuator {
    primary: Arc<dyn ItemStore>,
    secondary: Arc<dyn ItemStore>,
    dns: Option<Arc<dyn DnsRecord>>,
    clock: Arc<dyn WallClock>,
    /// Canary nonces.
    rng: Mutex<fastrand::Rng>,
}

impl Actuator {
    /// The actuator over both regions' config tables; `seed` makes its random
    /// choices (canary nonces) repeatable in tests.
    pub fn new(
        primary: Arc<dyn ItemStore>,
        secondary: Arc<dyn ItemStore>,
        dns: Option<Arc<dyn DnsRecord>>,
        clock: Arc<dyn WallClock>,
        seed: u64,
    ) -> Self {
        Self {
            primary,
            secondary,
            dns,
            clock,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    pub fn dns(&self) -> Option<Arc<dyn DnsRecord>> {
        self.dns.clone()
    }

    pub fn clock(&self) -> &dyn WallClock {
        self.clock.as_ref()
    }

    pub fn table(&self, role: Role) -> &dyn ItemStore {
        match role {
            Role::Primary => self.primary.as_ref(),
            Role::Secondary => self.secondary.as_ref(),
        }
    }

    /// The time a copy of the item took its version, as an instant: from its
    /// `updatedAt`, if it is in the past and parseable.
    pub fn changed_at(
        &self,
        item: &ConfigItem,
        now: tokio::time::Instant,
    ) -> Option<tokio::time::Instant> {
        let at = humantime::parse_rfc3339_weak(item.updated_at.as_deref()?).ok()?;
        let age: Duration = self.clock.now().duration_since(at).ok()?;
        now.checked_sub(age)
    }

    /// Reads the item from the secondary (the commit point), or says why not.
    pub async fn current(&self) -> Result<ConfigItem, ActionError> {
        self.secondary.read().await?.ok_or(ActionError::Missing {
            region: Role::Secondary,
        })
    }

    /// Commits `t` in the secondary, then brings the primary along (one attempt).
    pub async fn transition(&self, t: &Transition) -> Result<Outcome, ActionError> {
        let at = self.clock.rfc3339();
        let item = ConfigItem {
            state: t.to,
            version: t.expected_version + 1,
            updated_at: Some(at.clone()),
            updated_by: Some(t.by.clone()),
            reason: Some(t.reason.clone()),
        };
        let record = AuditRecord {
            version: item.version,
            from: t.from,
            to: t.to,
            at,
            by: t.by.clone(),
            trigger: t.trigger,
            reason: t.reason.clone(),
            evidence: t.evidence.clone(),
            forced: t.forced,
        };
        let commit = Commit {
            from: t.from,
            expected: t.expected_version,
            item: &item,
            audit: &record,
            fence: t.fence.as_ref(),
        };
        match self.secondary.compare_and_set(commit).await {
            Ok(()) => {}
            Err(WriteError::Fenced) => return Ok(Outcome::Deposed),
            Err(WriteError::Conflict) => {
                let current = self.secondary.read().await.ok().flatten();
                return Ok(Outcome::LostRace { current });
            }
            Err(WriteError::Failed(e)) => return Err(e),
        }
        let primary = match self
            .primary
            .catch_up(&item, std::slice::from_ref(&record))
            .await
        {
            // A conflict here means the primary already has this version or a newer one.
            Ok(()) | Err(WriteError::Conflict | WriteError::Fenced) => Ok(()),
            Err(WriteError::Failed(e)) => Err(e),
        };
        let dns = match &self.dns {
            Some(d) => Some(follow(d.as_ref(), t.to).await),
            None => None,
        };
        Ok(Outcome::Committed {
            item,
            record,
            primary,
            dns,
        })
    }

    /// Reads both copies and brings the lagging one up to the newer version.
    pub async fn sync(&self) -> SyncReport {
        let (primary, secondary) = tokio::join!(self.primary.read(), self.secondary.read());
        let action = match (&primary, &secondary) {
            (Ok(p), Ok(Some(s))) if p.as_ref().is_none_or(|p| p.version < s.version) => {
                self.catch_up(
                    &self.secondary,
                    &self.primary,
                    s,
                    p.as_ref().map(|p| p.version),
                )
                .await
            }
            (Ok(Some(p)), Ok(s)) if s.as_ref().is_none_or(|s| s.version < p.version) => {
                self.catch_up(
                    &self.primary,
                    &self.secondary,
                    p,
                    s.as_ref().map(|s| s.version),
                )
                .await
            }
            (Ok(Some(p)), Ok(Some(s))) if p.state != s.state => SyncAction::Diverged {
                primary: p.state,
                secondary: s.state,
                version: s.version,
            },
            _ => SyncAction::None,
        };
        let mut report = SyncReport {
            primary,
            secondary,
            action,
            dns: None,
        };
        if let (Some(d), Some(item)) = (&self.dns, report.newest()) {
            let state = item.state;
            report.dns = Some(follow(d.as_ref(), state).await);
        }
        report
    }

    async fn catch_up(
        &self,
        source: &Arc<dyn ItemStore>,
        target: &Arc<dyn ItemStore>,
        item: &ConfigItem,
        from_version: Option<u64>,
    ) -> SyncAction {
        // The audit records the lagging copy misses (at most the last 25).
        let low = from_version
            .unwrap_or(0)
            .max(item.version.saturating_sub(25));
        let versions: Vec<u64> = (low + 1..=item.version).rev().collect();
        let audits = source.audits(&versions).await.unwrap_or_default();
        match target.catch_up(item, &audits).await {
            Ok(()) => SyncAction::CaughtUp {
                region: target.role(),
                from_version,
                to_version: item.version,
            },
            // It moved on meanwhile: the next pass will see it.
            Err(WriteError::Conflict | WriteError::Fenced) => SyncAction::None,
            Err(WriteError::Failed(e)) => SyncAction::CatchUpFailed {
                region: target.role(),
                reason: e.to_string(),
            },
        }
    }

    /// Measures replication from the primary to the secondary: writes a canary with a
    /// fresh nonce in the primary and waits up to `wait` for the secondary to show it.
    /// Returns (drained, lag, what happened).
    pub async fn measure_replication(&self, wait: Duration) -> (bool, Option<Duration>, String) {
        let nonce = format!("{:016x}", self.rng.lock().map_or(0, |mut r| r.u64(..)));
        let started = tokio::time::Instant::now();
        if let Err(e) = self.primary.put_canary(&nonce).await {
            return (
                false,
                None,
                format!("canary not written in the primary: {e}"),
            );
        }
        loop {
            match self.secondary.read_canary().await {
                Ok(Some(seen)) if seen == nonce => {
                    let lag = started.elapsed();
                    return (
                        true,
                        Some(lag),
                        format!("canary replicated in {} ms", lag.as_millis()),
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    return (
                        false,
                        None,
                        format!("canary not readable in the secondary: {e}"),
                    );
                }
            }
            if started.elapsed() >= wait {
                return (
                    false,
                    None,
                    format!(
                        "canary not seen in the secondary after {} ms",
                        wait.as_millis()
                    ),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Audit records, newest first, from the secondary (the commit point), falling
    /// back to the primary when the secondary cannot be read.
    pub async fn history(&self, limit: usize) -> Result<Vec<AuditRecord>, ActionError> {
        let limit = limit.clamp(1, 100) as u64;
        let mut last_err = None;
        for table in [&self.secondary, &self.primary] {
            match table.read().await {
                Ok(Some(item)) => {
                    let low = item.version.saturating_sub(limit);
                    let versions: Vec<u64> = (low + 1..=item.version).rev().collect();
                    return table.audits(&versions).await;
                }
                Ok(None) => return Ok(Vec::new()),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(ActionError::Missing {
            region: Role::Secondary,
        }))
    }
}
