//! Measuring replication from the primary to the secondary while fenced: the acting
//! instance writes its own canaries (a fresh nonce) in the primary's config table
//! and data table, and looks for them in the secondary's. Everything written in the
//! primary before the canaries has replicated once both arrived. Each instance has
//! its own canary keys, so a measurement is never confused by another's.

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
    pub primary: Arc<dyn CanaryStore>,
    pub secondary: Arc<dyn CanaryStore>,
}

/// This instance's canaries.
#[derive(Clone, Default)]
pub struct Canaries(pub Vec<CanaryPair>);

impl Actuator {
    /// Writes every canary with a fresh nonce in the primary and waits up to `wait`
    /// for the secondary to show them all. Returns (drained, lag, what happened).
    pub async fn measure_replication(&self, wait: Duration) -> (bool, Option<Duration>, String) {
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
                    format!("canaries replicated in {} ms", lag.as_millis()),
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
