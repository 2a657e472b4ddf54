//! The secondary's readiness as a safety rule, on real daemons in this process
//! (in-memory tables, scripted probes and readiness, paused time): with
//! `[readiness] failover = "block"` a secondary found not ready holds a real
//! outage's failover back, with the reason in the verdict, until a check finds it
//! ready; with `"warn"` the failover goes on and its audit record says why the
//! secondary was not ready; a readiness the check could not learn never blocks.

use std::time::Duration;

use failover_core::model::{AppState, Role};
use failover_daemon::readiness::Finding;
use failover_testkit::inproc::{Node, audits, item, primary_down, settings_with, world};

const S: Duration = Duration::from_secs(1);

/// One instance whose readiness rule is `rule`, checked every second.
fn node_with(rule: &str, b: &failover_testkit::MemoryBackend) -> Node {
    let tail = format!("[readiness]\nevery = \"1s\"\nfailover = \"{rule}\"");
    Node::start(settings_with("a", "", &tail), b, 1)
}

fn missing_api() -> Vec<Finding> {
    vec![Finding::NotReady(
        "missing: rest-api photos-config-secondary (secondary)".into(),
    )]
}

#[tokio::test(start_paused = true)]
async fn block_holds_a_real_outages_failover_back_until_the_secondary_is_ready() {
    let b = world();
    b.readiness.set(missing_api());
    let a = node_with("block", &b);
    let s = a
        .wait_for(5 * S, "readiness checked", |s| {
            s.ready && s.secondary_readiness.is_some()
        })
        .await;
    let r = s.secondary_readiness.expect("checked");
    assert!(!r.ready);
    assert_eq!(
        r.reasons,
        ["scripted: missing: rest-api photos-config-secondary (secondary)"]
    );
    assert_eq!(a.metric("failover_monitor_secondary_ready"), 0.0);
    assert!(
        a.metrics
            .render()
            .contains("\nfailover_monitor_secondary_ready 0\n")
    );

    primary_down(&b);
    let s = a
        .wait_for(5 * S, "blocked", |s| {
            s.verdict.starts_with("blocked (secondary_not_ready)")
        })
        .await;
    assert_eq!(
        s.verdict,
        "blocked (secondary_not_ready): active -> failover"
    );
    tokio::time::sleep(10 * S).await;
    assert_eq!(
        item(&b, Role::Secondary).map(|i| i.state),
        Some(AppState::Active),
        "failed over while the secondary was not ready"
    );

    // The secondary is repaired: the next check finds it ready and the outage is
    // failed over.
    b.readiness.set(Vec::new());
    a.wait_for(5 * S, "failed over", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    assert_eq!(a.metric("failover_monitor_secondary_ready"), 1.0);
    let reason = &audits(&b, Role::Secondary)[0].reason;
    assert!(!reason.contains("not ready"), "{reason}");
    a.stop().await;
}

#[tokio::test(start_paused = true)]
async fn warn_fails_over_and_the_audit_record_says_the_secondary_was_not_ready() {
    let b = world();
    b.readiness.set(missing_api());
    let a = node_with("warn", &b);
    a.wait_for(5 * S, "readiness checked", |s| {
        s.secondary_readiness.is_some()
    })
    .await;
    primary_down(&b);
    a.wait_for(5 * S, "failed over", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    let records = audits(&b, Role::Secondary);
    assert_eq!(records.len(), 1);
    assert!(
        records[0].reason.contains("the secondary was not ready")
            && records[0]
                .reason
                .contains("missing: rest-api photos-config-secondary"),
        "{}",
        records[0].reason
    );
    a.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_readiness_the_check_could_not_learn_never_blocks_and_exports_nothing() {
    let b = world();
    b.readiness.set(vec![Finding::Unknown(
        "DescribeTable photos-config: AccessDeniedException: not authorized".into(),
    )]);
    let a = node_with("block", &b);
    let s = a
        .wait_for(5 * S, "readiness checked", |s| {
            s.secondary_readiness.is_some()
        })
        .await;
    let r = s.secondary_readiness.expect("checked");
    assert!(!r.ready);
    assert!(r.reasons[0].starts_with("unknown: "), "{:?}", r.reasons);
    assert!(
        !a.metrics
            .render()
            .contains("failover_monitor_secondary_ready "),
        "an unknown readiness is exported as 0 or 1"
    );
    primary_down(&b);
    a.wait_for(5 * S, "failed over", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    a.stop().await;
}

#[tokio::test(start_paused = true)]
async fn before_the_first_check_nothing_is_exported_and_status_says_none() {
    let b = world();
    // No readiness parts: never checked.
    let a = node_with("block", &b);
    let s = a.wait_for(5 * S, "ready", |s| s.ready).await;
    assert_eq!(s.secondary_readiness, None);
    assert!(
        !a.metrics
            .render()
            .contains("failover_monitor_secondary_ready "),
        "exported before any check"
    );
    primary_down(&b);
    a.wait_for(5 * S, "failed over", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    a.stop().await;
}
