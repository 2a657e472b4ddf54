//! A transition is prepared once (its time, item, audit record and idempotency
//! token fixed) and committed, possibly several times: a retry after an unknown
//! outcome (a timeout, a 5xx) resends exactly the same transaction with the same
//! client request token, so DynamoDB applies it at most once and answers success if
//! the first attempt had applied. The retry thus recognises its own write instead of
//! reporting a lost race.

use std::time::SystemTime;

use serde::Serialize;
use tokio::time::Instant;

use super::dns::{DnsAction, follow};
use super::store::{Commit, CopyFrom, WriteError};
use super::{ActionError, Actuator, Transition};
use failover_config::TablesMode;
use failover_core::commit::{MoveKey, PreparedMove};
use failover_core::model::{AuditRecord, ConfigItem, Role};
use failover_core::overrides;

/// DynamoDB honours a client request token for ten minutes; a prepared transition
/// is retried with its token for at most this long.
pub const TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(9 * 60);

/// A transition with everything its writes carry fixed.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub transition: Transition,
    pub item: ConfigItem,
    pub record: AuditRecord,
    /// The transaction's client request token (32 hex digits).
    pub token: String,
    /// When it was prepared.
    pub at: Instant,
}

impl Prepared {
    /// Still within the token's lifetime at `now`.
    pub fn reusable(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.at) < TOKEN_LIFETIME
    }
}

impl PreparedMove for Prepared {
    fn key(&self) -> MoveKey {
        self.transition.key()
    }

    /// `item` is the one this transition writes (it was applied).
    fn wrote(&self, item: &ConfigItem) -> bool {
        *item == self.item
    }
}

/// What happened to the primary's copy right after a commit.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrimaryCopy {
    /// Written by the actuator (one table per region).
    Written,
    /// Global tables: replication carries the commit.
    Replicates,
    /// Not written yet (one table per region); the sync will catch it up.
    Pending { error: ActionError },
}

/// When a commit's writes were seen to land (the wall clock), for its report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommitTimes {
    /// The commit region answered the commit.
    pub committed: SystemTime,
    /// The primary's copy was written (one table per region).
    pub primary: Option<SystemTime>,
    /// The DNS record was changed.
    pub dns: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Committed in the secondary (the commit point).
    Committed {
        item: ConfigItem,
        record: Box<AuditRecord>,
        primary: PrimaryCopy,
        /// The DNS record, when one is configured.
        dns: Option<Result<DnsAction, ActionError>>,
        times: CommitTimes,
    },
    /// Someone else changed the item first; this is what it is now.
    LostRace { current: Option<ConfigItem> },
    /// The fencing token is stale: another instance holds the lease now.
    Deposed,
    /// The item is at the expected version but the next version's audit record
    /// exists already: the item was reset by hand below versions already used.
    NeedsHuman { reason: String },
}

impl Actuator {
    /// Fixes the time, the item, the audit record and the token of `t`.
    pub fn prepare(&self, t: Transition) -> Prepared {
        let now = self.clock.now();
        let at = overrides::format(now);
        let expires_at = t.lasts.map(|d| overrides::format(now + d));
        let item = ConfigItem {
            state: t.to,
            version: t.expected_version + 1,
            updated_at: Some(at.clone()),
            updated_by: Some(t.by.clone()),
            reason: Some(t.reason.clone()),
            expires_at,
        };
        let record = AuditRecord {
            version: item.version,
            from: t.from,
            to: t.to,
            at,
            by: t.by.clone(),
            trigger: t.trigger,
            reason: t.reason.clone(),
            evidence: with_end(&t.evidence, item.expires_at.as_deref()),
            forced: t.forced,
        };
        Prepared {
            token: self.random_hex(),
            transition: t,
            item,
            record,
            at: Instant::now(),
        }
    }

    /// Prepares and commits `t` once (the CLI's moves).
    pub async fn transition(&self, t: &Transition) -> Result<Outcome, ActionError> {
        self.commit(&self.prepare(t.clone())).await
    }

    /// Commits `p` in the secondary; then, with one table per region, copies it to
    /// the primary (one attempt); then points the DNS record at the committed state.
    pub async fn commit(&self, p: &Prepared) -> Result<Outcome, ActionError> {
        let t = &p.transition;
        let commit = Commit {
            from: t.from,
            expected: t.expected_version,
            item: &p.item,
            audit: &p.record,
            fence: t.fence.as_ref(),
            token: &p.token,
        };
        match self.secondary.compare_and_set(commit).await {
            Ok(()) => {}
            Err(WriteError::Fenced) => return Ok(Outcome::Deposed),
            Err(WriteError::Conflict) => {
                let current = self.secondary.read().await.ok().flatten();
                return Ok(Outcome::LostRace { current });
            }
            Err(WriteError::AuditExists) => {
                return Ok(Outcome::NeedsHuman {
                    reason: self.reset_item_reason(t.expected_version).await,
                });
            }
            Err(WriteError::Busy(e) | WriteError::Failed(e)) => return Err(e),
        }
        Ok(self.committed(p).await)
    }

    /// The follow-ups of a commit: the primary's copy and the DNS record.
    pub async fn committed(&self, p: &Prepared) -> Outcome {
        let committed = self.clock.now();
        let primary = match self.tables {
            TablesMode::Global => PrimaryCopy::Replicates,
            TablesMode::PerRegion => self.copy_commit(p).await,
        };
        let primary_at = (primary == PrimaryCopy::Written).then(|| self.clock.now());
        let dns = match &self.dns {
            Some(d) => Some(follow(d.as_ref(), p.item.state, p.item.version).await),
            None => None,
        };
        let dns_at = matches!(dns, Some(Ok(DnsAction::Upserted { .. }))).then(|| self.clock.now());
        Outcome::Committed {
            item: p.item.clone(),
            record: Box::new(p.record.clone()),
            primary,
            dns,
            times: CommitTimes {
                committed,
                primary: primary_at,
                dns: dns_at,
            },
        }
    }

    /// One table per region: one attempt at moving the primary's copy from the
    /// version before `p` to `p`, its record with it (one call: a commit's time
    /// budget counts it so). Only from the commit region's own version before: the
    /// copy must hold that version's audit record, written when the item the move
    /// started from was (`CopyFrom::At`). Otherwise the sync copies every record.
    async fn copy_commit(&self, p: &Prepared) -> PrimaryCopy {
        let pending = |reason: &str| PrimaryCopy::Pending {
            error: ActionError::Busy {
                region: Role::Primary,
                reason: reason.into(),
            },
        };
        let from = CopyFrom::At {
            version: p.transition.expected_version,
            at: p.transition.from_at.as_deref(),
        };
        match self
            .primary
            .catch_up(&p.item, std::slice::from_ref(&p.record), from)
            .await
        {
            Ok(()) => PrimaryCopy::Written,
            // The primary is not at the version before this one (or that version
            // is not the commit region's): it lags further, holds another history,
            // or already moved on. The sync copies every record it lacks.
            Err(WriteError::Conflict) => pending(
                "its copy is not at the commit region's previous version; the sync brings it up",
            ),
            Err(WriteError::Busy(e) | WriteError::Failed(e)) => PrimaryCopy::Pending { error: e },
            Err(other) => PrimaryCopy::Pending {
                error: ActionError::Unavailable {
                    region: Role::Primary,
                    reason: format!("{other:?}"),
                },
            },
        }
    }

    /// What to tell a human when the next version's audit record already exists.
    async fn reset_item_reason(&self, version: u64) -> String {
        let wanted: Vec<u64> = (version + 1..=version + 100).collect();
        let newest = self
            .secondary
            .audits(&wanted, true)
            .await
            .ok()
            .and_then(|r| r.first().map(|a| a.version));
        let newest = newest.map_or(String::new(), |v| format!(" (up to version {v})"));
        format!(
            "the config item is at version {version}, but audit records of later versions \
             exist{newest}: it was reset by hand. Automatic moves stop until a human sets the \
             item's version to the newest audit record's (or removes the stale records)"
        )
    }
}

/// The evidence of a human's fence also says when it ends.
fn with_end(evidence: &serde_json::Value, expires_at: Option<&str>) -> serde_json::Value {
    let mut evidence = evidence.clone();
    if let (Some(end), Some(map)) = (expires_at, evidence.as_object_mut()) {
        map.insert("expires_at".into(), end.into());
    }
    evidence
}
