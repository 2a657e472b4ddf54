//! What the stack gives its users once it exists: the outputs (JSON), the web
//! page's `uiConfig.json`, and a `monitor.toml` whose probes target the provisioned
//! resources.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::context::{Cx, Facts, api_key};
use super::resources::api::{ApiKind, stage_url};
use super::resources::monitoring;
use failover_config::{RegionRule, Settings, TablesMode};
use failover_core::model::Role;

/// The stage URL of one of the stack's APIs (see [`stage_url`]), once it exists.
fn api_url(cx: &Cx, facts: &Facts, kind: ApiKind, role: Role) -> Option<String> {
    let region = cx.region(role);
    facts
        .apis
        .get(&api_key(kind, role))
        .map(|id| stage_url(id, &region.name, region.endpoint.as_deref()))
}

/// `uiConfig.json` as the web page (deploy/website) reads it: the original's keys,
/// plus, where a region is an emulator, its `endpoint` (S3 then path-style) and the
/// primary's as `cognitoEndpoint` (the pools live there); the API URLs are then in
/// the emulator's form.
pub fn ui_config(cx: &Cx, facts: &Facts) -> Value {
    let region = |role: Role| {
        let mut r = json!({
            "stateUrl": api_url(cx, facts, ApiKind::Config, role)
                .map(|u| format!("{u}/state/{}", cx.stack.app_id)),
            "objectStoreBucketName": cx.stack.bucket(role),
            "photosApi": api_url(cx, facts, ApiKind::Store, role),
            "region": cx.stack.region_name(role),
        });
        if let Some(e) = &cx.region(role).endpoint {
            r["endpoint"] = json!(e.trim_end_matches('/'));
        }
        r
    };
    let mut ui = json!({
        "identityPoolId": facts.identity_pool_id,
        "userPoolClientId": facts.client_id,
        "userPoolId": facts.user_pool_id,
        "uiRegion": cx.stack.region_name(Role::Primary),
        "primary": region(Role::Primary),
        "secondary": region(Role::Secondary),
    });
    if let Some(e) = &cx.region(Role::Primary).endpoint {
        ui["cognitoEndpoint"] = json!(e.trim_end_matches('/'));
    }
    ui
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
            TablesMode::PerRegion => "per-region (two independent tables, as stack.tables says)",
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

/// Lines of a TOML file being written.
#[derive(Default)]
struct Toml(String);

impl Toml {
    fn line(&mut self, line: impl AsRef<str>) {
        self.0.push_str(line.as_ref());
        self.0.push('\n');
    }
    /// A blank line, then `[name]`.
    fn section(&mut self, name: &str) {
        self.line("");
        self.line(format!("[{name}]"));
    }
    fn key(&mut self, key: &str, value: impl std::fmt::Display) {
        self.line(format!("{key} = {value}"));
    }
    fn string(&mut self, key: &str, value: &str) {
        self.key(key, toml_str(value));
    }
    fn duration(&mut self, key: &str, value: std::time::Duration) {
        self.string(key, &humantime::format_duration(value).to_string());
    }
}

/// A complete `monitor.toml` for this stack: the settings it was made from, and
/// probes on the provisioned APIs, buckets, tables and alarms.
pub fn monitor_toml(cx: &Cx, facts: &Facts, source: &str) -> Result<String> {
    let s = &cx.stack.settings;
    let mut w = Toml::default();
    w.line(format!(
        "# Written by `failover-monitor provision monitor-config` from {source}: the probes\n\
         # target the resources `provision apply` made. Edit freely; re-run to regenerate."
    ));
    if s.coordination.is_some() || s.route53.is_some() {
        w.line(format!(
            "# NOTE: the [coordination] and [route53] sections of {source} are not carried over."
        ));
    }
    w.line("");
    w.line("[app]");
    w.string("id", &cx.stack.app_id);
    w.string("project", &cx.stack.project);
    for role in Role::BOTH {
        let r = s.regions.get(role);
        w.section(&format!("regions.{role}"));
        w.string("name", &r.name);
        if let Some(url) = &r.endpoint_url {
            w.string("endpoint_url", url);
        }
    }
    monitor_sections(&mut w, s);
    let probes = probes(cx, facts)?;
    let primaries = probes
        .iter()
        .filter(|p| p.contains("region = \"primary\""))
        .count();
    let rule = match s.policy.failover_when {
        RegionRule::AtLeast { m, .. } if m != primaries => RegionRule::Majority,
        r => r,
    };
    w.section("policy");
    w.string("failover_when", &rule.to_string());
    w.key(
        "require_healthy_secondary",
        s.policy.require_healthy_secondary,
    );
    for p in probes {
        w.line("");
        w.line(p);
    }
    w.section("admin");
    w.string("listen", &s.admin.listen.to_string());
    if let Some(t) = &s.admin.token_file {
        w.string("token_file", &t.display().to_string());
    }
    stack_section(&mut w, cx);
    Ok(w.0)
}

/// `[monitor]` and `[probe_defaults]`, as they were.
fn monitor_sections(w: &mut Toml, s: &Settings) {
    let m = &s.monitor;
    w.section("monitor");
    w.string("instance_id", &m.instance_id);
    w.string("mode", m.mode.as_str());
    w.string(
        "failback",
        match m.failback {
            failover_config::Failback::Manual => "manual",
            failover_config::Failback::Auto => "auto",
        },
    );
    w.duration("failback_after", m.failback_after);
    w.duration("hold_down", m.hold_down);
    w.duration("fence_for", m.fence_for);
    let pd = &s.probe_defaults;
    w.section("probe_defaults");
    w.duration("interval", pd.interval);
    w.duration("timeout", pd.timeout);
    w.duration("jitter", pd.jitter);
    w.key("fall", pd.fall);
    w.key("rise", pd.rise);
}

fn stack_section(w: &mut Toml, cx: &Cx) {
    let st = &cx.stack;
    w.section("stack");
    w.string("cognito_username", &st.cognito_username);
    w.string("cognito_email", &st.cognito_email);
    if let Some(t) = st.settings.stack.tables {
        let mode = match t {
            TablesMode::Global => "global",
            TablesMode::PerRegion => "per-region",
        };
        w.string("tables", mode);
    }
    if let Some((zone, domain)) = st.zone() {
        w.string("route53_zone_id", zone);
        w.string("domain", domain);
    }
}

fn probes(cx: &Cx, facts: &Facts) -> Result<Vec<String>> {
    let st = &cx.stack;
    let mut out = Vec::new();
    for role in Role::BOTH {
        // The state API as the page reads it (on an emulator, through its execution
        // layer): up when it answers the item's state.
        let Some(url) = api_url(cx, facts, ApiKind::Config, role) else {
            bail!("the {role} config API is not there: run `provision apply` first")
        };
        let http = format!(
            "url = {}\nexpect_status = [200]\nexpect_body = {}",
            toml_str(&format!("{url}/state/{{app_id}}")),
            toml_str("\"state\"")
        );
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
