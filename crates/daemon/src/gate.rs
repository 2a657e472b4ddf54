//! Where a process's tasks wait while the process is stopped, as a seam: each task
//! of the daemon passes its [`Gate`] before it acts and before it reports. A real
//! process's gate is always open (a real SIGSTOP stops the threads themselves); the
//! simulation (`failover-testkit`) puts a [`Pause`] behind it to stop one instance
//! among several in one test process.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

/// What a stopped process's tasks wait on.
#[async_trait]
pub trait Pause: Send + Sync {
    /// Returns once the process is running (at once when it is).
    async fn wait_while_stopped(&self);
}

/// A task's gate: always open in production, a [`Pause`] in the simulation. Passing
/// an open gate costs a branch, no allocation.
#[derive(Clone, Default)]
pub struct Gate(Option<Arc<dyn Pause>>);

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Gate(pausable)"
        } else {
            "Gate(open)"
        })
    }
}

impl Gate {
    /// A gate that is always open.
    pub fn open() -> Self {
        Self(None)
    }

    /// A gate that waits on `pause`.
    pub fn pausable(pause: Arc<dyn Pause>) -> Self {
        Self(Some(pause))
    }

    /// Waits while the process is stopped.
    pub async fn pass(&self) {
        if let Some(p) = &self.0 {
            p.wait_while_stopped().await;
        }
    }
}
