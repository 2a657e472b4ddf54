//! DynamoDB tables (config and store), the seeded config item, and the S3 buckets
//! (photos in both regions with replication primary -> secondary, and the website).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ReplicationGroupUpdate, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableStatus,
};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CorsConfiguration, CorsRule,
    CreateBucketConfiguration, Delete, DeleteMarkerReplication, DeleteMarkerReplicationStatus,
    Destination, ObjectIdentifier, ReplicationConfiguration, ReplicationRule,
    ReplicationRuleFilter, ReplicationRuleStatus, StorageClass, Tagging, VersioningConfiguration,
};
use serde::Serialize;

use super::sdk::{STACK_TAG, SdkResult};
use super::{Cx, Observed, Stack};
use crate::config::TablesMode;
use crate::model::Role;

#[derive(Debug, Clone, Serialize)]
pub struct TableSpec {
    pub store: bool,
    /// Global tables: the region of the replica.
    pub replica: Option<String>,
}

impl TableSpec {
    pub fn new(stack: &Stack, store: bool) -> Self {
        TableSpec {
            store,
            replica: (stack.tables == TablesMode::Global)
                .then(|| stack.region_name(Role::Secondary).to_string()),
        }
    }
    fn hash_key(&self) -> &'static str {
        if self.store { "commentId" } else { "appId" }
    }
}

fn key(name: &str) -> Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(KeyType::Hash)
        .build()?)
}

fn attr(name: &str) -> Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()?)
}

fn stream() -> Result<StreamSpecification> {
    Ok(StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()?)
}

fn gsi() -> Result<GlobalSecondaryIndex> {
    Ok(GlobalSecondaryIndex::builder()
        .index_name("photoId")
        .key_schema(key("photoId")?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()?)
}

pub async fn observe_table(cx: &Cx, role: Role, name: &str, spec: &TableSpec) -> Result<Observed> {
    let ddb = &cx.region(role).ddb;
    let Some(out) = ddb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .absent("dynamodb:DescribeTable", &["ResourceNotFoundException"])?
    else {
        return Ok(Observed::Absent);
    };
    let t = out
        .table()
        .context("DescribeTable answered without a table")?;
    let tags = ddb
        .list_tags_of_resource()
        .resource_arn(t.table_arn().unwrap_or_default())
        .send()
        .await
        .sdk("dynamodb:ListTagsOfResource")?;
    if !tags
        .tags()
        .iter()
        .any(|x| x.key() == STACK_TAG && x.value() == cx.stack.project)
    {
        return Ok(Observed::Foreign(format!(
            "table without the {STACK_TAG} tag"
        )));
    }
    let mut drift = Vec::new();
    let hash = t
        .key_schema()
        .iter()
        .find(|k| k.key_type() == &KeyType::Hash)
        .map(|k| k.attribute_name());
    if hash != Some(spec.hash_key()) || t.key_schema().len() != 1 {
        drift.push(format!(
            "key schema is not {} (HASH): cannot be changed in place",
            spec.hash_key()
        ));
    }
    let streams = t.stream_specification();
    if !streams.is_some_and(|s| {
        s.stream_enabled() && s.stream_view_type() == Some(&StreamViewType::NewAndOldImages)
    }) {
        drift.push("stream NEW_AND_OLD_IMAGES not enabled".into());
    }
    let billing = t.billing_mode_summary().and_then(|b| b.billing_mode());
    if billing != Some(&BillingMode::PayPerRequest) {
        drift.push("billing mode is not PAY_PER_REQUEST".into());
    }
    if spec.store
        && !t.global_secondary_indexes().iter().any(|i| {
            i.index_name() == Some("photoId")
                && i.key_schema().first().map(|k| k.attribute_name()) == Some("photoId")
        })
    {
        drift.push("GSI photoId missing".into());
    }
    if let Some(replica) = &spec.replica
        && !t
            .replicas()
            .iter()
            .any(|r| r.region_name() == Some(replica.as_str()))
    {
        drift.push(format!("no replica in {replica}"));
    }
    Ok(Observed::drifted(drift))
}

async fn wait_active(cx: &Cx, role: Role, name: &str) -> Result<()> {
    let ddb = &cx.region(role).ddb;
    for _ in 0..600 {
        let out = ddb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .sdk("dynamodb:DescribeTable")?;
        let t = out.table();
        let table_ok = t.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
        let replicas_ok = t.is_none_or(|t| {
            t.replicas()
                .iter()
                .all(|r| r.replica_status().is_none_or(|s| s.as_str() == "ACTIVE"))
        });
        if table_ok && replicas_ok {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("table {name} did not become ACTIVE within 10 minutes")
}

pub async fn converge_table(
    cx: &Cx,
    role: Role,
    name: &str,
    spec: &TableSpec,
    exists: bool,
) -> Result<()> {
    let ddb = &cx.region(role).ddb;
    if !exists {
        let tag = aws_sdk_dynamodb::types::Tag::builder()
            .key(STACK_TAG)
            .value(&cx.stack.project)
            .build()?;
        let mut req = ddb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(spec.hash_key())?)
            .attribute_definitions(attr(spec.hash_key())?)
            .stream_specification(stream()?)
            .tags(tag);
        if spec.store {
            req = req
                .attribute_definitions(attr("photoId")?)
                .global_secondary_indexes(gsi()?);
        }
        req.send().await.sdk("dynamodb:CreateTable")?;
        wait_active(cx, role, name).await?;
    } else {
        // Bring back what can change in place, one update at a time (DynamoDB
        // accepts one kind of change per UpdateTable).
        let Observed::Present { drift } = observe_table(cx, role, name, spec).await? else {
            bail!("table {name} vanished while being updated");
        };
        for d in &drift {
            let req = ddb.update_table().table_name(name);
            let req = if d.starts_with("key schema") {
                bail!("table {name}: {d}; delete it by hand (its data with it) and apply again");
            } else if d.starts_with("stream") {
                req.stream_specification(stream()?)
            } else if d.starts_with("billing") {
                req.billing_mode(BillingMode::PayPerRequest)
            } else if d.starts_with("GSI") {
                let g = gsi()?;
                req.attribute_definitions(attr("photoId")?)
                    .global_secondary_index_updates(
                        aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                            .create(
                                aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder(
                                )
                                .index_name(g.index_name())
                                .set_key_schema(Some(g.key_schema().to_vec()))
                                .set_projection(g.projection().cloned())
                                .build()?,
                            )
                            .build(),
                    )
            } else {
                continue;
            };
            req.send().await.sdk("dynamodb:UpdateTable")?;
            wait_active(cx, role, name).await?;
        }
    }
    if let Some(replica) = &spec.replica {
        let Observed::Present { drift } = observe_table(cx, role, name, spec).await? else {
            bail!("table {name} vanished");
        };
        if drift.iter().any(|d| d.starts_with("no replica")) {
            ddb.update_table()
                .table_name(name)
                .replica_updates(
                    ReplicationGroupUpdate::builder()
                        .create(
                            aws_sdk_dynamodb::types::CreateReplicationGroupMemberAction::builder()
                                .region_name(replica)
                                .build()?,
                        )
                        .build(),
                )
                .send()
                .await
                .sdk("dynamodb:UpdateTable (add replica)")?;
            wait_active(cx, role, name).await?;
        }
    }
    Ok(())
}

pub async fn delete_table(cx: &Cx, role: Role, name: &str) -> Result<()> {
    let ddb = &cx.region(role).ddb;
    // A global table's replicas go first: DynamoDB refuses to delete the last
    // region of a table that still has replicas elsewhere.
    if let Some(out) = ddb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .absent("dynamodb:DescribeTable", &["ResourceNotFoundException"])?
    {
        let here = cx.region(role).name.clone();
        for r in out.table().map(|t| t.replicas()).unwrap_or_default() {
            let Some(region) = r.region_name().filter(|n| *n != here) else {
                continue;
            };
            ddb.update_table()
                .table_name(name)
                .replica_updates(
                    ReplicationGroupUpdate::builder()
                        .delete(
                            aws_sdk_dynamodb::types::DeleteReplicationGroupMemberAction::builder()
                                .region_name(region)
                                .build()?,
                        )
                        .build(),
                )
                .send()
                .await
                .sdk("dynamodb:UpdateTable (remove replica)")?;
            wait_active(cx, role, name).await?;
        }
    }
    ddb.delete_table()
        .table_name(name)
        .send()
        .await
        .absent("dynamodb:DeleteTable", &["ResourceNotFoundException"])?;
    Ok(())
}

/// The config item: there or not. An existing item is never touched (its state
/// belongs to the monitor and the operators).
pub async fn observe_item(cx: &Cx, role: Role) -> Result<Observed> {
    let out = cx
        .region(role)
        .ddb
        .get_item()
        .table_name(cx.stack.config_table())
        .key("appId", AttributeValue::S(cx.stack.app_id.clone()))
        .consistent_read(true)
        .send()
        .await
        .absent("dynamodb:GetItem", &["ResourceNotFoundException"])?;
    Ok(match out.and_then(|o| o.item) {
        Some(_) => Observed::ours(),
        None => Observed::Absent,
    })
}

/// Seeds `{appId, state: active, version: 0, ...}` unless an item is already there.
pub async fn seed_item(cx: &Cx, role: Role) -> Result<()> {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let s = |v: &str| AttributeValue::S(v.to_string());
    let put = cx
        .region(role)
        .ddb
        .put_item()
        .table_name(cx.stack.config_table())
        .item("appId", s(&cx.stack.app_id))
        .item("state", s("active"))
        .item("version", AttributeValue::N("0".into()))
        .item("updatedAt", s(&now))
        .item("updatedBy", s("provision"))
        .item("reason", s("seeded by failover-monitor provision"))
        .condition_expression("attribute_not_exists(appId)")
        .send()
        .await;
    match put {
        Ok(_) => Ok(()),
        // Written meanwhile (by a monitor or another apply): keep it.
        Err(e) if super::sdk::code(&e) == Some("ConditionalCheckFailedException") => Ok(()),
        Err(e) => Err(super::sdk::fail("dynamodb:PutItem", &e)),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketSpec {
    /// CORS for the web page's uploads.
    pub cors: bool,
    /// The destination bucket of the `public` prefix's replication.
    pub replicate_to: Option<String>,
}

impl BucketSpec {
    pub fn photos(stack: &Stack, role: Role) -> Self {
        BucketSpec {
            cors: true,
            replicate_to: (role == Role::Primary).then(|| stack.bucket(Role::Secondary)),
        }
    }
    pub fn website() -> Self {
        BucketSpec {
            cors: false,
            replicate_to: None,
        }
    }
}

pub async fn observe_bucket(
    cx: &Cx,
    role: Role,
    name: &str,
    spec: &BucketSpec,
) -> Result<Observed> {
    let s3 = &cx.region(role).s3;
    match s3.head_bucket().bucket(name).send().await {
        Ok(_) => {}
        Err(e) if super::sdk::status(&e) == Some(404) => return Ok(Observed::Absent),
        Err(e) if super::sdk::status(&e) == Some(403) => {
            return Ok(Observed::Foreign("bucket owned by another account".into()));
        }
        Err(e) => return Err(super::sdk::fail("s3:HeadBucket", &e)),
    }
    let tags = s3.get_bucket_tagging().bucket(name).send().await.absent(
        "s3:GetBucketTagging",
        &["NoSuchTagSet", "NoSuchTagSetError"],
    )?;
    let ours = tags.is_some_and(|t| {
        t.tag_set()
            .iter()
            .any(|x| x.key() == STACK_TAG && x.value() == cx.stack.project)
    });
    if !ours {
        return Ok(Observed::Foreign(format!(
            "bucket without the {STACK_TAG} tag"
        )));
    }
    let mut drift = Vec::new();
    let enabled = match s3.get_bucket_versioning().bucket(name).send().await {
        Ok(v) => v.status() == Some(&BucketVersioningStatus::Enabled),
        // moto answers 200 with a `GetBucketVersioningResponse` root element where S3
        // has `VersioningConfiguration`, which the SDK refuses to parse; the status
        // inside is the same element, so it is read from the raw answer.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .map(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>"))
            .unwrap_or(false),
        Err(e) => return Err(super::sdk::fail("s3:GetBucketVersioning", &e)),
    };
    if !enabled {
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
    if let Some(dest) = &spec.replicate_to {
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
        let ok = rep
            .and_then(|r| r.replication_configuration().cloned())
            .is_some_and(|c| {
                c.rules().iter().any(|r| {
                    r.status() == &ReplicationRuleStatus::Enabled
                        && r.destination().is_some_and(|d| d.bucket() == arn)
                })
            });
        if !ok {
            drift.push(format!("replication to {dest} missing"));
        }
    }
    Ok(Observed::drifted(drift))
}

pub async fn converge_bucket(
    cx: &Cx,
    role: Role,
    name: &str,
    spec: &BucketSpec,
    exists: bool,
) -> Result<()> {
    let region = cx.region(role);
    let s3 = &region.s3;
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
    s3.put_bucket_tagging()
        .bucket(name)
        .tagging(
            Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key(STACK_TAG)
                        .value(&cx.stack.project)
                        .build()?,
                )
                .build()?,
        )
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
    }
    if let Some(dest) = &spec.replicate_to {
        let role_name = cx.stack.role_name("replica");
        let role_arn = cx
            .facts()
            .role_arns
            .get(&role_name)
            .cloned()
            .with_context(|| format!("the ARN of role {role_name} is not known"))?;
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
    }
    Ok(())
}

/// Empties the bucket (every version and delete marker) and deletes it.
pub async fn delete_bucket(cx: &Cx, role: Role, name: &str) -> Result<()> {
    let s3 = &cx.region(role).s3;
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
        let mut ids = Vec::new();
        for v in page.versions() {
            ids.push((v.key().unwrap_or_default(), v.version_id()));
        }
        for m in page.delete_markers() {
            ids.push((m.key().unwrap_or_default(), m.version_id()));
        }
        if ids.is_empty() {
            break;
        }
        let objects = ids
            .into_iter()
            .map(|(k, v)| {
                ObjectIdentifier::builder()
                    .key(k)
                    .set_version_id(v.map(String::from))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
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
