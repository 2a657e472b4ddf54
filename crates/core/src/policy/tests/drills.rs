//! A drill's fence and failover end by themselves: the monitors lift the fence and
//! fail back onto a healthy primary once the drill's time is up (its runner may be
//! gone), and a real outage during a drill is the normal rules' at once.

use std::time::SystemTime;

use super::*;
use crate::overrides::{Left, parse};

fn wall(s: &str) -> SystemTime {
    parse(s).expect("a time")
}

fn by_drill(state: AppState, expires_at: &str) -> ConfigItem {
    ConfigItem {
        updated_by: Some("drill:d-1-a".into()),
        updated_at: Some("2026-01-01T00:00:00Z".into()),
        expires_at: Some(expires_at.into()),
        ..item(state, 4)
    }
}

fn hold_reason(v: &Verdict) -> String {
    match v {
        Verdict::Hold { why } => why.clone(),
        other => panic!("expected a hold, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_drills_fence_lasts_until_its_end_then_is_lifted() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    feed(&mut p, [0, 1], true, 1, now);
    p.observe_item(
        by_drill(AppState::Fenced, "2026-01-01T00:01:00Z"),
        None,
        now,
    );
    p.set_wall_clock(wall("2026-01-01T00:00:30Z"));
    assert_eq!(p.drill_left(), Some(Left::On(Duration::from_secs(30))));
    assert_eq!(
        hold_reason(&p.evaluate(now)),
        "fenced by drill d-1-a (30s left)"
    );
    // Not a monitors' fence: the primary being up does not lift it early.
    p.set_wall_clock(wall("2026-01-01T00:01:00Z"));
    match p.evaluate(now) {
        Verdict::Act(d) => {
            assert_eq!(d.to, AppState::Active);
            assert_eq!(
                d.reason,
                "the fence of drill d-1-a ended: writes are no longer blocked"
            );
        }
        other => panic!("expected the fence lifted, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_real_outage_during_a_drills_fence_is_failed_over_by_the_normal_rules() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    feed(&mut p, [1], true, 1, now);
    p.observe_item(
        by_drill(AppState::Fenced, "2026-01-01T01:00:00Z"),
        None,
        now,
    );
    p.set_wall_clock(wall("2026-01-01T00:00:10Z"));
    feed(&mut p, [0], false, 1, now);
    // Long before the drill's fence ends, the primary down on fresh evidence moves
    // it on as a monitors' fence would (fence_for and max_fence are 0 here).
    let v = p.evaluate(now);
    assert_eq!(target(&v), Some(AppState::Failover), "{v:?}");
}

#[tokio::test(start_paused = true)]
async fn a_drills_failover_is_failed_back_after_its_hold_onto_a_healthy_primary_only() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    feed(&mut p, [0, 1], true, 1, now);
    p.observe_item(
        by_drill(AppState::Failover, "2026-01-01T00:10:00Z"),
        None,
        now,
    );
    p.set_wall_clock(wall("2026-01-01T00:09:00Z"));
    assert_eq!(
        hold_reason(&p.evaluate(now)),
        "failed over by drill d-1-a (1m left)"
    );
    p.set_wall_clock(wall("2026-01-01T00:10:00Z"));
    match p.evaluate(now) {
        Verdict::Act(d) => {
            assert_eq!(d.to, AppState::Active);
            assert_eq!(
                d.reason,
                "the hold of drill d-1-a ended and the primary is up: failing back"
            );
        }
        other => panic!("expected a failback, got {other:?}"),
    }
    // The primary down: it stays where it is safe, whatever failback says.
    feed(&mut p, [0], false, 1, now);
    assert_eq!(
        hold_reason(&p.evaluate(now)),
        "the hold of drill d-1-a ended, but the primary is not up: p0: staying in failover"
    );
    // Paused, the failback waits like any automatic move.
    feed(&mut p, [0], true, 1, now);
    p.set_paused(true);
    assert!(matches!(
        p.evaluate(now),
        Verdict::Blocked {
            because: Blocked::Paused,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_drills_failover_with_inconclusive_primary_probes_is_not_failed_back() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    feed(&mut p, [1], true, 1, now);
    let mut denied = obs(0, false, now);
    denied.monitor_side = true;
    p.observe(&denied);
    p.observe_item(
        by_drill(AppState::Failover, "2026-01-01T00:10:00Z"),
        None,
        now,
    );
    p.set_wall_clock(wall("2026-01-01T00:11:00Z"));
    assert_eq!(target(&p.evaluate(now)), None);
}

#[tokio::test(start_paused = true)]
async fn without_a_wall_clock_a_drills_moves_never_end() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    feed(&mut p, [0, 1], true, 1, now);
    p.observe_item(
        by_drill(AppState::Failover, "2000-01-01T00:00:00Z"),
        None,
        now,
    );
    assert_eq!(p.drill_left(), None);
    assert_eq!(hold_reason(&p.evaluate(now)), "failed over by drill d-1-a");
    // A human's failover is no drill's.
    p.observe_item(
        ConfigItem {
            updated_by: Some("admin:ana".into()),
            ..item(AppState::Failover, 5)
        },
        None,
        now,
    );
    p.set_wall_clock(wall("2026-01-01T00:00:00Z"));
    assert_eq!(p.drill_end(), None);
}
