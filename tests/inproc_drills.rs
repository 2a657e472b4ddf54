//! Drills on real daemons in this process (in-memory regions with DynamoDB's
//! semantics, scripted probes and client path, paused time): an on-demand drill
//! goes through every step and back; a blocking alarm raised mid-drill brings it
//! back to `active`; a secondary whose state API is gone fails at preflight and
//! says why; a scheduled drill starts in its window; a real outage during a drill
//! is the normal rules'; a runner that dies leaves nothing fenced or failed over.

use std::time::Duration;

use failover_core::drill::{DrillRecord, Outcome, Step};
use failover_core::model::{AppState, AuditRecord, Role, Trigger, keys};
use failover_daemon::drill::{DrillError, DrillRequest, Plan};
use failover_testkit::inproc::{APP, Node, audits, item, primary_down, settings_with, world};
use failover_testkit::{Answer, MemoryBackend, Record, client_part};

const S: Duration = Duration::from_secs(1);
const ALARM: &str = "drill-blocking-alarm/primary/photos-5xx";

fn drills(extra: &str) -> String {
    format!(
        "[drills]\nhold = \"2m\"\nverify_for = \"20s\"\nblocking_alarms = [\"photos-5xx\"]\n{extra}"
    )
}

async fn start(node: &Node, hold: Duration, fence: Duration) -> Result<DrillRecord, DrillError> {
    node.handle
        .ask(|reply| {
            failover_daemon::control::Request::Drill(DrillRequest::Start {
                plan: Plan {
                    hold: Some(hold),
                    fence: Some(fence),
                    reason: "quarterly practice".into(),
                    by: "admin:ana".into(),
                    scheduled: false,
                },
                reply,
            })
        })
        .await
        .expect("an answer")
}

fn stored(b: &MemoryBackend) -> Option<DrillRecord> {
    match b.table(Role::Secondary).get(&keys::drill(APP)) {
        Some(Record::Drill(d)) => Some(*d),
        _ => None,
    }
}

/// The drill `id` (the last one started, if None) as it ended.
async fn ended_of(node: &Node, id: Option<&str>, within: Duration) -> DrillRecord {
    node.wait_for(within, "the drill ended", |s| {
        s.drill
            .as_ref()
            .is_some_and(|d| d.outcome.is_some() && id.is_none_or(|id| d.id == id))
    })
    .await
    .drill
    .expect("a drill")
}

async fn ended(node: &Node, within: Duration) -> DrillRecord {
    ended_of(node, None, within).await
}

fn drill_records(b: &MemoryBackend) -> Vec<AuditRecord> {
    audits(b, Role::Secondary)
        .into_iter()
        .filter(|a| a.trigger == Trigger::Drill)
        .collect()
}

/// The drill ended FAILED at its preflight, the reason naming `what`.
fn failed_at_preflight(done: &DrillRecord, what: &str) {
    assert_eq!(
        (done.outcome, done.step),
        (Some(Outcome::Failed), Step::Preflight),
        "{done:#?}"
    );
    let why = done.why.as_deref().unwrap_or_default();
    assert!(why.contains(what), "{why}");
}

async fn ready(node: &Node) {
    node.wait_for(10 * S, "ready, probes up", |s| {
        s.ready
            && !s.probes.is_empty()
            && s.probes
                .iter()
                .all(|p| p.health == failover_core::policy::Health::Up)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_on_demand_drill_fences_fails_over_holds_fails_back_and_succeeds() {
    let b = world();
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    let started = start(&node, 2 * 60 * S, 10 * S).await.expect("started");
    assert_eq!((started.step, started.outcome), (Step::Preflight, None));
    assert!(started.id.starts_with("d-") && started.id.ends_with("-a"));
    assert!(
        started.deadline > started.started_at,
        "the deadline is after the start: {started:#?}"
    );
    // A second drill while one runs is refused.
    match start(&node, 60 * S, Duration::ZERO).await {
        Err(DrillError::Running(r)) => assert_eq!(r.id, started.id),
        other => panic!("a second drill: {other:?}"),
    }
    // Mid-hold: failed over by the drill, with an end.
    node.wait_for(60 * S, "in the hold", |s| {
        s.drill.as_ref().is_some_and(|d| d.step == Step::Hold)
    })
    .await;
    let during = item(&b, Role::Secondary).expect("an item");
    assert_eq!(during.state, AppState::Failover);
    assert_eq!(
        during.updated_by.as_deref(),
        Some(format!("drill:{}", started.id).as_str())
    );
    assert!(during.expires_at.is_some());
    assert_eq!(node.metric("failover_monitor_drill_running"), 1.0);
    let done = ended(&node, 5 * 60 * S).await;
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:#?}");
    assert_eq!(done.step, Step::Done);
    assert_eq!(done.versions, vec![1, 2, 3], "fence, failover, failback");
    assert!(done.last_success_at.is_some());
    for name in [
        "quorum",
        "blocking_alarms",
        "secondary_state_api",
        "client_write",
        "photo",
    ] {
        assert!(
            done.checks.iter().any(|c| c.name == name && c.ok),
            "{name} not checked: {:#?}",
            done.checks
        );
    }
    // The secondary's state API was read, not passed over as unknown.
    let verified = done
        .checks
        .iter()
        .find(|c| c.step == Step::VerifySecondary && c.name == "secondary_state_api")
        .expect("the secondary's state API checked");
    assert!(
        verified.ok && verified.detail.starts_with("answers failover after "),
        "{verified:?}"
    );
    // The fence's and the failover's reports count from the drill's start; the
    // failback's, like any move, from its decision.
    for (version, from_the_start) in [(1, true), (2, true), (3, false)] {
        let report = match b.table(Role::Secondary).get(&keys::report(APP, version)) {
            Some(Record::Report(r)) => r,
            other => panic!("no report of version {version}: {other:?}"),
        };
        assert_eq!(
            report
                .first(failover_core::report::EventKind::DrillStarted, None)
                .is_some(),
            from_the_start,
            "version {version}: {report:#?}"
        );
    }
    let now = item(&b, Role::Secondary).expect("an item");
    assert_eq!((now.state, now.version), (AppState::Active, 3));
    assert_eq!(now.expires_at, None);
    let trail = drill_records(&b);
    let moves: Vec<_> = trail.iter().map(|a| (a.from, a.to)).collect();
    assert_eq!(
        moves,
        vec![
            (AppState::Active, AppState::Fenced),
            (AppState::Fenced, AppState::Failover),
            (AppState::Failover, AppState::Active)
        ]
    );
    assert!(
        trail
            .iter()
            .all(|a| a.by == format!("drill:{}", started.id))
    );
    assert_eq!(stored(&b), Some(done.clone()), "the record is stored");
    // Every write of the record moves its `seq` on (the condition of the next
    // write, so that a writer holding an older record loses).
    assert!(done.seq > started.seq + 3, "seq {}", done.seq);
    assert_eq!(
        node.metric("failover_monitor_drill_last_outcome{outcome=\"SUCCEEDED\"}"),
        1.0
    );
    assert!(node.metric("failover_monitor_drill_last_success_timestamp_seconds") > 1.7e9);
    assert_eq!(node.metric("failover_monitor_drill_running"), 0.0);
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_blocking_alarm_raised_mid_drill_brings_it_back_to_active() {
    let b = world();
    let node = Node::start(
        settings_with("a", "", &drills("alarm_every = \"5s\"")),
        &b,
        1,
    );
    ready(&node).await;
    start(&node, 10 * 60 * S, Duration::ZERO)
        .await
        .expect("started");
    node.wait_for(60 * S, "in the hold", |s| {
        s.drill.as_ref().is_some_and(|d| d.step == Step::Hold)
    })
    .await;
    let raised = tokio::time::Instant::now();
    b.script
        .set(ALARM, Answer::Fail("photos-5xx: ALARM".into()));
    let done = ended(&node, 60 * S).await;
    assert!(
        raised.elapsed() <= 5 * S + 2 * S,
        "aborted after {:?}",
        raised.elapsed()
    );
    assert_eq!(done.outcome, Some(Outcome::Interrupted), "{done:#?}");
    let why = done.why.clone().unwrap_or_default();
    assert!(
        why.contains("blocking alarm") && why.contains("photos-5xx"),
        "{why}"
    );
    assert!(why.ends_with("back to active"), "{why}");
    assert_eq!(done.step, Step::Hold);
    let now = item(&b, Role::Secondary).expect("an item");
    assert_eq!(now.state, AppState::Active);
    assert_eq!(
        node.metric("failover_monitor_drill_last_outcome{outcome=\"INTERRUPTED\"}"),
        1.0
    );
    // The alarm still firing keeps the next drill from starting.
    let second = start(&node, 60 * S, Duration::ZERO).await.expect("started");
    let refused = ended_of(&node, Some(&second.id), 30 * S).await;
    assert_eq!(refused.outcome, Some(Outcome::Failed), "{refused:#?}");
    assert_eq!(refused.step, Step::Preflight);
    assert!(
        refused
            .why
            .unwrap_or_default()
            .contains("blocking_alarms: "),
        "{:#?}",
        refused.checks
    );
    assert_eq!(
        item(&b, Role::Secondary).map(|i| i.version),
        Some(2),
        "failover, back"
    );
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_secondary_without_a_state_api_fails_at_preflight_and_says_why() {
    let b = world();
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    b.script.set(
        &client_part(Role::Secondary, "state"),
        Answer::Fail("HTTP 403: Missing Authentication Token (no such API)".into()),
    );
    start(&node, 60 * S, Duration::ZERO).await.expect("started");
    let done = ended(&node, 30 * S).await;
    assert_eq!(
        (done.outcome, done.step),
        (Some(Outcome::Failed), Step::Preflight)
    );
    let why = done.why.unwrap_or_default();
    assert!(
        why.starts_with("preflight: secondary_state_api: HTTP 403: Missing Authentication Token"),
        "{why}"
    );
    assert!(
        done.checks
            .iter()
            .any(|c| c.name == "primary_state_api" && c.ok),
        "the other checks still ran: {:#?}",
        done.checks
    );
    assert_eq!(
        item(&b, Role::Secondary).map(|i| (i.state, i.version)),
        Some((AppState::Active, 0)),
        "nothing moved"
    );
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_real_outage_during_a_drill_is_failed_over_and_the_drill_interrupted() {
    let b = world();
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    start(&node, 10 * 60 * S, 10 * 60 * S)
        .await
        .expect("started");
    node.wait_for(30 * S, "fenced by the drill", |s| {
        s.item.as_ref().is_some_and(|i| i.state == AppState::Fenced)
    })
    .await;
    primary_down(&b);
    let done = ended(&node, 60 * S).await;
    assert_eq!(done.outcome, Some(Outcome::Interrupted), "{done:#?}");
    let why = done.why.unwrap_or_default();
    assert!(why.contains("a real outage"), "{why}");
    // Long before the drill's 10-minute fence would end, the normal rules fail over.
    node.wait_for(60 * S, "failed over", |s| {
        s.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Failover)
    })
    .await;
    let last = item(&b, Role::Secondary).expect("an item");
    assert_eq!(
        last.updated_by.as_deref(),
        Some("a"),
        "the monitor's own move"
    );
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_drill_whose_runner_dies_is_ended_by_the_monitors_and_marked_interrupted() {
    let b = world();
    let tail = format!(
        "{}\n{}",
        drills(""),
        failover_testkit::inproc::coordination(&["a", "c"], "2s")
    );
    let a = Node::start(settings_with("a", "", &tail), &b, 1);
    a.wait_for(10 * S, "a leads", |s| s.is_leader).await;
    let c = Node::start(settings_with("c", "", &tail), &b, 2);
    ready(&a).await;
    ready(&c).await;
    a.wait_for(10 * S, "the quorum reachable", |s| {
        s.quorum.as_ref().is_some_and(|q| q["reachable"] == true)
    })
    .await;
    let rec = start(&a, 3 * 60 * S, Duration::ZERO)
        .await
        .expect("started");
    a.wait_for(60 * S, "in the hold", |s| {
        s.drill.as_ref().is_some_and(|d| d.step == Step::Hold)
    })
    .await;
    a.kill();
    // The other instance takes the lease, ends the stale record, and fails back
    // once the drill's failover ends (verify_for + hold + margin after it began).
    let done = c
        .wait_for(5 * 60 * S, "the stale drill ended", |s| {
            s.drill
                .as_ref()
                .is_some_and(|d| d.id == rec.id && d.outcome.is_some())
        })
        .await
        .drill
        .expect("a drill");
    assert_eq!(done.outcome, Some(Outcome::Interrupted));
    assert!(
        done.why
            .unwrap_or_default()
            .contains("stopped writing its record"),
        "ended by c"
    );
    c.wait_for(5 * 60 * S, "failed back", |s| {
        s.item.as_ref().is_some_and(|i| i.state == AppState::Active)
    })
    .await;
    let back = item(&b, Role::Secondary).expect("an item");
    assert_eq!(back.updated_by.as_deref(), Some("c"));
    assert!(back.reason.unwrap_or_default().contains("hold of drill"));
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_drill_starts_on_its_own_and_a_non_leader_refuses_one() {
    let b = world();
    // The test world's clock starts at 2027-01-15T08:00:00Z.
    let tail = format!(
        "{}\n{}",
        drills("every = \"7d\"\nwindow = \"08:00-09:00\""),
        failover_testkit::inproc::coordination(&["a", "c"], "2s")
    );
    let a = Node::start(settings_with("a", "", &tail), &b, 1);
    a.wait_for(10 * S, "a leads", |s| s.is_leader).await;
    let c = Node::start(settings_with("c", "", &tail), &b, 2);
    c.wait_for(10 * S, "c sees a", |s| s.leader.as_deref() == Some("a"))
        .await;
    match start(&c, 60 * S, Duration::ZERO).await {
        Err(DrillError::NotLeader(leader)) => assert_eq!(leader.as_deref(), Some("a")),
        other => panic!("a non-leader started a drill: {other:?}"),
    }
    let done = ended(&a, 10 * 60 * S).await;
    assert!(done.scheduled && done.by == "schedule", "{done:#?}");
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:#?}");
    assert_eq!(
        a.metric("failover_monitor_drill_period_seconds"),
        7.0 * 86400.0
    );
    // Every instance shows it.
    c.wait_for(30 * S, "c reads the record", |s| {
        s.drill
            .as_ref()
            .is_some_and(|d| d.id == done.id && d.outcome.is_some())
    })
    .await;
    // Not again for seven days.
    tokio::time::sleep(30 * 60 * S).await;
    assert_eq!(stored(&b).map(|d| d.id), Some(done.id));
    a.stop().await;
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_secondary_that_is_not_ready_fails_the_preflight_and_is_named() {
    let b = world();
    b.readiness
        .set(vec![failover_daemon::readiness::Finding::NotReady(
            "rest-api photos-config-secondary: stage prod missing".into(),
        )]);
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    node.wait_for(10 * S, "readiness checked", |s| {
        s.secondary_readiness.is_some()
    })
    .await;
    start(&node, 60 * S, Duration::ZERO).await.expect("started");
    let done = ended(&node, 30 * S).await;
    assert_eq!(
        (done.outcome, done.step),
        (Some(Outcome::Failed), Step::Preflight)
    );
    let why = done.why.unwrap_or_default();
    assert!(
        why.contains("secondary_ready: ") && why.contains("stage prod missing"),
        "{why}"
    );
    // Ready again: the next drill goes through.
    b.readiness.set(Vec::new());
    node.wait_for(10 * 60 * S, "ready again", |s| {
        s.secondary_readiness.as_ref().is_some_and(|r| r.ready)
    })
    .await;
    let next = start(&node, 10 * S, Duration::ZERO).await.expect("started");
    let done = ended_of(&node, Some(&next.id), 5 * 60 * S).await;
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:#?}");
    node.stop().await;
}

/// A drill record as a runner left it, mid-hold, its last heartbeat at the test
/// world's start (2027-01-15T08:00:00Z).
fn left_running(instance: &str, process: &str) -> DrillRecord {
    DrillRecord {
        id: format!("d-1799999999000-{instance}"),
        seq: 7,
        scheduled: false,
        by: "admin:ana".into(),
        reason: "left running".into(),
        instance: instance.into(),
        process: process.into(),
        started_at: "2027-01-15T07:59:00.000Z".into(),
        hold_s: 120,
        fence_s: 0,
        deadline: "2027-01-15T08:30:00.000Z".into(),
        step: Step::Hold,
        outcome: None,
        why: None,
        ended_at: None,
        versions: Vec::new(),
        checks: Vec::new(),
        last_success_at: None,
        heartbeat_at: Some("2027-01-15T08:00:00.000Z".into()),
    }
}

/// A drill record still running under this instance's id but another process (the
/// process before a restart) has no runner: the new process ends it at its first
/// look, without waiting for it to go stale. Another instance's running record is
/// left alone until it goes stale ([`failover_core::drill::STALE`], 60 s).
#[tokio::test(start_paused = true)]
async fn a_drill_left_by_this_instances_previous_process_is_ended_at_once() {
    let b = world();
    let put = |r: DrillRecord| {
        b.table(Role::Secondary)
            .put(&keys::drill(APP), Record::Drill(Box::new(r)))
    };
    put(left_running("a", "before-the-restart"));
    let a = Node::start(settings_with("a", "", &drills("")), &b, 1);
    let done = ended(&a, 40 * S).await;
    assert_eq!(done.outcome, Some(Outcome::Interrupted), "{done:#?}");
    assert!(
        done.why
            .as_deref()
            .is_some_and(|w| w.contains("process before-the-restart")),
        "{:?}",
        done.why
    );
    a.stop().await;

    let b = world();
    b.table(Role::Secondary).put(
        &keys::drill(APP),
        Record::Drill(Box::new(left_running("b", "elsewhere"))),
    );
    let a = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&a).await;
    tokio::time::sleep(40 * S).await;
    let theirs = stored(&b).expect("the record");
    assert_eq!(theirs.outcome, None, "not stale yet: left alone");
    let done = ended(&a, 60 * S).await;
    assert_eq!(done.outcome, Some(Outcome::Interrupted));
    a.stop().await;
}

/// A scheduled drill waits until the monitor has an opinion of every probe: a probe
/// checked once a minute has none for its first minute (two passes make it up),
/// and no drill starts then, though the window is open and the instance acts;
/// once it is up, the drill starts and succeeds.
#[tokio::test(start_paused = true)]
async fn a_scheduled_drill_waits_for_every_probe_to_be_known() {
    let b = world();
    let slow = "[[probes]]\nname = \"s-slow\"\nkind = \"http\"\nregion = \"secondary\"\n\
                url = \"https://secondary.invalid/slow\"\ninterval = \"60s\"\ntimeout = \"1s\"\n";
    let tail = format!(
        "{slow}{}",
        drills("every = \"7d\"\nwindow = \"08:00-09:00\"")
    );
    let a = Node::start(settings_with("a", "", &tail), &b, 1);
    a.wait_for(10 * S, "ready", |s| s.ready).await;
    tokio::time::sleep(40 * S).await;
    let unknown = a.status();
    assert!(
        unknown
            .probes
            .iter()
            .any(|p| p.name == "s-slow" && p.health == failover_core::policy::Health::Unknown),
        "{:?}",
        unknown.probes
    );
    assert_eq!(stored(&b), None, "no drill with a probe not known yet");
    let done = ended(&a, 10 * 60 * S).await;
    assert!(done.scheduled, "{done:#?}");
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:#?}");
    a.stop().await;
}

/// A drill starts over a running record whose runner went quiet (stale), and is
/// refused while another instance's record is live; a hold or fence longer than
/// 24 h is refused, 24 h itself is allowed.
#[tokio::test(start_paused = true)]
async fn a_drill_starts_over_a_stale_record_but_not_a_live_one_and_within_a_day() {
    let b = world();
    let live = left_running("b", "elsewhere");
    b.table(Role::Secondary)
        .put(&keys::drill(APP), Record::Drill(Box::new(live.clone())));
    let a = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&a).await;
    match start(&a, 60 * S, Duration::ZERO).await {
        Err(DrillError::Running(r)) => assert_eq!(r.id, live.id),
        other => panic!("started over a live drill: {other:?}"),
    }
    let stale = DrillRecord {
        heartbeat_at: Some("2027-01-15T07:58:00.000Z".into()),
        ..live
    };
    b.table(Role::Secondary)
        .put(&keys::drill(APP), Record::Drill(Box::new(stale)));
    let day = 24 * 60 * 60 * S;
    match start(&a, day + S, Duration::ZERO).await {
        Err(DrillError::Invalid(why)) => assert_eq!(why, "hold: at most 24h"),
        other => panic!("a hold over a day: {other:?}"),
    }
    match start(&a, 60 * S, day + S).await {
        Err(DrillError::Invalid(why)) => assert_eq!(why, "fence: at most 24h"),
        other => panic!("a fence over a day: {other:?}"),
    }
    let ours = start(&a, day, Duration::ZERO)
        .await
        .expect("started over the stale record, for a day");
    assert_eq!(ours.seq, 8, "written over the stale record's seq 7");
    assert_eq!(ours.hold_s, 86_400);
    a.stop().await;
}

/// A drill's preflight refuses to move anything while the monitor waits for a
/// human: while automatic moves stopped for one (`needs_human`: here an audit
/// record of the version a commit wanted to write was left by an earlier life), and
/// while the two regions' copies of the item disagree (`divergence`: the primary's
/// copy set to another state by hand).
#[tokio::test(start_paused = true)]
async fn a_drill_does_not_start_while_the_monitor_waits_for_a_human() {
    let preflight_fails = |done: &DrillRecord, what: &str| {
        assert_eq!(
            (done.outcome, done.step),
            (Some(Outcome::Failed), Step::Preflight),
            "{done:#?}"
        );
        let why = done.why.clone().unwrap_or_default();
        assert!(
            why.contains("state_active: ") && why.contains(what),
            "{why}"
        );
    };
    let b = world();
    leave_a_record_of_version_1(&b);
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    primary_down(&b);
    let waits = node
        .wait_for(10 * S, "needs a human", |s| s.needs_human.is_some())
        .await
        .needs_human
        .expect("needs_human");
    failover_testkit::inproc::primary_up(&b);
    ready(&node).await;
    start(&node, 60 * S, Duration::ZERO).await.expect("started");
    preflight_fails(&ended(&node, 30 * S).await, &waits);
    node.stop().await;

    let b = world();
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    b.table(Role::Primary).put(
        APP,
        Record::Item(failover_core::model::ConfigItem::seeded(AppState::Failover)),
    );
    let diverged = node
        .wait_for(10 * S, "a divergence", |s| s.divergence.is_some())
        .await
        .divergence
        .expect("a divergence");
    start(&node, 60 * S, Duration::ZERO).await.expect("started");
    preflight_fails(&ended(&node, 30 * S).await, &diverged);
    node.stop().await;
}

/// A drill's preflight refuses to start while a transition is being committed (a
/// human's move, its transaction slow in the commit region).
#[tokio::test(start_paused = true)]
async fn a_drill_does_not_start_while_a_transition_is_being_committed() {
    let b = world();
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    b.table(Role::Secondary).set_transaction_time(20 * S);
    let human = node
        .handle
        .ask(|reply| failover_daemon::control::Request::Move {
            to: AppState::Fenced,
            reason: "the on-call fences by hand".into(),
            force: true,
            caller: "ana".into(),
            reply,
            lasts: None,
        });
    let drill = async {
        node.wait_for(10 * S, "committing", |s| s.committing).await;
        start(&node, 60 * S, Duration::ZERO).await.expect("started");
        ended(&node, 15 * S).await
    };
    let (moved, done) = tokio::join!(human, drill);
    moved.expect("an answer").expect("the human's move");
    assert_eq!(
        (done.outcome, done.step),
        (Some(Outcome::Failed), Step::Preflight),
        "{done:#?}"
    );
    let why = done.why.unwrap_or_default();
    assert!(
        why.contains("state_active: a transition is being committed"),
        "{why}"
    );
    node.stop().await;
}

/// An audit record of version 1 in both regions, left by an earlier life of the
/// item (seeded at version 0): the next commit needs a human.
fn leave_a_record_of_version_1(b: &MemoryBackend) {
    for role in [Role::Primary, Role::Secondary] {
        b.table(role).put(
            &keys::audit(APP, 1),
            Record::Audit(AuditRecord {
                version: 1,
                from: AppState::Active,
                to: AppState::Failover,
                at: "2026-01-01T00:00:00Z".into(),
                by: "an earlier life".into(),
                trigger: Trigger::Auto,
                reason: "left behind".into(),
                evidence: serde_json::Value::Null,
                forced: false,
            }),
        );
    }
}

/// A drill's move that needs a human (the item was reset below versions already
/// used) interrupts the drill, as a lost race does: nothing about the drill
/// failed, and it says which move stopped.
#[tokio::test(start_paused = true)]
async fn a_drill_whose_move_needs_a_human_is_interrupted() {
    let b = world();
    leave_a_record_of_version_1(&b);
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    start(&node, 60 * S, 10 * S).await.expect("started");
    let done = ended(&node, 60 * S).await;
    assert_eq!(
        (done.outcome, done.step),
        (Some(Outcome::Interrupted), Step::Fence),
        "{done:#?}"
    );
    let why = done.why.unwrap_or_default();
    assert!(why.starts_with("move to fenced: needs a human: "), "{why}");
    assert_eq!(item(&b, Role::Secondary).map(|i| i.version), Some(0));
    node.stop().await;
}

/// A failback the safety rules refuse (the primary's probes only inconclusive, its
/// calls denied: not down, not up) interrupts the drill in failover and says so;
/// the monitors fail back on their own once the primary is up.
#[tokio::test(start_paused = true)]
async fn a_drill_whose_failback_is_refused_stays_in_failover_and_says_why() {
    let b = world();
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    start(&node, 30 * S, Duration::ZERO).await.expect("started");
    node.wait_for(60 * S, "in the hold", |s| {
        s.drill.as_ref().is_some_and(|d| d.step == Step::Hold)
    })
    .await;
    b.script.set(
        "p-table",
        Answer::Denied("get_item photos-config: AccessDeniedException".into()),
    );
    let done = ended(&node, 5 * 60 * S).await;
    assert_eq!(
        (done.outcome, done.step),
        (Some(Outcome::Interrupted), Step::Failback),
        "{done:#?}"
    );
    let why = done.why.unwrap_or_default();
    assert!(why.starts_with("failback refused: "), "{why}");
    assert_eq!(
        item(&b, Role::Secondary).map(|i| i.state),
        Some(AppState::Failover)
    );
    node.stop().await;
}

/// With the secondary's readiness checked (`[readiness]`), a drill started before
/// the first check has reported fails its preflight: doubt stops a drill.
#[tokio::test(start_paused = true)]
async fn a_drill_before_the_first_readiness_check_fails_its_preflight() {
    let b = world();
    b.readiness.set(Vec::new());
    b.readiness.hang(true);
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    assert!(node.status().secondary_readiness.is_none());
    start(&node, 60 * S, Duration::ZERO).await.expect("started");
    let done = ended(&node, 30 * S).await;
    failed_at_preflight(&done, "secondary_ready: not checked yet");
    node.stop().await;
}

/// A drill verifies the secondary for up to `verify_for`: a state API that lags the
/// failover by a few seconds (answering 502 meanwhile) is waited for, and the drill
/// succeeds. Someone else's move during the hold interrupts it and is named.
#[tokio::test(start_paused = true)]
async fn a_drill_waits_for_a_lagging_state_api_and_stops_for_someone_elses_move() {
    let b = world();
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    let state_api = client_part(Role::Secondary, "state");
    start(&node, 30 * S, 10 * S).await.expect("started");
    node.wait_for(60 * S, "fenced", |s| {
        s.drill.as_ref().is_some_and(|d| d.step == Step::Fence)
    })
    .await;
    b.script.set(&state_api, Answer::Fail("502".into()));
    node.wait_for(60 * S, "verifying the secondary", |s| {
        s.drill
            .as_ref()
            .is_some_and(|d| d.step == Step::VerifySecondary)
    })
    .await;
    tokio::time::sleep(3 * S).await;
    b.script.set(&state_api, Answer::Ok);
    let done = ended(&node, 5 * 60 * S).await;
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:#?}");

    let second = start(&node, 10 * 60 * S, Duration::ZERO)
        .await
        .expect("started");
    node.wait_for(2 * 60 * S, "in the hold", |s| {
        s.drill
            .as_ref()
            .is_some_and(|d| d.id == second.id && d.step == Step::Hold)
    })
    .await;
    node.handle
        .ask(|reply| failover_daemon::control::Request::Move {
            to: AppState::Fenced,
            reason: "the on-call fences by hand".into(),
            force: true,
            caller: "ana".into(),
            reply,
            lasts: None,
        })
        .await
        .expect("an answer")
        .expect("the human's move");
    let done = ended_of(&node, Some(&second.id), 60 * S).await;
    assert_eq!(done.outcome, Some(Outcome::Interrupted), "{done:#?}");
    let why = done.why.unwrap_or_default();
    assert!(why.contains("the config item was moved by "), "{why}");
    // The human's move stands: the drill does not bring it back to active.
    tokio::time::sleep(10 * S).await;
    let now = item(&b, Role::Secondary).expect("an item");
    assert_eq!(now.state, AppState::Fenced, "{now:?}");
    assert!(
        now.updated_by
            .as_deref()
            .is_some_and(|by| by.contains("ana")),
        "{now:?}"
    );
    node.stop().await;
}

/// With `[route53]`, a drill verifies that the record points at the region it
/// moved to: it does, and the drill succeeds; with the DNS change held back (the
/// record still at the primary when the secondary is verified), the drill fails
/// at that step and says so.
#[tokio::test(start_paused = true)]
async fn a_drill_verifies_the_dns_record() {
    let b = world();
    let route53 = "[route53]\nzone_id = \"Z123\"\nrecord_name = \"app.example.com\"\n\
                   primary_value = \"primary\"\nsecondary_value = \"secondary\"\n";
    let node = Node::start(
        settings_with("a", "", &format!("{route53}{}", drills(""))),
        &b,
        1,
    );
    ready(&node).await;
    let done = ended_of(
        &node,
        Some(&start(&node, 30 * S, Duration::ZERO).await.unwrap().id),
        5 * 60 * S,
    )
    .await;
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:#?}");
    assert!(
        done.checks
            .iter()
            .any(|c| c.name == "dns" && c.ok && c.step == Step::VerifySecondary),
        "{:#?}",
        done.checks
    );
    b.dns.set_delay("p1", 120 * S);
    let next = start(&node, 30 * S, Duration::ZERO).await.unwrap();
    let done = ended_of(&node, Some(&next.id), 10 * 60 * S).await;
    assert_eq!(
        (done.outcome, done.step),
        (Some(Outcome::Failed), Step::VerifySecondary),
        "{done:#?}"
    );
    assert!(
        done.why.as_deref().is_some_and(|w| w.contains("DNS: ")),
        "{:?}",
        done.why
    );
    node.stop().await;
}

/// A drill starts only from `active`: from a failover set by hand, its preflight
/// fails and names the state.
#[tokio::test(start_paused = true)]
async fn a_drill_starts_only_from_active() {
    let b = world();
    b.seed_item(
        APP,
        &failover_core::model::ConfigItem::seeded(AppState::Failover),
    );
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    start(&node, 30 * S, Duration::ZERO).await.expect("started");
    let done = ended(&node, 30 * S).await;
    failed_at_preflight(&done, "state_active: the state is failover");
    node.stop().await;
}

/// A drill starts only with every probe up: a primary probe whose calls are denied
/// (inconclusive, not down) fails the preflight, named.
#[tokio::test(start_paused = true)]
async fn a_drill_needs_every_probe_up() {
    let b = world();
    let node = Node::start(settings_with("a", "", &drills("")), &b, 1);
    ready(&node).await;
    b.script.set(
        "p-table",
        Answer::Denied("get_item photos-config: AccessDeniedException".into()),
    );
    node.wait_for(10 * S, "p-table inconclusive", |s| {
        s.probes
            .iter()
            .any(|p| p.name == "p-table" && p.health == failover_core::policy::Health::Inconclusive)
    })
    .await;
    start(&node, 30 * S, Duration::ZERO).await.expect("started");
    let done = ended(&node, 30 * S).await;
    assert_eq!(
        (done.outcome, done.step),
        (Some(Outcome::Failed), Step::Preflight),
        "{done:#?}"
    );
    let why = done.why.unwrap_or_default();
    assert!(
        why.contains("primary_probes_up: not up: p-table (inconclusive)"),
        "{why}"
    );
    node.stop().await;
}
