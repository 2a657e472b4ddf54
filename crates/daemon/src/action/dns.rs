//! The optional DNS action: one record whose value follows the state
//! (`primary_value` while active or fenced, `secondary_value` in failover), so that
//! DNS clients follow the failover too. Changed by the instance that commits, and
//! re-checked on every sync pass of the acting instance (from the commit region's
//! state only), so a failed change converges later.
//!
//! A change is a compare-and-swap on the record and on its version guard at once:
//! it replaces exactly the record it read and exactly the guard it read (a TXT
//! record `_failover-monitor.<name>` holding `"v=<version>"`), in one batch Route 53
//! applies all or nothing (a DELETE that does not match the record as it is fails
//! the batch). A writer writes only for a version at least the guard's, so a late
//! writer never puts back a value someone changed meanwhile, nor an older version's
//! value over a newer one's. An alias record or one set of a routing policy is never
//! changed: it is reported instead.
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

/// What the record's name and type hold, as far as the monitor may manage it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSet {
    /// No record of that name and type.
    Absent,
    /// A simple record: its values (a multi-value record has several) and TTL.
    Simple { values: Vec<String>, ttl: i64 },
    /// A record the monitor must never change: an alias, or one set of a routing
    /// policy (failover, weighted, latency, ...), which a simple change could never
    /// match. Why.
    Unmanageable(String),
}

/// The version guard: a TXT record beside the record, `"v=<version>"`, written in
/// the same change batch, so that a change is made only from the guard as read:
/// a late writer of an older version never puts its value back over a newer one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub version: u64,
    pub ttl: i64,
}

/// The record and its guard as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub record: RecordSet,
    pub guard: Option<Guard>,
}

/// The one record the monitor keeps in line with the state.
#[async_trait]
pub trait DnsRecord: Send + Sync {
    /// The value the record must have in `state`.
    fn value_for(&self, state: AppState) -> String;

    /// The record and its guard as they are now.
    async fn current(&self) -> Result<Seen, ActionError>;

    /// In one all-or-nothing change: replaces `seen.record` exactly by a record with
    /// `new`, and `seen.guard` exactly by the guard of `version`; fails without
    /// changing anything when either is not as read any more.
    async fn replace(&self, seen: &Seen, new: &str, version: u64) -> Result<(), ActionError>;
}

/// Makes the record point where `state`, just committed at `version`, says, unless
/// a newer version already set it (the guard says so): the follow-up of a commit,
/// whose item may be older than the record by the time it is read.
pub async fn follow(
    dns: &dyn DnsRecord,
    state: AppState,
    version: u64,
) -> Result<DnsAction, ActionError> {
    let seen = dns.current().await?;
    if let Some(g) = seen.guard.filter(|g| g.version > version) {
        return Ok(DnsAction::Newer { guard: g.version });
    }
    follow_seen(dns, seen, state, version).await
}

/// Makes the record point where `state` at `version` says, from `seen`, the record
/// and guard read *before* the item was read in the commit region (a sync pass):
/// whatever the guard's version, even a higher one (the item was reset below it).
/// A commit after the item's read changes the guard before or after this write:
/// before, this write (conditioned on the guard as read) fails; after, that
/// commit's own follow-up finds this lower version in the guard and writes its own.
pub async fn follow_seen(
    dns: &dyn DnsRecord,
    seen: Seen,
    state: AppState,
    version: u64,
) -> Result<DnsAction, ActionError> {
    let want = dns.value_for(state);
    let from = match &seen.record {
        RecordSet::Unmanageable(why) => {
            return Err(ActionError::Malformed {
                region: Role::Secondary,
                reason: format!("the DNS record cannot be managed: {why}; it is left alone"),
            });
        }
        RecordSet::Absent => None,
        RecordSet::Simple { values, .. } => Some(values.join(",")),
    };
    if from.as_deref() == Some(want.as_str()) && seen.guard.map(|g| g.version) == Some(version) {
        return Ok(DnsAction::InPlace);
    }
    dns.replace(&seen, &want, version).await?;
    Ok(DnsAction::Upserted { from, to: want })
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
    Upserted {
        from: Option<String>,
        to: String,
    },
    /// The guard says a newer version already set the record: nothing written.
    Newer {
        guard: u64,
    },
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

/// The guard's name beside `record_name`.
pub fn guard_name(record_name: &str) -> String {
    format!("_failover-monitor.{}", record_name.trim_end_matches('.'))
}

impl Route53 {
    /// The record sets of `name` and `rr_type` (one, or several for a routing
    /// policy's sets).
    async fn sets(
        &self,
        name: &str,
        rr_type: RrType,
    ) -> Result<Vec<ResourceRecordSet>, ActionError> {
        let call = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.cfg.zone_id)
            .start_record_name(name)
            .start_record_type(rr_type.clone())
            .max_items(10)
            .send();
        let out = match timeout(self.limit, call).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(self.err("list_resource_record_sets", describe(&e))),
            Err(_) => return Err(self.err("list_resource_record_sets", "timed out".into())),
        };
        let want = name.trim_end_matches('.');
        Ok(out
            .resource_record_sets()
            .iter()
            .filter(|r| {
                r.name().trim_end_matches('.').eq_ignore_ascii_case(want) && *r.r#type() == rr_type
            })
            .cloned()
            .collect())
    }

    fn set(
        &self,
        name: &str,
        rr_type: RrType,
        ttl: i64,
        values: &[String],
    ) -> Result<ResourceRecordSet, ActionError> {
        let build = |e: aws_sdk_route53::error::BuildError| {
            self.err("change_resource_record_sets", e.to_string())
        };
        let records = values
            .iter()
            .map(|v| ResourceRecord::builder().value(v).build().map_err(build))
            .collect::<Result<Vec<_>, _>>()?;
        ResourceRecordSet::builder()
            .name(name)
            .r#type(rr_type)
            .ttl(ttl)
            .set_resource_records(Some(records))
            .build()
            .map_err(build)
    }
}

/// What one name's record sets are, for the monitor.
fn classify(sets: &[ResourceRecordSet], default_ttl: i64) -> RecordSet {
    match sets {
        [] => RecordSet::Absent,
        [one] if one.alias_target().is_some() => RecordSet::Unmanageable("an alias record".into()),
        [one] if one.set_identifier().is_none() => RecordSet::Simple {
            values: one
                .resource_records()
                .iter()
                .map(|r| r.value().to_owned())
                .collect(),
            ttl: one.ttl().unwrap_or(default_ttl),
        },
        _ => RecordSet::Unmanageable(
            "one set of a routing policy (failover, weighted, latency, geolocation...)".into(),
        ),
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

    async fn current(&self) -> Result<Seen, ActionError> {
        let record = classify(
            &self.sets(&self.cfg.record_name, self.rr_type()).await?,
            self.cfg.ttl,
        );
        let guard = self
            .sets(&guard_name(&self.cfg.record_name), RrType::Txt)
            .await?
            .first()
            .and_then(|g| {
                let value = g.resource_records().first()?.value();
                let version = value.trim_matches('"').strip_prefix("v=")?.parse().ok()?;
                Some(Guard {
                    version,
                    ttl: g.ttl().unwrap_or(self.cfg.ttl),
                })
            });
        Ok(Seen { record, guard })
    }

    async fn replace(&self, seen: &Seen, want: &str, version: u64) -> Result<(), ActionError> {
        let build = |e: aws_sdk_route53::error::BuildError| {
            self.err("change_resource_record_sets", e.to_string())
        };
        let change = |action: ChangeAction, set: ResourceRecordSet| {
            Change::builder()
                .action(action)
                .resource_record_set(set)
                .build()
                .map_err(build)
        };
        let name = &self.cfg.record_name;
        let guard = guard_name(name);
        let mut changes = Vec::with_capacity(4);
        match &seen.record {
            RecordSet::Absent => {}
            RecordSet::Simple { values, ttl } => {
                changes.push(change(
                    ChangeAction::Delete,
                    self.set(name, self.rr_type(), *ttl, values)?,
                )?);
            }
            RecordSet::Unmanageable(why) => {
                return Err(self.err("change_resource_record_sets", format!("not managed: {why}")));
            }
        }
        changes.push(change(
            ChangeAction::Create,
            self.set(name, self.rr_type(), self.cfg.ttl, &[want.to_owned()])?,
        )?);
        if let Some(g) = seen.guard {
            let old = [format!("\"v={}\"", g.version)];
            changes.push(change(
                ChangeAction::Delete,
                self.set(&guard, RrType::Txt, g.ttl, &old)?,
            )?);
        }
        let new = [format!("\"v={version}\"")];
        changes.push(change(
            ChangeAction::Create,
            self.set(&guard, RrType::Txt, self.cfg.ttl, &new)?,
        )?);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use aws_sdk_route53::types::AliasTarget;

    use super::*;

    /// A record in memory: the seam's contract (a replace only from the record
    /// and guard as read), and the writes made.
    struct Fake {
        seen: Mutex<Seen>,
        writes: Mutex<Vec<(String, u64)>>,
    }

    impl Fake {
        fn new(value: &str, guard: Option<u64>) -> Self {
            Fake {
                seen: Mutex::new(Seen {
                    record: RecordSet::Simple {
                        values: vec![value.into()],
                        ttl: 60,
                    },
                    guard: guard.map(|version| Guard { version, ttl: 60 }),
                }),
                writes: Mutex::default(),
            }
        }

        fn writes(&self) -> Vec<(String, u64)> {
            self.writes.lock().unwrap().clone()
        }

        fn guard_version(&self) -> Option<u64> {
            self.seen.lock().unwrap().guard.map(|g| g.version)
        }
    }

    #[async_trait]
    impl DnsRecord for Fake {
        fn value_for(&self, state: AppState) -> String {
            match state {
                AppState::Failover => "secondary".into(),
                AppState::Active | AppState::Fenced => "primary".into(),
            }
        }

        async fn current(&self) -> Result<Seen, ActionError> {
            Ok(self.seen.lock().unwrap().clone())
        }

        async fn replace(&self, seen: &Seen, new: &str, version: u64) -> Result<(), ActionError> {
            let mut now = self.seen.lock().unwrap();
            assert_eq!(*now, *seen, "a replace from a record not as read");
            *now = Seen {
                record: RecordSet::Simple {
                    values: vec![new.into()],
                    ttl: 60,
                },
                guard: Some(Guard { version, ttl: 60 }),
            };
            self.writes.lock().unwrap().push((new.into(), version));
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_record_and_guard_as_wanted_are_left_in_place() {
        let dns = Fake::new("secondary", Some(3));
        assert_eq!(
            follow(&dns, AppState::Failover, 3).await.unwrap(),
            DnsAction::InPlace
        );
        assert_eq!(dns.writes(), vec![]);
    }

    #[tokio::test]
    async fn a_record_changed_by_hand_under_the_same_version_is_put_back() {
        // The guard says version 3 set it, but someone changed the record since.
        let dns = Fake::new("somewhere-else", Some(3));
        assert_eq!(
            follow(&dns, AppState::Failover, 3).await.unwrap(),
            DnsAction::Upserted {
                from: Some("somewhere-else".into()),
                to: "secondary".into()
            }
        );
        assert_eq!(dns.writes(), vec![("secondary".into(), 3)]);
    }

    #[tokio::test]
    async fn a_right_record_under_an_older_guard_gets_the_new_guard() {
        let dns = Fake::new("primary", Some(3));
        assert_eq!(
            follow(&dns, AppState::Active, 4).await.unwrap(),
            DnsAction::Upserted {
                from: Some("primary".into()),
                to: "primary".into()
            }
        );
        assert_eq!(dns.guard_version(), Some(4));
    }

    #[tokio::test]
    async fn a_newer_guard_is_never_written_over_by_a_commits_follow_up() {
        let dns = Fake::new("primary", Some(5));
        assert_eq!(
            follow(&dns, AppState::Failover, 4).await.unwrap(),
            DnsAction::Newer { guard: 5 }
        );
        assert_eq!(dns.writes(), vec![]);
    }

    #[test]
    fn the_guard_is_named_beside_the_record() {
        assert_eq!(
            guard_name("app.example.com."),
            "_failover-monitor.app.example.com"
        );
        assert_eq!(
            guard_name("app.example.com"),
            "_failover-monitor.app.example.com"
        );
    }

    fn set(name: &str) -> aws_sdk_route53::types::builders::ResourceRecordSetBuilder {
        ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::A)
            .resource_records(
                ResourceRecord::builder()
                    .value("192.0.2.1")
                    .build()
                    .unwrap(),
            )
            .resource_records(
                ResourceRecord::builder()
                    .value("192.0.2.2")
                    .build()
                    .unwrap(),
            )
    }

    #[test]
    fn only_a_single_simple_record_is_managed() {
        assert_eq!(classify(&[], 60), RecordSet::Absent);
        assert_eq!(
            classify(&[set("app.example.com").ttl(30).build().unwrap()], 60),
            RecordSet::Simple {
                values: vec!["192.0.2.1".into(), "192.0.2.2".into()],
                ttl: 30
            }
        );
        assert_eq!(
            classify(&[set("app.example.com").build().unwrap()], 60),
            RecordSet::Simple {
                values: vec!["192.0.2.1".into(), "192.0.2.2".into()],
                ttl: 60
            },
            "without a TTL, the configured one"
        );
        let alias = ResourceRecordSet::builder()
            .name("app.example.com")
            .r#type(RrType::A)
            .alias_target(
                AliasTarget::builder()
                    .hosted_zone_id("Z2")
                    .dns_name("lb.example.com")
                    .evaluate_target_health(false)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert_eq!(
            classify(&[alias], 60),
            RecordSet::Unmanageable("an alias record".into())
        );
        let weighted = set("app.example.com")
            .set_identifier("one")
            .weight(10)
            .build()
            .unwrap();
        assert!(matches!(
            classify(std::slice::from_ref(&weighted), 60),
            RecordSet::Unmanageable(why) if why.contains("routing policy")
        ));
        let plain = set("app.example.com").build().unwrap();
        assert!(matches!(
            classify(&[plain, weighted], 60),
            RecordSet::Unmanageable(_)
        ));
    }
}
