//! Randomized trials of three cooperating instances: the primary dies while up to two
//! instances are killed or suspended (and later resumed) at random moments around it.
//! After every trial: exactly one transition (no double transition, no missed
//! failover), a valid item and its audit record.
//!
//! `TRIALS=100 cargo test --test trials -- --nocapture` runs the full set (CI runs a
//! few); `TRIAL_SEED` picks the schedule.

use std::time::Duration;

use failover_monitor::model::{AppState, Role};
use support::admin::all_probes_up;
use support::config::cooperating_config;
use support::emulator::Emulator;
use support::monitor::Monitor;
use support::proxy::Proxy;
use support::runner::Suite;

const NAMES: [&str; 3] = ["mon-a", "mon-b", "mon-c"];

#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill,
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
                Fault::Kill
            } else {
                Fault::Suspend {
                    for_ms: rng.u64(300..=4000),
                }
            },
        })
        .collect();
    events.sort_by_key(|e| e.at_ms);
    events
}

/// Runs one trial; Err says what went wrong.
async fn trial(rng: &mut fastrand::Rng) -> Result<String, String> {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let mut proxies = Vec::new();
    let mut monitors = Vec::new();
    for name in NAMES {
        let p = Proxy::start(emu.primary.port).await;
        monitors.push(Monitor::start(&cooperating_config(
            &emu,
            name,
            &NAMES,
            &p.url(),
            "",
        )));
        proxies.push(p);
    }
    // settle: a leader, every probe up everywhere
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
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
        if tokio::time::Instant::now() > until {
            return Err("the cluster never settled".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let events = plan(rng);
    let desc = format!("{events:?}");
    let start = tokio::time::Instant::now() + Duration::from_millis(600);
    let at = |ms: i64| start + Duration::from_millis((ms + 500) as u64);
    let primary_dies = at(0);
    let mut resumes = Vec::new();
    let mut primary_killed = false;
    for e in &events {
        if !primary_killed && at(e.at_ms) >= primary_dies {
            tokio::time::sleep_until(primary_dies).await;
            emu.primary.kill();
            primary_killed = true;
        }
        tokio::time::sleep_until(at(e.at_ms)).await;
        match e.fault {
            Fault::Kill => monitors[e.instance].signal("KILL"),
            Fault::Suspend { for_ms } => {
                monitors[e.instance].signal("STOP");
                resumes.push((at(e.at_ms) + Duration::from_millis(for_ms), e.instance));
            }
        }
    }
    if !primary_killed {
        tokio::time::sleep_until(primary_dies).await;
        emu.primary.kill();
    }
    resumes.sort();
    for (when, i) in resumes {
        tokio::time::sleep_until(when).await;
        monitors[i].signal("CONT");
    }

    // The failover must happen; then nothing else may.
    let deadline = primary_dies + Duration::from_secs(20);
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let (committed, _) = tables
        .try_wait_item(Role::Secondary, remaining, |i| i.state != AppState::Active)
        .await
        .map_err(|last| {
            format!("missed failover: still active 20 s after the outage ({desc}); last: {last}")
        })?;
    let took = tokio::time::Instant::now() - primary_dies;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let item = tables.try_item(Role::Secondary).await?;
    if item.version != 1 || item.state != AppState::Failover || committed.version != 1 {
        return Err(format!(
            "double or wrong transition: now {} v{} ({desc})",
            item.state, item.version
        ));
    }
    let records = tables.try_audits(Role::Secondary, 1..=5).await?;
    match records.as_slice() {
        [r] if r.version == 1 && r.from == AppState::Active && r.to == AppState::Failover => {}
        other => return Err(format!("audit records {other:?} ({desc})")),
    }
    Ok(format!(
        "failover after {took:?} by {}; faults {desc}",
        records[0].by
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
    suite.run(async |rng, _| trial(rng).await).await;
}
