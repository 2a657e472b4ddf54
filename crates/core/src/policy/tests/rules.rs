//! The region rule, fall/rise, modes and safety rules, and the 1,000-hour random-loss simulation.

use super::*;

#[tokio::test(start_paused = true)]
async fn healthy_regions_hold() {
    let mut p = policy(cfg(), 2, 1, 3, 2);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    feed(&mut p, 0..3, true, 5, now);
    assert_eq!(
        p.evaluate(now),
        Verdict::Hold {
            why: "primary healthy".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_happens_before_the_item_is_known() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    feed(&mut p, [0], false, 3, now);
    feed(&mut p, [1], true, 3, now);
    assert!(matches!(p.evaluate(now), Verdict::Hold { .. }));
}

/// The region rule, table-driven: (rule, primary probes, how many are down, fails over?)
#[tokio::test(start_paused = true)]
async fn region_rules_count_down_probes() {
    let cases = [
        (RegionRule::Any, 3, 0, false),
        (RegionRule::Any, 3, 1, true),
        (RegionRule::All, 3, 2, false),
        (RegionRule::All, 3, 3, true),
        (RegionRule::Majority, 3, 1, false),
        (RegionRule::Majority, 3, 2, true),
        (RegionRule::Majority, 4, 2, false),
        (RegionRule::Majority, 4, 3, true),
        (RegionRule::AtLeast { n: 2, m: 4 }, 4, 1, false),
        (RegionRule::AtLeast { n: 2, m: 4 }, 4, 2, true),
    ];
    for (rule, total, down, fails_over) in cases {
        let mut p = policy(PolicyConfig { rule, ..cfg() }, total, 1, 2, 1);
        let now = Instant::now();
        p.observe_item(item(AppState::Active, 4), None, now);
        feed(&mut p, [total], true, 2, now); // the secondary probe
        feed(&mut p, 0..down, false, 2, now);
        feed(&mut p, down..total, true, 2, now);
        let v = p.evaluate(now);
        assert_eq!(
            target(&v) == Some(AppState::Failover),
            fails_over,
            "{rule} with {down} of {total} down: {v:?}"
        );
        if let Verdict::Act(d) = v {
            assert_eq!((d.from, d.expected_version), (AppState::Active, 4));
            assert_eq!(d.evidence["primary_down"], down);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn fewer_than_fall_failures_do_not_fail_over() {
    let mut p = policy(cfg(), 1, 1, 3, 2);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    feed(&mut p, [1], true, 2, now);
    feed(&mut p, [0], true, 2, now);
    feed(&mut p, [0], false, 2, now);
    assert_eq!(target(&p.evaluate(now)), None);
    feed(&mut p, [0], false, 1, now);
    assert_eq!(target(&p.evaluate(now)), Some(AppState::Failover));
}

/// (mode, paused, secondary healthy) -> expected block
#[tokio::test(start_paused = true)]
async fn modes_pause_and_safety_rules_block_a_wanted_failover() {
    let cases = [
        (Mode::Auto, false, true, None),
        (Mode::Manual, false, true, Some(Blocked::ManualMode)),
        (Mode::DryRun, false, true, Some(Blocked::DryRun)),
        (Mode::Auto, true, true, Some(Blocked::Paused)),
        (
            Mode::Auto,
            false,
            false,
            Some(Blocked::SecondaryUnhealthy {
                down: vec!["s0".into()],
            }),
        ),
    ];
    for (mode, paused, secondary_ok, expected) in cases {
        let mut p = policy(PolicyConfig { mode, ..cfg() }, 1, 1, 1, 1);
        let now = Instant::now();
        p.observe_item(item(AppState::Active, 0), None, now);
        p.set_paused(paused);
        p.observe(&obs(0, false, now));
        p.observe(&obs(1, secondary_ok, now));
        match (p.evaluate(now), expected) {
            (Verdict::Act(d), None) => assert_eq!(d.to, AppState::Failover),
            (Verdict::Blocked { wanted, because }, Some(exp)) => {
                assert_eq!(wanted.to, AppState::Failover);
                assert_eq!(because, exp);
            }
            (v, exp) => panic!("{mode:?} paused={paused}: got {v:?}, expected {exp:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn secondary_rule_can_be_switched_off() {
    let mut p = policy(
        PolicyConfig {
            require_healthy_secondary: false,
            ..cfg()
        },
        1,
        1,
        1,
        1,
    );
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    p.observe(&obs(0, false, now));
    p.observe(&obs(1, false, now));
    assert_eq!(target(&p.evaluate(now)), Some(AppState::Failover));
}

#[tokio::test(start_paused = true)]
async fn stale_item_versions_are_ignored() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    p.observe_item(item(AppState::Failover, 5), None, now);
    p.observe_item(item(AppState::Active, 4), None, now);
    assert_eq!(
        p.item().map(|i| (i.state, i.version)),
        Some((AppState::Failover, 5))
    );
}

/// Independent random probe loss of 10% with the default probe settings and rule
/// must not flip the region in 1,000 simulated hours, while a real outage still does.
#[test]
fn ten_percent_random_loss_causes_no_flip_in_a_thousand_hours() {
    let c = PolicyConfig {
        mode: Mode::Auto,
        failback: Failback::Manual,
        failback_after: defaults::FAILBACK_AFTER,
        hold_down: defaults::HOLD_DOWN,
        fence_for: Duration::ZERO,
        max_fence: Duration::ZERO,
        rule: RegionRule::Majority,
        require_healthy_secondary: true,
        evidence_ttl: (defaults::INTERVAL + defaults::JITTER + defaults::TIMEOUT) * 2,
        fence_expiry: Duration::from_secs(600),
        max_override: defaults::MAX_OVERRIDE,
    };
    // The shipped demo watches the primary with 3 probes (API, S3, DynamoDB) and
    // the secondary with 2; every probe runs at the default interval.
    let (primary, secondary) = (3, 2);
    let mut p = policy(c, primary, secondary, defaults::FALL, defaults::RISE);
    let t0 = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, t0);
    let mut rng = fastrand::Rng::with_seed(0x5eed_f00d);
    let rounds = 1000 * 3600 / defaults::INTERVAL.as_secs();
    let mut probe_down_events = 0u64;
    for round in 0..rounds {
        let at = t0 + defaults::INTERVAL * round as u32;
        for i in 0..primary + secondary {
            let ok = rng.f64() >= 0.10;
            if p.observe(&obs(i, ok, at)) == Some(Health::Down) {
                probe_down_events += 1;
            }
        }
        assert!(
            !matches!(p.evaluate(at), Verdict::Act(_)),
            "flipped after {round} rounds ({:.1} h)",
            round as f64 * defaults::INTERVAL.as_secs_f64() / 3600.0
        );
    }
    // Single probes did go down now and then: the region rule is what held.
    assert!(
        probe_down_events > 0,
        "the simulation never took a probe down"
    );
    println!("{rounds} rounds, {probe_down_events} single-probe down events, no flip");

    // Same policy, now the primary really dies: it must fail over within `fall` rounds.
    let at0 = t0 + defaults::INTERVAL * rounds as u32;
    let mut flipped_after = None;
    for round in 0..defaults::FALL {
        let at = at0 + defaults::INTERVAL * round;
        for i in 0..primary + secondary {
            p.observe(&obs(i, i >= primary, at));
        }
        if matches!(p.evaluate(at), Verdict::Act(_)) {
            flipped_after = Some(round + 1);
            break;
        }
    }
    assert!(
        flipped_after.is_some_and(|n| n <= defaults::FALL),
        "{flipped_after:?}"
    );
}

/// Observations that are about the monitor (access denied, say): `n` of them for
/// every probe of the given indices.
fn feed_denied(
    p: &mut Policy,
    probes: impl IntoIterator<Item = usize> + Clone,
    n: u32,
    at: Instant,
) {
    for _ in 0..n {
        for i in probes.clone() {
            p.observe(&Observation {
                monitor_side: true,
                error: Some("AccessDeniedException".into()),
                ..obs(i, false, at)
            });
        }
    }
}

#[tokio::test(start_paused = true)]
async fn errors_about_the_monitor_never_fail_the_primary_over() {
    let mut c = cfg();
    c.rule = RegionRule::Majority;
    let mut p = policy(c, 3, 1, 2, 1);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    feed(&mut p, [3], true, 1, now);
    // every primary probe denied: inconclusive, never down
    feed_denied(&mut p, [0, 1, 2], 5, now);
    assert!(
        p.probe_views(now)[..3]
            .iter()
            .all(|v| v.health == Health::Inconclusive)
    );
    assert!(!p.primary_down());
    assert_eq!(
        p.vote(now).0,
        Vote::Unknown,
        "nothing can be said of the region"
    );
    assert_eq!(target(&p.evaluate(now)), None);
}

#[tokio::test(start_paused = true)]
async fn the_region_rule_counts_the_probes_that_can_judge_the_region() {
    let mut c = cfg();
    c.rule = RegionRule::Majority;
    let mut p = policy(c, 3, 1, 2, 1);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    feed(&mut p, [3], true, 1, now);
    // two probes need credentials and are denied; the one that needs none (http)
    // finds the region down: a majority of those that can judge
    feed_denied(&mut p, [0, 1], 2, now);
    feed(&mut p, [2], false, 2, now);
    assert!(p.primary_down());
    assert_eq!(target(&p.evaluate(now)), Some(AppState::Failover));
    // "2 of 3" in proportion: with one probe inconclusive, both others must be down
    assert_eq!(RegionRule::AtLeast { n: 2, m: 3 }.threshold_of(2, 3), 2);
    assert_eq!(RegionRule::AtLeast { n: 1, m: 3 }.threshold_of(1, 3), 1);
    assert_eq!(RegionRule::All.threshold_of(2, 3), 2);
}

/// Each probe's view (status, metrics) counts its results since the start.
#[tokio::test(start_paused = true)]
async fn a_probes_view_counts_its_successes_and_failures() {
    let mut p = policy(cfg(), 1, 1, 3, 2);
    let now = Instant::now();
    feed(&mut p, [0], true, 2, now);
    feed(&mut p, [0], false, 3, now);
    let views = p.probe_views(now);
    let v = &views[0];
    assert_eq!((v.name.as_str(), v.successes, v.failures), ("p0", 2, 3));
    assert_eq!(v.health, Health::Down);
}

/// What the daemon reports of an outage: the probes not up, in the configured
/// order (the detail of its published view), and the onset, the down probe whose
/// run of failures began first (the recovery report's detection).
#[tokio::test(start_paused = true)]
async fn the_onset_is_the_first_failure_of_a_probe_down_now() {
    let mut p = policy(cfg(), 2, 1, 2, 1);
    let t0 = Instant::now();
    feed(&mut p, [0, 1, 2], true, 1, t0);
    assert_eq!(p.onset(Role::Primary), None);
    assert!(p.probes_not_up(t0, 20).is_empty());
    p.observe(&obs(1, false, t0));
    advance(Duration::from_secs(1)).await;
    let t1 = Instant::now();
    feed(&mut p, [0], false, 2, t1);
    p.observe(&obs(1, false, t1));
    assert_eq!(p.onset(Role::Primary), Some(("p1".into(), t0)));
    let names: Vec<String> = p
        .probes_not_up(t1, 20)
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["p0", "p1"]);
    assert_eq!(p.probes_not_up(t1, 1).len(), 1);
}

/// A region none of whose probes can judge it (every error is about the monitor)
/// is not up: `require_healthy_secondary` does not take a secondary it cannot see
/// for a healthy one. A region without probes is up (nothing to check).
#[tokio::test(start_paused = true)]
async fn a_region_whose_probes_are_all_inconclusive_is_not_up() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    feed(&mut p, [0, 1], true, 1, now);
    assert!(p.region_up(Role::Secondary));
    feed_denied(&mut p, [1], 3, now);
    assert_eq!(p.probe_views(now)[1].health, Health::Inconclusive);
    assert!(!p.region_up(Role::Secondary));
    assert!(policy(cfg(), 1, 0, 1, 1).region_up(Role::Secondary));
}

/// Why `active` holds, as the status says it: the primary healthy; healthy on the
/// probes that can judge it, the others named; or nothing able to judge it.
#[tokio::test(start_paused = true)]
async fn a_hold_in_active_says_which_probes_judged_the_primary() {
    let why = |p: &Policy| match p.evaluate(Instant::now()) {
        Verdict::Hold { why } => why,
        other => panic!("{other:?}"),
    };
    let mut p = policy(cfg(), 2, 1, 1, 1);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    feed(&mut p, [0, 1, 2], true, 1, now);
    assert_eq!(why(&p), "primary healthy");
    feed_denied(&mut p, [1], 3, now);
    assert!(
        why(&p).starts_with("primary healthy on 1 probe(s); inconclusive"),
        "{}",
        why(&p)
    );
    feed_denied(&mut p, [0], 3, now);
    assert!(
        why(&p).starts_with("no probe can judge the primary"),
        "{}",
        why(&p)
    );
    feed(&mut p, [0, 1], true, 1, now);
    p.set_coordination(Some(Coordination {
        leader: true,
        leader_id: Some("me".into()),
        configured: 3,
        others_live: 2,
        others_down: 0,
        max_evidence_age: Duration::from_secs(5),
        quorum: crate::rules::QuorumRule::Majority,
        mismatch: Vec::new(),
    }));
    assert_eq!(why(&p), "primary healthy", "with cooperating instances");
}
