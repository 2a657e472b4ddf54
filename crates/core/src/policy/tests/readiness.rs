//! The secondary's readiness as a safety rule: `block` holds an automatic failover
//! back while the last check found the secondary not ready, `warn` lets it go with
//! the reasons in its reason, and an unknown readiness never holds anything.

use super::*;
use crate::rules::ReadinessRule;

/// A policy in `active` whose primary is down and whose secondary passes its probes:
/// it wants to fail over.
fn wanting_failover(rule: ReadinessRule, readiness: SecondaryReadiness) -> (Policy, Instant) {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    p.set_readiness_rule(rule);
    p.observe_readiness(readiness);
    p.observe(&obs(0, false, now));
    p.observe(&obs(1, true, now));
    (p, now)
}

fn not_ready() -> SecondaryReadiness {
    SecondaryReadiness::NotReady(vec!["missing: rest-api photos-config-secondary".into()])
}

#[tokio::test(start_paused = true)]
async fn block_holds_a_failover_back_while_the_secondary_is_not_ready() {
    let (p, now) = wanting_failover(ReadinessRule::Block, not_ready());
    let v = p.evaluate(now);
    assert_eq!(
        v,
        Verdict::Blocked {
            wanted: match &v {
                Verdict::Blocked { wanted, .. } => wanted.clone(),
                other => panic!("expected a block, got {other:?}"),
            },
            because: Blocked::SecondaryNotReady {
                reasons: vec!["missing: rest-api photos-config-secondary".into()],
            },
        }
    );
    assert_eq!(
        v.summary(),
        "blocked (secondary_not_ready): active -> failover"
    );
}

#[tokio::test(start_paused = true)]
async fn warn_fails_over_and_says_the_secondary_was_not_ready() {
    let (p, now) = wanting_failover(ReadinessRule::Warn, not_ready());
    match p.evaluate(now) {
        Verdict::Act(d) => {
            assert_eq!(d.to, AppState::Failover);
            assert!(
                d.reason.contains("the secondary was not ready")
                    && d.reason
                        .contains("missing: rest-api photos-config-secondary"),
                "{}",
                d.reason
            );
        }
        other => panic!("expected a failover, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_unknown_or_ready_secondary_never_blocks_nor_warns() {
    for readiness in [SecondaryReadiness::Unknown, SecondaryReadiness::Ready] {
        let (p, now) = wanting_failover(ReadinessRule::Block, readiness.clone());
        match p.evaluate(now) {
            Verdict::Act(d) => assert!(!d.reason.contains("not ready"), "{}", d.reason),
            other => panic!("{readiness:?}: expected a failover, got {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_secondary_found_ready_again_lifts_the_block() {
    let (mut p, now) = wanting_failover(ReadinessRule::Block, not_ready());
    assert_eq!(p.readiness(), &not_ready());
    assert_eq!(target(&p.evaluate(now)), None);
    p.observe_readiness(SecondaryReadiness::Ready);
    assert_eq!(p.readiness(), &SecondaryReadiness::Ready);
    assert_eq!(target(&p.evaluate(now)), Some(AppState::Failover));
}

#[tokio::test(start_paused = true)]
async fn the_readiness_rule_does_not_hold_a_failback() {
    let mut p = policy(
        PolicyConfig {
            failback: Failback::Auto,
            failback_after: Duration::from_secs(1),
            ..cfg()
        },
        1,
        1,
        1,
        1,
    );
    let now = Instant::now();
    p.observe_item(item(AppState::Failover, 1), None, now);
    p.set_readiness_rule(ReadinessRule::Block);
    p.observe_readiness(not_ready());
    p.observe(&obs(0, true, now));
    p.observe(&obs(1, true, now));
    advance(Duration::from_secs(2)).await;
    let now = Instant::now();
    p.observe(&obs(0, true, now));
    assert_eq!(target(&p.evaluate(now)), Some(AppState::Active));
}
