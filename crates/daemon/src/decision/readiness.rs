//! The secondary's readiness in the loop: the task that checks it
//! (`crate::readiness::run`), and what each report does: the policy's safety rule
//! reads its conclusion, status shows it, `failover_monitor_secondary_ready`
//! follows it.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{Daemon, LoopState};
use crate::readiness::{self, Report};
use failover_core::policy::SecondaryReadiness;

/// The readiness reports and the task that sends them (stopped with the loop).
pub(super) struct ReadinessInbox {
    pub(super) reports: mpsc::Receiver<Report>,
    task: Option<JoinHandle<()>>,
}

impl Drop for ReadinessInbox {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Daemon {
    /// Starts checking the secondary's readiness, when the backend has parts to
    /// check (without any, the readiness stays unknown and nothing is exported).
    pub(super) fn spawn_readiness(&self) -> ReadinessInbox {
        let (tx, reports) = mpsc::channel(2);
        let parts = self.backend.readiness(&self.settings);
        let task = (!parts.is_empty()).then(|| {
            tokio::spawn(readiness::run(
                parts,
                self.settings.readiness.every,
                self.backend.clock(),
                tx,
                self.gate.clone(),
            ))
        });
        ReadinessInbox { reports, task }
    }

    /// Takes in one run of the readiness check.
    pub(super) fn on_readiness(&mut self, report: Report, state: &mut LoopState) {
        let r = &report.readiness;
        let changed = state
            .readiness
            .as_ref()
            .is_none_or(|old| old.ready != r.ready || old.reasons != r.reasons);
        if changed {
            let reasons = r.reasons.join("; ");
            match &report.conclusion {
                SecondaryReadiness::Ready => info!(reasons = %reasons, "the secondary is ready"),
                SecondaryReadiness::NotReady(_) => {
                    warn!(reasons = %reasons, "the secondary is NOT ready")
                }
                SecondaryReadiness::Unknown => {
                    warn!(reasons = %reasons, "the secondary's readiness is unknown")
                }
            }
        }
        self.metrics.set_secondary_ready(match report.conclusion {
            SecondaryReadiness::Ready => Some(true),
            SecondaryReadiness::NotReady(_) => Some(false),
            SecondaryReadiness::Unknown => None,
        });
        self.policy.observe_readiness(report.conclusion);
        state.readiness = Some(report.readiness);
        state.publish_now = true;
    }
}
