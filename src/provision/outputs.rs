//! What the stack gives its users once it exists: the outputs (JSON), the web
//! page's `uiConfig.json`, and a `monitor.toml` whose probes target the provisioned
//! resources.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::api::{ApiKind, invoke_url};
use super::monitoring;
use super::{Cx, Facts, api_key};
use crate::config::{RegionRule, TablesMode};
use crate::model::Role;

fn api_url(cx: &Cx, facts: &Facts, kind: ApiKind, role: Role) -> Option<String> {
    facts
        .apis
        .get(&api_key(kind, role))
        .map(|id| invoke_url(id, cx.stack.region_name(role)))
}

/// `uiConfig.json` as the original web page reads it.
pub fn ui_config(cx: &Cx, facts: &Facts) -> Value {
    let region = |role: Role| {
        json!({
            "stateUrl": api_url(cx, facts, ApiKind::Config, role)
                .map(|u| format!("{u}/state/{}", cx.stack.app_id)),
            "objectStoreBucketName": cx.stack.bucket(role),
            "photosApi": api_url(cx, facts, ApiKind::Store, role),
            "region": cx.stack.region_name(role),
        })
    };
    json!({
        "identityPoolId": facts.identity_pool_id,
        "userPoolClientId": facts.client_id,
        "userPoolId": facts.user_pool_id,
        "uiRegion": cx.stack.region_name(Role::Primary),
        "primary": region(Role::Primary),
        "secondary": region(Role::Secondary),
    })
}

pub fn cdn_url(facts: &Facts) -> Option<String> {
    facts
        .distribution_domain
        .as_ref()
        .map(|d| format!("https://{d}"))
}

/// Every output of the stack. `missing` lists what the plan would still create.
pub fn outputs(cx: &Cx, facts: &Facts, missing: &[String]) -> Value {
    let apis: serde_json::Map<String, Value> = facts
        .apis
        .iter()
        .map(|(k, id)| (k.clone(), json!(id)))
        .collect();
    json!({
        "project": cx.stack.project,
        "appId": cx.stack.app_id,
        "tables": match cx.stack.tables {
            TablesMode::Global => "global (one table, replica in the secondary)",
            TablesMode::PerRegion => "per-region (two independent tables: the endpoint cannot replicate)",
        },
        "uiConfig": ui_config(cx, facts),
        "cdnUrl": cdn_url(facts),
        "apis": apis,
        "roles": facts.role_arns,
        "alarms": Role::BOTH.iter().map(|&r| (r.to_string(), monitoring::alarms(&cx.stack, r)
            .into_iter().map(|a| a.name).collect::<Vec<_>>())).collect::<std::collections::BTreeMap<_, _>>(),
        "healthChecks": facts.health_checks,
        "notAccepted": facts.notes,
        "missing": missing,
    })
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// A complete `monitor.toml` for this stack: the settings it was made from, and
/// probes on the provisioned APIs, buckets, tables and alarms.
pub fn monitor_toml(cx: &Cx, facts: &Facts, source: &str) -> Result<String> {
    let s = &cx.stack.settings;
    let st = &cx.stack;
    let mut out = String::new();
    let mut w = |line: String| {
        out.push_str(&line);
        out.push('\n');
    };
    w(format!(
        "# Written by `failover-monitor provision monitor-config` from {source}: the probes\n\
         # target the resources `provision apply` made. Edit freely; re-run to regenerate."
    ));
    if s.coordination.is_some() || s.route53.is_some() {
        w(format!(
            "# NOTE: the [coordination] and [route53] sections of {source} are not carried over."
        ));
    }
    w(String::new());
    w("[app]".into());
    w(format!("id = {}", toml_str(&st.app_id)));
    w(format!("project = {}", toml_str(&st.project)));
    for role in Role::BOTH {
        let r = s.regions.get(role);
        w(String::new());
        w(format!("[regions.{role}]"));
        w(format!("name = {}", toml_str(&r.name)));
        if let Some(url) = &r.endpoint_url {
            w(format!("endpoint_url = {}", toml_str(url)));
        }
    }
    let m = &s.monitor;
    let d = |x: std::time::Duration| toml_str(&humantime::format_duration(x).to_string());
    w(String::new());
    w("[monitor]".into());
    w(format!("instance_id = {}", toml_str(&m.instance_id)));
    w(format!("mode = {}", toml_str(m.mode.as_str())));
    w(format!(
        "failback = {}",
        toml_str(match m.failback {
            crate::config::Failback::Manual => "manual",
            crate::config::Failback::Auto => "auto",
        })
    ));
    w(format!("failback_after = {}", d(m.failback_after)));
    w(format!("hold_down = {}", d(m.hold_down)));
    w(format!("fence_for = {}", d(m.fence_for)));

    let pd = &s.probe_defaults;
    w(String::new());
    w("[probe_defaults]".into());
    w(format!("interval = {}", d(pd.interval)));
    w(format!("timeout = {}", d(pd.timeout)));
    w(format!("jitter = {}", d(pd.jitter)));
    w(format!("fall = {}", pd.fall));
    w(format!("rise = {}", pd.rise));

    let probes = probes(cx, facts)?;
    let primaries = probes
        .iter()
        .filter(|p| p.contains("region = \"primary\""))
        .count();
    let rule = match s.policy.failover_when {
        RegionRule::AtLeast { m, .. } if m != primaries => RegionRule::Majority,
        r => r,
    };
    w(String::new());
    w("[policy]".into());
    w(format!("failover_when = {}", toml_str(&rule.to_string())));
    w(format!(
        "require_healthy_secondary = {}",
        s.policy.require_healthy_secondary
    ));
    for p in probes {
        w(String::new());
        w(p);
    }
    w(String::new());
    w("[admin]".into());
    w(format!(
        "listen = {}",
        toml_str(&s.admin.listen.to_string())
    ));
    if let Some(t) = &s.admin.token_file {
        w(format!(
            "token_file = {}",
            toml_str(&t.display().to_string())
        ));
    }
    w(String::new());
    w("[stack]".into());
    w(format!(
        "cognito_username = {}",
        toml_str(&st.cognito_username)
    ));
    w(format!("cognito_email = {}", toml_str(&st.cognito_email)));
    if let Some(t) = s.stack.tables {
        w(format!(
            "tables = {}",
            toml_str(match t {
                TablesMode::Global => "global",
                TablesMode::PerRegion => "per-region",
            })
        ));
    }
    if let Some((zone, domain)) = st.zone() {
        w(format!("route53_zone_id = {}", toml_str(zone)));
        w(format!("domain = {}", toml_str(domain)));
    }
    Ok(out)
}

fn probes(cx: &Cx, facts: &Facts) -> Result<Vec<String>> {
    let st = &cx.stack;
    let mut out = Vec::new();
    for role in Role::BOTH {
        let region = cx.region(role);
        let http = match (&region.endpoint, api_url(cx, facts, ApiKind::Config, role)) {
            // An emulator cannot run API Gateway integrations: probe the endpoint.
            (Some(endpoint), _) => format!(
                "# The emulator cannot invoke API Gateway: this probes the region's endpoint.\n\
                 url = {}\nexpect_status = [200]\nexpect_body = \"ListAllMyBucketsResult\"",
                toml_str(&format!("{}/", endpoint.trim_end_matches('/')))
            ),
            (None, Some(url)) => format!(
                "url = {}\nexpect_status = [200]\nexpect_body = {}",
                toml_str(&format!("{url}/state/{{app_id}}")),
                toml_str("\"state\"")
            ),
            (None, None) => {
                bail!("the {role} config API is not there: run `provision apply` first")
            }
        };
        out.push(format!(
            "[[probes]]\nname = \"{role}-state-api\"\nkind = \"http\"\nregion = \"{role}\"\n{http}"
        ));
        let check = if role == Role::Primary {
            "roundtrip"
        } else {
            "head_bucket"
        };
        out.push(format!(
            "[[probes]]\nname = \"{role}-photos\"\nkind = \"s3\"\nregion = \"{role}\"\n\
             bucket = {}\ncheck = \"{check}\"",
            toml_str(&st.bucket(role))
        ));
        out.push(format!(
            "[[probes]]\nname = \"{role}-config-item\"\nkind = \"dynamodb\"\nregion = \"{role}\"\n\
             table = {}\ncheck = \"get_item\"",
            toml_str(&st.config_table())
        ));
        if role == Role::Primary {
            out.push(format!(
                "[[probes]]\nname = \"{role}-store-table\"\nkind = \"dynamodb\"\nregion = \"{role}\"\n\
                 table = {}\ncheck = \"describe_table\"",
                toml_str(&st.store_table())
            ));
            let alarms: Vec<String> = monitoring::alarms(st, role)
                .into_iter()
                .map(|a| toml_str(&a.name))
                .collect();
            out.push(format!(
                "[[probes]]\nname = \"{role}-alarms\"\nkind = \"cloudwatch_alarm\"\nregion = \"{role}\"\n\
                 alarms = [{}]\n\
                 insufficient_data = \"ok\"   # the alarms treat missing data as not breaching\n\
                 interval = \"10s\"\ntimeout = \"3s\"\nfall = 2\nrise = 2",
                alarms.join(", ")
            ));
        }
    }
    Ok(out)
}
