//! Measuring replication from the primary to the secondary while fenced: the acting
//! instance writes its own canary items (a fresh nonce) in the primary's config table
//! and data table, and looks for them in the secondary's. What is measured is those
//! items' lag, nothing more: DynamoDB global tables replicate items one by one with
//! no order across items, so other items written before them may still be on their
//! way, and S3 objects are not measured at all. Each instance has its own canary
//! keys, so a measurement is never confused by another's.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Actuator;
use super::store::CanaryStore;

/// One table's canary in both regions.
#[derive(Clone)]
pub struct CanaryPair {
    /// Which table, for the report ("config", "data").
    pub table: &'static str,
    /// The canary item's key in that table.
    pub key: String,
    pub primary: Arc<dyn CanaryStore>,
    pub secondary: Arc<dyn CanaryStore>,
}

/// This instance's canaries.
#[derive(Clone, Default)]
pub struct Canaries(pub Vec<CanaryPair>);

/// One measurement: whether every canary item arrived, their lag, which items.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub canary_arrived: bool,
    pub lag: Option<Duration>,
    /// `<table>: <key>` of every canary item measured.
    pub items: Vec<String>,
    pub detail: String,
}

impl Actuator {
    /// Writes every canary with a fresh nonce in the primary and waits up to `wait`
    /// for the secondary to show them all.
    pub async fn measure_replication(&self, wait: Duration) -> Measurement {
        let pairs = &self.canaries.0;
        let items = pairs
            .iter()
            .map(|c| format!("{}: {}", c.table, c.key))
            .collect();
        let (canary_arrived, lag, detail) = self.measure(wait).await;
        Measurement {
            canary_arrived,
            lag,
            items,
            detail,
        }
    }

    async fn measure(&self, wait: Duration) -> (bool, Option<Duration>, String) {
        let pairs = &self.canaries.0;
        if pairs.is_empty() {
            return (false, None, "no canary configured".into());
        }
        let nonce = self.random_hex();
        let started = Instant::now();
        for c in pairs {
            if let Err(e) = c.primary.put(&nonce).await {
                return (
                    false,
                    None,
                    format!("{} canary not written in the primary: {e}", c.table),
                );
            }
        }
        let mut arrived = vec![false; pairs.len()];
        loop {
            for (c, seen) in pairs.iter().zip(arrived.iter_mut()) {
                if *seen {
                    continue;
                }
                match c.secondary.read().await {
                    Ok(Some(n)) if n == nonce => *seen = true,
                    Ok(_) => {}
                    Err(e) => {
                        return (
                            false,
                            None,
                            format!("{} canary not readable in the secondary: {e}", c.table),
                        );
                    }
                }
            }
            if arrived.iter().all(|a| *a) {
                let lag = started.elapsed();
                return (
                    true,
                    Some(lag),
                    format!(
                        "every canary item reached the secondary {} ms after it was written \
                         (those items only: other items and S3 objects are not measured)",
                        lag.as_millis()
                    ),
                );
            }
            if started.elapsed() >= wait {
                let missing: Vec<&str> = pairs
                    .iter()
                    .zip(&arrived)
                    .filter(|(_, a)| !**a)
                    .map(|(c, _)| c.table)
                    .collect();
                return (
                    false,
                    None,
                    format!(
                        "{} canary not seen in the secondary after {} ms",
                        missing.join(" and "),
                        wait.as_millis()
                    ),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
