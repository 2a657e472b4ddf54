//! Route 53, when `stack.route53_zone_id` and `stack.domain` are set: one HTTPS
//! health check per region on its state API, and a failover CNAME pair for the
//! domain (PRIMARY -> the primary's state API, SECONDARY -> the secondary's).
//! Route 53's own failover is a second line behind the monitor's config item.

use anyhow::{Context, Result};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetFailover, ResourceTagSet, RrType, Tag, TagResourceType,
};

use serde::Serialize;

use super::api::{self, ApiKind, STAGE};
use crate::context::StackContext;
use crate::names::Names;
use crate::ownership::Found;
use crate::sdk::{STACK_TAG, SdkResult};
use failover_core::model::Role;
use failover_provision_engine::{At, Drift, Fact, Kind, Observed, Pending};

/// The health check of one region's state API (tagged `Name=<name>`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename = "health-check")]
pub struct HealthCheck {
    pub api_region: Role,
}

/// The failover CNAME pair of the domain.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename = "failover-records")]
pub struct FailoverRecords {}

const CHECK: &str = "route53-health-check";

/// The fact a health check publishes: its id.
pub fn health_check_id(names: &Names, role: Role) -> Fact {
    Fact::new(format!("{CHECK} {}", names.health_check(role)), "id")
}

impl Kind<StackContext> for HealthCheck {
    fn name(&self) -> &'static str {
        CHECK
    }
    fn observe<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_check(context, at.name, self.api_region))
    }
    fn converge<'a>(
        &'a self,
        context: &'a StackContext,
        at: At<'a>,
        exists: bool,
    ) -> Pending<'a, ()> {
        Box::pin(converge_check(context, at.name, self.api_region, exists))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete_check(context, at.name))
    }
}

impl Kind<StackContext> for FailoverRecords {
    fn name(&self) -> &'static str {
        "route53-failover-records"
    }
    fn observe<'a>(&'a self, context: &'a StackContext, _: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_records(context))
    }
    fn converge<'a>(&'a self, context: &'a StackContext, _: At<'a>, _: bool) -> Pending<'a, ()> {
        Box::pin(converge_records(context))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete_records(context))
    }
}

fn api_host(context: &StackContext, role: Role) -> Result<String> {
    let id = context.know(&api::api_id(context.names(), ApiKind::Config, role))?;
    Ok(format!(
        "{id}.execute-api.{}.amazonaws.com",
        context.stack.region_name(role)
    ))
}

/// The stack's health check among those tagged `Name=<name>`: its id.
async fn find_check(context: &StackContext, name: &str) -> Result<Found<String>> {
    let r53 = &context.global.route53;
    let page = move |marker: Option<String>| async move {
        let out = r53
            .list_health_checks()
            .set_marker(marker)
            .send()
            .await
            .sdk("route53:ListHealthChecks")?;
        let ids: Vec<String> = out
            .health_checks()
            .iter()
            .map(|h| h.id().to_string())
            .collect();
        let mut same = Vec::new();
        for chunk in ids.chunks(10) {
            same.extend(named(r53, chunk, name).await?);
        }
        let next = out.next_marker().filter(|_| out.is_truncated());
        anyhow::Ok((same, next.map(String::from)))
    };
    // The listing of tags names the stack too.
    let tag = |c: &(String, Option<String>)| std::future::ready(anyhow::Ok(c.1.clone()));
    let found = context.lookup("health check", name).find(page, tag).await?;
    Ok(found.map(|(id, _)| id))
}

/// Among up to ten health checks, those tagged `Name=<name>`, with their stack tag.
async fn named(
    r53: &aws_sdk_route53::Client,
    ids: &[String],
    name: &str,
) -> Result<Vec<(String, Option<String>)>> {
    let tags = r53
        .list_tags_for_resources()
        .resource_type(TagResourceType::Healthcheck)
        .set_resource_ids(Some(ids.to_vec()))
        .send()
        .await
        .sdk("route53:ListTagsForResources")?;
    let value = |set: &ResourceTagSet, key: &str| {
        let tag = set.tags().iter().find(|t| t.key() == Some(key));
        tag.and_then(|t| t.value().map(String::from))
    };
    Ok(tags
        .resource_tag_sets()
        .iter()
        .filter(|set| value(set, "Name").as_deref() == Some(name))
        .map(|set| {
            let id = set.resource_id().unwrap_or_default().to_string();
            (id, value(set, STACK_TAG))
        })
        .collect())
}

async fn observe_check(context: &StackContext, name: &str, role: Role) -> Result<Observed> {
    let id = match find_check(context, name).await?.or_observed() {
        Ok(id) => id,
        Err(seen) => return Ok(seen),
    };
    context.learn(health_check_id(context.names(), role), id.clone());
    let out = context
        .global
        .route53
        .get_health_check()
        .health_check_id(&id)
        .send()
        .await
        .sdk("route53:GetHealthCheck")?;
    let cfg = out.health_check().and_then(|h| h.health_check_config());
    // The target is the config API's host: unknown until that API exists.
    let mut drift = Drift::default();
    if let Some(host) = drift.want(api_host(context, role))?
        && !cfg.is_some_and(|c| {
            c.fully_qualified_domain_name() == Some(host.as_str())
                && c.resource_path() == Some(path(context).as_str())
        })
    {
        drift.add("target differs");
    }
    Ok(drift.finish())
}

fn path(context: &StackContext) -> String {
    format!("/{STAGE}/state/{}", context.stack.app_id)
}

async fn converge_check(
    context: &StackContext,
    name: &str,
    role: Role,
    exists: bool,
) -> Result<()> {
    let r53 = &context.global.route53;
    if exists {
        // A health check's type cannot change; its target can.
        let id = context.know(&health_check_id(context.names(), role))?;
        r53.update_health_check()
            .health_check_id(id)
            .fully_qualified_domain_name(api_host(context, role)?)
            .resource_path(path(context))
            .send()
            .await
            .sdk("route53:UpdateHealthCheck")?;
        return Ok(());
    }
    let reference = format!(
        "{name}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let out = r53
        .create_health_check()
        .caller_reference(reference)
        .health_check_config(
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::Https)
                .fully_qualified_domain_name(api_host(context, role)?)
                .resource_path(path(context))
                .port(443)
                .request_interval(30)
                .failure_threshold(3)
                .build()?,
        )
        .send()
        .await
        .sdk("route53:CreateHealthCheck")?;
    let id = out
        .health_check()
        .map(|h| h.id().to_string())
        .context("no health check id")?;
    r53.change_tags_for_resource()
        .resource_type(TagResourceType::Healthcheck)
        .resource_id(&id)
        .add_tags(Tag::builder().key("Name").value(name).build())
        .add_tags(
            Tag::builder()
                .key(STACK_TAG)
                .value(context.stack.project())
                .build(),
        )
        .send()
        .await
        .sdk("route53:ChangeTagsForResource")?;
    context.learn(health_check_id(context.names(), role), id);
    Ok(())
}

async fn delete_check(context: &StackContext, name: &str) -> Result<()> {
    if let Found::Ours(id) = find_check(context, name).await? {
        context
            .global
            .route53
            .delete_health_check()
            .health_check_id(id)
            .send()
            .await
            .absent("route53:DeleteHealthCheck", &["NoSuchHealthCheck"])?;
    }
    Ok(())
}

fn set_id(context: &StackContext, role: Role) -> String {
    context.names().record_set(role)
}

/// The record sets named like the domain.
async fn records(context: &StackContext) -> Result<Vec<ResourceRecordSet>> {
    let (zone, domain) = context.stack.zone().context("no zone configured")?;
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    let out = context
        .global
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(&fqdn)
        .max_items(20)
        .send()
        .await
        .sdk("route53:ListResourceRecordSets")?;
    Ok(out
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == fqdn)
        .cloned()
        .collect())
}

fn wanted(context: &StackContext) -> Result<Vec<ResourceRecordSet>> {
    let (_, domain) = context.stack.zone().context("no zone configured")?;
    Role::BOTH
        .iter()
        .map(|&role| {
            Ok(ResourceRecordSet::builder()
                .name(format!("{}.", domain.trim_end_matches('.')))
                .r#type(RrType::Cname)
                .set_identifier(set_id(context, role))
                .failover(match role {
                    Role::Primary => ResourceRecordSetFailover::Primary,
                    Role::Secondary => ResourceRecordSetFailover::Secondary,
                })
                .ttl(60)
                .health_check_id(context.know(&health_check_id(context.names(), role))?)
                .resource_records(
                    ResourceRecord::builder()
                        .value(api_host(context, role)?)
                        .build()?,
                )
                .build()?)
        })
        .collect()
}

async fn observe_records(context: &StackContext) -> Result<Observed> {
    let have = records(context).await?;
    if have.is_empty() {
        return Ok(Observed::Absent);
    }
    let ours = |r: &ResourceRecordSet| {
        Role::BOTH
            .iter()
            .any(|&role| r.set_identifier() == Some(set_id(context, role).as_str()))
    };
    if have.iter().any(|r| !ours(r)) {
        return Ok(Observed::Foreign(
            "records of that name not set by this stack (set identifiers differ)".into(),
        ));
    }
    let same = |w: &ResourceRecordSet| {
        have.iter().any(|h| {
            h.set_identifier() == w.set_identifier()
                && h.health_check_id() == w.health_check_id()
                && h.resource_records() == w.resource_records()
        })
    };
    // The records name the health checks and the APIs: unknown until they exist.
    let mut drift = Drift::default();
    if let Some(want) = drift.want(wanted(context))?
        && !want.iter().all(same)
    {
        drift.add("failover records differ");
    }
    Ok(drift.finish())
}

async fn change(
    context: &StackContext,
    action: ChangeAction,
    sets: Vec<ResourceRecordSet>,
) -> Result<()> {
    if sets.is_empty() {
        return Ok(());
    }
    let (zone, _) = context.stack.zone().context("no zone configured")?;
    let changes = sets
        .into_iter()
        .map(|s| {
            Change::builder()
                .action(action.clone())
                .resource_record_set(s)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    context
        .global
        .route53
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build()?)
        .send()
        .await
        .sdk("route53:ChangeResourceRecordSets")?;
    Ok(())
}

async fn converge_records(context: &StackContext) -> Result<()> {
    change(context, ChangeAction::Upsert, wanted(context)?).await
}

async fn delete_records(context: &StackContext) -> Result<()> {
    let have: Vec<_> = records(context)
        .await?
        .into_iter()
        .filter(|r| {
            Role::BOTH
                .iter()
                .any(|&role| r.set_identifier() == Some(set_id(context, role).as_str()))
        })
        .collect();
    change(context, ChangeAction::Delete, have).await
}
