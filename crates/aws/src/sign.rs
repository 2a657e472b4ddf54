//! SigV4 for API Gateway (`execute-api`): the application's signed write
//! (`POST /comments/{photoId}` is `AWS_IAM`), as the web page and the CLI make it.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// The headers that sign `POST url` with `body` for API Gateway (`execute-api`) in
/// `region`: `authorization`, `x-amz-date`, and `x-amz-security-token` with
/// temporary credentials. `content-type` is signed too.
pub fn sign_post(
    url: &str,
    body: &str,
    region: &str,
    credentials: Credentials,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("execute-api")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let headers = [("content-type", "application/json")];
    let request = SignableRequest::new(
        "POST",
        url,
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| format!("signing the request: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("signing the request: {e}"))?
        .into_parts();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Ok(out)
}
