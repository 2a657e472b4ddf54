//! [`ItemStore`] on DynamoDB: one region's config table.
//!
//! Keys (`crate::model::keys`): the config item is `appId = <app id>`, the audit
//! record of version N `<app id>#audit#<N>`, the replication canary
//! `<app id>#canary`. The commit's fence check reads the lease item
//! `<app id>#lease`, which the coordination store (`crate::coord`) writes.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, TransactWriteItem, Update, builders::UpdateBuilder,
};

use super::ActionError;
use super::store::{Commit, ItemStore, WriteError};
use crate::aws::dynamo::{Cancel, Item, Table, TxError, flag, n, num, s, text};
use crate::model::{AppState, AuditRecord, ConfigItem, Role, Trigger, keys};

pub struct DynamoItemStore {
    table: Table,
    app_id: String,
    role: Role,
}

impl DynamoItemStore {
    pub fn new(table: Table, app_id: String, role: Role) -> Self {
        Self {
            table,
            app_id,
            role,
        }
    }

    fn unavailable(&self, reason: String) -> ActionError {
        ActionError::Unavailable {
            region: self.role,
            reason,
        }
    }

    fn failed(&self, reason: String) -> WriteError {
        WriteError::Failed(self.unavailable(reason))
    }

    fn parse_item(&self, item: &Item) -> Result<ConfigItem, ActionError> {
        let malformed = |reason: String| ActionError::Malformed {
            region: self.role,
            reason,
        };
        let state = match item.get("state") {
            Some(AttributeValue::S(v)) => v
                .parse::<AppState>()
                .map_err(|e| malformed(e.to_string()))?,
            _ => return Err(malformed("the item has no string attribute `state`".into())),
        };
        let version = match item.get("version") {
            None => 0,
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| malformed(format!("version {v:?} is not a whole number")))?,
            Some(other) => return Err(malformed(format!("version is not a number: {other:?}"))),
        };
        Ok(ConfigItem {
            state,
            version,
            updated_at: text(item, "updatedAt"),
            updated_by: text(item, "updatedBy"),
            reason: text(item, "reason"),
        })
    }

    fn audit_item(&self, r: &AuditRecord) -> Item {
        Item::from([
            ("appId".to_string(), s(keys::audit(&self.app_id, r.version))),
            ("kind".to_string(), s("audit")),
            ("version".to_string(), n(r.version)),
            ("from".to_string(), s(r.from.as_str())),
            ("to".to_string(), s(r.to.as_str())),
            ("at".to_string(), s(&r.at)),
            ("by".to_string(), s(&r.by)),
            ("trigger".to_string(), s(r.trigger.as_str())),
            ("reason".to_string(), s(&r.reason)),
            ("evidence".to_string(), s(r.evidence.to_string())),
            ("forced".to_string(), AttributeValue::Bool(r.forced)),
        ])
    }

    fn parse_audit(&self, item: &Item) -> Result<AuditRecord, ActionError> {
        let malformed = |k: &str| ActionError::Malformed {
            region: self.role,
            reason: format!("audit record without a valid `{k}`"),
        };
        let txt = |k: &str| text(item, k).ok_or_else(|| malformed(k));
        let state = |k: &str| txt(k).and_then(|v| v.parse::<AppState>().map_err(|_| malformed(k)));
        Ok(AuditRecord {
            version: num(item, "version").ok_or_else(|| malformed("version"))?,
            from: state("from")?,
            to: state("to")?,
            at: txt("at")?,
            by: txt("by")?,
            trigger: match txt("trigger")?.as_str() {
                "auto" => Trigger::Auto,
                "manual" => Trigger::Manual,
                _ => return Err(malformed("trigger")),
            },
            reason: txt("reason")?,
            evidence: serde_json::from_str(&txt("evidence")?).map_err(|_| malformed("evidence"))?,
            forced: flag(item, "forced"),
        })
    }

    fn set_item(&self, new: &ConfigItem) -> UpdateBuilder {
        Update::builder()
            .table_name(&self.table.name)
            .key("appId", s(&self.app_id))
            .update_expression("SET #s = :to, #v = :new, #at = :at, #by = :by, #r = :reason")
            .expression_attribute_names("#s", "state")
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#at", "updatedAt")
            .expression_attribute_names("#by", "updatedBy")
            .expression_attribute_names("#r", "reason")
            .expression_attribute_values(":to", s(new.state.as_str()))
            .expression_attribute_values(":new", n(new.version))
            .expression_attribute_values(":at", s(new.updated_at.clone().unwrap_or_default()))
            .expression_attribute_values(":by", s(new.updated_by.clone().unwrap_or_default()))
            .expression_attribute_values(":reason", s(new.reason.clone().unwrap_or_default()))
    }

    /// The audit records of `versions` (at most 100) that exist, newest first.
    async fn read_audits(
        &self,
        versions: &[u64],
        consistent: bool,
    ) -> Result<Vec<AuditRecord>, ActionError> {
        let keys = versions
            .iter()
            .take(100)
            .map(|v| keys::audit(&self.app_id, *v));
        let mut records = self
            .table
            .batch_get(keys, consistent)
            .await
            .map_err(|e| self.unavailable(e))?
            .iter()
            .map(|i| self.parse_audit(i))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|r| std::cmp::Reverse(r.version));
        Ok(records)
    }

    /// Runs a transaction; a failed condition on the action at `fence_index` (the
    /// lease check) is [`WriteError::Fenced`], on any other a conflict.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        fence_index: Option<usize>,
    ) -> Result<(), WriteError> {
        match self.table.transact(items, None).await {
            Ok(()) => Ok(()),
            Err(TxError::Cancelled(reasons)) => {
                let failed = |r: &Cancel| *r == Cancel::ConditionalCheckFailed;
                if fence_index.is_some_and(|i| reasons.get(i).is_some_and(failed)) {
                    Err(WriteError::Fenced)
                } else if reasons.iter().any(failed) {
                    Err(WriteError::Conflict)
                } else {
                    Err(self.failed(format!(
                        "transact_write_items {}: TransactionCanceledException: {reasons:?}",
                        self.table.name
                    )))
                }
            }
            Err(TxError::Failed(e)) => Err(self.failed(e)),
        }
    }
}

#[async_trait]
impl ItemStore for DynamoItemStore {
    fn role(&self) -> Role {
        self.role
    }

    async fn read(&self) -> Result<Option<ConfigItem>, ActionError> {
        let item = self
            .table
            .get(&self.app_id)
            .await
            .map_err(|e| self.unavailable(e))?;
        item.map(|i| self.parse_item(&i)).transpose()
    }

    async fn compare_and_set(&self, c: Commit<'_>) -> Result<(), WriteError> {
        let condition = if c.expected == 0 {
            "#s = :from AND (attribute_not_exists(#v) OR #v = :expected)"
        } else {
            "#s = :from AND #v = :expected"
        };
        let build = |e: aws_sdk_dynamodb::error::BuildError| self.failed(e.to_string());
        let update = self
            .set_item(c.item)
            .condition_expression(condition)
            .expression_attribute_values(":from", s(c.from.as_str()))
            .expression_attribute_values(":expected", n(c.expected))
            .build()
            .map_err(build)?;
        let put = Put::builder()
            .table_name(&self.table.name)
            .set_item(Some(self.audit_item(c.audit)))
            .condition_expression("attribute_not_exists(appId)")
            .build()
            .map_err(build)?;
        let mut items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().put(put).build(),
        ];
        if let Some(f) = c.fence {
            let check = ConditionCheck::builder()
                .table_name(&self.table.name)
                .key("appId", s(keys::lease(&self.app_id)))
                .condition_expression("#o = :owner AND #t = :token")
                .expression_attribute_names("#o", "owner")
                .expression_attribute_names("#t", "token")
                .expression_attribute_values(":owner", s(&f.owner))
                .expression_attribute_values(":token", n(f.token))
                .build()
                .map_err(build)?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        self.transact(items, c.fence.map(|_| 2)).await
    }

    async fn catch_up(&self, item: &ConfigItem, audits: &[AuditRecord]) -> Result<(), WriteError> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| self.failed(e.to_string());
        let update = self
            .set_item(item)
            .condition_expression("attribute_not_exists(#v) OR #v < :new")
            .build()
            .map_err(build)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        for a in audits {
            let put = Put::builder()
                .table_name(&self.table.name)
                .set_item(Some(self.audit_item(a)))
                .build()
                .map_err(build)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        self.transact(items, None).await
    }

    async fn audits(&self, versions: &[u64]) -> Result<Vec<AuditRecord>, ActionError> {
        self.read_audits(versions, true).await
    }

    async fn audits_eventually(&self, versions: &[u64]) -> Result<Vec<AuditRecord>, ActionError> {
        self.read_audits(versions, false).await
    }

    async fn put_canary(&self, nonce: &str) -> Result<(), ActionError> {
        let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let call = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .item("appId", s(keys::canary(&self.app_id)))
            .item("kind", s("canary"))
            .item("nonce", s(nonce))
            .item("writtenAt", s(at))
            .send();
        self.table
            .call("put_item", call)
            .await
            .map(|_| ())
            .map_err(|e| self.unavailable(e))
    }

    async fn read_canary(&self) -> Result<Option<String>, ActionError> {
        let item = self
            .table
            .get(&keys::canary(&self.app_id))
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(item.and_then(|i| text(&i, "nonce")))
    }
}
