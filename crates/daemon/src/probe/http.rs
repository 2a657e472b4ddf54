//! `http`: GET a URL; the status must be one of `expect_status` and, when set, the
//! body must contain `expect_body`.
//!
//! Plain `http://` URLs go the lean way (`wire.rs`): the request encoded once,
//! kept-alive connections shared by the probes of one host and port, the answer read
//! only as far as the check needs. `https://` URLs (rustls, its sessions resumed),
//! URLs with credentials, redirects and HTTP proxies from the environment go through
//! reqwest, as they always did.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::ProbeError;
use super::wire::{Conn, Endpoint, Head, MAX_BODY, WireError};
use failover_core::redact::{redact_url, redact_urls};

/// The plain-HTTP endpoints by host and port, while a probe uses them.
type Endpoints = Mutex<HashMap<(String, u16), Weak<Endpoint>>>;

/// The HTTP client all `http` probes share: reqwest's (one pool for TLS), and the
/// plain-HTTP endpoints by host and port.
#[derive(Clone)]
pub struct HttpClient {
    reqwest: reqwest::Client,
    endpoints: Arc<Endpoints>,
    /// Plain HTTP may bypass reqwest: no HTTP proxy is set in the environment.
    lean: bool,
}

/// Proxy variables reqwest reads for `http://` URLs.
const PROXY_VARS: &[&str] = &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

impl HttpClient {
    pub fn new(reqwest: reqwest::Client) -> Self {
        let proxied = PROXY_VARS
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        Self {
            reqwest,
            endpoints: Arc::default(),
            lean: !proxied,
        }
    }

    /// The reqwest client (TLS, redirects, proxies).
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.reqwest
    }

    /// The shared endpoint of `host` and `port`.
    fn endpoint(&self, host: &str, port: u16) -> Arc<Endpoint> {
        let mut map = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get(&(host.to_owned(), port)).and_then(Weak::upgrade) {
            return e;
        }
        map.retain(|_, e| e.strong_count() > 0);
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        let e = Arc::new(Endpoint::new(host, port, literal));
        map.insert((host.to_owned(), port), Arc::downgrade(&e));
        e
    }
}

/// A plain-HTTP target: its endpoint and the request, encoded once.
struct Lean {
    endpoint: Arc<Endpoint>,
    request: Box<[u8]>,
}

impl Lean {
    /// The lean way to `url`, when it can take it: plain HTTP, no credentials.
    fn of(client: &HttpClient, url: &reqwest::Url) -> Option<Self> {
        if !client.lean || url.scheme() != "http" || !url.username().is_empty() {
            return None;
        }
        if url.password().is_some() {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let request = format!(
            "GET {target} HTTP/1.1\r\nhost: {authority}\r\nuser-agent: {}\r\naccept: */*\r\n\r\n",
            super::USER_AGENT
        );
        Some(Self {
            endpoint: client.endpoint(host, port),
            request: request.into_bytes().into_boxed_slice(),
        })
    }
}

pub struct HttpProbe {
    client: reqwest::Client,
    /// Parsed once: parsing (IDNA included) is a measurable part of a probe's cost.
    url: Result<reqwest::Url, String>,
    lean: Option<Lean>,
    expect_status: Vec<u16>,
    expect_body: Option<String>,
    timeout: Duration,
}

impl HttpProbe {
    pub fn new(
        client: &HttpClient,
        url: String,
        expect_status: Vec<u16>,
        expect_body: Option<String>,
        timeout: Duration,
    ) -> Self {
        let url = reqwest::Url::parse(&url)
            .map_err(|e| format!("invalid url {:?}: {e}", redact_url(&url)));
        Self {
            client: client.reqwest.clone(),
            lean: url.as_ref().ok().and_then(|u| Lean::of(client, u)),
            url,
            expect_status,
            expect_body,
            timeout,
        }
    }

    pub async fn check(&self) -> Result<(), ProbeError> {
        match &self.lean {
            Some(lean) => self.check_lean(lean).await,
            // Boxed: the slot of every run holds this future; keep it small.
            None => Box::pin(self.check_reqwest()).await,
        }
    }

    /// The lean way: a pooled connection (or a new one), the pre-encoded GET.
    async fn check_lean(&self, lean: &Lean) -> Result<(), ProbeError> {
        let mut pooled = lean.endpoint.checkout();
        loop {
            let fresh = pooled.is_none();
            let mut conn = match pooled.take() {
                Some(c) => c,
                None => Box::pin(lean.endpoint.connect())
                    .await
                    .map_err(|e| self.connect_failed(&e))?,
            };
            match conn.send(&lean.request).await {
                Ok(head) => return self.judge(lean, conn, head).await,
                // A kept-alive connection the server had closed: once more, anew.
                Err(WireError::BeforeAnswer(_)) if !fresh => {}
                Err(e) => return Err(self.failed(&e.to_string())),
            }
        }
    }

    /// The status, then the body as far as `expect_body` needs it; the connection
    /// goes back to the pool when its answer was read to the end.
    async fn judge(&self, lean: &Lean, mut conn: Conn, head: Head) -> Result<(), ProbeError> {
        let give_back = |conn: Conn, reusable: bool| {
            if reusable {
                lean.endpoint.checkin(conn);
            }
        };
        if head.redirect() {
            let reusable = conn.skip_buffered_body(&head);
            give_back(conn, reusable);
            // reqwest follows it, wherever it leads (TLS included).
            return Box::pin(self.check_reqwest()).await;
        }
        if !self.expect_status.contains(&head.status) {
            let reusable = conn.skip_buffered_body(&head);
            give_back(conn, reusable);
            return Err(ProbeError::Status {
                got: head.status,
                expected: self.expect_status.clone(),
            });
        }
        let Some(needle) = &self.expect_body else {
            let reusable = conn.skip_buffered_body(&head);
            give_back(conn, reusable);
            return Ok(());
        };
        let (found, reusable) = conn
            .find_in_body(&head, needle.as_bytes())
            .await
            .map_err(|e| self.failed_body(&e))?;
        give_back(conn, reusable);
        if found {
            Ok(())
        } else {
            Err(ProbeError::Body(needle.clone()))
        }
    }

    /// The way through reqwest.
    async fn check_reqwest(&self) -> Result<(), ProbeError> {
        let url = self
            .url
            .as_ref()
            .map_err(|e| ProbeError::Caller(e.clone()))?;
        // The caller bounds the whole check with the probe's timeout.
        let mut resp = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = resp.status().as_u16();
        if !self.expect_status.contains(&status) {
            return Err(ProbeError::Status {
                got: status,
                expected: self.expect_status.clone(),
            });
        }
        let Some(needle) = &self.expect_body else {
            return Ok(());
        };
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_BODY {
                break;
            }
        }
        if String::from_utf8_lossy(&body).contains(needle.as_str()) {
            Ok(())
        } else {
            Err(ProbeError::Body(needle.clone()))
        }
    }

    /// The lean way could not connect: about the region, unless the monitor ran out
    /// of its own files, ports or buffers.
    fn connect_failed(&self, e: &std::io::Error) -> ProbeError {
        if own_limit(e) {
            let url = self.url.as_ref().map(|u| u.as_str()).unwrap_or_default();
            return ProbeError::Caller(redact_urls(&format!(
                "tcp connect for url ({url}) failed on the monitor's own limit: {e}"
            )));
        }
        self.failed(&format!("tcp connect error: {e}"))
    }

    /// The lean way failed on the network or got no HTTP answer: about the region.
    fn failed(&self, why: &str) -> ProbeError {
        let url = self.url.as_ref().map(|u| u.as_str()).unwrap_or_default();
        ProbeError::Transport(redact_urls(&format!(
            "error sending request for url ({url}): {why}"
        )))
    }

    fn failed_body(&self, e: &WireError) -> ProbeError {
        let url = self.url.as_ref().map(|u| u.as_str()).unwrap_or_default();
        ProbeError::Transport(redact_urls(&format!(
            "error reading the body from url ({url}): {e}"
        )))
    }

    /// A failed request: a timeout, or the network or server failed (about the
    /// region); a request the client could not even build is about the monitor.
    fn transport(&self, e: &reqwest::Error) -> ProbeError {
        if e.is_timeout() {
            ProbeError::Timeout(self.timeout)
        } else if e.is_builder() || caused_by_own_limit(e) {
            ProbeError::Caller(redact_urls(&failover_aws::source_chain(e)))
        } else {
            ProbeError::Transport(redact_urls(&failover_aws::source_chain(e)))
        }
    }
}

#[cfg(test)]
mod tests;

/// An error of the monitor's own host, not of the network or the region: out of file
/// descriptors (the process's or the system's), of local ports, or of socket buffers.
pub(crate) fn own_limit(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::AddrNotAvailable
        || matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
}

/// One of `e`'s causes is [`own_limit`] (an `io::Error` wrapping another is looked
/// into: its `source` skips the error it wraps).
fn caused_by_own_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && (own_limit(io) || io.get_ref().is_some_and(|inner| caused_by_own_limit(inner)))
        {
            return true;
        }
        cause = c.source();
    }
    false
}
