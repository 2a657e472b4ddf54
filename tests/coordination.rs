//! Several cooperating instances on the two-region emulator: each reaches the primary
//! through its own proxy (so its view can be cut alone), all share the secondary where
//! the lease, the views and the commit point live.

use std::time::Duration;

use failover_monitor::action::{Outcome, Transition};
use failover_monitor::coord::lease::LeaseRecord;
use failover_monitor::model::Fence;
use failover_monitor::model::{AppState, Role, Trigger};
use serde_json::Value;
use support::admin::{TRANSITIONS, all_probes_up};
use support::config::{FAST_MONITOR, cooperating_config};
use support::emulator::Emulator;
use support::monitor::Monitor;
use support::proxy::Proxy;

const NAMES: [&str; 3] = ["mon-a", "mon-b", "mon-c"];

struct Cluster {
    proxies: Vec<Proxy>,
    monitors: Vec<Monitor>,
}

impl Cluster {
    async fn start(emu: &Emulator, extra: &str) -> Self {
        let mut proxies = Vec::new();
        let mut monitors = Vec::new();
        for name in NAMES {
            let p = Proxy::start(emu.primary.port).await;
            monitors.push(Monitor::start(&cooperating_config(
                emu,
                name,
                &NAMES,
                &p.url(),
                extra,
            )));
            proxies.push(p);
        }
        Self { proxies, monitors }
    }

    async fn status(&self, i: usize) -> Value {
        self.monitors[i].status().await
    }

    /// Waits until one instance leads, every instance sees all three live and every
    /// probe up; returns the leader's index.
    async fn settled(&self) -> usize {
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut leader = None;
            let mut ok = true;
            for i in 0..NAMES.len() {
                let s = self.status(i).await;
                if s["is_leader"] == true {
                    leader = Some(i);
                }
                let live = s["instances"]
                    .as_array()
                    .map_or(0, |v| v.iter().filter(|p| p["live"] == true).count());
                ok &= live == NAMES.len() && all_probes_up(&s);
            }
            if let (Some(l), true) = (leader, ok) {
                return l;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "the cluster never settled"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One instance (the leader itself) cut off from the primary sees it down, but the
/// other two do not: no failover without a quorum. A real outage then fails over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_cut_off_from_the_primary_does_not_fail_over() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let c = Cluster::start(&emu, "").await;
    let leader = c.settled().await;

    c.proxies[leader].cut();
    c.monitors[leader]
        .wait_status(Duration::from_secs(10), "a probe down", |s| {
            s["probes"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["health"] == "down"))
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = c.status(leader).await;
    assert_eq!(s["quorum"]["primary_down"], false, "{s}");
    assert_eq!(s["quorum"]["needed"], 2);
    let mine = s["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["instance"] == NAMES[leader])
        .unwrap();
    // A view carries a vote (down, up or unknown) with the age of its evidence.
    assert_eq!(mine["view"]["vote"], "down", "{s}");
    let i = tables.item(Role::Secondary).await;
    assert_eq!((i.state, i.version), (AppState::Active, 0));

    // the whole region goes: every instance sees it, the leader fails over
    emu.primary.kill();
    let (i, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(15), |i| {
            i.state == AppState::Failover
        })
        .await;
    assert_eq!(i.version, 1);
    let r = &tables.audits(Role::Secondary, 1..=1).await[0];
    assert!(
        r.evidence["quorum"]["down_votes"].as_u64().unwrap() >= 2,
        "{}",
        r.evidence
    );
}

/// The leader is killed as the primary dies: another instance takes the lease and
/// commits the failover; exactly one transition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_another_takes_over_with_exactly_one_transition() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let mut c = Cluster::start(&emu, "").await;
    let leader = c.settled().await;

    emu.primary.kill();
    c.monitors[leader].signal("KILL");
    let (i, took) = tables
        .wait_item(Role::Secondary, Duration::from_secs(20), |i| {
            i.state == AppState::Failover
        })
        .await;
    println!("leader killed with the primary: failover committed after {took:?}");
    assert_eq!(i.version, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records = tables.audits(Role::Secondary, 1..=3).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_ne!(records[0].by, NAMES[leader]);
    assert_eq!(tables.item(Role::Secondary).await.version, 1);
    let _ = c.monitors[leader].wait_exit(Duration::from_secs(1)).await;
}

/// The leader is suspended as the primary dies; another takes over and fails over;
/// the old leader, resumed, knows its lease is gone and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_leader_resumes_without_writing() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let c = Cluster::start(&emu, "").await;
    let leader = c.settled().await;

    c.monitors[leader].signal("STOP");
    emu.primary.kill();
    let (i, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(20), |i| {
            i.state == AppState::Failover
        })
        .await;
    assert_eq!(i.version, 1);
    c.monitors[leader].signal("CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let old = c.monitors[leader].metrics().await;
    assert_eq!(old.sum(TRANSITIONS, &[]), 0.0, "{}", old.text());
    let records = tables.audits(Role::Secondary, 1..=3).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(tables.item(Role::Secondary).await.version, 1);
}

/// A deposed leader's late write carries a stale fencing token and is refused by the
/// commit's condition; the new leader's write goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_fencing_token_is_refused_at_the_commit() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let act = tables.actuator();
    let table = tables.coordination();
    let old = table.acquire("mon-a", None).await.expect("first lease");
    assert_eq!(old, 1);
    assert!(
        table.acquire("mon-b", None).await.is_err(),
        "the lease exists: no blind takeover"
    );
    let prev = LeaseRecord {
        owner: "mon-a".into(),
        token: 1,
        renewals: 0,
    };
    let new = table.acquire("mon-b", Some(&prev)).await.expect("takeover");
    assert_eq!(new, 2);
    assert!(
        table.renew("mon-a", 1).await.is_err(),
        "the old holder cannot renew"
    );

    let t = |owner: &str, token| Transition {
        from: AppState::Active,
        to: AppState::Failover,
        expected_version: 0,
        reason: "test".into(),
        evidence: Value::Null,
        trigger: Trigger::Auto,
        by: owner.into(),
        forced: false,
        fence: Some(Fence {
            owner: owner.into(),
            token,
        }),
    };
    assert_eq!(
        act.transition(&t("mon-a", 1)).await.unwrap(),
        Outcome::Deposed
    );
    assert_eq!(
        tables.item(Role::Secondary).await.version,
        0,
        "nothing written"
    );
    assert!(tables.audits(Role::Secondary, 1..=1).await.is_empty());
    assert!(matches!(
        act.transition(&t("mon-b", 2)).await.unwrap(),
        Outcome::Committed { .. }
    ));
    assert_eq!(tables.item(Role::Secondary).await.version, 1);
}

/// Safety rule: a dead primary and a secondary that fails its probes: no automatic
/// failover (the write would move clients to a broken region).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_secondary_blocks_automatic_failover() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let mon = Monitor::start(&emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n\
         [[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"s-photos\"\nkind = \"s3\"\nregion = \"secondary\"\nbucket = \"no-such-bucket\"\n"
    )));
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;
    emu.primary.kill();
    mon.wait_verdict(
        "blocked (secondary_unhealthy): active -> failover",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(tables.item(Role::Secondary).await.version, 0);
}
