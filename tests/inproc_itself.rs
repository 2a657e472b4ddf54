//! What the monitor got wrong about itself (issue 17), each case on real daemons in
//! this process (in-memory tables with DynamoDB's semantics, scripted probes, paused
//! time): a reset of the config item it never saw, a pause item deleted under it,
//! one copy reset before the other.

use std::time::Duration;

use failover_core::model::{AppState, ConfigItem, Role, keys};
use failover_daemon::control::{MoveError, Request};
use failover_daemon::failover_bound;
use failover_testkit::inproc::{
    APP, Node, audits, coordinated, item, primary_down, settings, world,
};
use failover_testkit::{Answer, Faults, Record};

const S: Duration = Duration::from_secs(1);

fn seed(state: AppState) -> ConfigItem {
    ConfigItem {
        state,
        version: 0,
        updated_at: None,
        updated_by: None,
        reason: None,
        expires_at: None,
    }
}

/// A human's move through the loop, forced past the safety rules.
async fn force(node: &Node, to: AppState) -> Result<ConfigItem, MoveError> {
    node.handle
        .ask(|reply| Request::Move {
            to,
            reason: "test".into(),
            force: true,
            caller: "ana".into(),
            reply,
            lasts: None,
        })
        .await
        .expect("the loop answers")
        .map(|done| done.item)
}

async fn pause(node: &Node, paused: bool) {
    node.handle
        .ask(|reply| Request::SetPaused {
            paused,
            caller: "ana".into(),
            reason: "test".into(),
            reply,
            lasts: None,
        })
        .await
        .expect("the loop answers")
        .expect("stored");
}

/// Brings the item to `active` v2 with audit records 1 and 2 (a failover and a
/// failback by hand).
async fn two_moves(a: &Node) {
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    assert_eq!(force(a, AppState::Failover).await.unwrap().version, 1);
    assert_eq!(force(a, AppState::Active).await.unwrap().version, 2);
}

/// Item 1: both copies re-seeded `active` without a version under a running
/// monitor. It takes the commit region's lower version as the truth, reports
/// `needs_human` on its next commit (the records 1 and 2 are still there), and once
/// the stale records are removed (a documented repair that leaves the item as it is)
/// fails over without a restart. Before: `lost the race ... now_version=Some(0)` for
/// ever, and `needs_human` never.
#[tokio::test(start_paused = true)]
async fn a_reset_under_a_running_monitor_is_taken_in_and_the_repair_resumes_moves() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    two_moves(&a).await;
    b.seed_item(APP, &seed(AppState::Active));
    a.wait_for(2 * S, "the reset taken in", |s| {
        s.item.as_ref().is_some_and(|i| i.version == 0)
    })
    .await;
    primary_down(&b);
    let s = a
        .wait_for(5 * S, "needs a human", |s| s.needs_human.is_some())
        .await;
    assert!(s.needs_human.unwrap().contains("version"));
    assert_eq!(
        a.metric("failover_monitor_commit_attempts_total{outcome=\"lost_race\"}"),
        0.0,
        "no lost race against its own stale memory"
    );
    assert_eq!(a.metric("failover_monitor_needs_human "), 1.0);
    // The repair: the stale audit records go, the item stays as it is.
    for role in [Role::Primary, Role::Secondary] {
        for v in [1, 2] {
            b.table(role).delete(&keys::audit(APP, v));
        }
    }
    let s = a
        .wait_for(5 * S, "the failover after the repair", |s| {
            s.item
                .as_ref()
                .is_some_and(|i| i.state == AppState::Failover && i.version == 1)
        })
        .await;
    assert!(s.needs_human.is_none());
    assert_eq!(a.metric("failover_monitor_needs_human "), 0.0);
    a.stop().await;
}

/// Item 1: a forced move is never refused because of the daemon's own memory. The
/// move follows the reset at once (no time passes, so no sync pass has read the
/// commit region since; the in-memory tables delay writes only, never reads); the
/// forced failover finds the item lower than remembered, takes it in and decides
/// again from it. Before: 409 `lost_race (now active version 0)`.
#[tokio::test(start_paused = true)]
async fn a_forced_move_is_not_refused_because_of_stale_memory() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    two_moves(&a).await;
    b.table(Role::Primary).set_faults(Faults {
        delay: Some(60 * S),
        ..Faults::default()
    });
    tokio::time::sleep(S).await;
    let sec = b.table(Role::Secondary);
    sec.put(APP, Record::Item(seed(AppState::Active)));
    for v in [1, 2] {
        sec.delete(&keys::audit(APP, v));
    }
    assert_eq!(
        a.status().item.map(|i| i.version),
        Some(2),
        "still remembered"
    );
    let moved = force(&a, AppState::Failover).await.expect("committed");
    assert_eq!((moved.state, moved.version), (AppState::Failover, 1));
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(1));
    a.kill();
}

/// [`settings`] whose sync passes come a minute apart (and when a commit ends):
/// the reset a test makes is found by the move's own read, not by a sync pass. (The
/// in-memory tables delay writes only, never reads.)
fn slow_sync(instance: &str) -> failover_config::Settings {
    let mut s = settings(instance, "");
    s.monitor.state_refresh = 60 * S;
    s
}

/// Item 1 and item 5c: a move that found the item reset under it is decided again
/// only if that can still be answered within the admin API's request timeout. Here
/// the commit region takes 27 s to answer the write, which finds the reset: past
/// the 26 s `move_wait` leaves with a 1 s `write_timeout` (and within 28 s). The
/// caller is answered the lost race with the item as it is, and nothing more is
/// written.
#[tokio::test(start_paused = true)]
async fn a_move_found_reset_too_late_is_answered_not_decided_again() {
    let b = world();
    let a = Node::start(slow_sync("a"), &b, 1);
    two_moves(&a).await;
    let sec = b.table(Role::Secondary);
    sec.put(APP, Record::Item(seed(AppState::Active)));
    for v in [1, 2] {
        sec.delete(&keys::audit(APP, v));
    }
    sec.set_faults(Faults {
        delay: Some(27 * S),
        ..Faults::default()
    });
    match force(&a, AppState::Failover).await {
        Err(MoveError::LostRace(Some(now))) => {
            assert_eq!((now.state, now.version), (AppState::Active, 0));
        }
        other => panic!("expected the lost race, answered {other:?}"),
    }
    tokio::time::sleep(60 * S).await;
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    assert!(audits(&b, Role::Secondary).is_empty());
    a.kill();
}

/// Item 1, once only: a move that found the item reset under it is decided again
/// once. Found reset again under that second attempt (someone keeps rewriting the
/// table), the caller is answered the lost race with the item as it is.
#[tokio::test(start_paused = true)]
async fn a_move_found_reset_twice_is_decided_again_only_once() {
    let b = world();
    let a = Node::start(slow_sync("a"), &b, 1);
    two_moves(&a).await;
    // Set back to version 1 (the failover), its successor's record removed.
    let sec = b.table(Role::Secondary);
    sec.put(
        APP,
        Record::Item(ConfigItem {
            version: 1,
            ..seed(AppState::Failover)
        }),
    );
    sec.delete(&keys::audit(APP, 2));
    // Each write takes 2 s: the first attempt finds the reset at 2 s, the second
    // writes at 4 s.
    sec.set_faults(Faults {
        delay: Some(2 * S),
        ..Faults::default()
    });
    let handle = a.handle.clone();
    let asked = tokio::spawn(async move {
        handle
            .ask(|reply| Request::Move {
                to: AppState::Fenced,
                reason: "test".into(),
                force: true,
                caller: "ana".into(),
                reply,
                lasts: None,
            })
            .await
    });
    tokio::time::sleep(3 * S).await;
    sec.put(APP, Record::Item(seed(AppState::Active)));
    sec.delete(&keys::audit(APP, 1));
    match asked
        .await
        .expect("the asking task")
        .expect("the loop answers")
    {
        Err(MoveError::LostRace(Some(now))) => {
            assert_eq!((now.state, now.version), (AppState::Active, 0));
        }
        other => panic!("expected the lost race, answered {other:?}"),
    }
    tokio::time::sleep(10 * S).await;
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    assert!(audits(&b, Role::Secondary).is_empty());
    a.kill();
}

/// Item 1, one copy: the commit region is reset first and the primary a moment
/// later, as a person does it. The sync never copies the primary's higher version
/// back over the reset (the commit region is the truth and the sync never writes
/// it); a primary that stays ahead follows the commit region after two passes.
#[tokio::test(start_paused = true)]
async fn a_reset_of_the_commit_region_is_not_undone_by_the_sync() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    two_moves(&a).await;
    b.table(Role::Secondary)
        .put(APP, Record::Item(seed(AppState::Active)));
    // Three passes (state_refresh 500 ms): the reset stands; the primary is shown
    // ahead meanwhile.
    let s = a
        .wait_for(2 * S, "the primary shown ahead", |s| s.divergence.is_some())
        .await;
    let d = s.divergence.unwrap();
    assert!(d.contains("version 2, the commit region at 0"), "{d}");
    tokio::time::sleep(S).await;
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    assert_eq!(a.status().item.map(|i| i.version), Some(0));
    // The primary stayed ahead: it follows the commit region, its records kept.
    let p = item(&b, Role::Primary).unwrap();
    assert_eq!((p.state, p.version), (AppState::Active, 0));
    assert_eq!(audits(&b, Role::Primary).len(), 2);
    a.wait_for(2 * S, "the copies agree", |s| s.divergence.is_none())
        .await;
    a.stop().await;
}

/// Item 1, the pause: once the stored pause is deleted by hand, a later pause
/// (stored with a lower sequence number than the one remembered) is honoured.
/// Before: ignored until a restart.
#[tokio::test(start_paused = true)]
async fn a_deleted_pause_item_is_not_remembered() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    pause(&a, true).await;
    pause(&a, false).await;
    b.table(Role::Secondary).delete(&keys::pause(APP));
    tokio::time::sleep(2 * S).await;
    pause(&a, true).await;
    a.wait_for(2 * S, "paused", |s| s.paused).await;
    tokio::time::sleep(2 * S).await;
    assert!(a.status().paused, "still paused after more sync passes");
    // A pause item deleted while paused: a fresh process would run, so does this one.
    b.table(Role::Secondary).delete(&keys::pause(APP));
    a.wait_for(2 * S, "resumed", |s| !s.paused).await;
    a.stop().await;
}

/// A sync pass whose reads were issued before this instance stored a pause, and
/// whose report comes after it (the pass is slow: it catches up a lagging primary
/// copy), never undoes the pause: a read issued before what we learned is taken
/// in only when it is not older than it.
#[tokio::test(start_paused = true)]
async fn a_pause_read_before_our_own_write_never_undoes_it() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    two_moves(&a).await;
    pause(&a, true).await;
    pause(&a, false).await;
    // The primary copy lags (set back by hand) and its catch-up (a transaction) is
    // slow: each pass reports well after its reads of the commit region.
    b.table(Role::Primary).set_transaction_time(5 * S);
    b.table(Role::Primary)
        .put(APP, Record::Item(seed(AppState::Active)));
    // A pass starts within a state_refresh (500 ms) and is still catching up.
    tokio::time::sleep(Duration::from_millis(700)).await;
    pause(&a, true).await;
    for _ in 0..80 {
        let s = a.status();
        assert!(s.paused, "the pause was undone: {:?}", s.overrides);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        item(&b, Role::Primary).map(|i| i.version),
        Some(2),
        "caught up"
    );
    a.kill();
}

/// Item 2: every instance shares one IAM role, so a permission change is a fault of
/// every vantage point at once. Three instances whose DynamoDB probe of a healthy
/// primary is answered `AccessDeniedException` fail nothing over: the probe is
/// inconclusive (status, metric). A real outage is still failed over on the probes
/// that need no credentials. Before: all three voted down and the item moved.
#[tokio::test(start_paused = true)]
async fn a_permission_change_fails_nothing_over_and_a_real_outage_still_is() {
    let b = world();
    let names = ["a", "b", "c"];
    let nodes: Vec<Node> = names
        .iter()
        .zip(1..)
        .map(|(n, seed)| Node::start(coordinated(n, &names, "3s"), &b, seed))
        .collect();
    for n in &nodes {
        n.wait_for(10 * S, "ready", |s| s.ready).await;
    }
    b.script.set(
        "p-table",
        Answer::Denied("get_item photos-config: AccessDeniedException: not authorized".into()),
    );
    tokio::time::sleep(30 * S).await;
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    for n in &nodes {
        let s = n.status();
        let probe = s.probes.iter().find(|p| p.name == "p-table").unwrap();
        assert_eq!(
            serde_json::to_value(probe.health).unwrap(),
            "inconclusive",
            "{probe:?}"
        );
        assert!(
            probe
                .last_error
                .as_deref()
                .unwrap()
                .contains("AccessDenied")
        );
        assert_eq!(
            n.metric("failover_monitor_probe_inconclusive{probe=\"p-table\",region=\"primary\"}"),
            1.0
        );
        assert_eq!(n.transitions(), 0);
    }
    // The primary dies meanwhile: the http probe (no credentials) still judges it.
    let settings = coordinated("a", &names, "3s");
    b.script
        .set("p-api", Answer::Fail("connection refused".into()));
    let bound = failover_bound(&settings);
    nodes[0]
        .wait_for(bound, "the failover", |s| {
            s.item
                .as_ref()
                .is_some_and(|i| i.state == AppState::Failover)
        })
        .await;
    for n in nodes {
        n.stop().await;
    }
}

/// Starts three cooperating instances and returns them with the leader's index once
/// one leads and every instance is ready.
async fn three(b: &failover_testkit::MemoryBackend) -> (Vec<Node>, usize) {
    let names = ["a", "b", "c"];
    let nodes: Vec<Node> = names
        .iter()
        .zip(1..)
        .map(|(n, seed)| Node::start(coordinated(n, &names, "3s"), b, seed))
        .collect();
    for n in &nodes {
        n.wait_for(10 * S, "ready", |s| s.ready).await;
    }
    nodes[0]
        .wait_for(10 * S, "a leader", |s| s.leader.is_some())
        .await;
    let leader = nodes
        .iter()
        .position(|n| n.status().is_leader)
        .expect("one leads");
    (nodes, leader)
}

/// Item 3: a leader that cannot act hands the lease to one that can. The leader's
/// own path to the secondary breaks (its secondary probe is down; the others see
/// the secondary up), then the primary dies: the failover is committed by another
/// instance within the documented bound. Before: the leader logged `blocked
/// (secondary_unhealthy)`, the others `blocked (not_leader)`, and nothing moved.
#[tokio::test(start_paused = true)]
async fn a_leader_whose_view_of_the_secondary_broke_hands_the_lease_over() {
    let b = world();
    let (nodes, leader) = three(&b).await;
    let name = nodes[leader].status().instance_id;
    b.script
        .set_at(&name, "s-api", Answer::Fail("connection refused".into()));
    tokio::time::sleep(2 * S).await;
    primary_down(&b);
    let bound = failover_bound(&coordinated("a", &["a", "b", "c"], "3s"));
    let s = nodes[(leader + 1) % 3]
        .wait_for(bound, "the failover", |s| {
            s.item
                .as_ref()
                .is_some_and(|i| i.state == AppState::Failover)
        })
        .await;
    let by = s.item.unwrap().updated_by.unwrap();
    assert_ne!(by, name, "committed by an instance that could act");
    assert_eq!(
        audits(&b, Role::Secondary).len(),
        1,
        "exactly one transition"
    );
    for n in nodes {
        n.stop().await;
    }
}

/// Item 3: the leader reloaded to `manual`, then to `dry-run`, hands the lease to an
/// instance in `auto` mode, which fails the dead primary over.
#[tokio::test(start_paused = true)]
async fn a_leader_reloaded_to_manual_or_dry_run_hands_the_lease_over() {
    for mode in ["manual", "dry-run"] {
        let b = world();
        let (nodes, leader) = three(&b).await;
        let name = nodes[leader].status().instance_id;
        let mut settings = coordinated(&name, &["a", "b", "c"], "3s");
        settings.monitor.mode = match mode {
            "manual" => failover_config::Mode::Manual,
            _ => failover_config::Mode::DryRun,
        };
        nodes[leader]
            .handle
            .ask(|reply| Request::Reload {
                settings: Box::new(settings),
                reply,
            })
            .await
            .expect("answer")
            .expect("reloaded");
        tokio::time::sleep(2 * S).await;
        primary_down(&b);
        let bound = failover_bound(&coordinated("a", &["a", "b", "c"], "3s"));
        let s = nodes[(leader + 1) % 3]
            .wait_for(bound, "the failover", |s| {
                s.item
                    .as_ref()
                    .is_some_and(|i| i.state == AppState::Failover)
            })
            .await;
        assert_ne!(s.item.unwrap().updated_by.unwrap(), name, "{mode}");
        for n in nodes {
            n.stop().await;
        }
    }
}

/// Item 3: when no instance can act (all of them see the secondary down), the lease
/// stays where it is and nothing fails over.
#[tokio::test(start_paused = true)]
async fn with_no_instance_able_to_act_the_lease_stays_and_nothing_moves() {
    let b = world();
    let (nodes, leader) = three(&b).await;
    let name = nodes[leader].status().instance_id;
    b.script
        .set("s-api", Answer::Fail("connection refused".into()));
    primary_down(&b);
    tokio::time::sleep(20 * S).await;
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    assert_eq!(
        nodes[leader].status().leader.as_deref(),
        Some(name.as_str())
    );
    for n in nodes {
        n.stop().await;
    }
}

/// Item 5c: a human's move is answered within the admin API's request timeout, or
/// not started: with the longest `write_timeout` allowed (8 s, three calls a commit),
/// a move queued behind a slow automatic commit is answered `Expired` (nothing
/// written) instead of being started 15 s later and answered after the caller gave
/// up. Before: `MOVE_WAIT` was 15 s whatever `write_timeout` was.
#[tokio::test(start_paused = true)]
async fn a_queued_move_is_answered_in_time_or_not_started() {
    let b = world();
    let mut s = settings("a", "");
    s.monitor.write_timeout = 8 * S;
    let a = Node::start(s, &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    let slow = Faults {
        delay: Some(Duration::from_millis(7_900)),
        ..Faults::default()
    };
    for role in [Role::Primary, Role::Secondary] {
        b.table(role).set_faults(slow.clone());
    }
    primary_down(&b);
    a.wait_for(5 * S, "the automatic commit in flight", |s| s.committing)
        .await;
    tokio::time::sleep(2 * S).await;
    let asked = tokio::time::Instant::now();
    let answer = force(&a, AppState::Active).await;
    let took = asked.elapsed();
    assert!(
        took <= failover_daemon::control::ANSWER_WITHIN,
        "answered after {took:?}"
    );
    assert!(matches!(answer, Err(MoveError::Expired)), "{answer:?}");
    b.table(Role::Secondary).set_faults(Faults::default());
    tokio::time::sleep(10 * S).await;
    let audits = audits(&b, Role::Secondary);
    assert!(
        audits.iter().all(|r| r.to != AppState::Active),
        "the expired move was never written: {audits:?}"
    );
    a.kill();
}

/// Item 5b: a fresh process whose clock is 5 s behind the writer's reads an item
/// written "now" (its `updatedAt` in this process's future) and still holds down.
/// Before: a future `updatedAt` read as "unknown", the hold-down was skipped and the
/// primary failed over within seconds of the last transition.
#[tokio::test(start_paused = true)]
async fn a_clock_behind_the_writers_does_not_skip_the_hold_down() {
    let b = world();
    let written =
        humantime::format_rfc3339_millis(failover_daemon::clock::WallClock::now(&b.clock));
    b.seed_item(
        APP,
        &ConfigItem {
            state: AppState::Active,
            version: 3,
            updated_at: Some(written.to_string()),
            updated_by: Some("admin:ana".into()),
            reason: Some("failback".into()),
            expires_at: None,
        },
    );
    let mut behind = b.instance(1);
    behind.clock = b.clock.skewed(-5_000);
    let mut s = settings("a", "");
    s.monitor.hold_down = 60 * S;
    let a = Node::start(s, &behind, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    primary_down(&b);
    tokio::time::sleep(30 * S).await;
    let s = a.status();
    assert_eq!(
        s.item.map(|i| i.version),
        Some(3),
        "held down: {}",
        s.verdict
    );
    assert!(s.verdict.contains("hold_down"), "{}", s.verdict);
    a.wait_for(40 * S, "the failover after the hold-down", |s| {
        s.item.as_ref().is_some_and(|i| i.version == 4)
    })
    .await;
    a.stop().await;
}

/// Item 5f: instances with different `[coordination]` sections notice. Instance c
/// runs another `view_ttl` (a change rolled out to it only): every instance shows
/// the mismatch (status, metric), and a primary outage is not failed over
/// automatically until they agree. Before: nothing was noticed, and instances
/// counting different quorums decided together.
#[tokio::test(start_paused = true)]
async fn instances_with_different_coordination_sections_notice_and_wait() {
    let b = world();
    let names = ["a", "b", "c"];
    let mut nodes: Vec<Node> = names[..2]
        .iter()
        .zip(1..)
        .map(|(n, seed)| Node::start(coordinated(n, &names, "3s"), &b, seed))
        .collect();
    let mut other = coordinated("c", &names, "3s");
    if let Some(c) = other.coordination.as_mut() {
        c.view_ttl = 2 * S;
    }
    nodes.push(Node::start(other, &b, 3));
    for (i, n) in nodes.iter().enumerate() {
        let s = n
            .wait_for(10 * S, "the mismatch", |s| {
                !s.coordination_mismatch.is_empty()
            })
            .await;
        let expected: Vec<&str> = if i == 2 { vec!["a", "b"] } else { vec!["c"] };
        assert_eq!(s.coordination_mismatch, expected);
        assert_eq!(n.metric("failover_monitor_coordination_mismatch "), 1.0);
    }
    primary_down(&b);
    tokio::time::sleep(20 * S).await;
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    let leader = nodes
        .iter()
        .find(|n| n.status().is_leader)
        .expect("a leader");
    assert!(
        leader.status().verdict.contains("coordination_mismatch"),
        "{}",
        leader.status().verdict
    );
    for n in nodes {
        n.stop().await;
    }
}
