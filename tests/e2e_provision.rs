#![cfg(feature = "provision")]
//! `failover-monitor provision` against the two-region emulator: apply on empty,
//! apply again (no changes), drift repaired, destroy leaving nothing (checked by
//! listing every resource type in both regions with the SDK, not with the code
//! under test), a region dying mid-apply, foreign resources refused, bad input
//! refused before any call, and the operations (photo upload, comments) on the
//! provisioned stack.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region as SdkRegion, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use failover_config::TablesMode;
use failover_core::model::Role;
use serde_json::Value;
use support::admin::get_json;
use support::emulator::{Emulator, Region};
use support::monitor::{Monitor, cli};
use support::{APP_ID, PROJECT, TempDir, free_port};

const STACK: &str = r#"
[admin]
listen = "127.0.0.1:9"
[stack]
cognito_username = "ops"
cognito_email = "ops@example.com"
"#;

/// A config file for `emu` with `[stack]` (and `extra` appended).
fn config_file(emu: &Emulator, dir: &TempDir, extra: &str) -> PathBuf {
    let path = dir.0.join("monitor.toml");
    std::fs::write(&path, emu.config(&format!("{STACK}{extra}"))).unwrap();
    path
}

fn run(config: &Path, args: &[&str]) -> Output {
    cli(config)
        .args(args)
        .current_dir(config.parent().unwrap())
        .stdin(Stdio::null())
        .output()
        .expect("running failover-monitor")
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = run(config, args);
    assert!(
        out.status.success(),
        "{args:?} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The plan's lines (`--json`): (action, kind, name, region) of each resource, and
/// the summary's change count.
fn plan(config: &Path) -> (Vec<Value>, u64) {
    let text = ok(config, &["provision", "--json", "plan"]);
    let mut steps = Vec::new();
    let mut changes = None;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["event"] == "summary" {
            changes = v["changes"].as_u64();
        } else {
            steps.push(v);
        }
    }
    (steps, changes.expect("the plan ends with a summary"))
}

async fn sdk(emu: &Emulator, role: Role) -> SdkConfig {
    let r = emu.region(role);
    aws_config::defaults(BehaviorVersion::latest())
        .region(SdkRegion::new(r.name))
        .endpoint_url(r.url())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

/// Every resource of every type the stack uses, in both regions, as
/// `type:region:name`, listed with the SDK directly.
async fn inventory(emu: &Emulator) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for role in Role::BOTH {
        let c = sdk(emu, role).await;
        let ddb = aws_sdk_dynamodb::Client::new(&c);
        for t in ddb.list_tables().send().await.unwrap().table_names() {
            out.insert(format!("table:{role}:{t}"));
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&c)
                .force_path_style(true)
                .build(),
        );
        for b in s3.list_buckets().send().await.unwrap().buckets() {
            out.insert(format!("bucket:{role}:{}", b.name().unwrap()));
        }
        let gw = aws_sdk_apigateway::Client::new(&c);
        for a in gw.get_rest_apis().send().await.unwrap().items() {
            out.insert(format!("api:{role}:{}", a.name().unwrap()));
        }
        let cw = aws_sdk_cloudwatch::Client::new(&c);
        for a in cw.describe_alarms().send().await.unwrap().metric_alarms() {
            out.insert(format!("alarm:{role}:{}", a.alarm_name().unwrap()));
        }
        let idp = aws_sdk_cognitoidentityprovider::Client::new(&c);
        let pools = idp.list_user_pools().max_results(60).send().await.unwrap();
        for p in pools.user_pools() {
            out.insert(format!("user-pool:{role}:{}", p.name().unwrap()));
        }
        let ci = aws_sdk_cognitoidentity::Client::new(&c);
        let ids = ci
            .list_identity_pools()
            .max_results(60)
            .send()
            .await
            .unwrap();
        for p in ids.identity_pools() {
            out.insert(format!(
                "identity-pool:{role}:{}",
                p.identity_pool_name().unwrap()
            ));
        }
        let iam = aws_sdk_iam::Client::new(&c);
        for r in iam.list_roles().send().await.unwrap().roles() {
            out.insert(format!("role:{role}:{}", r.role_name()));
        }
        let cf = aws_sdk_cloudfront::Client::new(&c);
        let dists = cf.list_distributions().send().await.unwrap();
        for d in dists
            .distribution_list()
            .map(|l| l.items())
            .unwrap_or_default()
        {
            out.insert(format!("distribution:{role}:{}", d.comment()));
        }
        let oacs = cf.list_origin_access_controls().send().await.unwrap();
        for o in oacs
            .origin_access_control_list()
            .map(|l| l.items())
            .unwrap_or_default()
        {
            out.insert(format!("oac:{role}:{}", o.name()));
        }
        let r53 = aws_sdk_route53::Client::new(&c);
        for h in r53
            .list_health_checks()
            .send()
            .await
            .unwrap()
            .health_checks()
        {
            out.insert(format!("health-check:{role}:{}", h.id()));
        }
        for z in r53.list_hosted_zones().send().await.unwrap().hosted_zones() {
            let sets = r53
                .list_resource_record_sets()
                .hosted_zone_id(z.id())
                .send()
                .await
                .unwrap();
            for r in sets.resource_record_sets() {
                if !matches!(r.r#type().as_str(), "NS" | "SOA") {
                    out.insert(format!(
                        "record:{role}:{}:{}",
                        r.name(),
                        r.set_identifier().unwrap_or("")
                    ));
                }
            }
        }
    }
    out
}

async fn create_zone(emu: &Emulator) -> String {
    let c = sdk(emu, Role::Primary).await;
    let r53 = aws_sdk_route53::Client::new(&c);
    let z = r53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference("test-zone")
        .send()
        .await
        .unwrap();
    z.hosted_zone()
        .unwrap()
        .id()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

async fn config_item(
    emu: &Emulator,
    role: Role,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    let c = sdk(emu, role).await;
    aws_sdk_dynamodb::Client::new(&c)
        .get_item()
        .table_name(format!("{PROJECT}-config"))
        .key("appId", AttributeValue::S(APP_ID.into()))
        .send()
        .await
        .ok()
        .and_then(|o| o.item)
}

fn count(inv: &BTreeSet<String>, prefix: &str) -> usize {
    inv.iter().filter(|x| x.starts_with(prefix)).count()
}

/// On a replicating pair, with global tables (the default of `stack.tables`).
#[tokio::test(flavor = "multi_thread")]
async fn apply_converges_a_second_apply_changes_nothing_and_destroy_leaves_nothing() {
    apply_converges_and_destroy_leaves_nothing(Emulator::start_empty()).await;
}

/// With `stack.tables = "per-region"`, on regions that do not replicate.
#[tokio::test(flavor = "multi_thread")]
async fn per_region_apply_converges_and_destroy_leaves_nothing() {
    apply_converges_and_destroy_leaves_nothing(Emulator::start_empty_per_region()).await;
}

async fn apply_converges_and_destroy_leaves_nothing(emu: Emulator) {
    let global = emu.tables_mode() == TablesMode::Global;
    let dir = TempDir::new("provision");
    let zone = create_zone(&emu).await;
    let config = config_file(
        &emu,
        &dir,
        &format!("route53_zone_id = \"{zone}\"\ndomain = \"photos.example.com\"\n"),
    );
    let before = inventory(&emu).await;
    assert!(before.is_empty(), "the emulator starts empty: {before:?}");

    let (steps, changes) = plan(&config);
    assert_eq!(changes as usize, steps.len());
    assert!(steps.iter().all(|s| s["action"] == "create"), "{steps:#?}");

    let text = ok(&config, &["provision", "apply"]);
    let created = text.lines().filter(|l| l.contains("... created")).count();
    assert_eq!(
        created,
        steps.len(),
        "one progress line per resource:\n{text}"
    );
    assert!(
        text.contains(&format!("apply complete: {created} created, 0 updated")),
        "{text}"
    );

    let inv = inventory(&emu).await;
    for role in ["primary", "secondary"] {
        for t in ["photos-config", "photos-store"] {
            assert!(
                inv.contains(&format!("table:{role}:{t}")),
                "{t} in {role}: {inv:#?}"
            );
        }
        assert!(inv.contains(&format!("bucket:{role}:photos-{role}")));
        for api in ["config", "store"] {
            assert!(
                inv.contains(&format!("api:{role}:photos-{api}-{role}")),
                "{inv:#?}"
            );
        }
        assert_eq!(
            count(&inv, &format!("alarm:{role}:photos-{role}-")),
            5,
            "{inv:#?}"
        );
    }
    assert!(inv.contains("bucket:primary:photos-website"));
    assert!(inv.contains("user-pool:primary:photos"));
    assert!(inv.contains("identity-pool:primary:photos"));
    assert!(inv.contains("distribution:primary:photos-website"));
    assert!(inv.contains("oac:primary:photos-website"));
    assert_eq!(count(&inv, "role:primary:photos-"), 5, "{inv:#?}");
    assert_eq!(count(&inv, "health-check:"), 2, "{inv:#?}");
    assert!(inv.contains("record:primary:photos.example.com.:photos-primary"));
    assert!(inv.contains("record:primary:photos.example.com.:photos-secondary"));

    // The config item is seeded, versioned, in both regions: in each table (per
    // region), or in the global table, replicated to the secondary's replica.
    if global {
        emu.wait_converged(Duration::from_secs(15)).await;
    }
    for role in Role::BOTH {
        let item = config_item(&emu, role).await.expect("seeded item");
        assert_eq!(item["state"].as_s().unwrap(), "active");
        assert_eq!(item["version"].as_n().unwrap(), "0");
    }

    // The state API's method carries the original request template, deployed to prod.
    let c = sdk(&emu, Role::Primary).await;
    let gw = aws_sdk_apigateway::Client::new(&c);
    let apis = gw.get_rest_apis().send().await.unwrap();
    let api = apis
        .items()
        .iter()
        .find(|a| a.name() == Some("photos-config-primary"))
        .unwrap();
    let res = gw
        .get_resources()
        .rest_api_id(api.id().unwrap())
        .send()
        .await
        .unwrap();
    let state = res
        .items()
        .iter()
        .find(|r| r.path() == Some("/state/{appId}"))
        .unwrap();
    let integ = gw
        .get_integration()
        .rest_api_id(api.id().unwrap())
        .resource_id(state.id().unwrap())
        .http_method("GET")
        .send()
        .await
        .unwrap();
    let template = &integ.request_templates().unwrap()["application/json"];
    assert!(
        template.contains("\"TableName\": \"photos-config\""),
        "{template}"
    );
    assert!(template.contains("appId = :v1"), "{template}");
    assert!(integ.uri().unwrap().ends_with(":dynamodb:action/Query"));
    let stage = gw
        .get_stage()
        .rest_api_id(api.id().unwrap())
        .stage_name("prod")
        .send()
        .await;
    assert!(stage.is_ok(), "stage prod: {stage:?}");

    // A second apply changes nothing, and says so.
    let (_, changes) = plan(&config);
    assert_eq!(changes, 0);
    let text = ok(&config, &["provision", "apply"]);
    assert!(
        text.contains("apply complete: 0 created, 0 updated, 0 deleted"),
        "{text}"
    );
    assert_eq!(
        inventory(&emu).await,
        inv,
        "the second apply created nothing"
    );

    // Outputs and uiConfig.json name the provisioned resources.
    let out: Value = serde_json::from_str(&ok(&config, &["provision", "output"])).unwrap();
    let ui: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("uiConfig.json")).unwrap())
            .unwrap();
    assert_eq!(ui, out["uiConfig"]);
    let pools = aws_sdk_cognitoidentityprovider::Client::new(&c)
        .list_user_pools()
        .max_results(10)
        .send()
        .await
        .unwrap();
    assert_eq!(ui["userPoolId"], pools.user_pools()[0].id().unwrap());
    assert_eq!(ui["uiRegion"], "us-east-1");
    assert_eq!(ui["secondary"]["region"], "ap-northeast-1");
    assert_eq!(ui["primary"]["objectStoreBucketName"], "photos-primary");
    // Against an emulator the API URLs are in the form its execution layer answers,
    // and the page is told each region's endpoint.
    assert_eq!(
        ui["primary"]["stateUrl"],
        format!(
            "{}/restapis/{}/prod/_user_request_/state/{APP_ID}",
            emu.primary.url(),
            api.id().unwrap()
        )
    );
    assert_eq!(ui["cognitoEndpoint"], emu.primary.url());
    assert_eq!(ui["primary"]["endpoint"], emu.primary.url());
    assert_eq!(ui["secondary"]["endpoint"], emu.secondary.url());
    let photos_api = ui["secondary"]["photosApi"].as_str().unwrap();
    assert!(
        photos_api.starts_with(&format!("{}/restapis/", emu.secondary.url()))
            && photos_api.ends_with("/prod/_user_request_"),
        "{photos_api}"
    );
    let tables = out["tables"].as_str().unwrap();
    assert!(
        tables.starts_with(if global { "global" } else { "per-region" }),
        "{tables}"
    );
    assert_eq!(out["missing"], serde_json::json!([]));
    let cdn = ok(&config, &["provision", "cdn-url"]);
    assert!(
        cdn.trim().starts_with("https://") && cdn.contains(".cloudfront.net"),
        "{cdn}"
    );

    // Destroy: every resource of every type goes, the zone itself (not ours) stays.
    let text = ok(&config, &["provision", "destroy", "--yes"]);
    assert!(text.contains(&format!("{created} deleted")), "{text}");
    let after = inventory(&emu).await;
    assert!(after.is_empty(), "left behind: {after:#?}");
    let zones = aws_sdk_route53::Client::new(&c)
        .list_hosted_zones()
        .send()
        .await
        .unwrap();
    assert_eq!(
        zones.hosted_zones().len(),
        1,
        "the zone was not the stack's"
    );
}

/// With global tables: the secondary's replica deleted is a missing replica of the
/// primary's table.
#[tokio::test(flavor = "multi_thread")]
async fn drift_is_planned_and_repaired() {
    drift_planned_and_repaired(Emulator::start_empty()).await;
}

/// With one table per region: the secondary's table deleted, its item with it.
#[tokio::test(flavor = "multi_thread")]
async fn per_region_drift_is_planned_and_repaired() {
    drift_planned_and_repaired(Emulator::start_empty_per_region()).await;
}

async fn drift_planned_and_repaired(emu: Emulator) {
    let global = emu.tables_mode() == TablesMode::Global;
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    ok(&config, &["provision", "apply"]);

    // By hand: a table deleted, a template edited.
    let sec = sdk(&emu, Role::Secondary).await;
    aws_sdk_dynamodb::Client::new(&sec)
        .delete_table()
        .table_name("photos-config")
        .send()
        .await
        .unwrap();
    if global {
        // The primary's table learns that its replica is gone by replication.
        let ddb = aws_sdk_dynamodb::Client::new(&sdk(&emu, Role::Primary).await);
        support::wait_for(
            Duration::from_secs(15),
            "the primary's table without its replica",
            async || {
                let t = ddb
                    .describe_table()
                    .table_name("photos-config")
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let replicas = t.table().map(|t| t.replicas().len()).unwrap_or(0);
                (replicas == 0)
                    .then_some(())
                    .ok_or(format!("{replicas} replica(s)"))
            },
        )
        .await;
    }
    let pri = sdk(&emu, Role::Primary).await;
    let gw = aws_sdk_apigateway::Client::new(&pri);
    let apis = gw.get_rest_apis().send().await.unwrap();
    let api = apis
        .items()
        .iter()
        .find(|a| a.name() == Some("photos-store-primary"))
        .unwrap();
    let id = api.id().unwrap();
    let res = gw.get_resources().rest_api_id(id).send().await.unwrap();
    let comments = res
        .items()
        .iter()
        .find(|r| r.path() == Some("/comments/{photoId}"))
        .unwrap();
    gw.put_integration()
        .rest_api_id(id)
        .resource_id(comments.id().unwrap())
        .http_method("POST")
        .r#type(aws_sdk_apigateway::types::IntegrationType::Mock)
        .request_templates("application/json", "{\"statusCode\": 200}")
        .send()
        .await
        .unwrap();

    let (steps, changes) = plan(&config);
    let table = |region: &str| {
        steps
            .iter()
            .find(|s| {
                s["kind"] == "dynamodb-table"
                    && s["region"] == region
                    && s["name"] == "photos-config"
            })
            .cloned()
    };
    assert_eq!(changes, 3, "{steps:#?}");
    if global {
        let table = table("primary").unwrap();
        assert_eq!(table["action"], "update", "{table}");
        assert!(
            table["detail"]
                .to_string()
                .contains("no replica in ap-northeast-1"),
            "{table}"
        );
    } else {
        assert_eq!(table("secondary").unwrap()["action"], "create");
    }
    // The item, in the commit region's table, went with it: seeded again (with global
    // tables, unless the new replica brings it first: it does, from the primary's).
    let item = steps
        .iter()
        .find(|s| s["kind"] == "config-item" && s["region"] == "secondary")
        .unwrap();
    assert_eq!(item["action"], "create");
    let api_step = steps
        .iter()
        .find(|s| s["name"] == "photos-store-primary")
        .unwrap();
    assert_eq!(api_step["action"], "update");
    assert!(
        api_step["detail"][0]
            .as_str()
            .unwrap()
            .contains("POST /comments/{photoId} integration differs"),
        "{api_step}"
    );

    let text = ok(&config, &["provision", "apply"]);
    assert!(
        text.contains("update   rest-api photos-store-primary (primary) ... updated"),
        "{text}"
    );
    let (_, changes) = plan(&config);
    assert_eq!(changes, 0, "apply repaired the drift");
    if global {
        // The new replica is filled from the primary's table.
        emu.wait_converged(Duration::from_secs(15)).await;
    }
    let item = config_item(&emu, Role::Secondary)
        .await
        .expect("item seeded again");
    assert_eq!(item["state"].as_s().unwrap(), "active");
    // The repaired API was redeployed: the stage serves a deployment carrying the
    // definition's hash again.
    let stage = gw
        .get_stage()
        .rest_api_id(id)
        .stage_name("prod")
        .send()
        .await
        .unwrap();
    let dep = gw
        .get_deployment()
        .rest_api_id(id)
        .deployment_id(stage.deployment_id().unwrap())
        .send()
        .await
        .unwrap();
    assert!(
        dep.description()
            .unwrap()
            .starts_with("failover-monitor definition ")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_resources_are_refused_never_adopted_or_deleted() {
    let emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    // Someone else's bucket and table, with the stack's names.
    let sec = sdk(&emu, Role::Secondary).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sec)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("photos-secondary")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::ApNortheast1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let iam = aws_sdk_iam::Client::new(&sdk(&emu, Role::Primary).await);
    iam.create_role()
        .role_name("photos-monitor")
        .assume_role_policy_document("{\"Version\":\"2012-10-17\",\"Statement\":[]}")
        .send()
        .await
        .unwrap();
    let before = inventory(&emu).await;

    let (steps, _) = plan(&config);
    let refused: Vec<_> = steps.iter().filter(|s| s["action"] == "refuse").collect();
    assert_eq!(refused.len(), 2, "{steps:#?}");
    assert!(refused.iter().any(|s| s["name"] == "photos-secondary"));
    assert!(refused.iter().any(|s| s["name"] == "photos-monitor"));

    let out = run(&config, &["provision", "apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to touch resources this stack did not create"),
        "{err}"
    );
    assert!(
        err.contains("s3-bucket photos-secondary (secondary)"),
        "{err}"
    );
    assert!(err.contains("iam-role photos-monitor (global)"), "{err}");
    assert_eq!(inventory(&emu).await, before, "nothing was created");

    let text = ok(&config, &["provision", "destroy", "--yes"]);
    assert!(text.contains("left alone"), "{text}");
    assert_eq!(inventory(&emu).await, before, "nothing foreign was deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_region_dying_mid_apply_is_named_and_a_rerun_completes() {
    let mut emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    let mut child = cli(&config)
        .args(["provision", "apply"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the secondary's tables exist, the primary region dies.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("(secondary) ... created"))
    {
        seen.push(lines.next().expect("progress line").unwrap());
    }
    emu.primary.kill();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{seen:?} {rest:?} {err}");
    let failed = rest
        .iter()
        .find(|l| l.contains("... failed"))
        .expect("a failed line");
    assert!(
        failed.contains("(primary)"),
        "the primary's resource failed: {failed}"
    );
    let name = failed
        .split(" ... ")
        .next()
        .unwrap()
        .trim_start_matches("create")
        .trim();
    assert!(err.contains(name), "the error names {name}: {err}");
    assert!(
        err.contains("failed; the resources before it are in place, re-run apply"),
        "{err}"
    );
    assert!(err.contains("connection"), "the cause is named: {err}");

    // The region comes back (empty: the emulator lost its data); a re-run completes.
    emu.primary.restart();
    let text = ok(&config, &["provision", "apply"]);
    assert!(text.contains("apply complete"), "{text}");
    assert!(
        text.contains("up to date"),
        "the secondary's resources were kept: {text}"
    );
    let (_, changes) = plan(&config);
    assert_eq!(changes, 0);
}

/// Every CloudFront distribution in both emulators, as `(region, id)` (not keyed by
/// comment: two of the same name count twice).
async fn distributions(emu: &Emulator) -> Vec<(Role, String)> {
    let mut out = Vec::new();
    for role in Role::BOTH {
        let cf = aws_sdk_cloudfront::Client::new(&sdk(emu, role).await);
        let list = cf.list_distributions().send().await.unwrap();
        for d in list
            .distribution_list()
            .map(|l| l.items())
            .unwrap_or_default()
        {
            out.push((role, d.id().to_string()));
        }
    }
    out
}

/// The deployment each REST API's `prod` stage serves in one region, by API name.
async fn deployments(emu: &Emulator, role: Role) -> BTreeSet<(String, String)> {
    let gw = aws_sdk_apigateway::Client::new(&sdk(emu, role).await);
    let mut out = BTreeSet::new();
    for api in gw.get_rest_apis().send().await.unwrap().items() {
        let stage = gw
            .get_stage()
            .rest_api_id(api.id().unwrap())
            .stage_name("prod")
            .send()
            .await
            .unwrap();
        out.insert((
            api.name().unwrap().to_string(),
            stage.deployment_id().unwrap().to_string(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_primary_returns_empty_a_reapply_rebuilds_only_what_is_missing() {
    let mut emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    ok(&config, &["provision", "apply"]);
    let secondary = |inv: BTreeSet<String>| -> BTreeSet<String> {
        inv.into_iter()
            .filter(|x| x.contains(":secondary:"))
            .collect()
    };
    let kept = secondary(inventory(&emu).await);
    let served = deployments(&emu, Role::Secondary).await;
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(distributions(&emu).await.len(), 1);

    // The primary's emulator comes back empty. It also held the global services
    // (IAM, CloudFront): the stack reaches them through the primary's endpoint.
    emu.primary.restart();
    let (steps, changes) = plan(&config);
    for s in &steps {
        if s["region"] == "secondary" {
            assert!(s["action"] == "keep" || s["action"] == "unknown", "{s}");
        } else {
            assert_eq!(s["action"], "create", "{s}");
        }
    }
    // The secondary's APIs name the roles being recreated: not drift, unknown.
    for (name, role) in [
        ("photos-config-secondary", "photos-config-api"),
        ("photos-store-secondary", "photos-store-api"),
    ] {
        let api = steps.iter().find(|s| s["name"] == name).unwrap();
        assert_eq!(api["action"], "unknown", "{api}");
        assert_eq!(
            api["detail"],
            format!("unknown until iam-role {role} exists"),
            "{api}"
        );
    }
    let text = ok(&config, &["provision", "plan"]);
    assert!(
        text.contains(
            "? rest-api photos-config-secondary (secondary) unknown until iam-role photos-config-api exists"
        ),
        "{text}"
    );

    // Apply creates what the primary lost and nothing else.
    let text = ok(&config, &["provision", "--json", "apply"]);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, events) = lines.split_last().unwrap();
    for e in events {
        if e["region"] == "secondary" {
            assert_eq!(e["event"], "check", "{e}");
            assert_eq!(e["outcome"], "up to date", "{e}");
        } else {
            assert_eq!(e["outcome"], "created", "{e}");
        }
    }
    assert_eq!(summary["updated"], 0, "{text}");
    assert_eq!(summary["created"].as_u64(), Some(changes), "{text}");
    assert_eq!(
        deployments(&emu, Role::Secondary).await,
        served,
        "the secondary's APIs were not redeployed"
    );
    assert_eq!(secondary(inventory(&emu).await), kept);
    let dists = distributions(&emu).await;
    assert_eq!(dists.len(), 1, "one distribution: {dists:?}");
    assert_eq!(dists[0].0, Role::Primary);
    let (_, changes) = plan(&config);
    assert_eq!(changes, 0);
}

#[test]
fn bad_input_is_refused_before_any_call() {
    let dir = TempDir::new("provision");
    // Regions on a port nobody listens on: any AWS call would fail with exit 1.
    let port = free_port();
    let base = format!(
        "[app]\nid = \"{APP_ID}\"\nproject = \"photos\"\n\
         [regions.primary]\nname = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:{port}\"\n\
         [regions.secondary]\nname = \"ap-northeast-1\"\nendpoint_url = \"http://127.0.0.1:{port}\"\n"
    );
    let cases = [
        (
            "",
            "stack.cognito_username = (not set): required by `provision`",
        ),
        (
            "[stack]\ncognito_username = \"ops\"\n",
            "stack.cognito_email = (not set): required by `provision`",
        ),
        (
            "[stack]\ncognito_username = \"o p\"\ncognito_email = \"ops@example.com\"\n",
            "stack.cognito_username = \"o p\"",
        ),
        (
            "[stack]\ncognito_username = \"ops\"\ncognito_email = \"ops@example.com\"\ndomain = \"x.example.com\"\n",
            "stack.route53_zone_id = (not set): required with stack.domain",
        ),
        (
            "[stack]\ncognito_username = \"ops\"\ncognito_email = \"ops@example.com\"\ntables = \"sharded\"\n",
            "stack.tables",
        ),
    ];
    for (extra, want) in cases {
        let path = dir.0.join("monitor.toml");
        std::fs::write(&path, format!("{base}{extra}")).unwrap();
        let out = run(&path, &["provision", "plan"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {err}");
        assert!(err.contains(want), "{extra}: expected {want:?} in {err}");
    }
    // An invalid project or region name is refused the same way.
    for (from, to, key) in [
        (
            "project = \"photos\"",
            "project = \"Photos_1\"",
            "app.project",
        ),
        (
            "name = \"ap-northeast-1\"",
            "name = \"mars-north-1\"",
            "regions.secondary.name",
        ),
    ] {
        let path = dir.0.join("monitor.toml");
        let text = format!("{base}{STACK}").replace(from, to);
        std::fs::write(&path, text).unwrap();
        let out = run(&path, &["provision", "apply"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(key), "{key} in {err}");
    }
    // Destroy without --yes and without a terminal to ask on: refused, exit 2.
    let path = dir.0.join("monitor.toml");
    std::fs::write(&path, format!("{base}{STACK}")).unwrap();
    let out = run(&path, &["provision", "destroy"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --yes"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_permissions_stop_apply_before_anything_is_created() {
    // An emulator that checks IAM after its first six calls, which create two users:
    // an administrator (for the test's own listing) and one that may only use DynamoDB.
    let dir = TempDir::new("provision");
    let port = free_port();
    let _region = Region::start_with(
        Role::Primary,
        "us-east-1",
        port,
        &dir.0,
        &[("INITIAL_NO_AUTH_ACTION_COUNT", "6")],
    );
    let url = format!("http://127.0.0.1:{port}");
    let c = aws_config::defaults(BehaviorVersion::latest())
        .region(SdkRegion::new("us-east-1"))
        .endpoint_url(&url)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "a", "b", None, None, "t",
        ))
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&c);
    let mut keys = Vec::new();
    for (user, action) in [("admin", "*"), ("limited", "dynamodb:*")] {
        iam.create_user().user_name(user).send().await.unwrap();
        let k = iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap();
        let k = k.access_key().unwrap();
        keys.push((
            k.access_key_id().to_string(),
            k.secret_access_key().to_string(),
        ));
        let doc = format!(
            "{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Action\":\"{action}\",\"Resource\":\"*\"}}]}}"
        );
        iam.put_user_policy()
            .user_name(user)
            .policy_name("p")
            .policy_document(doc)
            .send()
            .await
            .unwrap();
    }
    let path = dir.0.join("monitor.toml");
    std::fs::write(
        &path,
        format!(
            "[app]\nid = \"{APP_ID}\"\nproject = \"photos\"\n\
             [regions.primary]\nname = \"us-east-1\"\nendpoint_url = \"{url}\"\n\
             [regions.secondary]\nname = \"us-west-2\"\nendpoint_url = \"{url}\"\n{STACK}"
        ),
    )
    .unwrap();
    let out = cli(&path)
        .args(["provision", "apply"])
        .env("AWS_ACCESS_KEY_ID", &keys[1].0)
        .env("AWS_SECRET_ACCESS_KEY", &keys[1].1)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("AccessDenied"), "{err}");
    assert!(err.contains("(missing permission iam:GetRole)"), "{err}");

    // Nothing was created: the plan reads everything before the first write.
    let admin = aws_config::defaults(BehaviorVersion::latest())
        .region(SdkRegion::new("us-east-1"))
        .endpoint_url(&url)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            keys[0].0.clone(),
            keys[0].1.clone(),
            None,
            None,
            "t",
        ))
        .load()
        .await;
    let tables = aws_sdk_dynamodb::Client::new(&admin)
        .list_tables()
        .send()
        .await
        .unwrap();
    assert!(tables.table_names().is_empty());
    let roles = aws_sdk_iam::Client::new(&admin)
        .list_roles()
        .send()
        .await
        .unwrap();
    assert!(roles.roles().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn photos_and_comments_follow_the_state_on_the_provisioned_stack() {
    let emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    ok(&config, &["provision", "apply"]);

    let up: Value = serde_json::from_str(&ok(&config, &["photo", "upload", "--json"])).unwrap();
    assert_eq!(up["region"], "primary");
    assert_eq!(up["bucket"], "photos-primary");
    let key = up["key"].as_str().unwrap();
    assert!(key.starts_with("public/"));
    let pri = sdk(&emu, Role::Primary).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&pri)
            .force_path_style(true)
            .build(),
    );
    let obj = s3
        .get_object()
        .bucket("photos-primary")
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(obj.content_type(), Some("image/png"));
    let bytes = obj.body.collect().await.unwrap().into_bytes();
    assert_eq!(&bytes[1..4], b"PNG");
    assert_eq!(bytes.len() as u64, up["bytes"].as_u64().unwrap());

    // No photo id given: one is picked from the bucket (the only one here). The
    // emulator runs the store API (deploy/local/emulator), so the comment goes
    // through it, and the command says so.
    let added: Value = serde_json::from_str(&ok(
        &config,
        &[
            "comments",
            "--json",
            "add",
            "--user",
            "ana",
            "--message",
            "nice light",
        ],
    ))
    .unwrap();
    let photo = up["photo_id"].as_str().unwrap();
    assert_eq!(added["via"]["photo_id"], photo);
    let path = added["via"]["path"].as_str().unwrap();
    assert!(
        path.starts_with("store API http://127.0.0.1:")
            && path.ends_with(&format!("/prod/_user_request_/comments/{photo}")),
        "{path}"
    );
    assert!(added["via"]["api_error"].is_null());
    let listed: Value =
        serde_json::from_str(&ok(&config, &["comments", "--json", "list", photo])).unwrap();
    assert_eq!(listed["comments"][0]["message"], "nice light");
    assert_eq!(listed["comments"][0]["user"], "ana");
    assert_eq!(
        listed["comments"][0]["commentId"],
        added["comment"]["commentId"]
    );

    // After a switch, uploads go to the secondary; while fenced they are refused. The
    // commands read the state as the clients do, the primary's replica first: once
    // the switch has replicated there.
    ok(
        &config,
        &["state", "set", "failover", "--reason", "test", "--force"],
    );
    emu.wait_converged(Duration::from_secs(15)).await;
    let up: Value = serde_json::from_str(&ok(&config, &["photo", "upload", "--json"])).unwrap();
    assert_eq!(up["bucket"], "photos-secondary");
    ok(
        &config,
        &["state", "set", "fenced", "--reason", "test", "--force"],
    );
    emu.wait_converged(Duration::from_secs(15)).await;
    let out = run(&config, &["photo", "upload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fenced"));
}

#[tokio::test(flavor = "multi_thread")]
async fn comment_commands_say_in_one_line_which_path_they_took_and_why() {
    let emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    ok(&config, &["provision", "apply"]);
    ok(&config, &["photo", "upload"]);
    let with_debug = |args: &[&str]| {
        let out = cli(&config)
            .args(args)
            .env("RUST_LOG", "failover_provision=debug")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        (stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    };

    // The store API works: each command says it went through it.
    let (stdout, _) = with_debug(&["comments", "add", "--message", "through the API"]);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("via store API http://127.0.0.1:") && !stdout.contains("unavailable"),
        "{stdout}"
    );

    // The store API's stage is deleted by hand: API Gateway answers 403 for what is
    // not deployed. Each command says so in one short reason and goes to the table;
    // the raw answer is in the debug log.
    let gw = aws_sdk_apigateway::Client::new(&sdk(&emu, Role::Primary).await);
    let id = api_id(&gw, "photos-store-primary").await;
    gw.delete_stage()
        .rest_api_id(&id)
        .stage_name("prod")
        .send()
        .await
        .unwrap();
    let (stdout, stderr) = with_debug(&["comments", "add", "--message", "hi"]);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains(
            "via table photos-store (store API unavailable: HTTP 403 Missing Authentication Token)"
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("Missing Authentication Token") && stderr.contains("the store API refused"),
        "the answer is in the debug log: {stderr}"
    );

    let (stdout, _) = with_debug(&["comments", "list"]);
    let first = stdout.lines().next().unwrap();
    assert!(
        first.ends_with(
            "via table photos-store (store API unavailable: HTTP 403 Missing Authentication Token)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains(": hi"), "{stdout}");
    assert!(stdout.contains(": through the API"), "{stdout}");

    // Without debug logging, nothing of the raw answers shows; JSON says the same.
    let out = run(&config, &["comments", "--json", "list"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("the store API refused"));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed["via"]["api_error"],
        "HTTP 403 Missing Authentication Token"
    );
}

/// The id of the REST API called `name`.
async fn api_id(gw: &aws_sdk_apigateway::Client, name: &str) -> String {
    let apis = gw.get_rest_apis().send().await.unwrap();
    let api = apis.items().iter().find(|a| a.name() == Some(name));
    api.and_then(|a| a.id()).expect(name).to_string()
}

/// The id of the resource at `path` in the REST API `api`.
async fn resource_id(gw: &aws_sdk_apigateway::Client, api: &str, path: &str) -> String {
    let res = gw.get_resources().rest_api_id(api).send().await.unwrap();
    let r = res.items().iter().find(|r| r.path() == Some(path));
    r.and_then(|r| r.id()).expect(path).to_string()
}

/// The `uiConfig.json` that `provision ui-config` writes.
fn ui_config(config: &Path) -> Value {
    let path = config.with_file_name("uiConfig.json");
    ok(
        config,
        &["provision", "ui-config", "--out", path.to_str().unwrap()],
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// An HTTP answer: status, headers, body.
async fn http(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

const SPECIAL: &str = "it's \"quoted\", a back\\slash,\na newline and non-ASCII: é 日本語 😀";

#[tokio::test(flavor = "multi_thread")]
async fn the_store_api_takes_only_signed_comments_and_every_character_reads_back() {
    let emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    ok(&config, &["provision", "apply"]);
    let up: Value = serde_json::from_str(&ok(&config, &["photo", "upload", "--json"])).unwrap();
    let photo = up["photo_id"].as_str().unwrap();
    let ui = ui_config(&config);
    let url = format!(
        "{}/comments/{photo}",
        ui["primary"]["photosApi"].as_str().unwrap()
    );
    let client = reqwest::Client::new();

    // Unsigned, the POST is refused as API Gateway refuses it, and nothing is stored.
    let body = serde_json::json!({"commentId": "c-unsigned", "message": "m",
        "photoId": photo, "user": "anyone"});
    let (status, _, text) = http(
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        serde_json::json!({"message": "Missing Authentication Token"})
    );
    let ddb = aws_sdk_dynamodb::Client::new(&sdk(&emu, Role::Primary).await);
    let stored = ddb
        .get_item()
        .table_name("photos-store")
        .key("commentId", AttributeValue::S("c-unsigned".into()))
        .send()
        .await
        .unwrap();
    assert!(stored.item.is_none(), "an unsigned comment was stored");

    // The CLI signs its POST (SigV4, the caller's credentials): it goes through the
    // API, and every character reads back through the API's GET.
    let added: Value = serde_json::from_str(&ok(
        &config,
        &[
            "comments",
            "--json",
            "add",
            photo,
            "--user",
            "o'neil",
            "--message",
            SPECIAL,
        ],
    ))
    .unwrap();
    assert_eq!(added["via"]["path"], format!("store API {url}"));
    assert!(added["via"]["api_error"].is_null(), "{added}");
    let listed: Value =
        serde_json::from_str(&ok(&config, &["comments", "--json", "list", photo])).unwrap();
    assert_eq!(listed["via"]["path"], format!("store API {url}"));
    assert_eq!(
        listed["comments"],
        serde_json::json!([{"commentId": added["comment"]["commentId"],
            "user": "o'neil", "message": SPECIAL}])
    );
    // Read without the CLI: the GET is open, and its answer is JSON.
    let (status, headers, text) = http(client.get(&url)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let answer: Value = serde_json::from_str(&text).expect("the comments are valid JSON");
    assert_eq!(answer["comments"][0]["message"], SPECIAL);

    // The state API answers the state and its version, in each region (the primary's
    // once the switch has replicated there).
    ok(
        &config,
        &["state", "set", "failover", "--reason", "test", "--force"],
    );
    emu.wait_converged(Duration::from_secs(15)).await;
    for (role, key) in [(Role::Primary, "primary"), (Role::Secondary, "secondary")] {
        let item = config_item(&emu, role).await.unwrap();
        let version: u64 = item["version"].as_n().unwrap().parse().unwrap();
        assert!(version >= 1);
        let (status, _, text) = http(client.get(ui[key]["stateUrl"].as_str().unwrap())).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            serde_json::json!({"state": "failover", "version": version}),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pages_auth_flows_and_signed_comments_are_repaired_when_changed_by_hand() {
    let emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    ok(&config, &["provision", "apply"]);
    let pri = sdk(&emu, Role::Primary).await;
    let idp = aws_sdk_cognitoidentityprovider::Client::new(&pri);
    let pools = idp.list_user_pools().max_results(10).send().await.unwrap();
    let pool = pools.user_pools()[0].id().unwrap().to_string();
    let clients = idp
        .list_user_pool_clients()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let client = clients.user_pool_clients()[0]
        .client_id()
        .unwrap()
        .to_string();
    let flows = || async {
        let d = idp
            .describe_user_pool_client()
            .user_pool_id(&pool)
            .client_id(&client)
            .send()
            .await
            .unwrap();
        let mut f: Vec<String> = d
            .user_pool_client()
            .unwrap()
            .explicit_auth_flows()
            .iter()
            .map(|f| f.as_str().to_string())
            .collect();
        f.sort();
        f
    };
    let page_flows = ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH"];
    assert_eq!(flows().await, page_flows);

    let gw = aws_sdk_apigateway::Client::new(&pri);
    let api = api_id(&gw, "photos-store-primary").await;
    let rid = resource_id(&gw, &api, "/comments/{photoId}").await;
    let method = |verb: &'static str| {
        gw.get_method()
            .rest_api_id(&api)
            .resource_id(&rid)
            .http_method(verb)
            .send()
    };
    for (verb, auth) in [("GET", "NONE"), ("POST", "AWS_IAM"), ("OPTIONS", "NONE")] {
        let m = method(verb).await.unwrap();
        assert_eq!(m.authorization_type(), Some(auth), "{verb}");
    }
    let served = |gw: aws_sdk_apigateway::Client, api: String| async move {
        let stage = gw
            .get_stage()
            .rest_api_id(api)
            .stage_name("prod")
            .send()
            .await
            .unwrap();
        stage.deployment_id().unwrap().to_string()
    };
    let before = served(gw.clone(), api.clone()).await;

    // By hand: the client allows SRP too, and POST is made open again (moto has no
    // UpdateMethod: deleted and put again, without its integration).
    use aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType as F;
    idp.update_user_pool_client()
        .user_pool_id(&pool)
        .client_id(&client)
        .client_name("photos-web")
        .explicit_auth_flows(F::AllowUserPasswordAuth)
        .explicit_auth_flows(F::AllowRefreshTokenAuth)
        .explicit_auth_flows(F::AllowUserSrpAuth)
        .send()
        .await
        .unwrap();
    gw.delete_method()
        .rest_api_id(&api)
        .resource_id(&rid)
        .http_method("POST")
        .send()
        .await
        .unwrap();
    gw.put_method()
        .rest_api_id(&api)
        .resource_id(&rid)
        .http_method("POST")
        .authorization_type("NONE")
        .send()
        .await
        .unwrap();

    let (steps, changes) = plan(&config);
    assert_eq!(changes, 2, "{steps:#?}");
    let step = |kind: &str, name: &str| {
        let found = steps
            .iter()
            .find(|s| s["kind"] == kind && s["name"] == name);
        found.unwrap().clone()
    };
    let c = step("user-pool-client", "photos-web");
    assert_eq!(c["action"], "update", "{c}");
    assert_eq!(
        c["detail"][0],
        "auth flows are ALLOW_REFRESH_TOKEN_AUTH, ALLOW_USER_PASSWORD_AUTH, ALLOW_USER_SRP_AUTH, \
         not ALLOW_REFRESH_TOKEN_AUTH, ALLOW_USER_PASSWORD_AUTH"
    );
    let a = step("rest-api", "photos-store-primary");
    assert_eq!(a["action"], "update", "{a}");
    assert!(
        a["detail"]
            .as_array()
            .unwrap()
            .contains(&"POST /comments/{photoId} authorization is NONE, not AWS_IAM".into()),
        "{a}"
    );

    let text = ok(&config, &["provision", "apply"]);
    assert!(
        text.contains("update   user-pool-client photos-web (primary) ... updated"),
        "{text}"
    );
    let (_, changes) = plan(&config);
    assert_eq!(changes, 0, "apply repaired both");
    assert_eq!(flows().await, page_flows);
    let m = method("POST").await.unwrap();
    assert_eq!(m.authorization_type(), Some("AWS_IAM"));
    let integ = m.method_integration().expect("the integration is back");
    assert!(integ.uri().unwrap().ends_with(":dynamodb:action/PutItem"));
    // Redeployed: the stage serves the repaired method, which refuses an unsigned call.
    assert_ne!(served(gw.clone(), api.clone()).await, before);
    let url = format!(
        "{}/restapis/{api}/prod/_user_request_/comments/p-1",
        emu.primary.url()
    );
    let (status, _, text) = http(
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_eq!(status, 403, "{text}");
}

/// A child process killed when dropped (a failed assertion leaves nothing running).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn website_deploy_uploads_the_page_and_website_local_serves_what_was_uploaded() {
    let emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    // Before apply there is no stack to give the page.
    let out = run(&config, &["provision", "website-deploy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `provision apply` first"));
    ok(&config, &["provision", "apply"]);

    let text = ok(&config, &["provision", "website-deploy"]);
    assert!(
        text.contains("deployed the page (version ")
            && text.contains("to s3://photos-website/console/; serve it with `failover-monitor provision website-local`"),
        "{text}"
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk(&emu, Role::Primary).await)
            .force_path_style(true)
            .build(),
    );
    let listed = s3
        .list_objects_v2()
        .bucket("photos-website")
        .send()
        .await
        .unwrap();
    let keys: BTreeSet<String> = listed
        .contents()
        .iter()
        .map(|o| o.key().unwrap().to_string())
        .collect();
    let version = keys
        .iter()
        .find_map(|k| k.strip_prefix("console/assets/"))
        .and_then(|k| k.split('/').next())
        .unwrap()
        .to_string();
    let asset = |name: &str| format!("console/assets/{version}/{name}");
    let want: BTreeSet<String> = ["console/index.html".into(), "console/uiConfig.json".into()]
        .into_iter()
        .chain(["style.css", "app.js", "cognito.js", "sigv4.js"].map(asset))
        .collect();
    assert_eq!(keys, want);
    let repo_file = |name: &str| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/website");
        std::fs::read_to_string(dir.join(name)).unwrap()
    };
    // Each object: its type, its cache policy, the repository's file.
    let mut uploaded = std::collections::HashMap::new();
    for key in &keys {
        let o = s3
            .get_object()
            .bucket("photos-website")
            .key(key)
            .send()
            .await
            .unwrap();
        let (ct, cc) = (
            o.content_type().unwrap().to_string(),
            o.cache_control().unwrap().to_string(),
        );
        let body =
            String::from_utf8(o.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
        let name = key.rsplit('/').next().unwrap();
        let (want_ct, want_cc) = match name.rsplit('.').next().unwrap() {
            "html" => ("text/html; charset=utf-8", "no-cache"),
            "json" => ("application/json", "no-cache"),
            "js" => (
                "text/javascript; charset=utf-8",
                "public, max-age=31536000, immutable",
            ),
            "css" => (
                "text/css; charset=utf-8",
                "public, max-age=31536000, immutable",
            ),
            other => panic!("unexpected file type {other}"),
        };
        assert_eq!((ct.as_str(), cc.as_str()), (want_ct, want_cc), "{key}");
        match name {
            // The page points at its assets' folder; otherwise it is the repository's.
            "index.html" => {
                assert!(
                    body.contains(&format!("src=\"assets/{version}/app.js\"")),
                    "{body}"
                );
                assert_eq!(
                    body.replace(&format!("assets/{version}/"), ""),
                    repo_file(name)
                );
            }
            "uiConfig.json" => {
                let got: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(got, ui_config(&config));
            }
            _ => assert_eq!(body, repo_file(name), "{key}"),
        }
        uploaded.insert(key.clone(), body);
    }

    // website-local serves the bucket's console/ on a free loopback port.
    let mut child = cli(&config)
        .args(["provision", "website-local", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Running(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    assert!(
        first.starts_with("serving s3://photos-website/console/ at http://127.0.0.1:"),
        "{first}"
    );
    assert!(first.contains("Ctrl-C stops"), "{first}");
    let base = first
        .split(" at ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_string();
    let client = reqwest::Client::new();
    for (path, key) in [
        ("".to_string(), "console/index.html".to_string()),
        ("uiConfig.json".into(), "console/uiConfig.json".into()),
        (format!("assets/{version}/app.js"), asset("app.js")),
        (format!("assets/{version}/style.css"), asset("style.css")),
    ] {
        let (status, headers, body) = http(client.get(format!("{base}{path}"))).await;
        assert_eq!(status, 200, "/{path}");
        assert_eq!(body, uploaded[&key], "/{path} is what was uploaded");
        let o = s3
            .head_object()
            .bucket("photos-website")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            headers["content-type"],
            o.content_type().unwrap(),
            "/{path}"
        );
        assert_eq!(
            headers["cache-control"],
            o.cache_control().unwrap(),
            "/{path}"
        );
    }
    let (status, _, body) = http(client.get(format!("{base}missing.js"))).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("console/missing.js"), "{body}");
    let (status, _, _) = http(client.post(&base)).await;
    assert_eq!(status, 405);

    // Read from the bucket on each request: a change shows at once.
    s3.put_object()
        .bucket("photos-website")
        .key("console/uiConfig.json")
        .content_type("application/json")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"{\"changed\": true}",
        ))
        .send()
        .await
        .unwrap();
    let (_, _, body) = http(client.get(format!("{base}uiConfig.json"))).await;
    assert_eq!(body, "{\"changed\": true}");

    // A deploy again puts the page back and removes the assets of older pages.
    s3.put_object()
        .bucket("photos-website")
        .key("console/assets/0000000000000000/app.js")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"old"))
        .send()
        .await
        .unwrap();
    let text = ok(&config, &["provision", "website-deploy"]);
    assert!(
        text.contains(
            "removed s3://photos-website/console/assets/0000000000000000/ (an older page)"
        ),
        "{text}"
    );
    let (_, _, body) = http(client.get(format!("{base}uiConfig.json"))).await;
    assert_eq!(body, uploaded["console/uiConfig.json"]);
    let (status, _, _) = http(client.get(format!("{base}assets/0000000000000000/app.js"))).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generated_monitor_config_watches_the_provisioned_stack() {
    let emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    // Before apply there is nothing to point probes at.
    let out = run(&config, &["provision", "monitor-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `provision apply` first"));

    ok(&config, &["provision", "apply"]);
    let generated = dir.0.join("generated.toml");
    ok(
        &config,
        &[
            "provision",
            "monitor-config",
            "--out",
            generated.to_str().unwrap(),
        ],
    );
    let check = ok(&generated, &["check-config"]);
    assert!(
        check.contains("8 probes: 5 primary, 3 secondary"),
        "{check}"
    );
    let text = std::fs::read_to_string(&generated).unwrap();
    for name in [
        "photos-primary-api-5xx",
        "photos-primary-store-table-errors",
        "bucket = \"photos-secondary\"",
    ] {
        assert!(text.contains(name), "{name} in\n{text}");
    }

    // A monitor started from it finds every probe up on the provisioned stack.
    let mon = Monitor::start(&text);
    let mut last = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = get_json(mon.url("/v1/status")).await;
        let probes = last["probes"].as_array().cloned().unwrap_or_default();
        if probes.len() == 8 && probes.iter().all(|p| p["health"] == "up") {
            return;
        }
    }
    panic!("not every probe came up: {last:#}");
}

/// The generated `[client_path]` is the application's own: after a failover by hand
/// on the provisioned stack, the recovery report dates both regions' state APIs (the
/// emulator's API Gateway layer reading each region's replica) answering `failover`
/// and a SigV4-signed comment through the secondary's store API read back, and
/// counts the recovery time to that write.
#[tokio::test(flavor = "multi_thread")]
async fn the_generated_client_path_dates_a_failovers_report() {
    use failover_core::report::{EventKind, Report};

    let emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    ok(&config, &["provision", "apply"]);
    let text = ok(&config, &["provision", "monitor-config"]);
    for key in [
        "secondary_state_url",
        "secondary_store_url",
        "[client_path]",
    ] {
        assert!(text.contains(key), "{key} in\n{text}");
    }
    let mon = Monitor::start(&text);
    mon.wait_status(
        Duration::from_secs(30),
        "every probe up",
        support::admin::all_probes_up,
    )
    .await;
    let (code, body, _) = mon
        .post(
            "/v1/failover",
            r#"{"reason": "report test", "caller": "ops"}"#,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let report: Report = support::wait_for(
        Duration::from_secs(60),
        "the report of version 1, complete",
        async || {
            let (code, body) = mon.get("/v1/reports/1").await;
            let r: Report =
                serde_json::from_value(body.clone()).map_err(|e| format!("{code} {e}: {body}"))?;
            r.complete.then_some(r).ok_or_else(|| format!("{body}"))
        },
    )
    .await;
    let committed = report
        .first(EventKind::Committed, Some(Role::Secondary))
        .expect("committed")
        .at
        .clone();
    for role in Role::BOTH {
        let e = report
            .first(EventKind::StateApiAnswered, Some(role))
            .unwrap_or_else(|| panic!("the {role} state API answered: {report:#?}"));
        assert!(e.at >= committed, "{report:#?}");
    }
    let write = report
        .first(EventKind::ClientWrite, Some(Role::Secondary))
        .unwrap_or_else(|| panic!("a client write in the secondary: {report:#?}"));
    assert!(write.at >= committed, "{report:#?}");
    let rto = report.rto.clone().expect("a recovery time");
    assert_eq!(
        (rto.from, rto.until),
        (EventKind::Decision, EventKind::ClientWrite),
        "{report:#?}"
    );
    assert!(
        !report.notes.iter().any(|n| n.contains("never")),
        "{:?}",
        report.notes
    );
    println!("failover by hand: {} ({} ms)", rto.what, rto.ms);
}

/// Drills on the provisioned stack, with a real monitor process and the
/// application's own client path (the emulator's API Gateway layer, signed
/// comments, the buckets): a scheduled drill and one started with `drill run` both
/// succeed, each with recovery reports whose moments agree with the audit records;
/// a blocking alarm raised mid-drill brings it back to `active` within
/// `alarm_every` and a few seconds; with the secondary's state API removed, a drill
/// fails at preflight and names it.
#[tokio::test(flavor = "multi_thread")]
async fn drills_succeed_abort_on_a_blocking_alarm_and_fail_without_a_state_api() {
    use failover_core::overrides::parse;
    use failover_core::report::{EventKind, Report};

    let emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    ok(&config, &["provision", "apply"]);
    let cw = aws_sdk_cloudwatch::Client::new(&sdk(&emu, Role::Primary).await);
    cw.put_metric_alarm()
        .alarm_name("photos-drill-blocker")
        .namespace("Photos")
        .metric_name("Incidents")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(
            aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold,
        )
        .send()
        .await
        .unwrap();
    let text = format!(
        "{}\n[drills]\nevery = \"1h\"\nhold = \"2s\"\nverify_for = \"30s\"\nalarm_every = \"1s\"\n\
         blocking_alarms = [\"photos-drill-blocker\"]\n",
        ok(&config, &["provision", "monitor-config"])
    );
    let mon = Monitor::start_with(
        &text,
        &[("FAILOVER_MONITOR__CLIENT_PATH__OBSERVE_FOR", "5s")],
    );
    mon.wait_status(
        Duration::from_secs(30),
        "every probe up",
        support::admin::all_probes_up,
    )
    .await;
    let drill = async |pred: &dyn Fn(&Value) -> bool, what: &str, limit: u64| -> Value {
        support::wait_for(Duration::from_secs(limit), what, async || {
            let (_, body) = mon.get("/v1/drills").await;
            let d = body["drill"].clone();
            if pred(&d) {
                Ok(d)
            } else {
                Err(format!("{body:#}"))
            }
        })
        .await
    };

    // The schedule starts one on its own once every probe has a verdict.
    let scheduled = drill(
        &|d| !d["outcome"].is_null(),
        "the scheduled drill ended",
        90,
    )
    .await;
    assert_eq!(scheduled["outcome"], "SUCCEEDED", "{scheduled:#}");
    assert_eq!(
        (&scheduled["scheduled"], &scheduled["by"]),
        (&Value::Bool(true), &Value::from("schedule"))
    );
    assert_eq!(
        scheduled["versions"],
        serde_json::json!([1, 2]),
        "{scheduled:#}"
    );
    let checks = scheduled["checks"].as_array().unwrap();
    for name in [
        "secondary_state_api",
        "client_write",
        "photo",
        "blocking_alarms",
    ] {
        assert!(
            checks.iter().any(|c| c["name"] == name && c["ok"] == true),
            "{name}: {scheduled:#}"
        );
    }

    // On demand, through the CLI, which follows it to its outcome.
    let out = cli(&mon.config)
        .args(["drill", "--url", &mon.url(""), "--caller", "ops"])
        .env("FAILOVER_MONITOR_ADMIN_TOKEN", support::monitor::TOKEN)
        .args([
            "run", "--reason", "practice", "--hold", "2s", "--fence", "1s",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "step: fence",
        "step: verify_secondary",
        "step: verify_primary",
        "SUCCEEDED",
    ] {
        assert!(stdout.contains(line), "{line} in\n{stdout}");
    }
    assert!(stdout.contains("each of 3, 4, 5"), "{stdout}");

    // Each move's report is the drill's, and agrees with its audit record.
    let (_, history) = mon.get("/v1/history?limit=20").await;
    let records = history["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 5, "{history:#}");
    for v in 1..=5u64 {
        let record = records.iter().find(|r| r["version"] == v).unwrap();
        assert_eq!(record["trigger"], "drill", "{record:#}");
        let report: Report =
            support::wait_for(Duration::from_secs(30), "a complete report", async || {
                let (code, body) = mon.get(&format!("/v1/reports/{v}")).await;
                let r: Report = serde_json::from_value(body.clone())
                    .map_err(|e| format!("{code} {e}: {body}"))?;
                r.complete.then_some(r).ok_or_else(|| format!("{body}"))
            })
            .await;
        assert!(
            report
                .drill
                .as_deref()
                .is_some_and(|d| record["by"] == format!("drill:{d}")),
            "{report:#?}"
        );
        let committed = report
            .first(EventKind::Committed, Some(Role::Secondary))
            .and_then(|e| parse(&e.at))
            .expect("committed");
        let written = parse(record["at"].as_str().unwrap()).unwrap();
        assert!(
            written <= committed
                && committed.duration_since(written).unwrap() < Duration::from_secs(5),
            "record at {written:?}, {report:#?}"
        );
        if report.to != failover_core::model::AppState::Active {
            assert!(
                report.first(EventKind::DrillStarted, None).is_some(),
                "{report:#?}"
            );
        }
    }

    // A blocking alarm raised in the hold: back to active within its bound.
    let (code, body, _) = mon
        .post("/v1/drills", r#"{"reason": "alarm test", "hold": "5m"}"#)
        .await;
    assert_eq!(code, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    drill(
        &|d| d["id"] == id.as_str() && d["step"] == "hold",
        "in the hold",
        60,
    )
    .await;
    let raised = tokio::time::Instant::now();
    cw.set_alarm_state()
        .alarm_name("photos-drill-blocker")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    let aborted = drill(
        &|d| d["id"] == id.as_str() && !d["outcome"].is_null(),
        "aborted",
        30,
    )
    .await;
    let took = raised.elapsed();
    assert_eq!(aborted["outcome"], "INTERRUPTED", "{aborted:#}");
    let why = aborted["why"].as_str().unwrap();
    assert!(
        why.contains("photos-drill-blocker") && why.ends_with("back to active"),
        "{why}"
    );
    assert!(took < Duration::from_secs(15), "aborted after {took:?}");
    let (_, status) = mon.get("/v1/status").await;
    assert_eq!(status["state"], "active", "{status:#}");
    cw.set_alarm_state()
        .alarm_name("photos-drill-blocker")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
        .state_reason("test")
        .send()
        .await
        .unwrap();

    // The secondary's state API removed: preflight fails and says so.
    let gw = aws_sdk_apigateway::Client::new(&sdk(&emu, Role::Secondary).await);
    let api = api_id(&gw, &format!("{PROJECT}-config-secondary")).await;
    gw.delete_rest_api().rest_api_id(&api).send().await.unwrap();
    let out = cli(&mon.config)
        .args(["drill", "--url", &mon.url(""), "--caller", "ops"])
        .env("FAILOVER_MONITOR_ADMIN_TOKEN", support::monitor::TOKEN)
        .args(["run", "--reason", "no state api", "--hold", "2s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FAILED")
            && stderr.contains("preflight: ")
            && stderr.contains("secondary_state_api: "),
        "{stderr}"
    );
    let (_, status) = mon.get("/v1/status").await;
    assert_eq!(
        (status["state"].clone(), status["version"].clone()),
        (Value::from("active"), Value::from(7))
    );
}

/// The secondary's readiness on the provisioned stack: ready once applied; the
/// secondary's state API's stage deleted by hand, then the API itself, then its
/// replica of the data table, each makes it not ready naming what is wrong (status,
/// `failover_monitor_secondary_ready`); `provision apply` repairs it and the next
/// check finds it ready again.
#[tokio::test(flavor = "multi_thread")]
async fn readiness_names_a_removed_stage_or_state_api_and_recovers_after_apply() {
    let emu = Emulator::start_empty();
    let dir = TempDir::new("provision");
    let config = config_file(&emu, &dir, "");
    ok(&config, &["provision", "apply"]);
    let text = ok(&config, &["provision", "monitor-config"]);
    let mon = Monitor::start(&format!("{text}\n[readiness]\nevery = \"1s\"\n"));
    let ready = |s: &Value| s["secondary_readiness"]["ready"] == true;
    let s = mon
        .wait_status(Duration::from_secs(60), "the secondary ready", ready)
        .await;
    assert_eq!(
        s["secondary_readiness"]["reasons"],
        serde_json::json!([]),
        "{s:#}"
    );
    mon.wait_metric(
        "failover_monitor_secondary_ready",
        &[],
        1.0,
        Duration::from_secs(5),
    )
    .await;

    let gw = aws_sdk_apigateway::Client::new(&sdk(&emu, Role::Secondary).await);
    let api = "photos-config-secondary";
    let reasons_with = |needle: &'static str| {
        move |s: &Value| {
            s["secondary_readiness"]["ready"] == false
                && s["secondary_readiness"]["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r.as_str().is_some_and(|r| r.contains(needle)))
        }
    };

    // The stage the probes and the page use, deleted by hand.
    let id = api_id(&gw, api).await;
    gw.delete_stage()
        .rest_api_id(&id)
        .stage_name("prod")
        .send()
        .await
        .unwrap();
    let s = mon
        .wait_status(
            Duration::from_secs(30),
            "not ready: the stage",
            reasons_with("stage prod missing"),
        )
        .await;
    let reasons = s["secondary_readiness"]["reasons"].to_string();
    assert!(
        reasons.contains("drift: rest-api photos-config-secondary (secondary)"),
        "{reasons}"
    );
    mon.wait_metric(
        "failover_monitor_secondary_ready",
        &[],
        0.0,
        Duration::from_secs(5),
    )
    .await;
    ok(&config, &["provision", "apply"]);
    mon.wait_status(Duration::from_secs(30), "ready again", ready)
        .await;

    // The whole state API, deleted by hand.
    let id = api_id(&gw, api).await;
    gw.delete_rest_api().rest_api_id(&id).send().await.unwrap();
    mon.wait_status(
        Duration::from_secs(30),
        "not ready: the state API",
        reasons_with("missing: rest-api photos-config-secondary (secondary)"),
    )
    .await;
    ok(&config, &["provision", "apply"]);
    mon.wait_status(Duration::from_secs(30), "ready again", ready)
        .await;

    // The secondary's replica of the data table, deleted by hand: the monitor's own
    // DescribeTable there names it.
    aws_sdk_dynamodb::Client::new(&sdk(&emu, Role::Secondary).await)
        .delete_table()
        .table_name("photos-store")
        .send()
        .await
        .unwrap();
    mon.wait_status(
        Duration::from_secs(30),
        "not ready: the table",
        reasons_with("tables: table photos-store does not exist here"),
    )
    .await;
    ok(&config, &["provision", "apply"]);
    mon.wait_status(Duration::from_secs(60), "ready again", ready)
        .await;
    mon.wait_metric(
        "failover_monitor_secondary_ready",
        &[],
        1.0,
        Duration::from_secs(5),
    )
    .await;
}
