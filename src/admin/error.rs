//! The admin API's error answer, `{"error": code, "message": text}`, and the helpers
//! the handlers build their answers with.

use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A JSON error response: `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What the answer's `message` says (before URL secrets are redacted).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    /// The message goes out with URL secrets redacted: an AWS SDK's error text can
    /// name the URL it called.
    fn into_response(self) -> Response {
        let message = failover_daemon::probe::redact_urls(&self.message);
        let mut resp = (
            self.status,
            axum::Json(json!({"error": self.code, "message": message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn json_ok(status: StatusCode, v: Value) -> ApiResult {
    Ok((status, axum::Json(v)).into_response())
}

pub(super) fn rejection(r: BytesRejection) -> ApiError {
    let status = r.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "bad_request"
    };
    ApiError::new(status, code, r.body_text())
}
