//! The daemon end to end against the two-region emulator: real moto servers on
//! loopback, real monitor processes, real conditional writes.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use failover_core::model::{AppState, Role, Trigger};
use serde_json::json;
use support::admin::{TRANSITIONS, all_probes_up};
use support::config::{FAST_MONITOR, PROBES_ALL_KINDS};
use support::emulator::{Emulator, use_emulator_credentials};
use support::monitor::{Monitor, TOKEN, cli};
use support::{TempDir, free_port, wait_for};

fn monitor_section(extra: &str) -> String {
    format!(
        "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n{extra}\n{PROBES_ALL_KINDS}"
    )
}

/// fall x interval + timeout, for the default test probe settings.
const DETECTION_BUDGET: Duration = Duration::from_millis(3 * 300 + 250);
/// Scheduling, the actuator's write and the test's polling on a busy 2-core box.
const SLACK: Duration = Duration::from_millis(2500);

/// (a) Primary killed -> `failover` in the secondary within fall x interval + timeout
/// + slack, and in the primary once it is back (with its audit record): with global
/// tables the returning primary rejoins the replicas and replication fills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_fails_over_and_the_primary_follows_when_back() {
    primary_killed_fails_over_and_follows(Emulator::start()).await;
}

/// (a) with one table per region: the daemon's sync copies the commit and its audit
/// record into the returning primary's table itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_region_primary_killed_fails_over_and_the_primary_is_caught_up() {
    primary_killed_fails_over_and_follows(Emulator::start_per_region()).await;
}

async fn primary_killed_fails_over_and_follows(mut emu: Emulator) {
    let tables = emu.tables().await;
    let mon = Monitor::start(&emu.config(&monitor_section("instance_id = \"mon-a\"")));
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;

    emu.primary.kill();
    let (item, took) = tables
        .wait_item(Role::Secondary, DETECTION_BUDGET + SLACK, |i| {
            i.state == AppState::Failover
        })
        .await;
    println!(
        "outage -> failover committed in the secondary: {took:?} (fall x interval = 900ms, budget {:?})",
        DETECTION_BUDGET + SLACK
    );
    assert_eq!(item.version, 1);
    assert_eq!(item.updated_by.as_deref(), Some("mon-a"));
    let records = tables.audits(Role::Secondary, 1..=2).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(
        (r.from, r.to, r.version, r.trigger),
        (AppState::Active, AppState::Failover, 1, Trigger::Auto)
    );
    assert!(
        r.evidence["primary_down"].as_u64().unwrap() >= 3,
        "{}",
        r.evidence
    );

    // The primary comes back as the original stack seeds it: active, no version.
    emu.primary.restart();
    emu.seed(Role::Primary);
    let (p, _) = tables
        .wait_item(Role::Primary, Duration::from_secs(15), |i| i.version == 1)
        .await;
    assert_eq!(p.state, AppState::Failover);
    // With global tables the record replicates on its own, maybe after the item
    // (items travel one by one); the daemon's catch-up copies both at once.
    wait_for(
        Duration::from_secs(10),
        "the audit record in the primary",
        async || {
            let got = tables.try_audits(Role::Primary, 1..=1).await?;
            (got == records).then_some(()).ok_or(format!("{got:?}"))
        },
    )
    .await;
}

/// (b) Primary suspended (requests hang until the timeout) -> failover too; once it
/// resumes, replication brings its replica up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_hanging_fails_over() {
    primary_hanging_fails_over_and_follows(Emulator::start()).await;
}

/// (b) with one table per region: the sync catches the resumed primary's copy up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_region_primary_hanging_fails_over_and_is_caught_up() {
    primary_hanging_fails_over_and_follows(Emulator::start_per_region()).await;
}

async fn primary_hanging_fails_over_and_follows(emu: Emulator) {
    let tables = emu.tables().await;
    let mon = Monitor::start(&emu.config(&monitor_section("")));
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;

    emu.primary.stop();
    let (item, took) = tables
        .wait_item(Role::Secondary, DETECTION_BUDGET + SLACK, |i| {
            i.state == AppState::Failover
        })
        .await;
    println!("hang -> failover committed: {took:?}");
    assert_eq!(item.version, 1);
    // The daemon's own reading of both copies: the secondary's at version 1, the
    // primary's not (it hangs: not updated, not even readable).
    mon.wait_status(Duration::from_secs(10), "primary copy lagging", |s| {
        s["regions"]["secondary"]["version"] == 1 && s["regions"]["primary"]["version"] != 1
    })
    .await;
    emu.primary.resume();
    let (p, _) = tables
        .wait_item(Role::Primary, Duration::from_secs(10), |i| i.version == 1)
        .await;
    assert_eq!(p.state, AppState::Failover);
}

/// An HTTP server on loopback that fails every `every`-th request with a 503.
fn flaky_server(every: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let (status, body) = if n.is_multiple_of(every) {
                ("503 Service Unavailable", "{}")
            } else {
                ("200 OK", "{\"state\":\"active\"}")
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

/// An upper bound on the age of a status snapshot: the daemon publishes one at most
/// every 200 ms, at an evaluation (at least one per probe result), on a busy 2-core box.
const STATUS_AGE: Duration = Duration::from_secs(1);

/// (c) A probe failing one time in three with fall = 3 never flips the region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failure_in_three_with_fall_three_does_not_flip() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let (port, hits) = flaky_server(3);
    let body = format!(
        "[monitor]\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n[policy]\nfailover_when = \"any\"\n\
         [[probes]]\nname = \"state-api\"\nkind = \"http\"\nregion = \"primary\"\nurl = \"http://127.0.0.1:{port}/prod/state/{{app_id}}\"\n\
         expect_body = \"state\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\njitter = \"0s\"\nfall = 3\nrise = 2\n\
         [[probes]]\nname = \"s-photos\"\nkind = \"s3\"\nregion = \"secondary\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n"
    );
    let mon = Monitor::start(&emu.config(&body));
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;
    mon.wait_status(Duration::from_secs(20), "every probe up", all_probes_up)
        .await;
    let up = tokio::time::Instant::now();
    // What the status says may be up to STATUS_AGE old: counting starts after that.
    tokio::time::sleep(STATUS_AGE).await;
    let start = hits.load(Ordering::SeqCst);
    while hits.load(Ordering::SeqCst) < start + 60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 60 more probes, 20 of them failed; none three in a row: no probe went down, so
    // each has been up since before the counting began.
    let window = up.elapsed().saturating_sub(STATUS_AGE);
    let status = mon.status().await;
    for p in status["probes"].as_array().expect("probes in the status") {
        assert_eq!(p["health"], "up", "{status}");
        let held = Duration::from_millis(p["for_ms"].as_u64().expect("for_ms"));
        assert!(
            held >= window,
            "{} up for only {held:?}: {status}",
            p["name"]
        );
    }
    let item = tables.item(Role::Secondary).await;
    assert_eq!((item.state, item.version), (AppState::Active, 0));
    assert!(tables.audits(Role::Secondary, 1..=1).await.is_empty());
}

/// (d) `manual` and `dry-run` see the outage, say what they would do, never write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_and_dry_run_never_write() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let manual =
        Monitor::start(&emu.config(&monitor_section("mode = \"manual\"\ninstance_id = \"m\"")));
    let dry =
        Monitor::start(&emu.config(&monitor_section("mode = \"dry-run\"\ninstance_id = \"d\"")));
    manual
        .wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;
    dry.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;

    emu.primary.kill();
    manual
        .wait_verdict(
            "blocked (manual_mode): active -> failover",
            Duration::from_secs(10),
        )
        .await;
    dry.wait_verdict(
        "blocked (dry_run): active -> failover",
        Duration::from_secs(10),
    )
    .await;
    // Several more evaluations.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let item = tables.item(Role::Secondary).await;
    assert_eq!((item.state, item.version), (AppState::Active, 0));
    assert!(tables.audits(Role::Secondary, 1..=1).await.is_empty());
    for m in [&manual, &dry] {
        assert_eq!(m.metrics().await.sum(TRANSITIONS, &[]), 0.0);
    }
}

/// (e) Two monitors racing on one item: exactly one transition, the other reports the
/// lost race and does not overwrite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_monitors_racing_commit_exactly_one_transition() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    // A long state_refresh: neither learns of the other's write before trying its own.
    let body = |id: &str| {
        format!(
            "{FAST_MONITOR}\n[monitor]\ninstance_id = \"{id}\"\nstate_refresh = \"60s\"\nhold_down = \"0s\"\n{PROBES_ALL_KINDS}"
        )
    };
    let a = Monitor::start(&emu.config(&body("mon-a")));
    let b = Monitor::start(&emu.config(&body("mon-b")));
    a.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;
    b.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;

    emu.primary.kill();
    let (item, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(10), |i| {
            i.state == AppState::Failover
        })
        .await;
    // Both settle on version 1: the winner by its commit, the loser by learning of it
    // from its own refused write (its next refresh is a minute away).
    for m in [&a, &b] {
        m.wait_status(Duration::from_secs(10), "the item at version 1", |s| {
            s["item"]["version"] == 1
        })
        .await;
    }
    let mut committed = Vec::new();
    for m in [&a, &b] {
        committed.push(m.metrics().await.sum(TRANSITIONS, &[]));
    }
    assert!(
        committed == [1.0, 0.0] || committed == [0.0, 1.0],
        "transitions committed by mon-a and mon-b: {committed:?}"
    );
    let (winner, loser) = if committed[0] == 1.0 {
        ("mon-a", &b)
    } else {
        ("mon-b", &a)
    };
    // The loser did not overwrite: what it holds is the winner's item.
    let seen = loser.status().await;
    assert_eq!(seen["item"]["updated_by"], winner, "{seen}");
    assert_eq!(item.version, 1);
    assert_eq!(item.updated_by.as_deref(), Some(winner));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = tables.audits(Role::Secondary, 1..=3).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].by, winner);
    assert_eq!(tables.item(Role::Secondary).await.version, 1);
}

/// (f) Hold-down: with automatic failback due at once, the move back waits for
/// hold_down after the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_down_delays_automatic_failback() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let body = format!(
        "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\nhold_down = \"6s\"\nfailback = \"auto\"\nfailback_after = \"0s\"\n{PROBES_ALL_KINDS}"
    );
    let mon = Monitor::start(&emu.config(&body));
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;

    // A hang, not a kill: a killed region takes longer to restart and seed than the
    // hold-down lasts on a busy machine, and then nothing is left to block.
    emu.primary.stop();
    tables
        .wait_item(Role::Secondary, Duration::from_secs(10), |i| {
            i.state == AppState::Failover
        })
        .await;
    let failed_over = tokio::time::Instant::now();
    emu.primary.resume();
    mon.wait_verdict(
        "blocked (hold_down): failover -> active",
        Duration::from_secs(10),
    )
    .await;
    let (back, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(20), |i| {
            i.state == AppState::Active
        })
        .await;
    let waited = failed_over.elapsed();
    assert_eq!(back.version, 2);
    // The failover committed at or before `failed_over`: the failback cannot be earlier
    // than hold_down after it.
    assert!(
        waited >= Duration::from_millis(5900),
        "failback after only {waited:?}"
    );
    let records = tables.audits(Role::Secondary, 1..=2).await;
    assert_eq!(
        records.iter().map(|r| (r.from, r.to)).collect::<Vec<_>>(),
        [
            (AppState::Failover, AppState::Active),
            (AppState::Active, AppState::Failover)
        ]
    );
}

/// (f) Manual failback: a healthy primary is not failed back to by the daemon; a human
/// does it with the CLI, audited and versioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failback_waits_for_a_human() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let config_text = emu.config(&monitor_section(
        "failback = \"manual\"\nfailback_after = \"0s\"",
    ));
    let mon = Monitor::start(&config_text);
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;

    emu.primary.kill();
    tables
        .wait_item(Role::Secondary, Duration::from_secs(10), |i| {
            i.state == AppState::Failover
        })
        .await;

    // `state set` goes through the running monitor, so its safety rules apply: no
    // failback while the primary fails its probes.
    let dir = TempDir::new("cli");
    let path = dir.0.join("monitor.toml");
    std::fs::write(&path, &config_text).unwrap();
    let set_active = || {
        cli(&path)
            .args([
                "state",
                "set",
                "active",
                "--reason",
                "primary verified by ops",
            ])
            .args(["--url", &mon.url(""), "--caller", "ops-bob"])
            .env("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let out = set_active();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("409") && err.contains("safety rule: the primary does not pass its probes"),
        "{err}"
    );
    assert_eq!(tables.item(Role::Secondary).await.version, 1);

    emu.primary.restart();
    emu.seed(Role::Primary);
    tables
        .wait_item(Role::Primary, Duration::from_secs(10), |i| i.version == 1)
        .await;
    mon.wait_verdict(
        "hold: in failover; failback not due",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(tables.item(Role::Secondary).await.state, AppState::Failover);

    let out = set_active();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("its safety rules apply")
            && text.contains("failover -> active committed (version 2)"),
        "{text}"
    );
    let s = tables.item(Role::Secondary).await;
    assert_eq!((s.state, s.version), (AppState::Active, 2));
    // a human's move, recorded under the caller's name (`admin:` through the daemon)
    assert_eq!(s.updated_by.as_deref(), Some("admin:ops-bob"));
    let r = &tables.audits(Role::Secondary, 2..=2).await[0];
    assert_eq!(
        (r.trigger, r.reason.as_str(), r.by.as_str(), r.forced),
        (
            Trigger::Manual,
            "primary verified by ops",
            "admin:ops-bob",
            false
        )
    );
    // The daemon sees the human's move and leaves it; replication carries it to the
    // primary's replica.
    mon.wait_status(
        Duration::from_secs(10),
        "the human's item seen, and left",
        |s| s["item"]["version"] == 2 && s["policy"] == "hold: primary healthy",
    )
    .await;
    tables
        .wait_item(Role::Primary, Duration::from_secs(10), |i| i.version == 2)
        .await;
}

/// (g) A bad config: exit 2 with the key named, from `run` and `check-config`.
#[test]
fn bad_config_exits_2_naming_the_key() {
    let dir = TempDir::new("badcfg");
    let path = dir.0.join("monitor.toml");
    std::fs::write(
        &path,
        "[app]\nid = \"x\"\n[regions.primary]\nname = \"us-east-1\"\n[regions.secondary]\nname = \"ap-northeast-1\"\n\
         [monitor]\nmode = \"yolo\"\n[[probes]]\nname = \"c\"\nkind = \"dynamodb\"\nregion = \"primary\"\n",
    )
    .unwrap();
    for cmd in ["run", "check-config"] {
        let out = cli(&path).arg(cmd).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "monitor.mode: unknown variant `yolo`, expected one of `auto`, `manual`, `dry-run`"
            ),
            "{cmd}: {err}"
        );
    }
    let out = cli(&dir.0.join("missing.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing.toml: cannot read the config file")
    );
    let out = cli(&path).arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("monitor.toml");
    let out = cli(&shipped).arg("check-config").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `state get|set|switch|history` against the emulator, without a monitor: a move
/// is refused unless forced, and a forced one is written directly, audited as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_commands_move_the_item_with_versions_and_audit() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let dir = TempDir::new("cli");
    let path = dir.0.join("monitor.toml");
    std::fs::write(&path, emu.config(&monitor_section(""))).unwrap();
    // No monitor listens there.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let run = |args: &[&str]| cli(&path).args(args).output().unwrap();
    let forced = |args: &[&str]| {
        cli(&path)
            .args(args)
            .args(["--force", "--url", &nobody, "--caller", "ops-ana"])
            .output()
            .unwrap()
    };

    let out = run(&["state", "get"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("primary   active   version 0"), "{text}");
    assert!(text.contains("secondary active   version 0"), "{text}");

    // without a monitor and without --force: refused, nothing written
    let out = run(&["state", "switch", "--url", &nobody]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("no monitor answered at {nobody}"))
            && err.contains("the move was not made")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(tables.item(Role::Secondary).await.version, 0);

    let out = forced(&["state", "set", "active"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already active"));

    assert!(
        forced(&["state", "switch", "--reason", "drill"])
            .status
            .success()
    );
    assert!(forced(&["state", "set", "fenced"]).status.success());
    let out = forced(&["state", "switch"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "switch from fenced is ambiguous"
    );
    assert!(forced(&["state", "set", "failover"]).status.success());

    // Written in the secondary only (global tables); replication brings the primary's
    // replica the same item.
    emu.wait_converged(Duration::from_secs(10)).await;
    for role in Role::BOTH {
        let i = tables.item(role).await;
        assert_eq!((i.state, i.version), (AppState::Failover, 3), "{role}");
        assert_eq!(i.updated_by.as_deref(), Some("cli:ops-ana"), "{role}");
    }
    let out = run(&["state", "history", "--json"]);
    assert!(out.status.success());
    let records: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let moves: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap().into(),
                r["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("fenced".into(), "failover".into()),
            ("failover".into(), "fenced".into()),
            ("active".into(), "failover".into())
        ]
    );
    assert_eq!(records[2]["reason"], "drill");
    for r in &records {
        assert_eq!(
            (&r["by"], &r["forced"]),
            (&json!("cli:ops-ana"), &json!(true))
        );
        assert_eq!(r["evidence"]["source"], "cli");
        assert!(
            r["evidence"]["checked"]
                .as_str()
                .unwrap()
                .contains("no monitor checked the regions"),
            "{r}"
        );
    }

    // Without USER, SUDO_USER or FAILOVER_MONITOR_CALLER, the OS user: never "unknown".
    let out = cli(&path)
        .args(["state", "set", "active", "--force", "--url", &nobody])
        .env_remove("USER")
        .env_remove("SUDO_USER")
        .env_remove("FAILOVER_MONITOR_CALLER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by = tables.item(Role::Secondary).await.updated_by.unwrap();
    assert!(
        by.starts_with("cli:") && by.len() > 4 && by != "cli:unknown",
        "{by}"
    );
}

/// The secondary is the commit point: with it down, nothing changes anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_the_secondary_changes_nothing() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let dir = TempDir::new("cli");
    let path = dir.0.join("monitor.toml");
    std::fs::write(&path, emu.config(&monitor_section(""))).unwrap();
    emu.secondary.kill();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let out = cli(&path)
        .args(["state", "set", "failover", "--force", "--url", &nobody])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secondary region unavailable"));
    let p = tables.item(Role::Primary).await;
    assert_eq!((p.state, p.version), (AppState::Active, 0));
}

/// fence_for/max_fence: active -> fenced, replication measured with a canary while
/// fenced (one table per region on regions that do not replicate, so it never
/// drains), -> failover at max_fence, with the measurement in the audit record. (On a
/// replicating pair: tests/e2e_replication.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_measures_replication_and_fails_over_at_max_fence() {
    let emu = Emulator::start_per_region();
    let tables = emu.tables().await;
    // The primary's API and a second http check fail (2 of 3 probes: down by
    // majority) while its DynamoDB still answers, so the canary can be written there.
    let closed = free_port();
    let refused = free_port();
    let cfg = emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\ninstance_id = \"mon-fence\"\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\nfence_for = \"500ms\"\nmax_fence = \"4s\"\n\
         [[probes]]\nname = \"p-api\"\nkind = \"http\"\nregion = \"primary\"\nurl = \"http://127.0.0.1:{closed}/\"\n\
         [[probes]]\nname = \"p-photos\"\nkind = \"http\"\nregion = \"primary\"\nurl = \"http://127.0.0.1:{refused}/\"\n\
         [[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"s-config\"\nkind = \"dynamodb\"\nregion = \"secondary\"\n"
    ));
    let mon = Monitor::start(&cfg);
    let (fenced, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(20), |i| {
            i.state == AppState::Fenced
        })
        .await;
    assert_eq!(fenced.version, 1);
    let t_fenced = tokio::time::Instant::now();
    // A measurement writes its canary in the primary's table.
    wait_for(
        Duration::from_secs(10),
        "replication measured while fenced",
        async || {
            tables
                .canary(Role::Primary, "mon-fence")
                .await
                .then_some(())
                .ok_or_else(|| "no canary".to_owned())
        },
    )
    .await;
    let (done, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(15), |i| {
            i.state == AppState::Failover
        })
        .await;
    let waited = t_fenced.elapsed();
    assert_eq!(done.version, 2);
    assert!(
        waited >= Duration::from_millis(3500),
        "failover {waited:?} after the fence, before max_fence"
    );
    let r = &tables.audits(Role::Secondary, 2..=2).await[0];
    assert_eq!((r.from, r.to), (AppState::Fenced, AppState::Failover));
    // The commit's own copy of v2 was written at once: DynamoDB took its check that
    // the primary's record of v1 is the commit region's (`at` = v1's updatedAt).
    let copied = wait_for(Duration::from_secs(5), "v2's copy logged", async || {
        let events = mon.log_events();
        let of_v2 = |e: &&serde_json::Value| e["version"] == 2;
        let copy = events.iter().filter(of_v2).find_map(|e| {
            let m = e["message"].as_str()?;
            m.starts_with("primary copy").then(|| m.to_owned())
        });
        copy.ok_or_else(|| "no log of v2's primary copy yet".to_owned())
    })
    .await;
    assert_eq!(copied, "primary copy updated");
    let repl = &r.evidence["replication"];
    assert_eq!(repl["canary_arrived"], false, "{}", r.evidence);
    assert!(
        repl["detail"]
            .as_str()
            .unwrap()
            .contains("canary not seen in the secondary"),
        "{repl}"
    );
    assert!(
        r.reason.contains("nothing was confirmed replicated"),
        "{}",
        r.reason
    );
    // The canaries really are in the primary's tables, under this instance's own
    // keys: read by their literal names, not through the code's key function.
    use_emulator_credentials();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(emu.primary.url())
        .load()
        .await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    for (table, attr, key) in [
        ("photos-config", "appId", "test-app#canary#mon-fence"),
        (
            "photos-store",
            "commentId",
            "failover-monitor#canary#test-app#mon-fence",
        ),
    ] {
        let got = ddb
            .get_item()
            .table_name(table)
            .key(attr, aws_sdk_dynamodb::types::AttributeValue::S(key.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let item = got
            .item()
            .unwrap_or_else(|| panic!("no canary {key} in {table}"));
        assert!(
            !item.contains_key("photoId"),
            "the photoId index never shows it"
        );
        let nonce = item.get("nonce").and_then(|v| v.as_s().ok()).unwrap();
        assert!(
            nonce.len() == 32 && nonce.chars().all(|c| c.is_ascii_hexdigit()),
            "{nonce}"
        );
    }
    // ...and no other instance's key: the only canary in the config table is this one.
    let scan = ddb.scan().table_name("photos-config").send().await.unwrap();
    let canaries: Vec<String> = scan
        .items()
        .iter()
        .filter_map(|i| i.get("appId").and_then(|v| v.as_s().ok()).cloned())
        .filter(|k| k.contains("#canary#"))
        .collect();
    assert_eq!(canaries, ["test-app#canary#mon-fence"]);
}

/// Route 53: the record follows the state (set to the primary's value at start, to
/// the secondary's on failover), checked in the emulator's record sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_record_follows_the_state() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    use_emulator_credentials();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(emu.secondary.url())
        .load()
        .await;
    let r53 = aws_sdk_route53::Client::new(&sdk);
    let zone = r53
        .create_hosted_zone()
        .name("photos.example.com")
        .caller_reference("fm-test")
        .send()
        .await
        .unwrap();
    let zone_id = zone
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_owned();
    let cfg = emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n{PROBES_ALL_KINDS}\n\
         [route53]\nzone_id = \"{zone_id}\"\nrecord_name = \"api.photos.example.com\"\n\
         primary_value = \"primary.api.example.net\"\nsecondary_value = \"secondary.api.example.net\"\nendpoint_url = \"{}\"\n",
        emu.secondary.url()
    ));
    let _mon = Monitor::start(&cfg);
    // Waits until the record in the emulator's zone has the value `want`.
    let record_is = async |want: &str, limit: Duration| {
        wait_for(limit, format!("the record at {want}"), async || {
            let out = r53
                .list_resource_record_sets()
                .hosted_zone_id(&zone_id)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let value = out
                .resource_record_sets()
                .iter()
                .find(|r| r.name().trim_end_matches('.') == "api.photos.example.com")
                .and_then(|r| r.resource_records().first())
                .map(|v| v.value().to_owned());
            match value {
                Some(v) if v == want => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    };
    record_is("primary.api.example.net", Duration::from_secs(20)).await;
    emu.primary.kill();
    tables
        .wait_item(Role::Secondary, Duration::from_secs(10), |i| {
            i.state == AppState::Failover
        })
        .await;
    record_is("secondary.api.example.net", Duration::from_secs(10)).await;
    // The version guard beside it says which version set it.
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await
        .unwrap();
    let guard = out
        .resource_record_sets()
        .iter()
        .find(|r| r.name().trim_end_matches('.') == "_failover-monitor.api.photos.example.com")
        .and_then(|r| r.resource_records().first())
        .map(|v| v.value().to_owned());
    assert_eq!(guard.as_deref(), Some("\"v=1\""));
}

/// Issue 17, item 5h: a record the monitor finds as a multi-value A record is
/// replaced as read (every value in the DELETE) and converges to one value; an
/// alias record is never changed and the status says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_value_records_converge_and_alias_records_are_left_alone() {
    use aws_sdk_route53::types::{
        AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let emu = Emulator::start();
    use_emulator_credentials();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(emu.secondary.url())
        .load()
        .await;
    let r53 = aws_sdk_route53::Client::new(&sdk);
    let zone_id = r53
        .create_hosted_zone()
        .name("photos.example.com")
        .caller_reference("fm-test-kinds")
        .send()
        .await
        .unwrap()
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_owned();
    let create = |set: ResourceRecordSet| {
        ChangeBatch::builder()
            .changes(
                Change::builder()
                    .action(ChangeAction::Create)
                    .resource_record_set(set)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let two = ResourceRecordSet::builder()
        .name("api.photos.example.com")
        .r#type(RrType::A)
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value("192.0.2.7")
                .build()
                .unwrap(),
        )
        .resource_records(
            ResourceRecord::builder()
                .value("192.0.2.8")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let alias = ResourceRecordSet::builder()
        .name("cdn.photos.example.com")
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder()
                .hosted_zone_id("Z2FDTNDATAQYW2")
                .dns_name("d111111abcdef8.cloudfront.net")
                .evaluate_target_health(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    for set in [two, alias] {
        r53.change_resource_record_sets()
            .hosted_zone_id(&zone_id)
            .change_batch(create(set))
            .send()
            .await
            .unwrap();
    }
    let monitor = |name: &str| {
        Monitor::start(&emu.config(&format!(
            "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\n\
             [[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
             [route53]\nzone_id = \"{zone_id}\"\nrecord_name = \"{name}\"\nrecord_type = \"A\"\n\
             primary_value = \"192.0.2.1\"\nsecondary_value = \"198.51.100.1\"\nendpoint_url = \"{}\"\n",
            emu.secondary.url()
        )))
    };
    let values = async |name: &str| -> Vec<String> {
        let out = r53
            .list_resource_record_sets()
            .hosted_zone_id(&zone_id)
            .send()
            .await
            .unwrap();
        out.resource_record_sets()
            .iter()
            .filter(|r| r.name().trim_end_matches('.') == name)
            .flat_map(|r| r.resource_records().iter().map(|v| v.value().to_owned()))
            .collect()
    };
    let mon = monitor("api.photos.example.com");
    wait_for(
        Duration::from_secs(20),
        "one value",
        async || match values("api.photos.example.com").await.as_slice() {
            [one] if one == "192.0.2.1" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        values("api.photos.example.com").await,
        ["192.0.2.1"],
        "it stays"
    );
    let s = mon.status().await;
    assert!(s["dns_error"].is_null(), "{s}");
    drop(mon);
    let mon = monitor("cdn.photos.example.com");
    let s = mon
        .wait_status(Duration::from_secs(20), "the alias reported", |s| {
            s["dns_error"].as_str().is_some_and(|e| e.contains("alias"))
        })
        .await;
    assert!(
        s["dns_error"].as_str().unwrap().contains("left alone"),
        "{s}"
    );
    assert!(
        values("cdn.photos.example.com").await.is_empty(),
        "the alias is untouched"
    );
}

/// A trace recorded by the daemon on the emulator, replayed by `backtest` with the
/// same config (the failover shows) and with a much higher fall (it does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_trace_replays_through_backtest() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let dir = TempDir::new("trace");
    let trace = dir.0.join("observations.jsonl");
    let body = |fall: u32| {
        format!(
            "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\nrecord_observations = \"{}\"\n{}",
            trace.display(),
            PROBES_ALL_KINDS.replace("[[probes]]", &format!("[[probes]]\nfall = {fall}"))
        )
    };
    let mut mon = Monitor::start(&emu.config(&body(3)));
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    emu.primary.kill();
    tables
        .wait_item(Role::Secondary, Duration::from_secs(10), |i| {
            i.state == AppState::Failover
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mon.terminate().await, Some(0));

    let lines = std::fs::read_to_string(&trace).unwrap().lines().count();
    assert!(lines > 20, "only {lines} records");
    for (fall, expect) in [(3, "1 transition(s)"), (100, "0 transition(s)")] {
        let cfg = dir.0.join(format!("fall{fall}.toml"));
        std::fs::write(&cfg, emu.config(&body(fall))).unwrap();
        let out = cli(&cfg)
            .args(["backtest", "--trace"])
            .arg(&trace)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(expect), "fall {fall}: {text}");
        if fall == 3 {
            assert!(text.contains("active -> failover"), "{text}");
        }
    }
}
