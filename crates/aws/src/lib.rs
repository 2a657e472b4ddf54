//! Building the AWS SDK clients of one region.
//!
//! Every client here has the SDK's own retries switched off: a probe is exactly one
//! attempt (its failure is data for the hysteresis), and the actuator runs its own
//! retry loop so that it can decide between "retry" and "lost the race".

pub mod dynamo;
pub mod sign;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use aws_sdk_dynamodb::config::http::HttpResponse;
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

/// Who a failed call is evidence about: the region, or the monitor itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The region did not answer, or answered that it failed: refused or reset
    /// connections, timeouts, 5xx, `InternalServerError`, `ServiceUnavailable`.
    Region,
    /// The answer is about the caller: its permissions, its credentials, its
    /// signature or clock, its quota, a request it built wrong, or a name that does
    /// not exist. Every instance shares one role and one configuration, so such an
    /// error is a fault of every vantage point at once, never evidence of an outage.
    Monitor,
}

/// Error codes that say the caller is wrong, whatever the HTTP status.
const MONITOR_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "IncompleteSignatureException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "RequestTimeTooSkewed",
    "AuthFailure",
    "AuthorizationHeaderMalformed",
    "OptInRequired",
    "ValidationException",
    "ValidationError",
    "SerializationException",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidParameterValueException",
    "MissingParameter",
    "InvalidRequest",
    // The account's quota, shared by every instance (a regional failure shows as
    // 5xx instead).
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
    // A name that does not exist: a wrong name or region in the configuration, at
    // every instance alike (a region that is down does not answer these).
    "ResourceNotFoundException",
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
];

/// Error codes that say the region failed, whatever the HTTP status.
const REGION_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "SlowDown",
];

/// Who `err` is evidence about (docs/REFERENCE.md, "What counts as evidence").
pub fn classify<E>(err: &aws_sdk_dynamodb::error::SdkError<E, HttpResponse>) -> Blame
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    use aws_sdk_dynamodb::error::SdkError;
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            classify_answer(e.err().code(), status)
        }
        SdkError::ConstructionFailure(_) => Blame::Monitor,
        SdkError::DispatchFailure(e) if e.is_user() => Blame::Monitor,
        SdkError::DispatchFailure(e)
            if e.as_connector_error()
                .is_some_and(|c| is_credentials_failure(c)) =>
        {
            Blame::Monitor
        }
        // Timeouts, refused and reset connections, responses that could not be
        // read: the region (or the network to it).
        _ => Blame::Region,
    }
}

/// Who a service's answer is evidence about, from its error code and HTTP status.
pub fn classify_answer(code: Option<&str>, status: u16) -> Blame {
    if let Some(code) = code {
        if MONITOR_CODES.contains(&code) || code.starts_with("AccessDenied") {
            return Blame::Monitor;
        }
        if REGION_CODES.contains(&code) {
            return Blame::Region;
        }
    }
    match status {
        // A 4xx says the request or its caller is wrong (S3's HeadBucket answers
        // 403 and 404 without a body, so without a code).
        400..=499 => Blame::Monitor,
        _ => Blame::Region,
    }
}

/// The SDK could not load credentials: it reports that as a dispatch failure whose
/// cause is the credentials provider's error.
fn is_credentials_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// [`describe`] and [`classify`] at once.
pub fn explain<E>(err: &aws_sdk_dynamodb::error::SdkError<E, HttpResponse>) -> (String, Blame)
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
{
    (describe(err), classify(err))
}

/// An SDK call's error (every service's is the same type).
pub type SdkError<E> = aws_sdk_dynamodb::error::SdkError<E, HttpResponse>;
pub use aws_sdk_dynamodb::error::ProvideErrorMetadata;

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

#[cfg(test)]
mod tests {
    use aws_credential_types::provider::error::CredentialsError;
    use aws_sdk_dynamodb::error::{ConnectorError, ErrorMetadata, SdkError};
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_sdk_s3::primitives::SdkBody;

    use super::*;

    fn answer(code: Option<&str>, status: u16) -> SdkError<GetItemError, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message("m");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(GetItemError::generic(meta.build()), raw)
    }

    #[test]
    fn answers_about_the_caller_blame_the_monitor_and_failures_the_region() {
        for (code, status) in [
            (Some("AccessDeniedException"), 400),
            (Some("AccessDenied"), 403),
            (Some("UnrecognizedClientException"), 400),
            (Some("InvalidSignatureException"), 400),
            (Some("ExpiredTokenException"), 400),
            (Some("ValidationException"), 400),
            (Some("ThrottlingException"), 400),
            (Some("ProvisionedThroughputExceededException"), 400),
            (Some("ResourceNotFoundException"), 400),
            (Some("NoSuchBucket"), 404),
            (None, 403),
            (None, 404),
            (Some("SomethingNew"), 400),
        ] {
            assert_eq!(
                classify(&answer(code, status)),
                Blame::Monitor,
                "{code:?} {status}"
            );
        }
        for (code, status) in [
            (Some("InternalServerError"), 500),
            (Some("ServiceUnavailable"), 503),
            (Some("ServiceUnavailableException"), 400),
            (Some("SlowDown"), 503),
            (None, 500),
            (None, 502),
            (Some("SomethingNew"), 503),
        ] {
            assert_eq!(
                classify(&answer(code, status)),
                Blame::Region,
                "{code:?} {status}"
            );
        }
    }

    #[test]
    fn a_credentials_provider_failure_blames_the_monitor_a_refused_connection_the_region() {
        let creds = ConnectorError::other(
            Box::new(CredentialsError::not_loaded("no credentials in the chain")),
            None,
        );
        let err: SdkError<GetItemError, HttpResponse> = SdkError::dispatch_failure(creds);
        assert_eq!(classify(&err), Blame::Monitor);
        let refused = ConnectorError::io(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        let err: SdkError<GetItemError, HttpResponse> = SdkError::dispatch_failure(refused);
        assert_eq!(classify(&err), Blame::Region);
        let timeout =
            ConnectorError::timeout(Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)));
        let err: SdkError<GetItemError, HttpResponse> = SdkError::dispatch_failure(timeout);
        assert_eq!(classify(&err), Blame::Region);
        let user = ConnectorError::user(Box::new(std::io::Error::other("bad request")));
        let err: SdkError<GetItemError, HttpResponse> = SdkError::dispatch_failure(user);
        assert_eq!(classify(&err), Blame::Monitor);
    }
}
