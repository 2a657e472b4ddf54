//! What the stack gives its users once it exists: the outputs (JSON), the web
//! page's `uiConfig.json`, and a `monitor.toml` whose probes target the provisioned
//! resources.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use std::collections::BTreeMap;

use crate::context::StackContext;
use crate::names::ApiKind;
use crate::resources::api::{api_id, stage_url};
use crate::resources::{cdn, dns, iam, identity_pool, monitoring, user_pool};
use failover_config::{RegionRule, Settings, TablesMode};
use failover_core::model::Role;
use failover_provision_engine::Fact;
use failover_provision_engine::facts::NOTE;

/// The stage URL of one of the stack's APIs (see [`stage_url`]), once it exists.
fn api_url(context: &StackContext, kind: ApiKind, role: Role) -> Option<String> {
    let region = context.region(role);
    known(context, &api_id(context.names(), kind, role))
        .map(|id| stage_url(&id, &region.name, region.endpoint.as_deref()))
}

/// A fact apply or plan learned, if one did.
fn known(context: &StackContext, fact: &Fact) -> Option<String> {
    context.facts().find(fact)
}

/// `name -> value` of those of `facts` that are known.
fn known_by_name(
    context: &StackContext,
    facts: impl IntoIterator<Item = (String, Fact)>,
) -> BTreeMap<String, String> {
    facts
        .into_iter()
        .filter_map(|(name, fact)| Some((name, known(context, &fact)?)))
        .collect()
}

/// `uiConfig.json` as the web page (deploy/website) reads it: the original's keys,
/// plus, where a region is an emulator, its `endpoint` (S3 then path-style) and the
/// primary's as `cognitoEndpoint` (the pools live there); the API URLs are then in
/// the emulator's form.
pub fn ui_config(context: &StackContext) -> Value {
    let names = context.names();
    let region = |role: Role| {
        let mut r = json!({
            "stateUrl": api_url(context, ApiKind::Config, role)
                .map(|u| format!("{u}/state/{}", context.stack.app_id)),
            "objectStoreBucketName": context.names().bucket(role),
            "photosApi": api_url(context, ApiKind::Store, role),
            "region": context.stack.region_name(role),
        });
        if let Some(e) = &context.region(role).endpoint {
            r["endpoint"] = json!(e.trim_end_matches('/'));
        }
        r
    };
    let mut ui = json!({
        "identityPoolId": known(context, &identity_pool::pool_id(names)),
        "userPoolClientId": known(context, &user_pool::client_id(names)),
        "userPoolId": known(context, &user_pool::pool_id(names)),
        "uiRegion": context.stack.region_name(Role::Primary),
        "primary": region(Role::Primary),
        "secondary": region(Role::Secondary),
    });
    if let Some(e) = &context.region(Role::Primary).endpoint {
        ui["cognitoEndpoint"] = json!(e.trim_end_matches('/'));
    }
    ui
}

pub fn cdn_url(context: &StackContext) -> Option<String> {
    known(context, &cdn::distribution_domain(context.names())).map(|d| format!("https://{d}"))
}

/// Every output of the stack. `missing` lists what the plan would still create.
pub fn outputs(context: &StackContext, missing: &[String]) -> Value {
    let names = context.names();
    let apis = Role::BOTH.iter().flat_map(|&role| {
        ApiKind::BOTH.map(|kind| {
            (
                format!("{role}/{}", kind.as_str()),
                api_id(names, kind, role),
            )
        })
    });
    let roles = iam::service_roles(names)
        .into_iter()
        .chain([iam::web_role(names)]);
    let roles = roles.map(|r| (r.name.clone(), iam::role_arn(&r.name)));
    let checks = Role::BOTH.map(|r| (r.to_string(), dns::health_check_id(names, r)));
    json!({
        "project": context.stack.project(),
        "appId": context.stack.app_id,
        "tables": match context.stack.tables {
            TablesMode::Global => "global (one table, replica in the secondary)",
            TablesMode::PerRegion => "per-region (two independent tables, as stack.tables says)",
        },
        "uiConfig": ui_config(context),
        "cdnUrl": cdn_url(context),
        "apis": known_by_name(context, apis),
        "roles": known_by_name(context, roles),
        "alarms": Role::BOTH.iter().map(|&r| (r.to_string(), monitoring::alarms(names, r)
            .into_iter().map(|a| a.name).collect::<Vec<_>>())).collect::<std::collections::BTreeMap<_, _>>(),
        "healthChecks": known_by_name(context, checks),
        "notAccepted": context.facts().all(NOTE),
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
pub fn monitor_toml(context: &StackContext, source: &str) -> Result<String> {
    let s = &context.stack.settings;
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
    w.string("id", &context.stack.app_id);
    w.string("project", context.stack.project());
    for role in Role::BOTH {
        let r = s.regions.get(role);
        w.section(&format!("regions.{role}"));
        w.string("name", &r.name);
        if let Some(url) = &r.endpoint_url {
            w.string("endpoint_url", url);
        }
    }
    monitor_sections(&mut w, s);
    let probes = probes(context)?;
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
    stack_section(&mut w, context);
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

fn stack_section(w: &mut Toml, context: &StackContext) {
    let st = &context.stack;
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

fn probes(context: &StackContext) -> Result<Vec<String>> {
    let st = &context.stack;
    let mut out = Vec::new();
    for role in Role::BOTH {
        // The state API as the page reads it (on an emulator, through its execution
        // layer): up when it answers the item's state.
        let Some(url) = api_url(context, ApiKind::Config, role) else {
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
            toml_str(&st.names.bucket(role))
        ));
        out.push(format!(
            "[[probes]]\nname = \"{role}-config-item\"\nkind = \"dynamodb\"\nregion = \"{role}\"\n\
             table = {}\ncheck = \"get_item\"",
            toml_str(&st.names.config_table())
        ));
        if role == Role::Primary {
            out.push(format!(
                "[[probes]]\nname = \"{role}-store-table\"\nkind = \"dynamodb\"\nregion = \"{role}\"\n\
                 table = {}\ncheck = \"describe_table\"",
                toml_str(&st.names.store_table())
            ));
            let alarms: Vec<String> = monitoring::alarms(&st.names, role)
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
