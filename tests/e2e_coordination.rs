//! Several cooperating instances on the two-region emulator: each reaches the primary
//! through its own proxy (so its view can be cut alone), all share the secondary where
//! the lease, the views and the commit point live.

use std::time::Duration;

use failover_core::lease::LeaseRecord;
use failover_core::model::Fence;
use failover_core::model::{AppState, Role, Trigger};
use failover_core::policy::Vote;
use failover_daemon::action::{Outcome, Transition};
use failover_daemon::coord::{CoordStore, PeerView};
use serde_json::Value;
use support::admin::{TRANSITIONS, all_probes_up};
use support::config::{FAST_MONITOR, cooperating_config};
use support::ecs::TaskMetadata;
use support::emulator::Emulator;
use support::free_port;
use support::monitor::Monitor;
use support::proxy::Proxy;

const NAMES: [&str; 3] = ["mon-a", "mon-b", "mon-c"];

/// The gauges a cooperating instance exports about the quorum and its own id.
const QUORUM_REACHABLE: &str = "failover_monitor_quorum_reachable";
const DUPLICATE: &str = "failover_monitor_duplicate_instance";

struct Cluster {
    proxies: Vec<Proxy>,
    monitors: Vec<Monitor>,
}

impl Cluster {
    async fn start(emu: &Emulator, extra: &str) -> Self {
        Self::start_with(emu, extra, |_| Vec::new()).await
    }

    /// Same, with the environment `env(instance index)` for each process.
    async fn start_with(
        emu: &Emulator,
        extra: &str,
        env: impl Fn(usize) -> Vec<(&'static str, String)>,
    ) -> Self {
        let mut proxies = Vec::new();
        let mut monitors = Vec::new();
        for (i, name) in NAMES.into_iter().enumerate() {
            let p = Proxy::start(emu.primary.port).await;
            let vars = env(i);
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            monitors.push(Monitor::start_with(
                &cooperating_config(emu, name, &NAMES, &p.url(), extra),
                &vars,
            ));
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
        from_at: None,
        reason: "test".into(),
        evidence: Value::Null,
        trigger: Trigger::Auto,
        by: owner.into(),
        forced: false,
        fence: Some(Fence {
            owner: owner.into(),
            token,
        }),
        lasts: None,
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
    let refused = free_port();
    let mon = Monitor::start(&emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n\
         [[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"s-photos\"\nkind = \"http\"\nregion = \"secondary\"\nurl = \"http://127.0.0.1:{refused}/\"\n"
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

/// The lease as it is in the secondary's table.
async fn lease(store: &dyn CoordStore) -> LeaseRecord {
    let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    store
        .read(&names)
        .await
        .expect("the coordination items are readable")
        .0
        .expect("a lease")
}

/// The instance `name` in a status document's `instances`.
fn instance<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["instances"]
        .as_array()
        .and_then(|v| v.iter().find(|p| p["instance"] == name))
        .unwrap_or_else(|| panic!("{name} is not in {s}"))
}

/// Defect 1, with real processes: every instance dies, the dead peers' last views
/// say "primary down" (written as the coordination store writes them, the way
/// peers that saw the primary down would have left them), and the leader restarts
/// beside a healthy primary. Seen once and never changing, those views are not
/// live and their votes never count: the restarted leader waits out its previous
/// incarnation's lease, leads, reports the quorum unreachable, and does not fail
/// over. (Counted as live, as they once were, two old down votes out of three
/// would have failed the region over.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_ignores_dead_peers_old_down_views() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let store = tables.coordination();
    let mut c = Cluster::start(&emu, "").await;
    let leader = c.settled().await;
    let before = lease(store.as_ref()).await;
    assert!(
        before.owner.starts_with(&format!("{}/", NAMES[leader])),
        "the lease owner is <instance>/<process>: {before:?}"
    );

    for m in &mut c.monitors {
        m.signal("KILL");
        let _ = m.wait_exit(Duration::from_secs(5)).await;
    }
    let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    let (_, views) = store.read(&names).await.expect("the views are readable");
    for (peer, view) in views.into_iter().filter(|(i, _)| i != NAMES[leader]) {
        let last = PeerView {
            seq: view.seq + 1,
            vote: Vote::Down,
            evidence_age_ms: Some(0),
            detail: "p-endpoint Down, p-config Down, p-photos Down".into(),
            ..view
        };
        store.publish(&peer, &last).await.expect("writing a view");
    }

    let restarted = Monitor::start(&cooperating_config(
        &emu,
        NAMES[leader],
        &NAMES,
        &c.proxies[leader].url(),
        "",
    ));
    let s = restarted
        .wait_status(
            Duration::from_secs(20),
            "the restarted instance leads",
            |s| s["is_leader"] == true && s["ready"] == true,
        )
        .await;
    let after = lease(store.as_ref()).await;
    assert_eq!(after.token, before.token + 1, "a takeover: {after:?}");
    assert!(
        after.owner.starts_with(&format!("{}/", NAMES[leader])) && after.owner != before.owner,
        "another process of the same instance: {before:?} -> {after:?}"
    );
    for peer in NAMES.iter().filter(|n| **n != NAMES[leader]) {
        let p = instance(&s, peer);
        assert_eq!(p["live"], false, "{s}");
        assert_eq!(p["view"]["vote"], "down", "the old view is there: {s}");
        assert_eq!(p["vote"], "unknown", "and does not count: {s}");
    }

    // Longer than the old views would have needed to move the item (a few rounds).
    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < until {
        let s = restarted.status().await;
        assert_eq!(s["quorum"]["down_votes"], 0, "{s}");
        assert_eq!(s["quorum"]["reachable"], false, "{s}");
        assert_eq!(s["quorum"]["primary_down"], false, "{s}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let s = restarted.status().await;
    assert_eq!(s["is_leader"], true, "{s}");
    assert_eq!(s["policy"], "hold: primary healthy", "{s}");
    let m = restarted.metrics().await;
    assert_eq!(m.value(QUORUM_REACHABLE, &[]), Some(0.0), "{}", m.text());
    assert_eq!(m.sum(TRANSITIONS, &[]), 0.0, "{}", m.text());
    let i = tables.item(Role::Secondary).await;
    assert_eq!((i.state, i.version), (AppState::Active, 0));
}

/// Defect 2, with real processes: two of three instances die, and the survivor (the
/// leader) is cut off from a primary that is healthy for everyone else. Its own
/// probes say down, but one vote of the three configured is no quorum: it holds,
/// says the quorum is unreachable (status and metric), and never fails over on its
/// own. A human can: a forced `POST /v1/failover` commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_survivor_cut_off_from_the_primary_holds_and_a_human_can_force() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let c = Cluster::start(&emu, "").await;
    let leader = c.settled().await;
    let survivor = &c.monitors[leader];
    survivor
        .wait_metric(QUORUM_REACHABLE, &[], 1.0, Duration::from_secs(5))
        .await;

    for i in (0..NAMES.len()).filter(|i| *i != leader) {
        c.monitors[i].signal("KILL");
    }
    let survivor = &c.monitors[leader];
    survivor
        .wait_status(Duration::from_secs(10), "the peers not live", |s| {
            s["quorum"]["live"] == 1 && s["quorum"]["reachable"] == false
        })
        .await;
    survivor
        .wait_metric(QUORUM_REACHABLE, &[], 0.0, Duration::from_secs(5))
        .await;

    c.proxies[leader].cut();
    let s = survivor
        .wait_status(Duration::from_secs(10), "the quorum unreachable", |s| {
            s["policy"]
                .as_str()
                .is_some_and(|p| p.starts_with("hold: quorum unreachable"))
        })
        .await;
    assert_eq!(
        s["policy"],
        "hold: quorum unreachable: 1 of 3 configured instances live, 2 needed; \
         a human can force a failover",
        "{s}"
    );
    assert_eq!(s["is_leader"], true, "{s}");
    assert_eq!(s["quorum"]["configured"], 3, "{s}");
    assert_eq!(s["quorum"]["needed"], 2, "{s}");
    assert_eq!(s["quorum"]["own_vote"], "down", "{s}");
    assert_eq!(s["quorum"]["primary_down"], false, "{s}");

    // It stays so: hold for longer than a failover takes when a quorum agrees.
    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < until {
        let s = survivor.status().await;
        assert_eq!(s["quorum"]["primary_down"], false, "{s}");
        assert_eq!(s["item"]["version"], 0, "{s}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let m = survivor.metrics().await;
    assert_eq!(m.value(QUORUM_REACHABLE, &[]), Some(0.0), "{}", m.text());
    assert_eq!(m.sum(TRANSITIONS, &[]), 0.0, "{}", m.text());
    assert_eq!(tables.item(Role::Secondary).await.version, 0);

    let (code, body, _) = survivor
        .post(
            "/v1/failover",
            r#"{"reason": "the on-call confirmed the outage", "force": true, "caller": "ana"}"#,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let i = tables.item(Role::Secondary).await;
    assert_eq!((i.state, i.version), (AppState::Failover, 1));
    let r = &tables.audits(Role::Secondary, 1..=1).await[0];
    assert!(r.forced, "{r:?}");
    assert_eq!(r.trigger, Trigger::Manual);
    assert_eq!(r.by, "admin:ana");
}

/// Defect 3, with real processes as ECS runs them: during a rolling deployment a
/// second task of the leader's service starts beside the first, with the same
/// instance id and its own task id (its process value, read from the task metadata
/// endpoint). The first keeps leading; the second reports the duplicate (status and
/// metric) and never leads, however long it runs (with one owner for both, as
/// before, both renewed the same lease and both acted). Once the first stops
/// cleanly, the duplicate is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_with_one_instance_id_one_leads_the_other_reports_the_duplicate() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let store = tables.coordination();
    let ecs = TaskMetadata::start().await;
    let task = |i: usize, n: u32| format!("{}-task-{n}", NAMES[i]);
    let mut c = Cluster::start_with(&emu, "", |i| vec![ecs.env(&task(i, 1))]).await;
    let leader = c.settled().await;
    let held = lease(store.as_ref()).await;
    assert_eq!(
        held.owner,
        format!("{}/{}", NAMES[leader], task(leader, 1)),
        "the lease owner is the instance id and the task id"
    );

    let proxy = Proxy::start(emu.primary.port).await;
    let (var, uri) = ecs.env(&task(leader, 2));
    let second = Monitor::start_with(
        &cooperating_config(&emu, NAMES[leader], &NAMES, &proxy.url(), ""),
        &[(var, uri.as_str())],
    );
    let s = second
        .wait_status(Duration::from_secs(10), "the duplicate reported", |s| {
            s["duplicate"] == task(leader, 1).as_str()
        })
        .await;
    assert_eq!(s["is_leader"], false, "{s}");
    second
        .wait_metric(DUPLICATE, &[], 1.0, Duration::from_secs(5))
        .await;

    // Longer than a lease and a view_ttl: a lease it could take over would be taken.
    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < until {
        let (first, dup) = (c.status(leader).await, second.status().await);
        assert_eq!(
            first["is_leader"], true,
            "the first task keeps leading: {first}"
        );
        assert_eq!(dup["is_leader"], false, "the duplicate never leads: {dup}");
        assert_eq!(dup["duplicate"], task(leader, 1).as_str(), "{dup}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        lease(store.as_ref()).await.owner,
        held.owner,
        "the lease never changed hands"
    );
    assert_eq!(lease(store.as_ref()).await.token, held.token);
    let m = second.metrics().await;
    assert_eq!(m.value(DUPLICATE, &[]), Some(1.0), "{}", m.text());
    assert_eq!(m.value("failover_monitor_leader", &[]), Some(0.0));

    // The old task stops (SIGTERM, as ECS stops it): it gives the lease up; the new
    // one no longer sees another writer and takes its place among the three.
    assert_eq!(c.monitors[leader].terminate().await, Some(0));
    second
        .wait_metric(DUPLICATE, &[], 0.0, Duration::from_secs(10))
        .await;
    let s = second
        .wait_status(Duration::from_secs(10), "a leader again", |s| {
            s["leader"].is_string() && s["duplicate"].is_null()
        })
        .await;
    assert_eq!(
        instance(&s, NAMES[leader])["view"]["process"],
        task(leader, 2).as_str(),
        "{s}"
    );
    let i = tables.item(Role::Secondary).await;
    assert_eq!((i.state, i.version), (AppState::Active, 0));
}
