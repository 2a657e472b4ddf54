//! A human's pause and fence end by the wall-clock time handed in.

use std::time::SystemTime;

use super::*;
use crate::overrides::{Left, parse};

fn wall(s: &str) -> SystemTime {
    parse(s).expect("a time")
}

fn human_fence(expires_at: Option<&str>, updated_at: &str) -> ConfigItem {
    ConfigItem {
        updated_by: Some("admin:ana".into()),
        updated_at: Some(updated_at.into()),
        expires_at: expires_at.map(str::to_owned),
        ..item(AppState::Fenced, 4)
    }
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_automatic_moves_until_its_end_then_not() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    p.observe_item(item(AppState::Active, 0), None, now);
    feed(&mut p, [1], true, 1, now);
    feed(&mut p, [0], false, 1, now);
    p.set_pause(true, Some(wall("2026-01-01T02:00:00Z")));
    p.set_wall_clock(wall("2026-01-01T01:59:59Z"));
    assert!(p.paused());
    assert_eq!(p.pause_left(), Some(Left::On(Duration::from_secs(1))));
    assert!(matches!(
        p.evaluate(now),
        Verdict::Blocked {
            because: Blocked::Paused,
            ..
        }
    ));
    p.set_wall_clock(wall("2026-01-01T02:00:00Z"));
    assert!(!p.paused());
    assert_eq!(p.pause_left(), Some(Left::Ended));
    let v = p.evaluate(now);
    assert_eq!(target(&v), Some(AppState::Failover), "{v:?}");
    // A pause without an end (a test, a backtest) never ends by itself.
    p.set_paused(true);
    assert!(p.paused());
    assert_eq!(p.pause_left(), None);
}

#[tokio::test(start_paused = true)]
async fn a_human_fence_is_kept_until_its_end_then_lifted() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    feed(&mut p, [0, 1], true, 1, now);
    let fence = human_fence(Some("2026-01-01T00:30:00.000Z"), "2026-01-01T00:00:00.000Z");
    p.observe_item(fence, None, now);
    p.set_wall_clock(wall("2026-01-01T00:29:00Z"));
    match p.evaluate(now) {
        Verdict::Hold { why } => assert_eq!(
            why,
            "fenced by a human (1m left); only a human moves it on before it ends"
        ),
        other => panic!("expected a hold, got {other:?}"),
    }
    p.set_wall_clock(wall("2026-01-01T00:30:00Z"));
    match p.evaluate(now) {
        Verdict::Act(d) => {
            assert_eq!(d.to, AppState::Active);
            assert_eq!(
                d.reason,
                "the fence set by admin:ana ended at 2026-01-01T00:30:00.000Z: writes are \
                 no longer blocked"
            );
        }
        other => panic!("expected the fence lifted, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_ended_human_fence_fails_over_when_the_primary_is_down() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    feed(&mut p, [1], true, 1, now);
    feed(&mut p, [0], false, 1, now);
    p.observe_item(
        human_fence(Some("2026-01-01T00:30:00Z"), "2026-01-01T00:00:00Z"),
        None,
        now,
    );
    p.set_wall_clock(wall("2026-01-01T01:00:00Z"));
    assert_eq!(target(&p.evaluate(now)), Some(AppState::Failover));
    // Paused, the lift waits like any automatic move.
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
async fn a_human_fence_stored_without_an_end_ends_the_maximum_after_it_was_set() {
    let mut p = policy(cfg(), 1, 1, 1, 1);
    let now = Instant::now();
    feed(&mut p, [0, 1], true, 1, now);
    p.observe_item(human_fence(None, "2026-01-01T00:00:00Z"), None, now);
    p.set_wall_clock(wall("2026-01-03T23:59:00Z"));
    assert_eq!(p.fence_left(), Some(Left::On(Duration::from_secs(60))));
    assert_eq!(target(&p.evaluate(now)), None);
    p.set_wall_clock(wall("2026-01-04T00:00:00Z"));
    assert_eq!(target(&p.evaluate(now)), Some(AppState::Active));
    // Without a wall clock (a backtest) nothing ends.
    let mut q = policy(cfg(), 1, 1, 1, 1);
    q.observe_item(human_fence(None, "2000-01-01T00:00:00Z"), None, now);
    assert_eq!(q.fence_left(), None);
    assert_eq!(target(&q.evaluate(now)), None);
    // A monitors' fence is no override.
    q.observe_item(item(AppState::Fenced, 5), None, now);
    q.set_wall_clock(wall("2026-01-01T00:00:00Z"));
    assert_eq!(q.fence_left(), None);
}
