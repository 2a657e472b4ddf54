//! DynamoDB tables: the config table (hash key `appId`) and the store (hash key
//! `commentId`, GSI `photoId`), on demand, with streams. With global tables the
//! primary's table gets a replica in the secondary; per region (an emulator cannot
//! replicate) each region has its own.

use std::time::Duration;

use anyhow::{Result, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ReplicationGroupUpdate, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableDescription, TableStatus,
};
use serde::Serialize;

use crate::context::StackContext;
use crate::names::Names;
use crate::sdk::{STACK_TAG, SdkResult};
use crate::stack::Stack;
use failover_config::TablesMode;
use failover_core::model::Role;
use failover_provision_engine::{At, Kind, Observed, Pending};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename = "table")]
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
    pub fn table_name(&self, names: &Names) -> String {
        if self.store {
            names.store_table()
        } else {
            names.config_table()
        }
    }
    fn hash_key(&self) -> &'static str {
        if self.store { "commentId" } else { "appId" }
    }
}

impl Kind<StackContext> for TableSpec {
    fn name(&self) -> &'static str {
        "dynamodb-table"
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
        Box::pin(delete(context, at.role, at.name))
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

async fn observe(context: &StackContext, at: At<'_>, spec: &TableSpec) -> Result<Observed> {
    let ddb = &context.region(at.role).ddb;
    let same = ddb
        .describe_table()
        .table_name(at.name)
        .send()
        .await
        .absent("dynamodb:DescribeTable", &["ResourceNotFoundException"])?
        .and_then(|o| o.table().cloned());
    let tag = move |t: &TableDescription| {
        let arn = t.table_arn().unwrap_or_default().to_string();
        async move {
            let tags = ddb
                .list_tags_of_resource()
                .resource_arn(arn)
                .send()
                .await
                .sdk("dynamodb:ListTagsOfResource")?;
            let tag = tags.tags().iter().find(|x| x.key() == STACK_TAG);
            anyhow::Ok(tag.map(|x| x.value().to_string()))
        }
    };
    let lookup = context.lookup("table", at.name);
    let t = match lookup
        .among(same.into_iter().collect(), tag)
        .await?
        .or_observed()
    {
        Ok(t) => t,
        Err(seen) => return Ok(seen),
    };
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

async fn wait_active(context: &StackContext, role: Role, name: &str) -> Result<()> {
    let ddb = &context.region(role).ddb;
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

async fn converge(
    context: &StackContext,
    at: At<'_>,
    spec: &TableSpec,
    exists: bool,
) -> Result<()> {
    if exists {
        update_in_place(context, at, spec).await?;
    } else {
        create(context, at, spec).await?;
    }
    if let Some(replica) = &spec.replica {
        let Observed::Present { drift } = observe(context, at, spec).await? else {
            bail!("table {} vanished", at.name);
        };
        if drift.iter().any(|d| d.starts_with("no replica")) {
            let add = aws_sdk_dynamodb::types::CreateReplicationGroupMemberAction::builder()
                .region_name(replica)
                .build()?;
            context
                .region(at.role)
                .ddb
                .update_table()
                .table_name(at.name)
                .replica_updates(ReplicationGroupUpdate::builder().create(add).build())
                .send()
                .await
                .sdk("dynamodb:UpdateTable (add replica)")?;
            wait_active(context, at.role, at.name).await?;
        }
    }
    Ok(())
}

async fn create(context: &StackContext, at: At<'_>, spec: &TableSpec) -> Result<()> {
    let tag = aws_sdk_dynamodb::types::Tag::builder()
        .key(STACK_TAG)
        .value(context.stack.project())
        .build()?;
    let mut req = context
        .region(at.role)
        .ddb
        .create_table()
        .table_name(at.name)
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
    wait_active(context, at.role, at.name).await
}

/// Brings back what can change in place, one update at a time (DynamoDB accepts
/// one kind of change per UpdateTable).
async fn update_in_place(context: &StackContext, at: At<'_>, spec: &TableSpec) -> Result<()> {
    let name = at.name;
    let Observed::Present { drift } = observe(context, at, spec).await? else {
        bail!("table {name} vanished while being updated");
    };
    for d in &drift {
        let req = context.region(at.role).ddb.update_table().table_name(name);
        let req = if d.starts_with("key schema") {
            bail!("table {name}: {d}; delete it by hand (its data with it) and apply again");
        } else if d.starts_with("stream") {
            req.stream_specification(stream()?)
        } else if d.starts_with("billing") {
            req.billing_mode(BillingMode::PayPerRequest)
        } else if d.starts_with("GSI") {
            let g = gsi()?;
            let create = CreateGlobalSecondaryIndexAction::builder()
                .index_name(g.index_name())
                .set_key_schema(Some(g.key_schema().to_vec()))
                .set_projection(g.projection().cloned())
                .build()?;
            req.attribute_definitions(attr("photoId")?)
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder().create(create).build(),
                )
        } else {
            continue;
        };
        req.send().await.sdk("dynamodb:UpdateTable")?;
        wait_active(context, at.role, name).await?;
    }
    Ok(())
}

async fn delete(context: &StackContext, role: Role, name: &str) -> Result<()> {
    let ddb = &context.region(role).ddb;
    // A global table's replicas go first: DynamoDB refuses to delete the last
    // region of a table that still has replicas elsewhere.
    if let Some(out) = ddb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .absent("dynamodb:DescribeTable", &["ResourceNotFoundException"])?
    {
        let here = context.region(role).name.clone();
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
            wait_active(context, role, name).await?;
        }
    }
    ddb.delete_table()
        .table_name(name)
        .send()
        .await
        .absent("dynamodb:DeleteTable", &["ResourceNotFoundException"])?;
    Ok(())
}
