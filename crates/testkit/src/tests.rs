//! The in-memory table's DynamoDB semantics that the daemon depends on.

use super::{Faults, MemItemStore, MemTable, Record};
use failover_core::model::{AppState, AuditRecord, ConfigItem, Role, Trigger};
use failover_daemon::action::{Commit, ItemStore, WriteError};

fn store() -> MemItemStore {
    let table = MemTable::new();
    table.put(
        "app",
        Record::Item(ConfigItem {
            state: AppState::Active,
            version: 0,
            updated_at: None,
            updated_by: None,
            reason: None,
            expires_at: None,
        }),
    );
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
