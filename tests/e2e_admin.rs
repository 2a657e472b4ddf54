//! The admin API, signals and systemd integration of a running daemon, against the
//! two-region emulator. The listener's protections (deadlines, the connection cap,
//! its own thread, TLS) are in `e2e_admin/`: `flood.rs` and `tls.rs`, with what they
//! share in `listener.rs`.

#[path = "e2e_admin/flood.rs"]
mod flood;
#[path = "e2e_admin/listener.rs"]
mod listener;
#[path = "e2e_admin/tls.rs"]
mod tls;

use std::time::Duration;

use failover_core::model::{AppState, Role, Trigger};
use failover_daemon::action::{Outcome, Transition};
use serde_json::{Value, json};
use support::admin::all_probes_up;
use support::config::{FAST_MONITOR, PROBES_ALL_KINDS};
use support::emulator::Emulator;
use support::monitor::{Monitor, TOKEN, cli};
use support::{TempDir, free_port, wait_for};

/// The read-only token of the monitors that have one.
const READ_TOKEN: &str = "test-read-token-0123456789";

fn config(emu: &Emulator, extra_monitor: &str) -> String {
    emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\ninstance_id = \"mon-a\"\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n{extra_monitor}\n{PROBES_ALL_KINDS}"
    ))
}

const READY: Duration = Duration::from_secs(20);

/// Waits until every probe is up (the safety rules need a healthy secondary).
async fn wait_all_up(mon: &Monitor) {
    mon.wait_status(READY, "every probe up", all_probes_up)
        .await;
}

/// Every endpoint's success and failure paths (400, 401, 404, 405, 409, 413), and a
/// manual failover visible in both regions, in /v1/history and in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_succeed_and_fail_as_documented() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let mon = Monitor::start(&config(&emu, ""));
    mon.wait_ready(READY).await;
    wait_all_up(&mon).await;

    assert_eq!(mon.get("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(mon.get("/readyz").await, (200, json!({"status": "ready"})));
    let (code, doc) = mon.get("/v1/openapi.json").await;
    assert_eq!(code, 200);
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(failover_monitor::admin::OPENAPI).unwrap()
    );
    let (code, status) = mon.get("/v1/status").await;
    assert_eq!(code, 200);
    assert_eq!(
        (status["state"].as_str(), status["version"].as_u64()),
        (Some("active"), Some(0))
    );
    assert_eq!(status["instance_id"], "mon-a");
    assert_eq!(status["mode"], "auto");
    assert_eq!(status["paused"], false);
    assert_eq!(status["probes"].as_array().unwrap().len(), 6);
    assert!(status["probes"][0]["successes"].as_u64().is_some());

    // history: bad parameters are 400, good ones 200
    for q in [
        "?limit=0",
        "?limit=101",
        "?limit=abc",
        "?limit=-1",
        "?foo=1",
    ] {
        let (code, body) = mon.get(&format!("/v1/history{q}")).await;
        assert_eq!(code, 400, "{q}: {body}");
        assert_eq!(body["error"], "bad_request");
    }
    assert_eq!(
        mon.get("/v1/history?limit=5").await,
        (200, json!({"records": [], "next_before": null}))
    );

    // 401: no token, a wrong one, a non-bearer scheme
    let good = r#"{"reason": "drill", "caller": "alice"}"#;
    for token in [None, Some("wrong-token-0123456789")] {
        let (code, body, headers) = mon.post_with_token("/v1/failover", token, good).await;
        assert_eq!(code, 401, "{body}");
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");
    }
    let r = reqwest::Client::new()
        .post(mon.url("/v1/pause"))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // 400: malformed bodies
    for body in [
        "not json",
        "",
        "{}",
        r#"{"reason": ""}"#,
        r#"{"reason": "   "}"#,
        r#"{"reason": 5}"#,
        r#"{"reason": "x", "force": "yes"}"#,
        r#"{"reason": "x", "extra": 1}"#,
        r#"{"reason": "x", "caller": "bad caller!"}"#,
        "[1, 2]",
    ] {
        let (code, resp, _) = mon.post("/v1/failover", body).await;
        assert_eq!(code, 400, "{body:?}: {resp}");
        assert_eq!(resp["error"], "bad_request", "{body:?}");
    }
    // 413: too large
    let big = format!(r#"{{"reason": "{}"}}"#, "x".repeat(20_000));
    let (code, resp, _) = mon.post("/v1/failover", &big).await;
    assert_eq!(code, 413, "{resp}");
    // 409: already there
    let (code, resp, _) = mon.post("/v1/failback", good).await;
    assert_eq!(code, 409, "{resp}");
    assert!(resp["message"].as_str().unwrap().contains("already active"));
    // 404 / 405
    assert_eq!(mon.get("/v2/nothing").await.0, 404);
    assert_eq!(mon.get("/v1/failover").await.0, 405);

    // nothing of the above wrote anything
    assert_eq!(tables.item(Role::Secondary).await.version, 0);

    // a manual failover: committed in the secondary, replicated to the primary's
    // replica (global tables), audited, counted
    let (code, resp, _) = mon.post("/v1/failover", good).await;
    assert_eq!(code, 200, "{resp}");
    assert_eq!(resp["item"]["state"], "failover");
    assert_eq!(resp["record"]["by"], "admin:alice");
    assert_eq!(resp["primary_updated"], true);
    let i = tables.item(Role::Secondary).await;
    assert_eq!((i.state, i.version), (AppState::Failover, 1));
    assert_eq!(i.updated_by.as_deref(), Some("admin:alice"));
    let (p, _) = tables
        .wait_item(Role::Primary, Duration::from_secs(10), |p| p.version == 1)
        .await;
    assert_eq!(p, i);
    let (code, history) = mon.get("/v1/history").await;
    assert_eq!(code, 200);
    let r = &history["records"][0];
    assert_eq!(
        (r["from"].as_str(), r["to"].as_str(), r["trigger"].as_str()),
        (Some("active"), Some("failover"), Some("manual"))
    );
    assert_eq!(r["reason"], "drill");
    assert_eq!(r["forced"], false);
    let (_, metrics) = mon.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains(
            r#"failover_monitor_transitions_total{from="active",to="failover",trigger="manual"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"failover_monitor_app_state{state="failover"} 1"#));
    // and the same move again is a conflict
    assert_eq!(mon.post("/v1/failover", good).await.0, 409);
}

/// A monitor with both tokens.
fn start_with_read_token(config_text: &str) -> Monitor {
    Monitor::start_with(
        config_text,
        &[
            ("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN),
            ("FAILOVER_MONITOR_ADMIN_READ_TOKEN", READ_TOKEN),
        ],
    )
}

/// The reads need a token: the read-only one opens them and nothing else (403 on a
/// move, which writes nothing); the open routes stay open; with no token at all the
/// reads are refused with what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_a_token_and_the_read_token_only_reads() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let mon = start_with_read_token(&config(&emu, ""));
    mon.wait_ready(READY).await;
    wait_all_up(&mon).await;

    for path in ["/v1/status", "/v1/history"] {
        for token in [None, Some("wrong-token-0123456789")] {
            let (code, body) = mon.get_with_token(path, token).await;
            assert_eq!(code, 401, "{path} {token:?}: {body}");
            assert_eq!(body["error"], "unauthorized");
        }
        let (code, body) = mon.get_with_token(path, Some(READ_TOKEN)).await;
        assert_eq!(code, 200, "{path}: {body}");
        assert_eq!(mon.get_with_token(path, Some(TOKEN)).await.0, 200, "{path}");
    }
    let (_, status) = mon.get_with_token("/v1/status", Some(READ_TOKEN)).await;
    assert_eq!(status["state"], "active");
    for path in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
        assert_eq!(mon.get_with_token(path, None).await.0, 200, "{path}");
    }

    // the read token on a mutating call: 403, and nothing is written
    let good = r#"{"reason": "drill", "caller": "alice"}"#;
    for path in ["/v1/failover", "/v1/fence", "/v1/pause"] {
        let (code, body, _) = mon.post_with_token(path, Some(READ_TOKEN), good).await;
        assert_eq!(code, 403, "{path}: {body}");
        assert_eq!(body["error"], "forbidden");
    }
    assert_eq!(tables.item(Role::Secondary).await.version, 0);
    let (_, status) = mon.get_with_token("/v1/status", Some(READ_TOKEN)).await;
    assert_eq!(status["paused"], false);

    // `admin status` with only the read token in the environment works; `admin
    // pause` with it is refused and says what to set
    let admin = |args: &[&str]| {
        cli(&mon.config)
            .arg("admin")
            .args(["--url", &mon.url("")])
            .args(args)
            .env_remove("FAILOVER_MONITOR_ADMIN_TOKEN")
            .env("FAILOVER_MONITOR_ADMIN_READ_TOKEN", READ_TOKEN)
            .output()
            .unwrap()
    };
    let out = admin(&["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("state     active (version 0)"));
    let out = admin(&["pause"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("set FAILOVER_MONITOR_ADMIN_TOKEN"), "{err}");

    // no token configured at all: the reads say which key and variable to set
    let bare = Monitor::start_without_tokens(&config(&emu, ""));
    bare.wait_ready(READY).await;
    for path in ["/v1/status", "/v1/history"] {
        let (code, body) = bare.get_with_token(path, Some(TOKEN)).await;
        assert_eq!(code, 401, "{path}: {body}");
        let msg = body["message"].as_str().unwrap();
        for name in [
            "admin.read_token_file",
            "FAILOVER_MONITOR_ADMIN_READ_TOKEN",
            "admin.token_file",
            "FAILOVER_MONITOR_ADMIN_TOKEN",
        ] {
            assert!(msg.contains(name), "{path}: {msg}");
        }
    }
    let out = cli(&bare.config)
        .args(["admin", "--url", &bare.url(""), "status"])
        .env_remove("FAILOVER_MONITOR_ADMIN_TOKEN")
        .env_remove("FAILOVER_MONITOR_ADMIN_READ_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("FAILOVER_MONITOR_ADMIN_READ_TOKEN"),
        "{err}"
    );
}

/// Thirty committed moves, read back in pages: `limit` and `before` through the API,
/// `admin history --before` and `state history --before`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_paged_with_before() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let act = tables.actuator();
    for v in 0..30u64 {
        let (from, to) = if v % 2 == 0 {
            (AppState::Active, AppState::Failover)
        } else {
            (AppState::Failover, AppState::Active)
        };
        let t = Transition {
            from,
            to,
            expected_version: v,
            from_at: None,
            reason: format!("move {}", v + 1),
            evidence: json!({"source": "test"}),
            trigger: Trigger::Manual,
            by: "test".into(),
            forced: false,
            fence: None,
            lasts: None,
        };
        let out = act.transition(&t).await.unwrap();
        assert!(matches!(out, Outcome::Committed { .. }), "{out:?}");
    }
    let mon = start_with_read_token(&config(&emu, "mode = \"manual\""));
    mon.wait_ready(READY).await;
    let versions = |body: &Value| -> Vec<u64> {
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["version"].as_u64().unwrap())
            .collect()
    };

    let (code, first) = mon
        .get_with_token("/v1/history?limit=20", Some(READ_TOKEN))
        .await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(versions(&first), (11..=30).rev().collect::<Vec<_>>());
    assert_eq!(first["next_before"], 11);
    assert_eq!(first["records"][0]["reason"], "move 30");
    let (_, second) = mon
        .get_with_token("/v1/history?limit=20&before=11", Some(READ_TOKEN))
        .await;
    assert_eq!(versions(&second), (1..=10).rev().collect::<Vec<_>>());
    assert!(second["next_before"].is_null(), "{second}");
    // the default page is 20; 50 is the most; `before` in the middle
    let (_, default) = mon.get_with_token("/v1/history", Some(READ_TOKEN)).await;
    assert_eq!(versions(&default).len(), 20);
    let (_, all) = mon
        .get_with_token("/v1/history?limit=50", Some(READ_TOKEN))
        .await;
    assert_eq!(versions(&all), (1..=30).rev().collect::<Vec<_>>());
    assert!(all["next_before"].is_null());
    let (_, mid) = mon
        .get_with_token("/v1/history?limit=3&before=17", Some(READ_TOKEN))
        .await;
    assert_eq!(
        (versions(&mid), &mid["next_before"]),
        (vec![16, 15, 14], &json!(14))
    );
    for bad in ["?limit=51", "?before=0", "?before=x", "?after=3"] {
        let (code, body) = mon
            .get_with_token(&format!("/v1/history{bad}"), Some(READ_TOKEN))
            .await;
        assert_eq!(code, 400, "{bad}: {body}");
    }

    // the CLI pages the same way
    let out = cli(&mon.config)
        .args(["admin", "--url", &mon.url(""), "history", "--limit", "20"])
        .env_remove("FAILOVER_MONITOR_ADMIN_TOKEN")
        .env("FAILOVER_MONITOR_ADMIN_READ_TOKEN", READ_TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("v30 "), "{text}");
    assert!(
        text.trim_end().ends_with("older records: --before 11"),
        "{text}"
    );
    let out = cli(&mon.config)
        .args([
            "admin",
            "--url",
            &mon.url(""),
            "--json",
            "history",
            "--before",
            "11",
        ])
        .env("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(versions(&body), (1..=10).rev().collect::<Vec<_>>());
    let out = cli(&mon.config)
        .args([
            "state", "history", "--limit", "5", "--before", "11", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<u64> = records
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![10, 9, 8, 7, 6]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("older records: --before 6"));
    let out = cli(&mon.config)
        .args(["state", "history", "--limit", "51"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
}

/// A probe whose URL carries credentials and a signature fails: `/v1/status`, the
/// audit evidence and the log show the host and path, never the secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_errors_are_redacted() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let closed = free_port();
    let cfg = emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\nmode = \"manual\"\nstate_refresh = \"500ms\"\n\
         [[probes]]\nname = \"p-leaky\"\nkind = \"http\"\nregion = \"primary\"\n\
         url = \"http://user:hunter2@127.0.0.1:{closed}/health?X-Amz-Signature=hunter2&X-Amz-Credential=hunter2\"\n\
         [[probes]]\nname = \"s-config\"\nkind = \"dynamodb\"\nregion = \"secondary\"\ncheck = \"describe_table\"\n"
    ));
    let mon = start_with_read_token(&cfg);
    mon.wait_ready(READY).await;
    mon.wait_status(Duration::from_secs(15), "the leaky probe down", |s| {
        s["probes"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["name"] == "p-leaky" && p["health"] == "down")
        })
    })
    .await;

    let (code, status) = mon.get_with_token("/v1/status", Some(READ_TOKEN)).await;
    assert_eq!(code, 200);
    let leaky = status["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "p-leaky")
        .unwrap();
    let err = leaky["last_error"].as_str().expect("the probe failed");
    assert!(
        err.contains(&format!("http://127.0.0.1:{closed}/health?<redacted>")),
        "{err}"
    );
    assert!(!status.to_string().contains("hunter2"), "{status}");

    // a move now records the probes in its evidence: redacted too
    let (code, body, _) = mon
        .post("/v1/failover", r#"{"reason": "drill", "force": true}"#)
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(!body.to_string().contains("hunter2"), "{body}");
    let record = &tables.audits(Role::Secondary, 1..=1).await[0];
    assert!(
        !record.evidence.to_string().contains("hunter2"),
        "{record:?}"
    );
    let (_, history) = mon.get_with_token("/v1/history", Some(READ_TOKEN)).await;
    assert!(!history.to_string().contains("hunter2"), "{history}");
    // The log itself is the contract here: nothing secret reaches it.
    let log = mon.log_tail(usize::MAX);
    assert!(
        log.contains("<redacted>"),
        "the probe failure is logged:\n{log}"
    );
    assert!(!log.contains("hunter2"), "{log}");
}

/// Pause stops automatic moves (probing goes on); resume lets the pending one through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_blocks_automatic_moves_until_resume() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let mon = Monitor::start(&config(&emu, ""));
    mon.wait_ready(READY).await;

    let (code, body, _) = mon.post("/v1/pause", r#"{"reason": "maintenance"}"#).await;
    assert_eq!(
        (code, body),
        (200, json!({"paused": true, "was_paused": false}))
    );
    assert_eq!(mon.get("/v1/status").await.1["paused"], true);
    emu.primary.kill();
    mon.wait_verdict(
        "blocked (paused): active -> failover",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(tables.item(Role::Secondary).await.state, AppState::Active);
    let (_, metrics) = mon.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("failover_monitor_paused 1")
    );
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("failover_monitor_probe_up{probe=\"p-config\",region=\"primary\"} 0")
    );

    // an empty body is fine for resume
    let (code, body, _) = mon.post("/v1/resume", "").await;
    assert_eq!(
        (code, body),
        (200, json!({"paused": false, "was_paused": true}))
    );
    let (i, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(5), |i| {
            i.state == AppState::Failover
        })
        .await;
    assert_eq!(i.updated_by.as_deref(), Some("mon-a"));
}

/// Safety rule: a manual failover into a secondary that fails its probes is refused
/// (409); `force` overrides it and is audited as forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_secondary_refuses_failover_unless_forced() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    // The secondary's second probe gets its connection refused (a bucket that does
    // not exist would be about the monitor: inconclusive, not down).
    let refused = free_port();
    let cfg = emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\n\
         [[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"s-photos\"\nkind = \"http\"\nregion = \"secondary\"\nurl = \"http://127.0.0.1:{refused}/\"\n"
    ));
    let mon = Monitor::start(&cfg);
    mon.wait_ready(READY).await;
    mon.wait_status(Duration::from_secs(10), "s-photos down", |s| {
        s["probes"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["name"] == "s-photos" && p["health"] == "down")
        })
    })
    .await;

    let (code, body, _) = mon.post("/v1/failover", r#"{"reason": "drill"}"#).await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("safety rule: the secondary"),
        "{body}"
    );
    assert_eq!(tables.item(Role::Secondary).await.version, 0);

    // `state set` goes through the daemon's safety rules too
    let state_set = |args: &[&str]| {
        cli(&mon.config)
            .args(["state", "set"])
            .args(args)
            .args(["--url", &mon.url(""), "--caller", "ops-fay"])
            .env("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let out = state_set(&["failover"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the daemon answered 409: safety rule: the secondary"),
        "{err}"
    );
    assert_eq!(tables.item(Role::Secondary).await.version, 0);

    let (code, body, _) = mon
        .post("/v1/failover", r#"{"reason": "drill", "force": true}"#)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["record"]["forced"], true);
    assert!(tables.audits(Role::Secondary, 1..=1).await[0].forced);

    // `--force` reaches the daemon as `force`, audited as forced
    let out = state_set(&["fenced", "--force", "--reason", "forced by hand"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("failover -> fenced committed (version 2)")
    );
    let r = &tables.audits(Role::Secondary, 2..=2).await[0];
    assert_eq!(
        (r.forced, r.by.as_str(), r.reason.as_str()),
        (true, "admin:ops-fay", "forced by hand")
    );
}

/// `admin` needs no config: from a directory without monitor.toml, `--url` and the
/// tokens of the environment or a flag reach the daemon; the caller reaches the audit
/// record; a refused token says exactly what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_need_no_config_and_name_the_caller() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let mon = Monitor::start(&config(&emu, ""));
    mon.wait_ready(READY).await;
    wait_all_up(&mon).await;
    let dir = TempDir::new("no-config");
    let url = mon.url("");
    // `--config monitor.toml` is the default, relative to the empty directory.
    let admin = |args: &[&str], token: Option<&str>| {
        let mut cmd = cli(std::path::Path::new("monitor.toml"));
        cmd.current_dir(&dir.0)
            .args(["admin", "--url", &url])
            .args(args)
            .env_remove("FAILOVER_MONITOR_ADMIN_TOKEN")
            .env_remove("FAILOVER_MONITOR_ADMIN_READ_TOKEN")
            .env_remove("FAILOVER_MONITOR_CALLER");
        if let Some(t) = token {
            cmd.env("FAILOVER_MONITOR_ADMIN_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();

    let out = admin(&["health"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "ok");
    assert!(
        !text(&out.stderr).contains("config was not read"),
        "{}",
        text(&out.stderr)
    );
    let out = admin(&["status"], Some(TOKEN));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("state     active (version 0)"));
    assert!(!text(&out.stderr).contains("config was not read"));

    // no token anywhere: the note says once why the config did not give one, and the
    // refusal says what to set
    let out = admin(&["status"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.matches("the config was not read").count(), 1, "{err}");
    assert!(err.contains("monitor.toml does not exist"), "{err}");
    assert!(
        err.contains("the daemon answered 401")
            && err.contains("no token was sent")
            && err.contains("set FAILOVER_MONITOR_ADMIN_READ_TOKEN"),
        "{err}"
    );
    let out = admin(&["pause"], Some("wrong-token-0123456789"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "the daemon does not have the admin token sent (from FAILOVER_MONITOR_ADMIN_TOKEN)"
        ) && err.contains("set FAILOVER_MONITOR_ADMIN_TOKEN"),
        "{err}"
    );

    // the caller: --caller, else FAILOVER_MONITOR_CALLER; into `by` and `updatedBy`
    let out = admin(
        &["--caller", "ops-dan", "fence", "--reason", "caller test"],
        Some(TOKEN),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = &tables.audits(Role::Secondary, 1..=1).await[0];
    assert_eq!((r.by.as_str(), r.to), ("admin:ops-dan", AppState::Fenced));
    let i = tables.item(Role::Secondary).await;
    assert_eq!(i.updated_by.as_deref(), Some("admin:ops-dan"));
    let token_file = dir.0.join("admin-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let out = cli(std::path::Path::new("monitor.toml"))
        .current_dir(&dir.0)
        .args(["admin", "failback", "--reason", "back", "--url", &url])
        .arg("--token-file")
        .arg(&token_file)
        .env_remove("FAILOVER_MONITOR_ADMIN_TOKEN")
        .env("FAILOVER_MONITOR_CALLER", "ops-eve")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("config was not read"));
    let r = &tables.audits(Role::Secondary, 2..=2).await[0];
    assert_eq!((r.by.as_str(), r.to), ("admin:ops-eve", AppState::Active));
    let out = admin(&["--caller", "not valid", "pause"], Some(TOKEN));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// The operator CLI against a running daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_drives_the_daemon() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let mon = Monitor::start(&config(&emu, ""));
    mon.wait_ready(READY).await;
    wait_all_up(&mon).await;
    let admin = |args: &[&str]| {
        cli(&mon.config)
            .arg("admin")
            .args(["--url", &mon.url("")])
            .args(args)
            .env("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let out = admin(&["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("state     active (version 0)"), "{text}");
    assert!(text.contains("p-photos"), "{text}");

    let out = admin(&["failover", "--reason", "cli drill"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("active -> failover committed (version 1)")
    );
    let out = admin(&["failover", "--reason", "again"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"));

    let out = admin(&["--json", "history"]);
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["records"][0]["reason"], "cli drill");
    let out = cli(&mon.config)
        .args(["admin", "--url", &mon.url(""), "pause"])
        .env_remove("FAILOVER_MONITOR_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "no token: refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    assert_eq!(tables.item(Role::Secondary).await.version, 1);
}

/// SIGHUP reloads a good config (new probe visible) and keeps the old one when the new
/// one is bad; SIGTERM exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_good_configs_and_keeps_the_old_one_on_bad() {
    let emu = Emulator::start();
    let mut mon = Monitor::start(&config(&emu, ""));
    mon.wait_ready(READY).await;
    let reloaded = |ok: f64| mon.wait_metric(RELOAD_OK, &[], ok, Duration::from_secs(10));

    let extra = "\n[[probes]]\nname = \"s-store\"\nkind = \"dynamodb\"\nregion = \"secondary\"\ntable = \"photos-store\"\ncheck = \"describe_table\"\n";
    std::fs::write(
        &mon.config,
        format!("{}{extra}", config(&emu, "mode = \"manual\"")),
    )
    .unwrap();
    mon.signal("HUP");
    let status = mon
        .wait_status(Duration::from_secs(10), "the new config running", |s| {
            s["mode"] == "manual"
        })
        .await;
    let names: Vec<&str> = status["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"s-store"), "{names:?}");
    reloaded(1.0).await;

    std::fs::write(&mon.config, config(&emu, "mode = \"sometimes\"")).unwrap();
    mon.signal("HUP");
    reloaded(0.0).await;
    // Log contract: why a reload failed reaches the operator only through the log, and
    // the reason names the key (as every config error does).
    refusal_logged(&mon, "monitor.mode: unknown variant `sometimes`").await;
    let (code, status) = mon.get("/v1/status").await;
    assert_eq!((code, status["mode"].as_str()), (200, Some("manual")));

    // Identity keys cannot change on reload: the whole new config is refused (its
    // mode too), after a good reload that made the metric 1 again.
    std::fs::write(&mon.config, config(&emu, "")).unwrap();
    mon.signal("HUP");
    reloaded(1.0).await;
    std::fs::write(
        &mon.config,
        config(&emu, "mode = \"manual\"").replace("id = \"test-app\"", "id = \"other-app\""),
    )
    .unwrap();
    mon.signal("HUP");
    reloaded(0.0).await;
    refusal_logged(&mon, "cannot change on reload").await;
    assert_eq!(mon.status().await["mode"], "auto");

    mon.signal("TERM");
    assert_eq!(mon.wait_exit(Duration::from_secs(10)).await, Some(0));
    // Log contract: `--log-format json` writes one JSON object per line (what log
    // shippers parse), and a clean stop ends with the event saying so, once.
    let events = mon.log_events();
    let stopped = events
        .iter()
        .filter(|e| e["message"] == "failover-monitor stopped")
        .count();
    assert_eq!(stopped, 1, "{events:#?}");
}

const RELOAD_OK: &str = "failover_monitor_config_last_reload_successful";

/// Waits until exactly one log event carries `reason` (the error of a refused reload).
async fn refusal_logged(mon: &Monitor, reason: &str) {
    let count = || {
        mon.log_events()
            .iter()
            .filter(|e| e["error"].as_str().is_some_and(|t| t.contains(reason)))
            .count()
    };
    let n = wait_for(
        Duration::from_secs(5),
        format!("{reason:?} logged"),
        async || match count() {
            0 => Err(mon.log_tail(5)),
            n => Ok(n),
        },
    )
    .await;
    assert_eq!(n, 1, "{reason:?} logged {n} times");
}

/// Type=notify: READY=1 once serving, WATCHDOG=1 pings at half of WATCHDOG_USEC,
/// STOPPING=1 on the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notifications_are_sent() {
    let emu = Emulator::start();
    let dir = TempDir::new("notify");
    let sock_path = dir.0.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut mon = Monitor::start_with(
        &config(&emu, ""),
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while seen
        .iter()
        .filter(|m: &&String| m.as_str() == "WATCHDOG=1")
        .count()
        < 3
    {
        let n = sock.recv(&mut buf).expect("a notification within 15 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(seen[0], "READY=1", "{seen:?}");
    mon.signal("TERM");
    loop {
        let n = sock.recv(&mut buf).expect("STOPPING=1 within 15 s");
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
    assert_eq!(mon.wait_exit(Duration::from_secs(10)).await, Some(0));
}

/// The admin server refuses a non-loopback address without a token (exit 2), and a
/// bad token configuration is a config error too.
#[test]
fn non_loopback_admin_without_token_is_refused() {
    let dir = TempDir::new("cfg");
    let path = dir.0.join("monitor.toml");
    std::fs::write(
        &path,
        "[app]\nid = \"x\"\n[regions.primary]\nname = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:9\"\n\
         [regions.secondary]\nname = \"ap-northeast-1\"\nendpoint_url = \"http://127.0.0.1:9\"\n\
         [[probes]]\nname = \"c\"\nkind = \"dynamodb\"\nregion = \"primary\"\n",
    )
    .unwrap();
    let out = cli(&path)
        .arg("run")
        .env(
            "FAILOVER_MONITOR__ADMIN__LISTEN",
            format!("0.0.0.0:{}", free_port()),
        )
        .env_remove("FAILOVER_MONITOR_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("admin.listen = \"0.0.0.0:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("a non-loopback address needs an admin token")
    );

    let out = cli(&path)
        .arg("run")
        .env("FAILOVER_MONITOR_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FAILOVER_MONITOR_ADMIN_TOKEN = [redacted]: must be at least 16 characters"),
        "{err}"
    );
    assert!(
        !err.contains("short"),
        "the token must never be printed: {err}"
    );
}
