//! `http`: GET a URL; the status must be one of `expect_status` and, when set, the
//! body must contain `expect_body`.

use std::time::Duration;

use super::ProbeError;

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
            url: reqwest::Url::parse(&url).map_err(|e| format!("invalid url {url:?}: {e}")),
            expect_status,
            expect_body,
            timeout,
        }
    }

    pub async fn check(&self) -> Result<(), ProbeError> {
        let url = self
            .url
            .as_ref()
            .map_err(|e| ProbeError::Transport(e.clone()))?;
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

    fn transport(&self, e: &reqwest::Error) -> ProbeError {
        if e.is_timeout() {
            ProbeError::Timeout(self.timeout)
        } else {
            ProbeError::Transport(crate::aws::source_chain(e))
        }
    }
}
