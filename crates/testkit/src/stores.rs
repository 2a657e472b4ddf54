//! The config item store and the coordination store on a [`MemTable`], with the same
//! conditions as their DynamoDB implementations (`failover_daemon::action::DynamoItemStore`,
//! `failover_daemon::coord::DynamoCoordStore`). The DynamoDB ones are exercised against the
//! emulator (`tests/e2e_failover.rs`, `tests/e2e_coordination.rs`), these by the in-process
//! tests and the simulation; the conditions are written side by side to match.

use async_trait::async_trait;

use super::requests::{Action, Request, TxError, Write};
use super::table::{MemTable, Record};
use failover_core::drill::DrillRecord;
use failover_core::lease::LeaseRecord;
use failover_core::model::{AuditRecord, ConfigItem, PauseRecord, Role, keys};
use failover_core::report::Report;
use failover_daemon::action::{
    AUDITS_PER_WRITE, ActionError, CanaryStore, Commit, CopyFrom, ItemStore, WriteError,
    copy_refusal, refusal,
};
use failover_daemon::coord::{CoordError, CoordStore, PeerView};

/// [`ItemStore`] on a [`MemTable`].
#[derive(Debug, Clone)]
pub struct MemItemStore {
    pub table: MemTable,
    app_id: String,
    role: Role,
}

impl MemItemStore {
    pub fn new(table: MemTable, app_id: &str, role: Role) -> Self {
        Self {
            table,
            app_id: app_id.to_owned(),
            role,
        }
    }

    fn unavailable(&self, reason: String) -> ActionError {
        ActionError::Unavailable {
            region: self.role,
            reason,
        }
    }

    fn write_error(&self, e: TxError, fence_index: Option<usize>) -> WriteError {
        match e {
            TxError::Unavailable(r) => WriteError::Failed(self.unavailable(r)),
            TxError::Cancelled(reasons) => {
                refusal(&reasons, fence_index, |text| ActionError::Busy {
                    region: self.role,
                    reason: format!("transaction cancelled: {text}"),
                })
            }
        }
    }
}

fn item_version(r: Option<&Record>) -> Option<u64> {
    match r {
        Some(Record::Item(i)) => Some(i.version),
        _ => None,
    }
}

#[async_trait]
impl ItemStore for MemItemStore {
    fn role(&self) -> Role {
        self.role
    }

    async fn read(&self) -> Result<Option<ConfigItem>, ActionError> {
        match self
            .table
            .read_key(&self.app_id)
            .map_err(|e| self.unavailable(e))?
        {
            Some(Record::Item(i)) => Ok(Some(i)),
            Some(other) => Err(ActionError::Malformed {
                region: self.role,
                reason: format!("not a config item: {other:?}"),
            }),
            None => Ok(None),
        }
    }

    async fn compare_and_set(&self, c: Commit<'_>) -> Result<(), WriteError> {
        self.table.wait().await;
        let (from, expected) = (c.from, c.expected);
        let mut actions = vec![
            Action {
                key: self.app_id.clone(),
                // `#s = :from AND #v = :expected`; version 0 also matches an item
                // without a version (which this store never holds: it reads as 0).
                check: Box::new(
                    move |r| matches!(r, Some(Record::Item(i)) if i.state == from && i.version == expected),
                ),
                write: Write::Put(Record::Item(c.item.clone())),
            },
            Action {
                key: keys::audit(&self.app_id, c.audit.version),
                check: Box::new(|r| r.is_none()),
                write: Write::Put(Record::Audit(c.audit.clone())),
            },
        ];
        if let Some(f) = c.fence {
            let (owner, token) = (f.owner.clone(), f.token);
            actions.push(Action {
                key: keys::lease(&self.app_id),
                check: Box::new(move |r| {
                    matches!(r, Some(Record::Lease(l)) if l.owner == owner && l.token == token)
                }),
                write: Write::Nothing,
            });
        }
        self.table
            .request(actions, Some(c.token.to_owned()), Request::Transaction)
            .await
            .map_err(|e| self.write_error(e, c.fence.map(|_| 2)))
    }

    async fn catch_up(
        &self,
        item: &ConfigItem,
        audits: &[AuditRecord],
        from: CopyFrom<'_>,
    ) -> Result<(), WriteError> {
        if audits.len() > from.room() {
            return Err(WriteError::Failed(self.unavailable(format!(
                "a catch-up of {} audit records: at most {} fit",
                audits.len(),
                from.room()
            ))));
        }
        let new = item.version;
        let exactly = match from {
            CopyFrom::Below => None,
            CopyFrom::At { version, .. } => Some(version),
        };
        let mut actions = vec![Action {
            key: self.app_id.clone(),
            check: Box::new(move |r| match exactly {
                None => item_version(r).is_none_or(|v| v < new),
                Some(version) => item_version(r).unwrap_or(0) == version,
            }),
            write: Write::Put(Record::Item(item.clone())),
        }];
        actions.extend(self.audit_puts(audits));
        let record_check = match (from.checked(), from) {
            (Some(f), CopyFrom::At { at, .. }) => {
                let at = at.map(str::to_owned);
                actions.push(Action {
                    key: keys::audit(&self.app_id, f),
                    check: Box::new(move |r| match r {
                        Some(Record::Audit(a)) => at.as_ref().is_none_or(|at| a.at == *at),
                        _ => false,
                    }),
                    write: Write::Nothing,
                });
                Some(actions.len() - 1)
            }
            _ => None,
        };
        self.table
            .request(actions, None, Request::Transaction)
            .await
            .map_err(|e| match e {
                TxError::Cancelled(reasons) => {
                    copy_refusal(&reasons, None, record_check, |text| ActionError::Busy {
                        region: self.role,
                        reason: format!("transaction cancelled: {text}"),
                    })
                }
                e => self.write_error(e, None),
            })
    }

    async fn follow_reset(
        &self,
        expected: &ConfigItem,
        item: &ConfigItem,
    ) -> Result<(), WriteError> {
        let was = (expected.version, expected.state);
        let actions = vec![Action {
            key: self.app_id.clone(),
            check: Box::new(move |r| match r {
                Some(Record::Item(i)) => (i.version, i.state) == was,
                _ => false,
            }),
            write: Write::Put(Record::Item(item.clone())),
        }];
        self.table
            .request(actions, None, Request::Transaction)
            .await
            .map_err(|e| self.write_error(e, None))
    }

    async fn put_audits(&self, audits: &[AuditRecord]) -> Result<(), WriteError> {
        if audits.is_empty() {
            return Ok(());
        }
        if audits.len() > AUDITS_PER_WRITE {
            return Err(WriteError::Failed(self.unavailable(format!(
                "a put of {} audit records: at most {AUDITS_PER_WRITE} fit",
                audits.len()
            ))));
        }
        self.table
            .request(self.audit_puts(audits), None, Request::Transaction)
            .await
            .map_err(|e| self.write_error(e, None))
    }

    async fn audits(
        &self,
        versions: &[u64],
        _consistent: bool,
    ) -> Result<Vec<AuditRecord>, ActionError> {
        let wanted: Vec<String> = versions
            .iter()
            .take(100)
            .map(|v| keys::audit(&self.app_id, *v))
            .collect();
        let mut records: Vec<AuditRecord> = self
            .table
            .read_many(&wanted)
            .map_err(|e| self.unavailable(e))?
            .into_iter()
            .filter_map(|(_, r)| match r {
                Record::Audit(a) => Some(a),
                _ => None,
            })
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.version));
        Ok(records)
    }

    async fn read_pause(&self) -> Result<Option<PauseRecord>, ActionError> {
        match self
            .table
            .read_key(&keys::pause(&self.app_id))
            .map_err(|e| self.unavailable(e))?
        {
            Some(Record::Pause(p)) => Ok(Some(p)),
            _ => Ok(None),
        }
    }

    async fn put_report(&self, report: &Report) -> Result<(), WriteError> {
        let new = report.clone();
        let action = Action {
            key: keys::report(&self.app_id, report.version),
            check: Box::new(move |r| match r {
                Some(Record::Report(stored)) => new.replaces(stored),
                _ => true,
            }),
            write: Write::Put(Record::Report(Box::new(report.clone()))),
        };
        self.table
            .transact(vec![action], None, Request::Single, None)
            .map_err(|e| self.write_error(e, None))
    }

    async fn reports(&self, versions: &[u64]) -> Result<Vec<Report>, ActionError> {
        let keys: Vec<String> = versions
            .iter()
            .take(100)
            .map(|v| keys::report(&self.app_id, *v))
            .collect();
        let mut reports: Vec<Report> = self
            .table
            .read_many(&keys)
            .map_err(|e| self.unavailable(e))?
            .into_iter()
            .filter_map(|(_, r)| match r {
                Record::Report(r) => Some(*r),
                _ => None,
            })
            .collect();
        reports.sort_by_key(|r| std::cmp::Reverse(r.version));
        Ok(reports)
    }

    async fn read_drill(&self) -> Result<Option<DrillRecord>, ActionError> {
        match self
            .table
            .read_key(&keys::drill(&self.app_id))
            .map_err(|e| self.unavailable(e))?
        {
            Some(Record::Drill(d)) => Ok(Some(*d)),
            _ => Ok(None),
        }
    }

    async fn write_drill(
        &self,
        expected: Option<u64>,
        new: &DrillRecord,
    ) -> Result<(), WriteError> {
        let action = Action {
            key: keys::drill(&self.app_id),
            check: Box::new(move |r| match (expected, r) {
                (None, r) => r.is_none(),
                (Some(seq), Some(Record::Drill(d))) => d.seq == seq,
                (Some(_), _) => false,
            }),
            write: Write::Put(Record::Drill(Box::new(new.clone()))),
        };
        self.table
            .transact(vec![action], None, Request::Single, None)
            .map_err(|e| self.write_error(e, None))
    }

    async fn write_pause(
        &self,
        expected: Option<u64>,
        new: &PauseRecord,
    ) -> Result<(), WriteError> {
        let action = Action {
            key: keys::pause(&self.app_id),
            check: Box::new(move |r| match (expected, r) {
                (None, r) => r.is_none(),
                (Some(seq), Some(Record::Pause(p))) => p.seq == seq,
                (Some(_), _) => false,
            }),
            write: Write::Put(Record::Pause(new.clone())),
        };
        self.table
            .transact(vec![action], None, Request::Single, None)
            .map_err(|e| self.write_error(e, None))
    }
}

impl MemItemStore {
    fn audit_puts(&self, audits: &[AuditRecord]) -> Vec<Action<'static>> {
        audits
            .iter()
            .map(|a| Action {
                key: keys::audit(&self.app_id, a.version),
                check: Box::new(|_| true),
                write: Write::Put(Record::Audit(a.clone())),
            })
            .collect()
    }
}

/// One instance's canary in a [`MemTable`], at `key`.
#[derive(Debug, Clone)]
pub struct MemCanary {
    pub table: MemTable,
    pub key: String,
    pub role: Role,
}

#[async_trait]
impl CanaryStore for MemCanary {
    async fn put(&self, nonce: &str) -> Result<(), ActionError> {
        let action = Action {
            key: self.key.clone(),
            check: Box::new(|_| true),
            write: Write::Put(Record::Canary(nonce.to_owned())),
        };
        self.table
            .transact(vec![action], None, Request::Single, None)
            .map_err(|e| ActionError::Unavailable {
                region: self.role,
                reason: format!("{e:?}"),
            })
    }

    async fn read(&self) -> Result<Option<String>, ActionError> {
        match self.table.read_key(&self.key) {
            Ok(Some(Record::Canary(n))) => Ok(Some(n)),
            Ok(_) => Ok(None),
            Err(reason) => Err(ActionError::Unavailable {
                region: self.role,
                reason,
            }),
        }
    }
}

/// [`CoordStore`] on a [`MemTable`] (the secondary's).
#[derive(Debug, Clone)]
pub struct MemCoordStore {
    pub table: MemTable,
    app_id: String,
}

impl MemCoordStore {
    pub fn new(table: MemTable, app_id: &str) -> Self {
        Self {
            table,
            app_id: app_id.to_owned(),
        }
    }

    fn conditional(&self, action: Action<'_>) -> Result<(), CoordError> {
        match self
            .table
            .transact(vec![action], None, Request::Single, None)
        {
            Ok(()) => Ok(()),
            Err(TxError::Cancelled(_)) => Err(CoordError::Refused),
            Err(TxError::Unavailable(e)) => Err(CoordError::Unavailable(e)),
        }
    }

    fn lease(&self) -> Result<Option<LeaseRecord>, CoordError> {
        match self
            .table
            .read_key(&keys::lease(&self.app_id))
            .map_err(CoordError::Unavailable)?
        {
            Some(Record::Lease(l)) => Ok(Some(l)),
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl CoordStore for MemCoordStore {
    async fn read(
        &self,
        instances: &[String],
    ) -> Result<(Option<LeaseRecord>, Vec<(String, PeerView)>), CoordError> {
        let wanted: Vec<String> = std::iter::once(keys::lease(&self.app_id))
            .chain(instances.iter().map(|i| keys::view(&self.app_id, i)))
            .collect();
        let found = self
            .table
            .read_many(&wanted)
            .map_err(CoordError::Unavailable)?;
        let prefix = keys::view_prefix(&self.app_id);
        let mut lease = None;
        let mut views = Vec::new();
        for (key, record) in found {
            match record {
                Record::Lease(l) => lease = Some(l),
                Record::View(v) => {
                    if let Some(instance) = key.strip_prefix(&prefix) {
                        views.push((instance.to_owned(), v));
                    }
                }
                _ => {}
            }
        }
        Ok((lease, views))
    }

    async fn acquire(&self, me: &str, expected: Option<&LeaseRecord>) -> Result<u64, CoordError> {
        let token = expected.map_or(1, |r| r.token + 1);
        let expected = expected.cloned();
        self.conditional(Action {
            key: keys::lease(&self.app_id),
            check: Box::new(move |r| match (&expected, r) {
                (None, r) => r.is_none(),
                (Some(e), Some(Record::Lease(l))) => l == e,
                (Some(_), _) => false,
            }),
            write: Write::Put(Record::Lease(LeaseRecord {
                owner: me.to_owned(),
                token,
                renewals: 0,
            })),
        })?;
        Ok(token)
    }

    async fn renew(&self, me: &str, token: u64) -> Result<u64, CoordError> {
        // `SET renewals = renewals + 1` conditioned on owner and token, in one step.
        let owner = me.to_owned();
        self.conditional(Action {
            key: keys::lease(&self.app_id),
            check: Box::new(move |r| {
                matches!(r, Some(Record::Lease(l)) if l.owner == owner && l.token == token)
            }),
            write: Write::Update(Box::new(|r| match r {
                Some(Record::Lease(l)) => Record::Lease(LeaseRecord {
                    renewals: l.renewals + 1,
                    ..l.clone()
                }),
                other => other.cloned().unwrap_or(Record::Canary(String::new())),
            })),
        })?;
        match self.lease()? {
            Some(l) if l.owner == me && l.token == token => Ok(l.renewals),
            _ => Err(CoordError::Refused),
        }
    }

    async fn publish(&self, me: &str, view: &PeerView) -> Result<(), CoordError> {
        self.conditional(Action {
            key: keys::view(&self.app_id, me),
            check: Box::new(|_| true),
            write: Write::Put(Record::View(view.clone())),
        })
    }

    async fn release(&self, me: &str, token: u64) -> Result<(), CoordError> {
        let owner = me.to_owned();
        self.conditional(Action {
            key: keys::lease(&self.app_id),
            check: Box::new(move |r| {
                matches!(r, Some(Record::Lease(l)) if l.owner == owner && l.token == token)
            }),
            write: Write::Update(Box::new(|r| match r {
                Some(Record::Lease(l)) => Record::Lease(LeaseRecord {
                    owner: String::new(),
                    token: l.token,
                    renewals: l.renewals + 1,
                }),
                other => other.cloned().unwrap_or(Record::Canary(String::new())),
            })),
        })
    }
}
