//! What a read of the item does to what the policy knows: a lower version from the
//! commit region, read after what we knew was learned, is a reset and replaces it.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_lower_version_read_after_we_learned_ours_is_a_reset() {
    let mut p = policy(cfg(), 1, 0, 1, 1);
    let t0 = Instant::now();
    p.committed(item(AppState::Failover, 2), t0);
    // issued before our commit returned: it may predate the commit, never lowers
    let before = t0 - Duration::from_millis(1);
    let change = p.observe_read(item(AppState::Active, 1), None, Some(before), t0);
    assert_eq!(change, ItemChange::None);
    assert_eq!(p.item().map(|i| i.version), Some(2));
    // a read that cannot say when it was issued never lowers either
    p.observe_item(item(AppState::Active, 0), None, t0);
    assert_eq!(p.item().map(|i| i.version), Some(2));
    // issued after: the truth, whatever its version
    advance(Duration::from_secs(1)).await;
    let now = Instant::now();
    let change = p.observe_read(item(AppState::Active, 0), None, Some(now), now);
    assert_eq!(change, ItemChange::Reset);
    assert_eq!(
        p.item().map(|i| (i.state, i.version)),
        Some((AppState::Active, 0))
    );
}

#[tokio::test(start_paused = true)]
async fn a_reset_restarts_the_timers_as_a_first_read_would() {
    let mut c = cfg();
    c.hold_down = Duration::from_secs(300);
    let mut p = policy(c, 1, 0, 1, 1);
    let t0 = Instant::now();
    p.committed(item(AppState::Failover, 2), t0);
    // reset to the seed (version 0): nothing holds down
    advance(Duration::from_secs(5)).await;
    let now = Instant::now();
    p.observe_read(item(AppState::Active, 0), None, Some(now), now);
    feed(&mut p, [0], false, 1, now);
    assert_eq!(target(&p.evaluate(now)), Some(AppState::Failover));
    // a reset to a version a person wrote 10 s ago holds down from then
    p.committed(item(AppState::Failover, 9), now);
    advance(Duration::from_secs(1)).await;
    let now = Instant::now();
    let written = now - Duration::from_secs(10);
    p.observe_read(item(AppState::Active, 4), Some(written), Some(now), now);
    assert!(matches!(
        p.evaluate(now),
        Verdict::Blocked {
            because: Blocked::HoldDown {
                remaining_ms: 290_000
            },
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_newer_item_from_any_read_makes_earlier_issued_reads_old() {
    let mut p = policy(cfg(), 1, 0, 1, 1);
    let t0 = Instant::now();
    p.observe_read(item(AppState::Active, 4), None, Some(t0), t0);
    advance(Duration::from_secs(1)).await;
    let t1 = Instant::now();
    // a fallback read (the commit region unreadable) brings v5 at t1
    p.observe_item(item(AppState::Failover, 5), None, t1);
    // a commit-region read issued between t0 and t1 answers v4 later: not a reset
    let issued = t0 + Duration::from_millis(500);
    assert_eq!(
        p.observe_read(item(AppState::Active, 4), None, Some(issued), t1),
        ItemChange::None
    );
    assert_eq!(p.item().map(|i| i.version), Some(5));
    // one issued after t1 is the truth
    advance(Duration::from_millis(1)).await;
    let t2 = Instant::now();
    assert_eq!(
        p.observe_read(item(AppState::Active, 4), None, Some(t2), t2),
        ItemChange::Reset
    );
}

/// Every sync pass reads the same item again: that is no change, and it does not
/// restart the hold-down the last transition started.
#[tokio::test(start_paused = true)]
async fn the_same_item_read_again_changes_nothing() {
    let mut c = cfg();
    c.hold_down = Duration::from_secs(10);
    let mut p = policy(c, 1, 0, 1, 1);
    let t0 = Instant::now();
    p.committed(item(AppState::Fenced, 1), t0);
    for _ in 0..12 {
        advance(Duration::from_secs(1)).await;
        let now = Instant::now();
        let change = p.observe_read(item(AppState::Fenced, 1), Some(t0), Some(now), now);
        assert_eq!(change, ItemChange::None);
    }
    let now = Instant::now();
    feed(&mut p, [0], false, 1, now);
    assert!(
        !matches!(
            p.evaluate(now),
            Verdict::Blocked {
                because: Blocked::HoldDown { .. },
                ..
            }
        ),
        "the hold-down ran from the transition, 12 s ago"
    );
}

/// A higher version, or the same version in another state (written outside the
/// protocol), is a newer item: it replaces what was known.
#[tokio::test(start_paused = true)]
async fn a_higher_version_or_another_state_is_newer() {
    let mut p = policy(cfg(), 1, 0, 1, 1);
    let t0 = Instant::now();
    p.committed(item(AppState::Active, 1), t0);
    advance(Duration::from_secs(1)).await;
    let now = Instant::now();
    let change = p.observe_read(item(AppState::Active, 2), None, Some(now), now);
    assert_eq!(change, ItemChange::Newer);
    assert_eq!(p.item().map(|i| i.version), Some(2));
    let change = p.observe_read(item(AppState::Fenced, 2), None, Some(now), now);
    assert_eq!(change, ItemChange::Newer);
    assert_eq!(
        p.item().map(|i| (i.state, i.version)),
        Some((AppState::Fenced, 2))
    );
}

/// A newer item from a read issued before what we knew was learned does not move
/// that moment back: a read issued in between that answers the older item is still
/// older than what we know, not a reset.
#[tokio::test(start_paused = true)]
async fn a_newer_item_from_an_early_read_keeps_what_was_learned_later() {
    let mut p = policy(cfg(), 1, 0, 1, 1);
    let t0 = Instant::now();
    advance(Duration::from_secs(1)).await;
    let learned = Instant::now();
    p.committed(item(AppState::Active, 1), learned);
    advance(Duration::from_secs(1)).await;
    let now = Instant::now();
    let early = t0 + Duration::from_millis(100);
    assert_eq!(
        p.observe_read(item(AppState::Fenced, 2), None, Some(early), now),
        ItemChange::Newer
    );
    let between = t0 + Duration::from_millis(500);
    assert_eq!(
        p.observe_read(item(AppState::Active, 1), None, Some(between), now),
        ItemChange::None
    );
    assert_eq!(
        p.item().map(|i| (i.state, i.version)),
        Some((AppState::Fenced, 2))
    );
}
