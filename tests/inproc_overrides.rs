//! A human's pause and fence end (`--for`, at most `monitor.max_override`): real
//! daemons in this process, on in-memory regions and paused time. Every instance
//! honours the stored end, restarts included; the acting one stores the pause's
//! lift and lifts an ended fence through the commit path.

use std::time::Duration;

use failover_core::model::{AppState, PauseRecord, Role, keys};
use failover_daemon::control::{MoveError, Request};
use failover_testkit::Record;
use failover_testkit::inproc::{APP, Node, coordinated, item, primary_down, settings, world};

const MINUTE: Duration = Duration::from_secs(60);

async fn pause(node: &Node, lasts: Option<Duration>) -> Result<bool, String> {
    node.handle
        .ask(|reply| Request::SetPaused {
            paused: true,
            caller: "ana".into(),
            reason: "maintenance".into(),
            lasts,
            reply,
        })
        .await
        .expect("an answer")
        .map_err(|e| e.to_string())
}

fn stored_pause(b: &failover_testkit::MemoryBackend) -> Option<PauseRecord> {
    match b.table(Role::Secondary).get(&keys::pause(APP)) {
        Some(Record::Pause(p)) => Some(p),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_pause_ends_on_every_instance_and_its_lift_is_stored_once() {
    let b = world();
    let nodes = [
        Node::start(coordinated("a", &["a", "c"], "2s"), &b, 1),
        Node::start(coordinated("c", &["a", "c"], "2s"), &b, 2),
    ];
    nodes[0]
        .wait_for(Duration::from_secs(10), "a leader", |s| s.is_leader)
        .await;
    assert_eq!(pause(&nodes[0], Some(10 * MINUTE)).await, Ok(false));
    for n in &nodes {
        let s = n
            .wait_for(Duration::from_secs(5), "paused", |s| s.paused)
            .await;
        let left = s.overrides.pause.expect("the pause in force").left_s;
        assert!((590..=600).contains(&left), "{left}");
    }
    assert!(nodes[0].metric("failover_monitor_override_expiry_seconds{") > 500.0);
    primary_down(&b);
    tokio::time::sleep(9 * MINUTE).await;
    assert_eq!(
        item(&b, Role::Secondary).map(|i| i.version),
        Some(0),
        "paused"
    );
    for n in &nodes {
        n.wait_for(2 * MINUTE, "the pause ended", |s| !s.paused)
            .await;
    }
    nodes[0]
        .wait_for(Duration::from_secs(30), "failed over", |s| {
            s.item
                .as_ref()
                .is_some_and(|i| i.state == AppState::Failover)
        })
        .await;
    let lifted = stored_pause(&b).expect("a stored pause");
    assert!(!lifted.paused);
    assert_eq!((lifted.by.as_str(), lifted.seq), ("expiry", 2));
    assert!(
        lifted.reason.contains("set by admin:ana"),
        "{}",
        lifted.reason
    );
    for n in nodes {
        n.stop().await;
    }
}

/// Only the acting instance stores the lift. Here the leader is killed holding a
/// long lease: the other instance stays a follower, honours the pause's end, and
/// writes nothing.
#[tokio::test(start_paused = true)]
async fn a_follower_honours_the_end_of_a_pause_but_never_stores_its_lift() {
    let b = world();
    let a = Node::start(coordinated("a", &["a", "c"], "10m"), &b, 1);
    a.wait_for(Duration::from_secs(10), "a leader", |s| s.is_leader)
        .await;
    let c = Node::start(coordinated("c", &["a", "c"], "10m"), &b, 2);
    c.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    a.kill();
    assert_eq!(pause(&c, Some(MINUTE)).await, Ok(false));
    c.wait_for(Duration::from_secs(5), "paused", |s| s.paused)
        .await;
    c.wait_for(2 * MINUTE, "the pause ended", |s| !s.paused)
        .await;
    tokio::time::sleep(MINUTE).await;
    assert!(!c.status().is_leader, "the lease of the killed leader runs");
    let stored = stored_pause(&b).expect("a stored pause");
    assert!(
        stored.paused && stored.seq == 1,
        "a follower stored {stored:?}"
    );
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_instance_honours_the_stored_end() {
    let b = world();
    let first = Node::start(settings("a", ""), &b, 1);
    first
        .wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    pause(&first, Some(30 * MINUTE)).await.expect("paused");
    let until = stored_pause(&b).and_then(|p| p.until).expect("an end");
    first.kill();
    tokio::time::sleep(10 * MINUTE).await;
    let second = Node::start(settings("a", ""), &b, 9);
    let s = second
        .wait_for(Duration::from_secs(5), "paused again", |s| s.paused)
        .await;
    assert_eq!(s.overrides.pause.map(|p| p.until), Some(until));
    second
        .wait_for(21 * MINUTE, "the pause ended", |s| !s.paused)
        .await;
    // An over-long pause and a resume that lasts are refused, nothing stored.
    let too_long = pause(&second, Some(73 * 60 * MINUTE)).await.unwrap_err();
    assert_eq!(
        too_long,
        "for = 3days 1h: at most 3days (monitor.max_override)"
    );
    second.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_human_fence_is_lifted_through_the_commit_path_when_it_ends() {
    let b = world();
    let node = Node::start(settings("a", ""), &b, 1);
    node.wait_for(Duration::from_secs(5), "ready", |s| s.ready)
        .await;
    let fence = |to, lasts| {
        node.handle.ask(move |reply| Request::Move {
            to,
            reason: "migration".into(),
            force: false,
            caller: "ana".into(),
            lasts,
            reply,
        })
    };
    match fence(AppState::Failover, Some(MINUTE))
        .await
        .expect("answer")
    {
        Err(MoveError::Lasts(why)) => assert!(why.contains("only a fence"), "{why}"),
        other => panic!("a failover does not last: {other:?}"),
    }
    let done = fence(AppState::Fenced, Some(30 * MINUTE))
        .await
        .expect("answer")
        .expect("fenced");
    let end = done.item.expires_at.clone().expect("an end on the item");
    assert_eq!(done.record.evidence["expires_at"], end.as_str());
    assert_eq!(
        item(&b, Role::Primary).and_then(|i| i.expires_at),
        Some(end)
    );
    let s = node
        .wait_for(Duration::from_secs(2), "the fence shown", |s| {
            s.overrides.fence.is_some()
        })
        .await;
    assert_eq!(s.overrides.fence.map(|f| f.by), Some("admin:ana".into()));
    tokio::time::sleep(29 * MINUTE).await;
    assert_eq!(
        item(&b, Role::Secondary).map(|i| i.state),
        Some(AppState::Fenced)
    );
    let s = node
        .wait_for(2 * MINUTE, "the fence lifted", |s| {
            s.item.as_ref().is_some_and(|i| i.state == AppState::Active)
        })
        .await;
    let lifted = s.item.expect("an item");
    assert_eq!(
        (lifted.version, lifted.updated_by.as_deref()),
        (2, Some("a"))
    );
    assert!(lifted.reason.unwrap_or_default().contains("ended at"));
    assert_eq!(item(&b, Role::Secondary).and_then(|i| i.expires_at), None);
    assert!(s.overrides.fence.is_none());
    node.stop().await;
}
