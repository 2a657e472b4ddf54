//! History pages: the audit records, newest first, one bounded page at a time, read
//! from the commit region (the primary's copy when the secondary cannot be read).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::{ActionError, Actuator, ItemStore};
use failover_core::model::{AuditRecord, Role};

/// Most audit records one history page holds (and one history call reads).
pub const HISTORY_MAX_LIMIT: usize = 50;
/// Records per history page when the caller does not say.
pub const HISTORY_DEFAULT_LIMIT: usize = 20;
/// How long a history read keeps records it read (they never change; the bound only
/// lets a record deleted by hand disappear from the answers).
pub const HISTORY_CACHE_TTL: Duration = Duration::from_secs(60);
/// Most records the history cache holds.
const HISTORY_CACHE_SIZE: usize = 500;

/// One page of audit records, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistoryPage {
    pub records: Vec<AuditRecord>,
    /// `before` for the next, older page; `None` when this one reaches version 1.
    pub next_before: Option<u64>,
}

/// Audit records recently read, by region and version, with when they were read.
pub(super) type HistoryCache = HashMap<(Role, u64), (tokio::time::Instant, AuditRecord)>;

impl Actuator {
    /// One page of audit records, newest first: those with a version below `before`
    /// (all when `None`), at most `limit` (1 to [`HISTORY_MAX_LIMIT`]) of them, from
    /// the secondary (the commit point), falling back to the primary when the
    /// secondary's item cannot be read.
    ///
    /// Reads: the item (one strongly consistent read, for the newest version), then
    /// the audit keys of this page only, never more than `limit`, eventually
    /// consistent and skipping records read in
    /// the last [`HISTORY_CACHE_TTL`]. The newest version's record, when that read
    /// misses it (it may be a moment old), is read once more, strongly consistent.
    /// A page holds fewer than `limit` records when versions have none (an item
    /// re-seeded by hand); `next_before` goes on past such gaps.
    pub async fn history(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<HistoryPage, ActionError> {
        let limit = limit.clamp(1, HISTORY_MAX_LIMIT) as u64;
        let mut last_err = None;
        for table in [&self.secondary, &self.primary] {
            let newest = match table.read().await {
                Ok(Some(item)) => item.version,
                Ok(None) => return Ok(HistoryPage::default()),
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let high = before.map_or(newest, |b| b.saturating_sub(1).min(newest));
            if high == 0 {
                return Ok(HistoryPage::default());
            }
            let low = high.saturating_sub(limit - 1).max(1);
            let records = self.page(table.as_ref(), low, high, newest).await?;
            return Ok(HistoryPage {
                records,
                next_before: (low > 1).then_some(low),
            });
        }
        Err(last_err.unwrap_or(ActionError::Missing {
            region: Role::Secondary,
        }))
    }

    /// The audit records of versions `low..=high` in `table`, newest first.
    async fn page(
        &self,
        table: &dyn ItemStore,
        low: u64,
        high: u64,
        newest: u64,
    ) -> Result<Vec<AuditRecord>, ActionError> {
        let role = table.role();
        let now = tokio::time::Instant::now();
        let mut found: Vec<AuditRecord> = Vec::new();
        let mut missing: Vec<u64> = Vec::new();
        {
            let cache = self.history_cache.lock().unwrap_or_else(|e| e.into_inner());
            for v in (low..=high).rev() {
                match cache.get(&(role, v)) {
                    Some((at, r)) if now.duration_since(*at) < HISTORY_CACHE_TTL => {
                        found.push(r.clone())
                    }
                    _ => missing.push(v),
                }
            }
        }
        if !missing.is_empty() {
            let mut read = table.audits(&missing, false).await?;
            if missing.contains(&newest) && !read.iter().any(|r| r.version == newest) {
                read.extend(table.audits(&[newest], true).await?);
            }
            let mut cache = self.history_cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|_, (at, _)| now.duration_since(*at) < HISTORY_CACHE_TTL);
            if cache.len() + read.len() > HISTORY_CACHE_SIZE {
                cache.clear();
            }
            for r in &read {
                cache.insert((role, r.version), (now, r.clone()));
            }
            // Only what was asked for, whatever the store answered.
            found.extend(
                read.into_iter()
                    .filter(|r| (low..=high).contains(&r.version)),
            );
        }
        found.sort_by_key(|r| std::cmp::Reverse(r.version));
        found.dedup_by_key(|r| r.version);
        Ok(found)
    }
}
