//! The optional DNS action: one record whose value follows the state
//! (`primary_value` while active or fenced, `secondary_value` in failover), so that
//! DNS clients follow the failover too. Changed by the instance that commits, and
//! re-checked on every sync pass of the acting instance (from the commit region's
//! state only), so a failed change converges later.
//!
//! A change is a compare-and-swap: it replaces exactly the record it read (Route 53
//! applies `DELETE old` + `CREATE new` in one batch all or nothing, and a DELETE that
//! does not match the record as it is fails the batch), so a late writer never puts
//! back a value someone changed meanwhile; it reads again on the next pass.
//!
//! [`DnsRecord`] is the seam; [`Route53`] is the real record.

use std::time::Duration;

use async_trait::async_trait;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use serde::Serialize;
use tokio::time::timeout;

use super::ActionError;
use failover_aws::{RegionClients, describe};
use failover_config::{RegionSettings, Route53Settings};
use failover_core::model::{AppState, Role};

/// The record as it is: its value and TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    pub value: String,
    pub ttl: i64,
}

/// The one record the monitor keeps in line with the state.
#[async_trait]
pub trait DnsRecord: Send + Sync {
    /// The value the record must have in `state`.
    fn value_for(&self, state: AppState) -> String;

    /// The record as it is now, if it exists.
    async fn current(&self) -> Result<Option<RecordSet>, ActionError>;

    /// Replaces exactly `old` (None: creates it, which fails if one exists) by a
    /// record with `new`; fails without changing anything when the record is not
    /// `old` any more.
    async fn replace(&self, old: Option<&RecordSet>, new: &str) -> Result<(), ActionError>;
}

/// Makes the record point where `state` says.
pub async fn follow(dns: &dyn DnsRecord, state: AppState) -> Result<DnsAction, ActionError> {
    let want = dns.value_for(state);
    let current = dns.current().await?;
    if current.as_ref().is_some_and(|r| r.value == want) {
        return Ok(DnsAction::InPlace);
    }
    dns.replace(current.as_ref(), &want).await?;
    Ok(DnsAction::Upserted {
        from: current.map(|r| r.value),
        to: want,
    })
}

/// The record in a Route 53 hosted zone.
pub struct Route53 {
    client: aws_sdk_route53::Client,
    cfg: Route53Settings,
    limit: Duration,
}

/// What a pass did to the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DnsAction {
    InPlace,
    Upserted { from: Option<String>, to: String },
}

impl Route53 {
    /// Route 53 is a global service: its API is signed for us-east-1.
    pub async fn load(cfg: &Route53Settings) -> RegionClients {
        RegionClients::load(&RegionSettings {
            name: "us-east-1".into(),
            endpoint_url: cfg.endpoint_url.clone(),
        })
        .await
    }

    /// The record of `cfg`, through `clients` (from [`Route53::load`]).
    pub fn new(clients: &RegionClients, cfg: Route53Settings, limit: Duration) -> Self {
        Self {
            client: clients.route53(limit),
            cfg,
            limit,
        }
    }

    fn err(&self, op: &str, reason: String) -> ActionError {
        ActionError::Unavailable {
            // The record is not in either region; report it against the commit point's side.
            region: Role::Secondary,
            reason: format!("route53 {op} {}: {reason}", self.cfg.record_name),
        }
    }

    fn rr_type(&self) -> RrType {
        RrType::from(self.cfg.record_type.as_str())
    }
}

#[async_trait]
impl DnsRecord for Route53 {
    fn value_for(&self, state: AppState) -> String {
        match state {
            AppState::Failover => self.cfg.secondary_value.clone(),
            AppState::Active | AppState::Fenced => self.cfg.primary_value.clone(),
        }
    }

    async fn current(&self) -> Result<Option<RecordSet>, ActionError> {
        let call = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.cfg.zone_id)
            .start_record_name(&self.cfg.record_name)
            .start_record_type(self.rr_type())
            .max_items(1)
            .send();
        let out = match timeout(self.limit, call).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(self.err("list_resource_record_sets", describe(&e))),
            Err(_) => return Err(self.err("list_resource_record_sets", "timed out".into())),
        };
        let want = self.cfg.record_name.trim_end_matches('.');
        Ok(out
            .resource_record_sets()
            .iter()
            .find(|r| {
                r.name().trim_end_matches('.').eq_ignore_ascii_case(want)
                    && *r.r#type() == self.rr_type()
            })
            .and_then(|r| {
                let value = r.resource_records().first()?.value().to_owned();
                Some(RecordSet {
                    value,
                    ttl: r.ttl().unwrap_or(self.cfg.ttl),
                })
            }))
    }

    async fn replace(&self, old: Option<&RecordSet>, want: &str) -> Result<(), ActionError> {
        let build = |e: aws_sdk_route53::error::BuildError| {
            self.err("change_resource_record_sets", e.to_string())
        };
        let rrset = |value: &str, ttl: i64| {
            ResourceRecordSet::builder()
                .name(&self.cfg.record_name)
                .r#type(self.rr_type())
                .ttl(ttl)
                .resource_records(
                    ResourceRecord::builder()
                        .value(value)
                        .build()
                        .map_err(build)?,
                )
                .build()
                .map_err(build)
        };
        let change = |action: ChangeAction, set: ResourceRecordSet| {
            Change::builder()
                .action(action)
                .resource_record_set(set)
                .build()
                .map_err(build)
        };
        let mut changes = Vec::with_capacity(2);
        if let Some(old) = old {
            changes.push(change(ChangeAction::Delete, rrset(&old.value, old.ttl)?)?);
        }
        changes.push(change(ChangeAction::Create, rrset(want, self.cfg.ttl)?)?);
        let batch = ChangeBatch::builder()
            .comment("failover-monitor: the record follows the state")
            .set_changes(Some(changes))
            .build()
            .map_err(build)?;
        let call = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&self.cfg.zone_id)
            .change_batch(batch)
            .send();
        match timeout(self.limit, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.err("change_resource_record_sets", describe(&e))),
            Err(_) => Err(self.err("change_resource_record_sets", "timed out".into())),
        }
    }
}
