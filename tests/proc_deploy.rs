//! The deployment files: the IAM policy grants exactly what the daemon calls, the
//! systemd unit verifies, the ECS task definition and the Dockerfile hold what they
//! promise, and their command lines parse. The ECS task's TLS is in
//! `proc_deploy/ecs_tls.rs`.

#[path = "proc_deploy/ecs_tls.rs"]
mod ecs_tls;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The modules that run inside the daemon (and so under its IAM role). `src/aws`
/// holds the DynamoDB table wrapper (`aws::dynamo::Table`: transactions, batch reads)
/// the actuator and the coordination store call through.
const DAEMON_SOURCES: &[&str] = &[
    "crates/daemon/src/probe",
    "crates/daemon/src/action",
    "crates/daemon/src/coord",
    "crates/aws/src",
];

/// SDK operation (snake case, as called) -> the IAM actions it needs.
fn iam_actions(op: &str) -> Option<&'static [&'static str]> {
    Some(match op {
        "get_item" => &["dynamodb:GetItem"],
        "batch_get_item" => &["dynamodb:BatchGetItem"],
        "describe_table" => &["dynamodb:DescribeTable"],
        // The transactions hold an Update (the item), Puts (audit records) and a
        // ConditionCheck (the leader's fencing token).
        "transact_write_items" => &[
            "dynamodb:UpdateItem",
            "dynamodb:PutItem",
            "dynamodb:ConditionCheckItem",
        ],
        "update_item" => &["dynamodb:UpdateItem"],
        "put_item" => &["dynamodb:PutItem"],
        "head_bucket" => &["s3:ListBucket"],
        "put_object" => &["s3:PutObject"],
        "get_object" => &["s3:GetObject"],
        "delete_object" => &["s3:DeleteObject"],
        "describe_alarms" => &["cloudwatch:DescribeAlarms"],
        "list_resource_record_sets" => &["route53:ListResourceRecordSets"],
        "change_resource_record_sets" => &["route53:ChangeResourceRecordSets"],
        _ => return None,
    })
}

/// `client.<op>()` calls in the daemon's sources.
fn sdk_calls() -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for dir in DAEMON_SOURCES {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            ops.extend(calls_in(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    ops
}

/// `client.<op>()` calls in a piece of source.
fn calls_in(source: &str) -> BTreeSet<String> {
    let text: String = source.split_whitespace().collect();
    let mut ops = BTreeSet::new();
    for (i, _) in text.match_indices("client.") {
        let rest = &text[i + "client.".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if rest[name.len()..].starts_with("()") && !name.is_empty() {
            ops.insert(name);
        }
    }
    ops
}

/// The actions a policy file grants. Every statement must allow, name no wildcard
/// action, and have only resources `scoped(sid, resource)` accepts.
fn granted_actions(path: &str, scoped: impl Fn(&str, &str) -> bool) -> BTreeSet<String> {
    let policy: Value = serde_json::from_str(&read(path)).unwrap();
    let mut granted = BTreeSet::new();
    for st in policy["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow");
        for a in st["Action"].as_array().unwrap() {
            let a = a.as_str().unwrap();
            assert!(!a.contains('*'), "wildcard action {a}");
            granted.insert(a.to_string());
        }
        let sid = st["Sid"].as_str().unwrap_or_default();
        for r in st["Resource"].as_array().unwrap() {
            let r = r.as_str().unwrap();
            assert!(
                scoped(sid, r),
                "{path} {sid}: resource {r} is not scoped to the stack"
            );
        }
    }
    granted
}

#[test]
fn iam_policy_allows_exactly_what_the_daemon_calls() {
    let calls = sdk_calls();
    assert!(calls.len() >= 8, "the scan found too little: {calls:?}");
    let mut needed = BTreeSet::new();
    for op in &calls {
        let actions = iam_actions(op).unwrap_or_else(|| {
            panic!("the daemon calls {op}: add its IAM actions to this map and to deploy/iam/monitor-policy.json")
        });
        needed.extend(actions.iter().map(|a| a.to_string()));
    }
    // The recovery report's client-path write is a signed HTTP POST, not an SDK call:
    // the one path it posts to, in the account's store APIs (their ids are made after
    // the role is).
    let signs = read("crates/daemon/src/client_path.rs").contains("sign_post(");
    if signs {
        needed.insert("execute-api:Invoke".to_string());
    }
    let check = format!(
        "/*/POST/comments/{}",
        failover_daemon::client_path::CHECK_PHOTO
    );
    let granted = granted_actions("deploy/iam/monitor-policy.json", |sid, r| {
        r.contains("${Project}")
            || r.contains("${ZoneId}")
            || (sid == "ClientPathWrite"
                && r.starts_with("arn:aws:execute-api:${")
                && r.ends_with(&check))
    });
    assert_eq!(
        granted, needed,
        "policy grants (left) vs the daemon calls (right)"
    );
}

/// Whether `value` matches an IAM `StringLike` pattern (`*`: any run, `?`: one
/// character).
fn string_like(pattern: &str, value: &str) -> bool {
    match pattern.chars().next() {
        None => value.is_empty(),
        Some('*') => {
            let rest = &pattern[1..];
            value
                .char_indices()
                .map(|(i, _)| i)
                .chain([value.len()])
                .any(|i| string_like(rest, &value[i..]))
        }
        Some(p) => value.chars().next().is_some_and(|v| {
            (p == '?' || p == v) && string_like(&pattern[p.len_utf8()..], &value[v.len_utf8()..])
        }),
    }
}

/// Per table (ARN): the actions granted on it and the `dynamodb:LeadingKeys` patterns
/// of the statements that grant item actions (`None`: a statement without the
/// condition, so every key).
fn table_grants(path: &str) -> Vec<(String, BTreeSet<String>, Option<Vec<String>>)> {
    let policy: Value = serde_json::from_str(&read(path)).unwrap();
    let mut out: Vec<(String, BTreeSet<String>, Option<Vec<String>>)> = Vec::new();
    for st in policy["Statement"].as_array().unwrap() {
        let actions: BTreeSet<String> = st["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let keys: Option<Vec<String>> =
            st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                .as_array()
                .map(|ks| ks.iter().map(|k| k.as_str().unwrap().to_owned()).collect());
        let item_actions = actions.iter().any(|a| a != "dynamodb:DescribeTable");
        for r in st["Resource"].as_array().unwrap() {
            let r = r.as_str().unwrap();
            if !r.starts_with("arn:aws:dynamodb:") {
                continue;
            }
            let entry = match out.iter_mut().position(|(t, _, _)| t == r) {
                Some(i) => &mut out[i],
                None => {
                    out.push((r.to_owned(), BTreeSet::new(), Some(Vec::new())));
                    out.last_mut().unwrap()
                }
            };
            entry.1.extend(actions.iter().cloned());
            if item_actions {
                entry.2 = match (entry.2.take(), &keys) {
                    (Some(mut have), Some(k)) => {
                        have.extend(k.iter().cloned());
                        Some(have)
                    }
                    _ => None,
                };
            }
        }
    }
    out
}

/// The data table (`<project>-store`, the application's comments) is touched only by
/// the replication canary: the policy grants there exactly what `DynamoCanary` calls
/// (and `DescribeTable` for the table probes), on the canary's own keys only, and the
/// config table's keys cover every item the daemon keeps beside the config item.
#[test]
fn iam_policy_scopes_each_table_to_the_daemons_own_keys() {
    use failover_core::model::keys;

    let source = read("crates/daemon/src/action/dynamo.rs");
    let start = source
        .find("impl CanaryStore for DynamoCanary")
        .expect("the DynamoDB canary in src/action/dynamo.rs (update this test if it moved)");
    let block = &source[start..];
    let block = &block[..block.find("\n}\n").unwrap_or(block.len())];
    let canary_calls = calls_in(block);
    assert!(!canary_calls.is_empty(), "no SDK call found in the canary");
    let mut canary_needs: BTreeSet<String> = canary_calls
        .iter()
        .flat_map(|op| iam_actions(op).unwrap().iter().map(|a| a.to_string()))
        .collect();
    canary_needs.insert("dynamodb:DescribeTable".into());

    let app = "${AppId}";
    let instance = "monitor-a";
    let grants = table_grants("deploy/iam/monitor-policy.json");
    for region in ["${PrimaryRegion}", "${SecondaryRegion}"] {
        let arn = |table: &str| format!("arn:aws:dynamodb:{region}:${{AccountId}}:table/{table}");
        let find = |table: &str| {
            grants
                .iter()
                .find(|(t, _, _)| *t == arn(table))
                .unwrap_or_else(|| panic!("no grant on {}", arn(table)))
        };

        let (_, actions, patterns) = find("${Project}-store");
        assert_eq!(
            *actions, canary_needs,
            "{region} data table: granted (left) vs the canary and the probes need (right)"
        );
        let patterns = patterns
            .as_ref()
            .expect("the data table's item actions are limited by dynamodb:LeadingKeys");
        let covered = |key: &str| patterns.iter().any(|p| string_like(p, key));
        assert!(
            covered(&keys::data_canary(app, instance)),
            "{patterns:?} miss the data canary"
        );
        for foreign in ["3f0c1b2a-9d4e-4c55-8a61-0d2f5b7e9c10", app, "photo-1"] {
            assert!(
                !covered(foreign),
                "{patterns:?} let the daemon touch the application's item {foreign:?}"
            );
        }

        let (_, _, patterns) = find("${Project}-config");
        let patterns = patterns
            .as_ref()
            .expect("the config table's item actions are limited by dynamodb:LeadingKeys");
        for key in [
            app.to_owned(),
            keys::audit(app, 7),
            keys::lease(app),
            keys::view(app, instance),
            keys::canary(app, instance),
            keys::pause(app),
        ] {
            assert!(
                patterns.iter().any(|p| string_like(p, &key)),
                "{patterns:?} miss {key}"
            );
        }
        assert!(
            !patterns.iter().any(|p| string_like(p, "other-app")),
            "{patterns:?} reach other apps' items"
        );
    }
    assert!(string_like("a#*", "a#b#c") && !string_like("a#*", "a") && string_like("a?c", "abc"));
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_failover-monitor")
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let unit = read("deploy/systemd/failover-monitor.service");
    for want in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "LoadCredential=admin-token:",
    ] {
        assert!(unit.contains(want), "the unit lacks {want:?}");
    }
    // systemd-analyze checks the unit against the binary this build made.
    let dir = std::env::temp_dir().join(format!("fm-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("failover-monitor.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/failover-monitor", binary()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (systemd package)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // ExecStart's arguments parse (run -> check-config on the shipped config).
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| match a {
            "run" => "check-config".to_string(),
            "/etc/failover-monitor/monitor.toml" => {
                repo().join("monitor.toml").display().to_string()
            }
            other => other.to_string(),
        })
        .collect();
    let out = Command::new(binary()).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ecs_task_definition_has_health_check_logs_and_secret_token() {
    let td: Value = serde_json::from_str(&read("deploy/ecs/task-definition.json")).unwrap();
    let c = &td["containerDefinitions"][0];
    assert_eq!(c["user"], "65532:65532");
    assert_eq!(c["readonlyRootFilesystem"], true);
    assert_eq!(c["logConfiguration"]["logDriver"], "awslogs");
    let secrets: Vec<&str> = c["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(secrets, ["FAILOVER_MONITOR_ADMIN_TOKEN"]);
    assert!(
        c["environment"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["name"] != "FAILOVER_MONITOR_ADMIN_TOKEN")
    );
    // the command and the health check parse with this build's CLI
    let hc: Vec<String> = c["healthCheck"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hc[0], "CMD");
    assert_eq!(hc[1], "/usr/local/bin/failover-monitor");
    assert_eq!(hc.last().map(String::as_str), Some("health"));
    for (args, name) in [
        (&hc[2..], "healthCheck"),
        (
            &c["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()[..],
            "command",
        ),
    ] {
        let mut args: Vec<String> = args
            .iter()
            .map(|a| {
                if a == "/etc/failover-monitor/monitor.toml" {
                    repo().join("monitor.toml").display().to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        // Parse only: `--help` after the arguments makes clap validate and exit 0.
        args.push("--help".into());
        let out = Command::new(binary()).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every task of a service has the service's instance id; what tells two tasks apart
/// (the lease owner's process value) is the task's own id, which the daemon reads
/// from the task metadata endpoint ECS names in `ECS_CONTAINER_METADATA_URI_V4`. The
/// service's rolling deployment starts the new task beside the old one (a duplicate
/// that waits) and gives the old one time to stop cleanly.
#[test]
fn ecs_tasks_of_a_service_share_its_instance_id_and_tell_apart_by_task() {
    let td: Value = serde_json::from_str(&read("deploy/ecs/task-definition.json")).unwrap();
    let c = &td["containerDefinitions"][0];
    let env = c["environment"].as_array().unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
    };
    let id = value("FAILOVER_MONITOR__MONITOR__INSTANCE_ID").expect("the instance id is set");
    let placeholders: Vec<&str> = id
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect();
    assert_eq!(
        placeholders,
        ["Region"],
        "{id}: one id per service (region), the same for all its tasks"
    );
    // ECS sets the metadata variable per task; the daemon reads it.
    const METADATA: &str = "ECS_CONTAINER_METADATA_URI_V4";
    assert!(value(METADATA).is_none(), "{METADATA} must be left to ECS");
    assert!(
        read("crates/daemon/src/backend.rs").contains(METADATA),
        "the daemon reads its task id through {METADATA}"
    );
    let stop = c["stopTimeout"].as_u64().expect("a stopTimeout");
    assert!(
        stop >= 10,
        "{stop} s: a write in flight and the lease's release need the time"
    );

    let svc: Value = serde_json::from_str(&read("deploy/ecs/service.json")).unwrap();
    assert_eq!(svc["taskDefinition"], td["family"]);
    assert_eq!(
        svc["desiredCount"], 1,
        "one task (one instance) per service"
    );
    assert_eq!(svc["launchType"], td["requiresCompatibilities"][0]);
    assert_eq!(svc["deploymentController"]["type"], "ECS");
    let d = &svc["deploymentConfiguration"];
    assert_eq!(
        (&d["minimumHealthyPercent"], &d["maximumPercent"]),
        (&Value::from(100), &Value::from(200)),
        "the new task starts beside the old one, which runs until it is healthy"
    );
    let readme = read("deploy/ecs/README.md");
    for word in ["duplicate", "minimumHealthyPercent", METADATA, "view_ttl"] {
        assert!(
            readme.contains(word),
            "deploy/ecs/README.md explains {word}"
        );
    }
}

#[test]
fn dockerfile_is_multi_stage_and_non_root() {
    let d = read("Dockerfile");
    assert_eq!(d.lines().filter(|l| l.starts_with("FROM ")).count(), 2);
    let user = d
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "runs as {user}"
    );
    assert!(d.contains("ENTRYPOINT [\"/usr/local/bin/failover-monitor\"]"));
    assert!(d.contains("--locked"));
}

/// Operation named in a provisioning error (`service:Operation`) -> IAM actions.
/// Operations not listed need the action of the same name.
fn provision_actions(op: &str) -> Vec<String> {
    let (service, name) = op.split_once(':').unwrap();
    let same = || vec![op.to_string()];
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match (service, name) {
        // API Gateway's IAM actions are the HTTP verbs of its management API.
        ("apigateway", n) if n.starts_with("Get") => v(&["apigateway:GET"]),
        ("apigateway", n) if n.starts_with("Put") => v(&["apigateway:PUT"]),
        ("apigateway", n) if n.starts_with("Create") => v(&["apigateway:POST"]),
        ("apigateway", n) if n.starts_with("Delete") => v(&["apigateway:DELETE"]),
        ("s3", "HeadBucket" | "ListObjectsV2") => v(&["s3:ListBucket"]),
        ("s3", "ListObjectVersions") => v(&["s3:ListBucketVersions"]),
        ("s3", "DeleteObjects") => v(&["s3:DeleteObject", "s3:DeleteObjectVersion"]),
        ("s3", "GetBucketCors") => v(&["s3:GetBucketCORS"]),
        ("s3", "PutBucketCors") => v(&["s3:PutBucketCORS"]),
        ("s3", "GetBucketReplication") => v(&["s3:GetReplicationConfiguration"]),
        ("s3", "PutBucketReplication") => v(&["s3:PutReplicationConfiguration", "iam:PassRole"]),
        ("s3", "DeleteBucketReplication") => v(&["s3:PutReplicationConfiguration"]),
        // Created with tags: tagging needs its own action.
        ("iam", "CreateRole") => v(&["iam:CreateRole", "iam:TagRole"]),
        ("dynamodb", "CreateTable") => v(&["dynamodb:CreateTable", "dynamodb:TagResource"]),
        ("dynamodb", "UpdateTable") => v(&[
            "dynamodb:UpdateTable",
            "dynamodb:CreateTableReplica",
            "dynamodb:DeleteTableReplica",
        ]),
        ("cloudwatch", "PutMetricAlarm") => {
            v(&["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"])
        }
        ("cognito-idp", "CreateUserPool" | "UpdateUserPool") => {
            vec![op.to_string(), "cognito-idp:TagResource".into()]
        }
        ("cognito-identity", "CreateIdentityPool" | "UpdateIdentityPool") => {
            vec![op.to_string(), "cognito-identity:TagResource".into()]
        }
        ("cognito-identity", "SetIdentityPoolRoles") => {
            v(&["cognito-identity:SetIdentityPoolRoles", "iam:PassRole"])
        }
        ("cloudfront", "CreateDistributionWithTags") => {
            v(&["cloudfront:CreateDistribution", "cloudfront:TagResource"])
        }
        _ => same(),
    }
}

/// Every `service:Operation` the provisioning code and the operations name in their
/// SDK calls (`.sdk(..)`, `.absent(..)`, `fail(..)`).
fn provision_calls() -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    // The whole wing: its folders too.
    let mut files = Vec::new();
    let mut dirs = vec![repo().join("crates/provision/src")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for path in files {
        let text: String = std::fs::read_to_string(&path)
            .unwrap()
            .split_whitespace()
            .collect();
        for marker in ["sdk(\"", "absent(\"", "fail(\""] {
            for (i, _) in text.match_indices(marker) {
                let rest = &text[i + marker.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == ':' || *c == '-')
                    .collect();
                if name.contains(':') {
                    ops.insert(name);
                }
            }
        }
    }
    ops
}

#[test]
fn provision_policy_allows_exactly_what_provisioning_calls() {
    let calls = provision_calls();
    assert!(calls.len() >= 60, "the scan found too little: {calls:?}");
    let mut needed = BTreeSet::new();
    for op in &calls {
        needed.extend(provision_actions(op));
    }
    // Resources are the stack's own wherever the service can scope them.
    let granted = granted_actions("deploy/iam/provision-policy.json", |sid, r| {
        r.contains("${Project}")
            || r.contains("${ZoneId}")
            || r.contains("${PrimaryRegion}")
            || r.contains("${SecondaryRegion}")
            || r == "arn:aws:route53:::healthcheck/*"
            || ["WhoAmI", "UserPools", "IdentityPools", "Cdn"].contains(&sid)
    });
    assert_eq!(
        granted, needed,
        "policy grants (left) vs what provisioning calls (right)"
    );
}

/// The readiness check's stack part plans the secondary's half of the stack from
/// the running daemon: `deploy/iam/monitor-readiness-policy.json` grants it the
/// read-only part of the provisioning policy, statement by statement on the same
/// resources, and nothing that writes. (Left out: `dynamodb:GetItem`, which
/// `monitor-policy.json` grants on the monitor's own keys, the config item's
/// included; object reads and `s3:ListBucketVersions`, which only destroy uses.)
#[test]
fn readiness_policy_is_the_read_only_part_of_the_provision_policy() {
    let read_only = |a: &str| {
        let op = a.split_once(':').map_or(a, |(_, op)| op);
        a == "apigateway:GET"
            || (op.starts_with("Get")
                || op.starts_with("List")
                || op.starts_with("Describe")
                || op.starts_with("AdminGet"))
                && !["dynamodb:GetItem", "s3:ListBucketVersions"].contains(&a)
    };
    let statements = |path: &str| -> Vec<(String, Vec<String>, Value)> {
        let policy: Value = serde_json::from_str(&read(path)).unwrap();
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|st| {
                assert_eq!(st["Effect"], "Allow");
                let actions = st["Action"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect();
                (
                    st["Sid"].as_str().unwrap().to_owned(),
                    actions,
                    st["Resource"].clone(),
                )
            })
            .collect()
    };
    let want: Vec<(String, Vec<String>, Value)> = statements("deploy/iam/provision-policy.json")
        .into_iter()
        .filter(|(sid, _, _)| sid != "BucketObjects")
        .map(|(sid, actions, resources)| {
            let reads = actions.into_iter().filter(|a| read_only(a)).collect();
            (sid, reads, resources)
        })
        .filter(|(_, reads, _): &(String, Vec<String>, Value)| !reads.is_empty())
        .collect();
    let granted = statements("deploy/iam/monitor-readiness-policy.json");
    assert_eq!(
        granted, want,
        "readiness policy (left) vs the read-only part of the provision policy (right)"
    );
    assert!(granted.len() >= 8, "{granted:?}");
}
