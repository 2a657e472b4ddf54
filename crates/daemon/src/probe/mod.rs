//! Probes: one file per kind, all behind the [`Probe`] trait (the seam tests and the
//! simulation script), and the scheduler (`schedule.rs`) that runs every probe from
//! one task, each on its own interval with jitter and a timeout. Plain-HTTP checks
//! speak HTTP/1.1 themselves (`wire.rs`).
//!
//! A failed check is data, not an error of the program: it becomes an
//! [`Observation`] with `ok = false` and the reason, and the policy's hysteresis
//! decides what it means.
//!
//! Architecture Invariant: an observation's error text has been through
//! [`redact_urls`]: no URL credentials, query string or fragment leaves this module
//! (not into the status, the audit evidence, the logs or a recorded trace).

mod cloudwatch;
mod dynamodb;
mod http;
pub mod limits;
mod s3;
mod schedule;
mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::{Instant, timeout};

pub use cloudwatch::AlarmProbe;
pub use dynamodb::DynamoProbe;
pub use failover_core::redact::{REDACTED, redact_urls};
pub use http::{HttpClient, HttpProbe};
pub use s3::S3Probe;
pub use schedule::spawn_all;

use failover_aws::RegionClients;
use failover_config::{CheckSpec, ProbeSpec, Settings};
use failover_core::model::Role;
use failover_core::policy::Observation;

/// Why one check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Transport(String),
    #[error("status {got}, expected one of {expected:?}")]
    Status { got: u16, expected: Vec<u16> },
    #[error("body does not contain {0:?}")]
    Body(String),
    /// The service answered, but not what a healthy region answers.
    #[error("{0}")]
    Unhealthy(String),
    /// The answer is about the monitor, not the region: its permissions, its
    /// credentials, its signature or clock, its quota, a request it built wrong, or a
    /// name that does not exist (docs/REFERENCE.md, "What counts as evidence").
    /// Inconclusive: never evidence that the region is down.
    #[error("{0} (about the monitor, not the region)")]
    Caller(String),
}

impl ProbeError {
    /// A failed SDK call of `op` on `what`, as evidence about the region or the
    /// monitor.
    pub fn sdk<E>(op: &str, what: &str, err: &failover_aws::SdkError<E>) -> Self
    where
        E: std::error::Error + failover_aws::ProvideErrorMetadata + 'static,
    {
        let (why, blame) = failover_aws::explain(err);
        let text = format!("{op} {what}: {why}");
        match blame {
            failover_aws::Blame::Region => ProbeError::Transport(text),
            failover_aws::Blame::Monitor => ProbeError::Caller(text),
        }
    }

    /// The error is about the monitor, not the region.
    pub fn monitor_side(&self) -> bool {
        matches!(self, ProbeError::Caller(_))
    }
}

/// One check of one region, run once per call.
#[async_trait]
pub trait Probe: Send + Sync {
    async fn check(&self) -> Result<(), ProbeError>;

    /// The plain `http` check behind this probe, if it is one: the scheduler awaits
    /// its future in place instead of boxing it.
    fn http(&self) -> Option<&HttpProbe> {
        None
    }
}

/// One configured check against AWS, ready to run.
pub enum Prober {
    Http(HttpProbe),
    S3(S3Probe),
    Dynamodb(DynamoProbe),
    CloudwatchAlarm(AlarmProbe),
}

impl Prober {
    /// Builds the check for `spec`, with clients of its region, for the process
    /// `process` (the value that tells it from another with the same instance id).
    pub fn new(
        spec: &ProbeSpec,
        settings: &Settings,
        clients: &RegionClients,
        http: &HttpClient,
        process: &str,
    ) -> Self {
        match &spec.check {
            CheckSpec::Http {
                url,
                expect_status,
                expect_body,
            } => Prober::Http(HttpProbe::new(
                http,
                url.clone(),
                expect_status.clone(),
                expect_body.clone(),
                spec.timeout,
            )),
            CheckSpec::S3 { bucket, check } => Prober::S3(S3Probe::new(
                clients.s3(spec.timeout),
                bucket.clone(),
                *check,
                // Each process its own canary objects: two processes with one
                // instance id (a rolling deployment) never delete each other's.
                format!("{}-{}-{}", settings.monitor.instance_id, process, spec.name),
            )),
            CheckSpec::Dynamodb { table, check } => Prober::Dynamodb(DynamoProbe::new(
                clients.dynamodb(spec.timeout),
                table.clone(),
                settings.app.id.clone(),
                *check,
            )),
            CheckSpec::CloudwatchAlarm {
                alarms,
                insufficient_data,
            } => Prober::CloudwatchAlarm(AlarmProbe::new(
                clients.cloudwatch(spec.timeout),
                alarms.clone(),
                *insufficient_data,
            )),
        }
    }
}

#[async_trait]
impl Probe for Prober {
    async fn check(&self) -> Result<(), ProbeError> {
        match self {
            Prober::Http(p) => p.check().await,
            Prober::S3(p) => p.check().await,
            Prober::Dynamodb(p) => p.check().await,
            Prober::CloudwatchAlarm(p) => p.check().await,
        }
    }

    fn http(&self) -> Option<&HttpProbe> {
        match self {
            Prober::Http(p) => Some(p),
            _ => None,
        }
    }
}

const USER_AGENT: &str = concat!("failover-monitor/", env!("CARGO_PKG_VERSION"));

/// The HTTP client all `http` probes share (one connection pool per host and port).
pub fn http_client() -> HttpClient {
    HttpClient::new(
        reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a client without custom TLS settings always builds"),
    )
}

/// A probe ready to be scheduled.
pub struct Scheduled {
    pub index: usize,
    pub name: String,
    pub region: Role,
    pub interval: Duration,
    pub timeout: Duration,
    pub jitter: Duration,
    pub prober: Arc<dyn Probe>,
}

/// Runs one check with its timeout and turns the outcome into an observation, its
/// error text redacted (whatever the probe put in it).
pub async fn run_once(index: usize, prober: &dyn Probe, limit: Duration) -> Observation {
    observe(index, limit, prober.check()).await
}

/// [`run_once`] of a check already started.
async fn observe(
    index: usize,
    limit: Duration,
    check: impl Future<Output = Result<(), ProbeError>>,
) -> Observation {
    let started = Instant::now();
    let result = match timeout(limit, check).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(limit)),
    };
    let at = Instant::now();
    Observation {
        probe: index,
        at,
        ok: result.is_ok(),
        latency: at - started,
        monitor_side: result.as_ref().is_err_and(ProbeError::monitor_side),
        error: result.err().map(|e| redact_urls(&e.to_string())),
    }
}
