//! Recovery reports beside their audit records (`<app id>#report#<version>`): stored
//! in the commit region, and with one table per region in the primary's too, where
//! the sync copies the ones that could not be written there at once (global tables
//! replicate them like the audit records).

use std::collections::BTreeSet;

use super::store::WriteError;
use super::{ActionError, Actuator};
use failover_config::TablesMode;
use failover_core::model::Role;
use failover_core::report::Report;

/// Reports written in the commit region whose primary copy is still to be made.
#[derive(Debug, Default)]
pub(super) struct Unreplicated(BTreeSet<u64>);

impl Actuator {
    /// Stores `report` in the commit region (and the primary's copy, one table per
    /// region, best effort). A complete report already there is final: a draft
    /// never replaces it (that is no error).
    pub async fn store_report(&self, report: &Report) -> Result<(), ActionError> {
        match self.secondary.put_report(report).await {
            Ok(()) | Err(WriteError::Conflict) => {}
            Err(WriteError::Busy(e) | WriteError::Failed(e)) => return Err(e),
            Err(other) => {
                return Err(ActionError::Unavailable {
                    region: Role::Secondary,
                    reason: format!("{other:?}"),
                });
            }
        }
        if self.tables == TablesMode::PerRegion {
            let copied = matches!(
                self.primary.put_report(report).await,
                Ok(()) | Err(WriteError::Conflict)
            );
            let mut pending = self.unreplicated.lock().unwrap_or_else(|e| e.into_inner());
            if copied {
                pending.0.remove(&report.version);
            } else {
                pending.0.insert(report.version);
            }
        }
        Ok(())
    }

    /// The report of `version`: the commit region's, else the primary's.
    pub async fn report(&self, version: u64) -> Result<Option<Report>, ActionError> {
        match self.secondary.reports(&[version]).await {
            Ok(mut r) if !r.is_empty() => Ok(r.pop()),
            Ok(_) => Ok(self
                .primary
                .reports(&[version])
                .await
                .ok()
                .and_then(|mut r| r.pop())),
            Err(e) => match self.primary.reports(&[version]).await {
                Ok(mut r) => Ok(r.pop()),
                Err(_) => Err(e),
            },
        }
    }

    /// The newest report at or below `version`, looking at most `depth` versions down.
    pub async fn newest_report(
        &self,
        version: u64,
        depth: u64,
    ) -> Result<Option<Report>, ActionError> {
        let versions: Vec<u64> = (version.saturating_sub(depth.max(1) - 1)..=version)
            .rev()
            .filter(|v| *v > 0)
            .collect();
        let reports = match self.secondary.reports(&versions).await {
            Ok(r) => r,
            Err(e) => self.primary.reports(&versions).await.map_err(|_| e)?,
        };
        Ok(reports.into_iter().next())
    }

    /// One table per region: copies reports of `versions` from the commit region to
    /// the primary, and the ones whose copy failed before (a sync pass calls this).
    pub(super) async fn copy_reports(&self, versions: &[u64]) {
        if self.tables != TablesMode::PerRegion {
            return;
        }
        let mut wanted: Vec<u64> = versions.to_vec();
        {
            let pending = self.unreplicated.lock().unwrap_or_else(|e| e.into_inner());
            wanted.extend(pending.0.iter().copied());
        }
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return;
        }
        for chunk in wanted.chunks(100) {
            let Ok(reports) = self.secondary.reports(chunk).await else {
                return;
            };
            for r in reports {
                if matches!(
                    self.primary.put_report(&r).await,
                    Ok(()) | Err(WriteError::Conflict)
                ) {
                    let mut pending = self.unreplicated.lock().unwrap_or_else(|e| e.into_inner());
                    pending.0.remove(&r.version);
                }
            }
        }
    }
}
