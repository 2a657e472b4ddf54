//! History pages: the audit records, newest first, one bounded page at a time, read
//! from the commit region (the primary's copy when the secondary cannot be read).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::{ActionError, Actuator, ItemStore};
use crate::model::{AuditRecord, Role};

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
pub(super) type HistoryCache = HashMap<(Role, u64), (tokio::time::Instant, AuditRecord)>;

impl Actuator {
    /// One page of audit records, newest first: those with a version below `before`
    /// (all when `None`), at most `limit` (1 to [`HISTORY_MAX_LIMIT`]) of them, from
    /// the secondary (the commit point), falling back to the primary when the
    /// secondary's item cannot be read.
    ///
    /// Reads: the item (one strongly consistent read, for the newest version), then
    /// the audit keys of this page only, never more than `limit`, eventually
    /// consistent and skipping records read in
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
            let mut read = table.audits(&missing, false).await?;
            if missing.contains(&newest) && !read.iter().any(|r| r.version == newest) {
                read.extend(table.audits(&[newest], true).await?);
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
    use crate::action::{Canaries, Commit, Extras, ItemStore, WriteError};
    use crate::config::TablesMode;
    use crate::memory::{MemItemStore, MemTable, Record, TokioWallClock};
    use crate::model::{AppState, ConfigItem, PauseRecord, Trigger, keys};
    use std::sync::{Arc, Mutex};

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
        async fn catch_up(
            &self,
            i: &ConfigItem,
            a: &[AuditRecord],
            from: Option<u64>,
        ) -> Result<(), WriteError> {
            self.inner.catch_up(i, a, from).await
        }
        async fn put_audits(&self, a: &[AuditRecord]) -> Result<(), WriteError> {
            self.inner.put_audits(a).await
        }
        async fn audits(
            &self,
            versions: &[u64],
            consistent: bool,
        ) -> Result<Vec<AuditRecord>, ActionError> {
            if consistent {
                self.strong_keys.fetch_add(versions.len(), Ordering::SeqCst);
                return self.inner.audits(versions, true).await;
            }
            self.eventual_keys
                .fetch_add(versions.len(), Ordering::SeqCst);
            self.eventual_calls.fetch_add(1, Ordering::SeqCst);
            self.largest_call
                .fetch_max(versions.len(), Ordering::SeqCst);
            let upto = *self.eventually_sees_up_to.lock().unwrap();
            let mut records = self.inner.audits(versions, false).await?;
            records.retain(|r| upto.is_none_or(|u| r.version <= u));
            Ok(records)
        }
        async fn read_pause(&self) -> Result<Option<PauseRecord>, ActionError> {
            self.inner.read_pause().await
        }
        async fn write_pause(
            &self,
            expected: Option<u64>,
            new: &PauseRecord,
        ) -> Result<(), WriteError> {
            self.inner.write_pause(expected, new).await
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
            Extras {
                dns: None,
                canaries: Canaries::default(),
                clock: Arc::new(TokioWallClock::new(SystemTime::UNIX_EPOCH)),
                tables: TablesMode::PerRegion,
            },
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
