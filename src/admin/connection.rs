//! One admin connection, from accept to close, under its deadlines: the TLS handshake
//! and the first request's head within `header_read_timeout` of the accept; between
//! requests, the next one started within `idle_timeout` and its head complete within
//! `header_read_timeout` of its first byte; no request taken after `max_connection_age`
//! less the request timeout, and the socket closed at `max_connection_age` whatever it
//! is doing.
//!
//! The deadlines are kept here, outside hyper, because hyper's own header timeout
//! cannot tell a kept-alive connection's wait from a slow head: [`Phase`] follows the
//! connection (bytes read, a request handed to the router, its answer), and the loop
//! in [`serve`] closes the socket when the phase's deadline passes. A handler's own
//! time is bounded by the router's request timeout.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep_until};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;
use tracing::debug;

use super::REQUEST_TIMEOUT;
use failover_config::AdminLimits;

/// The most a connection buffers of a request (its head and the body in flight);
/// heads are small and bodies are capped at [`super::BODY_LIMIT`].
const MAX_BUF: usize = 64 * 1024;

/// Where a connection is, as far as its deadlines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request's head (first, the TLS handshake) must be complete by then.
    Head(Instant),
    /// The router has a request: only the connection's age bounds it here.
    Busy,
    /// Answered, kept alive: the next request must start by then.
    Idle(Instant),
}

/// A connection's phase, shared by its socket (bytes read), its service (requests
/// handed over and answered) and the loop that enforces the deadlines.
struct Clock {
    phase: Mutex<Phase>,
    /// Woken when the deadline moves earlier.
    changed: Notify,
    limits: AdminLimits,
}

impl Clock {
    fn new(accepted: Instant, limits: AdminLimits) -> Self {
        Self {
            phase: Mutex::new(Phase::Head(accepted + limits.header_read_timeout)),
            changed: Notify::new(),
            limits,
        }
    }

    fn set(&self, f: impl FnOnce(Phase) -> Phase) {
        // A poisoned lock only means a panic elsewhere mid-update; the phase is a
        // plain value, still whole.
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let next = f(*phase);
        if next != *phase {
            *phase = next;
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: on a kept-alive connection, a request has begun.
    fn read_some(&self) {
        let header = self.limits.header_read_timeout;
        self.set(|p| match p {
            Phase::Idle(_) => Phase::Head(Instant::now() + header),
            other => other,
        });
    }

    fn request_started(&self) {
        self.set(|_| Phase::Busy);
    }

    fn request_answered(&self) {
        let idle = self.limits.idle_timeout;
        self.set(|_| Phase::Idle(Instant::now() + idle));
    }

    /// The current phase's deadline, if it has one.
    fn deadline(&self) -> Option<Instant> {
        match *self.phase.lock().unwrap_or_else(|e| e.into_inner()) {
            Phase::Head(by) | Phase::Idle(by) => Some(by),
            Phase::Busy => None,
        }
    }
}

/// The socket, telling the clock when bytes arrive.
struct Watched {
    stream: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.read_some();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// What a connection is served with.
#[derive(Clone)]
pub(super) struct Serving {
    pub router: Router,
    pub tls: Option<TlsAcceptor>,
    pub limits: AdminLimits,
    /// Becomes true when the server stops: finish the request in flight, take no more.
    pub drain: watch::Receiver<bool>,
}

/// Why a connection ended before its peer or hyper ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// A deadline of its phase passed.
    Deadline,
    /// `max_connection_age`.
    Age,
    /// The server is stopping and the connection had not begun HTTP yet.
    Draining,
}

/// Serves one accepted connection until it ends, one of its deadlines passes or the
/// server drains it.
pub(super) async fn serve(stream: TcpStream, serving: Serving) {
    let accepted = Instant::now();
    let limits = serving.limits;
    let clock = Arc::new(Clock::new(accepted, limits));
    let io = Watched {
        stream,
        clock: clock.clone(),
    };
    let end = accepted + limits.max_connection_age;
    let ended = match serving.tls.clone() {
        None => http(TokioIo::new(io), &clock, end, serving).await,
        Some(acceptor) => {
            let handshake = acceptor.accept(io);
            let mut drain = serving.drain.clone();
            let tls = tokio::select! {
                tls = handshake => tls,
                () = sleep_until(clock.deadline().unwrap_or(end)) => {
                    return debug!(cut = ?Cut::Deadline, "admin connection: TLS handshake too slow");
                }
                _ = drain.wait_for(|stop| *stop) => {
                    return debug!(cut = ?Cut::Draining, "admin connection closed");
                }
            };
            match tls {
                Ok(tls) => http(TokioIo::new(tls), &clock, end, serving).await,
                Err(e) => return debug!(error = %e, "admin connection: TLS handshake failed"),
            }
        }
    };
    if let Err(cut) = ended {
        debug!(?cut, "admin connection closed");
    }
}

/// HTTP/1.1 on `io` under the clock's deadlines until `end`.
async fn http<I>(
    io: TokioIo<I>,
    clock: &Arc<Clock>,
    end: Instant,
    serving: Serving,
) -> Result<(), Cut>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Serving {
        router, mut drain, ..
    } = serving;
    let on_request = clock.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut router = router.clone();
        let clock = on_request.clone();
        clock.request_started();
        async move {
            let answer = router.call(req).await;
            clock.request_answered();
            answer
        }
    });
    // No hyper timer: the deadlines are the loop's below.
    let conn = http1::Builder::new()
        .header_read_timeout(None)
        .max_buf_size(MAX_BUF)
        .serve_connection(io, service);
    tokio::pin!(conn);
    // Past this, a request could not finish before `end`: take no more (the first
    // request is always taken: the config makes the age long enough for it).
    let first_head_by = clock.deadline().unwrap_or(end);
    let last_call = end
        .checked_sub(REQUEST_TIMEOUT)
        .map_or(first_head_by, |t| t.max(first_head_by));
    let mut closing = false;
    loop {
        let by = clock.deadline().map_or(end, |d| d.min(end));
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    debug!(error = %e, "admin connection ended");
                }
                return Ok(());
            }
            () = sleep_until(by) => {
                let now = Instant::now();
                if now >= end {
                    return Err(Cut::Age);
                }
                if clock.deadline().is_some_and(|d| d <= now) {
                    return Err(Cut::Deadline);
                }
            }
            () = clock.changed.notified() => {}
            _ = stop_taking(&mut drain, last_call), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Resolves when the server drains or the connection reaches `last_call`.
async fn stop_taking(drain: &mut watch::Receiver<bool>, last_call: Instant) {
    tokio::select! {
        _ = drain.wait_for(|stop| *stop) => {}
        () = sleep_until(last_call) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> AdminLimits {
        AdminLimits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(60),
            max_connections: 4,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_phase_sets_the_deadline() {
        let t0 = Instant::now();
        let clock = Clock::new(t0, limits());
        // a new connection: its first head within header_read_timeout of the accept
        assert_eq!(clock.deadline(), Some(t0 + Duration::from_secs(5)));
        // bytes of that head do not extend it
        tokio::time::advance(Duration::from_secs(1)).await;
        clock.read_some();
        assert_eq!(clock.deadline(), Some(t0 + Duration::from_secs(5)));
        // a request in the router has no deadline here
        clock.request_started();
        assert_eq!(clock.deadline(), None);
        clock.read_some();
        assert_eq!(clock.deadline(), None, "body bytes change nothing");
        // answered: the next request must start within idle_timeout
        tokio::time::advance(Duration::from_secs(2)).await;
        clock.request_answered();
        let t3 = t0 + Duration::from_secs(3);
        assert_eq!(clock.deadline(), Some(t3 + Duration::from_secs(10)));
        // its first byte: the head within header_read_timeout of it
        tokio::time::advance(Duration::from_secs(4)).await;
        clock.read_some();
        assert_eq!(
            clock.deadline(),
            Some(t3 + Duration::from_secs(4) + Duration::from_secs(5))
        );
    }
}
