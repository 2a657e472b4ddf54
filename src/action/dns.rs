//! The optional DNS action: one record whose value follows the state
//! (`primary_value` while active or fenced, `secondary_value` in failover), so that
//! DNS clients follow the failover too. Changed after each commit and re-checked on
//! every sync pass, so a failed change converges later.
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
use crate::aws::{RegionClients, describe};
use crate::config::{RegionSettings, Route53Settings};
use crate::model::{AppState, Role};

/// The one record the monitor keeps in line with the state.
#[async_trait]
pub trait DnsRecord: Send + Sync {
    /// The value the record must have in `state`.
    fn value_for(&self, state: AppState) -> String;

    /// The record's current value, if it exists.
    async fn current(&self) -> Result<Option<String>, ActionError>;

    /// Sets the record to `new`; `old` is what [`DnsRecord::current`] returned.
    async fn replace(&self, old: Option<&str>, new: &str) -> Result<(), ActionError>;
}

/// Makes the record point where `state` says.
pub async fn follow(dns: &dyn DnsRecord, state: AppState) -> Result<DnsAction, ActionError> {
    let want = dns.value_for(state);
    let current = dns.current().await?;
    if current.as_deref() == Some(want.as_str()) {
        return Ok(DnsAction::InPlace);
    }
    dns.replace(current.as_deref(), &want).await?;
    Ok(DnsAction::Upserted {
        from: current,
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

    async fn current(&self) -> Result<Option<String>, ActionError> {
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
            .and_then(|r| r.resource_records().first())
            .map(|rr| rr.value().to_owned()))
    }

    async fn replace(&self, _old: Option<&str>, want: &str) -> Result<(), ActionError> {
        let build = |e: aws_sdk_route53::error::BuildError| {
            self.err("change_resource_record_sets", e.to_string())
        };
        let rrset = ResourceRecordSet::builder()
            .name(&self.cfg.record_name)
            .r#type(self.rr_type())
            .ttl(self.cfg.ttl)
            .resource_records(
                ResourceRecord::builder()
                    .value(want)
                    .build()
                    .map_err(build)?,
            )
            .build()
            .map_err(build)?;
        let batch = ChangeBatch::builder()
            .comment("failover-monitor: the record follows the state")
            .changes(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(rrset)
                    .build()
                    .map_err(build)?,
            )
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
