//! Recovery reports: real daemons in this process on in-memory regions and paused
//! time. The report's timeline agrees with the audit record and with what the
//! client path saw; it is stored beside the audit record in the commit region and
//! follows it to the primary's copy, also when that copy could not be written at
//! once.

use std::time::{Duration, SystemTime};

use failover_core::model::{AppState, ConfigItem, Role, Trigger, keys};
use failover_core::overrides::parse;
use failover_core::report::{EventKind, Report};
use failover_daemon::control::Request;
use failover_testkit::inproc::{APP, Node, audits, primary_down, settings, world};
use failover_testkit::{Answer, MemoryBackend, Record, client_part};

fn stored(b: &MemoryBackend, role: Role, version: u64) -> Option<Report> {
    match b.table(role).get(&keys::report(APP, version)) {
        Some(Record::Report(r)) => Some(*r),
        _ => None,
    }
}

fn at(r: &Report, kind: EventKind, region: Option<Role>) -> SystemTime {
    r.first(kind, region)
        .and_then(|e| parse(&e.at))
        .unwrap_or_else(|| panic!("no {kind:?} ({region:?}) in {r:#?}"))
}

async fn complete(b: &MemoryBackend, role: Role, version: u64) -> Report {
    for _ in 0..600 {
        if let Some(r) = stored(b, role, version).filter(|r| r.complete) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no complete report of version {version} in the {role}");
}

#[tokio::test(start_paused = true)]
async fn a_failover_report_agrees_with_the_audit_record_and_the_client_path() {
    let b = world();
    let node = Node::start(settings("a", ""), &b, 1);
    node.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    // The RPO canary: one written and carried to the secondary (as replication
    // would), then a newer one that is not.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let canary = keys::rpo_canary(APP);
    let replicated = b
        .table(Role::Primary)
        .get(&canary)
        .expect("a canary written");
    b.table(Role::Secondary).put(&canary, replicated);
    tokio::time::sleep(Duration::from_secs(10)).await;
    // The secondary's state API lags its table by a second, as a client sees it.
    b.script.set(
        &client_part(Role::Secondary, "state"),
        Answer::Fail("502".into()),
    );
    primary_down(&b);
    node.wait_for(Duration::from_secs(10), "failover", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.script
        .set(&client_part(Role::Secondary, "state"), Answer::Ok);
    let r = complete(&b, Role::Secondary, 1).await;
    let record = audits(&b, Role::Secondary).pop().expect("the audit record");
    assert_eq!(
        (r.version, r.from, r.to, r.by.as_str()),
        (1, AppState::Active, AppState::Failover, "a")
    );
    assert_eq!(r.reason, record.reason);
    // Onset, quorum, decision, commit, in that order; the commit after the record's
    // time (prepared before the write) and within a second of it.
    let onset = at(&r, EventKind::FirstFailedProbe, Some(Role::Primary));
    let quorum = at(&r, EventKind::QuorumReached, None);
    let decision = at(&r, EventKind::Decision, None);
    let committed = at(&r, EventKind::Committed, Some(Role::Secondary));
    let prepared = parse(&record.at).expect("the record's time");
    assert!(
        onset <= quorum && quorum <= decision && decision <= committed,
        "{r:#?}"
    );
    assert!(
        prepared <= committed
            && committed.duration_since(prepared).unwrap() < Duration::from_secs(1)
    );
    // Three failures 100 ms apart and the timeout: the onset is under a second earlier.
    assert!(
        decision.duration_since(onset).unwrap() < Duration::from_secs(1),
        "{r:#?}"
    );
    assert!(at(&r, EventKind::PrimaryCopyUpdated, Some(Role::Primary)) >= committed);
    // The primary's state API answered at once; the secondary's once it stopped failing.
    let p = at(&r, EventKind::StateApiAnswered, Some(Role::Primary));
    let s = at(&r, EventKind::StateApiAnswered, Some(Role::Secondary));
    assert!(p < committed + Duration::from_millis(600), "{r:#?}");
    assert!(
        s.duration_since(committed).unwrap() >= Duration::from_secs(1),
        "{r:#?}"
    );
    let write = at(&r, EventKind::ClientWrite, Some(Role::Secondary));
    let rto = r.rto.clone().expect("a recovery time");
    assert_eq!(
        (rto.from, rto.until),
        (EventKind::FirstFailedProbe, EventKind::ClientWrite)
    );
    assert_eq!(
        u128::from(rto.ms),
        write.duration_since(onset).unwrap().as_millis()
    );
    let rpo = r.rpo.clone().expect("an RPO statement");
    assert_eq!(rpo.lag_ms, Some(10_000), "{rpo:#?}");
    let seen = parse(rpo.newest_seen.as_deref().unwrap_or_default()).expect("seen");
    assert_eq!(
        u128::from(rpo.bound_ms.unwrap_or_default()),
        decision.duration_since(seen).unwrap().as_millis()
    );
    assert!(
        rpo.what.starts_with("one canary key (config: app-1#rpo)"),
        "{}",
        rpo.what
    );
    assert!(
        r.notes.iter().any(|n| n.contains("no [route53] record")),
        "{:?}",
        r.notes
    );
    assert_eq!(
        node.metric("failover_monitor_last_recovery_seconds"),
        rto.ms as f64 / 1000.0
    );
    // The primary's copy carries the same report.
    assert_eq!(complete(&b, Role::Primary, 1).await, r);
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_report_reaches_a_primary_copy_that_could_not_be_written_at_once() {
    let b = world();
    let node = Node::start(settings("a", ""), &b, 1);
    node.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    primary_down(&b);
    b.table(Role::Primary).set_down(true);
    node.wait_for(Duration::from_secs(10), "failover", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    let r = complete(&b, Role::Secondary, 1).await;
    assert!(!r.has(EventKind::PrimaryCopyUpdated, None), "{r:#?}");
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("primary state API did not answer failover")),
        "{:?}",
        r.notes
    );
    assert_eq!(stored(&b, Role::Primary, 1), None);
    b.table(Role::Primary).set_down(false);
    assert_eq!(complete(&b, Role::Primary, 1).await, r);
    node.stop().await;
}

/// The documented repair of a reset below versions already used (the item re-seeded
/// without a version, the stale audit records removed) lets the next failover reuse
/// version 1: its report replaces the stale complete one, as its audit record did,
/// while a draft never replaces the final report of its own transition.
#[tokio::test(start_paused = true)]
async fn after_a_reset_the_report_of_a_reused_version_replaces_the_stale_one() {
    let b = world();
    let node = Node::start(settings("a", ""), &b, 1);
    node.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    node.handle
        .ask(|reply| Request::Move {
            to: AppState::Failover,
            reason: "by hand".into(),
            force: true,
            caller: "ana".into(),
            reply,
            lasts: None,
        })
        .await
        .expect("the loop answers")
        .expect("moved");
    let stale = complete(&b, Role::Secondary, 1).await;
    assert_eq!(stale.trigger, Trigger::Manual);
    // The reset and its repair: active without a version, no audit record 1.
    b.seed_item(APP, &ConfigItem::seeded(AppState::Active));
    for role in Role::BOTH {
        b.table(role).delete(&keys::audit(APP, 1));
    }
    node.wait_for(Duration::from_secs(5), "the reset taken in", |s| {
        s.item.as_ref().is_some_and(|i| i.version == 0)
    })
    .await;
    primary_down(&b);
    node.wait_for(
        Duration::from_secs(10),
        "failover at version 1 again",
        |s| {
            s.item
                .as_ref()
                .is_some_and(|i| i.state == AppState::Failover && i.version == 1)
        },
    )
    .await;
    let mut fresh = stale.clone();
    for _ in 0..600 {
        fresh = stored(&b, Role::Secondary, 1).expect("a report of version 1");
        if fresh.complete && fresh != stale {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let record = audits(&b, Role::Secondary)
        .pop()
        .expect("the new audit record");
    assert_eq!(
        (fresh.trigger, fresh.by.as_str(), fresh.complete),
        (Trigger::Auto, "a", true),
        "{fresh:#?}"
    );
    assert_eq!(fresh.reason, record.reason);
    node.stop().await;
}

/// The report of a version is the commit region's, or else the primary's copy (the
/// commit region lacking it); the newest report at or below a version looks no
/// deeper than it is asked to.
#[tokio::test(start_paused = true)]
async fn a_report_missing_in_the_commit_region_is_read_from_the_primary_and_no_deeper_than_asked() {
    let b = world();
    let node = Node::start(settings("a", ""), &b, 1);
    node.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    primary_down(&b);
    let report = complete(&b, Role::Secondary, 1).await;
    node.kill();
    let key = keys::report(APP, 1);
    b.table(Role::Primary)
        .put(&key, Record::Report(Box::new(report.clone())));
    b.table(Role::Secondary).delete(&key);
    let act = failover_daemon::backend::actuator(&b, &settings("a", ""), 1);
    let found = act.report(1).await.expect("read");
    assert_eq!(found.map(|r| (r.version, r.to)), Some((1, report.to)));
    b.table(Role::Secondary)
        .put(&key, Record::Report(Box::new(report)));
    let shallow = act.newest_report(3, 2).await.expect("read");
    assert_eq!(shallow.map(|r| r.version), None, "versions 3 and 2 only");
    let deep = act.newest_report(3, 3).await.expect("read");
    assert_eq!(deep.map(|r| r.version), Some(1));
}
