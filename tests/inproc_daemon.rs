//! The real decision loop, policy, coordination and actuator, several instances in
//! one process, on in-memory stores with DynamoDB's semantics and scripted probes,
//! with tokio's clock paused: no emulator, no sleeps, no log reading. Assertions are
//! on `Status`, the stores and the metrics.

use std::time::Duration;

use failover_config::Settings;
use failover_core::model::{AppState, Role, keys};
use failover_core::policy::{Health, Refusal};
use failover_daemon::control::{MoveError, Request};
use failover_testkit::inproc::{
    APP, Node, audits, coordinated, primary_down, primary_up, settings, world,
};
use failover_testkit::{Answer, Faults, Record};

#[tokio::test(start_paused = true)]
async fn a_primary_outage_is_failed_over_and_both_copies_follow() {
    let b = world();
    let node = Node::start(settings("a", ""), &b, 1);
    node.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    primary_down(&b);
    let s = node
        .wait_for(Duration::from_secs(5), "failover", |s| {
            s.item
                .as_ref()
                .is_some_and(|i| i.state == AppState::Failover)
        })
        .await;
    assert_eq!(s.item.as_ref().map(|i| i.version), Some(1));
    for role in Role::BOTH {
        let item = failover_testkit::inproc::item(&b, role).expect("item");
        assert_eq!(
            (item.state, item.version),
            (AppState::Failover, 1),
            "{role}"
        );
        let records = audits(&b, role);
        assert_eq!(records.len(), 1, "{role}: {records:?}");
        assert_eq!(records[0].by, "a");
    }
    assert_eq!(node.transitions(), 1);
    // The outage goes on: nothing more happens.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(b.item(APP, Role::Secondary).map(|i| i.version), Some(1));
    assert_eq!(node.transitions(), 1);
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn two_uncoordinated_instances_race_and_exactly_one_wins() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    let c = Node::start(settings("c", ""), &b, 2);
    for n in [&a, &c] {
        n.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
            .await;
    }
    primary_down(&b);
    for n in [&a, &c] {
        n.wait_for(Duration::from_secs(5), "both see the failover", |s| {
            s.item
                .as_ref()
                .is_some_and(|i| i.state == AppState::Failover)
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a.transitions() + c.transitions(), 1, "exactly one commit");
    let item = b.item(APP, Role::Secondary).expect("item");
    assert_eq!(item.version, 1);
    assert_eq!(audits(&b, Role::Secondary).len(), 1);
    a.stop().await;
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_deposed_leader_commits_nothing() {
    let b = world();
    // A long lease: the leader goes on believing in it for seconds after losing it.
    let node = Node::start(coordinated("a", &["a"], "30s"), &b, 1);
    let s = node
        .wait_for(Duration::from_secs(5), "leader", |s| s.is_leader && s.ready)
        .await;
    assert_eq!(s.leader.as_deref(), Some("a"));
    // Someone takes the lease over behind its back (the next token).
    let lease = keys::lease(APP);
    let Some(Record::Lease(mut l)) = b.table(Role::Secondary).get(&lease) else {
        panic!("no lease");
    };
    l.owner = "b".into();
    l.token += 1;
    b.table(Role::Secondary).put(&lease, Record::Lease(l));
    primary_down(&b);
    let s = node
        .wait_for(Duration::from_secs(5), "sees the new owner", |s| {
            s.leader.as_deref() == Some("b")
        })
        .await;
    assert!(!s.is_leader);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.item(APP, Role::Secondary).map(|i| i.version), Some(0));
    assert!(audits(&b, Role::Secondary).is_empty());
    assert_eq!(node.transitions(), 0);
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reload_applies_a_new_mode_and_refuses_a_new_identity() {
    let b = world();
    let node = Node::start(settings("a", ""), &b, 1);
    node.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    let reload = |s: Settings| {
        node.handle.ask(|reply| Request::Reload {
            settings: Box::new(s),
            reply,
        })
    };
    let refused = reload(settings("other", "")).await.expect("answer");
    assert!(
        refused.is_err_and(|e| e.contains("instance_id")),
        "a new identity is refused"
    );
    reload(settings("a", "mode = \"manual\""))
        .await
        .expect("answer")
        .expect("reloaded");
    let s = node
        .wait_for(Duration::from_secs(2), "manual mode", |s| {
            s.mode == "manual"
        })
        .await;
    assert_eq!(s.instance_id, "a");
    primary_down(&b);
    node.wait_for(Duration::from_secs(5), "would move, but manual", |s| {
        s.verdict.starts_with("blocked (manual_mode)")
    })
    .await;
    assert_eq!(b.item(APP, Role::Secondary).map(|i| i.version), Some(0));
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_manual_failback_waits_for_a_healthy_primary() {
    let b = world();
    let node = Node::start(settings("a", ""), &b, 1);
    node.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    primary_down(&b);
    node.wait_for(Duration::from_secs(5), "failover", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    let failback = || {
        node.handle.ask(|reply| Request::Move {
            to: AppState::Active,
            reason: "primary verified".into(),
            force: false,
            caller: "ana".into(),
            reply,
            lasts: None,
        })
    };
    match failback().await.expect("answer") {
        Err(MoveError::Refused(Refusal::PrimaryUnhealthy(_))) => {}
        other => panic!("expected a safety refusal, got {other:?}"),
    }
    primary_up(&b);
    node.wait_for(Duration::from_secs(5), "primary up again", |s| {
        s.probes
            .iter()
            .filter(|p| p.region == Role::Primary)
            .all(|p| p.health == failover_core::policy::Health::Up)
    })
    .await;
    let done = failback().await.expect("answer").expect("failback");
    assert_eq!((done.item.state, done.item.version), (AppState::Active, 2));
    assert_eq!(done.record.by, "admin:ana");
    assert!(done.primary_updated);
    let records = audits(&b, Role::Secondary);
    assert_eq!(records.len(), 2);
    assert_eq!(b.item(APP, Role::Primary).map(|i| i.version), Some(2));
    node.stop().await;
}

/// The status is a snapshot the loop publishes after an evaluation at most every
/// 200 ms (`PUBLISH_EVERY`), and at once when an operator's request or a sync pass
/// changed something. With probes a second apart and no sync pass for a minute,
/// every probe result still shows: a probe that goes down is in the status within
/// its `fall` results.
#[tokio::test(start_paused = true)]
async fn the_status_follows_probe_results_between_sync_passes() {
    let b = world();
    let mut s = settings("a", "");
    s.monitor.state_refresh = Duration::from_secs(60);
    for p in &mut s.probes {
        p.interval = Duration::from_secs(1);
    }
    let node = Node::start(s, &b, 1);
    node.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    b.script
        .set("s-api", Answer::Fail("connection refused".into()));
    let s = node
        .wait_for(Duration::from_secs(5), "s-api down", |s| {
            s.probes
                .iter()
                .any(|p| p.name == "s-api" && p.health == Health::Down)
        })
        .await;
    assert!(
        s.probes
            .iter()
            .any(|p| p.name == "s-api" && p.failures >= 3)
    );
    assert_eq!(b.item(APP, Role::Secondary).map(|i| i.version), Some(0));
    node.stop().await;
}

/// A killed instance (as SIGKILL does, or a test aborting the loop) runs nothing
/// any more: its coordination task does not go on, not even to give the lease up
/// as a clean stop does. The lease stays as it was until it runs out.
#[tokio::test(start_paused = true)]
async fn a_killed_leader_leaves_its_lease_as_it_was() {
    let b = world();
    let a = Node::start(coordinated("a", &["a", "b", "c"], "3s"), &b, 1);
    a.wait_for(Duration::from_secs(10), "leader", |s| s.is_leader)
        .await;
    let lease = || match b.table(Role::Secondary).get(&keys::lease(APP)) {
        Some(Record::Lease(l)) => Some(l),
        _ => None,
    };
    let held = lease().expect("a lease");
    assert!(held.owner.starts_with("a/"), "{held:?}");
    a.kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(lease(), Some(held), "neither renewed nor given up");
}

/// A clean stop (SIGTERM) gives the lease up: another instance need not wait it out.
#[tokio::test(start_paused = true)]
async fn a_clean_stop_gives_the_lease_up() {
    let b = world();
    let a = Node::start(coordinated("a", &["a", "b", "c"], "3s"), &b, 1);
    a.wait_for(Duration::from_secs(10), "leader", |s| s.is_leader)
        .await;
    a.stop().await;
    let Some(Record::Lease(l)) = b.table(Role::Secondary).get(&keys::lease(APP)) else {
        panic!("no lease");
    };
    assert_eq!(l.owner, "", "given up: {l:?}");
}

/// A clean stop lets the commit in flight finish first, for up to `write_timeout`
/// x 4 + 1 s (5 s here): a failover the commit region takes 4 s to answer lands and
/// is taken in before the loop stops.
#[tokio::test(start_paused = true)]
async fn a_clean_stop_waits_for_the_commit_in_flight() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    a.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    b.table(Role::Secondary).set_faults(Faults {
        delay: Some(Duration::from_secs(4)),
        ..Faults::default()
    });
    primary_down(&b);
    a.wait_for(Duration::from_secs(5), "committing", |s| s.committing)
        .await;
    let metrics = a.metrics.clone();
    a.stop().await;
    let item = b.item(APP, Role::Secondary).expect("item");
    assert_eq!((item.state, item.version), (AppState::Failover, 1));
    assert!(
        metrics
            .render()
            .lines()
            .any(|l| l.starts_with("failover_monitor_transitions_total{") && l.ends_with(" 1")),
        "the commit's outcome was taken in"
    );
}

/// With cooperating instances the status lists every configured one, this one
/// first: live instances as live, with the vote each publishes, a silent one as
/// not live.
#[tokio::test(start_paused = true)]
async fn the_status_lists_every_configured_instance() {
    let b = world();
    let a = Node::start(coordinated("a", &["a", "b", "c"], "3s"), &b, 1);
    let c = Node::start(coordinated("c", &["a", "b", "c"], "3s"), &b, 2);
    let s = a
        .wait_for(Duration::from_secs(10), "c live", |s| {
            s.ready && s.instances.iter().any(|p| p.instance == "c" && p.live)
        })
        .await;
    let listed: Vec<(&str, bool)> = s
        .instances
        .iter()
        .map(|p| (p.instance.as_str(), p.live))
        .collect();
    assert_eq!(listed, [("a", true), ("b", false), ("c", true)]);
    assert!(s.instances[0].view.is_some(), "its own view");
    a.stop().await;
    c.stop().await;
}

/// The coordination task runs one round every `renew_every` (300 ms here), not in
/// a loop against the table: the leader renews its lease about ten times in 3 s.
#[tokio::test(start_paused = true)]
async fn the_lease_is_renewed_once_a_round() {
    let b = world();
    let a = Node::start(coordinated("a", &["a", "b", "c"], "3s"), &b, 1);
    a.wait_for(Duration::from_secs(10), "leader", |s| s.is_leader)
        .await;
    let renewals = || match b.table(Role::Secondary).get(&keys::lease(APP)) {
        Some(Record::Lease(l)) => l.renewals,
        other => panic!("no lease: {other:?}"),
    };
    let before = renewals();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rounds = renewals() - before;
    assert!((9..=11).contains(&rounds), "{rounds} renewals in 3 s");
    a.stop().await;
}

/// Each published view says how old the evidence behind its vote is, so that peers
/// do not count a vote on stale evidence. With probes a second apart the age of
/// the oldest result behind the vote grows to most of a second between results,
/// and never past the view TTL.
#[tokio::test(start_paused = true)]
async fn a_published_view_carries_the_age_of_its_evidence() {
    let b = world();
    let mut s = coordinated("a", &["a", "b", "c"], "3s");
    for p in &mut s.probes {
        p.interval = Duration::from_secs(1);
    }
    let a = Node::start(s, &b, 1);
    a.wait_for(Duration::from_secs(10), "ready", |s| s.ready)
        .await;
    let mut ages = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if let Some(Record::View(v)) = b.table(Role::Secondary).get(&keys::view(APP, "a")) {
            ages.extend(v.evidence_age_ms);
        }
    }
    assert!(ages.len() >= 10, "ages published: {ages:?}");
    let oldest = ages.iter().max().copied().unwrap_or_default();
    assert!((500..1_500).contains(&oldest), "ages published: {ages:?}");
    a.stop().await;
}
