//! The faults a seed places at random, and when (`scenarios.rs` adds the targeted
//! scenarios); how each changes the world is `apply.rs`.

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
    /// The path of whichever instance leads at that moment is cut; restored by
    /// [`Fault::HealLeader`].
    CutLeader(Path),
    HealLeader,
    /// The next writes in the commit region are throttled.
    Throttle(u32),
    /// The next write in the commit region applies, then times out.
    TimeoutAfterApply,
    /// Every request to the commit region's config table, read or write, is
    /// throttled for this long (the table's or the account's request rate).
    ThrottleRequests(Duration),
    /// The next this many `BatchGetItem` rounds in the commit region leave half of
    /// their keys unprocessed.
    Unprocessed(u32),
    /// The application's own transactions, each with a condition check on the config
    /// item in the commit region, run (true) or stop (false): the monitor's commits
    /// meet them as `TransactionConflict`.
    AppTransactions(bool),
    /// A permission change of the monitor's role: the signed probes (`dynamodb`) of
    /// the primary, and of the secondary too when true, answer AccessDenied at every
    /// instance while their regions answer; [`Fault::Allow`] ends it.
    Deny {
        secondary: bool,
    },
    Allow,
    /// A person deletes the lease item.
    DeleteLease,
    /// A person pauses (true) or resumes (false) automatic moves (the stored pause).
    Pause(bool),
    /// A person re-seeds the config item `active` at version 0 (old audit records stay).
    Reseed,
    /// A person repairs an item reset below used versions, as the needs-human
    /// message says.
    Repair(Repair),
    /// A second process with an instance's id starts (a rolling deploy), and stops.
    Duplicate(String),
    DuplicateGone(String),
    /// Global tables: the regions stop replicating to each other, and resume.
    SplitRegions,
    JoinRegions,
    /// A person asks every running instance for a drill (only the acting one runs
    /// it): this hold, this fence (0: none).
    Drill {
        hold: Duration,
        fence: Duration,
    },
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
    /// Only the secondary's API (its `http` probe); its table still answers.
    SecondaryApi,
}

/// How a person settles an item reset below used versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// Deletes the audit records above the item's version.
    DeleteRecords,
    /// Sets the item's version to the newest audit record's.
    SetVersion,
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
            Fault::Cut(_, Path::SecondaryApi) => "instance cut from the secondary's API",
            Fault::CutLeader(Path::SecondaryApi) => "leader cut from the secondary's API",
            Fault::CutLeader(_) => "leader cut from the secondary",
            Fault::Throttle(_) => "throttling",
            Fault::TimeoutAfterApply => "write timed out after applying",
            Fault::ThrottleRequests(_) => "request-level throttling",
            Fault::Unprocessed(_) => "unprocessed keys",
            Fault::AppTransactions(true) => "transaction conflicts (the application's)",
            Fault::Deny { secondary: false } => "access denied (primary)",
            Fault::Deny { secondary: true } => "access denied (both regions)",
            Fault::DeleteLease => "lease deleted by hand",
            Fault::Pause(true) => "paused by hand",
            Fault::Reseed => "item re-seeded at version 0 by hand",
            Fault::Repair(Repair::DeleteRecords) => "repair: stale records deleted",
            Fault::Repair(Repair::SetVersion) => "repair: version set",
            Fault::Duplicate(_) => "two processes with one id",
            Fault::SplitRegions => "replication partition",
            Fault::Drill { .. } => "drill",
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

/// What a seed draws besides its faults.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub instances: usize,
    pub global: bool,
    pub fence: bool,
    /// `monitor.hold_down`; when not zero, the item starts at a version above 0
    /// written by a person a little before the start.
    pub hold_down: Duration,
    pub start_version: u64,
    /// How long before the start the person wrote it, and their clock's skew.
    pub written_ago_ms: u64,
    pub human_skew_ms: i64,
    /// Two signed probes and one `http` probe on the primary (instead of two
    /// `http` and one signed).
    pub signed_majority: bool,
    /// How long a transaction is in progress in the tables (0: it applies at once).
    pub transaction_ms: u64,
}

impl Setup {
    pub fn draw(rng: &mut fastrand::Rng) -> Self {
        let instances = [3, 3, 3, 3, 5, 1][rng.usize(..6)];
        let global = rng.bool();
        let fence = rng.u8(..4) == 0;
        let hold_down = match rng.u8(..8) {
            0 => Duration::from_secs(5),
            1 => Duration::from_secs(20),
            2 => Duration::from_secs(60),
            _ => Duration::ZERO,
        };
        let start_version = if hold_down.is_zero() {
            0
        } else {
            rng.u64(1..=3)
        };
        Self {
            instances,
            global,
            fence,
            hold_down,
            start_version,
            // Often just before the start, by a clock ahead of the instances':
            // an updatedAt in their future.
            written_ago_ms: if rng.bool() {
                rng.u64(..3_000)
            } else {
                rng.u64(..=hold_down.as_millis() as u64 + 10_000)
            },
            human_skew_ms: rng.i64(-5_000..=5_000),
            signed_majority: rng.u8(..4) == 0,
            transaction_ms: if rng.u8(..3) == 0 { rng.u64(5..60) } else { 0 },
        }
    }
}

/// Draws a plan for `instances` from `rng`: usually one primary outage (often to
/// the end), a targeted scenario now and then, and up to four other faults, each
/// with its return.
pub fn plan(rng: &mut fastrand::Rng, instances: &[String], setup: &Setup) -> Plan {
    let end = Duration::from_secs(100);
    let heal_at = Duration::from_secs(70);
    let mut events = Vec::new();
    let outage = (rng.u8(..10) < 8).then(|| primary_outage(rng, &mut events));
    super::scenarios::targeted(rng, instances, setup, outage, &mut events);
    for _ in 0..rng.usize(..=4) {
        let at = ms(rng, 2_000, 45_000);
        let back = (at + ms(rng, 300, 15_000)).min(heal_at);
        for (t, f) in one_fault(rng, instances, setup, at, back) {
            events.push((t.min(heal_at), f));
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

pub fn ms(rng: &mut fastrand::Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.u64(lo..hi))
}

/// A primary outage: when it begins, and whether it ends before the heal.
fn primary_outage(
    rng: &mut fastrand::Rng,
    events: &mut Vec<(Duration, Fault)>,
) -> (Duration, bool) {
    let outage = match rng.u8(..10) {
        0..=3 => Outage::Refused,
        4..=5 => Outage::Hang,
        6 => Outage::ApiOnly,
        7 => Outage::TableOnly,
        _ => Outage::Slow,
    };
    let at = ms(rng, 8_000, 30_000);
    events.push((at, Fault::PrimaryDown(outage)));
    let ends = rng.bool();
    if ends {
        events.push((at + ms(rng, 500, 6_000), Fault::PrimaryUp));
    }
    (at, ends)
}

/// One fault from `at`, and what ends it at `back` (if anything does).
fn one_fault(
    rng: &mut fastrand::Rng,
    instances: &[String],
    setup: &Setup,
    at: Duration,
    back: Duration,
) -> Vec<(Duration, Fault)> {
    let i = instances[rng.usize(..instances.len())].clone();
    let (start, stop) = match rng.u8(..20) {
        0 | 1 => (Fault::Kill(i.clone()), Some(Fault::Restart(i))),
        2 | 3 => (Fault::Stop(i.clone()), Some(Fault::Cont(i))),
        4..=6 => {
            let p = [
                Path::Primary,
                Path::Secondary,
                Path::Peers,
                Path::SecondaryApi,
            ][rng.usize(..4)];
            (Fault::Cut(i.clone(), p), Some(Fault::Heal(i, p)))
        }
        7 => (Fault::SecondaryDown, Some(Fault::SecondaryUp)),
        8 => (Fault::Throttle(rng.u32(1..4)), None),
        9 => (Fault::TimeoutAfterApply, None),
        10 => (Fault::DeleteLease, None),
        11 => {
            let repair = if rng.bool() {
                Repair::DeleteRecords
            } else {
                Repair::SetVersion
            };
            let repair_at = at + ms(rng, 3_000, 25_000);
            return vec![(at, Fault::Reseed), (repair_at, Fault::Repair(repair))];
        }
        12 => (Fault::Duplicate(i.clone()), Some(Fault::DuplicateGone(i))),
        13 => (Fault::ThrottleRequests(ms(rng, 500, 8_000)), None),
        14 => (Fault::Unprocessed(rng.u32(1..12)), None),
        15 if setup.transaction_ms > 0 => (
            Fault::AppTransactions(true),
            Some(Fault::AppTransactions(false)),
        ),
        18 if at <= Duration::from_secs(40) => (
            Fault::Drill {
                hold: ms(rng, 1_000, 6_000),
                fence: if rng.bool() {
                    Duration::ZERO
                } else {
                    ms(rng, 500, 3_000)
                },
            },
            None,
        ),
        16 | 17 => (
            Fault::Deny {
                secondary: rng.bool(),
            },
            Some(Fault::Allow),
        ),
        _ if setup.global => (Fault::SplitRegions, Some(Fault::JoinRegions)),
        _ => (Fault::TimeoutAfterApply, None),
    };
    let mut out = vec![(at, start)];
    out.extend(stop.map(|s| (back, s)));
    out
}
