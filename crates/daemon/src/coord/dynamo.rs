//! [`CoordStore`] on DynamoDB: the secondary region's config table. The lease is
//! `<app id>#lease = {owner, token, renewals}`, each view
//! `<app id>#view#<instance> = {seq, process, vote, evidenceAgeMs, secondaryUp, fit, digest,
//! detail}`. A released lease has an empty owner and keeps its token.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::store::{CoordError, CoordStore, PeerView};
use failover_aws::dynamo::{Conditional, Table, flag, n, num, s, text};
use failover_core::lease::LeaseRecord;
use failover_core::model::keys;
use failover_core::policy::Vote;

pub struct DynamoCoordStore {
    table: Table,
    app_id: String,
}

impl DynamoCoordStore {
    pub fn new(table: Table, app_id: String) -> Self {
        Self { table, app_id }
    }
}

fn conditional(e: Conditional) -> CoordError {
    match e {
        Conditional::Refused => CoordError::Refused,
        Conditional::Failed(e) => CoordError::Unavailable(e),
    }
}

#[async_trait]
impl CoordStore for DynamoCoordStore {
    async fn read(
        &self,
        instances: &[String],
    ) -> Result<(Option<LeaseRecord>, Vec<(String, PeerView)>), CoordError> {
        let lease_key = keys::lease(&self.app_id);
        let view_prefix = keys::view_prefix(&self.app_id);
        let wanted = std::iter::once(lease_key.clone())
            .chain(instances.iter().map(|i| keys::view(&self.app_id, i)));
        let items = self
            .table
            .batch_get(wanted, true)
            .await
            .map_err(CoordError::Unavailable)?;
        let mut lease = None;
        let mut views = Vec::new();
        for item in &items {
            let Some(key) = text(item, "appId") else {
                continue;
            };
            if key == lease_key {
                if let (Some(owner), Some(token)) = (text(item, "owner"), num(item, "token")) {
                    lease = Some(LeaseRecord {
                        owner,
                        token,
                        renewals: num(item, "renewals").unwrap_or(0),
                    });
                }
            } else if let Some(instance) = key.strip_prefix(&view_prefix) {
                views.push((
                    instance.to_owned(),
                    PeerView {
                        seq: num(item, "seq").unwrap_or(0),
                        process: text(item, "process").unwrap_or_default(),
                        // A view without a vote (an older version's) counts as unknown.
                        vote: text(item, "vote")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(Vote::Unknown),
                        evidence_age_ms: num(item, "evidenceAgeMs"),
                        secondary_up: flag(item, "secondaryUp"),
                        fit: flag(item, "fit"),
                        digest: item
                            .get("digest")
                            .and_then(|v| v.as_s().ok())
                            .cloned()
                            .unwrap_or_default(),
                        detail: text(item, "detail").unwrap_or_default(),
                    },
                ));
            }
        }
        Ok((lease, views))
    }

    async fn acquire(&self, me: &str, expected: Option<&LeaseRecord>) -> Result<u64, CoordError> {
        let token = expected.map_or(1, |r| r.token + 1);
        let mut update = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key("appId", s(keys::lease(&self.app_id)))
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
        self.table
            .conditional("update_item", update.send())
            .await
            .map(|_| token)
            .map_err(conditional)
    }

    async fn renew(&self, me: &str, token: u64) -> Result<u64, CoordError> {
        let call = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key("appId", s(keys::lease(&self.app_id)))
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
        let out = self
            .table
            .conditional("update_item", call)
            .await
            .map_err(conditional)?;
        Ok(match out.attributes().and_then(|a| a.get("renewals")) {
            Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
            _ => 0,
        })
    }

    async fn publish(&self, me: &str, view: &PeerView) -> Result<(), CoordError> {
        let mut call = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .item("appId", s(keys::view(&self.app_id, me)))
            .item("kind", s("view"))
            .item("seq", n(view.seq))
            .item("process", s(&view.process))
            .item("vote", s(view.vote.as_str()))
            .item("secondaryUp", AttributeValue::Bool(view.secondary_up))
            .item("fit", AttributeValue::Bool(view.fit))
            .item("digest", AttributeValue::S(view.digest.clone()))
            .item("detail", s(&view.detail));
        if let Some(age) = view.evidence_age_ms {
            call = call.item("evidenceAgeMs", n(age));
        }
        let call = call.send();
        self.table
            .call("put_item", call)
            .await
            .map(|_| ())
            .map_err(CoordError::Unavailable)
    }

    async fn release(&self, me: &str, token: u64) -> Result<(), CoordError> {
        let call = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key("appId", s(keys::lease(&self.app_id)))
            .update_expression("SET #o = :nobody, #r = #r + :one")
            .condition_expression("#o = :me AND #t = :token")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#t", "token")
            .expression_attribute_names("#r", "renewals")
            .expression_attribute_values(":nobody", s(""))
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":token", n(token))
            .expression_attribute_values(":one", n(1))
            .send();
        self.table
            .conditional("update_item", call)
            .await
            .map(|_| ())
            .map_err(conditional)
    }
}
