//! The stack described from `monitor.toml`: the names of its resources and the list
//! of them in the order they are created ([`Stack::resources`]). Nothing here calls
//! AWS.

use std::fmt;

use serde::Serialize;

use super::resources::{
    Spec, api, buckets, cdn, config_item, dns, iam, identity_pool, monitoring, tables, user_pool,
};
use failover_config::{ConfigError, Settings, TablesMode};
use failover_core::model::Role;

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
        write!(f, "{} {}", self.spec.kind().name(), self.name)?;
        match self.region {
            Some(r) => write!(f, " ({r})"),
            None => write!(f, " (global)"),
        }
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
        let tables = settings.tables_mode();
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
    pub fn user_pool_client_name(&self) -> String {
        format!("{}-web", self.project)
    }
    /// Identity pool names allow word characters and spaces only.
    pub fn identity_pool_name(&self) -> String {
        self.project.replace('-', "_")
    }
    pub fn distribution_name(&self) -> String {
        format!("{}-website", self.project)
    }
    pub fn health_check_name(&self, role: Role) -> String {
        format!("{}-{role}-state", self.project)
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

    /// The regions holding the config and store tables: one with global tables (the
    /// secondary holds a replica), both when each region has its own.
    fn table_regions(&self) -> &'static [Role] {
        match self.tables {
            TablesMode::Global => &[Role::Primary],
            TablesMode::PerRegion => &Role::BOTH,
        }
    }

    /// Where the config item of `table_region`'s table is seeded. With global tables,
    /// in the commit region's replica (the secondary), as the monitor writes it: a
    /// seed in the primary's replica of a primary rebuilt after coming back empty
    /// would be a later write than the commit region's item and replace it there
    /// (last writer wins), failing back whatever the monitor committed.
    fn item_region(&self, table_region: Role) -> Role {
        match self.tables {
            TablesMode::Global => Role::Secondary,
            TablesMode::PerRegion => table_region,
        }
    }

    /// Every resource, in the order they are created: a resource comes after every
    /// one whose ARN or id its description needs.
    pub fn resources(&self) -> Vec<Resource> {
        let (p, s) = (Role::Primary, Role::Secondary);
        let mut out: Vec<Resource> = iam::service_roles(self)
            .into_iter()
            .map(|role| global(role.name.clone(), Spec::IamRole(role)))
            .collect();
        for &role in self.table_regions() {
            for store in [false, true] {
                let table = tables::TableSpec::new(self, store);
                out.push(at(role, table.table_name(self), Spec::Table(table)));
            }
            let item = Spec::ConfigItem(config_item::ConfigItem);
            out.push(at(self.item_region(role), self.app_id.clone(), item));
        }
        for (role, name, bucket) in [
            (s, self.bucket(s), buckets::BucketSpec::photos(self, s)),
            (p, self.bucket(p), buckets::BucketSpec::photos(self, p)),
            (p, self.website_bucket(), buckets::BucketSpec::website()),
        ] {
            out.push(at(role, name, Spec::Bucket(bucket)));
        }
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
        out.extend(self.web_resources());
        if let Some((_, domain)) = self.zone() {
            for role in Role::BOTH {
                let check = Spec::HealthCheck(dns::HealthCheck { api_region: role });
                out.push(global(self.health_check_name(role), check));
            }
            let records = Spec::FailoverRecords(dns::FailoverRecords);
            out.push(global(domain.to_string(), records));
        }
        out
    }

    /// What the web page needs: Cognito, the web users' role, the CDN.
    fn web_resources(&self) -> Vec<Resource> {
        let p = Role::Primary;
        let web = iam::web_role(self);
        let user = user_pool::User {
            email: self.cognito_email.clone(),
        };
        vec![
            at(p, self.project.clone(), Spec::UserPool(user_pool::UserPool)),
            at(
                p,
                self.user_pool_client_name(),
                Spec::UserPoolClient(user_pool::UserPoolClient),
            ),
            at(p, self.cognito_username.clone(), Spec::CognitoUser(user)),
            at(
                p,
                self.identity_pool_name(),
                Spec::IdentityPool(identity_pool::IdentityPool),
            ),
            global(web.name.clone(), Spec::IamRole(web)),
            at(
                p,
                self.identity_pool_name(),
                Spec::IdentityPoolRoles(identity_pool::IdentityPoolRoles),
            ),
            global(
                self.distribution_name(),
                Spec::Distribution(cdn::Distribution),
            ),
            at(
                p,
                self.website_bucket(),
                Spec::WebsiteBucketPolicy(cdn::WebsitePolicy),
            ),
        ]
    }
}

fn global(name: String, spec: Spec) -> Resource {
    Resource {
        region: None,
        name,
        spec,
    }
}

fn at(role: Role, name: String, spec: Spec) -> Resource {
    Resource {
        region: Some(role),
        name,
        spec,
    }
}
