//! The kinds of resource the stack is made of, one file each, every kind
//! implementing the engine's [`Kind`] for [`StackContext`] (and exporting the facts
//! it publishes); and [`list`], the stack's resources in creation order, the one
//! place that names every kind. Adding a kind: its file, and its line in [`list`].
//!
//! A kind's description is its type's `Serialize` (the `spec` of the plan's JSON
//! lines), tagged with the kind's name; the older kinds keep the tags they had
//! before the engine was its own crate (`#[serde(tag = "kind", rename = "table")]`)
//! so that JSON readers see the same lines.

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

use crate::context::StackContext;
use crate::names::ApiKind;
use crate::stack::Stack;
use failover_core::model::Role;
use failover_provision_engine::Resource;

#[cfg(doc)]
use failover_provision_engine::Kind;

/// One resource of the stack, as the engine takes it.
pub type StackResource = Resource<StackContext>;

/// Every resource, in the order they are created: a resource comes after every
/// one whose ARN or id its description needs.
pub fn list(stack: &Stack) -> Vec<StackResource> {
    let (p, s) = (Role::Primary, Role::Secondary);
    let names = &stack.names;
    let mut out: Vec<StackResource> = iam::service_roles(names)
        .into_iter()
        .map(|role| Resource::global(role.name.clone(), role))
        .collect();
    for &role in stack.table_regions() {
        for store in [false, true] {
            let table = tables::TableSpec::new(stack, store);
            out.push(Resource::at(role, table.table_name(names), table));
        }
        let item_region = stack.item_region(role);
        out.push(Resource::at(
            item_region,
            &stack.app_id,
            config_item::ConfigItem,
        ));
    }
    for (role, name, bucket) in [
        (s, names.bucket(s), buckets::BucketSpec::photos(names, s)),
        (p, names.bucket(p), buckets::BucketSpec::photos(names, p)),
        (p, names.website_bucket(), buckets::BucketSpec::website()),
    ] {
        out.push(Resource::at(role, name, bucket));
    }
    for role in Role::BOTH {
        for kind in ApiKind::BOTH {
            out.push(Resource::at(
                role,
                names.api(kind, role),
                api::RestApi(kind),
            ));
        }
    }
    for role in Role::BOTH {
        for alarm in monitoring::alarms(names, role) {
            out.push(Resource::at(role, alarm.name.clone(), alarm));
        }
    }
    out.extend(web(stack));
    if let Some((_, domain)) = stack.zone() {
        for role in Role::BOTH {
            let check = dns::HealthCheck { api_region: role };
            out.push(Resource::global(names.health_check(role), check));
        }
        out.push(Resource::global(domain, dns::FailoverRecords {}));
    }
    out
}

/// What the web page needs: Cognito, the web users' role, the CDN.
fn web(stack: &Stack) -> Vec<StackResource> {
    let p = Role::Primary;
    let names = &stack.names;
    let web = iam::web_role(names);
    let user = user_pool::User {
        email: stack.cognito_email.clone(),
    };
    vec![
        Resource::at(p, names.user_pool(), user_pool::UserPool),
        Resource::at(p, names.user_pool_client(), user_pool::UserPoolClient),
        Resource::at(p, &stack.cognito_username, user),
        Resource::at(p, names.identity_pool(), identity_pool::IdentityPool),
        Resource::global(web.name.clone(), web),
        Resource::at(p, names.identity_pool(), identity_pool::IdentityPoolRoles),
        Resource::global(names.distribution(), cdn::Distribution {}),
        Resource::at(p, names.website_bucket(), cdn::WebsitePolicy {}),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::stack::test_stack;

    /// How many kinds the files under `dir` implement.
    fn kinds_implemented(dir: &Path) -> usize {
        // Spelled in two pieces so that this file does not count itself.
        let implementation = ["impl Kind", "<StackContext> for "].concat();
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                count += kinds_implemented(&path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                count += text.matches(&implementation).count();
            }
        }
        count
    }

    #[test]
    fn the_list_is_the_only_registry_of_kinds() {
        // A stack with every option on (Route 53) lists every kind: a kind
        // implemented but missing here would be dead code, and nothing else of the
        // crate (nor the engine, which cannot see this crate) names the kinds.
        let stack = test_stack("route53_zone_id = \"Z1\"\ndomain = \"api.example.com\"\n");
        let listed: BTreeSet<&str> = list(&stack).iter().map(|r| r.kind.name()).collect();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/resources");
        assert_eq!(listed.len(), kinds_implemented(&dir), "{listed:?}");
        assert_eq!(listed.len(), 15);
    }

    #[test]
    fn resources_come_after_those_whose_facts_they_need() {
        let stack = test_stack("route53_zone_id = \"Z1\"\ndomain = \"api.example.com\"\n");
        let order: Vec<String> = list(&stack).iter().map(|r| r.to_string()).collect();
        let at = |label: &str| order.iter().position(|r| r == label).unwrap();
        let before = [
            (
                "iam-role shop-config-api (global)",
                "rest-api shop-config-primary (primary)",
            ),
            (
                "rest-api shop-store-secondary (secondary)",
                "iam-role shop-web (global)",
            ),
            ("identity-pool shop (primary)", "iam-role shop-web (global)"),
            (
                "user-pool-client shop-web (primary)",
                "identity-pool shop (primary)",
            ),
            (
                "cloudfront-distribution shop-website (global)",
                "bucket-policy shop-website (primary)",
            ),
            (
                "route53-health-check shop-secondary-state (global)",
                "route53-failover-records api.example.com (global)",
            ),
        ];
        for (first, then) in before {
            assert!(at(first) < at(then), "{first} must come before {then}");
        }
    }
}
