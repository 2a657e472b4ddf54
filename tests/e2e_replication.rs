//! Replication between the two emulated regions, end to end with real processes: a
//! replicating pair of region processes (S3 replication rules, DynamoDB global
//! tables, a lag and a partition switch: deploy/local/REPLICATION.md) and real monitor
//! processes on global tables, the default of `stack.tables`.
//!
//! - what was written in the primary before it dies is in the secondary after the
//!   failover, once the lag has passed (the provisioned stack, the monitor failing
//!   over), and a primary provisioned again refills from the secondary;
//! - what was written during a replication partition is not, and the fence's canary
//!   says so in the audit record; with replication flowing the canary measures the lag;
//! - the monitor writes the commit region only (item, audit records, pause, lease,
//!   views); the primary replica lags behind through a partition, the daemon reports
//!   it as lagging (not diverged), and it converges once healed.
//!
//! The tests wait on the tables, the emulator's replication status and the monitor's
//! status, never on log wording; they assert on the audit record's structured
//! evidence, never on its reason text.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region as SdkRegion, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use failover_core::model::{AppState, Role, keys};
use serde_json::{Value, json};
use support::config::{FAST_MONITOR, PROBES_ALL_KINDS, cooperating_config};
use support::emulator::{Emulator, use_emulator_credentials};
use support::monitor::{Monitor, cli};
use support::proxy::Proxy;
use support::{APP_ID, PROJECT, TempDir, wait_for};

/// How long the suite waits for the regions to converge (the lag is 1 s by default).
const CONVERGE: Duration = Duration::from_secs(15);

/// An SDK config for one emulated region.
async fn sdk(emu: &Emulator, role: Role) -> SdkConfig {
    use_emulator_credentials();
    let r = emu.region(role);
    aws_config::defaults(BehaviorVersion::latest())
        .region(SdkRegion::new(r.name))
        .endpoint_url(r.url())
        .load()
        .await
}

async fn ddb(emu: &Emulator, role: Role) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk(emu, role).await)
}

async fn s3(emu: &Emulator, role: Role) -> aws_sdk_s3::Client {
    let c = sdk(emu, role).await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&c)
            .force_path_style(true)
            .build(),
    )
}

fn bucket(role: Role) -> String {
    format!("{PROJECT}-{role}")
}

fn store_table() -> String {
    format!("{PROJECT}-store")
}

/// A photo under `public/` in `role`'s bucket, as the page uploads it.
async fn put_photo(emu: &Emulator, role: Role, id: &str, bytes: &[u8]) {
    s3(emu, role)
        .await
        .put_object()
        .bucket(bucket(role))
        .key(format!("public/{id}"))
        .content_type("image/png")
        .body(bytes.to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put public/{id} in the {role} bucket: {e:?}"));
}

/// The photo `public/{id}` in `role`'s bucket, if there.
async fn photo(emu: &Emulator, role: Role, id: &str) -> Option<Vec<u8>> {
    let out = s3(emu, role)
        .await
        .get_object()
        .bucket(bucket(role))
        .key(format!("public/{id}"))
        .send()
        .await
        .ok()?;
    Some(out.body.collect().await.ok()?.into_bytes().to_vec())
}

/// A comment in `role`'s store table, as the store API writes it.
async fn put_comment(emu: &Emulator, role: Role, id: &str, photo_id: &str, message: &str) {
    let s = |v: &str| AttributeValue::S(v.into());
    ddb(emu, role)
        .await
        .put_item()
        .table_name(store_table())
        .item("commentId", s(id))
        .item("photoId", s(photo_id))
        .item("user", s("ana"))
        .item("message", s(message))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put comment {id} in the {role} store table: {e:?}"));
}

/// The message of comment `id` in `role`'s store table, if there.
async fn comment(emu: &Emulator, role: Role, id: &str) -> Option<String> {
    let out = ddb(emu, role)
        .await
        .get_item()
        .table_name(store_table())
        .key("commentId", AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("read comment {id} in the {role} store table: {e:?}"));
    out.item()?.get("message")?.as_s().ok().cloned()
}

/// Every item of `role`'s config table, by key (the config item, audit records, pause,
/// lease, views, canaries).
async fn config_items(
    emu: &Emulator,
    role: Role,
) -> BTreeMap<String, HashMap<String, AttributeValue>> {
    let out = ddb(emu, role)
        .await
        .scan()
        .table_name(format!("{PROJECT}-config"))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("scan the {role} config table: {e:?}"));
    out.items()
        .iter()
        .map(|i| {
            let key = i["appId"].as_s().expect("appId is a string").clone();
            (key, i.clone())
        })
        .collect()
}

/// Changes this region has recorded for its peer since it started: every write to a
/// replicated item or object made in it (not the ones replicated into it).
async fn recorded(emu: &Emulator, role: Role) -> u64 {
    let s = emu
        .replication_status(role)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s["outbound"]["recorded"]
        .as_u64()
        .expect("outbound.recorded")
}

/// The status field `regions.<role>.version` (Null when that copy was not read).
fn copy_version(status: &Value, role: &str) -> Value {
    status["regions"][role]["version"].clone()
}

const STACK: &str = "[stack]\ncognito_username = \"ops\"\ncognito_email = \"ops@example.com\"\n";

/// (4a) On the provisioned stack: a photo and its comments written in the primary,
/// once the lag has passed, are in the secondary; the primary dies, the monitor fails
/// over, and the page's read path (the config item, then the secondary's bucket and
/// store API) finds them all. The primary then comes back empty and is provisioned
/// again: replication refills its tables and the failover stays committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_before_the_primary_dies_is_read_from_the_secondary_after_failover() {
    let mut emu = Emulator::start_empty();
    let dir = TempDir::new("replication");
    let config = dir.0.join("monitor.toml");
    let text = emu.config(&format!(
        "{STACK}{FAST_MONITOR}\n[monitor]\ninstance_id = \"mon-a\"\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n{PROBES_ALL_KINDS}"
    ));
    std::fs::write(&config, &text).unwrap();
    let run = |args: &[&str]| {
        // In the scratch directory: `provision output` writes uiConfig.json there.
        let out = cli(&config)
            .args(args)
            .current_dir(&dir.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["provision", "apply"]);
    let out: Value = serde_json::from_str(&run(&["provision", "output"])).unwrap();
    assert!(
        out["tables"].as_str().unwrap().starts_with("global"),
        "{out}"
    );
    let mon = Monitor::start(&text);
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(30))
        .await;

    // A lag long enough to see that the copies are not there at once.
    emu.set_replication_lag(Duration::from_secs(3)).await;
    let up: Value = serde_json::from_str(&run(&["photo", "upload", "--json"])).unwrap();
    assert_eq!(up["bucket"], "photos-primary", "{up}");
    let photo_id = up["photo_id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for message in ["first light", "it's \"quoted\" and 日本語"] {
        let added: Value = serde_json::from_str(&run(&[
            "comments",
            "--json",
            "add",
            &photo_id,
            "--user",
            "ana",
            "--message",
            message,
        ]))
        .unwrap();
        assert_eq!(added["via"]["region"], "primary", "{added}");
        assert!(added["via"]["api_error"].is_null(), "{added}");
        ids.push(added["comment"]["commentId"].as_str().unwrap().to_owned());
    }
    let in_primary = photo(&emu, Role::Primary, &photo_id)
        .await
        .expect("the photo in the primary");
    assert_eq!(in_primary.len() as u64, up["bytes"].as_u64().unwrap());
    assert_eq!(
        comment(&emu, Role::Secondary, &ids[1]).await,
        None,
        "the last comment is in the secondary before the lag has passed"
    );

    // The lag passes: nothing is left to send. Then the primary dies.
    emu.wait_converged(CONVERGE).await;
    emu.primary.kill();
    let status = mon
        .wait_status(Duration::from_secs(15), "the monitor failed over", |s| {
            s["state"] == "failover" && s["regions"]["secondary"]["state"] == "failover"
        })
        .await;
    assert_eq!(status["version"], 1, "{status}");

    // The page's read path after the switch: the secondary's bucket and store API.
    let in_secondary = photo(&emu, Role::Secondary, &photo_id).await;
    assert!(
        in_secondary.as_ref() == Some(&in_primary),
        "the photo in the secondary's bucket: {:?} bytes, {} in the primary's",
        in_secondary.map(|b| b.len()),
        in_primary.len()
    );
    let listed: Value =
        serde_json::from_str(&run(&["comments", "--json", "list", &photo_id])).unwrap();
    assert_eq!(listed["via"]["region"], "secondary", "{listed}");
    assert!(listed["via"]["api_error"].is_null(), "{listed}");
    let mut got: Vec<(&str, &str)> = listed["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["commentId"].as_str().unwrap(),
                c["message"].as_str().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (ids[0].as_str(), "first light"),
        (ids[1].as_str(), "it's \"quoted\" and 日本語"),
    ];
    want.sort();
    assert_eq!(got, want, "{listed}");

    // The primary comes back empty and the stack is provisioned there again (the
    // demo's restart-primary): its tables rejoin the replicas and are filled from the
    // secondary; the failover stays what the commit region holds.
    emu.primary.restart();
    run(&["provision", "apply"]);
    emu.wait_converged(CONVERGE).await;
    let tables = emu.tables().await;
    let (s, p) = (
        tables.item(Role::Secondary).await,
        tables.item(Role::Primary).await,
    );
    assert_eq!((s.state, s.version), (AppState::Failover, 1), "{s:?}");
    assert_eq!(p, s);
    assert_eq!(
        comment(&emu, Role::Primary, &ids[0]).await.as_deref(),
        Some("first light")
    );
}

/// The monitor of the fence tests: the primary's API (through `proxy`) and alarm fail
/// on the test's command while its DynamoDB answers, so that the fence's canary can
/// be written there; two of three primary probes down is down (majority).
fn fence_config(emu: &Emulator, proxy: &Proxy, max_fence: &str) -> String {
    emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\ninstance_id = \"mon-fence\"\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n\
         fence_for = \"1s\"\nmax_fence = \"{max_fence}\"\n\
         [[probes]]\nname = \"p-api\"\nkind = \"http\"\nregion = \"primary\"\nurl = \"{}/\"\nexpect_body = \"ListAllMyBucketsResult\"\n\
         [[probes]]\nname = \"p-alarm\"\nkind = \"cloudwatch_alarm\"\nregion = \"primary\"\nalarms = [\"photos-primary-api-5xx\"]\n\
         [[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"s-config\"\nkind = \"dynamodb\"\nregion = \"secondary\"\ncheck = \"describe_table\"\n\
         [[probes]]\nname = \"s-photos\"\nkind = \"s3\"\nregion = \"secondary\"\n",
        proxy.url()
    ))
}

/// The primary's API stops answering (the proxy is cut) and its alarm fires.
async fn primary_fails_its_probes(emu: &Emulator, proxy: &Proxy) {
    proxy.cut();
    aws_sdk_cloudwatch::Client::new(&sdk(emu, Role::Primary).await)
        .set_alarm_state()
        .alarm_name("photos-primary-api-5xx")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("the test's outage")
        .send()
        .await
        .expect("setting the alarm");
}

/// (4b) A photo and a comment written in the primary during a replication partition
/// are not in the secondary after the failover; the fence's canary did not arrive
/// either, and the failover's audit record says so in its evidence (`drained: false`,
/// no lag). Written before the partition, they are there. Healed, the late writes
/// arrive: a partition delays, only a region's death loses (see the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_partition_is_missing_after_failover_and_the_fence_says_so() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let proxy = Proxy::start(emu.primary.port).await;
    let mon = Monitor::start(&fence_config(&emu, &proxy, "5s"));
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(30))
        .await;

    put_photo(&emu, Role::Primary, "before", b"\x89PNG before").await;
    put_comment(&emu, Role::Primary, "c-before", "before", "written before").await;
    emu.wait_converged(CONVERGE).await;
    emu.partition_replication().await;
    put_photo(&emu, Role::Primary, "during", b"\x89PNG during").await;
    put_comment(&emu, Role::Primary, "c-during", "during", "written during").await;

    primary_fails_its_probes(&emu, &proxy).await;
    let (item, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(30), |i| {
            i.state == AppState::Failover
        })
        .await;
    assert_eq!(item.version, 2, "active -> fenced -> failover: {item:?}");
    let records = tables.audits(Role::Secondary, 1..=2).await;
    let moves: Vec<_> = records.iter().map(|r| (r.version, r.from, r.to)).collect();
    assert_eq!(
        moves,
        [
            (2, AppState::Fenced, AppState::Failover),
            (1, AppState::Active, AppState::Fenced)
        ]
    );
    let repl = &records[0].evidence["replication"];
    assert_eq!(repl["drained"], json!(false), "{}", records[0].evidence);
    assert_eq!(repl["lag_ms"], Value::Null, "{repl}");
    // The canary was written in the primary and never reached the secondary.
    assert!(tables.canary(Role::Primary, "mon-fence").await);
    assert!(!tables.canary(Role::Secondary, "mon-fence").await);

    // What the secondary serves after the failover.
    assert_eq!(
        photo(&emu, Role::Secondary, "before").await.as_deref(),
        Some(&b"\x89PNG before"[..])
    );
    assert_eq!(
        comment(&emu, Role::Secondary, "c-before").await.as_deref(),
        Some("written before")
    );
    assert_eq!(photo(&emu, Role::Secondary, "during").await, None);
    assert_eq!(comment(&emu, Role::Secondary, "c-during").await, None);
    // Still in the primary, which lives.
    assert!(photo(&emu, Role::Primary, "during").await.is_some());
    assert!(comment(&emu, Role::Primary, "c-during").await.is_some());

    emu.heal_replication().await;
    emu.wait_converged(CONVERGE).await;
    assert_eq!(
        comment(&emu, Role::Secondary, "c-during").await.as_deref(),
        Some("written during")
    );
    assert!(photo(&emu, Role::Secondary, "during").await.is_some());
    tables
        .wait_item(Role::Primary, CONVERGE, |i| i.version == 2)
        .await;
}

/// (4b, the other way) With replication flowing, the fence's canary arrives after the
/// emulator's lag: the failover comes once it has (before max_fence), its evidence
/// says `drained: true` with the lag measured, and a write made just before the
/// fence is in the secondary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replication_flowing_the_fence_measures_the_lag_and_drains() {
    let emu = Emulator::start();
    let tables = emu.tables().await;
    let proxy = Proxy::start(emu.primary.port).await;
    let mon = Monitor::start(&fence_config(&emu, &proxy, "20s"));
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(30))
        .await;
    let lag = emu.replication_status(Role::Primary).await.unwrap()["lag_seconds"]
        .as_f64()
        .unwrap();

    put_comment(&emu, Role::Primary, "c-last", "last", "the last write").await;
    primary_fails_its_probes(&emu, &proxy).await;
    let (fenced, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(20), |i| {
            i.state != AppState::Active
        })
        .await;
    let fenced_at = tokio::time::Instant::now();
    assert_eq!((fenced.state, fenced.version), (AppState::Fenced, 1));
    let (item, _) = tables
        .wait_item(Role::Secondary, Duration::from_secs(20), |i| {
            i.state == AppState::Failover
        })
        .await;
    assert!(
        fenced_at.elapsed() < Duration::from_secs(15),
        "the failover waited for max_fence"
    );
    assert_eq!(item.version, 2);
    let record = &tables.audits(Role::Secondary, 2..=2).await[0];
    let repl = &record.evidence["replication"];
    assert_eq!(repl["drained"], json!(true), "{}", record.evidence);
    let lag_ms = repl["lag_ms"].as_u64().expect("a measured lag");
    assert!(
        lag_ms as f64 >= lag * 1000.0 && lag_ms < 10_000,
        "the canary took {lag_ms} ms with a replication lag of {lag} s"
    );
    assert!(tables.canary(Role::Secondary, "mon-fence").await);
    assert_eq!(
        comment(&emu, Role::Secondary, "c-last").await.as_deref(),
        Some("the last write")
    );
}

/// (4c) The monitor's global-table rules on the emulator: through a replication
/// partition, a pause, a resume and a failover of a coordinating instance (lease and
/// views renewed all along) write the commit region only. The primary region records
/// no change for replication meanwhile; its replica stays behind (item, audit record,
/// pause, lease) and the daemon reports it as lagging, not diverged. Healed, it
/// converges: every item of the config table equal in both regions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_writes_the_commit_region_only_and_the_primary_replica_converges() {
    let emu = Emulator::start();
    let cfg = cooperating_config(&emu, "mon-a", &["mon-a"], &emu.primary.url(), "");
    let mut mon = Monitor::start(&cfg);
    mon.wait_status(Duration::from_secs(30), "leading, primary healthy", |s| {
        s["is_leader"] == true && s["policy"] == "hold: primary healthy"
    })
    .await;
    let (lease, view) = (keys::lease(APP_ID), keys::view(APP_ID, "mon-a"));
    // (The lease is renewed every 300 ms, faster than the lag: while the monitor
    // runs, the regions are never converged.)
    wait_for(CONVERGE, "the lease and the view replicated", async || {
        let items = config_items(&emu, Role::Primary).await;
        (items.contains_key(&lease) && items.contains_key(&view))
            .then_some(())
            .ok_or_else(|| format!("{:?}", items.keys()))
    })
    .await;

    emu.partition_replication().await;
    // A batch already on its way when the partition began is refused or applied by
    // now: from here on the primary replica holds still.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = config_items(&emu, Role::Primary).await;
    let recorded_primary = recorded(&emu, Role::Primary).await;
    let recorded_secondary = recorded(&emu, Role::Secondary).await;
    let body = r#"{"reason": "replication rules", "caller": "ops"}"#;
    for path in ["/v1/pause", "/v1/resume", "/v1/failover"] {
        let (code, resp, _) = mon.post(path, body).await;
        assert!(code == 200 || code == 202, "{path}: {code} {resp}");
    }
    // The daemon reads both copies: the commit region at version 1, the primary
    // replica still at 0; lagging is not a divergence.
    let status = mon
        .wait_status(
            Duration::from_secs(10),
            "the primary replica lagging",
            |s| copy_version(s, "secondary") == 1 && copy_version(s, "primary") == 0,
        )
        .await;
    assert_eq!(status["divergence"], Value::Null, "{status}");
    let metrics = mon.metrics().await;
    assert_eq!(
        metrics.value("failover_monitor_region_divergence", &[]),
        Some(0.0)
    );
    // Lease renewals and views go on meanwhile (renew_every 300 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(
        recorded(&emu, Role::Primary).await,
        recorded_primary,
        "something was written in the primary's replicated tables"
    );
    assert!(recorded(&emu, Role::Secondary).await > recorded_secondary);
    let primary = config_items(&emu, Role::Primary).await;
    let secondary = config_items(&emu, Role::Secondary).await;
    let item = |items: &BTreeMap<_, HashMap<String, AttributeValue>>| {
        let i = &items[APP_ID];
        (
            i["state"].as_s().unwrap().clone(),
            i.get("version")
                .map_or("0".to_owned(), |v| v.as_n().unwrap().clone()),
        )
    };
    assert_eq!(item(&secondary), ("failover".into(), "1".into()));
    assert_eq!(item(&primary), ("active".into(), "0".into()));
    let (audit, pause) = (keys::audit(APP_ID, 1), keys::pause(APP_ID));
    for key in [&audit, &pause] {
        assert!(secondary.contains_key(key), "{key} in the secondary");
        assert!(!primary.contains_key(key), "{key} in the primary");
    }
    assert_ne!(
        primary[&lease], secondary[&lease],
        "the lease renewed in the secondary only"
    );
    assert_eq!(primary, before, "the primary replica did not move");

    emu.heal_replication().await;
    let status = mon
        .wait_status(CONVERGE, "the primary replica caught up", |s| {
            copy_version(s, "primary") == 1
        })
        .await;
    assert_eq!(status["divergence"], Value::Null, "{status}");
    // No more writes (the lease, the views): then the replicas must be equal.
    assert_eq!(mon.terminate().await, Some(0));
    emu.wait_converged(CONVERGE).await;
    let primary = config_items(&emu, Role::Primary).await;
    let secondary = config_items(&emu, Role::Secondary).await;
    assert_eq!(primary, secondary);
    assert!(primary.contains_key(&audit) && primary.contains_key(&pause));
    assert_eq!(item(&primary), ("failover".into(), "1".into()));
}
