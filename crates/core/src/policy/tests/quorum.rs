//! Cooperating instances: the configured quorum, votes and their evidence, and the evidence a decision carries.

use super::*;

/// With cooperating instances the leader acts on a quorum of the *configured*
/// instances' votes, never of those that happen to be alive: a lone survivor, or a
/// minority, does not fail the region over on its own. Followers never act.
#[tokio::test(start_paused = true)]
async fn quorum_counts_the_configured_instances_and_leadership_gates_failover() {
    use crate::rules::QuorumRule;
    let coord = |leader: bool, others_live: usize, others_down: usize| Coordination {
        leader,
        leader_id: Some(if leader { "me" } else { "other" }.into()),
        configured: 3,
        others_live,
        others_down,
        max_evidence_age: Duration::from_secs(5),
        quorum: QuorumRule::Majority,
        mismatch: Vec::new(),
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
    use crate::rules::QuorumRule;
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
        mismatch: Vec::new(),
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
            monitor_side: false,
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

/// What the evidence lists exactly: the probes not up (at most `MAX_LISTED` a
/// region), how many were left out (the up ones are not counted), and each error
/// cut at `MAX_ERROR` bytes, back to a character's start, with an ellipsis; an
/// error of exactly `MAX_ERROR` bytes is whole.
#[tokio::test(start_paused = true)]
async fn evidence_lists_the_probes_not_up_and_cuts_long_errors_at_a_character() {
    let mut p = policy(cfg(), 30, 1, 1, 1);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    let exact = "x".repeat(evidence::MAX_ERROR);
    // One byte, then two-byte characters: byte MAX_ERROR is inside one.
    let long = format!("a{}", "é".repeat(evidence::MAX_ERROR));
    for i in 0..25 {
        let error = if i == 0 { exact.clone() } else { long.clone() };
        p.observe(&Observation {
            error: Some(error),
            ..obs(i, false, now)
        });
    }
    for i in 25..31 {
        p.observe(&obs(i, true, now));
    }
    let Verdict::Act(d) = p.evaluate(now) else {
        panic!("primary probes down: a failover");
    };
    assert_eq!(d.evidence["probes"].as_array().map(Vec::len), Some(20));
    assert_eq!(d.evidence["probes_omitted"], 25 - 20);
    assert_eq!(d.evidence["probes"][0]["last_error"], exact.as_str());
    let cut = format!("a{}…", "é".repeat((evidence::MAX_ERROR - 1) / 2));
    assert_eq!(d.evidence["probes"][1]["last_error"], cut.as_str());
}

/// Item 4 of issue 17: the vote an instance publishes is the one it counts for
/// itself. A primary probe that is down but answered its last check (rise not
/// reached: the primary may be back) makes the vote unknown, published and counted
/// alike. Before, the published vote was the raw region rule and a leader counted
/// it as a fresh down.
#[tokio::test(start_paused = true)]
async fn a_probe_that_answered_its_last_check_holds_the_published_vote_too() {
    let mut p = policy(cfg(), 1, 0, 2, 3);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    feed(&mut p, [0], false, 2, now);
    assert_eq!(p.vote(now).0, Vote::Down);
    p.observe(&obs(0, true, now));
    assert!(p.primary_down(), "still down by fall/rise");
    assert_eq!(p.vote(now), (Vote::Unknown, Some(Duration::ZERO)));
    assert_eq!(p.down_votes(now), 0);
    // one vote function, one counting rule: random sequences agree throughout
    let mut rng = fastrand::Rng::with_seed(17);
    let mut p = policy(cfg(), 3, 0, 2, 2);
    p.observe_item(item(AppState::Active, 0), None, now);
    for _ in 0..2_000 {
        p.observe(&obs(rng.usize(0..3), rng.bool(), now));
        let (vote, age) = p.vote(now);
        let counted = p.down_votes(now) == 1;
        assert_eq!(
            counted,
            vote == Vote::Down && age.is_some_and(|a| a <= cfg().evidence_ttl),
            "{vote:?} {age:?}"
        );
    }
}

/// Simulation seed 42043606: a process stopped (SIGSTOP) for 16 s, its primary
/// probes down from timeouts before the stop, resumed with its signed probes
/// denied (AccessDenied: about the monitor). Each fresh inconclusive result left
/// the old down standing and made it look fresh, so its published vote was a down
/// 0.3 s old and made a quorum with the one instance cut from a healthy primary. A
/// probe down whose last check said only something about the monitor holds the
/// vote as one that answered does; a conclusive failure makes it current again.
#[tokio::test(start_paused = true)]
async fn a_down_probe_whose_last_check_was_about_the_monitor_is_no_fresh_down() {
    let mut p = policy(cfg(), 1, 0, 2, 3);
    let start = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, start);
    feed(&mut p, [0], false, 2, start);
    assert_eq!(p.vote(start).0, Vote::Down);
    let later = start + Duration::from_secs(16);
    let denied = Observation {
        monitor_side: true,
        error: Some("get_item: AccessDeniedException".into()),
        ..obs(0, false, later)
    };
    p.observe(&denied);
    assert!(
        p.primary_down(),
        "still down by fall (one inconclusive result)"
    );
    assert_eq!(p.vote(later), (Vote::Unknown, Some(Duration::ZERO)));
    assert_eq!(p.down_votes(later), 0);
    p.observe(&obs(0, false, later));
    assert_eq!(p.vote(later), (Vote::Down, Some(Duration::ZERO)));
}

/// The coordination input is kept as last set, for the daemon's status and
/// reports; None again once this instance acts alone.
#[test]
fn the_coordination_input_is_kept_as_set() {
    use crate::rules::QuorumRule;
    let mut p = policy(cfg(), 1, 1, 1, 1);
    assert_eq!(p.coordination(), None);
    let c = Coordination {
        leader: false,
        leader_id: Some("other".into()),
        configured: 3,
        others_live: 2,
        others_down: 0,
        max_evidence_age: Duration::from_secs(5),
        quorum: QuorumRule::Majority,
        mismatch: Vec::new(),
    };
    p.set_coordination(Some(c.clone()));
    assert_eq!(p.coordination(), Some(&c));
    p.set_coordination(None);
    assert_eq!(p.coordination(), None);
}

#[test]
fn the_quorum_is_reachable_only_while_enough_instances_are_live() {
    use crate::rules::QuorumRule;
    let c = |configured, others_live, quorum| Coordination {
        leader: true,
        leader_id: Some("a".into()),
        configured,
        others_live,
        others_down: 0,
        max_evidence_age: Duration::from_secs(10),
        quorum,
        mismatch: Vec::new(),
    };
    // Three configured, a majority of two: this one alone cannot reach it.
    assert!(!c(3, 0, QuorumRule::Majority).reachable());
    assert!(c(3, 1, QuorumRule::Majority).reachable());
    assert!(c(3, 2, QuorumRule::Majority).reachable());
    // Five, at least three: this one and two others.
    assert!(!c(5, 1, QuorumRule::AtLeast(3)).reachable());
    assert!(c(5, 2, QuorumRule::AtLeast(3)).reachable());
}
