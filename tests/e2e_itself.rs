//! What the monitor got wrong about itself (issue 17), with real monitor processes on
//! the two-region emulator: a config item re-seeded under a running monitor, and a
//! permission change that answers every instance's calls to a healthy primary with
//! `AccessDeniedException`.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use failover_core::model::{AppState, Role, keys};
use serde_json::Value;
use support::config::{FAST_MONITOR, cooperating_config};
use support::emulator::{Emulator, use_emulator_credentials};
use support::iam::{MONITOR_KEY, deny};
use support::monitor::Monitor;
use support::{APP_ID, PROJECT};

const S: Duration = Duration::from_secs(1);

/// A DynamoDB client of one emulated region, with the test's own credentials.
async fn dynamodb(emu: &Emulator, role: Role) -> aws_sdk_dynamodb::Client {
    use_emulator_credentials();
    let r = emu.region(role);
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(r.name))
        .endpoint_url(r.url())
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&sdk)
}

/// Writes the item as the original stack seeds it: `active`, without a version.
async fn reseed(client: &aws_sdk_dynamodb::Client) {
    client
        .put_item()
        .table_name(format!("{PROJECT}-config"))
        .item("appId", AttributeValue::S(APP_ID.into()))
        .item("state", AttributeValue::S("active".into()))
        .send()
        .await
        .expect("re-seeding the item");
}

async fn delete_audit(client: &aws_sdk_dynamodb::Client, version: u64) {
    client
        .delete_item()
        .table_name(format!("{PROJECT}-config"))
        .key("appId", AttributeValue::S(keys::audit(APP_ID, version)))
        .send()
        .await
        .expect("deleting an audit record");
}

fn item_of(status: &Value) -> (String, u64) {
    (
        status["item"]["state"].as_str().unwrap_or("").to_owned(),
        status["item"]["version"].as_u64().unwrap_or(u64::MAX),
    )
}

/// Item 1 with a real process: a manual failover and failback bring the item to
/// `active` v2 with audit records 1 and 2; both copies are then re-seeded `active`
/// without a version, and the primary is killed. The running monitor takes the
/// reset in, reports `needs_human` (status, metric) instead of losing a race with
/// its own memory for ever, and once the stale records are removed fails over
/// without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_item_reset_under_a_running_monitor_is_seen_and_repaired() {
    let mut emu = Emulator::start();
    let mon = Monitor::start(&emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n\
         [[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"s-config\"\nkind = \"dynamodb\"\nregion = \"secondary\"\n"
    )));
    mon.wait_ready(20 * S).await;
    for (path, version) in [("/v1/failover", 1), ("/v1/failback", 2)] {
        let (code, body, _) = mon
            .post(path, r#"{"reason": "drill", "force": true}"#)
            .await;
        assert!(code < 300, "{path}: {code} {body}");
        assert_eq!(body["item"]["version"], version, "{body}");
    }
    let primary = dynamodb(&emu, Role::Primary).await;
    let secondary = dynamodb(&emu, Role::Secondary).await;
    reseed(&secondary).await;
    reseed(&primary).await;
    mon.wait_status(5 * S, "the reset taken in", |s| {
        item_of(s) == ("active".into(), 0)
    })
    .await;
    emu.primary.kill();
    let s = mon
        .wait_status(15 * S, "needs a human", |s| s["needs_human"].is_string())
        .await;
    assert_eq!(item_of(&s), ("active".into(), 0), "{s}");
    let m = mon.metrics().await;
    assert_eq!(m.value("failover_monitor_needs_human", &[]), Some(1.0));
    assert_eq!(
        m.value(
            "failover_monitor_commit_attempts_total",
            &[("outcome", "lost_race")]
        ),
        None,
        "no lost race against its own memory"
    );
    // The repair: the stale records go from the commit region (the primary is dead).
    for v in [1, 2] {
        delete_audit(&secondary, v).await;
    }
    let s = mon
        .wait_status(15 * S, "the failover after the repair", |s| {
            item_of(s) == ("failover".into(), 1)
        })
        .await;
    assert!(s["needs_human"].is_null(), "{s}");
}

/// Item 2 with real processes: three cooperating instances whose every call to a
/// healthy primary is answered `AccessDeniedException` (their role lost its
/// permissions; the application's users are still served) fail nothing over: the
/// probes that need credentials are inconclusive, the http one keeps judging. Then
/// the primary really dies, and the http probe fails it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_change_on_a_healthy_primary_fails_nothing_over() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let names = ["mon-a", "mon-b", "mon-c"];
    let primary = emu.primary.url();
    let monitors: Vec<Monitor> = names
        .iter()
        .map(|n| {
            Monitor::start_with(
                &cooperating_config(&emu, n, &names, &primary, ""),
                &[("AWS_ACCESS_KEY_ID", MONITOR_KEY)],
            )
        })
        .collect();
    for m in &monitors {
        m.wait_status(30 * S, "every probe up", |s| {
            s["probes"]
                .as_array()
                .is_some_and(|ps| ps.iter().all(|p| p["health"] == "up"))
        })
        .await;
    }
    deny(&primary, &[MONITOR_KEY]).await;
    for m in &monitors {
        let s = m
            .wait_status(15 * S, "the credentialed probes inconclusive", |s| {
                s["probes"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .filter(|p| p["name"] == "p-config" || p["name"] == "p-photos")
                        .all(|p| p["health"] == "inconclusive")
                })
            })
            .await;
        let p = s["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "p-config")
            .unwrap();
        assert!(
            p["last_error"].as_str().unwrap().contains("AccessDenied"),
            "{p}"
        );
        let metrics = m.metrics().await;
        assert_eq!(
            metrics.value(
                "failover_monitor_probe_inconclusive",
                &[("probe", "p-config"), ("region", "primary")]
            ),
            Some(1.0)
        );
    }
    tokio::time::sleep(10 * S).await;
    assert_eq!(
        tables.item(Role::Secondary).await.version,
        0,
        "nothing moved"
    );
    // A real outage: the http probe, which needs no credentials, still judges.
    emu.primary.kill();
    let (done, _) = tables
        .wait_item(Role::Secondary, 30 * S, |i| i.state == AppState::Failover)
        .await;
    assert_eq!(done.version, 1);
}

/// Item 3 with real processes: the leader of three is reloaded (SIGHUP) to `mode =
/// "manual"`, so it cannot act; it hands the lease to an instance that can, and when
/// the primary dies that one fails it over, within the documented bound. Before: the
/// leader said `blocked (manual_mode)`, the others `blocked (not_leader)`, and
/// nothing moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_reloaded_to_manual_hands_the_lease_to_one_that_can_act() {
    let mut emu = Emulator::start();
    let tables = emu.tables().await;
    let names = ["mon-a", "mon-b", "mon-c"];
    let primary = emu.primary.url();
    let monitors: Vec<Monitor> = names
        .iter()
        .map(|n| Monitor::start(&cooperating_config(&emu, n, &names, &primary, "")))
        .collect();
    let mut leader = None;
    for _ in 0..150 {
        for (i, m) in monitors.iter().enumerate() {
            if m.status().await["is_leader"] == true {
                leader = Some(i);
            }
        }
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leader = leader.expect("a leader");
    let manual = cooperating_config(&emu, names[leader], &names, &primary, "mode = \"manual\"");
    std::fs::write(&monitors[leader].config, manual).unwrap();
    monitors[leader].signal("HUP");
    monitors[leader]
        .wait_status(10 * S, "manual, and no longer the leader", |s| {
            s["mode"] == "manual" && s["is_leader"] == false
        })
        .await;
    let settings = failover_config::parse(
        &cooperating_config(&emu, names[0], &names, &primary, ""),
        Vec::new(),
    )
    .unwrap();
    // The documented bound, and a second for the kill and the reads of this test.
    let bound = failover_daemon::failover_bound(&settings) + S;
    emu.primary.kill();
    let (done, _) = tables
        .wait_item(Role::Secondary, bound, |i| i.state == AppState::Failover)
        .await;
    assert_eq!(done.version, 1);
    assert_ne!(done.updated_by.as_deref(), Some(names[leader]));
}

/// Item 5g: two processes with one instance id (a rolling deployment on ECS) each
/// write their own S3 canary objects: neither deletes the other's between its put
/// and its get. The test lists the keys the two probes wrote in the versioned bucket
/// (every key ever written stays as a version) without computing them itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_one_instance_id_write_their_own_s3_canaries() {
    use failover_daemon::probe::{Probe, Prober, http_client};
    let emu = Emulator::start();
    let text = emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\ninstance_id = \"mon-a\"\n\
         [[probes]]\nname = \"p-photos\"\nkind = \"s3\"\nregion = \"primary\"\ncheck = \"roundtrip\"\n"
    ));
    use_emulator_credentials();
    let settings = failover_config::parse(&text, Vec::new()).unwrap();
    let clients = failover_aws::RegionClients::load(&settings.regions.primary).await;
    let http = http_client();
    for process in ["task-1", "task-2"] {
        let probe = Prober::new(&settings.probes[0], &settings, &clients, &http, process);
        probe
            .check()
            .await
            .expect("a roundtrip on a healthy region");
    }
    let s3 = clients.s3(10 * S);
    let versions = s3
        .list_object_versions()
        .bucket(format!("{PROJECT}-primary"))
        .prefix("health/")
        .send()
        .await
        .unwrap();
    let mut keys: Vec<&str> = versions.versions().iter().filter_map(|v| v.key()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 2, "one canary object per process: {keys:?}");
}

/// Item 5i with a real process (the log is the subject here): a SIGHUP with a file
/// whose probe URL is refused and carries secrets logs the refusal without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_does_not_log_a_urls_secrets() {
    let emu = Emulator::start();
    let good = emu.config(&format!(
        "{FAST_MONITOR}\n[[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n"
    ));
    let mon = Monitor::start(&good);
    mon.wait_ready(20 * S).await;
    let bad = format!(
        "{good}\n[[probes]]\nname = \"p-api\"\nkind = \"http\"\nregion = \"primary\"\n\
         url = \"ftp://ops:hunter2@api.example.com/state?X-Amz-Signature=hunter2\"\n"
    );
    std::fs::write(&mon.config, bad).unwrap();
    mon.signal("HUP");
    mon.wait_metric(
        "failover_monitor_config_last_reload_successful",
        &[],
        0.0,
        10 * S,
    )
    .await;
    let log = mon.log_tail(200);
    assert!(log.contains("config reload failed"), "{log}");
    assert!(log.contains("probes[1].url"), "the key is named: {log}");
    assert!(!log.contains("hunter2"), "{log}");
}

/// A DynamoDB client of one emulated region signing with `key` (the emulator's
/// permission change refuses the calls of chosen keys).
async fn dynamodb_as(emu: &Emulator, role: Role, key: &str) -> aws_sdk_dynamodb::Client {
    let r = emu.region(role);
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(r.name))
        .endpoint_url(r.url())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            key, "test", None, None, "test",
        ))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&sdk)
}

/// What one readiness part found, as the status words it (`<part>: <why>`).
async fn reasons(
    part: std::sync::Arc<dyn failover_daemon::readiness::ReadinessPart>,
) -> Vec<String> {
    let report =
        failover_daemon::readiness::check_once(&[part], &failover_daemon::clock::SystemClock).await;
    report.readiness.reasons
}

/// The secondary's tables as the readiness check reads them on the emulator's
/// global tables: ready; a table whose replicas leave out the primary named as not
/// ready, and only for global tables; a table without replicas ready in either
/// mode; a deleted table named; a refused `DescribeTable` unknown, never not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readiness_reads_the_secondarys_tables_and_tells_a_refusal_apart() {
    use failover_aws::dynamo::Table;
    use failover_config::TablesMode;
    use failover_daemon::readiness::TablesPart;
    use std::sync::Arc;
    let emu = Emulator::start();
    let client = dynamodb_as(&emu, Role::Secondary, "test").await;
    let part = |client: &aws_sdk_dynamodb::Client, names: &[&str], mode, primary: &str| {
        Arc::new(TablesPart {
            tables: names
                .iter()
                .map(|n| Table::new(client.clone(), format!("{PROJECT}-{n}"), 5 * S))
                .collect(),
            mode,
            primary_region: primary.into(),
        })
    };
    let both = ["config", "store"];
    let global = part(&client, &both, TablesMode::Global, "us-east-1");
    assert_eq!(reasons(global).await, Vec::<String>::new(), "ready");
    // replicas in us-east-1 and ap-northeast-1, none in the primary named here
    let elsewhere = part(&client, &["config"], TablesMode::Global, "eu-west-1");
    assert_eq!(
        reasons(elsewhere).await,
        [format!(
            "tables: table {PROJECT}-config has no replica in eu-west-1"
        )]
    );
    let per_region = part(&client, &["config"], TablesMode::PerRegion, "eu-west-1");
    assert_eq!(reasons(per_region).await, Vec::<String>::new());
    client
        .create_table()
        .table_name(format!("{PROJECT}-plain"))
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .expect("a table without replicas");
    let plain = part(&client, &["plain"], TablesMode::Global, "us-east-1");
    assert_eq!(reasons(plain).await, Vec::<String>::new(), "no replicas");
    let denied = dynamodb_as(&emu, Role::Secondary, MONITOR_KEY).await;
    deny(&emu.secondary.url(), &[MONITOR_KEY]).await;
    let refused = reasons(part(&denied, &["config"], TablesMode::Global, "us-east-1")).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with(&format!(
            "unknown: tables: DescribeTable {PROJECT}-config: "
        )) && refused[0].contains("AccessDenied"),
        "{refused:?}"
    );
    client
        .delete_table()
        .table_name(format!("{PROJECT}-store"))
        .send()
        .await
        .expect("deleting the secondary's store table");
    let gone = part(&client, &both, TablesMode::Global, "us-east-1");
    assert_eq!(
        reasons(gone).await,
        [format!("tables: table {PROJECT}-store does not exist here")]
    );
}

/// The readiness's conditional write in the commit region on the emulator: written;
/// an item of another instance at its key unknown (not the region's fault); refused
/// permission unknown; a hung region not ready once the write times out, a region
/// that refuses connections not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readiness_write_in_the_commit_region_tells_the_region_from_the_monitor() {
    use failover_aws::dynamo::Table;
    use failover_daemon::clock::SystemClock;
    use failover_daemon::readiness::CommitWritePart;
    use std::sync::Arc;
    let mut emu = Emulator::start();
    let table =
        |client: aws_sdk_dynamodb::Client| Table::new(client, format!("{PROJECT}-config"), 2 * S);
    let client = dynamodb_as(&emu, Role::Secondary, "test").await;
    let part = |client: &aws_sdk_dynamodb::Client, instance: &str| {
        Arc::new(CommitWritePart {
            table: table(client.clone()),
            key: keys::ready(APP_ID, "a"),
            instance: instance.into(),
            clock: Arc::new(SystemClock),
        })
    };
    assert_eq!(reasons(part(&client, "a")).await, Vec::<String>::new());
    let written = client
        .get_item()
        .table_name(format!("{PROJECT}-config"))
        .key("appId", AttributeValue::S(keys::ready(APP_ID, "a")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        written.item().and_then(|i| i.get("instance")),
        Some(&AttributeValue::S("a".into()))
    );
    // the same key written by another instance (two processes with one id)
    assert_eq!(
        reasons(part(&client, "b")).await,
        [format!(
            "unknown: commit-write: PutItem {}: the item belongs to another writer",
            keys::ready(APP_ID, "a")
        )]
    );
    let denied = dynamodb_as(&emu, Role::Secondary, MONITOR_KEY).await;
    deny(&emu.secondary.url(), &[MONITOR_KEY]).await;
    let refused = reasons(part(&denied, "a")).await;
    assert!(
        refused.len() == 1
            && refused[0].starts_with("unknown: commit-write: PutItem ")
            && refused[0].contains("AccessDenied"),
        "{refused:?}"
    );
    deny(&emu.secondary.url(), &[]).await;
    emu.secondary.stop();
    let hung = reasons(part(&client, "a")).await;
    emu.secondary.resume();
    assert!(
        hung.len() == 1
            && hung[0].starts_with("commit-write: PutItem ")
            && hung[0].contains("timed out"),
        "{hung:?}"
    );
    emu.secondary.kill();
    let down = reasons(part(&client, "a")).await;
    assert!(
        down.len() == 1
            && down[0].starts_with("commit-write: PutItem ")
            && !down[0].contains("another writer"),
        "{down:?}"
    );
}
