//! The stack described from `monitor.toml`: what provisioning needs of the settings,
//! checked before any AWS call, and the [`Names`] of its resources. Nothing here
//! calls AWS; the list of resources is [`crate::resources::list`].

use crate::names::Names;
use failover_config::{ConfigError, Settings, TablesMode};
use failover_core::model::Role;

/// The stack described from the settings: names, regions, what to create.
#[derive(Debug, Clone)]
pub struct Stack {
    pub settings: Settings,
    pub names: Names,
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
            names: Names::new(&settings.app.project),
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

    /// The project: the stack tag's value.
    pub fn project(&self) -> &str {
        self.names.project()
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
    pub fn table_regions(&self) -> &'static [Role] {
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
    pub fn item_region(&self, table_region: Role) -> Role {
        match self.tables {
            TablesMode::Global => Role::Secondary,
            TablesMode::PerRegion => table_region,
        }
    }
}

/// A stack in us-east-1 and eu-west-1 for project `shop`, app `app-1`, with
/// `extra` lines added to its `[stack]` section.
#[cfg(test)]
pub(crate) fn test_stack(extra: &str) -> Stack {
    let text = format!(
        "[app]\nid = \"app-1\"\nproject = \"shop\"\n\
         [regions.primary]\nname = \"us-east-1\"\n[regions.secondary]\nname = \"eu-west-1\"\n\
         [stack]\ncognito_username = \"ops\"\ncognito_email = \"ops@example.com\"\n{extra}"
    );
    let settings = failover_config::parse(&text, Vec::new()).unwrap();
    Stack::from_settings(&settings).unwrap()
}
