//! Targeted scenarios: faults placed together so that a seed meets a situation the
//! random draws reach too rarely, each aimed at one rule of the daemon.

use std::time::Duration;

use super::faults::{Fault, Path, Repair, Setup, ms};

type Events = Vec<(Duration, Fault)>;

/// Adds the targeted scenarios a seed draws. `outage`: when the seed's primary
/// outage begins, and whether it ends before the heal.
pub fn targeted(
    rng: &mut fastrand::Rng,
    instances: &[String],
    setup: &Setup,
    outage: Option<(Duration, bool)>,
    events: &mut Events,
) {
    if instances.len() >= 3 {
        match rng.u8(..8) {
            0 => lone_survivor(rng, instances, events),
            1 => dead_peers_old_votes(rng, instances, events),
            2 => leader_cut(rng, outage, events),
            _ => {}
        }
    }
    match rng.u8(..10) {
        0 => reset_under_an_outage(rng, setup, outage, events),
        1 => paused_under_throttling(rng, events),
        _ => {}
    }
    if setup.signed_majority && rng.bool() {
        let at = ms(rng, 2_000, 20_000);
        let secondary = rng.bool();
        events.push((at, Fault::Deny { secondary }));
        events.push((at + ms(rng, 10_000, 45_000), Fault::Allow));
    }
}

/// All but one instance die or stop, and the survivor's own path to the (healthy)
/// primary breaks: it must not fail the region over alone.
fn lone_survivor(rng: &mut fastrand::Rng, instances: &[String], events: &mut Events) {
    let at = ms(rng, 5_000, 20_000);
    let back = at + ms(rng, 15_000, 30_000);
    let survivor = rng.usize(..instances.len());
    for (n, i) in instances.iter().enumerate() {
        if n == survivor {
            events.push((
                at + Duration::from_secs(2),
                Fault::Cut(i.clone(), Path::Primary),
            ));
            events.push((back, Fault::Heal(i.clone(), Path::Primary)));
        } else if rng.bool() {
            events.push((at, Fault::Kill(i.clone())));
            events.push((back, Fault::Restart(i.clone())));
        } else {
            events.push((at, Fault::Stop(i.clone())));
            events.push((back, Fault::Cont(i.clone())));
        }
    }
}

/// Automatic moves are paused; every instance but one sees the primary down through
/// its own broken path; then they all die, the pause is lifted, and the one left
/// restarts while the primary is healthy. The others' last views say "down": they
/// must not count.
fn dead_peers_old_votes(rng: &mut fastrand::Rng, instances: &[String], events: &mut Events) {
    let at = ms(rng, 5_000, 20_000);
    events.push((at - Duration::from_secs(2), Fault::Pause(true)));
    events.push((at + Duration::from_millis(5_500), Fault::Pause(false)));
    let (first, rest) = instances.split_at(1);
    // Killed or stopped cleanly (which gives a lease up, so the one left may lead at
    // once): either way their last views stay behind.
    let end = |rng: &mut fastrand::Rng, i: &String| {
        if rng.bool() {
            Fault::Term(i.clone())
        } else {
            Fault::Kill(i.clone())
        }
    };
    for i in rest {
        events.push((at, Fault::Cut(i.clone(), Path::Primary)));
        events.push((at + Duration::from_secs(5), end(rng, i)));
        events.push((at + Duration::from_secs(40), Fault::Restart(i.clone())));
    }
    events.push((at + Duration::from_secs(5), Fault::Term(first[0].clone())));
    events.push((
        at + ms(rng, 6_000, 12_000),
        Fault::Restart(first[0].clone()),
    ));
}

/// Around the outage, the leader's own path to the secondary breaks (all of it, so
/// that it cannot renew its lease, or only the secondary's API, so that it cannot
/// act): the failover still comes within the bound, from another instance.
fn leader_cut(rng: &mut fastrand::Rng, outage: Option<(Duration, bool)>, events: &mut Events) {
    let Some((at, _)) = outage else {
        return;
    };
    let path = if rng.bool() {
        Path::Secondary
    } else {
        Path::SecondaryApi
    };
    let cut = (at + ms(rng, 0, 4_000)).saturating_sub(Duration::from_secs(2));
    events.push((cut, Fault::CutLeader(path)));
    events.push((cut + ms(rng, 20_000, 30_000), Fault::HealLeader));
}

/// The item is re-seeded at version 0 while the primary is down and the daemons
/// run (its old audit records stay): automatic moves must stop for a human within
/// the bound; the human repairs it (deletes the stale records, or sets the version)
/// and the failover follows within the bound.
fn reset_under_an_outage(
    rng: &mut fastrand::Rng,
    setup: &Setup,
    outage: Option<(Duration, bool)>,
    events: &mut Events,
) {
    // Long enough for a failover, then for a stop for a human: the bound is at
    // most 13.45 s without a fence, 18.95 s with one.
    let step = Duration::from_secs(if setup.fence { 20 } else { 15 });
    // The outage lasts until the heal.
    events.retain(|(_, f)| *f != Fault::PrimaryUp);
    let down = match outage {
        Some((at, _)) if at < Duration::from_secs(12) => at,
        _ => {
            let at = ms(rng, 8_000, 10_000);
            events.push((at, Fault::PrimaryDown(super::faults::Outage::Refused)));
            at
        }
    };
    let reseed = down + step + ms(rng, 0, 1_000);
    let repair = if rng.bool() {
        Repair::DeleteRecords
    } else {
        Repair::SetVersion
    };
    events.push((reseed, Fault::Reseed));
    events.push((reseed + step + ms(rng, 0, 1_000), Fault::Repair(repair)));
}

/// Paused by hand; while every instance holds the pause, the commit region
/// throttles every request for a few seconds: an instance never forgets the pause
/// because it cannot read it.
fn paused_under_throttling(rng: &mut fastrand::Rng, events: &mut Events) {
    let at = ms(rng, 5_000, 30_000);
    events.push((at, Fault::Pause(true)));
    events.push((
        at + ms(rng, 2_000, 4_000),
        Fault::ThrottleRequests(ms(rng, 2_000, 6_000)),
    ));
    events.push((at + ms(rng, 12_000, 20_000), Fault::Pause(false)));
}
