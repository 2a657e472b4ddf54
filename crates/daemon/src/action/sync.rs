//! The sync pass: reads both copies of the item and the operator's pause, brings a
//! lagging copy up (one table per region), measures replication (global tables),
//! and, on the acting instance only, points the DNS record at the commit region's
//! state. The sync task runs a pass every `state_refresh`, or at once when asked.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tracing::debug;

use super::dns::{DnsAction, follow_seen};
use super::store::{AUDITS_PER_WRITE, CopyFrom, ItemStore, WriteError};
use super::{ActionError, Actuator};
use crate::gate::Gate;
use failover_config::TablesMode;
use failover_core::model::{AppState, AuditRecord, ConfigItem, PauseRecord, Role};

/// What one sync pass found and did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub primary: Result<Option<ConfigItem>, ActionError>,
    pub secondary: Result<Option<ConfigItem>, ActionError>,
    /// When the commit region's reads (item and pause) were issued, after the
    /// primary's had been answered.
    #[serde(skip)]
    pub issued: Instant,
    pub action: SyncAction,
    /// The DNS record brought in line with the commit region's state, when
    /// configured and this instance acts.
    pub dns: Option<Result<DnsAction, ActionError>>,
    /// The operator's pause as stored in the commit region.
    pub pause: Result<Option<PauseRecord>, ActionError>,
    #[serde(skip)]
    pub tables: TablesMode,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SyncAction {
    /// Both copies agree (or one could not be read, so nothing can be said).
    None,
    /// One table per region: the lagging copy was brought up to the other's version.
    CaughtUp {
        region: Role,
        from_version: Option<u64>,
        to_version: u64,
    },
    /// One table per region: the lagging copy could not be brought up (and was not
    /// moved).
    CatchUpFailed { region: Role, reason: String },
    /// One table per region: the primary copy is ahead of the commit region, which
    /// only a write outside the protocol makes (the commit region reset, restored or
    /// set back by hand; or the primary written by hand). Looked at again on the next
    /// pass: a person resetting both copies one after the other is not undone.
    PrimaryAhead { primary: u64, secondary: u64 },
    /// One table per region: the primary copy, ahead of the commit region on two
    /// passes in a row, was set to the commit region's item (the commit region is the
    /// truth: a copy goes backwards only to follow it).
    FollowedReset { from_version: u64, to_version: u64 },
    /// One table per region: the primary copy is at the commit region's version but
    /// holds another audit record of it (written before a reset, in another
    /// history). Looked at again on the next pass, as [`SyncAction::PrimaryAhead`].
    OtherHistory { version: u64 },
    /// Global tables: the primary replica has not received these versions yet.
    Replicating { behind: u64 },
    /// Global tables: the primary replica holds a version the commit region does not
    /// (written there directly, outside the protocol). Needs a human.
    AheadOfCommit { primary: u64, secondary: u64 },
    /// Same version, different state: someone wrote without the version protocol
    /// (for example the original stack's `switch-state`). Needs a human.
    Diverged {
        primary: AppState,
        secondary: AppState,
        version: u64,
    },
}

/// Whether the primary's copy holds the commit region's audit record of a version.
enum History {
    /// The same record (none at version 0).
    Same(Option<AuditRecord>),
    /// Another record, or none where the commit region has one.
    Other,
}

impl SyncReport {
    /// The item as far as deciding goes, and whether its read is the commit
    /// region's (the truth, which may lower what is known) or the primary's, taken
    /// only when the commit region cannot be read (which never lowers anything).
    pub fn item(&self) -> Option<(&ConfigItem, bool)> {
        match (&self.primary, &self.secondary) {
            (_, Ok(Some(s))) => Some((s, true)),
            (Ok(Some(p)), Err(_)) => Some((p, false)),
            _ => None,
        }
    }
}

/// Runs sync passes until `tx`'s receiver is gone. `acts`: this instance acts
/// (alone, or holding the lease), so it alone changes DNS.
pub async fn sync_loop(
    actuator: Arc<Actuator>,
    every: Duration,
    now: Arc<Notify>,
    acts: watch::Receiver<bool>,
    tx: mpsc::Sender<SyncReport>,
    gate: Gate,
) {
    loop {
        gate.pass().await;
        let acts_now = *acts.borrow();
        let report = actuator.sync(acts_now).await;
        gate.pass().await;
        debug!(action = ?report.action, "sync");
        if tx.send(report).await.is_err() {
            return;
        }
        tokio::select! {
            biased;
            () = now.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
    }
}

impl Actuator {
    /// Reads both copies and the pause, and reconciles what the tables mode allows.
    /// The primary is read first, the commit region after: the protocol writes the
    /// commit region first, so a primary found ahead was written outside it, never
    /// by a commit landing between the two reads.
    pub async fn sync(&self, acts: bool) -> SyncReport {
        // The DNS record is read before the commit region's item (see follow_seen).
        let dns_seen = match &self.dns {
            Some(d) if acts => Some(d.current().await),
            _ => None,
        };
        let primary = self.primary.read().await;
        let issued = Instant::now();
        let (secondary, pause) = tokio::join!(self.secondary.read(), self.secondary.read_pause());
        if primary.is_ok() {
            // Reports whose primary copy could not be written with them.
            self.copy_reports(&[]).await;
        }
        let action = match self.tables {
            TablesMode::PerRegion => self.reconcile(&primary, &secondary).await,
            TablesMode::Global => replication_state(&primary, &secondary),
        };
        let dns = match (&self.dns, dns_seen, &secondary) {
            (Some(d), Some(Ok(seen)), Ok(Some(item))) => {
                Some(follow_seen(d.as_ref(), seen, item.state, item.version).await)
            }
            (Some(_), Some(Err(e)), Ok(Some(_))) => Some(Err(e)),
            _ => None,
        };
        SyncReport {
            primary,
            secondary,
            issued,
            action,
            dns,
            pause,
            tables: self.tables,
        }
    }

    /// One table per region: brings the lagging copy up to the other.
    async fn reconcile(
        &self,
        primary: &Result<Option<ConfigItem>, ActionError>,
        secondary: &Result<Option<ConfigItem>, ActionError>,
    ) -> SyncAction {
        let follows = |p: &ConfigItem, s: &ConfigItem| {
            s.version < p.version || (s.version == p.version && s.version > 0 && p != s)
        };
        if !matches!((primary, secondary), (Ok(Some(p)), Ok(Some(s))) if follows(p, s)) {
            *self.primary_ahead.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        match (primary, secondary) {
            (Ok(p), Ok(Some(s))) if p.as_ref().is_none_or(|p| p.version < s.version) => {
                self.catch_up(&self.secondary, &self.primary, s, p.as_ref())
                    .await
            }
            // The commit region has no item at all (deleted by hand): restored from
            // the primary's copy, records included.
            (Ok(Some(p)), Ok(None)) => self.catch_up(&self.primary, &self.secondary, p, None).await,
            (Ok(Some(p)), Ok(Some(s))) if s.version < p.version => {
                self.follow_reset(p, s, None).await
            }
            // Same version, another item: another history (by the audit record),
            // or the same one with a write outside the protocol (told by the state).
            (Ok(Some(p)), Ok(Some(s))) if follows(p, s) => match self.copy_history(s.version).await
            {
                Ok(History::Other) => self.follow_reset(p, s, None).await,
                Ok(History::Same(_)) if p.state == s.state => SyncAction::None,
                // The primary's copy is exactly what its record wrote (a monitor's
                // copy): the other state was written in the commit region, by hand
                // (a version set back to the record's after a re-seed, say), and the
                // copy follows it as it follows a reset. A copy written by hand (the
                // original stack's `switch-state` on the primary) waits for a human.
                Ok(History::Same(record)) => {
                    let diverged = SyncAction::Diverged {
                        primary: p.state,
                        secondary: s.state,
                        version: s.version,
                    };
                    if record.is_some_and(|r| r.wrote(p)) {
                        self.follow_reset(p, s, Some(diverged)).await
                    } else {
                        diverged
                    }
                }
                Err(e) => SyncAction::CatchUpFailed {
                    region: Role::Primary,
                    reason: format!(
                        "its audit record of version {} cannot be compared: {e}",
                        s.version
                    ),
                },
            },
            (Ok(Some(p)), Ok(Some(s))) if p.state != s.state => SyncAction::Diverged {
                primary: p.state,
                secondary: s.state,
                version: s.version,
            },
            _ => SyncAction::None,
        }
    }

    /// Whether both copies hold the same audit record of `version` (one that
    /// exists in the commit region), and which. Version 0 has none: always the same.
    async fn copy_history(&self, version: u64) -> Result<History, ActionError> {
        if version == 0 {
            return Ok(History::Same(None));
        }
        let wanted = [version];
        let (theirs, ours) = tokio::join!(
            self.secondary.audits(&wanted, true),
            self.primary.audits(&wanted, true)
        );
        let (mut theirs, ours) = (theirs?, ours?);
        Ok(match theirs.pop() {
            Some(record) if ours == [record.clone()] => History::Same(Some(record)),
            _ => History::Other,
        })
    }

    /// The primary copy is ahead of the commit region, or at its version in another
    /// history. The commit region is the truth and is never written here: once the
    /// same pair has been seen on two passes in a row, the primary copy is set to the
    /// commit region's item, only while it is still exactly as read. Its audit
    /// records stay, unless its record of the commit region's version is not the
    /// commit region's: then every record up to that version is copied first, so
    /// the copy never shows a version without its records.
    async fn follow_reset(
        &self,
        p: &ConfigItem,
        s: &ConfigItem,
        first: Option<SyncAction>,
    ) -> SyncAction {
        let pair = (p.clone(), s.clone());
        let seen_before = {
            let mut last = self.primary_ahead.lock().unwrap_or_else(|e| e.into_inner());
            let before = last.as_ref() == Some(&pair);
            *last = Some(pair);
            before
        };
        if !seen_before {
            return if let Some(first) = first {
                first
            } else if p.version == s.version {
                SyncAction::OtherHistory { version: s.version }
            } else {
                SyncAction::PrimaryAhead {
                    primary: p.version,
                    secondary: s.version,
                }
            };
        }
        let failed = |reason: String| SyncAction::CatchUpFailed {
            region: Role::Primary,
            reason,
        };
        match self.copy_history(s.version).await {
            Ok(History::Same(_)) => {}
            Ok(History::Other) => {
                if let Err(reason) = self.copy_records(s.version).await {
                    return failed(reason);
                }
            }
            Err(e) => {
                return failed(format!(
                    "its audit record of version {} cannot be compared: {e}",
                    s.version
                ));
            }
        }
        match self.primary.follow_reset(p, s).await {
            Ok(()) => SyncAction::FollowedReset {
                from_version: p.version,
                to_version: s.version,
            },
            // It changed meanwhile: the next pass looks again.
            Err(WriteError::Conflict) => SyncAction::None,
            Err(e) => failed(format!("following the commit region's reset: {e:?}")),
        }
    }

    /// Copies the commit region's audit records 1 to `upto` into the primary's copy
    /// (over the ones there), in pages.
    async fn copy_records(&self, upto: u64) -> Result<(), String> {
        let wanted: Vec<u64> = (1..=upto).collect();
        for page in wanted.chunks(AUDITS_PER_WRITE) {
            let records = self.secondary.audits(page, true).await.map_err(|e| {
                format!("the audit records cannot be read from the commit region: {e}")
            })?;
            if records.len() != page.len() {
                return Err(format!(
                    "the commit region lacks audit records among versions {} to {}",
                    page[0],
                    page[page.len() - 1]
                ));
            }
            self.primary
                .put_audits(&records)
                .await
                .map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    }

    /// Copies `item` and every audit record the target lacks (read from the source
    /// in pages), or leaves the target as it is when any of them cannot be read.
    async fn catch_up(
        &self,
        source: &Arc<dyn ItemStore>,
        target: &Arc<dyn ItemStore>,
        item: &ConfigItem,
        copy: Option<&ConfigItem>,
    ) -> SyncAction {
        let from_version = copy.map(|c| c.version);
        let failed = |reason: String| SyncAction::CatchUpFailed {
            region: target.role(),
            reason,
        };
        // The copy's own version counts only when it holds the same record of it as
        // the source: a copy left at a version by a write that landed after a reset,
        // whose records were then deleted (or are an older life's), gets every record.
        let start = match from_version {
            Some(f) if f > 0 => {
                let wanted = [f];
                let (theirs, ours) =
                    tokio::join!(source.audits(&wanted, true), target.audits(&wanted, true));
                match (theirs, ours) {
                    (Ok(theirs), Ok(ours)) if !theirs.is_empty() && theirs == ours => f,
                    (Ok(_), Ok(_)) => 0,
                    (Err(e), _) | (_, Err(e)) => {
                        return failed(format!(
                            "the audit record of version {f} cannot be compared: {e}; the copy is not moved"
                        ));
                    }
                }
            }
            _ => 0,
        };
        let wanted: Vec<u64> = (start + 1..=item.version).collect();
        let mut audits = Vec::with_capacity(wanted.len());
        for page in wanted.chunks(100) {
            match source.audits(page, true).await {
                Ok(records) => audits.extend(records),
                Err(e) => {
                    return failed(format!(
                        "the audit records cannot be read from the {}: {e}; the copy is not moved",
                        source.role()
                    ));
                }
            }
        }
        audits.sort_by_key(|a| a.version);
        let have: Vec<u64> = audits.iter().map(|a| a.version).collect();
        if let Some(missing) = wanted.iter().find(|v| !have.contains(v)) {
            return failed(format!(
                "the {} has no audit record of version {missing}; the copy is not moved",
                source.role()
            ));
        }
        // Oldest first, so that a copy never shows a version whose records are not
        // all there: the item moves with the last part.
        let split = audits.len().saturating_sub(AUDITS_PER_WRITE);
        for chunk in audits[..split].chunks(AUDITS_PER_WRITE) {
            if let Err(e) = target.put_audits(chunk).await {
                return failed(format!("{e:?}"));
            }
        }
        match target
            .catch_up(item, &audits[split..], CopyFrom::Below)
            .await
        {
            Ok(()) if target.role() == Role::Primary => {
                // The recovery reports of those versions follow their records.
                self.copy_reports(&wanted).await;
                SyncAction::CaughtUp {
                    region: target.role(),
                    from_version,
                    to_version: item.version,
                }
            }
            Ok(()) => SyncAction::CaughtUp {
                region: target.role(),
                from_version,
                to_version: item.version,
            },
            // It moved on meanwhile: the next pass will see it.
            Err(WriteError::Conflict) => SyncAction::None,
            Err(WriteError::Busy(e) | WriteError::Failed(e)) => failed(e.to_string()),
            Err(other) => failed(format!("{other:?}")),
        }
    }
}

/// Global tables: how far the primary replica is from the commit region.
fn replication_state(
    primary: &Result<Option<ConfigItem>, ActionError>,
    secondary: &Result<Option<ConfigItem>, ActionError>,
) -> SyncAction {
    match (primary, secondary) {
        (Ok(p), Ok(Some(s))) if p.as_ref().is_none_or(|p| p.version < s.version) => {
            SyncAction::Replicating {
                behind: s.version - p.as_ref().map_or(0, |p| p.version),
            }
        }
        (Ok(Some(p)), Ok(s)) if s.as_ref().is_none_or(|s| s.version < p.version) => {
            SyncAction::AheadOfCommit {
                primary: p.version,
                secondary: s.as_ref().map_or(0, |s| s.version),
            }
        }
        (Ok(Some(p)), Ok(Some(s))) if p.state != s.state => SyncAction::Diverged {
            primary: p.state,
            secondary: s.state,
            version: s.version,
        },
        _ => SyncAction::None,
    }
}
