use std::time::Duration;

use tokio::time::{Instant, advance};

use super::*;
use crate::config::{Failback, Mode, RegionRule, defaults};
use crate::model::AppState;

fn cfg() -> PolicyConfig {
    PolicyConfig {
        mode: Mode::Auto,
        failback: Failback::Manual,
        failback_after: Duration::from_secs(600),
        hold_down: Duration::from_secs(300),
        fence_for: Duration::ZERO,
        max_fence: Duration::ZERO,
        rule: RegionRule::Any,
        require_healthy_secondary: true,
    }
}

/// `primary` and `secondary` probes, all with the given fall and rise.
fn policy(cfg: PolicyConfig, primary: usize, secondary: usize, fall: u32, rise: u32) -> Policy {
    let probes = (0..primary)
        .map(|i| (format!("p{i}"), Role::Primary, fall, rise))
        .chain((0..secondary).map(|i| (format!("s{i}"), Role::Secondary, fall, rise)));
    Policy::new(cfg, probes)
}

fn item(state: AppState, version: u64) -> ConfigItem {
    ConfigItem {
        state,
        version,
        updated_at: None,
        updated_by: Some("monitor-a".into()),
        reason: None,
    }
}

fn obs(probe: usize, ok: bool, at: Instant) -> Observation {
    Observation {
        probe,
        at,
        ok,
        latency: Duration::from_millis(3),
        error: (!ok).then(|| "connection refused".into()),
    }
}

/// Feeds `n` results to every probe of the given indices.
fn feed(
    p: &mut Policy,
    probes: impl IntoIterator<Item = usize> + Clone,
    ok: bool,
    n: u32,
    at: Instant,
) {
    for _ in 0..n {
        for i in probes.clone() {
            p.observe(&obs(i, ok, at));
        }
    }
}

fn target(v: &Verdict) -> Option<AppState> {
    match v {
        Verdict::Act(d) => Some(d.to),
        _ => None,
    }
}

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

/// Manual moves: (current state, target, primary up, secondary up, force) -> outcome
#[tokio::test(start_paused = true)]
async fn manual_moves_obey_the_safety_rules_unless_forced() {
    use AppState::*;
    type Case = (AppState, AppState, bool, bool, bool, Result<(), Refusal>);
    let cases: [Case; 9] = [
        (Active, Failover, true, true, false, Ok(())),
        (
            Active,
            Failover,
            false,
            false,
            false,
            Err(Refusal::SecondaryUnhealthy("not up: s0".into())),
        ),
        (Active, Failover, false, false, true, Ok(())),
        (Active, Fenced, false, false, false, Ok(())),
        (
            Failover,
            Active,
            false,
            true,
            false,
            Err(Refusal::PrimaryUnhealthy("not up: p0".into())),
        ),
        (Failover, Active, false, true, true, Ok(())),
        (
            Failover,
            Fenced,
            false,
            true,
            false,
            Err(Refusal::PrimaryUnhealthy("not up: p0".into())),
        ),
        (Fenced, Active, true, false, false, Ok(())),
        (
            Failover,
            Failover,
            true,
            true,
            true,
            Err(Refusal::AlreadyThere(Failover)),
        ),
    ];
    for (from, to, primary_up, secondary_up, force, expected) in cases {
        let mut p = policy(
            PolicyConfig {
                mode: Mode::Manual,
                ..cfg()
            },
            1,
            1,
            1,
            1,
        );
        let now = Instant::now();
        p.observe_item(item(from, 7), None, now);
        p.observe(&obs(0, primary_up, now));
        p.observe(&obs(1, secondary_up, now));
        let got = p.manual(to, force, now);
        match (&got, &expected) {
            (Ok(d), Ok(())) => assert_eq!((d.from, d.to, d.expected_version), (from, to, 7)),
            (Err(g), Err(e)) => assert_eq!(g, e),
            _ => panic!(
                "{from} -> {to} (primary up {primary_up}, secondary up {secondary_up}, force {force}): {got:?}"
            ),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn manual_moves_need_the_item_and_never_write_in_dry_run() {
    let mut p = policy(
        PolicyConfig {
            mode: Mode::DryRun,
            ..cfg()
        },
        1,
        1,
        1,
        1,
    );
    let now = Instant::now();
    assert_eq!(
        p.manual(AppState::Failover, true, now),
        Err(Refusal::NotReady)
    );
    p.observe_item(item(AppState::Active, 0), None, now);
    assert_eq!(
        p.manual(AppState::Failover, true, now),
        Err(Refusal::DryRun)
    );
}

#[tokio::test(start_paused = true)]
async fn reconfigure_keeps_the_item_and_matching_probe_health() {
    let mut p = policy(cfg(), 2, 1, 1, 1);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 3), None, now);
    p.observe(&obs(0, false, now)); // p0 down
    p.observe(&obs(2, true, now)); // s0 up
    p.set_paused(true);
    // p0 kept as is, p1 dropped, a new probe added, the rule changed.
    p.reconfigure(
        PolicyConfig {
            rule: RegionRule::All,
            ..cfg()
        },
        [
            ("p0".to_string(), Role::Primary, 1, 1),
            ("s0".to_string(), Role::Secondary, 1, 1),
            ("p9".to_string(), Role::Primary, 1, 1),
        ],
    );
    let views = p.probe_views(now);
    assert_eq!(
        views
            .iter()
            .map(|v| (v.name.as_str(), v.health))
            .collect::<Vec<_>>(),
        [
            ("p0", Health::Down),
            ("s0", Health::Up),
            ("p9", Health::Unknown)
        ]
    );
    assert_eq!(p.item().map(|i| i.version), Some(3));
    assert!(p.paused());
    // "all" of p0 and p9: p9 is not down yet.
    assert!(!p.primary_down());
    p.observe(&obs(2, false, now)); // index 2 is now p9
    assert!(p.primary_down());
}

/// With cooperating instances the leader acts on a quorum of the *configured*
/// instances' votes, never of those that happen to be alive: a lone survivor, or a
/// minority, does not fail the region over on its own. Followers never act.
#[tokio::test(start_paused = true)]
async fn quorum_counts_the_configured_instances_and_leadership_gates_failover() {
    use crate::config::QuorumRule;
    let coord = |leader: bool, others_live: usize, others_down: usize| Coordination {
        leader,
        leader_id: Some(if leader { "me" } else { "other" }.into()),
        configured: 3,
        others_live,
        others_down,
        max_evidence_age: Duration::from_secs(5),
        quorum: QuorumRule::Majority,
    };
    // (own view down, others live, others down, leader) -> acts?
    let cases = [
        (true, 2, 0, true, None),
        (true, 2, 1, true, Some(AppState::Failover)),
        (false, 2, 2, true, Some(AppState::Failover)),
        (false, 2, 1, true, None),
        // Alone (both others dead or paused): never on its own, whatever it sees.
        (true, 0, 0, true, None),
        (true, 2, 2, false, None),
    ];
    for (own_down, others_live, others_down, leader, expected) in cases {
        let mut p = policy(cfg(), 1, 1, 1, 1);
        let now = Instant::now();
        p.observe_item(item(AppState::Active, 0), None, now);
        p.observe(&obs(0, !own_down, now));
        p.observe(&obs(1, true, now));
        p.set_coordination(Some(coord(leader, others_live, others_down)));
        let v = p.evaluate(now);
        assert_eq!(
            target(&v),
            expected,
            "own {own_down}, {others_down} of {others_live} live others, leader {leader}: {v:?}"
        );
        if !leader && others_down + usize::from(own_down) >= 2 {
            assert!(
                matches!(
                    v,
                    Verdict::Blocked {
                        because: Blocked::NotLeader { .. },
                        ..
                    }
                ),
                "{v:?}"
            );
        }
        if others_live == 0 && own_down {
            assert!(
                matches!(&v, Verdict::Hold { why } if why.starts_with("quorum unreachable")),
                "a lone survivor says the quorum is unreachable: {v:?}"
            );
        }
        if let Verdict::Act(d) = &v {
            assert_eq!(d.evidence["quorum"]["configured"], 3);
            assert_eq!(d.evidence["quorum"]["needed"], 2);
        }
    }
}

/// This instance's own down vote counts only while its evidence is fresh: after a
/// pause (SIGSTOP) its last probe results are old, and it must not act on them.
#[tokio::test(start_paused = true)]
async fn an_own_vote_on_stale_evidence_does_not_count() {
    use crate::config::QuorumRule;
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    p.observe(&obs(0, false, now));
    p.observe(&obs(1, true, now));
    let c = Coordination {
        leader: true,
        leader_id: Some("me".into()),
        configured: 3,
        others_live: 2,
        others_down: 1,
        max_evidence_age: Duration::from_secs(5),
        quorum: QuorumRule::Majority,
    };
    p.set_coordination(Some(c));
    assert_eq!(p.vote(now), (Vote::Down, Some(Duration::ZERO)));
    assert_eq!(target(&p.evaluate(now)), Some(AppState::Failover));
    advance(Duration::from_secs(6)).await;
    let later = Instant::now();
    assert_eq!(p.vote(later).0, Vote::Down);
    assert_eq!(p.down_votes(later), 1, "only the peer's vote is left");
    assert_eq!(target(&p.evaluate(later)), None);
}

/// A vote says down, up or unknown: unknown while probes not yet known could still
/// make the rule say down.
#[tokio::test(start_paused = true)]
async fn votes_are_down_up_or_unknown() {
    let mut c = cfg();
    c.rule = RegionRule::Majority;
    let mut p = policy(c, 3, 0, 1, 1);
    let now = Instant::now();
    assert_eq!(p.vote(now), (Vote::Unknown, None), "nothing known yet");
    p.observe(&obs(0, true, now));
    assert_eq!(
        p.vote(now).0,
        Vote::Unknown,
        "1 up, 2 unknown: could still be 2 down"
    );
    p.observe(&obs(1, true, now));
    assert_eq!(
        p.vote(now).0,
        Vote::Up,
        "2 up: a majority can no longer be down"
    );
    p.observe(&obs(1, false, now));
    p.observe(&obs(2, false, now));
    assert_eq!(p.vote(now).0, Vote::Down);
}

/// The evidence of a decision stays small whatever the number of probes: an audit
/// record must stay far below DynamoDB's 400 KB item limit.
#[tokio::test(start_paused = true)]
async fn evidence_is_bounded_with_ten_thousand_probes() {
    let mut p = policy(cfg(), 10_000, 10, 1, 1);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    let long_error = "connection refused by https://primary.example.com/state ".repeat(20);
    for i in 0..10_000 {
        p.observe(&Observation {
            probe: i,
            at: now,
            ok: false,
            latency: Duration::from_millis(900),
            error: Some(long_error.clone()),
        });
    }
    for i in 10_000..10_010 {
        p.observe(&obs(i, true, now));
    }
    let Verdict::Act(d) = p.evaluate(now) else {
        panic!("all primary probes down: a failover");
    };
    let size = d.evidence.to_string().len();
    assert!(size < 16 * 1024, "evidence of {size} bytes");
    assert_eq!(d.evidence["primary_down"], 10_000);
    assert_eq!(d.evidence["regions"]["primary"]["down"], 10_000);
    assert_eq!(d.evidence["probes"].as_array().map(Vec::len), Some(20));
    assert_eq!(d.evidence["probes_omitted"], 10_000 - 20);
    let listed = d.evidence["probes"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        listed.len() <= evidence::MAX_ERROR + '…'.len_utf8(),
        "{listed}"
    );
}

/// While fenced: at least fence_for; then as soon as a measurement taken during the
/// fence shows replication drained, at the latest at max_fence. The measurement is
/// in the evidence (the RPO actually achieved).
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
            drained: true,
            lag_ms: Some(1),
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
                drained,
                lag_ms: drained.then_some(850),
                detail: if drained {
                    "canary seen".into()
                } else {
                    "canary not seen yet".into()
                },
            });
            if let Verdict::Act(d) = p.evaluate(now) {
                assert_eq!(d.to, AppState::Failover);
                assert_eq!(d.evidence["replication"]["drained"], drained);
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
