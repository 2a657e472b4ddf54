//! The application as its clients reach it, as a seam: each region's state API
//! (what a client reads to pick a region), a signed write through its store API
//! that must read back, and a photo put, get and delete in its bucket. The recovery
//! report dates "clients served again" with it; a drill verifies the new region
//! with it. [`AwsClientPath`] is the real one; the test kit has one on its tables.
//!
//! Architecture Invariant: nothing here writes the config item or anything the
//! monitors coordinate with; the write is one comment of this instance's own on a
//! photo id no photo has, the photo one object under `failover-monitor/`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials;
use serde::Deserialize;

use failover_aws::RegionClients;
use failover_config::{ClientPathSettings, Settings};
use failover_core::model::{AppState, Role};

/// The photo id the client-path write comments on: no photo has it, so the page
/// never shows the comment.
pub const CHECK_PHOTO: &str = "failover-monitor-check";

/// What a region's state API answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientState {
    pub state: AppState,
    /// The item's version, when the API gives it.
    pub version: Option<u64>,
}

/// The client path of both regions.
#[async_trait]
pub trait ClientPath: Send + Sync {
    /// The region has a state API to read.
    fn reads(&self, region: Role) -> bool;

    /// The region has a store API to write through.
    fn writes(&self, region: Role) -> bool;

    /// The state the region's state API answers now.
    async fn state(&self, region: Role) -> Result<ClientState, String>;

    /// A signed write of comment `comment_id` with text `nonce` through the
    /// region's store API, then a read that must return it.
    async fn write(&self, region: Role, comment_id: &str, nonce: &str) -> Result<(), String>;

    /// A small photo put at `key` in the region's bucket, read back and deleted.
    async fn photo(&self, region: Role, key: &str) -> Result<(), String>;
}

/// A PNG of one pixel: the drill's photo.
pub const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The client path over HTTP and the SDK.
pub struct AwsClientPath {
    cfg: ClientPathSettings,
    http: reqwest::Client,
    regions: [RegionClients; 2],
    names: [String; 2],
    timeout: Duration,
}

impl AwsClientPath {
    pub fn new(settings: &Settings, regions: [RegionClients; 2], http: reqwest::Client) -> Self {
        Self {
            cfg: settings.client_path.clone(),
            http,
            regions,
            names: [
                settings.regions.primary.name.clone(),
                settings.regions.secondary.name.clone(),
            ],
            timeout: settings.monitor.write_timeout,
        }
    }

    fn url(
        &self,
        region: Role,
        which: fn(&failover_config::ClientRegion) -> Option<&String>,
    ) -> Result<&str, String> {
        which(self.cfg.region(region))
            .map(String::as_str)
            .ok_or_else(|| format!("no {region} URL in [client_path]"))
    }

    async fn get(&self, url: &str) -> Result<String, String> {
        let answer = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "GET {}: {}",
                    failover_core::redact::redact_url(url),
                    e.without_url()
                )
            })?;
        let status = answer.status();
        let body = answer
            .text()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !status.is_success() {
            return Err(format!(
                "HTTP {}: {}",
                status.as_u16(),
                failover_core::report::cut(&body, 120)
            ));
        }
        Ok(body)
    }
}

#[derive(Deserialize)]
struct StateAnswer {
    state: Option<String>,
    version: Option<serde_json::Value>,
}

/// A state API's answer: `{"state": "...", "version": N}` (the version may be a
/// number or a string, or absent).
pub fn parse_state(body: &str) -> Result<ClientState, String> {
    let a: StateAnswer = serde_json::from_str(body).map_err(|e| {
        format!(
            "not a state answer ({e}): {}",
            failover_core::report::cut(body, 120)
        )
    })?;
    let state = a
        .state
        .ok_or("the answer has no state (no config item?)")?
        .parse::<AppState>()
        .map_err(|e| e.to_string())?;
    let version = match a.version {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(ClientState { state, version })
}

#[async_trait]
impl ClientPath for AwsClientPath {
    fn reads(&self, region: Role) -> bool {
        self.cfg.region(region).state_url.is_some()
    }

    fn writes(&self, region: Role) -> bool {
        self.cfg.region(region).store_url.is_some()
    }

    async fn state(&self, region: Role) -> Result<ClientState, String> {
        let url = self.url(region, |r| r.state_url.as_ref())?;
        parse_state(&self.get(url).await?)
    }

    async fn write(&self, region: Role, comment_id: &str, nonce: &str) -> Result<(), String> {
        let base = self.url(region, |r| r.store_url.as_ref())?;
        let url = format!("{base}/comments/{CHECK_PHOTO}");
        let body = serde_json::json!({
            "commentId": comment_id,
            "message": nonce,
            "photoId": CHECK_PHOTO,
            "user": "failover-monitor",
        })
        .to_string();
        let provider = self.regions[region as usize]
            .sdk()
            .credentials_provider()
            .ok_or("no AWS credentials to sign with")?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials to sign with ({e})"))?;
        let headers = failover_aws::sign::sign_post(
            &url,
            &body,
            &self.names[region as usize],
            creds,
            SystemTime::now(),
        )?;
        let mut request = self.http.post(&url).body(body).timeout(self.timeout);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !answer.status().is_success() {
            return Err(format!("POST /comments: HTTP {}", answer.status().as_u16()));
        }
        let listed = self.get(&url).await?;
        if listed.contains(nonce) {
            Ok(())
        } else {
            Err("the comment written does not read back".into())
        }
    }

    async fn photo(&self, region: Role, key: &str) -> Result<(), String> {
        let s3 = self.regions[region as usize].s3(self.timeout);
        let bucket = &self.cfg.region(region).bucket;
        let e = |op: &str, e: String| format!("s3:{op} {bucket}/{key}: {e}");
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .content_type("image/png")
            .body(PIXEL_PNG.to_vec().into())
            .send()
            .await
            .map_err(|x| e("PutObject", failover_aws::describe(&x)))?;
        let got = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|x| e("GetObject", failover_aws::describe(&x)))?;
        let bytes = got
            .body
            .collect()
            .await
            .map_err(|x| e("GetObject", x.to_string()))?
            .into_bytes();
        s3.delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|x| e("DeleteObject", failover_aws::describe(&x)))?;
        if bytes.as_ref() == PIXEL_PNG {
            Ok(())
        } else {
            Err(e("GetObject", "the photo read back differs".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_answers_read_as_a_client_reads_them() {
        assert_eq!(
            parse_state(r#"{"state": "failover", "version": "3"}"#),
            Ok(ClientState {
                state: AppState::Failover,
                version: Some(3)
            })
        );
        assert_eq!(
            parse_state(r#"{"state": "active"}"#).map(|s| s.version),
            Ok(None)
        );
        assert!(parse_state("{}").unwrap_err().contains("no state"));
        assert!(
            parse_state("<html>")
                .unwrap_err()
                .starts_with("not a state answer")
        );
    }
}
