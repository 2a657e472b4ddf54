//! Humans' moves and reconfiguration.

use super::*;

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
