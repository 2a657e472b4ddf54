//! The provisioning module's AWS clients and the error vocabulary its steps share.
//!
//! Unlike the daemon's clients (one attempt, short timeouts: a probe's failure is
//! data), these retry throttling and transient faults a few times and allow long
//! calls: creating a stack is a batch job, and a half-created one is a nuisance.

use std::time::Duration;

use anyhow::anyhow;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use failover_aws::{RegionClients, describe};
use failover_config::RegionSettings;

/// The tag every resource the stack creates carries; its value is the project.
pub const STACK_TAG: &str = "failover-monitor:stack";

/// The clients of one region.
pub struct Region {
    pub name: String,
    pub endpoint: Option<String>,
    pub ddb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub apigw: aws_sdk_apigateway::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub idp: aws_sdk_cognitoidentityprovider::Client,
    pub identity: aws_sdk_cognitoidentity::Client,
    /// The caller's credentials (the SDK's chain), for requests signed here: the
    /// store API's `AWS_IAM` method.
    pub credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
}

/// Global services (IAM, CloudFront, Route 53, STS), reached through the primary
/// region's configuration (its endpoint when it is an emulator).
pub struct Global {
    pub iam: aws_sdk_iam::Client,
    pub cloudfront: aws_sdk_cloudfront::Client,
    pub route53: aws_sdk_route53::Client,
    pub sts: aws_sdk_sts::Client,
}

fn batch_config(base: &SdkConfig) -> SdkConfig {
    base.to_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        )
        .build()
}

impl Region {
    pub async fn load(settings: &RegionSettings) -> (Self, SdkConfig) {
        let base = RegionClients::load(settings).await;
        let sdk = batch_config(base.sdk());
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(settings.endpoint_url.is_some())
            .build();
        let region = Region {
            name: settings.name.clone(),
            endpoint: settings.endpoint_url.clone(),
            ddb: aws_sdk_dynamodb::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            apigw: aws_sdk_apigateway::Client::new(&sdk),
            cw: aws_sdk_cloudwatch::Client::new(&sdk),
            idp: aws_sdk_cognitoidentityprovider::Client::new(&sdk),
            identity: aws_sdk_cognitoidentity::Client::new(&sdk),
            credentials: sdk.credentials_provider(),
        };
        (region, sdk)
    }

    pub fn emulated(&self) -> bool {
        self.endpoint.is_some()
    }
}

impl Global {
    pub fn new(sdk: &SdkConfig) -> Self {
        Global {
            iam: aws_sdk_iam::Client::new(sdk),
            cloudfront: aws_sdk_cloudfront::Client::new(sdk),
            route53: aws_sdk_route53::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
        }
    }
}

/// Error codes that mean the caller lacks a permission.
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "NotAuthorizedException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
];

/// The service's error code, when the service answered.
pub fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// The HTTP status of the service's answer, when it answered.
pub fn status<E, R: HasStatus>(err: &SdkError<E, R>) -> Option<u16> {
    err.raw_response().map(HasStatus::status_code)
}

pub trait HasStatus {
    fn status_code(&self) -> u16;
}

/// The raw HTTP answer behind an SDK error (every SDK crate uses this one type).
pub trait HasRaw: HasStatus {
    fn body_text(&self) -> Option<String>;
}

type Raw = aws_sdk_dynamodb::config::http::HttpResponse;

impl HasStatus for Raw {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl HasRaw for Raw {
    fn body_text(&self) -> Option<String> {
        self.body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// `<operation> failed: <code>: <message>`, with a hint when it is a permission.
pub fn fail<E, R>(operation: &str, err: &SdkError<E, R>) -> anyhow::Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + HasRaw,
{
    let mut text = describe(err);
    let raw = err.raw_response();
    let status = raw.map(HasStatus::status_code);
    if code(err).is_none()
        && let Some(r) = raw
    {
        // The SDK could not read the answer's error: say what the service sent.
        let body = r.body_text().unwrap_or_default();
        let body: String = body
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(400)
            .collect();
        text = match (
            between(&body, "<Code>", "</Code>"),
            between(&body, "<Message>", "</Message>"),
        ) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            _ => format!("HTTP {}: {body}", r.status_code()),
        };
    }
    if code(err).is_some_and(|c| DENIED.contains(&c)) || status == Some(403) {
        anyhow!("{operation} was refused: {text} (missing permission {operation})")
    } else {
        anyhow!("{operation} failed: {text}")
    }
}

/// The text between the first `open` and the next `close`.
fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}

/// `result.sdk("iam:CreateRole")?`: an SDK result with the operation named on error.
pub trait SdkResult<T> {
    fn sdk(self, operation: &str) -> anyhow::Result<T>;
    /// `Ok(None)` when the error's code is one of `absent` (the resource is not there).
    fn absent(self, operation: &str, absent: &[&str]) -> anyhow::Result<Option<T>>;
}

impl<T, E, R> SdkResult<T> for Result<T, SdkError<E, R>>
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + HasRaw,
{
    fn sdk(self, operation: &str) -> anyhow::Result<T> {
        self.map_err(|e| fail(operation, &e))
    }

    fn absent(self, operation: &str, absent: &[&str]) -> anyhow::Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if code(&e).is_some_and(|c| absent.contains(&c)) => Ok(None),
            // HEAD answers carry no body, hence no code: 404 is the answer.
            Err(e) if absent.contains(&"404") && status(&e) == Some(404) => Ok(None),
            Err(e) => Err(fail(operation, &e)),
        }
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986); other services return them
/// as they were given.
pub fn decode_policy(doc: &str) -> String {
    if !doc.starts_with('%') {
        return doc.to_string();
    }
    let bytes = doc.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&doc[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_decoded_only_when_encoded() {
        assert_eq!(decode_policy("{\"a\": 1}"), "{\"a\": 1}");
        assert_eq!(
            decode_policy("%7B%22Version%22%3A%222012-10-17%22%7D"),
            "{\"Version\":\"2012-10-17\"}"
        );
        // A truncated escape is kept as it is rather than dropped.
        assert_eq!(decode_policy("%7B%2"), "{%2");
    }
}
