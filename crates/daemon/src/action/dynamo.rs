//! [`ItemStore`] on DynamoDB: one region's config table.
//!
//! Keys (`failover_core::model::keys`): the config item is `appId = <app id>`, the audit
//! record of version N `<app id>#audit#<N>`, the operator's pause `<app id>#pause`.
//! The commit's fence check reads the lease item `<app id>#lease`, which the
//! coordination store (`crate::coord`) writes. [`DynamoCanary`] is one instance's
//! replication canary in the config table or the application's data table.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, TransactWriteItem, Update, builders::UpdateBuilder,
};

use super::ActionError;
use super::store::{AUDITS_PER_WRITE, CanaryStore, Commit, CopyFrom, ItemStore, WriteError};
use failover_aws::dynamo::{Cancel, Conditional, Item, Table, TxError, flag, n, num, s, text};
use failover_core::drill::DrillRecord;
use failover_core::model::{AppState, AuditRecord, ConfigItem, PauseRecord, Role, Trigger, keys};
use failover_core::report::Report;

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
            expires_at: text(item, "expiresAt"),
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
                "drill" => Trigger::Drill,
                _ => return Err(malformed("trigger")),
            },
            reason: txt("reason")?,
            evidence: serde_json::from_str(&txt("evidence")?).map_err(|_| malformed("evidence"))?,
            forced: flag(item, "forced"),
        })
    }

    /// Sets every attribute of `new`; a fence's end (`expiresAt`) is set with a
    /// human's fence and removed with every other state.
    fn set_item(&self, new: &ConfigItem) -> UpdateBuilder {
        let set = "SET #s = :to, #v = :new, #at = :at, #by = :by, #r = :reason";
        let update = Update::builder()
            .table_name(&self.table.name)
            .key("appId", s(&self.app_id))
            .expression_attribute_names("#e", "expiresAt");
        let update = match &new.expires_at {
            Some(until) => update
                .update_expression(format!("{set}, #e = :until"))
                .expression_attribute_values(":until", s(until)),
            None => update.update_expression(format!("{set} REMOVE #e")),
        };
        update
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

    /// Runs a transaction and tells its cancellation reasons apart: a failed
    /// condition on the fence check (action `fence_index`) is [`WriteError::Fenced`],
    /// on the item (action 0) a conflict, on the audit record (action 1) only
    /// [`WriteError::AuditExists`]; throttling or another transaction on an item is
    /// [`WriteError::Busy`] (nothing was written).
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        fence_index: Option<usize>,
        token: Option<&str>,
    ) -> Result<(), WriteError> {
        self.transact_checked(items, fence_index, None, token).await
    }

    /// [`Self::transact`], where a failed check of a catch-up's target record
    /// (action `record_check`) is a conflict too ([`copy_refusal`]).
    async fn transact_checked(
        &self,
        items: Vec<TransactWriteItem>,
        fence_index: Option<usize>,
        record_check: Option<usize>,
        token: Option<&str>,
    ) -> Result<(), WriteError> {
        match self.table.transact(items, token).await {
            Ok(()) => Ok(()),
            Err(TxError::Cancelled(reasons)) => {
                Err(copy_refusal(&reasons, fence_index, record_check, |r| {
                    self.unavailable(format!(
                        "transact_write_items {}: TransactionCanceledException: {r}",
                        self.table.name
                    ))
                }))
            }
            Err(TxError::Failed(e)) => Err(self.failed(e)),
        }
    }

    fn pause_item(&self, p: &PauseRecord) -> Item {
        let mut item = Item::from([
            ("appId".to_string(), s(keys::pause(&self.app_id))),
            ("kind".to_string(), s("pause")),
            ("paused".to_string(), AttributeValue::Bool(p.paused)),
            ("by".to_string(), s(&p.by)),
            ("reason".to_string(), s(&p.reason)),
            ("at".to_string(), s(&p.at)),
            ("seq".to_string(), n(p.seq)),
        ]);
        if let Some(until) = &p.until {
            item.insert("until".to_string(), s(until));
        }
        item
    }
}

/// What a cancelled transaction's reasons mean for a commit or catch-up (shared with
/// the in-memory store, which reports the same reasons).
pub fn refusal(
    reasons: &[Cancel],
    fence_index: Option<usize>,
    other: impl FnOnce(String) -> ActionError,
) -> WriteError {
    let failed = |i: usize| reasons.get(i) == Some(&Cancel::ConditionalCheckFailed);
    if fence_index.is_some_and(failed) {
        return WriteError::Fenced;
    }
    if failed(0) {
        return WriteError::Conflict;
    }
    if failed(1) {
        return WriteError::AuditExists;
    }
    let text = format!("{reasons:?}");
    if reasons
        .iter()
        .any(|r| matches!(r, Cancel::TransactionConflict | Cancel::Throttled))
    {
        return WriteError::Busy(other(text));
    }
    WriteError::Failed(other(text))
}

/// What a cancelled catch-up's reasons mean: as [`refusal`], and a failed check of
/// the target's record of the version it starts from (action `record_check`) is a
/// conflict too: the copy is not where the caller thought it was.
pub fn copy_refusal(
    reasons: &[Cancel],
    fence_index: Option<usize>,
    record_check: Option<usize>,
    other: impl FnOnce(String) -> ActionError,
) -> WriteError {
    if record_check.is_some_and(|i| reasons.get(i) == Some(&Cancel::ConditionalCheckFailed)) {
        return WriteError::Conflict;
    }
    refusal(reasons, fence_index, other)
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
        self.transact(items, c.fence.map(|_| 2), Some(c.token))
            .await
    }

    async fn catch_up(
        &self,
        item: &ConfigItem,
        audits: &[AuditRecord],
        from: CopyFrom<'_>,
    ) -> Result<(), WriteError> {
        if audits.len() > from.room() {
            return Err(self.failed(format!(
                "a catch-up of {} audit records: at most {} fit in one transaction",
                audits.len(),
                from.room()
            )));
        }
        let build = |e: aws_sdk_dynamodb::error::BuildError| self.failed(e.to_string());
        let update = match from {
            CopyFrom::Below => self
                .set_item(item)
                .condition_expression("attribute_not_exists(#v) OR #v < :new"),
            CopyFrom::At { version: 0, .. } => self
                .set_item(item)
                .condition_expression("attribute_not_exists(#v) OR #v = :from")
                .expression_attribute_values(":from", n(0)),
            CopyFrom::At { version, .. } => self
                .set_item(item)
                .condition_expression("#v = :from")
                .expression_attribute_values(":from", n(version)),
        }
        .build()
        .map_err(build)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(self.audit_puts(audits)?);
        // The target's record of the version it is at (see `CopyFrom::At`).
        let record_check = match (from.checked(), from) {
            (Some(f), CopyFrom::At { at, .. }) => {
                let check = ConditionCheck::builder()
                    .table_name(&self.table.name)
                    .key("appId", s(keys::audit(&self.app_id, f)));
                let check = match at {
                    Some(at) => check
                        .condition_expression("attribute_exists(appId) AND #at = :at")
                        .expression_attribute_names("#at", "at")
                        .expression_attribute_values(":at", s(at)),
                    None => check.condition_expression("attribute_exists(appId)"),
                };
                items.push(
                    TransactWriteItem::builder()
                        .condition_check(check.build().map_err(build)?)
                        .build(),
                );
                Some(items.len() - 1)
            }
            _ => None,
        };
        self.transact_checked(items, None, record_check, None).await
    }

    async fn follow_reset(
        &self,
        expected: &ConfigItem,
        item: &ConfigItem,
    ) -> Result<(), WriteError> {
        let update = self
            .set_item(item)
            .condition_expression("#v = :was AND #s = :was_state")
            .expression_attribute_values(":was", n(expected.version))
            .expression_attribute_values(":was_state", s(expected.state.as_str()))
            .build()
            .map_err(|e| self.failed(e.to_string()))?;
        let items = vec![TransactWriteItem::builder().update(update).build()];
        self.transact(items, None, None).await
    }

    async fn put_audits(&self, audits: &[AuditRecord]) -> Result<(), WriteError> {
        if audits.is_empty() {
            return Ok(());
        }
        if audits.len() > AUDITS_PER_WRITE {
            return Err(self.failed(format!(
                "a put of {} audit records: at most {AUDITS_PER_WRITE} fit in one transaction",
                audits.len()
            )));
        }
        let items = self.audit_puts(audits)?;
        // No condition can fail here: any cancellation is busy or a failure.
        match self.transact(items, None, None).await {
            Err(WriteError::Conflict | WriteError::AuditExists) => {
                Err(self.failed("put of audit records refused unexpectedly".into()))
            }
            other => other,
        }
    }

    async fn audits(
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

    async fn read_pause(&self) -> Result<Option<PauseRecord>, ActionError> {
        let item = self
            .table
            .get(&keys::pause(&self.app_id))
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(item.and_then(|i| {
            Some(PauseRecord {
                paused: flag(&i, "paused"),
                by: text(&i, "by")?,
                reason: text(&i, "reason").unwrap_or_default(),
                at: text(&i, "at").unwrap_or_default(),
                seq: num(&i, "seq")?,
                until: text(&i, "until"),
            })
        }))
    }

    async fn read_drill(&self) -> Result<Option<DrillRecord>, ActionError> {
        let item = self
            .table
            .get(&keys::drill(&self.app_id))
            .await
            .map_err(|e| self.unavailable(e))?;
        let Some(json) = item.as_ref().and_then(|i| text(i, "record")) else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| self.unavailable(format!("the drill record does not parse: {e}")))
    }

    async fn write_drill(
        &self,
        expected: Option<u64>,
        new: &DrillRecord,
    ) -> Result<(), WriteError> {
        let json = serde_json::to_string(new).map_err(|e| self.failed(e.to_string()))?;
        let put = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .item("appId", s(keys::drill(&self.app_id)))
            .item("kind", s("drill"))
            .item("seq", n(new.seq))
            .item("record", s(json));
        self.put_on_seq(put, expected).await
    }

    async fn put_report(&self, report: &Report) -> Result<(), WriteError> {
        let json = serde_json::to_string(report).map_err(|e| self.failed(e.to_string()))?;
        let put = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .item("appId", s(keys::report(&self.app_id, report.version)))
            .item("kind", s("report"))
            .item("version", n(report.version))
            .item("complete", AttributeValue::Bool(report.complete))
            .item("report", s(json))
            .expression_attribute_names("#c", "complete")
            .expression_attribute_values(":no", AttributeValue::Bool(false));
        // A complete report is final for its transition; one decided later is
        // another transition that reused the version after a reset
        // (`Report::replaces`).
        let put = match report.decided_at() {
            Some(at) => put
                .item("decidedAt", s(at.to_owned()))
                .condition_expression("attribute_not_exists(#c) OR #c = :no OR #d < :d")
                .expression_attribute_names("#d", "decidedAt")
                .expression_attribute_values(":d", s(at.to_owned())),
            None => put.condition_expression("attribute_not_exists(#c) OR #c = :no"),
        };
        match self.table.conditional("put_item", put.send()).await {
            Ok(_) => Ok(()),
            Err(Conditional::Refused) => Err(WriteError::Conflict),
            Err(Conditional::Failed(e)) => Err(self.failed(e)),
        }
    }

    async fn reports(&self, versions: &[u64]) -> Result<Vec<Report>, ActionError> {
        let keys = versions
            .iter()
            .take(100)
            .map(|v| keys::report(&self.app_id, *v));
        let mut reports = self
            .table
            .batch_get(keys, true)
            .await
            .map_err(|e| self.unavailable(e))?
            .iter()
            .map(|i| {
                let text = text(i, "report").unwrap_or_default();
                serde_json::from_str::<Report>(&text).map_err(|e| ActionError::Malformed {
                    region: self.role,
                    reason: format!("a recovery report that does not read: {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        reports.sort_by_key(|r| std::cmp::Reverse(r.version));
        Ok(reports)
    }

    async fn write_pause(
        &self,
        expected: Option<u64>,
        new: &PauseRecord,
    ) -> Result<(), WriteError> {
        let put = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(self.pause_item(new)));
        self.put_on_seq(put, expected).await
    }
}

impl DynamoItemStore {
    /// A put of a record with a `seq` (the pause, the drill record): only while the
    /// stored one still has `expected` (None: while there is none).
    async fn put_on_seq(
        &self,
        put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
        expected: Option<u64>,
    ) -> Result<(), WriteError> {
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(appId)"),
            Some(seq) => put
                .condition_expression("#q = :seq")
                .expression_attribute_names("#q", "seq")
                .expression_attribute_values(":seq", n(seq)),
        };
        match self.table.conditional("put_item", put.send()).await {
            Ok(_) => Ok(()),
            Err(Conditional::Refused) => Err(WriteError::Conflict),
            Err(Conditional::Failed(e)) => Err(self.failed(e)),
        }
    }

    fn audit_puts(&self, audits: &[AuditRecord]) -> Result<Vec<TransactWriteItem>, WriteError> {
        audits
            .iter()
            .map(|a| {
                Put::builder()
                    .table_name(&self.table.name)
                    .set_item(Some(self.audit_item(a)))
                    .build()
                    .map(|put| TransactWriteItem::builder().put(put).build())
                    .map_err(|e| self.failed(e.to_string()))
            })
            .collect()
    }
}

/// One instance's replication canary in a DynamoDB table whose hash key is
/// `key_attr` (`appId` in the config table, `commentId` in the data table).
pub struct DynamoCanary {
    table: Table,
    key_attr: &'static str,
    key: String,
    role: Role,
}

impl DynamoCanary {
    pub fn new(table: Table, key_attr: &'static str, key: String, role: Role) -> Self {
        Self {
            table,
            key_attr,
            key,
            role,
        }
    }

    fn unavailable(&self, reason: String) -> ActionError {
        ActionError::Unavailable {
            region: self.role,
            reason,
        }
    }
}

#[async_trait]
impl CanaryStore for DynamoCanary {
    async fn put(&self, nonce: &str) -> Result<(), ActionError> {
        let call = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .item(self.key_attr, s(&self.key))
            .item("kind", s("canary"))
            .item("nonce", s(nonce))
            .send();
        self.table
            .call("put_item", call)
            .await
            .map(|_| ())
            .map_err(|e| self.unavailable(e))
    }

    async fn read(&self) -> Result<Option<String>, ActionError> {
        let call = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .key(self.key_attr, s(&self.key))
            .consistent_read(true)
            .send();
        let out = self
            .table
            .call("get_item", call)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(out.item().and_then(|i| text(i, "nonce")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use std::time::Duration;

    /// A store whose endpoint is a closed loopback port: any call that reached the
    /// network would fail as unreachable, not with the refusal tested here.
    fn unreachable_store() -> DynamoItemStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "t"))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let table = Table::new(client, "config".into(), Duration::from_secs(1));
        DynamoItemStore::new(table, "app".into(), Role::Primary)
    }

    /// More audit records than one transaction holds are refused before any call,
    /// never cut to the first ones.
    #[tokio::test]
    async fn a_put_of_more_records_than_fit_is_refused_before_any_call() {
        let record = AuditRecord {
            version: 1,
            from: AppState::Active,
            to: AppState::Failover,
            at: "2026-01-01T00:00:00Z".into(),
            by: "test".into(),
            trigger: Trigger::Manual,
            reason: "test".into(),
            evidence: serde_json::Value::Null,
            forced: false,
        };
        let records: Vec<AuditRecord> = (1..=AUDITS_PER_WRITE as u64 + 1)
            .map(|version| AuditRecord {
                version,
                ..record.clone()
            })
            .collect();
        match unreachable_store().put_audits(&records).await {
            Err(WriteError::Failed(ActionError::Unavailable { reason, .. })) => {
                assert!(reason.contains("at most 99"), "{reason}");
            }
            other => panic!("expected the put refused, got {other:?}"),
        }
    }
}
