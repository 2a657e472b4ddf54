//! The config item store: what the actuator reads and writes in one region's config
//! table, as a trait the project owns. `DynamoItemStore` (`dynamo.rs`) is the real
//! one; `crate::memory` holds one with DynamoDB's documented semantics for tests and
//! the simulation.

use async_trait::async_trait;

use super::ActionError;
use crate::model::{AppState, AuditRecord, ConfigItem, Fence, Role};

/// Why a conditional write did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteError {
    /// The condition on the item failed: it is not what the writer expected.
    Conflict,
    /// The writer's fencing token is no longer the lease's: it was deposed.
    Fenced,
    /// The call failed; it may or may not have been applied.
    Failed(ActionError),
}

/// One commit: the item moves from `from` at `expected` to `item`, with `audit`
/// written in the same transaction, conditioned on `fence` when given.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    pub from: AppState,
    /// The version the item must have (a missing `version` counts as 0).
    pub expected: u64,
    pub item: &'a ConfigItem,
    pub audit: &'a AuditRecord,
    pub fence: Option<&'a Fence>,
}

/// One region's copy of the config table: the config item, its audit records and the
/// replication canary.
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
    /// with the audit records it lacks, only while this copy's version is lower (or
    /// absent): a copy never moves backwards.
    async fn catch_up(&self, item: &ConfigItem, audits: &[AuditRecord]) -> Result<(), WriteError>;

    /// The audit records of `versions` that exist, newest first (at most 100), read
    /// strongly consistent.
    async fn audits(&self, versions: &[u64]) -> Result<Vec<AuditRecord>, ActionError>;

    /// The same, read eventually consistent: half the read capacity of [`audits`],
    /// and safe for records because one is written once and never changed, so a read
    /// returns the record or, for one committed a moment ago, nothing yet; never a
    /// different record. The history pages read this way. Stores whose reads are
    /// always consistent keep this default.
    ///
    /// [`audits`]: ItemStore::audits
    async fn audits_eventually(&self, versions: &[u64]) -> Result<Vec<AuditRecord>, ActionError> {
        self.audits(versions).await
    }

    /// Writes the replication canary (a fresh nonce) in this region.
    async fn put_canary(&self, nonce: &str) -> Result<(), ActionError>;

    /// The canary's nonce as this region sees it (strongly consistent read).
    async fn read_canary(&self) -> Result<Option<String>, ActionError>;
}
