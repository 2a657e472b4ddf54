//! `failover-monitor provision`: the whole two-region stack the monitor guards,
//! described from `monitor.toml`, created, inspected and destroyed by one binary.
//!
//! The shape is a list of [`Resource`]s in dependency order. Each is first
//! *observed* ([`Observed`]: absent, present and owned (with its drift), or present
//! and foreign); the observations make the [`Plan`]; `apply` walks the plan in order
//! and stops at the first failure, naming the resource; `destroy` walks it backwards
//! and deletes only what carries this stack's tag ([`sdk::STACK_TAG`]). Nothing is
//! ever adopted: a resource with one of the stack's names that the stack did not
//! create makes the plan refuse before anything is written.
//!
//! The running daemon never calls into this module (DESIGN.md); it is a batch tool.

pub mod api;
pub mod cdn;
pub mod cognito;
pub mod dns;
pub mod iam;
pub mod monitoring;
pub mod outputs;
pub mod sdk;
pub mod storage;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use tokio::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;

use crate::config::{ConfigError, Settings, TablesMode};
use crate::model::Role;

use sdk::{Global, Region};

/// What one resource is, with what its steps need to know.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Spec {
    IamRole(iam::RoleSpec),
    Table(storage::TableSpec),
    ConfigItem,
    Bucket(storage::BucketSpec),
    RestApi(api::ApiKind),
    Alarm(monitoring::AlarmSpec),
    UserPool,
    UserPoolClient,
    CognitoUser { email: String },
    IdentityPool,
    IdentityPoolRoles,
    Distribution,
    WebsiteBucketPolicy,
    HealthCheck { api_region: Role },
    FailoverRecords,
}

impl Spec {
    pub fn kind(&self) -> &'static str {
        match self {
            Spec::IamRole(_) => "iam-role",
            Spec::Table(_) => "dynamodb-table",
            Spec::ConfigItem => "config-item",
            Spec::Bucket(_) => "s3-bucket",
            Spec::RestApi(_) => "rest-api",
            Spec::Alarm(_) => "cloudwatch-alarm",
            Spec::UserPool => "user-pool",
            Spec::UserPoolClient => "user-pool-client",
            Spec::CognitoUser { .. } => "cognito-user",
            Spec::IdentityPool => "identity-pool",
            Spec::IdentityPoolRoles => "identity-pool-roles",
            Spec::Distribution => "cloudfront-distribution",
            Spec::WebsiteBucketPolicy => "bucket-policy",
            Spec::HealthCheck { .. } => "route53-health-check",
            Spec::FailoverRecords => "route53-failover-records",
        }
    }
}

/// One resource of the stack: where it lives (`None` for global services), its name
/// and what it must look like.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub region: Option<Role>,
    pub name: String,
    pub spec: Spec,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.spec.kind(), self.name)?;
        match self.region {
            Some(r) => write!(f, " ({r})"),
            None => write!(f, " (global)"),
        }
    }
}

/// What is there now, as far as this stack is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Absent,
    /// There, but not created by this stack: never adopted, changed or deleted.
    Foreign(String),
    /// There and ours; `drift` lists how it differs from the description.
    Present {
        drift: Vec<String>,
    },
}

impl Observed {
    pub fn ours() -> Self {
        Observed::Present { drift: Vec::new() }
    }
    pub fn drifted(drift: Vec<String>) -> Self {
        Observed::Present { drift }
    }
}

/// The plan's verdict for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "detail", rename_all = "lowercase")]
pub enum Action {
    Create,
    Update(Vec<String>),
    Keep,
    Delete,
    /// Nothing to delete.
    Absent,
    Refuse(String),
}

impl Action {
    fn symbol(&self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update(_) => "~",
            Action::Keep | Action::Absent => "=",
            Action::Delete => "-",
            Action::Refuse(_) => "!",
        }
    }
    fn changes(&self) -> bool {
        matches!(self, Action::Create | Action::Update(_) | Action::Delete)
    }
}

/// The stack described from the settings: names, regions, resources.
#[derive(Debug, Clone)]
pub struct Stack {
    pub settings: Settings,
    pub project: String,
    pub app_id: String,
    pub tables: TablesMode,
    pub cognito_username: String,
    pub cognito_email: String,
}

/// The regions this build can provision in. The daemon accepts any well-formed
/// region name; provisioning refuses one it does not know, because a mistyped
/// secondary would otherwise fail only after the primary's half was created.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

impl Stack {
    /// Checks what provisioning needs beyond what `check-config` checks, before any
    /// AWS call.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        for role in Role::BOTH {
            let name = &settings.regions.get(role).name;
            if !KNOWN_REGIONS.contains(&name.as_str()) {
                return Err(ConfigError::Invalid {
                    key: format!("regions.{role}.name"),
                    value: format!("{name:?}"),
                    allowed: "not an AWS region `provision` knows (for example us-east-1, \
                              ap-northeast-1); nothing was created"
                        .into(),
                });
            }
        }
        let missing = |key: &str| ConfigError::Invalid {
            key: key.into(),
            value: "(not set)".into(),
            allowed: "required by `provision`".into(),
        };
        let cognito_username = settings
            .stack
            .cognito_username
            .clone()
            .ok_or_else(|| missing("stack.cognito_username"))?;
        let cognito_email = settings
            .stack
            .cognito_email
            .clone()
            .ok_or_else(|| missing("stack.cognito_email"))?;
        let tables = settings.stack.tables.unwrap_or(
            if settings.regions.primary.endpoint_url.is_some()
                || settings.regions.secondary.endpoint_url.is_some()
            {
                TablesMode::PerRegion
            } else {
                TablesMode::Global
            },
        );
        Ok(Stack {
            project: settings.app.project.clone(),
            app_id: settings.app.id.clone(),
            tables,
            cognito_username,
            cognito_email,
            settings: settings.clone(),
        })
    }

    pub fn region_name(&self, role: Role) -> &str {
        &self.settings.regions.get(role).name
    }

    pub fn bucket(&self, role: Role) -> String {
        format!("{}-{role}", self.project)
    }
    pub fn website_bucket(&self) -> String {
        format!("{}-website", self.project)
    }
    pub fn config_table(&self) -> String {
        format!("{}-config", self.project)
    }
    pub fn store_table(&self) -> String {
        format!("{}-store", self.project)
    }
    pub fn api_name(&self, kind: api::ApiKind, role: Role) -> String {
        format!("{}-{}-{role}", self.project, kind.as_str())
    }
    pub fn role_name(&self, what: &str) -> String {
        format!("{}-{what}", self.project)
    }
    pub fn zone(&self) -> Option<(&str, &str)> {
        match (
            &self.settings.stack.route53_zone_id,
            &self.settings.stack.domain,
        ) {
            (Some(z), Some(d)) => Some((z.as_str(), d.as_str())),
            _ => None,
        }
    }

    /// Every resource, in the order they are created.
    pub fn resources(&self) -> Vec<Resource> {
        let mut out = Vec::new();
        let global = |name: String, spec| Resource {
            region: None,
            name,
            spec,
        };
        let at = |role, name: String, spec| Resource {
            region: Some(role),
            name,
            spec,
        };
        for spec in iam::service_roles(self) {
            out.push(global(spec.name.clone(), Spec::IamRole(spec)));
        }
        let table_roles: &[Role] = match self.tables {
            TablesMode::Global => &[Role::Primary],
            TablesMode::PerRegion => &Role::BOTH,
        };
        for &role in table_roles {
            for store in [false, true] {
                let name = if store {
                    self.store_table()
                } else {
                    self.config_table()
                };
                out.push(at(
                    role,
                    name,
                    Spec::Table(storage::TableSpec::new(self, store)),
                ));
            }
            out.push(at(role, self.app_id.clone(), Spec::ConfigItem));
        }
        out.push(at(
            Role::Secondary,
            self.bucket(Role::Secondary),
            Spec::Bucket(storage::BucketSpec::photos(self, Role::Secondary)),
        ));
        out.push(at(
            Role::Primary,
            self.bucket(Role::Primary),
            Spec::Bucket(storage::BucketSpec::photos(self, Role::Primary)),
        ));
        out.push(at(
            Role::Primary,
            self.website_bucket(),
            Spec::Bucket(storage::BucketSpec::website()),
        ));
        for role in Role::BOTH {
            for kind in [api::ApiKind::Config, api::ApiKind::Store] {
                out.push(at(role, self.api_name(kind, role), Spec::RestApi(kind)));
            }
        }
        for role in Role::BOTH {
            for alarm in monitoring::alarms(self, role) {
                out.push(at(role, alarm.name.clone(), Spec::Alarm(alarm)));
            }
        }
        let p = Role::Primary;
        out.push(at(p, self.project.clone(), Spec::UserPool));
        out.push(at(p, format!("{}-web", self.project), Spec::UserPoolClient));
        out.push(at(
            p,
            self.cognito_username.clone(),
            Spec::CognitoUser {
                email: self.cognito_email.clone(),
            },
        ));
        out.push(at(p, cognito::identity_pool_name(self), Spec::IdentityPool));
        let web = iam::web_role(self);
        out.push(global(web.name.clone(), Spec::IamRole(web)));
        out.push(at(
            p,
            cognito::identity_pool_name(self),
            Spec::IdentityPoolRoles,
        ));
        out.push(global(
            format!("{}-website", self.project),
            Spec::Distribution,
        ));
        out.push(at(p, self.website_bucket(), Spec::WebsiteBucketPolicy));
        if let Some((_, domain)) = self.zone() {
            for role in Role::BOTH {
                out.push(global(
                    format!("{}-{role}-state", self.project),
                    Spec::HealthCheck { api_region: role },
                ));
            }
            out.push(global(domain.to_string(), Spec::FailoverRecords));
        }
        out
    }
}

/// What earlier steps learned that later ones need: ARNs and generated ids.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Facts {
    pub account: Option<String>,
    pub role_arns: BTreeMap<String, String>,
    /// `(region, api kind)` -> REST API id.
    pub apis: BTreeMap<String, String>,
    pub user_pool_id: Option<String>,
    pub client_id: Option<String>,
    pub identity_pool_id: Option<String>,
    pub distribution_id: Option<String>,
    pub distribution_arn: Option<String>,
    pub distribution_domain: Option<String>,
    pub health_checks: BTreeMap<String, String>,
    /// What the endpoint accepted without doing (emulator gaps), by resource.
    pub notes: BTreeMap<String, String>,
}

/// Among the resources named like one of the stack's (`same` of them), the one that
/// carries the stack's tag: `None` when there is none of that name, `Some(Err(why))`
/// when they are all someone else's, an error when several claim to be the stack's.
pub fn pick_ours(
    what: &str,
    name: &str,
    same: usize,
    ours: Vec<String>,
) -> Result<Option<Result<String, String>>> {
    match (ours.len(), same) {
        (1, _) => Ok(ours.into_iter().next().map(Ok)),
        (0, 0) => Ok(None),
        (0, _) => Ok(Some(Err(format!(
            "{what} without the {} tag",
            sdk::STACK_TAG
        )))),
        (n, _) => bail!(
            "{n} of the {what}s named {name} carry this stack's tag; delete the extra ones by hand"
        ),
    }
}

pub fn api_key(kind: api::ApiKind, role: Role) -> String {
    format!("{role}/{}", kind.as_str())
}

/// The clients and the facts the steps share.
pub struct Cx {
    pub stack: Stack,
    regions: [Region; 2],
    pub global: Global,
    facts: Mutex<Facts>,
}

impl Cx {
    pub async fn connect(stack: Stack) -> Cx {
        let (primary, sdk) = Region::load(&stack.settings.regions.primary).await;
        let (secondary, _) = Region::load(&stack.settings.regions.secondary).await;
        Cx {
            global: Global::new(&sdk),
            stack,
            regions: [primary, secondary],
            facts: Mutex::new(Facts::default()),
        }
    }

    pub fn region(&self, role: Role) -> &Region {
        match role {
            Role::Primary => &self.regions[0],
            Role::Secondary => &self.regions[1],
        }
    }

    pub fn facts(&self) -> Facts {
        self.facts.lock().expect("facts lock").clone()
    }

    pub fn learn(&self, f: impl FnOnce(&mut Facts)) {
        f(&mut self.facts.lock().expect("facts lock"));
    }

    /// The account id, asked once (needed in ARNs of policies).
    pub async fn account(&self) -> Result<String> {
        if let Some(a) = self.facts().account {
            return Ok(a);
        }
        let out = self
            .global
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| sdk::fail("sts:GetCallerIdentity", &e))?;
        let account = out.account().unwrap_or_default().to_string();
        self.learn(|f| f.account = Some(account.clone()));
        Ok(account)
    }

    async fn observe(&self, r: &Resource) -> Result<Observed> {
        let role = r.region.unwrap_or(Role::Primary);
        match &r.spec {
            Spec::IamRole(spec) => iam::observe(self, spec).await,
            Spec::Table(spec) => storage::observe_table(self, role, &r.name, spec).await,
            Spec::ConfigItem => storage::observe_item(self, role).await,
            Spec::Bucket(spec) => storage::observe_bucket(self, role, &r.name, spec).await,
            Spec::RestApi(kind) => api::observe(self, role, *kind).await,
            Spec::Alarm(spec) => monitoring::observe(self, role, spec).await,
            Spec::UserPool => cognito::observe_pool(self).await,
            Spec::UserPoolClient => cognito::observe_client(self, &r.name).await,
            Spec::CognitoUser { email } => cognito::observe_user(self, &r.name, email).await,
            Spec::IdentityPool => cognito::observe_identity_pool(self).await,
            Spec::IdentityPoolRoles => cognito::observe_roles(self).await,
            Spec::Distribution => cdn::observe(self).await,
            Spec::WebsiteBucketPolicy => cdn::observe_policy(self).await,
            Spec::HealthCheck { api_region } => {
                dns::observe_check(self, &r.name, *api_region).await
            }
            Spec::FailoverRecords => dns::observe_records(self).await,
        }
        .with_context(|| format!("reading {r}"))
    }

    /// Creates the resource or brings it back to its description.
    async fn converge(&self, r: &Resource, seen: &Observed) -> Result<()> {
        let role = r.region.unwrap_or(Role::Primary);
        let exists = matches!(seen, Observed::Present { .. });
        match &r.spec {
            Spec::IamRole(spec) => iam::converge(self, spec, exists).await,
            Spec::Table(spec) => storage::converge_table(self, role, &r.name, spec, exists).await,
            Spec::ConfigItem => storage::seed_item(self, role).await,
            Spec::Bucket(spec) => storage::converge_bucket(self, role, &r.name, spec, exists).await,
            Spec::RestApi(kind) => api::converge(self, role, *kind).await,
            Spec::Alarm(spec) => monitoring::converge(self, role, spec).await,
            Spec::UserPool => cognito::converge_pool(self, exists).await,
            Spec::UserPoolClient => cognito::converge_client(self, &r.name).await,
            Spec::CognitoUser { email } => {
                cognito::converge_user(self, &r.name, email, exists).await
            }
            Spec::IdentityPool => cognito::converge_identity_pool(self, exists).await,
            Spec::IdentityPoolRoles => cognito::converge_roles(self).await,
            Spec::Distribution => cdn::converge(self, exists).await,
            Spec::WebsiteBucketPolicy => cdn::converge_policy(self).await,
            Spec::HealthCheck { api_region } => {
                dns::converge_check(self, &r.name, *api_region, exists).await
            }
            Spec::FailoverRecords => dns::converge_records(self).await,
        }
    }

    async fn delete(&self, r: &Resource) -> Result<()> {
        let role = r.region.unwrap_or(Role::Primary);
        match &r.spec {
            Spec::IamRole(spec) => iam::delete(self, &spec.name).await,
            Spec::Table(_) => storage::delete_table(self, role, &r.name).await,
            // The item goes with its table; the identity pool's roles with the pool;
            // the website policy with its bucket.
            Spec::ConfigItem | Spec::IdentityPoolRoles | Spec::WebsiteBucketPolicy => Ok(()),
            Spec::Bucket(_) => storage::delete_bucket(self, role, &r.name).await,
            Spec::RestApi(kind) => api::delete(self, role, *kind).await,
            Spec::Alarm(spec) => monitoring::delete(self, role, &spec.name).await,
            Spec::UserPool => cognito::delete_pool(self).await,
            Spec::UserPoolClient => cognito::delete_client(self).await,
            Spec::CognitoUser { .. } => cognito::delete_user(self, &r.name).await,
            Spec::IdentityPool => cognito::delete_identity_pool(self).await,
            Spec::Distribution => cdn::delete(self).await,
            Spec::HealthCheck { .. } => dns::delete_check(self, &r.name).await,
            Spec::FailoverRecords => dns::delete_records(self).await,
        }
    }
}

/// One line of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub resource: Resource,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn changes(&self) -> usize {
        self.steps.iter().filter(|s| s.action.changes()).count()
    }
    pub fn refusals(&self) -> Vec<&Step> {
        self.steps
            .iter()
            .filter(|s| matches!(s.action, Action::Refuse(_)))
            .collect()
    }
}

/// Where progress goes: one line per resource, as text or JSON lines.
pub struct Reporter {
    pub json: bool,
}

impl Reporter {
    fn line(&self, r: &Resource, verb: &str, outcome: &str, detail: Option<&str>, ms: u128) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let v = json!({"event": verb, "kind": r.spec.kind(), "name": r.name,
                "region": r.region, "outcome": outcome, "detail": detail, "ms": ms as u64});
            let _ = writeln!(out, "{v}");
        } else {
            let d = detail.map(|d| format!(": {d}")).unwrap_or_default();
            let _ = writeln!(out, "{verb:<8} {r} ... {outcome}{d} ({ms} ms)");
        }
        let _ = out.flush();
    }

    fn plan_line(&self, step: &Step) {
        if self.json {
            let action = serde_json::to_value(&step.action).expect("actions serialize");
            let v = json!({"event": "plan", "kind": step.resource.spec.kind(),
                "name": step.resource.name, "region": step.resource.region,
                "action": action["action"], "detail": action.get("detail"),
                "spec": step.resource.spec});
            println!("{v}");
            return;
        }
        let detail = match &step.action {
            Action::Update(d) => format!(": {}", d.join("; ")),
            Action::Refuse(why) => format!(": refused, {why}"),
            _ => String::new(),
        };
        let word = match &step.action {
            Action::Create => "create",
            Action::Update(_) => "update",
            Action::Keep => "up to date",
            Action::Delete => "delete",
            Action::Absent => "absent",
            Action::Refuse(_) => "foreign",
        };
        println!("{} {} {word}{detail}", step.action.symbol(), step.resource);
    }
}

/// Observes every resource and decides what `apply` (or `destroy`) would do.
pub async fn plan(cx: &Cx, destroy: bool) -> Result<Plan> {
    let mut steps = Vec::new();
    for r in cx.stack.resources() {
        let seen = cx.observe(&r).await?;
        let action = match (seen, destroy) {
            (Observed::Foreign(why), _) => Action::Refuse(why),
            (Observed::Absent, false) => Action::Create,
            (Observed::Absent, true) => Action::Absent,
            (Observed::Present { drift }, false) if drift.is_empty() => Action::Keep,
            (Observed::Present { drift }, false) => Action::Update(drift),
            (Observed::Present { .. }, true) => Action::Delete,
        };
        steps.push(Step {
            resource: r,
            action,
        });
    }
    Ok(Plan { steps })
}

pub fn print_plan(plan: &Plan, rep: &Reporter, destroy: bool) {
    for s in &plan.steps {
        rep.plan_line(s);
    }
    let refused = plan.refusals().len();
    if rep.json {
        println!(
            "{}",
            json!({"event": "summary", "changes": plan.changes(), "refused": refused})
        );
    } else {
        let what = if destroy {
            "to delete"
        } else {
            "to create or update"
        };
        println!(
            "{} of {} resources {what}; {refused} refused",
            plan.changes(),
            plan.steps.len()
        );
    }
}

/// The outcome of an apply or destroy.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
}

fn refuse_foreign(cx: &Cx, plan: &Plan) -> Result<()> {
    let refused = plan.refusals();
    if refused.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = refused
        .iter()
        .map(|s| match &s.action {
            Action::Refuse(why) => format!("{} ({why})", s.resource),
            _ => unreachable!(),
        })
        .collect();
    bail!(
        "refusing to touch resources this stack did not create (tag {}={} missing): {}; \
         rename the project or remove them by hand",
        sdk::STACK_TAG,
        cx.stack.project,
        list.join(", ")
    )
}

/// Converges every resource, in order; stops at the first failure, naming it.
pub async fn apply(cx: &Cx, rep: &Reporter) -> Result<Summary> {
    let plan = plan(cx, false).await?;
    refuse_foreign(cx, &plan)?;
    let mut sum = Summary::default();
    for step in &plan.steps {
        let r = &step.resource;
        let (verb, seen) = match &step.action {
            Action::Create => ("create", Observed::Absent),
            Action::Update(d) => ("update", Observed::drifted(d.clone())),
            _ => {
                // Up to date: its facts are known from the plan's observation.
                sum.unchanged += 1;
                rep.line(r, "check", "up to date", None, 0);
                continue;
            }
        };
        let t = Instant::now();
        match cx.converge(r, &seen).await {
            Ok(()) => {
                let note = cx.facts().notes.get(&r.to_string()).cloned();
                let outcome = if verb == "create" {
                    "created"
                } else {
                    "updated"
                };
                rep.line(r, verb, outcome, note.as_deref(), t.elapsed().as_millis());
                if verb == "create" {
                    sum.created += 1;
                } else {
                    sum.updated += 1;
                }
            }
            Err(e) => {
                rep.line(
                    r,
                    verb,
                    "failed",
                    Some(&format!("{e:#}")),
                    t.elapsed().as_millis(),
                );
                return Err(e.context(format!("{verb} {r} failed; the resources before it are in place, re-run apply to continue")));
            }
        }
    }
    Ok(sum)
}

/// Deletes everything the stack created, last created first; leaves what is not ours.
pub async fn destroy(cx: &Cx, rep: &Reporter) -> Result<Summary> {
    let plan = plan(cx, true).await?;
    let mut sum = Summary::default();
    for step in plan.steps.iter().rev() {
        let r = &step.resource;
        match &step.action {
            Action::Delete => {
                let t = Instant::now();
                match cx.delete(r).await {
                    Ok(()) => {
                        let outcome = match r.spec {
                            Spec::ConfigItem => "deleted with its table",
                            Spec::IdentityPoolRoles => "deleted with the identity pool",
                            Spec::WebsiteBucketPolicy => "deleted with its bucket",
                            _ => "deleted",
                        };
                        rep.line(r, "delete", outcome, None, t.elapsed().as_millis());
                        sum.deleted += 1;
                    }
                    Err(e) => {
                        rep.line(
                            r,
                            "delete",
                            "failed",
                            Some(&format!("{e:#}")),
                            t.elapsed().as_millis(),
                        );
                        return Err(
                            e.context(format!("delete {r} failed; re-run destroy to continue"))
                        );
                    }
                }
            }
            Action::Refuse(why) => rep.line(r, "skip", "left alone", Some(why), 0),
            _ => sum.unchanged += 1,
        }
    }
    Ok(sum)
}

/// A command used the wrong way (exit 2), as opposed to a failure while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The `provision` subcommands.
#[derive(Debug, Clone)]
pub enum Command {
    Plan,
    Apply,
    Destroy {
        yes: bool,
    },
    Output {
        ui_config: Option<std::path::PathBuf>,
    },
    MonitorConfig {
        out: Option<std::path::PathBuf>,
    },
    UiConfig {
        out: std::path::PathBuf,
    },
    CdnUrl,
}

/// Runs one `provision` subcommand; `source` is the config file it was read from.
pub async fn run(
    settings: &Settings,
    source: &std::path::Path,
    cmd: Command,
    json: bool,
) -> Result<()> {
    let stack = Stack::from_settings(settings)?;
    let rep = Reporter { json };
    if let Command::Destroy { yes: false } = cmd {
        confirm_destroy(&stack)?;
    }
    let cx = Cx::connect(stack).await;
    match cmd {
        Command::Plan => {
            let p = plan(&cx, false).await?;
            print_plan(&p, &rep, false);
        }
        Command::Apply => {
            let t = Instant::now();
            let sum = apply(&cx, &rep).await?;
            finish(&rep, "apply", &sum, t);
        }
        Command::Destroy { .. } => {
            let t = Instant::now();
            let sum = destroy(&cx, &rep).await?;
            finish(&rep, "destroy", &sum, t);
        }
        Command::Output { ui_config } => {
            let (facts, missing) = read_outputs(&cx).await?;
            let out = outputs::outputs(&cx, &facts, &missing);
            println!("{}", serde_json::to_string_pretty(&out)?);
            let path = ui_config.unwrap_or_else(|| "uiConfig.json".into());
            write_ui_config(&cx, &facts, &path)?;
            eprintln!("wrote {}", path.display());
        }
        Command::UiConfig { out } => {
            let (facts, _) = read_outputs(&cx).await?;
            write_ui_config(&cx, &facts, &out)?;
            println!("wrote {}", out.display());
        }
        Command::CdnUrl => {
            let (facts, _) = read_outputs(&cx).await?;
            match outputs::cdn_url(&facts) {
                Some(url) => println!("{url}"),
                None => bail!("no CloudFront distribution: run `provision apply` first"),
            }
        }
        Command::MonitorConfig { out } => {
            let (facts, missing) = read_outputs(&cx).await?;
            if !missing.is_empty() {
                bail!(
                    "the stack is not complete ({} missing, e.g. {}): run `provision apply` first",
                    missing.len(),
                    missing[0]
                );
            }
            let text = outputs::monitor_toml(&cx, &facts, &source.display().to_string())?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}

fn finish(rep: &Reporter, what: &str, sum: &Summary, t: Instant) {
    let ms = t.elapsed().as_millis() as u64;
    if rep.json {
        println!(
            "{}",
            json!({"event": "summary", "command": what, "created": sum.created,
                "updated": sum.updated, "deleted": sum.deleted, "unchanged": sum.unchanged, "ms": ms})
        );
    } else {
        println!(
            "{what} complete: {} created, {} updated, {} deleted, {} unchanged ({:.1} s)",
            sum.created,
            sum.updated,
            sum.deleted,
            sum.unchanged,
            ms as f64 / 1000.0
        );
    }
}

/// Observes the stack without changing it: its facts and what is missing.
async fn read_outputs(cx: &Cx) -> Result<(Facts, Vec<String>)> {
    let p = plan(cx, false).await?;
    let missing = p
        .steps
        .iter()
        .filter(|s| !matches!(s.action, Action::Keep))
        .map(|s| s.resource.to_string())
        .collect();
    Ok((cx.facts(), missing))
}

fn write_ui_config(cx: &Cx, facts: &Facts, path: &std::path::Path) -> Result<()> {
    let text = serde_json::to_string_pretty(&outputs::ui_config(cx, facts))?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

fn confirm_destroy(stack: &Stack) -> Result<()> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "destroy deletes every resource of the stack and needs --yes when not run from a terminal".into(),
        )
        .into());
    }
    eprint!(
        "This deletes every resource of stack {:?} in {} and {} (photos and comments with them).\n\
         Type the project name to confirm: ",
        stack.project,
        stack.region_name(Role::Primary),
        stack.region_name(Role::Secondary)
    );
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != stack.project {
        return Err(UsageError("not confirmed; nothing was deleted".into()).into());
    }
    Ok(())
}
