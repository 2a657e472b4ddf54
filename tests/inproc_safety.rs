//! Regression cases of the defects a review against DynamoDB's, Route 53's and
//! ECS's real behaviour found, each on real daemons in this process (in-memory
//! stores with DynamoDB's documented semantics, scripted probes, paused time): a
//! restarted leader and dead peers' views, a lone survivor, two processes with one
//! instance id, a write that timed out after it applied, an item reset under old
//! audit records, the stored pause, global tables, a slow commit, DNS, a reload of
//! `[coordination]`, a long catch-up.

use std::time::Duration;

use failover_core::lease::LeaseRecord;
use failover_core::model::{AppState, AuditRecord, ConfigItem, Role, Trigger, keys};
use failover_core::policy::Vote;
use failover_daemon::clock::WallClock;
use failover_daemon::control::{MoveError, Request};
use failover_daemon::coord::PeerView;
use failover_testkit::inproc::{
    APP, Node, audits, coordinated, coordination, item, primary_down, primary_up, settings,
    settings_in, settings_with, world,
};
use failover_testkit::{Answer, Faults, Record};

const S: Duration = Duration::from_secs(1);

fn record(version: u64, from: AppState, to: AppState) -> AuditRecord {
    AuditRecord {
        version,
        from,
        to,
        at: "2027-01-01T00:00:00Z".into(),
        by: "old".into(),
        trigger: Trigger::Auto,
        reason: "an earlier life".into(),
        evidence: serde_json::Value::Null,
        forced: false,
    }
}

fn at(state: AppState, version: u64) -> ConfigItem {
    ConfigItem {
        state,
        version,
        updated_at: None,
        updated_by: None,
        reason: None,
        expires_at: None,
    }
}

/// Defect 1: a restarted instance saw dead peers' last views for the first time,
/// counted them as live, and their old "primary down" votes failed a healthy
/// primary over. A view counts only once it has been seen to change.
#[tokio::test(start_paused = true)]
async fn a_restarted_leader_does_not_count_dead_peers_old_down_votes() {
    let b = world();
    for peer in ["b", "c"] {
        let view = PeerView {
            seq: 41,
            process: "gone".into(),
            vote: Vote::Down,
            evidence_age_ms: Some(0),
            secondary_up: true,
            fit: false,
            digest: String::new(),
            detail: "p-api Down".into(),
        };
        b.table(Role::Secondary)
            .put(&keys::view(APP, peer), Record::View(view));
    }
    let a = Node::start(coordinated("a", &["a", "b", "c"], "3s"), &b, 1);
    let s = a
        .wait_for(10 * S, "leader", |s| s.is_leader && s.ready)
        .await;
    assert!(
        s.instances
            .iter()
            .filter(|p| p.instance != "a")
            .all(|p| !p.live)
    );
    tokio::time::sleep(10 * S).await;
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    let s = a.status();
    assert_eq!(
        s.quorum.as_ref().map(|q| q["down_votes"].clone()),
        Some(0.into())
    );
    assert_eq!(
        s.quorum.as_ref().map(|q| q["reachable"].clone()),
        Some(false.into())
    );
    a.stop().await;
}

/// Defect 1 (the lease): a restarted process took its own old lease back at once.
/// It is another owner now (another process value) and waits the lease out.
#[tokio::test(start_paused = true)]
async fn a_restarted_process_waits_out_its_previous_incarnations_lease() {
    let b = world();
    let old = LeaseRecord {
        owner: "a/previous".into(),
        token: 3,
        renewals: 9,
    };
    b.table(Role::Secondary)
        .put(&keys::lease(APP), Record::Lease(old));
    let started = tokio::time::Instant::now();
    let a = Node::start(coordinated("a", &["a", "b", "c"], "3s"), &b, 1);
    a.wait_for(10 * S, "leader", |s| s.is_leader).await;
    assert!(
        started.elapsed() >= 3 * S,
        "took the lease after {:?}, before a whole lease",
        started.elapsed()
    );
    let Some(Record::Lease(l)) = b.table(Role::Secondary).get(&keys::lease(APP)) else {
        panic!("no lease");
    };
    assert_eq!(l.token, 4);
    assert!(
        l.owner.starts_with("a/") && l.owner != "a/previous",
        "{l:?}"
    );
    a.stop().await;
}

/// Defect 2: the quorum counted live instances, so a lone survivor whose own path to
/// the primary broke failed a healthy region over. It counts the configured
/// instances: alone, it reports the quorum unreachable; a human can still move.
#[tokio::test(start_paused = true)]
async fn a_lone_survivor_never_fails_over_alone_and_a_human_can() {
    let b = world();
    let a = Node::start(coordinated("a", &["a", "b", "c"], "3s"), &b, 1);
    a.wait_for(10 * S, "leader", |s| s.is_leader && s.ready)
        .await;
    primary_down(&b);
    let s = a
        .wait_for(5 * S, "quorum unreachable", |s| {
            s.verdict.starts_with("hold: quorum unreachable")
        })
        .await;
    assert_eq!(
        s.quorum.as_ref().map(|q| q["needed"].clone()),
        Some(2.into())
    );
    assert_eq!(a.metric("failover_monitor_quorum_reachable "), 0.0);
    tokio::time::sleep(10 * S).await;
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    let done = a
        .handle
        .ask(|reply| Request::Move {
            to: AppState::Failover,
            reason: "the on-call confirmed the outage".into(),
            force: true,
            caller: "ana".into(),
            reply,
            lasts: None,
        })
        .await
        .expect("answer")
        .expect("a human's failover");
    assert_eq!(
        (done.item.state, done.item.version),
        (AppState::Failover, 1)
    );
    assert!(done.record.forced);
    a.stop().await;
}

/// Defect 3: two processes with one instance id (a rolling deploy) took the lease
/// from each other. The owner is the id plus a per-process value: one leads, the
/// other reports the duplicate and never leads.
#[tokio::test(start_paused = true)]
async fn two_processes_with_one_instance_id_one_leads_the_other_reports() {
    let b = world();
    let first = Node::start(coordinated("a", &["a", "b", "c"], "3s"), &b, 1);
    first.wait_for(10 * S, "leader", |s| s.is_leader).await;
    let second = Node::start(coordinated("a", &["a", "b", "c"], "3s"), &b, 2);
    second
        .wait_for(10 * S, "duplicate reported", |s| s.duplicate.is_some())
        .await;
    assert_eq!(second.metric("failover_monitor_duplicate_instance "), 1.0);
    for _ in 0..100 {
        tokio::time::sleep(S / 10).await;
        assert!(first.status().is_leader, "the holder keeps leading");
        assert!(!second.status().is_leader, "the duplicate never leads");
    }
    // The first stops cleanly: it gives the lease up, and the second leads once
    // it has seen no other writer for view_ttl.
    first.stop().await;
    second
        .wait_for(10 * S, "the second leads", |s| {
            s.is_leader && s.duplicate.is_none()
        })
        .await;
    second.stop().await;
}

/// Defect 11: a commit that timed out after it was applied was reported as "nothing
/// changed", and its retry as a lost race. The retry carries the same idempotency
/// token and recognises its own write: one transition, one audit record.
#[tokio::test(start_paused = true)]
async fn a_write_that_timed_out_after_applying_is_recognised() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    // The commit applies but its answer is lost, and the commit region's item
    // cannot be read for a while, so the sync cannot recognise the write: only the
    // retry with the same client request token can (DynamoDB answers success to it).
    b.table(Role::Secondary).set_faults(Faults {
        fail_after_apply: 1,
        reads_fail_until: Some(tokio::time::Instant::now() + 3 * S),
        ..Faults::default()
    });
    primary_down(&b);
    a.wait_for(10 * S, "failover", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    tokio::time::sleep(5 * S).await;
    assert_eq!(audits(&b, Role::Secondary).len(), 1);
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(1));
    assert_eq!(a.transitions(), 1);
    let attempts = |outcome: &str| {
        a.metric(&format!(
            "failover_monitor_commit_attempts_total{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(
        [
            attempts("unknown"),
            attempts("committed"),
            attempts("recognised"),
            attempts("lost_race")
        ],
        [1.0, 1.0, 0.0, 0.0],
        "the retry with the token recognised the write, not a read"
    );
    a.stop().await;
}

/// The same write, with reads working: the sync pass asked for at the end of the
/// commit reads the item it wrote and takes the transition in (counted `recognised`,
/// one transition), before any second attempt.
#[tokio::test(start_paused = true)]
async fn a_write_that_timed_out_after_applying_is_recognised_by_the_next_read() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    b.table(Role::Secondary).set_faults(Faults {
        fail_after_apply: 1,
        ..Faults::default()
    });
    primary_down(&b);
    a.wait_for(10 * S, "failover", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    tokio::time::sleep(5 * S).await;
    assert_eq!(audits(&b, Role::Secondary).len(), 1);
    assert_eq!(a.transitions(), 1);
    let attempts = |outcome: &str| {
        a.metric(&format!(
            "failover_monitor_commit_attempts_total{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(
        [
            attempts("unknown"),
            attempts("committed"),
            attempts("recognised"),
        ],
        [1.0, 0.0, 1.0],
        "the read recognised the write"
    );
    a.stop().await;
}

/// A commit whose outcome stays unknown (the commit region does not answer) is
/// retried with its token only within the token's lifetime (9 minutes, under
/// DynamoDB's 10): past it, the same move is prepared again, with a new token and
/// the time of that attempt, not sent again with a token DynamoDB no longer knows.
#[tokio::test(start_paused = true)]
async fn a_retry_past_the_tokens_lifetime_is_prepared_again() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    let down_at = b.clock.now();
    b.table(Role::Secondary).set_down(true);
    primary_down(&b);
    tokio::time::sleep(10 * 60 * S).await;
    let unknown = a.metric("failover_monitor_commit_attempts_total{outcome=\"unknown\"}");
    assert!(unknown >= 2.0, "{unknown} attempts with an unknown outcome");
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    b.table(Role::Secondary).set_down(false);
    a.wait_for(30 * S, "failover", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    let committed = item(&b, Role::Secondary).expect("item");
    assert_eq!(committed.version, 1);
    assert_eq!(audits(&b, Role::Secondary).len(), 1);
    let prepared = committed
        .updated_at
        .as_deref()
        .and_then(failover_core::overrides::parse)
        .expect("updatedAt");
    assert!(
        prepared >= down_at + 9 * 60 * S,
        "committed the transition prepared at {:?}, {:?} after the first attempt",
        committed.updated_at,
        prepared.duration_since(down_at)
    );
    a.stop().await;
}

/// Within the token's lifetime the retry is the same transaction: a commit that
/// applied but timed out, then the commit region gone for two minutes (every retry
/// refused), is taken in once the region answers again, as the transition this
/// instance made (one transition, no lost race against its own write).
#[tokio::test(start_paused = true)]
async fn a_write_applied_before_the_region_went_away_is_taken_in_minutes_later() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    let attempts = |outcome: &str| {
        a.metric(&format!(
            "failover_monitor_commit_attempts_total{{outcome=\"{outcome}\"}}"
        ))
    };
    let sec = b.table(Role::Secondary);
    sec.set_faults(Faults {
        fail_after_apply: 1,
        reads_fail_until: Some(tokio::time::Instant::now() + 10 * S),
        ..Faults::default()
    });
    primary_down(&b);
    while attempts("unknown") < 1.0 {
        tokio::time::sleep(S / 100).await;
    }
    sec.set_down(true);
    tokio::time::sleep(120 * S).await;
    sec.set_down(false);
    a.wait_for(30 * S, "failover", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    tokio::time::sleep(5 * S).await;
    assert_eq!(audits(&b, Role::Secondary).len(), 1);
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(1));
    assert_eq!(a.transitions(), 1, "taken in as this instance's transition");
    assert_eq!(attempts("lost_race"), 0.0);
    a.stop().await;
}

/// Defect 7: an item re-seeded at version 0 beside old audit records made every
/// commit fail on the existing record, retried at once forever as a "lost race".
/// The reason is told apart: a human is needed, automatic moves stop until the item
/// changes, then resume.
#[tokio::test(start_paused = true)]
async fn an_item_reset_under_old_audit_records_needs_a_human() {
    let b = world();
    let sec = b.table(Role::Secondary);
    for v in 1..=3 {
        sec.put(
            &keys::audit(APP, v),
            Record::Audit(record(v, AppState::Active, AppState::Failover)),
        );
    }
    let a = Node::start(settings("a", ""), &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    primary_down(&b);
    let s = a
        .wait_for(10 * S, "needs a human", |s| s.needs_human.is_some())
        .await;
    assert!(
        s.needs_human
            .as_deref()
            .is_some_and(|w| w.contains("up to version 3")),
        "{s:?}"
    );
    tokio::time::sleep(20 * S).await;
    assert_eq!(
        a.metric("failover_monitor_commit_attempts_total{outcome=\"needs_human\"}"),
        1.0,
        "no retry loop"
    );
    assert_eq!(a.metric("failover_monitor_needs_human "), 1.0);
    // The human sets the item's version to the newest record's: moves resume.
    sec.put(APP, Record::Item(at(AppState::Active, 3)));
    b.table(Role::Primary)
        .put(APP, Record::Item(at(AppState::Active, 3)));
    a.wait_for(10 * S, "failover after the repair", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.version == 4 && i.state == AppState::Failover)
    })
    .await;
    assert_eq!(a.metric("failover_monitor_needs_human "), 0.0);
    a.stop().await;
}

/// Defect 12: pause lived in one process's memory. It is stored beside the item:
/// every instance honours it, and a restart does not lift it.
#[tokio::test(start_paused = true)]
async fn the_pause_is_stored_and_honoured_by_every_instance_and_after_a_restart() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    let c = Node::start(settings("c", ""), &b, 2);
    for n in [&a, &c] {
        n.wait_for(5 * S, "ready", |s| s.ready).await;
    }
    let was = a
        .handle
        .ask(|reply| Request::SetPaused {
            paused: true,
            caller: "ana".into(),
            reason: "maintenance".into(),
            reply,
            lasts: None,
        })
        .await
        .expect("answer")
        .expect("stored");
    assert!(!was);
    let s = c
        .wait_for(5 * S, "the other instance honours it", |s| s.paused)
        .await;
    let pause = s.pause.expect("the stored pause");
    assert_eq!(
        (pause.by.as_str(), pause.reason.as_str()),
        ("admin:ana", "maintenance")
    );
    a.stop().await;
    let a = Node::start(settings("a", ""), &b, 3);
    a.wait_for(5 * S, "still paused after a restart", |s| {
        s.paused && s.ready
    })
    .await;
    primary_down(&b);
    tokio::time::sleep(5 * S).await;
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    c.handle
        .ask(|reply| Request::SetPaused {
            paused: false,
            caller: "ben".into(),
            reason: "done".into(),
            reply,
            lasts: None,
        })
        .await
        .expect("answer")
        .expect("stored");
    a.wait_for(10 * S, "failover once resumed", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    a.stop().await;
    c.stop().await;
}

/// Defect 4: with global tables, the actuator and the sync also wrote the primary
/// replica, which races replication (last writer wins). Only the commit region is
/// written; the primary replica is read, to see replication.
#[tokio::test(start_paused = true)]
async fn with_global_tables_only_the_commit_region_is_written() {
    let b = world();
    let a = Node::start(settings_in("a", "", "", "global"), &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    primary_down(&b);
    a.wait_for(10 * S, "failover", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    tokio::time::sleep(5 * S).await;
    assert_eq!(
        item(&b, Role::Primary).map(|i| i.version),
        Some(0),
        "not written by the monitor"
    );
    assert!(audits(&b, Role::Primary).is_empty());
    assert!(
        a.status().divergence.is_none(),
        "lagging replication is not a divergence"
    );
    // Replication delivers: the primary replica shows the commit.
    let committed = item(&b, Role::Secondary).expect("committed item");
    b.table(Role::Primary).put(APP, Record::Item(committed));
    a.wait_for(5 * S, "the primary replica caught up", |s| {
        s.primary_item.as_ref().is_some_and(|i| i.version == 1)
    })
    .await;
    a.stop().await;
}

/// Defect 14: the loop blocked on a commit's writes. The commit runs in its own
/// task: probe results keep coming in while the secondary is slow.
#[tokio::test(start_paused = true)]
async fn a_slow_commit_does_not_stop_the_loop() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    b.table(Role::Secondary).set_faults(Faults {
        delay: Some(3 * S),
        ..Faults::default()
    });
    primary_down(&b);
    let s = a.wait_for(5 * S, "committing", |s| s.committing).await;
    let seen = |s: &failover_daemon::control::Status| {
        s.probes
            .iter()
            .map(|p| p.successes + p.failures)
            .sum::<u64>()
    };
    let before = seen(&s);
    let s = a
        .wait_for(2 * S, "probe results taken in meanwhile", |s| {
            s.committing && seen(s) >= before + 20
        })
        .await;
    assert!(s.committing);
    a.wait_for(10 * S, "committed", |s| {
        !s.committing
            && s.item
                .as_ref()
                .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    a.stop().await;
}

/// Defect 8: every instance changed DNS on every sync, from whichever copy it could
/// read. Only the acting instance does, from the commit region's state.
#[tokio::test(start_paused = true)]
async fn only_the_acting_instance_changes_dns() {
    let b = world();
    b.dns.set("somewhere-else");
    // A dead instance's lease: nobody may act until it runs out, so both live
    // instances start with the record wrong and neither leads yet.
    b.table(Role::Secondary).put(
        &keys::lease(APP),
        Record::Lease(LeaseRecord {
            owner: "d/gone".into(),
            token: 7,
            renewals: 3,
        }),
    );
    let route53 = "[route53]\nzone_id = \"Z123\"\nrecord_name = \"app.example.com\"\n\
                   primary_value = \"primary\"\nsecondary_value = \"secondary\"";
    let cfg = |me: &str| {
        settings_with(
            me,
            "",
            &format!("{}\n{route53}", coordination(&["a", "c", "d"], "3s")),
        )
    };
    let a = Node::start(cfg("a"), &b, 1);
    let c = Node::start(cfg("c"), &b, 2);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        b.dns.changes().is_empty(),
        "nobody acts while the dead owner's lease runs: {:?}",
        b.dns.changes()
    );
    a.wait_for(10 * S, "a leader", |s| s.leader.is_some()).await;
    tokio::time::sleep(5 * S).await;
    assert_eq!(b.dns.get().as_deref(), Some("primary"));
    let leader = [&a, &c]
        .into_iter()
        .position(|n| n.status().is_leader)
        .expect("one leads");
    let process = ["p1", "p2"][leader];
    let writers: Vec<String> = b.dns.changes().into_iter().map(|(w, _)| w).collect();
    assert!(!writers.is_empty());
    assert!(
        writers.iter().all(|w| w == process),
        "only the leader wrote: {writers:?}"
    );
    a.stop().await;
    c.stop().await;
}

/// Issue 17, item 5h: DNS is written under a version guard. Instance a commits
/// v1 (failover), its DNS call slow; meanwhile a human on c commits v2 (active) and
/// points the record at the primary. a's late write must not put its older value
/// back. Before: the record was changed after the commit without a version check.
#[tokio::test(start_paused = true)]
async fn a_late_dns_write_of_an_older_version_never_lands() {
    let b = world();
    let route53 = "[route53]\nzone_id = \"Z123\"\nrecord_name = \"app.example.com\"\n\
                   primary_value = \"primary\"\nsecondary_value = \"secondary\"";
    let a = Node::start(settings_with("a", "", route53), &b, 1);
    let c = Node::start(settings_with("c", "mode = \"manual\"", route53), &b, 2);
    for n in [&a, &c] {
        n.wait_for(5 * S, "ready", |s| s.ready).await;
    }
    tokio::time::sleep(2 * S).await;
    assert_eq!(b.dns.get().as_deref(), Some("primary"));
    b.dns.set_delay("p1", 10 * S);
    primary_down(&b);
    // a's commit lands; its DNS change, in the same task, waits.
    a.wait_for(5 * S, "a committing", |s| s.committing).await;
    for _ in 0..50 {
        if item(&b, Role::Secondary).is_some_and(|i| i.version == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(1));
    c.wait_for(5 * S, "c sees v1", |s| {
        s.item.as_ref().is_some_and(|i| i.version == 1)
    })
    .await;
    let done = c
        .handle
        .ask(|reply| Request::Move {
            to: AppState::Active,
            reason: "the on-call moves it back".into(),
            force: true,
            caller: "ana".into(),
            reply,
            lasts: None,
        })
        .await
        .expect("answer")
        .expect("committed");
    assert_eq!(done.item.version, 2);
    let after = b.dns.changes().len();
    assert_eq!(b.dns.get().as_deref(), Some("primary"));
    assert_eq!(b.dns.guard(), Some(2));
    tokio::time::sleep(15 * S).await;
    let late: Vec<_> = b.dns.changes()[after..].to_vec();
    assert!(
        late.iter().all(|(_, v)| v != "secondary"),
        "an older version's value was written back: {late:?}"
    );
    assert_eq!(b.dns.get().as_deref(), Some("primary"));
    a.kill();
    c.kill();
}

/// Defect 5: SIGHUP ignored `[coordination]`: removing it made an instance act alone
/// beside the leader. A change of it is refused with the reason.
#[tokio::test(start_paused = true)]
async fn a_reload_that_changes_coordination_is_refused() {
    let b = world();
    let a = Node::start(coordinated("a", &["a", "b", "c"], "3s"), &b, 1);
    a.wait_for(10 * S, "leader", |s| s.is_leader).await;
    let refused = a
        .handle
        .ask(|reply| Request::Reload {
            settings: Box::new(settings("a", "")),
            reply,
        })
        .await
        .expect("answer");
    assert!(refused.is_err_and(|e| e.contains("[coordination]")));
    assert!(a.status().quorum.is_some(), "still cooperating");
    a.stop().await;
}

/// Defect 10: a failed audit read during catch-up became "no records", and a copy
/// could reach version N with gaps never filled. Every missing record is copied
/// (in pages), or the copy is not moved.
#[tokio::test(start_paused = true)]
async fn a_catch_up_copies_every_missing_record_or_does_not_move_the_copy() {
    let b = world();
    let sec = b.table(Role::Secondary);
    for v in 1..=150 {
        let (from, to) = if v % 2 == 1 {
            (AppState::Active, AppState::Failover)
        } else {
            (AppState::Failover, AppState::Active)
        };
        if v != 77 {
            sec.put(&keys::audit(APP, v), Record::Audit(record(v, from, to)));
        }
    }
    sec.put(APP, Record::Item(at(AppState::Active, 150)));
    let a = Node::start(settings("a", ""), &b, 1);
    let s = a
        .wait_for(5 * S, "a divergence with the reason", |s| {
            s.divergence.is_some()
        })
        .await;
    assert!(
        s.divergence
            .as_deref()
            .is_some_and(|d| d.contains("version 77")),
        "{s:?}"
    );
    assert_eq!(
        item(&b, Role::Primary).map(|i| i.version),
        Some(0),
        "not moved"
    );
    sec.put(
        &keys::audit(APP, 77),
        Record::Audit(record(77, AppState::Active, AppState::Failover)),
    );
    a.wait_for(5 * S, "caught up", |s| {
        s.primary_item.as_ref().is_some_and(|i| i.version == 150)
    })
    .await;
    assert_eq!(audits(&b, Role::Primary).len(), 150);
    primary_up(&b);
    a.stop().await;
}

/// A manual move that waits behind a slow commit for longer than it may
/// (`control::move_wait`: 26 s with these settings' 1 s `write_timeout`) is dropped
/// unstarted, and says so. (The in-memory table never times out: the commit here is
/// slower than the SDK's timeouts would let it be.)
#[tokio::test(start_paused = true)]
async fn a_move_stuck_behind_a_commit_is_not_started_late() {
    let b = world();
    let a = Node::start(settings("a", ""), &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    b.table(Role::Secondary).set_faults(Faults {
        delay: Some(27 * S),
        ..Faults::default()
    });
    primary_down(&b);
    a.wait_for(5 * S, "committing", |s| s.committing).await;
    b.script.set("s-api", Answer::Ok);
    let answer = a
        .handle
        .ask(|reply| Request::Move {
            to: AppState::Fenced,
            reason: "hold writes".into(),
            force: true,
            caller: "ana".into(),
            reply,
            lasts: None,
        })
        .await
        .expect("answer");
    assert!(matches!(answer, Err(MoveError::Expired)), "{answer:?}");
    a.stop().await;
}

/// Found by the simulation (seed 21): a commit's follow-up wrote its own version and
/// record into a primary copy that lagged by more than one version, leaving a gap.
/// The follow-up only advances a copy from the version before; a lagging copy is
/// brought up by the sync, with every record.
#[tokio::test(start_paused = true)]
async fn a_commit_never_leaves_a_gap_in_a_lagging_copy() {
    use failover_daemon::action::{PrimaryCopy, Transition};
    let b = world();
    b.table(Role::Secondary)
        .put(APP, Record::Item(at(AppState::Fenced, 1)));
    b.table(Role::Secondary).put(
        &keys::audit(APP, 1),
        Record::Audit(record(1, AppState::Active, AppState::Fenced)),
    );
    let s = settings("a", "");
    let act = failover_daemon::backend::actuator(&b, &s, 1);
    let t = Transition {
        from: AppState::Fenced,
        to: AppState::Failover,
        expected_version: 1,
        from_at: None,
        reason: "still down".into(),
        evidence: serde_json::Value::Null,
        trigger: Trigger::Auto,
        by: "a".into(),
        forced: false,
        fence: None,
        lasts: None,
    };
    let outcome = act.transition(&t).await.expect("committed");
    let failover_daemon::action::Outcome::Committed { primary, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        matches!(primary, PrimaryCopy::Pending { .. }),
        "{primary:?}"
    );
    assert_eq!(
        item(&b, Role::Primary).map(|i| i.version),
        Some(0),
        "no jump over v1"
    );
    act.sync(false).await;
    assert_eq!(item(&b, Role::Primary).map(|i| i.version), Some(2));
    let versions: Vec<u64> = audits(&b, Role::Primary)
        .iter()
        .map(|a| a.version)
        .collect();
    assert_eq!(versions, [1, 2]);
}

const NEW_V1_AT: &str = "2027-01-02T00:00:00.000Z";

/// The primary's copy left at v1 by a copy write that landed after a re-seed, its
/// records deleted by the person who repaired the reset; the commit region has
/// since committed a new v1 and now v2 (found by the simulation, seed 41015774).
fn a_copy_from_before_a_reset(b: &failover_testkit::MemoryBackend, old_record: bool) {
    let (pri, sec) = (b.table(Role::Primary), b.table(Role::Secondary));
    let old = ConfigItem {
        updated_at: Some("2027-01-01T00:00:00.000Z".into()),
        updated_by: Some("old".into()),
        ..at(AppState::Fenced, 1)
    };
    pri.put(APP, Record::Item(old));
    if old_record {
        pri.put(
            &keys::audit(APP, 1),
            Record::Audit(record(1, AppState::Active, AppState::Fenced)),
        );
    }
    let new = AuditRecord {
        at: NEW_V1_AT.into(),
        by: "a".into(),
        reason: "this life".into(),
        ..record(1, AppState::Active, AppState::Fenced)
    };
    sec.put(
        APP,
        Record::Item(ConfigItem {
            updated_at: Some(new.at.clone()),
            updated_by: Some("a".into()),
            ..at(AppState::Fenced, 1)
        }),
    );
    sec.put(&keys::audit(APP, 1), Record::Audit(new));
}

/// The move a daemon decides from the commit region's v1 of
/// `a_copy_from_before_a_reset` (its `updatedAt` is that v1's record's `at`).
fn fenced_to_failover() -> failover_daemon::action::Transition {
    failover_daemon::action::Transition {
        from: AppState::Fenced,
        to: AppState::Failover,
        expected_version: 1,
        from_at: Some(NEW_V1_AT.into()),
        reason: "still down".into(),
        evidence: serde_json::Value::Null,
        trigger: Trigger::Auto,
        by: "a".into(),
        forced: false,
        fence: None,
        lasts: None,
    }
}

/// The commit's own copy moves the primary's copy from version f only while that
/// copy holds the commit region's record of f: a copy at v1 with none (or with an
/// old life's) is not the commit region's v1, and writing v2 and its record on top
/// would leave v1 unaudited, or audited wrong, there for good.
#[tokio::test(start_paused = true)]
async fn a_commit_does_not_build_on_a_copy_left_from_before_a_reset() {
    use failover_daemon::action::{Outcome, PrimaryCopy};
    for old_record in [false, true] {
        let b = world();
        a_copy_from_before_a_reset(&b, old_record);
        let act = failover_daemon::backend::actuator(&b, &settings("a", ""), 1);
        let outcome = act
            .transition(&fenced_to_failover())
            .await
            .expect("committed");
        let Outcome::Committed { primary, .. } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(
            matches!(primary, PrimaryCopy::Pending { .. }),
            "old record {old_record}: {primary:?}"
        );
        assert_eq!(
            item(&b, Role::Primary).map(|i| i.version),
            Some(1),
            "old record {old_record}: not moved over another life's v1"
        );
        act.sync(false).await;
        assert_eq!(item(&b, Role::Primary).map(|i| i.version), Some(2));
        assert_eq!(audits(&b, Role::Primary), audits(&b, Role::Secondary));
    }
}

/// A daemon's move carries the `updatedAt` of the item it starts from, so that the
/// commit's own copy checks the primary's record of that version is the commit
/// region's, not only that one exists (the sync, which would also settle it, runs
/// once an hour here, so it has only seen the two histories once).
#[tokio::test(start_paused = true)]
async fn a_daemons_move_does_not_build_on_another_historys_copy() {
    use failover_daemon::action::PrimaryCopy;
    let b = world();
    // as `a_copy_from_before_a_reset`, at v1 active (where a healthy primary stays)
    for (role, at, by) in [
        (Role::Primary, "2027-01-01T00:00:00.000Z", "old"),
        (Role::Secondary, NEW_V1_AT, "a"),
    ] {
        let t = b.table(role);
        let record = AuditRecord {
            at: at.into(),
            by: by.into(),
            ..record(1, AppState::Fenced, AppState::Active)
        };
        t.put(
            APP,
            Record::Item(ConfigItem {
                updated_at: Some(at.into()),
                updated_by: Some(by.into()),
                ..self::at(AppState::Active, 1)
            }),
        );
        t.put(&keys::audit(APP, 1), Record::Audit(record));
    }
    let mut slow_sync = settings("a", "");
    slow_sync.monitor.state_refresh = Duration::from_secs(3600);
    let a = Node::start(slow_sync, &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    let done = a
        .handle
        .ask(|reply| Request::Move {
            to: AppState::Failover,
            reason: "the on-call moves it on".into(),
            force: true,
            caller: "ana".into(),
            reply,
            lasts: None,
        })
        .await
        .expect("answer")
        .expect("a human's failover");
    assert_eq!(done.item.version, 2);
    assert!(
        matches!(done.primary, PrimaryCopy::Pending { .. }),
        "{:?}",
        done.primary
    );
    a.stop().await;
}

/// The sync brings a lagging copy up from its own version only when it holds the
/// same record of that version as the commit region; otherwise every record is
/// copied (here the copy kept the old life's record 1, and the commit's own copy
/// could not reach it).
#[tokio::test(start_paused = true)]
async fn the_sync_copies_every_record_over_a_copy_from_another_history() {
    let b = world();
    a_copy_from_before_a_reset(&b, true);
    let act = failover_daemon::backend::actuator(&b, &settings("a", ""), 1);
    b.table(Role::Primary).set_down(true);
    act.transition(&fenced_to_failover())
        .await
        .expect("committed");
    b.table(Role::Primary).set_down(false);
    act.sync(false).await;
    assert_eq!(item(&b, Role::Primary).map(|i| i.version), Some(2));
    let (ours, theirs) = (audits(&b, Role::Primary), audits(&b, Role::Secondary));
    assert_eq!(theirs.len(), 2);
    assert_eq!(ours, theirs, "record 1 is this life's, not the old one");
}

/// A lagging copy that holds the commit region's record of its own version is
/// brought up from there: only the later records are written, and an older record
/// the copy keeps (here one a person edited) is left as it is.
#[tokio::test(start_paused = true)]
async fn the_sync_copies_only_the_records_after_a_copy_of_the_same_history() {
    use failover_daemon::action::SyncAction;
    let b = world();
    let (pri, sec) = (b.table(Role::Primary), b.table(Role::Secondary));
    let r1 = record(1, AppState::Active, AppState::Fenced);
    let r2 = record(2, AppState::Fenced, AppState::Failover);
    let r3 = record(3, AppState::Failover, AppState::Active);
    for r in [&r1, &r2, &r3] {
        sec.put(&keys::audit(APP, r.version), Record::Audit(r.clone()));
    }
    sec.put(APP, Record::Item(at(AppState::Active, 3)));
    let kept = AuditRecord {
        reason: "annotated by hand in the primary".into(),
        ..r1.clone()
    };
    pri.put(&keys::audit(APP, 1), Record::Audit(kept.clone()));
    pri.put(&keys::audit(APP, 2), Record::Audit(r2.clone()));
    pri.put(APP, Record::Item(at(AppState::Failover, 2)));
    let act = failover_daemon::backend::actuator(&b, &settings("a", ""), 1);
    let done = act.sync(false).await.action;
    assert!(
        matches!(
            done,
            SyncAction::CaughtUp {
                from_version: Some(2),
                to_version: 3,
                ..
            }
        ),
        "{done:?}"
    );
    assert_eq!(item(&b, Role::Primary).map(|i| i.version), Some(3));
    let copy = |v| pri.get(&keys::audit(APP, v));
    assert_eq!(copy(3), Some(Record::Audit(r3)));
    assert_eq!(
        copy(1),
        Some(Record::Audit(kept)),
        "record 1 was not written again"
    );
}

/// A primary copy ahead of the commit region follows its reset on the second pass;
/// when its record of the commit region's version is another history's, the commit
/// region's records come with it (before: the item alone, over the old records).
#[tokio::test(start_paused = true)]
async fn a_copy_that_follows_a_reset_takes_the_commit_regions_records() {
    use failover_daemon::action::SyncAction;
    let b = world();
    a_copy_from_before_a_reset(&b, true);
    let pri = b.table(Role::Primary);
    pri.put(
        APP,
        Record::Item(ConfigItem {
            updated_at: Some("2027-01-01T00:00:00.000Z".into()),
            ..at(AppState::Failover, 2)
        }),
    );
    pri.put(
        &keys::audit(APP, 2),
        Record::Audit(record(2, AppState::Fenced, AppState::Failover)),
    );
    let act = failover_daemon::backend::actuator(&b, &settings("a", ""), 1);
    let first = act.sync(false).await.action;
    assert!(
        matches!(first, SyncAction::PrimaryAhead { .. }),
        "{first:?}"
    );
    let second = act.sync(false).await.action;
    assert!(
        matches!(second, SyncAction::FollowedReset { .. }),
        "{second:?}"
    );
    assert_eq!(item(&b, Role::Primary), item(&b, Role::Secondary));
    let record1 = |role| b.table(role).get(&keys::audit(APP, 1));
    assert_eq!(record1(Role::Primary), record1(Role::Secondary));
}

/// A primary copy at the commit region's version but of another history (another
/// record of that version) follows the commit region, records included, once seen
/// twice; at the same version with the same record and another state, it is a
/// divergence for a human, as before.
#[tokio::test(start_paused = true)]
async fn a_copy_of_another_history_at_the_same_version_follows_the_commit_region() {
    use failover_daemon::action::SyncAction;
    let b = world();
    a_copy_from_before_a_reset(&b, true);
    let act = failover_daemon::backend::actuator(&b, &settings("a", ""), 1);
    let first = act.sync(false).await.action;
    assert_eq!(first, SyncAction::OtherHistory { version: 1 });
    assert_ne!(item(&b, Role::Primary), item(&b, Role::Secondary));
    let second = act.sync(false).await.action;
    assert!(
        matches!(second, SyncAction::FollowedReset { .. }),
        "{second:?}"
    );
    assert_eq!(item(&b, Role::Primary), item(&b, Role::Secondary));
    assert_eq!(audits(&b, Role::Primary), audits(&b, Role::Secondary));
    assert_eq!(act.sync(false).await.action, SyncAction::None);
    // same history and state, the primary's metadata edited by hand: nothing to
    // settle (only the state and the records matter)
    let theirs = item(&b, Role::Secondary).expect("item");
    b.table(Role::Primary).put(
        APP,
        Record::Item(ConfigItem {
            reason: Some("edited by hand".into()),
            ..theirs
        }),
    );
    for _ in 0..2 {
        assert_eq!(act.sync(false).await.action, SyncAction::None);
    }
    // same history, another state: written outside the protocol
    let theirs = item(&b, Role::Secondary).expect("item");
    b.table(Role::Primary).put(
        APP,
        Record::Item(ConfigItem {
            state: AppState::Active,
            ..theirs
        }),
    );
    for _ in 0..2 {
        let action = act.sync(false).await.action;
        assert!(matches!(action, SyncAction::Diverged { .. }), "{action:?}");
    }
}

/// Found by the simulation (seed 42031154): a commit's copy of v1 failover, sent
/// before a re-seed, lands on the primary after it; the person then sets the commit
/// region's version back to the newest record's (1), in the re-seeded state. Both
/// copies hold the same record 1 and differ in state. The primary's copy is exactly
/// what record 1 wrote, so the other state was written in the commit region (the
/// truth): the copy follows it on the second pass. (A primary copy written by hand,
/// as the original stack's `switch-state` does, stays a divergence for a human:
/// the end of the test before.)
#[tokio::test(start_paused = true)]
async fn a_copy_follows_the_commit_regions_state_set_by_hand_at_the_same_version() {
    use failover_daemon::action::SyncAction;
    let b = world();
    let monitors = AuditRecord {
        at: NEW_V1_AT.into(),
        by: "a".into(),
        ..record(1, AppState::Active, AppState::Failover)
    };
    for role in Role::BOTH {
        b.table(role)
            .put(&keys::audit(APP, 1), Record::Audit(monitors.clone()));
    }
    b.table(Role::Primary).put(
        APP,
        Record::Item(ConfigItem {
            updated_at: Some(NEW_V1_AT.into()),
            updated_by: Some("a".into()),
            ..at(AppState::Failover, 1)
        }),
    );
    b.table(Role::Secondary).put(
        APP,
        Record::Item(ConfigItem {
            updated_at: Some("2027-01-03T00:00:00.000Z".into()),
            updated_by: Some("admin:repair".into()),
            ..at(AppState::Active, 1)
        }),
    );
    let act = failover_daemon::backend::actuator(&b, &settings("a", ""), 1);
    let first = act.sync(false).await.action;
    assert!(matches!(first, SyncAction::Diverged { .. }), "{first:?}");
    let second = act.sync(false).await.action;
    assert!(
        matches!(second, SyncAction::FollowedReset { .. }),
        "{second:?}"
    );
    assert_eq!(item(&b, Role::Primary), item(&b, Role::Secondary));
    assert_eq!(audits(&b, Role::Primary), vec![monitors]);
}

/// The two passes a primary copy ahead of the commit region must be seen on are two
/// passes in a row: a pass in between where the copies agree, or where the primary
/// lags, starts the count again (found by a mutation of the rule that keeps the
/// memory: `s.version < p.version` into `<=`).
#[tokio::test(start_paused = true)]
async fn a_copy_ahead_follows_only_after_two_passes_in_a_row() {
    use failover_daemon::action::SyncAction;
    let b = world();
    let (pri, sec) = (b.table(Role::Primary), b.table(Role::Secondary));
    for v in 1..=3 {
        for t in [&pri, &sec] {
            t.put(
                &keys::audit(APP, v),
                Record::Audit(record(v, AppState::Active, AppState::Failover)),
            );
        }
    }
    let (ahead, commit) = (at(AppState::Failover, 3), at(AppState::Failover, 2));
    let seeded = |by: &str| ConfigItem {
        updated_by: Some(by.into()),
        ..at(AppState::Active, 0)
    };
    // between the two sightings: the copies agree; the primary lags (and is caught
    // up); both are at version 0, different items
    for (p, s) in [
        (commit.clone(), commit.clone()),
        (at(AppState::Failover, 1), commit.clone()),
        (seeded("ana"), seeded("bo")),
    ] {
        let act = failover_daemon::backend::actuator(&b, &settings("a", ""), 1);
        pri.put(APP, Record::Item(ahead.clone()));
        sec.put(APP, Record::Item(commit.clone()));
        let first = act.sync(false).await.action;
        assert!(
            matches!(first, SyncAction::PrimaryAhead { .. }),
            "{first:?}"
        );
        pri.put(APP, Record::Item(p));
        sec.put(APP, Record::Item(s));
        act.sync(false).await;
        pri.put(APP, Record::Item(ahead.clone()));
        sec.put(APP, Record::Item(commit.clone()));
        let again = act.sync(false).await.action;
        assert!(
            matches!(again, SyncAction::PrimaryAhead { .. }),
            "counted from the start again: {again:?}"
        );
        assert_eq!(item(&b, Role::Primary), Some(ahead.clone()));
    }
}

/// The commit region's item deleted by hand is restored from the primary's copy,
/// records included (the sync never writes over an item there, but puts a missing
/// one back).
#[tokio::test(start_paused = true)]
async fn a_deleted_commit_region_item_is_restored_from_the_primary() {
    use failover_daemon::action::SyncAction;
    let b = world();
    let pri = b.table(Role::Primary);
    pri.put(APP, Record::Item(at(AppState::Failover, 2)));
    for v in 1..=2 {
        pri.put(
            &keys::audit(APP, v),
            Record::Audit(record(v, AppState::Active, AppState::Failover)),
        );
    }
    b.table(Role::Secondary).delete(APP);
    let act = failover_daemon::backend::actuator(&b, &settings("a", ""), 1);
    let action = act.sync(false).await.action;
    assert!(
        matches!(
            action,
            SyncAction::CaughtUp {
                region: Role::Secondary,
                ..
            }
        ),
        "{action:?}"
    );
    assert_eq!(item(&b, Role::Secondary), item(&b, Role::Primary));
    assert_eq!(audits(&b, Role::Secondary), audits(&b, Role::Primary));
}

/// A commit the table throttles writes nothing and is tried again after a backoff
/// that belongs to the move: the failover comes once the table takes writes, once.
#[tokio::test(start_paused = true)]
async fn a_throttled_commit_is_retried_and_commits_once() {
    let b = world();
    b.table(Role::Secondary).set_faults(Faults {
        throttle: 3,
        ..Faults::default()
    });
    let a = Node::start(settings("a", ""), &b, 1);
    a.wait_for(5 * S, "ready", |s| s.ready).await;
    primary_down(&b);
    a.wait_for(20 * S, "failover", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    assert_eq!(
        a.metric("failover_monitor_commit_attempts_total{outcome=\"busy\"}"),
        3.0
    );
    assert_eq!(a.transitions(), 1);
    assert_eq!(audits(&b, Role::Secondary).len(), 1);
    a.stop().await;
}

/// Whether a status shows the item in `want`.
fn state(want: AppState) -> impl Fn(&failover_daemon::control::Status) -> bool {
    move |s| s.item.as_ref().is_some_and(|i| i.state == want)
}

/// One instance with `fence_for = "2s"` and `max_fence`, fenced by a primary outage:
/// the node and its status once the item is fenced.
async fn fenced_by_an_outage(
    b: &failover_testkit::MemoryBackend,
    max_fence: &str,
) -> (Node, failover_daemon::control::Status) {
    let a = Node::start(
        settings(
            "a",
            &format!("fence_for = \"2s\"\nmax_fence = \"{max_fence}\""),
        ),
        b,
        1,
    );
    a.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    primary_down(b);
    let fenced = a
        .wait_for(Duration::from_secs(30), "fenced", state(AppState::Fenced))
        .await;
    (a, fenced)
}

/// With `fence_for`, the acting instance measures replication while its fence
/// holds: once its canaries (config and data tables) arrive in the secondary, the
/// failover goes ahead at once, not at the end of `max_fence`.
#[tokio::test(start_paused = true)]
async fn a_fence_fails_over_as_soon_as_the_canaries_arrive() {
    let b = world();
    let (a, _) = fenced_by_an_outage(&b, "10m").await;
    // Replication, by hand: the canaries are carried over as they are written.
    let (config, data) = (keys::canary(APP, "a"), keys::data_canary(APP, "a"));
    let carry = async {
        loop {
            for (tables, key) in [(&b.tables, &config), (&b.data, &data)] {
                if let Some(r) = tables[0].get(key) {
                    tables[1].put(key, r);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let failed_over = tokio::select! {
        s = a.wait_for(Duration::from_secs(60), "failed over", state(AppState::Failover)) => s,
        () = carry => unreachable!(),
    };
    let reason = failed_over.item.and_then(|i| i.reason).unwrap_or_default();
    assert!(reason.contains("canary arrived"), "{reason}");
    a.kill();
}

/// Canaries that never arrive hold the failover until `max_fence` ends the fence:
/// a measurement that did not see them is no reason to go ahead.
#[tokio::test(start_paused = true)]
async fn a_fence_whose_canaries_never_arrive_lasts_until_max_fence() {
    let b = world();
    let (a, fenced) = fenced_by_an_outage(&b, "2m").await;
    let fenced_at = tokio::time::Instant::now();
    // No replication: the canaries stay in the primary; the secondary holds only
    // older ones (another measurement's nonce), which are no arrival.
    for (tables, key) in [
        (&b.tables, keys::canary(APP, "a")),
        (&b.data, keys::data_canary(APP, "a")),
    ] {
        tables[1].put(&key, Record::Canary("an older nonce".into()));
    }
    let failed_over = a
        .wait_for(
            Duration::from_secs(5 * 60),
            "failed over",
            state(AppState::Failover),
        )
        .await;
    let waited = fenced_at.elapsed();
    assert!(
        waited >= Duration::from_secs(100),
        "failed over {waited:?} after the fence (v{})",
        fenced.item.map_or(0, |i| i.version)
    );
    let reason = failed_over.item.and_then(|i| i.reason).unwrap_or_default();
    assert!(!reason.contains("canary arrived"), "{reason}");
    // The audit record says what was measured: which canaries did not arrive.
    let evidence = audits(&b, Role::Secondary)
        .into_iter()
        .find(|r| r.to == AppState::Failover)
        .map(|r| r.evidence["replication"].clone())
        .expect("the failover's record");
    assert_eq!(evidence["canary_arrived"], false);
    assert_eq!(
        evidence["detail"],
        "config and data canary not seen in the secondary after 2000 ms"
    );
    a.kill();
}

/// Only the acting instance measures replication (it writes canaries in the
/// primary): a follower, its leader killed holding a long lease, writes none while
/// the monitor's fence holds.
#[tokio::test(start_paused = true)]
async fn a_follower_writes_no_canary_during_a_fence() {
    let b = world();
    let extra = "fence_for = \"2s\"\nmax_fence = \"10m\"";
    let start = |me: &str, seed| {
        Node::start(
            settings_with(me, extra, &coordination(&["a", "c"], "10m")),
            &b,
            seed,
        )
    };
    let a = start("a", 1);
    a.wait_for(Duration::from_secs(10), "a leader", |s| s.is_leader)
        .await;
    let c = start("c", 2);
    c.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    a.kill();
    // The monitor's fence, as the leader wrote it.
    for role in [Role::Primary, Role::Secondary] {
        b.table(role)
            .put(APP, Record::Item(at(AppState::Fenced, 1)));
    }
    c.wait_for(Duration::from_secs(5), "the fence seen", |s| {
        s.item.as_ref().is_some_and(|i| i.state == AppState::Fenced)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!c.status().is_leader, "the lease of the killed leader runs");
    assert_eq!(b.tables[0].get(&keys::canary(APP, "c")), None);
    assert_eq!(b.data[0].get(&keys::data_canary(APP, "c")), None);
    c.kill();
}
