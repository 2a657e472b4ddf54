//! Hold-down, failback, and the fence with its replication measurement.

use super::*;

#[tokio::test(start_paused = true)]
async fn hold_down_delays_the_next_automatic_move() {
    let mut p = policy(
        PolicyConfig {
            failback: Failback::Auto,
            failback_after: Duration::from_secs(10),
            ..cfg()
        },
        1,
        1,
        1,
        1,
    );
    let t0 = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, t0);
    feed(&mut p, [1], true, 1, t0);
    feed(&mut p, [0], false, 1, t0);
    let Verdict::Act(d) = p.evaluate(t0) else {
        panic!()
    };
    p.committed(item(d.to, 1), t0);

    // the primary comes straight back: failback is due after 10 s, but hold_down is 300 s
    advance(Duration::from_secs(1)).await;
    feed(&mut p, [0], true, 1, Instant::now());
    advance(Duration::from_secs(60)).await;
    let now = Instant::now();
    feed(&mut p, [0], true, 1, now);
    match p.evaluate(now) {
        Verdict::Blocked {
            wanted,
            because: Blocked::HoldDown { remaining_ms },
        } => {
            assert_eq!(wanted.to, AppState::Active);
            assert_eq!(remaining_ms, 239_000);
        }
        v => panic!("{v:?}"),
    }
    advance(Duration::from_secs(240)).await;
    let now = Instant::now();
    assert_eq!(target(&p.evaluate(now)), Some(AppState::Active));
}

#[tokio::test(start_paused = true)]
async fn hold_down_counts_from_a_transition_seen_in_the_item() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Failover, 1), None, t0);
    // someone (a human, another monitor) moved it back to active
    advance(Duration::from_secs(5)).await;
    let t1 = Instant::now();
    p.observe_item(item(AppState::Active, 2), None, t1);
    p.observe(&obs(1, true, t1));
    p.observe(&obs(0, false, t1));
    assert!(matches!(
        p.evaluate(t1),
        Verdict::Blocked {
            because: Blocked::HoldDown {
                remaining_ms: 300_000
            },
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_freshly_seeded_item_is_not_a_transition_and_holds_nothing_down() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let t0 = Instant::now();
    // `provision apply` seeds version 0 with updatedAt = now.
    p.observe_item(item(AppState::Active, 0), Some(t0), t0);
    p.observe(&obs(1, true, t0));
    p.observe(&obs(0, false, t0));
    assert_eq!(target(&p.evaluate(t0)), Some(AppState::Failover));
    // The same item at version 1 written just now is a transition: held down.
    let mut p = policy(cfg(), 1, 1, 1, 1);
    p.observe_item(item(AppState::Active, 1), Some(t0), t0);
    p.observe(&obs(1, true, t0));
    p.observe(&obs(0, false, t0));
    assert!(matches!(
        p.evaluate(t0),
        Verdict::Blocked {
            because: Blocked::HoldDown { .. },
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn failback_manual_never_moves_back_on_its_own() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Failover, 1), None, t0);
    for _ in 0..100 {
        advance(Duration::from_secs(60)).await;
        let now = Instant::now();
        feed(&mut p, 0..2, true, 1, now);
        assert_eq!(target(&p.evaluate(now)), None);
    }
}

#[tokio::test(start_paused = true)]
async fn failback_auto_waits_for_failback_after_of_continuous_health() {
    let c = PolicyConfig {
        failback: Failback::Auto,
        failback_after: Duration::from_secs(600),
        hold_down: Duration::ZERO,
        ..cfg()
    };
    let mut p = policy(c, 1, 1, 1, 1);
    p.observe_item(item(AppState::Failover, 1), None, Instant::now());
    feed(&mut p, 0..2, true, 1, Instant::now());
    advance(Duration::from_secs(500)).await;
    // a blip resets the clock
    feed(&mut p, [0], false, 1, Instant::now());
    feed(&mut p, [0], true, 1, Instant::now());
    advance(Duration::from_secs(599)).await;
    assert_eq!(target(&p.evaluate(Instant::now())), None);
    advance(Duration::from_secs(1)).await;
    assert_eq!(target(&p.evaluate(Instant::now())), Some(AppState::Active));
}

#[tokio::test(start_paused = true)]
async fn a_human_failover_is_not_undone_by_auto_failback() {
    let c = PolicyConfig {
        failback: Failback::Auto,
        failback_after: Duration::ZERO,
        hold_down: Duration::ZERO,
        ..cfg()
    };
    let mut p = policy(c, 1, 1, 1, 1);
    let mut it = item(AppState::Failover, 3);
    it.updated_by = Some("admin:alice".into());
    p.observe_item(it, None, Instant::now());
    feed(&mut p, 0..2, true, 3, Instant::now());
    advance(Duration::from_secs(3600)).await;
    assert!(matches!(p.evaluate(Instant::now()), Verdict::Hold { .. }));
}

#[tokio::test(start_paused = true)]
async fn fence_for_goes_through_fenced_and_waits_before_failover() {
    let c = PolicyConfig {
        fence_for: Duration::from_secs(30),
        ..cfg()
    };
    let mut p = policy(c, 1, 1, 1, 1);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, t0);
    feed(&mut p, [1], true, 1, t0);
    feed(&mut p, [0], false, 1, t0);
    let Verdict::Act(d) = p.evaluate(t0) else {
        panic!()
    };
    assert_eq!(d.to, AppState::Fenced);
    p.committed(item(AppState::Fenced, 1), t0);

    advance(Duration::from_secs(29)).await;
    assert!(matches!(p.evaluate(Instant::now()), Verdict::Hold { .. }));
    advance(Duration::from_secs(1)).await;
    // completing the fence is not subject to hold_down (300 s)
    let Verdict::Act(d) = p.evaluate(Instant::now()) else {
        panic!()
    };
    assert_eq!(
        (d.from, d.to, d.expected_version),
        (AppState::Fenced, AppState::Failover, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_fence_is_lifted_when_the_primary_recovers() {
    let c = PolicyConfig {
        fence_for: Duration::from_secs(30),
        ..cfg()
    };
    let mut p = policy(c, 1, 1, 1, 1);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Fenced, 1), Some(t0), t0);
    advance(Duration::from_secs(5)).await;
    feed(&mut p, 0..2, true, 1, Instant::now());
    let Verdict::Act(d) = p.evaluate(Instant::now()) else {
        panic!()
    };
    assert_eq!(d.to, AppState::Active);
}

#[tokio::test(start_paused = true)]
async fn a_human_fence_is_left_alone() {
    let c = PolicyConfig {
        fence_for: Duration::from_secs(1),
        ..cfg()
    };
    let mut p = policy(c, 1, 1, 1, 1);
    let mut it = item(AppState::Fenced, 1);
    it.updated_by = Some("cli:root".into());
    p.observe_item(it, None, Instant::now());
    for ok in [true, false] {
        feed(&mut p, [0], ok, 1, Instant::now());
        advance(Duration::from_secs(60)).await;
        assert!(matches!(p.evaluate(Instant::now()), Verdict::Hold { .. }));
    }
}

/// While fenced: at least fence_for; then as soon as a measurement taken during the
/// fence shows the replication canary arrived, at the latest at max_fence. The
/// measurement is in the evidence (the canary items' lag; the reason says that is all
/// that was measured).
#[tokio::test(start_paused = true)]
async fn a_fence_waits_for_replication_to_drain_up_to_max_fence() {
    let c = PolicyConfig {
        fence_for: Duration::from_secs(5),
        max_fence: Duration::from_secs(60),
        ..cfg()
    };
    for drains_at in [Some(20u64), None] {
        let mut p = policy(c.clone(), 1, 1, 1, 1);
        let t0 = Instant::now();
        feed(&mut p, [0], false, 1, t0);
        feed(&mut p, [1], true, 1, t0);
        // a measurement from before the fence does not count
        p.observe_replication(Replication {
            at: t0,
            canary_arrived: true,
            lag_ms: Some(1),
            items: vec!["config: app#canary#a".into()],
            detail: String::new(),
        });
        advance(Duration::from_millis(1)).await;
        p.observe_item(
            item(AppState::Fenced, 1),
            Some(Instant::now()),
            Instant::now(),
        );
        assert!(p.measuring_replication());
        let fenced = Instant::now();
        let mut moved_at = None;
        for s in 1..=70u64 {
            advance(Duration::from_secs(1)).await;
            let now = Instant::now();
            let drained = drains_at.is_some_and(|d| s >= d);
            p.observe_replication(Replication {
                at: now,
                canary_arrived: drained,
                lag_ms: drained.then_some(850),
                items: vec!["config: app#canary#a".into()],
                detail: if drained {
                    "canary seen".into()
                } else {
                    "canary not seen yet".into()
                },
            });
            if let Verdict::Act(d) = p.evaluate(now) {
                assert_eq!(d.to, AppState::Failover);
                let r = &d.evidence["replication"];
                assert_eq!(r["canary_arrived"], drained);
                assert_eq!(r["drained"], drained, "the earlier name, kept");
                assert_eq!(r["items"][0], "config: app#canary#a");
                assert!(!d.reason.contains("drained"), "{}", d.reason);
                assert!(
                    d.reason.contains(if drained {
                        "not measured"
                    } else {
                        "nothing was confirmed"
                    }),
                    "{}",
                    d.reason
                );
                moved_at = Some((now - fenced).as_secs());
                break;
            }
        }
        match drains_at {
            Some(d) => assert_eq!(moved_at, Some(d)),
            None => assert_eq!(moved_at, Some(60)),
        }
    }
}

/// Acting alone, a process resumed after a stop does not fail over on the probe
/// results it had before the stop: it waits for fresh ones, which decide.
#[tokio::test(start_paused = true)]
async fn a_resumed_process_waits_for_fresh_evidence_before_failing_over() {
    let c = PolicyConfig {
        hold_down: Duration::ZERO,
        evidence_ttl: Duration::from_secs(2),
        ..cfg()
    };
    let mut p = policy(c, 1, 1, 1, 1);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, t0);
    feed(&mut p, [1], true, 1, t0);
    feed(&mut p, [0], false, 1, t0);
    assert!(matches!(p.evaluate(t0), Verdict::Act(_)));
    // stopped for 10 s: the same results, now stale
    let later = t0 + Duration::from_secs(10);
    match p.evaluate(later) {
        Verdict::Hold { why } => assert!(why.contains("waiting for fresh probe results"), "{why}"),
        other => panic!("acted on stale evidence: {other:?}"),
    }
    // fresh results say the primary is back: nothing to do
    feed(&mut p, [0, 1], true, 1, later);
    assert!(!matches!(p.evaluate(later), Verdict::Act(_)));
    // fresh results say it is still down: the failover is wanted again
    feed(&mut p, [0], false, 1, later);
    feed(&mut p, [1], true, 1, later);
    assert!(matches!(p.evaluate(later), Verdict::Act(_)));
}

/// A probe that is down but answered its last check (rise not reached yet) holds a
/// new failover: a process resumed after a stop finds the primary back.
#[tokio::test(start_paused = true)]
async fn a_down_probe_that_just_answered_holds_a_failover() {
    let c = PolicyConfig {
        hold_down: Duration::ZERO,
        ..cfg()
    };
    let mut p = policy(c, 1, 1, 1, 3);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, t0);
    feed(&mut p, [1], true, 3, t0);
    feed(&mut p, [0], false, 1, t0);
    assert!(matches!(p.evaluate(t0), Verdict::Act(_)));
    feed(&mut p, [0], true, 1, t0);
    assert!(!matches!(p.evaluate(t0), Verdict::Act(_)));
    feed(&mut p, [0], false, 1, t0);
    assert!(matches!(p.evaluate(t0), Verdict::Act(_)));
}

/// A fence the monitors set is lifted only when the primary is up: a process that
/// does not know its probes yet (just started, or its results stale) leaves it.
#[tokio::test(start_paused = true)]
async fn a_fence_is_lifted_only_on_a_primary_that_is_up() {
    let c = PolicyConfig {
        hold_down: Duration::ZERO,
        fence_for: Duration::from_secs(5),
        max_fence: Duration::from_secs(5),
        ..cfg()
    };
    let mut p = policy(c, 1, 1, 1, 1);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Fenced, 1), Some(t0), t0);
    match p.evaluate(t0) {
        Verdict::Hold { why } => assert!(why.contains("neither down"), "{why}"),
        other => panic!("moved on unknown probes: {other:?}"),
    }
    let later = t0 + Duration::from_secs(10);
    assert!(
        !matches!(p.evaluate(later), Verdict::Act(_)),
        "carried on to failover on unknown probes"
    );
    feed(&mut p, [0, 1], true, 1, later);
    assert_eq!(target(&p.evaluate(later)), Some(AppState::Active));
}

/// Issue 17, item 5d: a fence the monitors set, whose quorum was lost mid-fence (the
/// primary neither down on fresh evidence nor up), is lifted once it is older than
/// `fence_expiry`, not kept for ever with every write blocked.
#[tokio::test(start_paused = true)]
async fn a_fence_without_a_quorum_expires_instead_of_blocking_writes_for_ever() {
    let c = PolicyConfig {
        hold_down: Duration::ZERO,
        fence_for: Duration::from_secs(5),
        max_fence: Duration::from_secs(5),
        fence_expiry: Duration::from_secs(60),
        ..cfg()
    };
    let mut p = policy(c, 1, 1, 1, 1);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, t0);
    feed(&mut p, [1], true, 1, t0);
    feed(&mut p, [0], false, 1, t0);
    p.set_coordination(Some(Coordination {
        leader: true,
        leader_id: Some("a".into()),
        configured: 3,
        others_live: 1,
        others_down: 1,
        max_evidence_age: Duration::from_secs(10),
        quorum: crate::rules::QuorumRule::Majority,
        mismatch: Vec::new(),
    }));
    assert_eq!(target(&p.evaluate(t0)), Some(AppState::Fenced));
    p.committed(item(AppState::Fenced, 1), t0);
    // The peer dies: its vote is gone, the quorum with it.
    p.set_coordination(Some(Coordination {
        leader: true,
        leader_id: Some("a".into()),
        configured: 3,
        others_live: 0,
        others_down: 0,
        max_evidence_age: Duration::from_secs(10),
        quorum: crate::rules::QuorumRule::Majority,
        mismatch: Vec::new(),
    }));
    for secs in [10, 30, 59] {
        let at = t0 + Duration::from_secs(secs);
        feed(&mut p, [0], false, 1, at);
        assert_eq!(target(&p.evaluate(at)), None, "{secs} s: still waiting");
    }
    let at = t0 + Duration::from_secs(60);
    feed(&mut p, [0], false, 1, at);
    match p.evaluate(at) {
        Verdict::Act(d) => {
            assert_eq!(d.to, AppState::Active);
            assert!(d.reason.contains("fence expired"), "{}", d.reason);
        }
        other => panic!("the fence was kept: {other:?}"),
    }
}

/// What the daemon reads of a fence: how long it has lasted (for its status), and
/// whether replication is to be measured now, which is only in a fence of ours: not
/// before it, not in a human's (a human ends it).
#[tokio::test(start_paused = true)]
async fn a_fence_of_ours_is_timed_and_measured_a_humans_is_not_measured() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, t0);
    assert!(!p.measuring_replication());
    assert_eq!(p.fenced_for(t0), None);
    p.committed(item(AppState::Fenced, 1), t0);
    assert!(p.measuring_replication());
    assert_eq!(
        p.fenced_for(t0 + Duration::from_secs(3)),
        Some(Duration::from_secs(3))
    );
    p.committed(item(AppState::Active, 2), t0);
    assert!(!p.measuring_replication());
    assert_eq!(p.fenced_for(t0 + Duration::from_secs(3)), None);
    let human = ConfigItem {
        updated_by: Some("admin:ana".into()),
        ..item(AppState::Fenced, 3)
    };
    p.committed(human, t0);
    assert!(!p.measuring_replication(), "a human's fence");
    assert!(p.fenced_for(t0).is_some());
}

/// A reload keeps how long the primary has been up (the automatic failback's
/// timer) while the primary stays up through it.
#[tokio::test(start_paused = true)]
async fn a_reload_keeps_the_failback_timer_while_the_primary_stays_up() {
    let c = PolicyConfig {
        failback: Failback::Auto,
        failback_after: Duration::from_secs(10),
        hold_down: Duration::ZERO,
        ..cfg()
    };
    let mut p = policy(c.clone(), 1, 1, 1, 1);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Failover, 1), None, t0);
    feed(&mut p, [0, 1], true, 1, t0);
    advance(Duration::from_secs(8)).await;
    p.reconfigure(
        c,
        [
            ("p0".to_string(), Role::Primary, 1, 1),
            ("s0".to_string(), Role::Secondary, 1, 1),
        ],
    );
    advance(Duration::from_secs(3)).await;
    assert_eq!(
        target(&p.evaluate(Instant::now())),
        Some(AppState::Active),
        "up for 11 s, reload included"
    );
}

/// The hold-down ends exactly `hold_down` after the last transition: a millisecond
/// before, the move waits that millisecond; at the end it is made.
#[tokio::test(start_paused = true)]
async fn the_hold_down_ends_exactly_at_its_length() {
    let mut c = cfg();
    c.hold_down = Duration::from_secs(10);
    let mut p = policy(c, 1, 1, 1, 1);
    let t0 = Instant::now();
    p.committed(item(AppState::Failover, 1), t0);
    p.committed(item(AppState::Active, 2), t0);
    feed(&mut p, [1], true, 1, t0);
    feed(&mut p, [0], false, 1, t0);
    let before = t0 + Duration::from_millis(9_999);
    assert!(matches!(
        p.evaluate(before),
        Verdict::Blocked {
            because: Blocked::HoldDown { remaining_ms: 1 },
            ..
        }
    ));
    let end = t0 + Duration::from_secs(10);
    assert_eq!(target(&p.evaluate(end)), Some(AppState::Failover));
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_a_probes_health_only_with_the_same_fall_and_rise() {
    let mut p = policy(cfg(), 1, 1, 3, 2);
    let now = Instant::now();
    feed(&mut p, [0, 1], true, 2, now);
    let health = |p: &Policy| {
        p.probe_views(now)
            .iter()
            .map(|v| v.health)
            .collect::<Vec<_>>()
    };
    assert_eq!(health(&p), vec![Health::Up, Health::Up]);
    let probes = |fall| {
        [
            ("p0".to_owned(), Role::Primary, fall, 2),
            ("s0".to_owned(), Role::Secondary, 3, 2),
        ]
    };
    p.reconfigure(cfg(), probes(3));
    assert_eq!(
        health(&p),
        vec![Health::Up, Health::Up],
        "same thresholds: kept"
    );
    p.reconfigure(cfg(), probes(5));
    assert_eq!(
        health(&p),
        vec![Health::Unknown, Health::Up],
        "another fall: judged anew"
    );
}
