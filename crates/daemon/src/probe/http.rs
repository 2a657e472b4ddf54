//! `http`: GET a URL; the status must be one of `expect_status` and, when set, the
//! body must contain `expect_body`.

use std::time::Duration;

use super::ProbeError;
use failover_core::redact::{redact_url, redact_urls};

/// Bodies are read up to this size to look for `expect_body`.
const MAX_BODY: usize = 64 * 1024;

pub struct HttpProbe {
    client: reqwest::Client,
    /// Parsed once: parsing (IDNA included) is a measurable part of a probe's cost.
    url: Result<reqwest::Url, String>,
    expect_status: Vec<u16>,
    expect_body: Option<String>,
    timeout: Duration,
}

impl HttpProbe {
    pub fn new(
        client: reqwest::Client,
        url: String,
        expect_status: Vec<u16>,
        expect_body: Option<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            url: reqwest::Url::parse(&url)
                .map_err(|e| format!("invalid url {:?}: {e}", redact_url(&url))),
            expect_status,
            expect_body,
            timeout,
        }
    }

    pub async fn check(&self) -> Result<(), ProbeError> {
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

    /// A failed request: a timeout, or the network or server failed (about the
    /// region); a request the client could not even build is about the monitor.
    fn transport(&self, e: &reqwest::Error) -> ProbeError {
        if e.is_timeout() {
            ProbeError::Timeout(self.timeout)
        } else if e.is_builder() {
            ProbeError::Caller(redact_urls(&failover_aws::source_chain(e)))
        } else {
            ProbeError::Transport(redact_urls(&failover_aws::source_chain(e)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real reqwest failure (a refused connection on loopback) names its URL; the
    /// probe's error keeps the host and path and drops the credentials and the query.
    #[tokio::test]
    async fn transport_errors_do_not_carry_credentials_or_queries() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let probe = HttpProbe::new(
            reqwest::Client::new(),
            format!("http://user:hunter2@127.0.0.1:{port}/health?X-Amz-Signature=hunter2"),
            vec![200],
            None,
            Duration::from_secs(5),
        );
        let err = probe.check().await.unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.contains(&format!("http://127.0.0.1:{port}/health?<redacted>")),
            "{err}"
        );

        let bad = HttpProbe::new(
            reqwest::Client::new(),
            "http://user:hunter2@exa mple.com/?k=hunter2".into(),
            vec![200],
            None,
            Duration::from_secs(5),
        );
        let err = bad.check().await.unwrap_err().to_string();
        assert!(err.starts_with("invalid url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
