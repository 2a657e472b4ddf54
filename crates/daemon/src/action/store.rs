//! The config item store: what the actuator reads and writes in one region's config
//! table, as a trait the project owns. `DynamoItemStore` (`dynamo.rs`) is the real
//! one; `crate::memory` holds one with DynamoDB's documented semantics for tests and
//! the simulation.

use async_trait::async_trait;

use super::ActionError;
use failover_core::drill::DrillRecord;
use failover_core::model::{AppState, AuditRecord, ConfigItem, Fence, PauseRecord, Role};
use failover_core::report::Report;

/// Why a conditional write did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteError {
    /// The item is not at the state and version the writer expected (a commit), or
    /// the copy is already at or beyond the version (a catch-up).
    Conflict,
    /// The item is at the expected version, but the audit record of the next one
    /// exists already: the item was reset below versions already used.
    AuditExists,
    /// The writer's fencing token is no longer the lease's: it was deposed.
    Fenced,
    /// Refused without writing anything (throttled, or another transaction was on
    /// the item): try again later.
    Busy(ActionError),
    /// The call failed or timed out: it may or may not have been applied.
    Failed(ActionError),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Conflict => {
                f.write_str("the condition did not hold (changed by another writer)")
            }
            WriteError::AuditExists => f.write_str("the audit record of the next version exists"),
            WriteError::Fenced => f.write_str("deposed: the lease's fencing token changed"),
            WriteError::Busy(e) => write!(f, "busy, nothing written: {e}"),
            WriteError::Failed(e) => write!(f, "{e} (may or may not have applied)"),
        }
    }
}

/// One commit: the item moves from `from` at `expected` to `item`, with `audit`
/// written in the same transaction, conditioned on `fence` when given. `token`
/// makes the transaction idempotent: resent with the same token (within ten
/// minutes), it applies at most once and answers success if it did.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    pub from: AppState,
    /// The version the item must have (a missing `version` counts as 0).
    pub expected: u64,
    pub item: &'a ConfigItem,
    pub audit: &'a AuditRecord,
    pub fence: Option<&'a Fence>,
    pub token: &'a str,
}

/// At most this many audit records go into one catch-up transaction (DynamoDB takes
/// 100 actions per transaction; one is the item).
pub const AUDITS_PER_WRITE: usize = 99;

/// Where a copy must be for [`ItemStore::catch_up`] to move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFrom<'a> {
    /// At any lower version (absent counting as 0); the caller writes every record
    /// in between.
    Below,
    /// At `version` exactly (absent counting as 0) and, above 0, holding the commit
    /// region's audit record of it: one that exists and, when `at` is known, was
    /// written at `at`. A copy at that version without it (left there by a write
    /// that landed after a reset, its record deleted by the repair or an older
    /// life's) is not on the commit region's history: [`WriteError::Conflict`]
    /// leaves it to the sync, which compares the records and copies every one.
    At { version: u64, at: Option<&'a str> },
}

impl CopyFrom<'_> {
    /// The version of the record checked in the target, if any.
    pub fn checked(&self) -> Option<u64> {
        match self {
            Self::At { version, .. } if *version > 0 => Some(*version),
            _ => None,
        }
    }

    /// How many audit records fit in the transaction beside the item (and the
    /// check of the target's record).
    pub fn room(&self) -> usize {
        AUDITS_PER_WRITE - usize::from(self.checked().is_some())
    }
}

/// One region's copy of the config table: the config item, its audit records and
/// the operator's pause.
#[async_trait]
pub trait ItemStore: Send + Sync {
    /// Which region this copy is in.
    fn role(&self) -> Role;

    /// The config item (strongly consistent read); `None` when there is none.
    async fn read(&self) -> Result<Option<ConfigItem>, ActionError>;

    /// The commit: sets the item only if it is still in state `from` at version
    /// `expected`, writes the audit record (which must not exist yet) in the same
    /// transaction, and checks the fence when given. All or nothing.
    async fn compare_and_set(&self, c: Commit<'_>) -> Result<(), WriteError>;

    /// Brings this copy up to `item` (a newer version committed in the other region)
    /// with the audit records it lacks in the same transaction, only from where
    /// `from` says this copy is (see [`CopyFrom`]): so that the records written are
    /// all it lacks. A copy never moves backwards. More records than fit in one
    /// transaction ([`CopyFrom::room`]) are refused, never dropped.
    async fn catch_up(
        &self,
        item: &ConfigItem,
        audits: &[AuditRecord],
        from: CopyFrom<'_>,
    ) -> Result<(), WriteError>;

    /// Sets this copy to `item`, a lower version than it holds or the same version
    /// of another history (the commit region was reset, restored or set back by
    /// hand, and this copy follows it), only while it is still exactly `expected`
    /// (version and state). Its audit records are not touched here.
    async fn follow_reset(
        &self,
        expected: &ConfigItem,
        item: &ConfigItem,
    ) -> Result<(), WriteError>;

    /// Writes audit records as they are (they never change once written), up to
    /// [`AUDITS_PER_WRITE`] at once: the older part of a long catch-up. More than
    /// that are refused, nothing written, never cut short.
    async fn put_audits(&self, audits: &[AuditRecord]) -> Result<(), WriteError>;

    /// The audit records of `versions` that exist, newest first (at most 100).
    /// `consistent`: strongly consistent reads (a record just committed); history
    /// reads need not be, since a record never changes once written.
    async fn audits(
        &self,
        versions: &[u64],
        consistent: bool,
    ) -> Result<Vec<AuditRecord>, ActionError>;

    /// The operator's pause, if one was ever stored.
    async fn read_pause(&self) -> Result<Option<PauseRecord>, ActionError>;

    /// Stores `new` if the stored pause still has sequence number `expected` (None:
    /// none stored yet).
    async fn write_pause(&self, expected: Option<u64>, new: &PauseRecord)
    -> Result<(), WriteError>;

    /// Stores a recovery report beside its audit record (`<app>#report#<version>`),
    /// unless a complete one is there already (a complete report is final: a late
    /// copy of an earlier draft never replaces it; [`WriteError::Conflict`] then).
    async fn put_report(&self, report: &Report) -> Result<(), WriteError> {
        let _ = report;
        Err(WriteError::Failed(ActionError::Unavailable {
            region: self.role(),
            reason: "this store keeps no recovery reports".into(),
        }))
    }

    /// The drill record (`<app>#drill`): the drill running now or the last one.
    async fn read_drill(&self) -> Result<Option<DrillRecord>, ActionError> {
        Ok(None)
    }

    /// Stores `new` if the stored drill record still has sequence number
    /// `expected` (None: none stored yet): one drill at a time, and a late writer
    /// never overwrites a newer record.
    async fn write_drill(
        &self,
        expected: Option<u64>,
        new: &DrillRecord,
    ) -> Result<(), WriteError> {
        let _ = (expected, new);
        Err(WriteError::Failed(ActionError::Unavailable {
            region: self.role(),
            reason: "this store keeps no drill records".into(),
        }))
    }

    /// The recovery reports of `versions` that exist (at most 100), newest first.
    async fn reports(&self, versions: &[u64]) -> Result<Vec<Report>, ActionError> {
        let _ = versions;
        Ok(Vec::new())
    }
}

/// One replication canary: an item of this instance's own in one region's table,
/// written in the primary and looked for in the secondary.
#[async_trait]
pub trait CanaryStore: Send + Sync {
    /// Writes the canary with a fresh nonce.
    async fn put(&self, nonce: &str) -> Result<(), ActionError>;

    /// The canary's nonce as this region sees it (strongly consistent read).
    async fn read(&self) -> Result<Option<String>, ActionError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a failed write reads in the log, a drill's record and an admin answer.
    #[test]
    fn a_failed_write_reads_as_what_happened_to_it() {
        let e = || ActionError::Unavailable {
            region: Role::Secondary,
            reason: "timed out".into(),
        };
        let said = |w: WriteError| w.to_string();
        assert_eq!(
            said(WriteError::Conflict),
            "the condition did not hold (changed by another writer)"
        );
        assert_eq!(
            said(WriteError::AuditExists),
            "the audit record of the next version exists"
        );
        assert_eq!(
            said(WriteError::Fenced),
            "deposed: the lease's fencing token changed"
        );
        assert_eq!(
            said(WriteError::Busy(e())),
            "busy, nothing written: secondary region unavailable: timed out"
        );
        assert_eq!(
            said(WriteError::Failed(e())),
            "secondary region unavailable: timed out (may or may not have applied)"
        );
    }
}
