//! History pages on the in-memory tables, with paused time: one bounded page of
//! audit keys per call, eventually consistent, a cache, and the strongly consistent
//! read of a newest record the eventual read missed.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;

use failover_config::TablesMode;
use failover_core::model::{AppState, AuditRecord, ConfigItem, PauseRecord, Role, Trigger, keys};
use failover_daemon::action::{
    ActionError, Actuator, Canaries, Commit, CopyFrom, Extras, HISTORY_CACHE_TTL,
    HISTORY_MAX_LIMIT, HistoryPage, ItemStore, WriteError,
};
use failover_testkit::{MemItemStore, MemTable, Record, TokioWallClock};
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
        from: CopyFrom<'_>,
    ) -> Result<(), WriteError> {
        self.inner.catch_up(i, a, from).await
    }
    async fn follow_reset(&self, e: &ConfigItem, i: &ConfigItem) -> Result<(), WriteError> {
        self.inner.follow_reset(e, i).await
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
                expires_at: None,
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

/// The cache holds up to 500 records (ten full pages) and then starts again: ten
/// pages read one after the other are all still served from it; an eleventh page
/// empties it first, so the first page is read again.
#[tokio::test(start_paused = true)]
async fn the_cache_keeps_ten_pages_and_no_more() {
    let (act, _, _, s) = world(600, 1..=600);
    let mut before = None;
    for _ in 0..10 {
        before = act.history(50, before).await.unwrap().next_before;
    }
    assert_eq!(before, Some(101));
    assert_eq!(s.counts(), (500, 0));
    let first = act.history(50, None).await.unwrap();
    assert_eq!(versions(&first), (551..=600).rev().collect::<Vec<_>>());
    assert_eq!(s.counts(), (0, 0), "ten pages, all in the cache");
    act.history(50, before).await.unwrap();
    assert_eq!(s.counts(), (50, 0), "the eleventh page is read");
    act.history(50, None).await.unwrap();
    assert_eq!(s.counts(), (50, 0), "the cache started again");
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
