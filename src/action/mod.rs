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

use std::collections::HashMap;
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

/// Most audit records one history page holds (and one history call reads).
pub const HISTORY_MAX_LIMIT: usize = 50;
/// Records per history page when the caller does not say.
pub const HISTORY_DEFAULT_LIMIT: usize = 20;
/// How long a history read keeps records it read (they never change; the bound only
/// lets a record deleted by hand disappear from the answers).
pub const HISTORY_CACHE_TTL: Duration = Duration::from_secs(60);
/// Most records the history cache holds.
const HISTORY_CACHE_SIZE: usize = 500;

/// One page of audit records, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistoryPage {
    pub records: Vec<AuditRecord>,
    /// `before` for the next, older page; `None` when this one reaches version 1.
    pub next_before: Option<u64>,
}

/// Audit records recently read, by region and version, with when they were read.
type HistoryCache = HashMap<(Role, u64), (tokio::time::Instant, AuditRecord)>;

pub struct Actuator {
    primary: Arc<dyn ItemStore>,
    secondary: Arc<dyn ItemStore>,
    dns: Option<Arc<dyn DnsRecord>>,
    clock: Arc<dyn WallClock>,
    /// Canary nonces.
    rng: Mutex<fastrand::Rng>,
    /// A std mutex: held only to copy records in or out, never across an await.
    history_cache: Mutex<HistoryCache>,
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
            history_cache: Mutex::new(HashMap::new()),
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

    /// One page of audit records, newest first: those with a version below `before`
    /// (all when `None`), at most `limit` (1 to [`HISTORY_MAX_LIMIT`]) of them, from
    /// the secondary (the commit point), falling back to the primary when the
    /// secondary's item cannot be read.
    ///
    /// Reads: the item (one strongly consistent read, for the newest version), then
    /// the audit keys of this page only, never more than `limit`, eventually
    /// consistent ([`ItemStore::audits_eventually`]) and skipping records read in
    /// the last [`HISTORY_CACHE_TTL`]. The newest version's record, when that read
    /// misses it (it may be a moment old), is read once more, strongly consistent.
    /// A page holds fewer than `limit` records when versions have none (an item
    /// re-seeded by hand); `next_before` goes on past such gaps.
    pub async fn history(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<HistoryPage, ActionError> {
        let limit = limit.clamp(1, HISTORY_MAX_LIMIT) as u64;
        let mut last_err = None;
        for table in [&self.secondary, &self.primary] {
            let newest = match table.read().await {
                Ok(Some(item)) => item.version,
                Ok(None) => return Ok(HistoryPage::default()),
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let high = before.map_or(newest, |b| b.saturating_sub(1).min(newest));
            if high == 0 {
                return Ok(HistoryPage::default());
            }
            let low = high.saturating_sub(limit - 1).max(1);
            let records = self.page(table.as_ref(), low, high, newest).await?;
            return Ok(HistoryPage {
                records,
                next_before: (low > 1).then_some(low),
            });
        }
        Err(last_err.unwrap_or(ActionError::Missing {
            region: Role::Secondary,
        }))
    }

    /// The audit records of versions `low..=high` in `table`, newest first.
    async fn page(
        &self,
        table: &dyn ItemStore,
        low: u64,
        high: u64,
        newest: u64,
    ) -> Result<Vec<AuditRecord>, ActionError> {
        let role = table.role();
        let now = tokio::time::Instant::now();
        let mut found: Vec<AuditRecord> = Vec::new();
        let mut missing: Vec<u64> = Vec::new();
        {
            let cache = self.history_cache.lock().unwrap_or_else(|e| e.into_inner());
            for v in (low..=high).rev() {
                match cache.get(&(role, v)) {
                    Some((at, r)) if now.duration_since(*at) < HISTORY_CACHE_TTL => {
                        found.push(r.clone())
                    }
                    _ => missing.push(v),
                }
            }
        }
        if !missing.is_empty() {
            let mut read = table.audits_eventually(&missing).await?;
            if missing.contains(&newest) && !read.iter().any(|r| r.version == newest) {
                read.extend(table.audits(&[newest]).await?);
            }
            let mut cache = self.history_cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|_, (at, _)| now.duration_since(*at) < HISTORY_CACHE_TTL);
            if cache.len() + read.len() > HISTORY_CACHE_SIZE {
                cache.clear();
            }
            for r in &read {
                cache.insert((role, r.version), (now, r.clone()));
            }
            // Only what was asked for, whatever the store answered.
            found.extend(
                read.into_iter()
                    .filter(|r| (low..=high).contains(&r.version)),
            );
        }
        found.sort_by_key(|r| std::cmp::Reverse(r.version));
        found.dedup_by_key(|r| r.version);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::SystemTime;

    use async_trait::async_trait;

    use super::*;
    use crate::memory::{MemItemStore, MemTable, Record, TokioWallClock};
    use crate::model::keys;

    const APP: &str = "app";

    /// A region's store that counts the audit keys read each way, and whose
    /// eventually consistent reads can miss the records above a version (as they may
    /// for a record committed a moment ago).
    struct Counting {
        inner: MemItemStore,
        strong_keys: AtomicUsize,
        eventual_keys: AtomicUsize,
        eventual_calls: AtomicUsize,
        largest_call: AtomicUsize,
        eventually_sees_up_to: Mutex<Option<u64>>,
    }

    impl Counting {
        fn new(table: &MemTable, role: Role) -> Arc<Self> {
            Arc::new(Self {
                inner: MemItemStore::new(table.clone(), APP, role),
                strong_keys: AtomicUsize::new(0),
                eventual_keys: AtomicUsize::new(0),
                eventual_calls: AtomicUsize::new(0),
                largest_call: AtomicUsize::new(0),
                eventually_sees_up_to: Mutex::new(None),
            })
        }

        fn counts(&self) -> (usize, usize) {
            (
                self.eventual_keys.swap(0, Ordering::SeqCst),
                self.strong_keys.swap(0, Ordering::SeqCst),
            )
        }
    }

    #[async_trait]
    impl ItemStore for Counting {
        fn role(&self) -> Role {
            self.inner.role()
        }
        async fn read(&self) -> Result<Option<ConfigItem>, ActionError> {
            self.inner.read().await
        }
        async fn compare_and_set(&self, c: Commit<'_>) -> Result<(), WriteError> {
            self.inner.compare_and_set(c).await
        }
        async fn catch_up(&self, i: &ConfigItem, a: &[AuditRecord]) -> Result<(), WriteError> {
            self.inner.catch_up(i, a).await
        }
        async fn audits(&self, versions: &[u64]) -> Result<Vec<AuditRecord>, ActionError> {
            self.strong_keys.fetch_add(versions.len(), Ordering::SeqCst);
            self.inner.audits(versions).await
        }
        async fn audits_eventually(
            &self,
            versions: &[u64],
        ) -> Result<Vec<AuditRecord>, ActionError> {
            self.eventual_keys
                .fetch_add(versions.len(), Ordering::SeqCst);
            self.eventual_calls.fetch_add(1, Ordering::SeqCst);
            self.largest_call
                .fetch_max(versions.len(), Ordering::SeqCst);
            let upto = *self.eventually_sees_up_to.lock().unwrap();
            let mut records = self.inner.audits(versions).await?;
            records.retain(|r| upto.is_none_or(|u| r.version <= u));
            Ok(records)
        }
        async fn put_canary(&self, nonce: &str) -> Result<(), ActionError> {
            self.inner.put_canary(nonce).await
        }
        async fn read_canary(&self) -> Result<Option<String>, ActionError> {
            self.inner.read_canary().await
        }
    }

    fn record(version: u64) -> AuditRecord {
        AuditRecord {
            version,
            from: AppState::Active,
            to: AppState::Failover,
            at: "2026-01-01T00:00:00Z".into(),
            by: "test".into(),
            trigger: Trigger::Manual,
            reason: format!("move {version}"),
            evidence: serde_json::json!({}),
            forced: false,
        }
    }

    /// Both regions with the item at `newest` and the audit records of `versions`.
    fn world(
        newest: u64,
        versions: impl Iterator<Item = u64> + Clone,
    ) -> (Actuator, [MemTable; 2], Arc<Counting>, Arc<Counting>) {
        let tables = [MemTable::new(), MemTable::new()];
        for t in &tables {
            t.put(
                APP,
                Record::Item(ConfigItem {
                    state: AppState::Failover,
                    version: newest,
                    updated_at: None,
                    updated_by: None,
                    reason: None,
                }),
            );
            for v in versions.clone() {
                t.put(&keys::audit(APP, v), Record::Audit(record(v)));
            }
        }
        let primary = Counting::new(&tables[0], Role::Primary);
        let secondary = Counting::new(&tables[1], Role::Secondary);
        let act = Actuator::new(
            primary.clone(),
            secondary.clone(),
            None,
            Arc::new(TokioWallClock::new(SystemTime::UNIX_EPOCH)),
            1,
        );
        (act, tables, primary, secondary)
    }

    fn versions(page: &HistoryPage) -> Vec<u64> {
        page.records.iter().map(|r| r.version).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn history_pages_read_one_page_of_keys_eventually_consistent() {
        let (act, _, _, s) = world(30, 1..=30);
        let first = act.history(20, None).await.unwrap();
        assert_eq!(versions(&first), (11..=30).rev().collect::<Vec<_>>());
        assert_eq!(first.next_before, Some(11));
        assert_eq!(
            s.counts(),
            (20, 0),
            "20 eventually consistent keys, no strong one"
        );
        let second = act.history(20, first.next_before).await.unwrap();
        assert_eq!(versions(&second), (1..=10).rev().collect::<Vec<_>>());
        assert_eq!(second.next_before, None);
        assert_eq!(s.counts(), (10, 0));
        // `before` in the middle, and past the newest version
        let mid = act.history(2, Some(5)).await.unwrap();
        assert_eq!((versions(&mid), mid.next_before), (vec![4, 3], Some(3)));
        let past = act.history(3, Some(1_000)).await.unwrap();
        assert_eq!(
            (versions(&past), past.next_before),
            (vec![30, 29, 28], Some(28))
        );
        for empty in [Some(1), Some(0)] {
            assert_eq!(act.history(5, empty).await.unwrap(), HistoryPage::default());
        }
        // the limit is bounded whatever the caller asks
        let big = act.history(10_000, None).await.unwrap();
        assert_eq!(big.records.len(), HISTORY_MAX_LIMIT.min(30));
        assert!(s.largest_call.load(Ordering::SeqCst) <= HISTORY_MAX_LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn records_already_read_are_not_read_again_for_a_while() {
        let (act, _, _, s) = world(30, 1..=30);
        act.history(20, None).await.unwrap();
        assert_eq!(s.counts(), (20, 0));
        let again = act.history(20, None).await.unwrap();
        assert_eq!(versions(&again), (11..=30).rev().collect::<Vec<_>>());
        assert_eq!(s.counts(), (0, 0), "served from the cache");
        // an overlapping page reads only what it lacks
        act.history(25, None).await.unwrap();
        assert_eq!(s.counts(), (5, 0));
        tokio::time::advance(HISTORY_CACHE_TTL).await;
        act.history(20, None).await.unwrap();
        assert_eq!(s.counts(), (20, 0), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn a_newest_record_the_eventual_read_misses_is_read_strongly() {
        let (act, _, _, s) = world(30, 1..=30);
        *s.eventually_sees_up_to.lock().unwrap() = Some(29);
        let page = act.history(5, None).await.unwrap();
        assert_eq!(versions(&page), vec![30, 29, 28, 27, 26]);
        assert_eq!(s.counts(), (5, 1), "one key read again, strongly");
        // an older page does not include the newest version: nothing strong
        act.history(5, Some(20)).await.unwrap();
        assert_eq!(s.counts(), (5, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn gaps_make_short_pages_and_paging_goes_on_past_them() {
        // versions 6 to 15 have no record (the item was re-seeded by hand, say)
        let (act, _, _, s) = world(20, (1..=5).chain(16..=20));
        let first = act.history(10, None).await.unwrap();
        assert_eq!(versions(&first), vec![20, 19, 18, 17, 16]);
        assert_eq!(first.next_before, Some(11));
        let second = act.history(10, first.next_before).await.unwrap();
        assert_eq!(versions(&second), vec![5, 4, 3, 2, 1]);
        assert_eq!(second.next_before, None);
        assert_eq!(s.counts(), (20, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn history_falls_back_to_the_primary_when_the_secondary_is_down() {
        let (act, tables, p, _) = world(3, 1..=3);
        tables[1].set_down(true);
        let page = act.history(20, None).await.unwrap();
        assert_eq!(versions(&page), vec![3, 2, 1]);
        assert_eq!(p.counts(), (3, 0));
        tables[0].set_down(true);
        assert!(matches!(
            act.history(20, None).await,
            Err(ActionError::Unavailable { .. })
        ));
    }
}
