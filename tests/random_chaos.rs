//! Chaos: randomized faults against the emulator and an HTTP target, and kill -9 of the
//! monitor around a transition followed by a restart. Transient faults (shorter than
//! fall x interval) must not flip the region; real outages must flip it exactly once;
//! after every trial the item is valid, versioned, and its audit record is there.
//!
//! `CHAOS_TRIALS=60 cargo test --test random_chaos -- --nocapture` for a long run (CI runs a
//! few); `CHAOS_SEED` picks the schedule.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use failover_core::model::{AppState, Role};
use support::admin::all_probes_up;
use support::config::FAST_MONITOR;
use support::emulator::Emulator;
use support::monitor::Monitor;
use support::runner::Suite;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OK: u8 = 0;
const ERROR_5XX: u8 = 1;
const SLOW: u8 = 2;
const RESET: u8 = 3;

/// An HTTP target on loopback whose behaviour the trial switches: healthy, 503s,
/// answers slower than the probe timeout, or resets connections.
async fn target() -> (u16, Arc<AtomicU8>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mode = Arc::new(AtomicU8::new(OK));
    let m = mode.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let m = m.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let (status, body) = match m.load(Ordering::SeqCst) {
                    RESET => {
                        // Linger 0 makes the close a reset; with a zero timeout the
                        // drop does not block (the reason tokio deprecates it).
                        #[allow(deprecated)]
                        let _ = s.set_linger(Some(Duration::ZERO));
                        return; // dropped with linger 0: a reset
                    }
                    ERROR_5XX => ("503 Service Unavailable", "{}"),
                    SLOW => {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        ("200 OK", "{\"state\":\"active\"}")
                    }
                    _ => ("200 OK", "{\"state\":\"active\"}"),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, mode)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The HTTP target fails in this mode for a while, then recovers.
    TransientHttp { mode: u8, for_ms: u64 },
    /// The primary's emulator is suspended for a while, then resumed.
    TransientHang { for_ms: u64 },
    /// The HTTP target fails for good (the primary's DynamoDB still answers), and the
    /// monitor is killed -9 this long after the failure began, then restarted.
    HttpOutage { kill_monitor_at_ms: Option<u64> },
    /// The primary's emulator dies, and maybe the monitor with it as above.
    RegionOutage { kill_monitor_at_ms: Option<u64> },
}

/// Trial `i` draws its parameters at random, its kind in turn, so that any six
/// consecutive trials cover every kind.
fn pick(rng: &mut fastrand::Rng, i: usize) -> Kind {
    // fall 3 x interval 300 ms: a fault shorter than 550 ms covers at most two slots.
    let short = rng.u64(250..=550);
    let kill = if rng.bool() {
        Some(rng.u64(500..=1600))
    } else {
        None
    };
    match i % 6 {
        0 => Kind::TransientHttp {
            mode: ERROR_5XX,
            for_ms: short,
        },
        1 => Kind::TransientHttp {
            mode: SLOW,
            for_ms: short,
        },
        2 => Kind::TransientHttp {
            mode: RESET,
            for_ms: short,
        },
        3 => Kind::TransientHang { for_ms: short },
        4 => Kind::HttpOutage {
            kill_monitor_at_ms: kill,
        },
        _ => Kind::RegionOutage {
            kill_monitor_at_ms: kill,
        },
    }
}

async fn trial(kind: Kind) -> Result<String, String> {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let (port, mode) = target().await;
    let cfg = emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n[policy]\nfailover_when = \"any\"\n\
         [[probes]]\nname = \"p-api\"\nkind = \"http\"\nregion = \"primary\"\nurl = \"http://127.0.0.1:{port}/prod/state/{{app_id}}\"\nexpect_body = \"state\"\n\
         [[probes]]\nname = \"p-photos\"\nkind = \"s3\"\nregion = \"primary\"\ncheck = \"roundtrip\"\n\
         [[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"s-config\"\nkind = \"dynamodb\"\nregion = \"secondary\"\n"
    ));
    let mut mon = Monitor::start(&cfg);
    support::poll(Duration::from_secs(60), async || {
        all_probes_up(&mon.status().await)
            .then_some(())
            .ok_or_else(String::new)
    })
    .await
    .map_err(|_| "the monitor never saw every probe up".to_owned())?;
    let mut restarted = None;
    let expect_flip = match kind {
        Kind::TransientHttp { mode: m, for_ms } => {
            mode.store(m, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(for_ms)).await;
            mode.store(OK, Ordering::SeqCst);
            false
        }
        Kind::TransientHang { for_ms } => {
            emu.primary.stop();
            tokio::time::sleep(Duration::from_millis(for_ms)).await;
            emu.primary.resume();
            false
        }
        Kind::HttpOutage { kill_monitor_at_ms } | Kind::RegionOutage { kill_monitor_at_ms } => {
            if matches!(kind, Kind::HttpOutage { .. }) {
                mode.store(ERROR_5XX, Ordering::SeqCst);
            } else {
                emu.primary.kill();
            }
            if let Some(at) = kill_monitor_at_ms {
                tokio::time::sleep(Duration::from_millis(at)).await;
                mon.signal("KILL");
                let _ = mon.wait_exit(Duration::from_secs(2)).await;
                restarted = Some(Monitor::start(&cfg));
            }
            true
        }
    };
    // Let everything settle: detection, the commit, a restart's first rounds. (Still
    // active at the end is the expected outcome of a transient fault.)
    let settle = Duration::from_secs(if expect_flip { 15 } else { 3 });
    let _ = tables
        .try_wait_item(Role::Secondary, settle, |i| i.state != AppState::Active)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let item = tables.try_item(Role::Secondary).await?;
    let records = tables.try_audits(Role::Secondary, 1..=5).await?;
    if expect_flip {
        if item.state != AppState::Failover || item.version != 1 {
            return Err(format!(
                "expected exactly one failover, item is {} v{}; log:\n{}",
                item.state,
                item.version,
                restarted.as_ref().unwrap_or(&mon).log_tail(5)
            ));
        }
        match records.as_slice() {
            [r] if (r.version, r.from, r.to) == (1, AppState::Active, AppState::Failover) => {}
            other => return Err(format!("audit records {other:?}")),
        }
        if matches!(kind, Kind::HttpOutage { .. }) {
            // The primary answers: its copy must have caught up (after a restart too).
            let p = tables.try_item(Role::Primary).await;
            if p.as_ref().map(|i| (i.state, i.version)) != Ok((AppState::Failover, 1)) {
                return Err(format!("primary copy not caught up: {p:?}"));
            }
        }
    } else if item.state != AppState::Active || item.version != 0 || !records.is_empty() {
        return Err(format!(
            "false flip: item {} v{}, records {records:?}",
            item.state, item.version
        ));
    }
    Ok(format!("{} v{}", item.state, item.version))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_no_false_flip_no_missed_flip() {
    let suite = Suite {
        label: "chaos",
        item: "chaos",
        count: ("CHAOS_TRIALS", 6),
        seed: ("CHAOS_SEED", 0xc4a05),
    };
    suite
        .run(async |rng, i| {
            let kind = pick(rng, i);
            match trial(kind).await {
                Ok(what) => Ok(format!("{kind:?} -> {what}")),
                Err(why) => Err(format!("{kind:?}: {why}")),
            }
        })
        .await;
}
