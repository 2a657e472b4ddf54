//! One region's copy of the config table: the config item, the audit records beside
//! it, and the conditional writes that change them.
//!
//! Keys: the config item is `appId = <app id>`; the audit record of version N is
//! `appId = <app id>#audit#<N>`. The state API's `appId = :v1` query only ever sees
//! the first.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use tokio::time::timeout;

use super::ActionError;
use crate::aws::describe;
use crate::coord::lease::LeaseRecord;
use crate::model::{AppState, AuditRecord, ConfigItem, Role, Trigger};

type Item = HashMap<String, AttributeValue>;

fn is_condition_failure<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

/// Why a conditional write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// The condition failed: the item is not what the writer expected.
    Conflict,
    /// The writer's fencing token is no longer the lease's: it was deposed.
    Fenced,
    Failed(ActionError),
}

/// The lease holder a transition write is conditioned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub owner: String,
    pub token: u64,
}

/// One instance's published view of the regions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerView {
    /// Bumped on every publish; liveness is judged by it changing.
    pub seq: u64,
    pub primary_down: bool,
    pub secondary_up: bool,
    /// The instance's probe summary, for humans.
    pub detail: String,
}

pub struct ConfigTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
    app_id: String,
    role: Role,
    /// Bound on every call, on top of the SDK's own timeouts.
    limit: Duration,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl ConfigTable {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: String,
        app_id: String,
        role: Role,
        limit: Duration,
    ) -> Self {
        Self {
            client,
            table,
            app_id,
            role,
            limit,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn audit_key(&self, version: u64) -> String {
        format!("{}#audit#{version}", self.app_id)
    }

    fn unavailable(&self, reason: String) -> ActionError {
        ActionError::Unavailable {
            region: self.role,
            reason,
        }
    }

    /// One SDK call bounded by the write timeout, its failure described.
    async fn bounded<T, E>(
        &self,
        op: &str,
        fut: impl Future<Output = Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>>,
    ) -> Result<T, ActionError>
    where
        E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    {
        self.described(op, timeout(self.limit, fut).await)
    }

    fn described<T, E>(
        &self,
        op: &str,
        r: Result<
            Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
            tokio::time::error::Elapsed,
        >,
    ) -> Result<T, ActionError>
    where
        E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.unavailable(format!("{op} {}: {}", self.table, describe(&e)))),
            Err(_) => Err(self.unavailable(format!(
                "{op} {}: timed out after {:?}",
                self.table, self.limit
            ))),
        }
    }

    /// The config item (strongly consistent read); `None` when there is none.
    pub async fn read(&self) -> Result<Option<ConfigItem>, ActionError> {
        let out = self
            .bounded(
                "get_item",
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .key("appId", s(&self.app_id))
                    .consistent_read(true)
                    .send(),
            )
            .await?;
        out.item().map(|i| self.parse_item(i)).transpose()
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
        let text = |k: &str| match item.get(k) {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            _ => None,
        };
        Ok(ConfigItem {
            state,
            version,
            updated_at: text("updatedAt"),
            updated_by: text("updatedBy"),
            reason: text("reason"),
        })
    }

    fn audit_item(&self, r: &AuditRecord) -> Item {
        HashMap::from([
            ("appId".to_string(), s(self.audit_key(r.version))),
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
        let text = |k: &str| match item.get(k) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(malformed(k)),
        };
        let state = |k: &str| text(k).and_then(|v| v.parse::<AppState>().map_err(|_| malformed(k)));
        Ok(AuditRecord {
            version: match item.get("version") {
                Some(AttributeValue::N(v)) => v.parse().map_err(|_| malformed("version"))?,
                _ => return Err(malformed("version")),
            },
            from: state("from")?,
            to: state("to")?,
            at: text("at")?,
            by: text("by")?,
            trigger: match text("trigger")?.as_str() {
                "auto" => Trigger::Auto,
                "manual" => Trigger::Manual,
                _ => return Err(malformed("trigger")),
            },
            reason: text("reason")?,
            evidence: serde_json::from_str(&text("evidence")?)
                .map_err(|_| malformed("evidence"))?,
            forced: matches!(item.get("forced"), Some(AttributeValue::Bool(true))),
        })
    }

    fn set_item(&self, new: &ConfigItem) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.table)
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

    /// Runs a transaction; a failed condition on the item at `fence_index` (the lease
    /// check) is reported as [`WriteError::Fenced`], any other as a conflict.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        fence_index: Option<usize>,
    ) -> Result<(), WriteError> {
        let call = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send();
        match timeout(self.limit, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(SdkError::ServiceError(e))) => {
                if let TransactWriteItemsError::TransactionCanceledException(c) = e.err() {
                    let failed = |r: &aws_sdk_dynamodb::types::CancellationReason| {
                        r.code() == Some("ConditionalCheckFailed")
                    };
                    let reasons = c.cancellation_reasons();
                    if fence_index.is_some_and(|i| reasons.get(i).is_some_and(failed)) {
                        return Err(WriteError::Fenced);
                    }
                    if reasons.iter().any(failed) {
                        return Err(WriteError::Conflict);
                    }
                }
                let e = SdkError::<
                    TransactWriteItemsError,
                    aws_sdk_dynamodb::config::http::HttpResponse,
                >::ServiceError(e);
                Err(WriteError::Failed(self.unavailable(format!(
                    "transact_write_items {}: {}",
                    self.table,
                    describe(&e)
                ))))
            }
            Ok(Err(e)) => Err(WriteError::Failed(self.unavailable(format!(
                "transact_write_items {}: {}",
                self.table,
                describe(&e)
            )))),
            Err(_) => Err(WriteError::Failed(self.unavailable(format!(
                "transact_write_items {}: timed out after {:?}",
                self.table, self.limit
            )))),
        }
    }

    /// The commit: sets `new` only if the item is still in state `from` at version
    /// `expected` (a missing `version` counts as 0), and writes the audit record in
    /// the same transaction, so there is never a transition without its record.
    pub async fn compare_and_set(
        &self,
        from: AppState,
        expected: u64,
        new: &ConfigItem,
        audit: &AuditRecord,
        fence: Option<&Fence>,
    ) -> Result<(), WriteError> {
        let condition = if expected == 0 {
            "#s = :from AND (attribute_not_exists(#v) OR #v = :expected)"
        } else {
            "#s = :from AND #v = :expected"
        };
        let update = self
            .set_item(new)
            .condition_expression(condition)
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":expected", n(expected))
            .build()
            .map_err(|e| WriteError::Failed(self.unavailable(e.to_string())))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.audit_item(audit)))
            .condition_expression("attribute_not_exists(appId)")
            .build()
            .map_err(|e| WriteError::Failed(self.unavailable(e.to_string())))?;
        let mut items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().put(put).build(),
        ];
        if let Some(f) = fence {
            let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
                .table_name(&self.table)
                .key("appId", s(self.lease_key()))
                .condition_expression("#o = :owner AND #t = :token")
                .expression_attribute_names("#o", "owner")
                .expression_attribute_names("#t", "token")
                .expression_attribute_values(":owner", s(&f.owner))
                .expression_attribute_values(":token", n(f.token))
                .build()
                .map_err(|e| WriteError::Failed(self.unavailable(e.to_string())))?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        self.transact(items, fence.map(|_| 2)).await
    }

    pub fn lease_key(&self) -> String {
        format!("{}#lease", self.app_id)
    }

    pub fn view_key(&self, instance: &str) -> String {
        format!("{}#view#{instance}", self.app_id)
    }

    /// Strongly consistent reads of up to 100 items by key, unprocessed keys retried
    /// (a few times) as DynamoDB asks.
    async fn batch_get(
        &self,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<Vec<Item>, ActionError> {
        let mut pending: Vec<Item> = keys
            .into_iter()
            .map(|k| HashMap::from([("appId".to_string(), s(k))]))
            .collect();
        let mut items = Vec::new();
        for _ in 0..4 {
            if pending.is_empty() {
                break;
            }
            let keys = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| self.unavailable(e.to_string()))?;
            let out = self
                .bounded(
                    "batch_get_item",
                    self.client
                        .batch_get_item()
                        .request_items(&self.table, keys)
                        .send(),
                )
                .await?;
            if let Some(found) = out.responses().and_then(|r| r.get(&self.table)) {
                items.extend(found.iter().cloned());
            }
            if let Some(rest) = out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                pending = rest.keys().to_vec();
            }
        }
        if !pending.is_empty() {
            return Err(self.unavailable(format!(
                "batch_get_item {}: keys left unprocessed",
                self.table
            )));
        }
        Ok(items)
    }

    /// The lease and the views of `instances`, in one consistent batch read.
    pub async fn read_coordination(
        &self,
        instances: &[String],
    ) -> Result<(Option<LeaseRecord>, Vec<(String, PeerView)>), ActionError> {
        let keys =
            std::iter::once(self.lease_key()).chain(instances.iter().map(|i| self.view_key(i)));
        let items = self.batch_get(keys).await?;
        let mut lease = None;
        let mut views = Vec::new();
        for item in &items {
            let key = match item.get("appId") {
                Some(AttributeValue::S(k)) => k.as_str(),
                _ => continue,
            };
            let num = |k: &str| match item.get(k) {
                Some(AttributeValue::N(v)) => v.parse::<u64>().ok(),
                _ => None,
            };
            let text = |k: &str| match item.get(k) {
                Some(AttributeValue::S(v)) => Some(v.clone()),
                _ => None,
            };
            let flag = |k: &str| matches!(item.get(k), Some(AttributeValue::Bool(true)));
            if key == self.lease_key() {
                if let (Some(owner), Some(token)) = (text("owner"), num("token")) {
                    lease = Some(LeaseRecord {
                        owner,
                        token,
                        renewals: num("renewals").unwrap_or(0),
                    });
                }
            } else if let Some(instance) = key.strip_prefix(&format!("{}#view#", self.app_id)) {
                views.push((
                    instance.to_owned(),
                    PeerView {
                        seq: num("seq").unwrap_or(0),
                        primary_down: flag("primaryDown"),
                        secondary_up: flag("secondaryUp"),
                        detail: text("detail").unwrap_or_default(),
                    },
                ));
            }
        }
        Ok((lease, views))
    }

    /// Takes the lease: the item must not exist (`expected` None) or still be exactly
    /// `expected`. Returns the new fencing token.
    pub async fn acquire_lease(
        &self,
        me: &str,
        expected: Option<&LeaseRecord>,
    ) -> Result<u64, WriteError> {
        let token = expected.map_or(1, |r| r.token + 1);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("appId", s(self.lease_key()))
            .update_expression("SET #o = :me, #t = :token, #r = :zero, #k = :kind")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#t", "token")
            .expression_attribute_names("#r", "renewals")
            .expression_attribute_names("#k", "kind")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":token", n(token))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":kind", s("lease"));
        update = match expected {
            None => update.condition_expression("attribute_not_exists(appId)"),
            Some(r) => update
                .condition_expression("#o = :old_owner AND #t = :old_token AND #r = :old_renewals")
                .expression_attribute_values(":old_owner", s(&r.owner))
                .expression_attribute_values(":old_token", n(r.token))
                .expression_attribute_values(":old_renewals", n(r.renewals)),
        };
        self.conditional("update_item", update.send())
            .await
            .map(|_| token)
    }

    /// Renews our lease; refused (Conflict) once someone else holds it. Returns the new
    /// renewal count.
    pub async fn renew_lease(&self, me: &str, token: u64) -> Result<u64, WriteError> {
        let call = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("appId", s(self.lease_key()))
            .update_expression("SET #r = #r + :one")
            .condition_expression("#o = :me AND #t = :token")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#t", "token")
            .expression_attribute_names("#r", "renewals")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":token", n(token))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send();
        let out = self.conditional("update_item", call).await?;
        Ok(match out.attributes().and_then(|a| a.get("renewals")) {
            Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
            _ => 0,
        })
    }

    pub fn canary_key(&self) -> String {
        format!("{}#canary", self.app_id)
    }

    /// Writes the replication canary (a fresh nonce) in this region.
    pub async fn put_canary(&self, nonce: &str) -> Result<(), ActionError> {
        let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        self.bounded(
            "put_item",
            self.client
                .put_item()
                .table_name(&self.table)
                .item("appId", s(self.canary_key()))
                .item("kind", s("canary"))
                .item("nonce", s(nonce))
                .item("writtenAt", s(at))
                .send(),
        )
        .await
        .map(|_| ())
    }

    /// The canary's nonce as this region sees it (strongly consistent read).
    pub async fn read_canary(&self) -> Result<Option<String>, ActionError> {
        let out = self
            .bounded(
                "get_item",
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .key("appId", s(self.canary_key()))
                    .consistent_read(true)
                    .send(),
            )
            .await?;
        Ok(match out.item().and_then(|i| i.get("nonce")) {
            Some(AttributeValue::S(n)) => Some(n.clone()),
            _ => None,
        })
    }

    /// Publishes this instance's view.
    pub async fn publish_view(&self, me: &str, view: &PeerView) -> Result<(), ActionError> {
        self.bounded(
            "put_item",
            self.client
                .put_item()
                .table_name(&self.table)
                .item("appId", s(self.view_key(me)))
                .item("kind", s("view"))
                .item("seq", n(view.seq))
                .item("primaryDown", AttributeValue::Bool(view.primary_down))
                .item("secondaryUp", AttributeValue::Bool(view.secondary_up))
                .item("detail", s(&view.detail))
                .send(),
        )
        .await
        .map(|_| ())
    }

    /// Like `bounded`, with a failed condition reported as a conflict.
    async fn conditional<T, E>(
        &self,
        op: &str,
        fut: impl Future<Output = Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>>,
    ) -> Result<T, WriteError>
    where
        E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    {
        match timeout(self.limit, fut).await {
            Ok(Err(e)) if is_condition_failure(&e) => Err(WriteError::Conflict),
            other => self.described(op, other).map_err(WriteError::Failed),
        }
    }

    /// Brings this copy up to `item` (a newer version committed in the other region),
    /// with the audit records it lacks. Never moves a copy backwards: the write only
    /// happens while this copy's version is lower (or absent).
    pub async fn catch_up(
        &self,
        item: &ConfigItem,
        audits: &[AuditRecord],
    ) -> Result<(), WriteError> {
        let update = self
            .set_item(item)
            .condition_expression("attribute_not_exists(#v) OR #v < :new")
            .build()
            .map_err(|e| WriteError::Failed(self.unavailable(e.to_string())))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        for a in audits {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(self.audit_item(a)))
                .build()
                .map_err(|e| WriteError::Failed(self.unavailable(e.to_string())))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        self.transact(items, None).await
    }

    /// Audit records of the given versions that exist, newest first.
    pub async fn audits(
        &self,
        versions: impl IntoIterator<Item = u64>,
    ) -> Result<Vec<AuditRecord>, ActionError> {
        let keys: Vec<String> = versions
            .into_iter()
            .take(100)
            .map(|v| self.audit_key(v))
            .collect();
        let mut records = self
            .batch_get(keys)
            .await?
            .iter()
            .map(|i| self.parse_audit(i))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|r| std::cmp::Reverse(r.version));
        Ok(records)
    }
}
