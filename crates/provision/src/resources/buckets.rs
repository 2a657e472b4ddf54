//! S3 buckets: the photos in both regions (versioned, CORS for the web page's
//! uploads, the primary's `public/` prefix replicated to the secondary's), and the
//! website. Destroy empties a bucket (every version and delete marker) first.

use anyhow::Result;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CorsConfiguration, CorsRule,
    CreateBucketConfiguration, Delete, DeleteMarkerReplication, DeleteMarkerReplicationStatus,
    Destination, ObjectIdentifier, ReplicationConfiguration, ReplicationRule,
    ReplicationRuleFilter, ReplicationRuleStatus, StorageClass, Tagging, VersioningConfiguration,
};
use serde::Serialize;

use super::iam;
use crate::context::StackContext;
use crate::names::Names;
use crate::sdk::{self, STACK_TAG, SdkResult};
use failover_core::model::Role;
use failover_provision_engine::{At, Kind, Observed, Pending};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename = "bucket")]
pub struct BucketSpec {
    /// CORS for the web page's uploads.
    pub cors: bool,
    /// The destination bucket of the `public` prefix's replication.
    pub replicate_to: Option<String>,
    /// A lifecycle rule that expires the monitor's canary objects (`health/`, the
    /// `s3` probes' `roundtrip`) once they are not current: in a versioned bucket
    /// every canary write leaves a version and every delete a marker.
    pub expire_canaries: bool,
}

impl BucketSpec {
    pub fn photos(names: &Names, role: Role) -> Self {
        BucketSpec {
            cors: true,
            replicate_to: (role == Role::Primary).then(|| names.bucket(Role::Secondary)),
            expire_canaries: true,
        }
    }
    pub fn website() -> Self {
        BucketSpec {
            cors: false,
            replicate_to: None,
            expire_canaries: false,
        }
    }
}

impl Kind<StackContext> for BucketSpec {
    fn name(&self) -> &'static str {
        "s3-bucket"
    }
    fn observe<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe(context, at, self))
    }
    fn converge<'a>(
        &'a self,
        context: &'a StackContext,
        at: At<'a>,
        exists: bool,
    ) -> Pending<'a, ()> {
        Box::pin(converge(context, at, self, exists))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete(context, at))
    }
}

async fn observe(context: &StackContext, at: At<'_>, spec: &BucketSpec) -> Result<Observed> {
    let s3 = &context.region(at.role).s3;
    let name = at.name;
    let same = match s3.head_bucket().bucket(name).send().await {
        Ok(_) => vec![()],
        Err(e) if sdk::status(&e) == Some(404) => Vec::new(),
        Err(e) if sdk::status(&e) == Some(403) => {
            return Ok(Observed::Foreign("bucket owned by another account".into()));
        }
        Err(e) => return Err(sdk::fail("s3:HeadBucket", &e)),
    };
    let tag = move |_: &()| async move {
        let tags = s3.get_bucket_tagging().bucket(name).send().await.absent(
            "s3:GetBucketTagging",
            &["NoSuchTagSet", "NoSuchTagSetError"],
        )?;
        let tag = tags.and_then(|t| t.tag_set().iter().find(|x| x.key() == STACK_TAG).cloned());
        anyhow::Ok(tag.map(|t| t.value().to_string()))
    };
    if let Err(seen) = context
        .lookup("bucket", name)
        .among(same, tag)
        .await?
        .or_observed()
    {
        return Ok(seen);
    }
    let mut drift = Vec::new();
    if !versioning_enabled(s3, name).await? {
        drift.push("versioning not enabled".into());
    }
    if spec.cors {
        let cors = s3
            .get_bucket_cors()
            .bucket(name)
            .send()
            .await
            .absent("s3:GetBucketCors", &["NoSuchCORSConfiguration"])?;
        if cors.is_none_or(|c| c.cors_rules().is_empty()) {
            drift.push("CORS missing".into());
        }
    }
    if let Some(dest) = &spec.replicate_to
        && !replicates_to(s3, name, dest).await?
    {
        drift.push(format!("replication to {dest} missing"));
    }
    if spec.expire_canaries && !expires_canaries(s3, name).await? {
        drift.push("canary expiry (lifecycle rule on health/) missing".into());
    }
    Ok(Observed::drifted(drift))
}

async fn versioning_enabled(s3: &aws_sdk_s3::Client, name: &str) -> Result<bool> {
    match s3.get_bucket_versioning().bucket(name).send().await {
        Ok(v) => Ok(v.status() == Some(&BucketVersioningStatus::Enabled)),
        // moto answers 200 with a `GetBucketVersioningResponse` root element where S3
        // has `VersioningConfiguration`, which the SDK refuses to parse; the status
        // inside is the same element, so it is read from the raw answer.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => Ok(e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>"))),
        Err(e) => Err(sdk::fail("s3:GetBucketVersioning", &e)),
    }
}

async fn replicates_to(s3: &aws_sdk_s3::Client, name: &str, dest: &str) -> Result<bool> {
    let rep = s3
        .get_bucket_replication()
        .bucket(name)
        .send()
        .await
        .absent(
            "s3:GetBucketReplication",
            &["ReplicationConfigurationNotFoundError"],
        )?;
    let arn = format!("arn:aws:s3:::{dest}");
    Ok(rep
        .and_then(|r| r.replication_configuration().cloned())
        .is_some_and(|c| {
            c.rules().iter().any(|r| {
                r.status() == &ReplicationRuleStatus::Enabled
                    && r.destination().is_some_and(|d| d.bucket() == arn)
            })
        }))
}

async fn converge(
    context: &StackContext,
    at: At<'_>,
    spec: &BucketSpec,
    exists: bool,
) -> Result<()> {
    let region = context.region(at.role);
    let (s3, name) = (&region.s3, at.name);
    if !exists {
        let mut req = s3.create_bucket().bucket(name);
        if region.name != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.name.as_str()))
                    .build(),
            );
        }
        req.send().await.sdk("s3:CreateBucket")?;
    }
    // Tag first: a bucket that exists is ours from this line on, so a failure below
    // leaves something the next apply finishes instead of refusing.
    let tag = aws_sdk_s3::types::Tag::builder()
        .key(STACK_TAG)
        .value(context.stack.project())
        .build()?;
    s3.put_bucket_tagging()
        .bucket(name)
        .tagging(Tagging::builder().tag_set(tag).build()?)
        .send()
        .await
        .sdk("s3:PutBucketTagging")?;
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .sdk("s3:PutBucketVersioning")?;
    if spec.cors {
        put_cors(s3, name).await?;
    }
    if let Some(dest) = &spec.replicate_to {
        let role_arn = context.know(&iam::role_arn(&context.names().role("replica")))?;
        put_replication(s3, name, dest, role_arn).await?;
    }
    if spec.expire_canaries {
        put_canary_expiry(s3, name).await?;
    }
    Ok(())
}

/// The id of the lifecycle rule that expires the canary objects.
const CANARY_RULE: &str = "failover-monitor-canaries";

async fn expires_canaries(s3: &aws_sdk_s3::Client, name: &str) -> Result<bool> {
    let rules = s3
        .get_bucket_lifecycle_configuration()
        .bucket(name)
        .send()
        .await
        .absent(
            "s3:GetLifecycleConfiguration",
            &["NoSuchLifecycleConfiguration"],
        )?;
    Ok(rules.is_some_and(|r| r.rules().iter().any(|r| r.id() == Some(CANARY_RULE))))
}

/// Old versions of `health/` objects go after a day, and the delete markers left
/// alone by then too. (The bucket has no other lifecycle rule: this replaces it.)
async fn put_canary_expiry(s3: &aws_sdk_s3::Client, name: &str) -> Result<()> {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, NoncurrentVersionExpiration,
    };
    let rule = LifecycleRule::builder()
        .id(CANARY_RULE)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("health/").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(1)
                .build(),
        )
        .expiration(
            LifecycleExpiration::builder()
                .expired_object_delete_marker(true)
                .build(),
        )
        .build()?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(name)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()?,
        )
        .send()
        .await
        .sdk("s3:PutLifecycleConfiguration")?;
    Ok(())
}

async fn put_cors(s3: &aws_sdk_s3::Client, name: &str) -> Result<()> {
    let rule = CorsRule::builder()
        .allowed_origins("*")
        .allowed_headers("*")
        .set_allowed_methods(Some(
            ["GET", "PUT", "POST", "DELETE", "HEAD"]
                .map(String::from)
                .to_vec(),
        ))
        .expose_headers("ETag")
        .max_age_seconds(3000)
        .build()?;
    s3.put_bucket_cors()
        .bucket(name)
        .cors_configuration(CorsConfiguration::builder().cors_rules(rule).build()?)
        .send()
        .await
        .sdk("s3:PutBucketCors")?;
    Ok(())
}

/// Replicates `public*` to `dest` (delete markers stay where they are).
async fn put_replication(
    s3: &aws_sdk_s3::Client,
    name: &str,
    dest: &str,
    role_arn: String,
) -> Result<()> {
    let rule = ReplicationRule::builder()
        .id("public")
        .priority(1)
        .status(ReplicationRuleStatus::Enabled)
        .filter(ReplicationRuleFilter::builder().prefix("public").build())
        .delete_marker_replication(
            DeleteMarkerReplication::builder()
                .status(DeleteMarkerReplicationStatus::Disabled)
                .build(),
        )
        .destination(
            Destination::builder()
                .bucket(format!("arn:aws:s3:::{dest}"))
                .storage_class(StorageClass::Standard)
                .build()?,
        )
        .build()?;
    s3.put_bucket_replication()
        .bucket(name)
        .replication_configuration(
            ReplicationConfiguration::builder()
                .role(role_arn)
                .rules(rule)
                .build()?,
        )
        .send()
        .await
        .sdk("s3:PutBucketReplication")?;
    Ok(())
}

/// Empties the bucket (every version and delete marker) and deletes it.
async fn delete(context: &StackContext, at: At<'_>) -> Result<()> {
    let s3 = &context.region(at.role).s3;
    let name = at.name;
    s3.delete_bucket_replication()
        .bucket(name)
        .send()
        .await
        .absent("s3:DeleteBucketReplication", &["NoSuchBucket", "404"])?;
    loop {
        let page = s3
            .list_object_versions()
            .bucket(name)
            .max_keys(1000)
            .send()
            .await
            .sdk("s3:ListObjectVersions")?;
        let versions = page.versions().iter().map(|v| (v.key(), v.version_id()));
        let markers = page
            .delete_markers()
            .iter()
            .map(|m| (m.key(), m.version_id()));
        let objects = versions
            .chain(markers)
            .map(|(k, v)| {
                ObjectIdentifier::builder()
                    .key(k.unwrap_or_default())
                    .set_version_id(v.map(String::from))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        if objects.is_empty() {
            break;
        }
        s3.delete_objects()
            .bucket(name)
            .delete(
                Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()?,
            )
            .send()
            .await
            .sdk("s3:DeleteObjects")?;
    }
    s3.delete_bucket()
        .bucket(name)
        .send()
        .await
        .absent("s3:DeleteBucket", &["NoSuchBucket"])?;
    Ok(())
}
