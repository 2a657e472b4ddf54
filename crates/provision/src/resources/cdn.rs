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

use crate::context::Cx;
use crate::engine::{At, Drift, Kind, Observed, Pending};
use crate::ours::Ours;
use crate::sdk::{STACK_TAG, SdkResult};
use failover_core::model::Role;

const ORIGIN_ID: &str = "website";
/// AWS's managed cache policy `CachingOptimized`: default TTL one day, as the
/// original distribution had; no query strings or cookies in the key.
const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";

/// The website's distribution (its comment is the stack's `<project>-website`).
#[derive(Debug, Clone, Serialize)]
pub struct Distribution;

/// The website bucket's policy letting only the distribution read it; it goes with
/// the bucket.
#[derive(Debug, Clone, Serialize)]
pub struct WebsitePolicy;

impl Kind for Distribution {
    fn name(&self) -> &'static str {
        "cloudfront-distribution"
    }
    fn observe<'a>(&'a self, cx: &'a Cx, _: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe(cx))
    }
    fn converge<'a>(&'a self, cx: &'a Cx, _: At<'a>, exists: bool) -> Pending<'a, ()> {
        Box::pin(converge(cx, exists))
    }
    fn delete<'a>(&'a self, cx: &'a Cx, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete(cx))
    }
}

impl Kind for WebsitePolicy {
    fn name(&self) -> &'static str {
        "bucket-policy"
    }
    fn observe<'a>(&'a self, cx: &'a Cx, _: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_policy(cx))
    }
    fn converge<'a>(&'a self, cx: &'a Cx, _: At<'a>, _: bool) -> Pending<'a, ()> {
        Box::pin(converge_policy(cx))
    }
    fn delete<'a>(&'a self, _: &'a Cx, _: At<'a>) -> Pending<'a, ()> {
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
async fn find(cx: &Cx) -> Result<Ours<Listed>> {
    let cf = &cx.global.cloudfront;
    let name = cx.stack.distribution_name();
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
    cx.lookup("distribution", want).find(page, tag).await
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

async fn observe(cx: &Cx) -> Result<Observed> {
    let d = match find(cx).await?.or_observed() {
        Ok(d) => d,
        Err(seen) => return Ok(seen),
    };
    cx.learn(|f| {
        f.distribution_id = Some(d.id.clone());
        f.distribution_arn = Some(d.arn.clone());
        f.distribution_domain = Some(d.domain.clone());
    });
    let (c, _) = current(&cx.global.cloudfront, &d.id).await?;
    let mut drift = Vec::new();
    if !c.enabled() {
        drift.push("disabled".to_string());
    }
    let origin_ok = c.origins().is_some_and(|o| {
        o.items()
            .iter()
            .any(|o| o.domain_name() == bucket_domain(cx) && o.origin_path() == Some("/console"))
    });
    if !origin_ok {
        drift.push("origin is not the website bucket's /console".to_string());
    }
    Ok(Observed::drifted(drift))
}

fn bucket_domain(cx: &Cx) -> String {
    format!(
        "{}.s3.{}.amazonaws.com",
        cx.stack.website_bucket(),
        cx.stack.region_name(Role::Primary)
    )
}

/// The ids of the origin access controls named like the website.
async fn access_controls(cx: &Cx) -> Result<Vec<String>> {
    let name = cx.stack.distribution_name();
    let list = cx
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
async fn access_control(cx: &Cx) -> Result<String> {
    let cf = &cx.global.cloudfront;
    let name = cx.stack.distribution_name();
    if let Some(id) = access_controls(cx).await?.into_iter().next() {
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

fn config(cx: &Cx, oac: &str, caller_reference: String) -> Result<DistributionConfig> {
    let origin = Origin::builder()
        .id(ORIGIN_ID)
        .domain_name(bucket_domain(cx))
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
        .comment(cx.stack.distribution_name())
        .enabled(true)
        .default_root_object("index.html")
        .origins(Origins::builder().quantity(1).items(origin).build()?)
        .default_cache_behavior(behavior)
        .build()?)
}

async fn converge(cx: &Cx, exists: bool) -> Result<()> {
    let cf = &cx.global.cloudfront;
    let oac = access_control(cx).await?;
    if exists {
        let id = cx
            .facts()
            .distribution_id
            .context("distribution id not known")?;
        let (cur, etag) = current(cf, &id).await?;
        let reference = cur.caller_reference().to_string();
        cf.update_distribution()
            .id(&id)
            .if_match(etag)
            .distribution_config(config(cx, &oac, reference)?)
            .send()
            .await
            .sdk("cloudfront:UpdateDistribution")?;
        return Ok(());
    }
    let reference = format!(
        "{}-{}",
        cx.stack.distribution_name(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let out = cf
        .create_distribution_with_tags()
        .distribution_config_with_tags(
            DistributionConfigWithTags::builder()
                .distribution_config(config(cx, &oac, reference)?)
                .tags(
                    Tags::builder()
                        .items(
                            Tag::builder()
                                .key(STACK_TAG)
                                .value(&cx.stack.project)
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
    cx.learn(|f| {
        f.distribution_id = Some(d.id().to_string());
        f.distribution_arn = Some(d.arn().to_string());
        f.distribution_domain = Some(d.domain_name().to_string());
    });
    Ok(())
}

/// Disables the distribution, waits for CloudFront to deploy that (minutes on AWS),
/// then deletes it and its origin access control.
async fn delete(cx: &Cx) -> Result<()> {
    let cf = &cx.global.cloudfront;
    if let Ours::Mine(Listed { id, .. }) = find(cx).await? {
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
    for id in access_controls(cx).await? {
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

fn website_policy(cx: &Cx) -> Result<Value> {
    let arn = cx.distribution_arn()?;
    Ok(json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "CloudFrontReadsTheWebsite",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{}/*", cx.stack.website_bucket()),
        "Condition": {"StringEquals": {"AWS:SourceArn": arn}}
    }]}))
}

async fn observe_policy(cx: &Cx) -> Result<Observed> {
    let have = cx
        .region(Role::Primary)
        .s3
        .get_bucket_policy()
        .bucket(cx.stack.website_bucket())
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
    if let Some(want) = drift.want(website_policy(cx))?
        && serde_json::from_str::<Value>(&have).ok() != Some(want)
    {
        drift.add("bucket policy differs");
    }
    Ok(drift.finish())
}

async fn converge_policy(cx: &Cx) -> Result<()> {
    cx.region(Role::Primary)
        .s3
        .put_bucket_policy()
        .bucket(cx.stack.website_bucket())
        .policy(website_policy(cx)?.to_string())
        .send()
        .await
        .sdk("s3:PutBucketPolicy")?;
    Ok(())
}
