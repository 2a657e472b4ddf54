//! The faults a seed places at random, and how each changes the world.

use std::time::Duration;

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The primary stops answering: every part refuses (killed), hangs (stopped),
    /// only its API or only its table fails, or it answers slower than the probes
    /// wait.
    PrimaryDown(Outage),
    PrimaryUp,
    /// The secondary refuses everything for a while.
    SecondaryDown,
    SecondaryUp,
    /// An instance's process is killed, and later a new one starts with the same id.
    Kill(String),
    /// An instance's process stops cleanly (SIGTERM: it gives its lease up).
    Term(String),
    Restart(String),
    /// An instance's process is stopped (SIGSTOP), and later continued.
    Stop(String),
    Cont(String),
    /// One of an instance's paths is cut, and later restored.
    Cut(String, Path),
    Heal(String, Path),
    /// The next writes in the commit region are throttled.
    Throttle(u32),
    /// The next write in the commit region applies, then times out.
    TimeoutAfterApply,
    /// A person deletes the lease item.
    DeleteLease,
    /// A person pauses (true) or resumes (false) automatic moves (the stored pause).
    Pause(bool),
    /// A person re-seeds the config item `active` at version 0 (old audit records stay).
    Reseed,
    /// A second process with an instance's id starts (a rolling deploy), and stops.
    Duplicate(String),
    DuplicateGone(String),
    /// Global tables: the regions stop replicating to each other, and resume.
    SplitRegions,
    JoinRegions,
    /// Everything heals: regions up, processes running, paths restored.
    HealAll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    Refused,
    Hang,
    ApiOnly,
    TableOnly,
    Slow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Primary,
    Secondary,
    Peers,
}

impl Fault {
    /// A short name, for the fault mix.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::PrimaryDown(Outage::Refused) => "region outage (refused)",
            Fault::PrimaryDown(Outage::Hang) => "region outage (hang)",
            Fault::PrimaryDown(Outage::ApiOnly) => "partial outage (API)",
            Fault::PrimaryDown(Outage::TableOnly) => "partial outage (table)",
            Fault::PrimaryDown(Outage::Slow) => "slow primary",
            Fault::SecondaryDown => "secondary outage",
            Fault::Kill(_) => "instance killed and restarted",
            Fault::Term(_) => "instance stopped cleanly and restarted",
            Fault::Stop(_) => "instance stopped and continued",
            Fault::Cut(_, Path::Primary) => "instance cut from the primary",
            Fault::Cut(_, Path::Secondary) => "instance cut from the secondary",
            Fault::Cut(_, Path::Peers) => "instance cut from its peers",
            Fault::Throttle(_) => "throttling",
            Fault::TimeoutAfterApply => "write timed out after applying",
            Fault::DeleteLease => "lease deleted by hand",
            Fault::Pause(true) => "paused by hand",
            Fault::Reseed => "item re-seeded at version 0 by hand",
            Fault::Duplicate(_) => "two processes with one id",
            Fault::SplitRegions => "replication partition",
            _ => "",
        }
    }
}

/// A seed's scenario: when each fault happens.
pub struct Plan {
    pub events: Vec<(Duration, Fault)>,
    pub heal_at: Duration,
    pub end: Duration,
}

/// Draws a plan for `instances` from `rng`: usually one primary outage (often to
/// the end), and up to four other faults, each with its return.
pub fn plan(rng: &mut fastrand::Rng, instances: &[String], global: bool) -> Plan {
    let end = Duration::from_secs(100);
    let heal_at = Duration::from_secs(70);
    let ms = |rng: &mut fastrand::Rng, lo: u64, hi: u64| Duration::from_millis(rng.u64(lo..hi));
    let mut events = Vec::new();
    if rng.u8(..10) < 8 {
        let outage = match rng.u8(..10) {
            0..=3 => Outage::Refused,
            4..=5 => Outage::Hang,
            6 => Outage::ApiOnly,
            7 => Outage::TableOnly,
            _ => Outage::Slow,
        };
        let at = ms(rng, 8_000, 30_000);
        events.push((at, Fault::PrimaryDown(outage)));
        if rng.bool() {
            events.push((at + ms(rng, 500, 6_000), Fault::PrimaryUp));
        }
    }
    if instances.len() >= 3 {
        match rng.u8(..8) {
            0 => lone_survivor(rng, instances, &mut events),
            1 => dead_peers_old_votes(rng, instances, &mut events),
            _ => {}
        }
    }
    let pick = |rng: &mut fastrand::Rng| instances[rng.usize(..instances.len())].clone();
    for _ in 0..rng.usize(..=4) {
        let at = ms(rng, 2_000, 45_000);
        let back = at + ms(rng, 300, 15_000);
        let (start, stop) = match rng.u8(..14) {
            0 | 1 => {
                let i = pick(rng);
                (Fault::Kill(i.clone()), Some(Fault::Restart(i)))
            }
            2 | 3 => {
                let i = pick(rng);
                (Fault::Stop(i.clone()), Some(Fault::Cont(i)))
            }
            4..=6 => {
                let i = pick(rng);
                let p = [Path::Primary, Path::Secondary, Path::Peers][rng.usize(..3)];
                (Fault::Cut(i.clone(), p), Some(Fault::Heal(i, p)))
            }
            7 => (Fault::SecondaryDown, Some(Fault::SecondaryUp)),
            8 => (Fault::Throttle(rng.u32(1..4)), None),
            9 => (Fault::TimeoutAfterApply, None),
            10 => (Fault::DeleteLease, None),
            11 => (Fault::Reseed, None),
            12 => {
                let i = pick(rng);
                (Fault::Duplicate(i.clone()), Some(Fault::DuplicateGone(i)))
            }
            _ if global => (Fault::SplitRegions, Some(Fault::JoinRegions)),
            _ => (Fault::TimeoutAfterApply, None),
        };
        events.push((at, start));
        if let Some(stop) = stop {
            events.push((back.min(heal_at), stop));
        }
    }
    events.push((heal_at, Fault::HealAll));
    // Stable: events of one instant keep the order they were drawn in.
    events.sort_by_key(|(at, _)| *at);
    Plan {
        events,
        heal_at,
        end,
    }
}

/// All but one instance die or stop, and the survivor's own path to the (healthy)
/// primary breaks: it must not fail the region over alone.
fn lone_survivor(
    rng: &mut fastrand::Rng,
    instances: &[String],
    events: &mut Vec<(Duration, Fault)>,
) {
    let at = Duration::from_millis(rng.u64(5_000..20_000));
    let back = at + Duration::from_millis(rng.u64(15_000..30_000));
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
fn dead_peers_old_votes(
    rng: &mut fastrand::Rng,
    instances: &[String],
    events: &mut Vec<(Duration, Fault)>,
) {
    let at = Duration::from_millis(rng.u64(5_000..20_000));
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
        at + Duration::from_millis(rng.u64(6_000..12_000)),
        Fault::Restart(first[0].clone()),
    ));
}
