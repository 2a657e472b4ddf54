//! Building the AWS SDK clients of one region.
//!
//! Every client here has the SDK's own retries switched off: a probe is exactly one
//! attempt (its failure is data for the hysteresis), and the actuator runs its own
//! retry loop so that it can decide between "retry" and "lost the race".

pub mod dynamo;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use failover_config::RegionSettings;

/// The shared SDK configuration of one region: credentials, region, endpoint.
#[derive(Clone, Debug)]
pub struct RegionClients {
    sdk: SdkConfig,
    /// Set when the region is an emulator: S3 then needs path-style addressing.
    emulated: bool,
}

impl RegionClients {
    /// Loads credentials the SDK's usual way (environment, profile, web identity,
    /// ECS task role, instance metadata).
    pub async fn load(region: &RegionSettings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.name.clone()))
            .retry_config(RetryConfig::disabled());
        if let Some(url) = &region.endpoint_url {
            loader = loader.endpoint_url(url);
            // An emulator accepts any key. Without one in the environment, the SDK's
            // chain would end at the instance metadata service, far off loopback.
            let has_env_key = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
            let has_profile = std::env::var_os("AWS_PROFILE").is_some();
            if !has_env_key && !has_profile {
                loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "emulator", "emulator", None, None, "emulator",
                ));
            }
        }
        Self {
            sdk: loader.load().await,
            emulated: region.endpoint_url.is_some(),
        }
    }

    /// The region's SDK configuration, for clients with their own retry and timeouts.
    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    fn timeouts(timeout: Duration) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(timeout)
            .operation_timeout(timeout)
            .build()
    }

    pub fn dynamodb(&self, timeout: Duration) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(&self.sdk)
            .timeout_config(Self::timeouts(timeout))
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    pub fn s3(&self, timeout: Duration) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
            .timeout_config(Self::timeouts(timeout))
            .force_path_style(self.emulated)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn route53(&self, timeout: Duration) -> aws_sdk_route53::Client {
        let conf = aws_sdk_route53::config::Builder::from(&self.sdk)
            .timeout_config(Self::timeouts(timeout))
            .build();
        aws_sdk_route53::Client::from_conf(conf)
    }

    pub fn cloudwatch(&self, timeout: Duration) -> aws_sdk_cloudwatch::Client {
        let conf = aws_sdk_cloudwatch::config::Builder::from(&self.sdk)
            .timeout_config(Self::timeouts(timeout))
            .build();
        aws_sdk_cloudwatch::Client::from_conf(conf)
    }
}

/// The most useful one-line description of an SDK error: the service's error code
/// and message when there is one, else the transport failure.
pub fn describe<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::SdkError;
    match err {
        SdkError::ServiceError(e) => {
            let e = e.err();
            match (e.code(), e.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                _ => e.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(e) => {
            let mut s = "connection failed".to_string();
            if let Some(cause) = std::error::Error::source(err) {
                s = format!("connection failed: {}", source_chain(cause));
            } else if e.is_timeout() {
                s = "connection timed out".into();
            }
            s
        }
        other => source_chain(other),
    }
}

/// `err: cause: cause ...` in one line.
pub fn source_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
