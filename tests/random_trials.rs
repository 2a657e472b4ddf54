//! Randomized trials of three cooperating instances: the primary dies while up to two
//! instances are killed (and perhaps restarted, with the same id) or suspended (and
//! resumed) at random moments around it. The quorum counts against the three
//! configured instances, never against the ones alive, so every trial checks:
//!
//! - while two of the three are dead or stopped, no automatic failover is decided
//!   (the views they published before they went may count for a little longer:
//!   `view_ttl` plus the rounds that read them, `Rules::grace`);
//! - once a quorum runs with the primary dead, the failover is committed within
//!   `failover_daemon::failover_bound` of the trial's settings, counted
//!   from then (the bound the simulation checks in every seed);
//! - exactly one transition, a valid item and its audit record; or, when no quorum
//!   ever runs again, no transition at all.
//!
//! `TRIALS=100 cargo test --test random_trials -- --nocapture` runs the full set (CI runs a
//! few); `TRIAL_SEED` picks the schedule. The run ends with the measured failover
//! times against the bound.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use failover_config::Settings;
use failover_core::model::{AppState, Role};
use failover_daemon::failover_bound;
use support::admin::all_probes_up;
use support::config::cooperating_config;
use support::emulator::Emulator;
use support::monitor::Monitor;
use support::proxy::Proxy;
use support::runner::Suite;
use tokio::time::Instant;

const NAMES: [&str; 3] = ["mon-a", "mon-b", "mon-c"];

/// Instances that must run for an automatic failover: a majority of the three.
const QUORUM: usize = 2;

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// kill -9; a new process with the same id this long after (None: never).
    Kill { restart_after_ms: Option<u64> },
    /// SIGSTOP, and SIGCONT this long after.
    Suspend { for_ms: u64 },
}

#[derive(Debug)]
struct Event {
    /// Milliseconds relative to the primary's death (negative: before).
    at_ms: i64,
    instance: usize,
    fault: Fault,
}

fn plan(rng: &mut fastrand::Rng) -> Vec<Event> {
    let victims = rng.usize(0..=2);
    let mut order = vec![0, 1, 2];
    rng.shuffle(&mut order);
    let mut events: Vec<Event> = order[..victims]
        .iter()
        .map(|&instance| Event {
            at_ms: rng.i64(-500..=2000),
            instance,
            fault: if rng.bool() {
                Fault::Kill {
                    restart_after_ms: rng.bool().then(|| rng.u64(500..=6000)),
                }
            } else {
                Fault::Suspend {
                    for_ms: rng.u64(300..=5000),
                }
            },
        })
        .collect();
    events.sort_by_key(|e| e.at_ms);
    events
}

/// What the trial does to the processes, in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    PrimaryDies,
    Kill(usize),
    Restart(usize),
    Stop(usize),
    Cont(usize),
}

fn steps(events: &[Event]) -> Vec<(i64, Step)> {
    let mut steps = vec![(0, Step::PrimaryDies)];
    for e in events {
        let i = e.instance;
        match e.fault {
            Fault::Kill { restart_after_ms } => {
                steps.push((e.at_ms, Step::Kill(i)));
                if let Some(r) = restart_after_ms {
                    steps.push((e.at_ms + r as i64, Step::Restart(i)));
                }
            }
            Fault::Suspend { for_ms } => {
                steps.push((e.at_ms, Step::Stop(i)));
                steps.push((e.at_ms + for_ms as i64, Step::Cont(i)));
            }
        }
    }
    steps.sort();
    steps
}

/// The trial's timing rules, from its settings.
struct Rules {
    /// `failover_bound` of the trial's settings.
    bound: Duration,
    /// How long after the second of three went down a failover may still be
    /// decided on the views they published before: a view counts while it changed
    /// within `view_ttl` (on the reader's clock, which saw the change up to a round
    /// late), and a round's count is used until the next one (two rounds, and each
    /// round's own duration).
    grace: Duration,
}

impl Rules {
    fn of(settings: &Settings) -> Self {
        let c = settings
            .coordination
            .as_ref()
            .expect("the trials' instances cooperate");
        Self {
            bound: failover_bound(settings),
            grace: c.view_ttl + c.renew_every * 3 + Duration::from_millis(500),
        }
    }
}

/// When, in milliseconds after the primary died, at most one of three ran (`lost`:
/// from, until; None: to the end).
#[derive(Debug, Default)]
struct Timeline {
    lost: Vec<(i64, Option<i64>)>,
}

impl Timeline {
    /// From the steps as they were done (`ms`: after the primary died).
    fn of(done: &[(i64, Step)]) -> Self {
        let mut down = [false; 3];
        let mut t = Self::default();
        for &(ms, step) in done {
            match step {
                Step::Kill(i) | Step::Stop(i) => down[i] = true,
                Step::Restart(i) | Step::Cont(i) => down[i] = false,
                Step::PrimaryDies => {}
            }
            let running = down.iter().filter(|d| !**d).count();
            match t.lost.last_mut() {
                Some((_, until @ None)) if running >= QUORUM => *until = Some(ms),
                Some((_, None)) => {}
                _ if running < QUORUM => t.lost.push((ms, None)),
                _ => {}
            }
        }
        t
    }

    /// The stretches, after the primary died, during which a quorum ran: (from,
    /// until), in order.
    fn quorum(&self) -> Vec<(i64, Option<i64>)> {
        let mut stretches = Vec::new();
        let mut from = Some(0);
        for &(lost_from, lost_until) in &self.lost {
            if let Some(f) = from
                && lost_from > f
            {
                stretches.push((f, Some(lost_from)));
            }
            from = lost_until.map(|u| u.max(0));
        }
        if let Some(f) = from {
            stretches.push((f, None));
        }
        stretches
    }

    /// The first quorum stretch long enough that the failover must come within it:
    /// its start, and the latest the failover may be committed (ms).
    fn due(&self, bound: Duration) -> Option<(i64, i64)> {
        let bound = bound.as_millis() as i64;
        self.quorum()
            .into_iter()
            .find(|(from, until)| until.is_none_or(|u| u - from > bound))
            .map(|(from, _)| (from, from + bound))
    }

    /// The start of the quorum stretch a decision at `ms` was taken in (or, taken
    /// in the grace after a quorum was lost, the stretch before).
    fn stretch_of(&self, ms: i64) -> i64 {
        self.lost
            .iter()
            .filter_map(|(_, until)| *until)
            .filter(|u| *u <= ms)
            .max()
            .unwrap_or(0)
            .max(0)
    }

    /// Err when `decided` (ms) fell in a stretch without a quorum, past the grace.
    /// (Lost before the primary died, there is no grace: the views left behind
    /// said "up".)
    fn check_decided(&self, decided: i64, grace: Duration) -> Result<(), String> {
        let grace = grace.as_millis() as i64;
        for &(from, until) in &self.lost {
            let forbidden = if from <= 0 { 0 } else { from + grace };
            if decided >= forbidden && until.is_none_or(|u| decided < u) {
                return Err(format!(
                    "a failover was decided {decided} ms after the primary died, while two \
                     of three had been dead or stopped since {from} ms (grace {grace} ms)"
                ));
            }
        }
        Ok(())
    }
}

/// `ms` milliseconds after `zero` (before it when negative).
fn at(zero: Instant, ms: i64) -> Instant {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 { zero + d } else { zero - d }
}

/// How many milliseconds `t` is after `zero` (negative: before).
fn millis_between(t: Instant, zero: Instant) -> i64 {
    if t >= zero {
        (t - zero).as_millis() as i64
    } else {
        -((zero - t).as_millis() as i64)
    }
}

/// What one trial found.
enum Outcome {
    /// The failover came `took` after the quorum stretch it was decided in began;
    /// the trial's bound.
    Failover { took: Duration, bound: Duration },
    /// No quorum ran again: nothing moved.
    Held,
}

/// Runs one trial; Err says what went wrong.
async fn trial(rng: &mut fastrand::Rng) -> Result<(String, Outcome), String> {
    let mut emu = Emulator::start();
    let tables = Arc::new(emu.tables().await);
    // Each instance reaches the primary through its own proxy; a restart reuses it.
    let mut proxies = Vec::new();
    for _ in NAMES {
        proxies.push(Proxy::start(emu.primary.port).await);
    }
    let configs: Vec<String> = NAMES
        .iter()
        .zip(&proxies)
        .map(|(name, p)| cooperating_config(&emu, name, &NAMES, &p.url(), ""))
        .collect();
    let mut monitors: Vec<Monitor> = configs.iter().map(|c| Monitor::start(c)).collect();
    let settings = failover_config::parse(&configs[0], Vec::new())
        .map_err(|e| format!("the trial's config: {e}"))?;
    let rules = Rules::of(&settings);
    // settle: a leader, every probe up everywhere
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let mut leaders = 0;
        let mut up = true;
        for m in &monitors {
            let s = m.status().await;
            leaders += usize::from(s["is_leader"] == true);
            up &= all_probes_up(&s);
            up &= s["instances"]
                .as_array()
                .is_some_and(|v| v.iter().filter(|p| p["live"] == true).count() == 3);
        }
        if leaders == 1 && up {
            break;
        }
        if Instant::now() > until {
            return Err("the cluster never settled".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The secondary's item, watched from now on: when it first moved.
    let moved: Arc<Mutex<Option<Instant>>> = Arc::default();
    let watcher = {
        let (tables, moved) = (tables.clone(), moved.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(i) = tables.try_item(Role::Secondary).await
                    && i.version != 0
                {
                    *moved.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let events = plan(rng);
    let desc = format!("{events:?}");
    let zero = Instant::now() + Duration::from_millis(1100);
    let mut done = Vec::new();
    let mut died_wall = SystemTime::now();
    let mut died = zero;
    for (ms, step) in steps(&events) {
        tokio::time::sleep_until(at(zero, ms)).await;
        match step {
            Step::PrimaryDies => emu.primary.kill(),
            Step::Kill(i) => monitors[i].signal("KILL"),
            Step::Stop(i) => monitors[i].signal("STOP"),
            Step::Cont(i) => monitors[i].signal("CONT"),
            Step::Restart(i) => monitors[i] = Monitor::start(&configs[i]),
        }
        let now = Instant::now();
        if step == Step::PrimaryDies {
            (died, died_wall) = (now, SystemTime::now());
        }
        done.push((now, step));
    }
    let done: Vec<(i64, Step)> = done
        .into_iter()
        .map(|(t, s)| (millis_between(t, died), s))
        .collect();
    let timeline = Timeline::of(&done);
    let last = done.last().map_or(0, |(ms, _)| *ms);

    // Wait for the failover until it is due; with no quorum ever again, watch for
    // as long as a failover would take, and a little more.
    let due = timeline.due(rules.bound);
    let watch_until = match due {
        Some((_, by)) => by + 500,
        None => last + (rules.grace + rules.bound).as_millis() as i64,
    };
    let seen = loop {
        let seen = *moved.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_some()
            || Instant::now() >= died + Duration::from_millis(watch_until.max(0) as u64)
        {
            break seen.map(|t| millis_between(t, died));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    watcher.abort();
    let bound_ms = rules.bound.as_millis() as i64;
    let Some(seen) = seen else {
        if let Some((from, by)) = due {
            return Err(format!(
                "missed failover: a quorum ran from {from} ms after the primary died, and \
                 nothing was committed by {by} ms (bound {bound_ms} ms; {desc}; {timeline:?})"
            ));
        }
        let item = tables.try_item(Role::Secondary).await?;
        if item.version != 0 {
            return Err(format!(
                "moved to {} v{} without a quorum ({desc})",
                item.state, item.version
            ));
        }
        return Ok((
            format!(
                "no quorum from {} ms on: held for {watch_until} ms after the primary died; faults {desc}",
                timeline.lost.last().map_or(0, |l| l.0)
            ),
            Outcome::Held,
        ));
    };

    // Then nothing else may happen.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let item = tables.try_item(Role::Secondary).await?;
    if item.version != 1 || item.state != AppState::Failover {
        return Err(format!(
            "double or wrong transition: now {} v{} ({desc})",
            item.state, item.version
        ));
    }
    let records = tables.try_audits(Role::Secondary, 1..=5).await?;
    let record = match records.as_slice() {
        [r] if r.version == 1 && r.from == AppState::Active && r.to == AppState::Failover => r,
        other => return Err(format!("audit records {other:?} ({desc})")),
    };
    let decided_at = humantime::parse_rfc3339_weak(&record.at)
        .map_err(|e| format!("the audit record's time {:?}: {e}", record.at))?;
    let decided = match decided_at.duration_since(died_wall) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    };
    timeline
        .check_decided(decided, rules.grace)
        .map_err(|e| format!("{e} ({desc}; {timeline:?})"))?;
    if let Some((from, by)) = due
        && seen > by
    {
        return Err(format!(
            "failover too late: committed {seen} ms after the primary died, a quorum ran from \
             {from} ms, bound {bound_ms} ms ({desc}; {timeline:?})"
        ));
    }
    let from = timeline.stretch_of(decided);
    let took = Duration::from_millis((seen - from).max(0) as u64);
    Ok((
        format!(
            "failover after {took:?} (bound {:?}), counted from {from} ms after the primary \
             died; decided at {decided} ms by {}; faults {desc}",
            rules.bound, record.by
        ),
        Outcome::Failover {
            took,
            bound: rules.bound,
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trial_runner_no_double_and_no_missed_failover() {
    let suite = Suite {
        label: "trials",
        item: "trial",
        count: ("TRIALS", 3),
        seed: ("TRIAL_SEED", 0x7a1a),
    };
    let mut took = Vec::new();
    let mut held = 0;
    let mut bound = Duration::ZERO;
    suite
        .run(async |rng, _| {
            let (line, outcome) = trial(rng).await?;
            match outcome {
                Outcome::Failover { took: t, bound: b } => {
                    took.push(t);
                    bound = b;
                }
                Outcome::Held => held += 1,
            }
            Ok(line)
        })
        .await;
    took.sort();
    if let (Some(min), Some(max)) = (took.first(), took.last()) {
        println!(
            "failover times ({} failovers, counted from the primary's death or the quorum's \
             return): min {min:?}, median {:?}, max {max:?}, bound {bound:?}; {held} trial(s) \
             held without a quorum",
            took.len(),
            took[took.len() / 2],
        );
    }
}

/// The timing rules themselves, on schedules written by hand.
#[test]
fn timeline_finds_when_a_quorum_ran() {
    let bound = Duration::from_millis(10_000);
    let grace = Duration::from_millis(3_000);

    let calm = Timeline::of(&[(0, Step::PrimaryDies)]);
    assert!(calm.lost.is_empty());
    assert_eq!(calm.due(bound), Some((0, 10_000)));

    // Two suspended at once for a while: the failover is due a bound after the
    // first resumes.
    let t = Timeline::of(&[
        (0, Step::PrimaryDies),
        (33, Step::Stop(0)),
        (1883, Step::Stop(2)),
        (2433, Step::Cont(0)),
        (4807, Step::Cont(2)),
    ]);
    assert_eq!(t.lost, [(1883, Some(2433))]);
    assert_eq!(t.quorum(), [(0, Some(1883)), (2433, None)]);
    assert_eq!(t.due(bound), Some((2433, 12_433)));
    assert_eq!(t.stretch_of(3000), 2433);
    assert_eq!(t.stretch_of(1900), 0, "in the grace: the stretch before");
    assert!(t.check_decided(1883 + 2999, grace).is_ok());
    assert!(t.check_decided(2500, grace).is_ok());

    // Two killed for good: never due, and nothing may be decided past the grace.
    let t = Timeline::of(&[
        (-300, Step::Kill(1)),
        (0, Step::PrimaryDies),
        (500, Step::Kill(2)),
    ]);
    assert_eq!(t.lost, [(500, None)]);
    assert_eq!(t.due(bound), None);
    assert!(t.check_decided(3_499, grace).is_ok());
    assert!(t.check_decided(3_500, grace).is_err());
    assert!(t.check_decided(60_000, grace).is_err());

    // Down before the primary died, one back later: due from the restart.
    let t = Timeline::of(&[
        (-400, Step::Kill(0)),
        (-100, Step::Stop(1)),
        (0, Step::PrimaryDies),
        (2000, Step::Restart(0)),
        (2500, Step::Cont(1)),
    ]);
    assert_eq!(t.lost, [(-100, Some(2000))]);
    assert_eq!(t.quorum(), [(2000, None)]);
    assert_eq!(t.due(bound), Some((2000, 12_000)));
    assert!(t.check_decided(1500, grace).is_err());

    // A short quorum stretch between two losses is not where the failover is due.
    let t = Timeline::of(&[
        (0, Step::PrimaryDies),
        (100, Step::Stop(0)),
        (200, Step::Stop(1)),
        (1200, Step::Cont(0)),
        (1500, Step::Stop(0)),
        (9000, Step::Cont(1)),
    ]);
    assert_eq!(t.lost, [(200, Some(1200)), (1500, Some(9000))]);
    assert_eq!(t.due(bound), Some((9000, 19_000)));
}
