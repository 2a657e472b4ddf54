//! The kinds of resource the stack is made of, one file per service. Each kind
//! implements [`Kind`]; [`Spec`] is what a resource must look like, and
//! [`Spec::kind`] is the one place that dispatches on it. Adding a kind: its type and
//! `impl Kind` in its service's file, a variant here, its line in `Spec::kind`, and
//! its place in `Stack::resources`.

pub mod api;
pub mod buckets;
pub mod cdn;
pub mod config_item;
pub mod dns;
pub mod iam;
pub mod identity_pool;
pub mod monitoring;
pub mod tables;
pub mod user_pool;

use serde::Serialize;

use super::engine::Kind;

/// What one resource is, with what its steps need to know (printed with the plan's
/// JSON lines as `spec`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Spec {
    IamRole(iam::RoleSpec),
    Table(tables::TableSpec),
    ConfigItem(config_item::ConfigItem),
    Bucket(buckets::BucketSpec),
    RestApi(api::ApiKind),
    Alarm(monitoring::AlarmSpec),
    UserPool(user_pool::UserPool),
    UserPoolClient(user_pool::UserPoolClient),
    CognitoUser(user_pool::User),
    IdentityPool(identity_pool::IdentityPool),
    IdentityPoolRoles(identity_pool::IdentityPoolRoles),
    Distribution(cdn::Distribution),
    WebsiteBucketPolicy(cdn::WebsitePolicy),
    HealthCheck(dns::HealthCheck),
    FailoverRecords(dns::FailoverRecords),
}

impl Spec {
    /// The code that observes, converges and deletes this kind of resource.
    pub fn kind(&self) -> &dyn Kind {
        match self {
            Spec::IamRole(k) => k,
            Spec::Table(k) => k,
            Spec::ConfigItem(k) => k,
            Spec::Bucket(k) => k,
            Spec::RestApi(k) => k,
            Spec::Alarm(k) => k,
            Spec::UserPool(k) => k,
            Spec::UserPoolClient(k) => k,
            Spec::CognitoUser(k) => k,
            Spec::IdentityPool(k) => k,
            Spec::IdentityPoolRoles(k) => k,
            Spec::Distribution(k) => k,
            Spec::WebsiteBucketPolicy(k) => k,
            Spec::HealthCheck(k) => k,
            Spec::FailoverRecords(k) => k,
        }
    }
}
