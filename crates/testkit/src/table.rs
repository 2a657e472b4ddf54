//! One region's config table in memory, with DynamoDB's documented semantics where
//! the monitor depends on them:
//!
//! - every item is addressed by its `appId` key (`failover_core::model::keys`);
//! - a conditional write is atomic per item; a transaction evaluates every condition
//!   first and then applies all of its actions or none, under one lock, so it is
//!   isolated from every other write (serializable, as DynamoDB's are);
//! - a cancelled transaction reports one reason per action, in request order;
//! - a transaction with a client request token applies once: the same token with the
//!   same actions within ten minutes answers success without applying again, with
//!   other actions `IdempotentParameterMismatch`; after ten minutes (tokio's clock)
//!   the token is forgotten and the transaction is a new one;
//! - a throttled write applies nothing: a transaction is cancelled with
//!   `ThrottlingError` for each action, a single write fails with
//!   `ThrottlingException`; a request throttled as a whole (the table's or the
//!   account's request rate) fails before anything is looked at, read or write;
//! - a transaction takes time when [`MemTable::set_transaction_time`] says so (none
//!   by default): its items are *in progress* from the request until it applies
//!   (its conditions are evaluated then, and it applies whatever becomes of the
//!   caller). Meanwhile another transaction on any of those items is cancelled with
//!   `TransactionConflict` on that item (`None` on the others), a single write to
//!   one fails with `TransactionConflictException`, and the same client request
//!   token again fails with `TransactionInProgressException`; reads are not held;
//! - `BatchGetItem` may leave keys unprocessed; the stores ask again for them a few
//!   times, as `failover_aws::dynamo::Table::batch_get` does, and fail when some
//!   are still left;
//! - reads are strongly consistent (the latest write in this region).
//!
//! Every write is stamped with the table's logical clock, so that a global-table
//! simulation can replicate items one by one, last writer wins.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use failover_core::lease::LeaseRecord;
use failover_core::model::{AuditRecord, ConfigItem, PauseRecord};
use failover_core::report::Report;
use failover_daemon::coord::PeerView;

/// What an item of the config table holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Item(ConfigItem),
    Audit(AuditRecord),
    Lease(LeaseRecord),
    View(PeerView),
    Canary(String),
    Pause(PauseRecord),
    Report(Box<Report>),
    Drill(Box<failover_core::drill::DrillRecord>),
}

/// One stored item and the stamp of the write that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub record: Record,
    /// When it was written (the writer's stamp; replication keeps the origin's).
    pub stamp: u128,
}

/// A change to one item, as replication carries it: `None` deletes.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: String,
    pub record: Option<Record>,
    pub stamp: u128,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub items: BTreeMap<String, Entry>,
    /// client request token -> (fingerprint of the actions, when first applied)
    pub tokens: BTreeMap<String, (String, tokio::time::Instant)>,
    /// Every write applied here, in order, for a replicator to drain.
    pub outbox: Vec<Change>,
    /// Stamps of this table's writes: a counter unless a clock is set.
    pub counter: u128,
    pub down: bool,
    /// Faults a test injects into the next calls.
    pub faults: Faults,
    /// How long a transaction is in progress before it applies.
    pub transaction_time: std::time::Duration,
    /// Transactions in progress: (id, their keys, their client request token).
    pub in_progress: Vec<(u64, Vec<String>, Option<String>)>,
    pub next_id: u64,
}

/// Faults a test injects, as DynamoDB or the network produce them.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Every call takes this long before it is applied (a slow region).
    pub delay: Option<std::time::Duration>,
    /// The next this many writes are applied, then fail as timed out.
    pub fail_after_apply: u32,
    /// The next this many writes are refused as throttled, without applying.
    pub throttle: u32,
    /// Reads fail until then, while writes still work (the read path of a region
    /// broken, or a reader that cannot see what it wrote for a while).
    pub reads_fail_until: Option<tokio::time::Instant>,
    /// Every request, read or write, fails with `ThrottlingException` until then
    /// (nothing is read or written): request-level throttling.
    pub throttle_requests_until: Option<tokio::time::Instant>,
    /// The next this many `BatchGetItem` rounds answer only the first half of the
    /// keys asked (rounded down), leaving the rest unprocessed.
    pub unprocessed: u32,
}

/// One region's config table. Clones share the same contents.
#[derive(Debug, Clone, Default)]
pub struct MemTable {
    inner: Arc<Mutex<Inner>>,
    /// Record every write in the outbox (for a replicator).
    replicated: bool,
}

impl MemTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table whose writes are kept for a replicator ([`MemTable::drain`]).
    pub fn replicated() -> Self {
        Self {
            inner: Arc::default(),
            replicated: true,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is a test failure already; keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every call fail (true) or work again (false): the region is down.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    pub fn is_down(&self) -> bool {
        self.lock().down
    }

    /// Sets the faults of the next calls.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Makes every transaction from now on take `time` from its request until it
    /// applies (zero, the default: it applies at once).
    pub fn set_transaction_time(&self, time: std::time::Duration) {
        self.lock().transaction_time = time;
    }

    /// The keys of the transactions in progress now.
    pub fn in_progress(&self) -> Vec<String> {
        self.lock()
            .in_progress
            .iter()
            .flat_map(|(_, keys, _)| keys.clone())
            .collect()
    }

    /// Every request is refused now (throttled), or batch reads may still leave keys
    /// unprocessed.
    pub fn requests_refused(&self) -> bool {
        let f = &self.lock().faults;
        f.unprocessed > 0
            || f.throttle_requests_until
                .is_some_and(|t| tokio::time::Instant::now() < t)
    }

    /// Faults placed for writes still to come (throttling, a timeout after applying).
    pub fn write_faults_armed(&self) -> bool {
        let f = &self.lock().faults;
        f.throttle > 0 || f.fail_after_apply > 0
    }

    pub(super) fn delay(&self) -> Option<std::time::Duration> {
        self.lock().faults.delay
    }

    /// The record at `key`, if any.
    pub fn get(&self, key: &str) -> Option<Record> {
        self.lock().items.get(key).map(|e| e.record.clone())
    }

    /// Every key and record, in key order.
    pub fn dump(&self) -> Vec<(String, Record)> {
        self.lock()
            .items
            .iter()
            .map(|(k, e)| (k.clone(), e.record.clone()))
            .collect()
    }

    /// Writes `record` at `key` unconditionally, as a person with the console would.
    pub fn put(&self, key: &str, record: Record) {
        let mut inner = self.lock();
        let stamp = next_stamp(&mut inner);
        self.apply(&mut inner, key, Some(record), stamp);
    }

    /// Deletes `key` unconditionally, as a person with the console would.
    pub fn delete(&self, key: &str) {
        let mut inner = self.lock();
        let stamp = next_stamp(&mut inner);
        self.apply(&mut inner, key, None, stamp);
    }

    /// The writes made here since the last drain (only for a replicated table).
    pub fn drain(&self) -> Vec<Change> {
        std::mem::take(&mut self.lock().outbox)
    }

    /// Applies a replicated change: last writer wins by stamp, and the change is not
    /// sent on again.
    pub fn receive(&self, change: &Change) {
        let mut inner = self.lock();
        let newer = inner
            .items
            .get(&change.key)
            .is_none_or(|e| e.stamp < change.stamp);
        if newer {
            match &change.record {
                Some(r) => {
                    inner.items.insert(
                        change.key.clone(),
                        Entry {
                            record: r.clone(),
                            stamp: change.stamp,
                        },
                    );
                }
                None => {
                    inner.items.remove(&change.key);
                }
            }
        }
    }

    /// Sets the stamp the next write gets (at least): a simulation passes its clock
    /// so that last-writer-wins compares the times writes were made.
    pub fn set_clock(&self, now: u128) {
        let mut inner = self.lock();
        inner.counter = inner.counter.max(now);
    }

    pub(super) fn apply(&self, inner: &mut Inner, key: &str, record: Option<Record>, stamp: u128) {
        match &record {
            Some(r) => {
                inner.items.insert(
                    key.to_owned(),
                    Entry {
                        record: r.clone(),
                        stamp,
                    },
                );
            }
            None => {
                inner.items.remove(key);
            }
        }
        if self.replicated {
            inner.outbox.push(Change {
                key: key.to_owned(),
                record,
                stamp,
            });
        }
    }
}

pub(super) fn next_stamp(inner: &mut Inner) -> u128 {
    inner.counter += 1;
    inner.counter
}
