//! The simulation's SIGSTOP, as a seam: a [`Gate`] each task of the daemon passes
//! before it acts and before it reports. A real process's gate is always open.

/// Where the tasks of a process stop while the process is stopped (SIGSTOP) in the
/// simulation; always open for a real process. Each task passes it before it acts
/// and before it reports, so a stopped instance neither sends nor takes in anything
/// until it is resumed, and then carries on with what it had, as a stopped process
/// does.
#[derive(Debug, Clone, Default)]
pub struct Gate(Option<tokio::sync::watch::Receiver<bool>>);

impl Gate {
    /// A gate that is always open.
    pub fn open() -> Self {
        Self(None)
    }

    /// A gate closed while `stopped` holds true.
    pub fn closed_while(stopped: tokio::sync::watch::Receiver<bool>) -> Self {
        Self(Some(stopped))
    }

    /// Waits while the process is stopped.
    pub async fn pass(&self) {
        if let Some(rx) = &self.0 {
            let mut rx = rx.clone();
            let _ = rx.wait_for(|stopped| !*stopped).await;
        }
    }
}
