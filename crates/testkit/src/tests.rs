//! The in-memory table's DynamoDB semantics that the daemon depends on.

use super::{Faults, MemItemStore, MemTable, Record};
use failover_core::model::{AppState, AuditRecord, ConfigItem, Role, Trigger};
use failover_daemon::action::{Commit, ItemStore, WriteError};

fn store() -> MemItemStore {
    let table = MemTable::new();
    table.put("app", Record::Item(ConfigItem::seeded(AppState::Active)));
    MemItemStore::new(table, "app", Role::Secondary)
}

fn failover() -> (ConfigItem, AuditRecord) {
    let item = ConfigItem {
        state: AppState::Failover,
        version: 1,
        updated_at: None,
        updated_by: None,
        reason: None,
        expires_at: None,
    };
    let record = AuditRecord {
        version: 1,
        from: AppState::Active,
        to: AppState::Failover,
        at: "2027-01-01T00:00:00Z".into(),
        by: "a".into(),
        trigger: Trigger::Auto,
        reason: "test".into(),
        evidence: serde_json::Value::Null,
        forced: false,
    };
    (item, record)
}

fn commit<'a>(item: &'a ConfigItem, audit: &'a AuditRecord, token: &'a str) -> Commit<'a> {
    Commit {
        from: AppState::Active,
        expected: 0,
        item,
        audit,
        fence: None,
        token,
    }
}

/// DynamoDB answers success to a repeat of a token within ten minutes without
/// applying again, and forgets the token after them.
#[tokio::test(start_paused = true)]
async fn a_token_is_remembered_for_ten_minutes() {
    let s = store();
    let (item, audit) = failover();
    s.compare_and_set(commit(&item, &audit, "t1"))
        .await
        .unwrap();
    tokio::time::advance(std::time::Duration::from_secs(590)).await;
    s.compare_and_set(commit(&item, &audit, "t1"))
        .await
        .unwrap();
    tokio::time::advance(std::time::Duration::from_secs(20)).await;
    let again = s.compare_and_set(commit(&item, &audit, "t1")).await;
    assert!(matches!(again, Err(WriteError::Conflict)), "{again:?}");
}

/// `remembers_token` tells a replay from an apply (the simulation's commit log
/// relies on it): a token applied is remembered for ten minutes, one refused never.
#[tokio::test(start_paused = true)]
async fn the_table_says_which_tokens_a_replay_would_answer() {
    let s = store();
    let (item, audit) = failover();
    assert!(!s.table.remembers_token("t1"));
    s.compare_and_set(commit(&item, &audit, "t1"))
        .await
        .unwrap();
    assert!(s.table.remembers_token("t1"));
    let refused = s.compare_and_set(commit(&item, &audit, "t2")).await;
    assert!(matches!(refused, Err(WriteError::Conflict)), "{refused:?}");
    assert!(!s.table.remembers_token("t2"));
    tokio::time::advance(std::time::Duration::from_secs(600)).await;
    assert!(!s.table.remembers_token("t1"));
}

/// A catch-up from version f moves the copy only while it holds the commit
/// region's audit record of f: one that exists and, when its time is known, was
/// written then. A copy at f with none, or with another (written before a reset),
/// is a conflict, and nothing is written. More records than fit are refused.
#[tokio::test(start_paused = true)]
async fn a_catch_up_from_a_version_needs_that_versions_record() {
    use failover_daemon::action::{AUDITS_PER_WRITE, CopyFrom};
    let table = MemTable::new();
    let (v1, r1) = failover();
    table.put("app", Record::Item(v1));
    let copy = MemItemStore::new(table.clone(), "app", Role::Primary);
    let v2 = ConfigItem {
        state: AppState::Active,
        version: 2,
        ..copy.read().await.unwrap().unwrap()
    };
    let r2 = AuditRecord {
        version: 2,
        from: AppState::Failover,
        to: AppState::Active,
        ..r1.clone()
    };
    // from version 0 nothing is checked: there is no record 0
    let seeded = MemItemStore::new(MemTable::new(), "app", Role::Primary);
    seeded
        .catch_up(
            &copy.read().await.unwrap().unwrap(),
            std::slice::from_ref(&r1),
            CopyFrom::At {
                version: 0,
                at: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(seeded.read().await.unwrap().map(|i| i.version), Some(1));
    let at = |at| CopyFrom::At { version: 1, at };
    let conflict = async |from, why: &str| {
        let refused = copy.catch_up(&v2, std::slice::from_ref(&r2), from).await;
        assert!(
            matches!(refused, Err(WriteError::Conflict)),
            "{why}: {refused:?}"
        );
        assert_eq!(
            copy.read().await.unwrap().map(|i| i.version),
            Some(1),
            "{why}"
        );
        assert!(table.get("app#audit#2").is_none(), "{why}");
    };
    conflict(at(None), "no record 1").await;
    table.put(
        "app#audit#1",
        Record::Audit(AuditRecord {
            at: "2026-01-01T00:00:00Z".into(),
            ..r1.clone()
        }),
    );
    conflict(at(Some(r1.at.as_str())), "another life's record 1").await;
    let many = vec![r2.clone(); AUDITS_PER_WRITE];
    let refused = copy.catch_up(&v2, &many, at(None)).await;
    assert!(matches!(refused, Err(WriteError::Failed(_))), "{refused:?}");
    assert_eq!(copy.read().await.unwrap().map(|i| i.version), Some(1));
    table.put("app#audit#1", Record::Audit(r1.clone()));
    copy.catch_up(&v2, std::slice::from_ref(&r2), at(Some(r1.at.as_str())))
        .await
        .unwrap();
    assert_eq!(copy.read().await.unwrap().map(|i| i.version), Some(2));
    assert!(table.get("app#audit#2").is_some());
}

/// A put of more audit records than one transaction holds is refused whole: no
/// record is written, none is dropped without a word.
#[tokio::test(start_paused = true)]
async fn a_put_of_more_records_than_fit_is_refused_whole() {
    use failover_daemon::action::AUDITS_PER_WRITE;
    let s = store();
    let (_, audit) = failover();
    let records: Vec<AuditRecord> = (1..=AUDITS_PER_WRITE as u64 + 1)
        .map(|version| AuditRecord {
            version,
            ..audit.clone()
        })
        .collect();
    let refused = s.put_audits(&records).await;
    assert!(matches!(refused, Err(WriteError::Failed(_))), "{refused:?}");
    assert!(s.table.get("app#audit#1").is_none(), "nothing written");
    s.put_audits(&records[..AUDITS_PER_WRITE]).await.unwrap();
    let last = format!("app#audit#{AUDITS_PER_WRITE}");
    assert!(
        s.table.get(&last).is_some(),
        "a full transaction is written"
    );
}

/// A throttled transaction writes nothing and is told apart from a lost race.
#[tokio::test(start_paused = true)]
async fn a_throttled_transaction_writes_nothing() {
    let s = store();
    s.table.set_faults(Faults {
        throttle: 1,
        ..Default::default()
    });
    let (item, audit) = failover();
    let first = s.compare_and_set(commit(&item, &audit, "t1")).await;
    assert!(matches!(first, Err(WriteError::Busy(_))), "{first:?}");
    assert_eq!(s.read().await.unwrap().map(|i| i.version), Some(0));
    s.compare_and_set(commit(&item, &audit, "t1"))
        .await
        .unwrap();
    assert_eq!(s.read().await.unwrap().map(|i| i.version), Some(1));
}

/// A transaction in progress holds its items: a second one on any of them is
/// cancelled with `TransactionConflict` on that item (and `None` on the others),
/// writes nothing and is told apart from a lost race; the first applies whatever
/// becomes of its caller.
#[tokio::test(start_paused = true)]
async fn overlapping_transactions_cancel_the_later_one() {
    let s = store();
    s.table
        .set_transaction_time(std::time::Duration::from_millis(30));
    let (item, audit) = failover();
    let first = {
        let s = s.clone();
        let (item, audit) = (item.clone(), audit.clone());
        tokio::spawn(async move { s.compare_and_set(commit(&item, &audit, "t1")).await })
    };
    tokio::task::yield_now().await;
    assert_eq!(
        s.table.in_progress(),
        vec!["app".to_owned(), "app#audit#1".to_owned()]
    );
    let second = s.compare_and_set(commit(&item, &audit, "t2")).await;
    assert!(matches!(second, Err(WriteError::Busy(_))), "{second:?}");
    assert_eq!(s.read().await.unwrap().map(|i| i.version), Some(0));
    // the same token again while the first is in progress
    let again = s.compare_and_set(commit(&item, &audit, "t1")).await;
    assert!(
        matches!(&again, Err(WriteError::Failed(e)) if e.to_string().contains("TransactionInProgress")),
        "{again:?}"
    );
    first.abort();
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    assert_eq!(s.read().await.unwrap().map(|i| i.version), Some(1));
    assert!(s.table.in_progress().is_empty());
}

/// A single-item write to an item in a transaction's hands fails with
/// `TransactionConflictException`, as DynamoDB answers PutItem and UpdateItem.
#[tokio::test(start_paused = true)]
async fn a_single_write_to_an_item_in_a_transaction_fails() {
    let s = store();
    s.table
        .set_transaction_time(std::time::Duration::from_millis(30));
    assert!(s.table.foreign_transaction(&["app#pause"]));
    assert!(!s.table.foreign_transaction(&["app#pause"]), "it is taken");
    let pause = failover_core::model::PauseRecord {
        paused: true,
        by: "ops".into(),
        reason: "test".into(),
        at: "2027-01-01T00:00:00Z".into(),
        seq: 1,
        until: None,
    };
    let r = s.write_pause(None, &pause).await;
    assert!(
        matches!(&r, Err(WriteError::Failed(e)) if e.to_string().contains("TransactionConflict")),
        "{r:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    s.write_pause(None, &pause).await.unwrap();
}

/// Request-level throttling refuses reads and writes alike, for as long as it lasts.
#[tokio::test(start_paused = true)]
async fn a_throttled_request_rate_refuses_reads_and_writes() {
    let s = store();
    s.table.set_faults(Faults {
        throttle_requests_until: Some(
            tokio::time::Instant::now() + std::time::Duration::from_secs(2),
        ),
        ..Default::default()
    });
    let read = s.read().await;
    assert!(
        matches!(&read, Err(e) if e.to_string().contains("ThrottlingException")),
        "{read:?}"
    );
    let (item, audit) = failover();
    let write = s.compare_and_set(commit(&item, &audit, "t1")).await;
    assert!(matches!(write, Err(WriteError::Failed(_))), "{write:?}");
    assert!(s.table.requests_refused());
    tokio::time::advance(std::time::Duration::from_secs(2)).await;
    assert_eq!(s.read().await.unwrap().map(|i| i.version), Some(0));
}

/// Keys a `BatchGetItem` round leaves unprocessed are asked again; when some are
/// still left after four rounds, the read fails rather than answer part of them.
#[tokio::test(start_paused = true)]
async fn unprocessed_keys_are_asked_again_or_the_read_fails() {
    let s = store();
    let (_, audit) = failover();
    let records: Vec<AuditRecord> = (1..=4)
        .map(|version| AuditRecord {
            version,
            ..audit.clone()
        })
        .collect();
    s.put_audits(&records).await.unwrap();
    s.table.set_faults(Faults {
        unprocessed: 2,
        ..Default::default()
    });
    let all = s.audits(&[1, 2, 3, 4], true).await.unwrap();
    assert_eq!(all.len(), 4, "two partial rounds, then the rest");
    s.table.set_faults(Faults {
        unprocessed: 10,
        ..Default::default()
    });
    let r = s.audits(&[1, 2, 3, 4], true).await;
    assert!(
        matches!(&r, Err(e) if e.to_string().contains("unprocessed")),
        "{r:?}"
    );
}
