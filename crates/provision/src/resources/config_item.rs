//! The config item, seeded `active` at version 0: in each region's config table, or,
//! with global tables, in the commit region's replica only (the secondary, where the
//! monitor writes it). An existing item is never touched: its state belongs to the
//! monitor and the operators. It goes with its table.

use anyhow::Result;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use crate::context::StackContext;
use crate::sdk::{self, SdkResult};
use failover_core::model::Role;
use failover_provision_engine::{At, Kind, Observed, Pending};

/// The config item (its name is the app id).
#[derive(Debug, Clone, Serialize)]
pub struct ConfigItem;

impl Kind<StackContext> for ConfigItem {
    fn name(&self) -> &'static str {
        "config-item"
    }
    fn observe<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe(context, at.role))
    }
    fn converge<'a>(&'a self, context: &'a StackContext, at: At<'a>, _: bool) -> Pending<'a, ()> {
        Box::pin(seed(context, at.role))
    }
    fn delete<'a>(&'a self, _: &'a StackContext, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn deleted(&self) -> &'static str {
        "deleted with its table"
    }
}

/// The config item: there or not.
async fn observe(context: &StackContext, role: Role) -> Result<Observed> {
    let out = context
        .region(role)
        .ddb
        .get_item()
        .table_name(context.names().config_table())
        .key("appId", AttributeValue::S(context.stack.app_id.clone()))
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
async fn seed(context: &StackContext, role: Role) -> Result<()> {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let s = |v: &str| AttributeValue::S(v.to_string());
    let put = context
        .region(role)
        .ddb
        .put_item()
        .table_name(context.names().config_table())
        .item("appId", s(&context.stack.app_id))
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
        Err(e) if sdk::code(&e) == Some("ConditionalCheckFailedException") => Ok(()),
        Err(e) => Err(sdk::fail("dynamodb:PutItem", &e)),
    }
}
