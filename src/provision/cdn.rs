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
use serde_json::{Value, json};

use super::sdk::{STACK_TAG, SdkResult};
use super::{Cx, Observed};
use crate::model::Role;

const ORIGIN_ID: &str = "website";
/// AWS's managed cache policy `CachingOptimized`: default TTL one day, as the
/// original distribution had; no query strings or cookies in the key.
const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";

fn comment(cx: &Cx) -> String {
    format!("{}-website", cx.stack.project)
}

/// The distribution whose comment names the stack: (id, arn, domain, ours).
async fn find(cx: &Cx) -> Result<Option<(String, String, String, bool)>> {
    let cf = &cx.global.cloudfront;
    let mut marker = None;
    let want = comment(cx);
    loop {
        let out = cf
            .list_distributions()
            .set_marker(marker)
            .send()
            .await
            .sdk("cloudfront:ListDistributions")?;
        let Some(list) = out.distribution_list() else {
            return Ok(None);
        };
        for d in list.items() {
            if d.comment() == want {
                let tags = cf
                    .list_tags_for_resource()
                    .resource(d.arn())
                    .send()
                    .await
                    .sdk("cloudfront:ListTagsForResource")?;
                let ours = tags.tags().is_some_and(|t| {
                    t.items()
                        .iter()
                        .any(|x| x.key() == STACK_TAG && x.value() == Some(&cx.stack.project))
                });
                return Ok(Some((
                    d.id().to_string(),
                    d.arn().to_string(),
                    d.domain_name().to_string(),
                    ours,
                )));
            }
        }
        marker = list.next_marker().map(String::from);
        if marker.is_none() || !list.is_truncated() {
            return Ok(None);
        }
    }
}

pub async fn observe(cx: &Cx) -> Result<Observed> {
    let Some((id, arn, domain, ours)) = find(cx).await? else {
        return Ok(Observed::Absent);
    };
    if !ours {
        return Ok(Observed::Foreign(format!(
            "distribution without the {STACK_TAG} tag"
        )));
    }
    cx.learn(|f| {
        f.distribution_id = Some(id.clone());
        f.distribution_arn = Some(arn);
        f.distribution_domain = Some(domain);
    });
    let cfg = cx
        .global
        .cloudfront
        .get_distribution_config()
        .id(&id)
        .send()
        .await
        .sdk("cloudfront:GetDistributionConfig")?;
    let mut drift = Vec::new();
    let c = cfg
        .distribution_config()
        .context("no distribution config")?;
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
    let name = comment(cx);
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
    let name = comment(cx);
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
        .comment(comment(cx))
        .enabled(true)
        .default_root_object("index.html")
        .origins(Origins::builder().quantity(1).items(origin).build()?)
        .default_cache_behavior(behavior)
        .build()?)
}

pub async fn converge(cx: &Cx, exists: bool) -> Result<()> {
    let cf = &cx.global.cloudfront;
    let oac = access_control(cx).await?;
    if exists {
        let id = cx
            .facts()
            .distribution_id
            .context("distribution id not known")?;
        let cur = cf
            .get_distribution_config()
            .id(&id)
            .send()
            .await
            .sdk("cloudfront:GetDistributionConfig")?;
        let reference = cur
            .distribution_config()
            .map(|c| c.caller_reference().to_string())
            .unwrap_or_default();
        cf.update_distribution()
            .id(&id)
            .if_match(cur.e_tag().unwrap_or_default())
            .distribution_config(config(cx, &oac, reference)?)
            .send()
            .await
            .sdk("cloudfront:UpdateDistribution")?;
        return Ok(());
    }
    let reference = format!(
        "{}-{}",
        comment(cx),
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
pub async fn delete(cx: &Cx) -> Result<()> {
    let cf = &cx.global.cloudfront;
    if let Some((id, _, _, true)) = find(cx).await? {
        let cur = cf
            .get_distribution_config()
            .id(&id)
            .send()
            .await
            .sdk("cloudfront:GetDistributionConfig")?;
        let mut etag = cur.e_tag().unwrap_or_default().to_string();
        let mut cfg = cur
            .distribution_config()
            .cloned()
            .context("no distribution config")?;
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
    let arn = cx
        .facts()
        .distribution_arn
        .context("the distribution's ARN is not known")?;
    Ok(json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "CloudFrontReadsTheWebsite",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{}/*", cx.stack.website_bucket()),
        "Condition": {"StringEquals": {"AWS:SourceArn": arn}}
    }]}))
}

pub async fn observe_policy(cx: &Cx) -> Result<Observed> {
    let Ok(want) = website_policy(cx) else {
        return Ok(Observed::Absent);
    };
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
    Ok(match have.and_then(|p| p.policy().map(String::from)) {
        None => Observed::Absent,
        Some(p) if serde_json::from_str::<Value>(&p).ok() == Some(want) => Observed::ours(),
        Some(_) => Observed::drifted(vec!["bucket policy differs".into()]),
    })
}

pub async fn converge_policy(cx: &Cx) -> Result<()> {
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
