//! CloudFront in front of the website bucket (origin path `/console`, default TTL
//! one day), reading the bucket through an origin access control; the bucket's
//! policy lets only that distribution read it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_cloudfront::types::{
    DefaultCacheBehavior, DistributionConfig, DistributionConfigWithTags, Origin,
    OriginAccessControlConfig, OriginAccessControlOriginTypes, OriginAccessControlSigningBehaviors,
    OriginAccessControlSigningProtocols, Origins, S3OriginConfig, Tag, Tags, ViewerProtocolPolicy,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::context::StackContext;
use crate::names::Names;
use crate::ownership::Found;
use crate::sdk::{STACK_TAG, SdkResult};
use failover_core::model::Role;
use failover_provision_engine::{At, Drift, Fact, Kind, Observed, Pending};

const ORIGIN_ID: &str = "website";
/// AWS's managed cache policy `CachingOptimized`: default TTL one day, as the
/// original distribution had; no query strings or cookies in the key.
const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";

/// The website's distribution (its comment is the stack's `<project>-website`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename = "distribution")]
pub struct Distribution {}

/// The website bucket's policy letting only the distribution read it; it goes with
/// the bucket.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename = "website-bucket-policy")]
pub struct WebsitePolicy {}

const KIND: &str = "cloudfront-distribution";

/// A fact the distribution publishes: its `id`, `arn` or `domain`.
fn fact(names: &Names, what: &'static str) -> Fact {
    Fact::new(format!("{KIND} {}", names.distribution()), what)
}

pub fn distribution_arn(names: &Names) -> Fact {
    fact(names, "arn")
}

/// The distribution's domain name (`d111111abcdef8.cloudfront.net`).
pub fn distribution_domain(names: &Names) -> Fact {
    fact(names, "domain")
}

impl Kind<StackContext> for Distribution {
    fn name(&self) -> &'static str {
        KIND
    }
    fn observe<'a>(&'a self, context: &'a StackContext, _: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe(context))
    }
    fn converge<'a>(
        &'a self,
        context: &'a StackContext,
        _: At<'a>,
        exists: bool,
    ) -> Pending<'a, ()> {
        Box::pin(converge(context, exists))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete(context))
    }
}

impl Kind<StackContext> for WebsitePolicy {
    fn name(&self) -> &'static str {
        "bucket-policy"
    }
    fn observe<'a>(&'a self, context: &'a StackContext, _: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_policy(context))
    }
    fn converge<'a>(&'a self, context: &'a StackContext, _: At<'a>, _: bool) -> Pending<'a, ()> {
        Box::pin(converge_policy(context))
    }
    fn delete<'a>(&'a self, _: &'a StackContext, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn deleted(&self) -> &'static str {
        "deleted with its bucket"
    }
}

/// A distribution as listed.
#[derive(Debug, Clone)]
struct Listed {
    id: String,
    arn: String,
    domain: String,
}

/// The stack's distribution among those whose comment is the stack's name.
async fn find(context: &StackContext) -> Result<Found<Listed>> {
    let cf = &context.global.cloudfront;
    let name = context.names().distribution();
    let want = name.as_str();
    let page = move |marker: Option<String>| async move {
        let out = cf
            .list_distributions()
            .set_marker(marker)
            .send()
            .await
            .sdk("cloudfront:ListDistributions")?;
        let Some(list) = out.distribution_list() else {
            return anyhow::Ok((Vec::new(), None));
        };
        let same = list.items().iter().filter(|d| d.comment() == want);
        let same = same
            .map(|d| Listed {
                id: d.id().to_string(),
                arn: d.arn().to_string(),
                domain: d.domain_name().to_string(),
            })
            .collect();
        let next = list.next_marker().filter(|_| list.is_truncated());
        anyhow::Ok((same, next.map(String::from)))
    };
    let tag = move |d: &Listed| {
        let arn = d.arn.clone();
        async move {
            let tags = cf
                .list_tags_for_resource()
                .resource(arn)
                .send()
                .await
                .sdk("cloudfront:ListTagsForResource")?;
            let items = tags.tags().map(|t| t.items()).unwrap_or_default();
            let tag = items.iter().find(|x| x.key() == STACK_TAG);
            anyhow::Ok(tag.and_then(|x| x.value().map(String::from)))
        }
    };
    context.lookup("distribution", want).find(page, tag).await
}

fn learn(context: &StackContext, id: &str, arn: &str, domain: &str) {
    let names = context.names();
    context.learn(fact(names, "id"), id);
    context.learn(distribution_arn(names), arn);
    context.learn(distribution_domain(names), domain);
}

/// A distribution's configuration and the ETag an update or delete must name.
async fn current(
    cf: &aws_sdk_cloudfront::Client,
    id: &str,
) -> Result<(DistributionConfig, String)> {
    let out = cf
        .get_distribution_config()
        .id(id)
        .send()
        .await
        .sdk("cloudfront:GetDistributionConfig")?;
    let etag = out.e_tag().unwrap_or_default().to_string();
    let cfg = out
        .distribution_config
        .context("GetDistributionConfig answered without a configuration")?;
    Ok((cfg, etag))
}

async fn observe(context: &StackContext) -> Result<Observed> {
    let d = match find(context).await?.or_observed() {
        Ok(d) => d,
        Err(seen) => return Ok(seen),
    };
    learn(context, &d.id, &d.arn, &d.domain);
    let (c, _) = current(&context.global.cloudfront, &d.id).await?;
    let mut drift = Vec::new();
    if !c.enabled() {
        drift.push("disabled".to_string());
    }
    let origin_ok = c.origins().is_some_and(|o| {
        o.items().iter().any(|o| {
            o.domain_name() == bucket_domain(context) && o.origin_path() == Some("/console")
        })
    });
    if !origin_ok {
        drift.push("origin is not the website bucket's /console".to_string());
    }
    Ok(Observed::drifted(drift))
}

fn bucket_domain(context: &StackContext) -> String {
    format!(
        "{}.s3.{}.amazonaws.com",
        context.names().website_bucket(),
        context.stack.region_name(Role::Primary)
    )
}

/// The ids of the origin access controls named like the website.
async fn access_controls(context: &StackContext) -> Result<Vec<String>> {
    let name = context.names().distribution();
    let list = context
        .global
        .cloudfront
        .list_origin_access_controls()
        .send()
        .await
        .sdk("cloudfront:ListOriginAccessControls")?;
    Ok(list
        .origin_access_control_list()
        .map(|l| l.items())
        .unwrap_or_default()
        .iter()
        .filter(|o| o.name() == name)
        .map(|o| o.id().to_string())
        .collect())
}

/// The origin access control named like the website (created when missing).
async fn access_control(context: &StackContext) -> Result<String> {
    let cf = &context.global.cloudfront;
    let name = context.names().distribution();
    if let Some(id) = access_controls(context).await?.into_iter().next() {
        return Ok(id);
    }
    let out = cf
        .create_origin_access_control()
        .origin_access_control_config(
            OriginAccessControlConfig::builder()
                .name(&name)
                .description("failover-monitor provision")
                .signing_protocol(OriginAccessControlSigningProtocols::Sigv4)
                .signing_behavior(OriginAccessControlSigningBehaviors::Always)
                .origin_access_control_origin_type(OriginAccessControlOriginTypes::S3)
                .build()?,
        )
        .send()
        .await
        .sdk("cloudfront:CreateOriginAccessControl")?;
    Ok(out
        .origin_access_control()
        .context("CreateOriginAccessControl answered without a body")?
        .id()
        .to_string())
}

fn config(
    context: &StackContext,
    oac: &str,
    caller_reference: String,
) -> Result<DistributionConfig> {
    let origin = Origin::builder()
        .id(ORIGIN_ID)
        .domain_name(bucket_domain(context))
        .origin_path("/console")
        .origin_access_control_id(oac)
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()?;
    let behavior = DefaultCacheBehavior::builder()
        .target_origin_id(ORIGIN_ID)
        .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
        .cache_policy_id(CACHING_OPTIMIZED)
        .build()?;
    Ok(DistributionConfig::builder()
        .caller_reference(caller_reference)
        .comment(context.names().distribution())
        .enabled(true)
        .default_root_object("index.html")
        .origins(Origins::builder().quantity(1).items(origin).build()?)
        .default_cache_behavior(behavior)
        .build()?)
}

async fn converge(context: &StackContext, exists: bool) -> Result<()> {
    let cf = &context.global.cloudfront;
    let oac = access_control(context).await?;
    if exists {
        let id = context
            .facts()
            .find(&fact(context.names(), "id"))
            .context("distribution id not known")?;
        let (cur, etag) = current(cf, &id).await?;
        let reference = cur.caller_reference().to_string();
        cf.update_distribution()
            .id(&id)
            .if_match(etag)
            .distribution_config(config(context, &oac, reference)?)
            .send()
            .await
            .sdk("cloudfront:UpdateDistribution")?;
        return Ok(());
    }
    let reference = format!(
        "{}-{}",
        context.names().distribution(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let out = cf
        .create_distribution_with_tags()
        .distribution_config_with_tags(
            DistributionConfigWithTags::builder()
                .distribution_config(config(context, &oac, reference)?)
                .tags(
                    Tags::builder()
                        .items(
                            Tag::builder()
                                .key(STACK_TAG)
                                .value(context.stack.project())
                                .build()?,
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .sdk("cloudfront:CreateDistributionWithTags")?;
    let d = out
        .distribution()
        .context("CreateDistribution answered without a body")?;
    learn(context, d.id(), d.arn(), d.domain_name());
    Ok(())
}

/// Disables the distribution, waits for CloudFront to deploy that (minutes on AWS),
/// then deletes it and its origin access control.
async fn delete(context: &StackContext) -> Result<()> {
    let cf = &context.global.cloudfront;
    if let Found::Ours(Listed { id, .. }) = find(context).await? {
        let (mut cfg, mut etag) = current(cf, &id).await?;
        if cfg.enabled() {
            cfg.enabled = false;
            let out = cf
                .update_distribution()
                .id(&id)
                .if_match(&etag)
                .distribution_config(cfg)
                .send()
                .await
                .sdk("cloudfront:UpdateDistribution (disable)")?;
            etag = out.e_tag().unwrap_or_default().to_string();
        }
        let mut deployed = false;
        for _ in 0..180 {
            let d = cf
                .get_distribution()
                .id(&id)
                .send()
                .await
                .sdk("cloudfront:GetDistribution")?;
            if d.distribution().is_some_and(|d| d.status() == "Deployed") {
                etag = d.e_tag().unwrap_or(&etag).to_string();
                deployed = true;
                break;
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        if !deployed {
            bail!(
                "distribution {id} was disabled but is not deployed after 30 minutes; re-run destroy later"
            );
        }
        cf.delete_distribution()
            .id(&id)
            .if_match(etag)
            .send()
            .await
            .sdk("cloudfront:DeleteDistribution")?;
    }
    for id in access_controls(context).await? {
        let got = cf
            .get_origin_access_control()
            .id(&id)
            .send()
            .await
            .sdk("cloudfront:GetOriginAccessControl")?;
        cf.delete_origin_access_control()
            .id(&id)
            .set_if_match(got.e_tag().map(String::from))
            .send()
            .await
            .sdk("cloudfront:DeleteOriginAccessControl")?;
    }
    Ok(())
}

fn website_policy(context: &StackContext) -> Result<Value> {
    let arn = context.know(&distribution_arn(context.names()))?;
    Ok(json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "CloudFrontReadsTheWebsite",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{}/*", context.names().website_bucket()),
        "Condition": {"StringEquals": {"AWS:SourceArn": arn}}
    }]}))
}

async fn observe_policy(context: &StackContext) -> Result<Observed> {
    let have = context
        .region(Role::Primary)
        .s3
        .get_bucket_policy()
        .bucket(context.names().website_bucket())
        .send()
        .await
        .absent(
            "s3:GetBucketPolicy",
            &["NoSuchBucketPolicy", "NoSuchBucket"],
        )?;
    let Some(have) = have.and_then(|p| p.policy().map(String::from)) else {
        return Ok(Observed::Absent);
    };
    // The policy names the distribution: unknown until it exists.
    let mut drift = Drift::default();
    if let Some(want) = drift.want(website_policy(context))?
        && serde_json::from_str::<Value>(&have).ok() != Some(want)
    {
        drift.add("bucket policy differs");
    }
    Ok(drift.finish())
}

async fn converge_policy(context: &StackContext) -> Result<()> {
    context
        .region(Role::Primary)
        .s3
        .put_bucket_policy()
        .bucket(context.names().website_bucket())
        .policy(website_policy(context)?.to_string())
        .send()
        .await
        .sdk("s3:PutBucketPolicy")?;
    Ok(())
}
