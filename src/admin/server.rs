//! Serving the admin API: the accept loop, the connection cap, the drain on
//! shutdown, and the thread of its own that keeps all of it away from the probes.
//!
//! Architecture Invariant: the admin server never runs on the daemon's runtime. It
//! has a current-thread runtime on a dedicated OS thread ([`spawn`]): a flood of
//! connections, slow heads or TLS handshakes costs that thread's time, never a probe
//! task's slot. What the handlers need of the daemon crosses over through
//! [`Handle`](failover_daemon::control::Handle)'s channels, which work across
//! runtimes; the AWS calls of `/v1/history` are handed to the daemon's runtime, which
//! owns the SDK's connection pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::REQUEST_TIMEOUT;
use super::connection::{self, Serving};
use super::tls::ServerTls;
use failover_config::AdminLimits;

/// How long the accept loop rests after an error accepting (out of file descriptors):
/// the connection waiting in the backlog would fail again at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning about refused connections per this long.
const REFUSAL_REPORT: Duration = Duration::from_secs(10);

/// The admin API's listener and what its connections are served with.
pub struct Server {
    pub listener: TcpListener,
    pub router: Router,
    /// None: plain HTTP.
    pub tls: Option<Arc<ServerTls>>,
    pub limits: AdminLimits,
}

impl Server {
    /// Serves until `shutdown` resolves, then drains: no new connection, the
    /// requests in flight answered (each connection closes after its answer), for at
    /// most the request timeout plus `header_read_timeout`.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Server {
            listener,
            router,
            tls,
            limits,
        } = self;
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let (drain_tx, drain_rx) = watch::channel(false);
        let serving = Serving {
            router,
            tls: None,
            limits,
            drain: drain_rx,
        };
        let mut refused = Refusals::default();
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        warn!(error = %e, "admin server: cannot accept a connection");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            // Beyond the cap a connection is closed at once: it would cost a file
            // descriptor and memory for as long as its deadlines allow.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                refused.count(limits.max_connections);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let mut serving = serving.clone();
            serving.tls = tls.as_ref().map(|t| t.acceptor());
            tokio::spawn(async move {
                connection::serve(stream, serving).await;
                drop(slot);
            });
        }
        drop(listener);
        let _ = drain_tx.send(true);
        // Every slot back: every connection closed.
        let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
        let limit = REQUEST_TIMEOUT + limits.header_read_timeout;
        if tokio::time::timeout(limit, slots.acquire_many(all))
            .await
            .is_err()
        {
            warn!(
                open = limits.max_connections - slots.available_permits(),
                "admin server: connections still open after the drain; closing them"
            );
        }
        Ok(())
    }
}

/// Counts connections refused at the cap, and says so now and then.
#[derive(Default)]
struct Refusals {
    since_report: u64,
    reported: Option<Instant>,
}

impl Refusals {
    fn count(&mut self, cap: usize) {
        self.since_report += 1;
        debug!(cap, "admin server: connection refused at the cap");
        let now = Instant::now();
        if self.reported.is_none_or(|at| now - at >= REFUSAL_REPORT) {
            warn!(
                cap,
                refused = self.since_report,
                "admin server: connections refused, admin.max_connections are open"
            );
            self.reported = Some(now);
            self.since_report = 0;
        }
    }
}

/// Runs `server` on a current-thread runtime in a thread of its own until `shutdown`
/// resolves; the receiver gets its result once it has drained. The listener must
/// have been bound on any runtime; it moves to the new one.
pub fn spawn(
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<oneshot::Receiver<std::io::Result<()>>> {
    let listener = server.listener.into_std()?;
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("admin-http".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|rt| {
                    rt.block_on(async move {
                        let listener = TcpListener::from_std(listener)?;
                        Server { listener, ..server }.serve(shutdown).await
                    })
                });
            if let Err(e) = &result {
                error!(error = %e, "admin server stopped");
            }
            let _ = done_tx.send(result);
        })?;
    Ok(done_rx)
}

#[cfg(test)]
mod tests;
