//! The sync task: reads (and reconciles) both copies of the item every `every`, or at
//! once when asked, and reports each pass to the decision loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tracing::debug;

use super::{Actuator, SyncReport};

/// Runs sync passes until `tx`'s receiver is gone.
pub async fn sync_loop(
    actuator: Arc<Actuator>,
    every: Duration,
    now: Arc<Notify>,
    tx: mpsc::Sender<SyncReport>,
) {
    loop {
        let report = actuator.sync().await;
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
