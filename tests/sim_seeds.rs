//! The deterministic simulation of the whole system (`tests/sim/`): many seeds, each
//! a scenario of faults around N real daemons on paused time, every property
//! checked as it runs. `SIM_SEEDS` (how many, default 20) and `SIM_SEED` (the first,
//! default random) choose the seeds; a failure prints its seed, the property and the
//! trace, and `SIM_SEED=<s> SIM_SEEDS=1` replays it. `SIM_REPORT=<file>` writes the
//! figures (fault mix, failover times) as JSON; `SIM_TRACE=1` prints every seed's
//! trace; `SIM_LOG=<filter>` (e.g. `failover_daemon=debug`) prints the daemons' own
//! logs, stamped with the simulated clock, to replay one seed. Ends with `N passed,
//! M failed`.
//!
//! `cargo test --release --test sim_seeds -- --nocapture`

mod sim;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number"))
    })
}

#[test]
#[allow(clippy::disallowed_types)] // the wall time the seeds took, outside any runtime
fn simulation() {
    if let Ok(filter) = std::env::var("SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_timer(SimClock)
            .with_ansi(false)
            .with_writer(std::io::stdout)
            .init();
    }
    let count = env_u64("SIM_SEEDS").unwrap_or(20);
    let first = env_u64("SIM_SEED").unwrap_or_else(|| fastrand::u64(..1_000_000_000));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8) as u64;
    let results = Arc::new(Mutex::new(Vec::new()));
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let results = results.clone();
            scope.spawn(move || {
                let mut seed = first + t;
                while seed < first + count {
                    let outcome = sim::run(seed);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(outcome);
                    seed += threads;
                }
            });
        }
    });
    let mut outcomes = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    outcomes.sort_by_key(|o| o.seed);
    let failed: Vec<&sim::Outcome> = outcomes
        .iter()
        .filter(|o| !o.violations.is_empty())
        .collect();
    if std::env::var_os("SIM_TRACE").is_some() {
        for o in &outcomes {
            println!("\n=== seed {}", o.seed);
            for line in &o.trace {
                println!("  {line}");
            }
        }
    }
    for o in &failed {
        println!("\n=== seed {} FAILED: {}", o.seed, o.violations.join("; "));
        for line in &o.trace {
            println!("  {line}");
        }
        println!(
            "  replay: SIM_SEED={} SIM_SEEDS=1 cargo test --release --test sim_seeds -- --nocapture",
            o.seed
        );
    }
    report(&outcomes, first, started.elapsed());
    println!(
        "simulation (seeds {first}..{}): {} passed, {} failed",
        first + count,
        outcomes.len() - failed.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} seeds failed",
        failed.len(),
        outcomes.len()
    );
}

/// Log lines stamped with the simulated time since the first line (one seed's
/// runtime starts its paused clock when the seed starts).
struct SimClock;

impl tracing_subscriber::fmt::time::FormatTime for SimClock {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        static START: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
        let start = *START.get_or_init(tokio::time::Instant::now);
        write!(w, "{:>8.3}s", start.elapsed().as_secs_f64())
    }
}

/// The fault mix and the failover times against the bound, printed (and written to
/// `SIM_REPORT` when set).
fn report(outcomes: &[sim::Outcome], first: u64, took: std::time::Duration) {
    let mut mix: BTreeMap<&str, usize> = BTreeMap::new();
    for o in outcomes {
        for f in &o.faults {
            *mix.entry(f).or_default() += 1;
        }
    }
    let mut times: Vec<(u64, u64, u64)> = outcomes
        .iter()
        .flat_map(|o| o.failovers_ms.iter().map(|t| (*t, o.bound_ms, o.seed)))
        .collect();
    times.sort();
    // The failover furthest over its bound, with its seed to replay it.
    let worst = times
        .iter()
        .max_by(|a, b| (a.0 as f64 / a.1 as f64).total_cmp(&(b.0 as f64 / b.1 as f64)));
    let pick = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q).round() as usize)
            .map(|t| t.0)
    };
    let summary = serde_json::json!({
        "seeds": outcomes.len(),
        "first_seed": first,
        "wall_seconds": took.as_secs_f64(),
        "instances": outcomes.iter().fold(BTreeMap::new(), |mut m: BTreeMap<usize, usize>, o| { *m.entry(o.instances).or_default() += 1; m }),
        "global_tables": outcomes.iter().filter(|o| o.global).count(),
        "fault_mix": mix,
        "drills": outcomes.iter().filter_map(|o| o.drill.as_deref()).fold(BTreeMap::new(), |mut m: BTreeMap<&str, usize>, d| { *m.entry(d).or_default() += 1; m }),
        "failovers": {
            "measured": times.len(),
            "min_ms": pick(0.0),
            "median_ms": pick(0.5),
            "p99_ms": pick(0.99),
            "max_ms": times.last().map(|t| t.0),
            "bound_ms": outcomes.iter().map(|o| o.bound_ms).collect::<std::collections::BTreeSet<_>>(),
            "worst_fraction_of_bound": worst.map_or(0.0, |w| w.0 as f64 / w.1 as f64),
            "worst": worst.map(|w| serde_json::json!({ "seed": w.2, "ms": w.0, "bound_ms": w.1 })),
        },
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    if let Ok(path) = std::env::var("SIM_REPORT") {
        let _ = std::fs::write(
            path,
            serde_json::to_string_pretty(&summary).unwrap_or_default(),
        );
    }
}

/// The same seed gives the same trace.
#[test]
fn a_seed_replays_exactly() {
    let seed = env_u64("SIM_SEED").unwrap_or(424242);
    let a = sim::run(seed);
    let b = sim::run(seed);
    assert!(a.trace.len() > 10, "a trace worth comparing: {:?}", a.trace);
    assert_eq!(a.trace, b.trace, "seed {seed} did not replay");
}

/// Seeds that once broke a property, run on every test run. 500249: a lone
/// instance, stopped (SIGSTOP) with its commit throttled while the primary was
/// down, resumed after the primary came back and failed it over on the probe
/// results it had before the stop. 501153: views read again after the commit region
/// had been unreachable for 15 s were dated at the read, so old down votes counted
/// as fresh. 25612: a lone instance resumed after a stop failed over on a probe
/// still down but already answering again. 37453: a second process with the id of
/// a lone instance, its probes not yet known, lifted the first one's fence.
/// 41010967: a retry answered by its client request token (applying nothing) was
/// logged as a commit over the other process's later one. 41015774: a commit's
/// copy moved a primary copy left at v1 from before a re-seed, its record deleted,
/// to v2 (v1 unaudited there). 42031154: a late copy of v1 on the primary after a
/// re-seed, the commit region's version then set back to 1 by hand in the
/// re-seeded state: same record, two states, a divergence that never settled.
/// 42043606: a process resumed after a 16 s stop, its signed probes denied,
/// published its pre-stop down as fresh and made a quorum over a healthy primary.
/// (A
/// change to the simulation's draws may change what a seed plays;
/// `docs/SIMULATION.md` says what each was.)
#[test]
fn seeds_that_once_failed_pass() {
    for seed in [
        500249, 501153, 25612, 37453, 759, 828, 41010967, 41015774, 42031154, 42043606,
    ] {
        let o = sim::run(seed);
        assert!(o.violations.is_empty(), "seed {seed}: {:?}", o.violations);
    }
}
