//! Recovery reports end to end: a real monitor process on the replicating
//! two-region emulator fails over a killed primary, and the report of that
//! transition, read back with `failover-monitor report` and `GET /v1/reports/{version}`,
//! agrees with the audit record in the commit region, with the moment the
//! secondary's state API (a loopback server the test controls) started answering
//! `failover`, and with the replication lag the emulator was told to apply.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use failover_core::model::{AppState, Role};
use failover_core::overrides::parse;
use failover_core::report::{EventKind, Report};
use support::TempDir;
use support::config::{FAST_MONITOR, PROBES_ALL_KINDS};
use support::emulator::Emulator;
use support::monitor::{Monitor, cli};
use support::{free_port, wait_for};

/// A state API on loopback answering `{"state": S, "version": V}` with what the test
/// sets, as the application's config API answers a client.
fn state_api(initial: (&str, u64)) -> (u16, Arc<Mutex<(String, u64)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = Arc::new(Mutex::new((initial.0.to_owned(), initial.1)));
    let shared = answer.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = {
                let a = shared.lock().unwrap();
                format!("{{\"state\":\"{}\",\"version\":{}}}", a.0, a.1)
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, answer)
}

fn at(r: &Report, kind: EventKind, region: Option<Role>) -> SystemTime {
    r.first(kind, region)
        .and_then(|e| parse(&e.at))
        .unwrap_or_else(|| panic!("no {kind:?} ({region:?}) in {r:#?}"))
}

/// A killed primary is failed over; the report of version 1 is complete with the
/// timeline, the recovery time and the canary's replication lag, the same through
/// the CLI and the admin API, and as a page with its SVG timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_report_agrees_with_the_audit_record_the_state_api_and_the_lag() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let (port, secondary_state) = state_api(("active", 0));
    // The primary's state API dies with the primary: nothing listens there.
    let dead = free_port();
    let text = emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\ninstance_id = \"mon-a\"\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n\
         [client_path]\nprimary_state_url = \"http://127.0.0.1:{dead}/prod/state/{{app_id}}\"\n\
         secondary_state_url = \"http://127.0.0.1:{port}/prod/state/{{app_id}}\"\n\
         observe_for = \"3s\"\npoll_every = \"100ms\"\ncanary_every = \"1s\"\n{PROBES_ALL_KINDS}"
    ));
    let dir = TempDir::new("reports");
    let config = dir.0.join("monitor.toml");
    std::fs::write(&config, &text).unwrap();
    let mon = Monitor::start(&text);
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(30))
        .await;

    // Replication 2 s behind while canaries are written every second: the secondary
    // holds a canary at least a second older than the primary's newest.
    emu.set_replication_lag(Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    emu.primary.kill();
    let (item, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(15), |i| {
            i.state == AppState::Failover
        })
        .await;
    assert_eq!(item.version, 1);
    // The secondary's state API follows a little later, as a client would see it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flipped = SystemTime::now();
    *secondary_state.lock().unwrap() = ("failover".into(), 1);

    let report: Report = wait_for(
        Duration::from_secs(20),
        "a complete report of version 1",
        async || {
            let out = cli(&config)
                .args(["report", "1", "--json"])
                .output()
                .map_err(|e| e.to_string())?;
            let r: Report = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr)))?;
            r.complete.then_some(r).ok_or("a draft".into())
        },
    )
    .await;
    let record = tables.audits(Role::Secondary, 1..=1).await.pop().unwrap();
    assert_eq!(
        (report.version, report.from, report.to, report.by.as_str()),
        (1, AppState::Active, AppState::Failover, "mon-a")
    );
    assert_eq!(report.reason, record.reason);

    let onset = at(&report, EventKind::FirstFailedProbe, Some(Role::Primary));
    let quorum = at(&report, EventKind::QuorumReached, None);
    let decision = at(&report, EventKind::Decision, None);
    let committed = at(&report, EventKind::Committed, Some(Role::Secondary));
    assert!(
        onset <= quorum && quorum <= decision && decision <= committed,
        "{report:#?}"
    );
    let prepared = parse(&record.at).unwrap();
    assert!(
        prepared <= committed
            && committed.duration_since(prepared).unwrap() < Duration::from_secs(5),
        "record at {}, {report:#?}",
        record.at
    );
    // The secondary's state API: not before it answered failover, soon after.
    let answered = at(&report, EventKind::StateApiAnswered, Some(Role::Secondary));
    assert!(answered >= flipped, "{report:#?}");
    assert!(
        answered.duration_since(flipped).unwrap() < Duration::from_secs(3),
        "{report:#?}"
    );
    assert!(!report.has(EventKind::StateApiAnswered, Some(Role::Primary)));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("primary state API did not answer failover")),
        "{:?}",
        report.notes
    );
    let rto = report.rto.clone().expect("a recovery time");
    assert_eq!(
        (rto.from, rto.until),
        (EventKind::FirstFailedProbe, EventKind::StateApiAnswered)
    );
    assert_eq!(
        u128::from(rto.ms),
        answered.duration_since(onset).unwrap().as_millis()
    );
    let rpo = report.rpo.clone().expect("an RPO statement");
    let lag = rpo.lag_ms.expect("a measured lag");
    assert!((1000..10_000).contains(&lag), "{rpo:#?}");
    assert!(rpo.what.starts_with("one canary key"), "{}", rpo.what);

    // The admin API answers the same report, and the page draws its timeline.
    let (code, body) = mon.get("/v1/reports/1").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_value::<Report>(body).unwrap(), report);
    let (code, page) = mon.get("/v1/reports/latest?format=html").await;
    assert_eq!(code, 200);
    let page = page.as_str().expect("a page").to_owned();
    assert!(page.contains("<svg") && !page.contains("<script"), "{page}");
}
