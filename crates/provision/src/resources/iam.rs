//! IAM roles: S3 replication, the two APIs' DynamoDB integrations, the web page's
//! authenticated Cognito identities, and the monitor itself. Each has one inline
//! policy naming exactly its resources; trust and policy are compared as JSON.

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

use super::api::{self, ApiKind, STAGE};
use super::identity_pool;
use crate::context::StackContext;
use crate::names::Names;
use crate::sdk::{STACK_TAG, SdkResult, decode_policy};
use crate::stack::Stack;
use failover_core::model::Role;
use failover_provision_engine::{At, Drift, Fact, Kind, Observed, Pending};

/// The monitor's own policy; `${...}` placeholders are filled at apply time.
const MONITOR_POLICY: &str = include_str!("../../../../deploy/iam/monitor-policy.json");
/// What the monitor's readiness check needs to plan the secondary's half of the
/// stack: the read-only part of the provisioning policy.
const READINESS_POLICY: &str = include_str!("../../../../deploy/iam/monitor-readiness-policy.json");
const POLICY_NAME: &str = "failover-monitor";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    Replication,
    ConfigApi,
    StoreApi,
    Monitor,
    Web,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleSpec {
    pub name: String,
    pub purpose: Purpose,
}

const KIND: &str = "iam-role";

/// The fact a role publishes: its ARN.
pub fn role_arn(name: &str) -> Fact {
    Fact::new(format!("{KIND} {name}"), "arn")
}

impl Kind<StackContext> for RoleSpec {
    fn name(&self) -> &'static str {
        KIND
    }
    fn observe<'a>(&'a self, context: &'a StackContext, _: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe(context, self))
    }
    fn converge<'a>(
        &'a self,
        context: &'a StackContext,
        _: At<'a>,
        exists: bool,
    ) -> Pending<'a, ()> {
        Box::pin(converge(context, self, exists))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete(context, &self.name))
    }
}

/// The roles the rest of the stack needs before it can be created.
pub fn service_roles(names: &Names) -> Vec<RoleSpec> {
    [
        ("replica", Purpose::Replication),
        ("config-api", Purpose::ConfigApi),
        ("store-api", Purpose::StoreApi),
        ("monitor", Purpose::Monitor),
    ]
    .into_iter()
    .map(|(n, purpose)| RoleSpec {
        name: names.role(n),
        purpose,
    })
    .collect()
}

/// The role of signed-in web users (created after the identity pool it trusts).
pub fn web_role(names: &Names) -> RoleSpec {
    RoleSpec {
        name: names.role("web"),
        purpose: Purpose::Web,
    }
}

fn service_trust(services: &[&str]) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": services},
        "Action": "sts:AssumeRole"
    }]})
}

/// Who may assume the role. The web role trusts the identity pool, so its trust
/// is unknown until the pool exists.
fn trust(context: &StackContext, spec: &RoleSpec) -> Result<Value> {
    Ok(match spec.purpose {
        Purpose::Replication => service_trust(&["s3.amazonaws.com"]),
        Purpose::ConfigApi | Purpose::StoreApi => service_trust(&["apigateway.amazonaws.com"]),
        Purpose::Monitor => service_trust(&["ecs-tasks.amazonaws.com", "ec2.amazonaws.com"]),
        Purpose::Web => {
            let pool = context.know(&identity_pool::pool_id(context.names()))?;
            json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {"cognito-identity.amazonaws.com:aud": pool},
                    "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"}
                }
            }]})
        }
    })
}

/// The inline policy of a role, with this account's ARNs.
pub async fn policy(context: &StackContext, spec: &RoleSpec) -> Result<Value> {
    let s = &context.stack;
    let account = context.account().await?;
    let table_arns = |table: String, suffix: &str| -> Vec<String> {
        Role::BOTH
            .iter()
            .map(|&r| {
                format!(
                    "arn:aws:dynamodb:{}:{account}:table/{table}{suffix}",
                    s.region_name(r)
                )
            })
            .collect()
    };
    let doc = match spec.purpose {
        Purpose::Replication => {
            let (src, dst) = (
                s.names.bucket(Role::Primary),
                s.names.bucket(Role::Secondary),
            );
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow",
                 "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                 "Resource": [format!("arn:aws:s3:::{src}")]},
                {"Effect": "Allow",
                 "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                            "s3:GetObjectVersionTagging"],
                 "Resource": [format!("arn:aws:s3:::{src}/public*")]},
                {"Effect": "Allow",
                 "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                 "Resource": [format!("arn:aws:s3:::{dst}/public*")]}
            ]})
        }
        Purpose::ConfigApi => json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:Query"],
             "Resource": table_arns(s.names.config_table(), "")}
        ]}),
        Purpose::StoreApi => json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:PutItem"],
             "Resource": table_arns(s.names.store_table(), "")},
            {"Effect": "Allow", "Action": ["dynamodb:Query"],
             "Resource": table_arns(s.names.store_table(), "/index/photoId")}
        ]}),
        Purpose::Monitor => monitor_policy(s, &account)?,
        Purpose::Web => {
            let mut store_apis = Vec::new();
            for r in Role::BOTH {
                let id = api::api_id(context.names(), ApiKind::Store, r);
                store_apis.push((r, context.know(&id)?));
            }
            web_policy(s, &account, &store_apis)
        }
    };
    Ok(doc)
}

/// What a signed-in web user may do (deploy/website): list, read and write the
/// photos under `public/` in both buckets, and add a comment through either region's
/// store API (`POST /comments/*`, the one `AWS_IAM` method; the state and the
/// comments are read without a signature). `store_apis` are the store APIs' ids.
pub fn web_policy(s: &Stack, account: &str, store_apis: &[(Role, String)]) -> Value {
    let buckets: Vec<String> = Role::BOTH
        .iter()
        .map(|&r| format!("arn:aws:s3:::{}", s.names.bucket(r)))
        .collect();
    let objects: Vec<String> = buckets.iter().map(|b| format!("{b}/public/*")).collect();
    let post: Vec<String> = store_apis
        .iter()
        .map(|(r, id)| {
            format!(
                "arn:aws:execute-api:{}:{account}:{id}/{STAGE}/POST/comments/*",
                s.region_name(*r)
            )
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": objects},
        // The gallery is a ListObjectsV2 of `public/`, and nothing else may be listed.
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": buckets,
         "Condition": {"StringLike": {"s3:prefix": ["public/*"]}}},
        {"Effect": "Allow", "Action": ["execute-api:Invoke"], "Resource": post}
    ]})
}

/// `deploy/iam/monitor-policy.json` filled in, with the statements of
/// `deploy/iam/monitor-readiness-policy.json` (the readiness check plans the stack
/// this role belongs to); without `[route53]` the DNS statement is dropped (the
/// monitor then never calls Route 53), without `stack.route53_zone_id` the health
/// checks' (the stack has none).
pub fn monitor_policy(s: &Stack, account: &str) -> Result<Value> {
    let mut doc = monitor_own_policy(s, account)?;
    let fill = |text: &str| {
        text.replace("${PrimaryRegion}", s.region_name(Role::Primary))
            .replace("${SecondaryRegion}", s.region_name(Role::Secondary))
            .replace("${AccountId}", account)
            .replace("${Project}", s.project())
            .replace("${ZoneId}", s.zone().map_or("-", |(zone, _)| zone))
    };
    let readiness: Value = serde_json::from_str(&fill(READINESS_POLICY))
        .context("deploy/iam/monitor-readiness-policy.json")?;
    let mut extra = readiness["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if s.zone().is_none() {
        extra.retain(|x| x["Sid"] != "HealthChecksAndRecords");
    }
    for st in &mut extra {
        let sid = st["Sid"].as_str().unwrap_or_default().to_owned();
        st["Sid"] = Value::String(format!("Readiness{sid}"));
    }
    if let Some(st) = doc["Statement"].as_array_mut() {
        st.extend(extra);
    }
    Ok(doc)
}

/// `deploy/iam/monitor-policy.json` alone, filled in.
fn monitor_own_policy(s: &Stack, account: &str) -> Result<Value> {
    let zone = s.settings.route53.as_ref().map(|r| r.zone_id.as_str());
    let text = MONITOR_POLICY
        .replace("${PrimaryRegion}", s.region_name(Role::Primary))
        .replace("${SecondaryRegion}", s.region_name(Role::Secondary))
        .replace("${AccountId}", account)
        .replace("${Project}", s.project())
        .replace("${AppId}", &s.app_id)
        .replace("${ZoneId}", zone.unwrap_or("-"));
    let mut doc: Value = serde_json::from_str(&text).context("deploy/iam/monitor-policy.json")?;
    if zone.is_none()
        && let Some(st) = doc["Statement"].as_array_mut()
    {
        st.retain(|x| x["Sid"] != "DnsFollowsTheState");
    }
    Ok(doc)
}

fn parse(doc: Option<&str>) -> Value {
    doc.map(decode_policy)
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or(Value::Null)
}

async fn observe(context: &StackContext, spec: &RoleSpec) -> Result<Observed> {
    let iam = &context.global.iam;
    let name = spec.name.as_str();
    let same = iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .absent("iam:GetRole", &["NoSuchEntity"])?
        .and_then(|o| o.role().cloned());
    let tag = move |_: &aws_sdk_iam::types::Role| async move {
        let tags = iam
            .list_role_tags()
            .role_name(name)
            .send()
            .await
            .sdk("iam:ListRoleTags")?;
        let tag = tags.tags().iter().find(|t| t.key() == STACK_TAG);
        anyhow::Ok(tag.map(|t| t.value().to_string()))
    };
    let lookup = context.lookup("role", name);
    let role = match lookup
        .among(same.into_iter().collect(), tag)
        .await?
        .or_observed()
    {
        Ok(role) => role,
        Err(seen) => return Ok(seen),
    };
    context.learn(role_arn(&spec.name), role.arn());
    let mut drift = Drift::default();
    if let Some(trust) = drift.want(trust(context, spec))?
        && parse(role.assume_role_policy_document()) != trust
    {
        drift.add("trust policy differs");
    }
    let inline = iam
        .get_role_policy()
        .role_name(&spec.name)
        .policy_name(POLICY_NAME)
        .send()
        .await
        .absent("iam:GetRolePolicy", &["NoSuchEntity"])?;
    match inline {
        None => drift.add(format!("inline policy {POLICY_NAME} missing")),
        Some(p) => {
            if let Some(want) = drift.want(policy(context, spec).await)?
                && parse(Some(p.policy_document())) != want
            {
                drift.add(format!("inline policy {POLICY_NAME} differs"));
            }
        }
    }
    Ok(drift.finish())
}

async fn converge(context: &StackContext, spec: &RoleSpec, exists: bool) -> Result<()> {
    let iam = &context.global.iam;
    let trust = trust(context, spec)?.to_string();
    if exists {
        iam.update_assume_role_policy()
            .role_name(&spec.name)
            .policy_document(&trust)
            .send()
            .await
            .sdk("iam:UpdateAssumeRolePolicy")?;
    } else {
        let tag = aws_sdk_iam::types::Tag::builder()
            .key(STACK_TAG)
            .value(context.stack.project())
            .build()?;
        let out = iam
            .create_role()
            .role_name(&spec.name)
            .assume_role_policy_document(&trust)
            .description(format!(
                "{} ({:?}), managed by failover-monitor provision",
                context.stack.project(),
                spec.purpose
            ))
            .tags(tag)
            .send()
            .await
            .sdk("iam:CreateRole")?;
        if let Some(role) = out.role() {
            context.learn(role_arn(&spec.name), role.arn());
        }
    }
    iam.put_role_policy()
        .role_name(&spec.name)
        .policy_name(POLICY_NAME)
        .policy_document(policy(context, spec).await?.to_string())
        .send()
        .await
        .sdk("iam:PutRolePolicy")?;
    Ok(())
}

async fn delete(context: &StackContext, name: &str) -> Result<()> {
    let iam = &context.global.iam;
    let policies = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .sdk("iam:ListRolePolicies")?;
    for p in policies.policy_names() {
        iam.delete_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
            .sdk("iam:DeleteRolePolicy")?;
    }
    iam.delete_role()
        .role_name(name)
        .send()
        .await
        .absent("iam:DeleteRole", &["NoSuchEntity"])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::stack::test_stack as stack;

    #[test]
    fn the_monitor_policy_is_filled_in_and_drops_dns_without_route53() {
        let doc = monitor_policy(&stack(""), "111122223333").unwrap();
        let text = doc.to_string();
        assert!(!text.contains("${"), "a placeholder is left: {text}");
        assert!(text.contains("arn:aws:dynamodb:eu-west-1:111122223333:table/shop-config"));
        assert!(text.contains("\"app-1#*\""));
        assert!(!text.contains("route53"), "{text}");

        let with_dns = stack(
            "[route53]\nzone_id = \"Z123\"\nrecord_name = \"api.example.com\"\nrecord_type = \"CNAME\"\n\
             primary_value = \"a.example.com\"\nsecondary_value = \"b.example.com\"\n",
        );
        let text = monitor_policy(&with_dns, "111122223333")
            .unwrap()
            .to_string();
        assert!(text.contains("arn:aws:route53:::hostedzone/Z123"), "{text}");
    }

    #[test]
    fn the_monitor_role_may_read_the_stack_for_its_readiness_check_and_write_nothing_more() {
        let doc = monitor_policy(&stack(""), "111122223333").unwrap();
        let text = doc.to_string();
        assert!(!text.contains("${"), "a placeholder is left: {text}");
        let sids: Vec<&str> = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|st| st["Sid"].as_str())
            .collect();
        assert!(sids.contains(&"ReadinessRestApis"), "{sids:?}");
        assert!(
            !sids.contains(&"ReadinessHealthChecksAndRecords"),
            "{sids:?}"
        );
        assert!(text.contains("apigateway:GET") && !text.contains("apigateway:DELETE"));
        let chars = text.len();
        assert!(
            chars < 10_240,
            "an inline role policy holds 10,240 characters: {chars}"
        );
    }

    #[test]
    fn web_users_list_public_in_both_buckets_and_may_only_post_comments() {
        let s = stack("");
        let doc = web_policy(
            &s,
            "111122223333",
            &[(Role::Primary, "p1".into()), (Role::Secondary, "s1".into())],
        );
        let st = doc["Statement"].as_array().unwrap();
        let list = st
            .iter()
            .find(|x| x["Action"][0] == "s3:ListBucket")
            .unwrap();
        assert_eq!(
            list["Resource"],
            json!(["arn:aws:s3:::shop-primary", "arn:aws:s3:::shop-secondary"])
        );
        assert_eq!(
            list["Condition"],
            json!({"StringLike": {"s3:prefix": ["public/*"]}})
        );
        let invoke = st
            .iter()
            .find(|x| x["Action"][0] == "execute-api:Invoke")
            .unwrap();
        assert_eq!(
            invoke["Resource"],
            json!([
                "arn:aws:execute-api:us-east-1:111122223333:p1/prod/POST/comments/*",
                "arn:aws:execute-api:eu-west-1:111122223333:s1/prod/POST/comments/*"
            ])
        );
        let objects = st
            .iter()
            .find(|x| x["Action"][0] == "s3:GetObject")
            .unwrap();
        assert_eq!(
            objects["Resource"],
            json!([
                "arn:aws:s3:::shop-primary/public/*",
                "arn:aws:s3:::shop-secondary/public/*"
            ])
        );
    }

    #[test]
    fn every_role_name_fits_iam_limits_for_the_longest_project() {
        let names = Names::new(&"p".repeat(53));
        for r in service_roles(&names).into_iter().chain([web_role(&names)]) {
            assert!(r.name.len() <= 64, "{} is {} long", r.name, r.name.len());
        }
    }
}
