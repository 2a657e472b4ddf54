//! The names of the stack's resources, every one made from the project
//! (`<project>-config`, `<project>-store-primary`, ...), and which of the two REST
//! APIs is meant ([`ApiKind`]). A leaf: it imports nothing else of this crate, so
//! the operations, the outputs and every resource agree on one spelling.

use serde::Serialize;

use failover_core::model::Role;

/// Which of a region's two REST APIs: the config API (the state) or the store API
/// (the comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKind {
    Config,
    Store,
}

impl ApiKind {
    pub const BOTH: [ApiKind; 2] = [ApiKind::Config, ApiKind::Store];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::Config => "config",
            ApiKind::Store => "store",
        }
    }
}

/// The names of one project's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    project: String,
}

impl Names {
    pub fn new(project: &str) -> Self {
        Names {
            project: project.to_string(),
        }
    }

    /// The project; also the user pool's name and the stack tag's value.
    pub fn project(&self) -> &str {
        &self.project
    }
    /// The photos bucket of a region.
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
    pub fn api(&self, kind: ApiKind, role: Role) -> String {
        format!("{}-{}-{role}", self.project, kind.as_str())
    }
    /// An IAM role: `what` is `replica`, `config-api`, `store-api`, `monitor`, `web`.
    pub fn role(&self, what: &str) -> String {
        format!("{}-{what}", self.project)
    }
    /// A CloudWatch alarm of a region: `what` is `api-5xx`, `api-latency`, ...
    pub fn alarm(&self, role: Role, what: &str) -> String {
        format!("{}-{role}-{what}", self.project)
    }
    pub fn user_pool(&self) -> String {
        self.project.clone()
    }
    pub fn user_pool_client(&self) -> String {
        format!("{}-web", self.project)
    }
    /// Identity pool names allow word characters and spaces only.
    pub fn identity_pool(&self) -> String {
        self.project.replace('-', "_")
    }
    /// The distribution's comment (distributions have no name) and its origin
    /// access control's name.
    pub fn distribution(&self) -> String {
        format!("{}-website", self.project)
    }
    /// A health check's `Name` tag.
    pub fn health_check(&self, role: Role) -> String {
        format!("{}-{role}-state", self.project)
    }
    /// The set identifier of a region's failover record.
    pub fn record_set(&self, role: Role) -> String {
        format!("{}-{role}", self.project)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_starts_with_the_project() {
        let n = Names::new("shop-1");
        let (p, s) = (Role::Primary, Role::Secondary);
        assert_eq!(n.bucket(s), "shop-1-secondary");
        assert_eq!(n.api(ApiKind::Store, p), "shop-1-store-primary");
        assert_eq!(n.alarm(s, "api-5xx"), "shop-1-secondary-api-5xx");
        assert_eq!(n.health_check(p), "shop-1-primary-state");
        assert_eq!(
            n.identity_pool(),
            "shop_1",
            "no dashes in identity pool names"
        );
    }
}
