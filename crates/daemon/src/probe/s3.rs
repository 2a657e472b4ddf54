//! `s3`: `head_bucket`, or `roundtrip`: put, read back and delete a canary object
//! under `health/`, which proves the region accepts writes, not just that it answers.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::primitives::ByteStream;

use super::ProbeError;
use failover_config::S3Check;

pub struct S3Probe {
    client: aws_sdk_s3::Client,
    bucket: String,
    check: S3Check,
    /// Canary keys are `health/<owner>-<n>`: unique per instance, process and probe.
    owner: String,
    runs: AtomicU64,
}

impl S3Probe {
    pub fn new(client: aws_sdk_s3::Client, bucket: String, check: S3Check, owner: String) -> Self {
        Self {
            client,
            bucket,
            check,
            owner,
            runs: AtomicU64::new(0),
        }
    }

    pub async fn check(&self) -> Result<(), ProbeError> {
        match self.check {
            S3Check::HeadBucket => self
                .client
                .head_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| ProbeError::sdk("head_bucket", &self.bucket, &e)),
            S3Check::Roundtrip => self.roundtrip().await,
        }
    }

    async fn roundtrip(&self) -> Result<(), ProbeError> {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let key = format!("health/{}-{}", self.owner, n % 16);
        let body = format!("failover-monitor canary {}/{n}", self.owner);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(body.clone().into_bytes()))
            .send()
            .await
            .map_err(|e| ProbeError::sdk("put_object", &key, &e))?;
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| ProbeError::sdk("get_object", &key, &e))?
            .body
            .collect()
            .await
            .map_err(|e| fail("get_object", &key, e.to_string()))?
            .into_bytes();
        if got.as_ref() != body.as_bytes() {
            return Err(ProbeError::Unhealthy(format!(
                "get_object {key}: read back {} bytes that differ from what was written",
                got.len()
            )));
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| ProbeError::sdk("delete_object", &key, &e))?;
        Ok(())
    }
}

fn fail(op: &str, what: &str, why: String) -> ProbeError {
    ProbeError::Transport(format!("{op} {what}: {why}"))
}
