//! The admin HTTP API (axum): health, readiness, metrics, status, history, and the
//! operator's moves (failover, failback, fence, pause, resume).
//!
//! Manual moves are not made here: they are sent into the decision loop as
//! [`Command`]s, so they take the same path as automatic ones (safety rules, the
//! actuator's versioned commit, the audit record).
//!
//! Architecture Invariant: every mutating route checks the bearer token first; bad
//! input always gets a 4xx JSON error, never a 5xx.

pub mod auth;
pub mod client;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use auth::Token;

use crate::action::Actuator;
use crate::control::{Command, Handle, MoveError};
use crate::metrics::Metrics;
use crate::model::AppState;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 16 * 1024;
/// Longest a request may take (a move waits for the commit in both regions).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every route, as the OpenAPI document must list it (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/status"),
    ("get", "/v1/history"),
    ("get", "/v1/openapi.json"),
    ("post", "/v1/failover"),
    ("post", "/v1/failback"),
    ("post", "/v1/fence"),
    ("post", "/v1/pause"),
    ("post", "/v1/resume"),
];

/// The OpenAPI document, kept in `docs/` and served as is.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

pub struct AdminState {
    pub handle: Handle,
    pub metrics: Arc<Metrics>,
    pub actuator: Arc<Actuator>,
    /// None: every mutating call is refused.
    pub token: Option<Token>,
}

/// A JSON error response: `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            axum::Json(json!({"error": self.code, "message": self.message})),
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

type ApiResult = Result<Response, ApiError>;

fn json_ok(status: StatusCode, v: Value) -> ApiResult {
    Ok((status, axum::Json(v)).into_response())
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/history", get(history))
        .route("/v1/openapi.json", get(openapi))
        .route(
            "/v1/failover",
            post(|s: State<Arc<AdminState>>, h: HeaderMap, b| mov(s, h, b, AppState::Failover)),
        )
        .route(
            "/v1/failback",
            post(|s: State<Arc<AdminState>>, h: HeaderMap, b| mov(s, h, b, AppState::Active)),
        )
        .route(
            "/v1/fence",
            post(|s: State<Arc<AdminState>>, h: HeaderMap, b| mov(s, h, b, AppState::Fenced)),
        )
        .route(
            "/v1/pause",
            post(|s: State<Arc<AdminState>>, h: HeaderMap, b| pause(s, h, b, true)),
        )
        .route(
            "/v1/resume",
            post(|s: State<Arc<AdminState>>, h: HeaderMap, b| pause(s, h, b, false)),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route; see /v1/openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(request_timeout))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn request_timeout(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {REQUEST_TIMEOUT:?}"),
        )
        .into_response(),
    }
}

async fn healthz() -> ApiResult {
    json_ok(StatusCode::OK, json!({"status": "ok"}))
}

async fn readyz(State(s): State<Arc<AdminState>>) -> ApiResult {
    if s.handle.status.borrow().ready {
        json_ok(StatusCode::OK, json!({"status": "ready"}))
    } else {
        json_ok(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not ready", "reason": "the config item has not been read yet"}),
        )
    }
}

async fn metrics(State(s): State<Arc<AdminState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn status(State(s): State<Arc<AdminState>>) -> ApiResult {
    let st = s.handle.status.borrow().clone();
    json_ok(
        StatusCode::OK,
        json!({
            "instance_id": st.instance_id,
            "state": st.item.as_ref().map(|i| i.state),
            "version": st.item.as_ref().map(|i| i.version),
            "mode": st.mode,
            "paused": st.paused,
            "leader": st.leader,
            "is_leader": st.is_leader,
            "instances": st.instances,
            "quorum": st.quorum,
            "ready": st.ready,
            "item": st.item,
            "regions": {"primary": st.primary_item, "secondary": st.secondary_item},
            "divergence": st.divergence,
            "policy": st.verdict,
            "probes": st.probes,
        }),
    )
}

async fn history(
    State(s): State<Arc<AdminState>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    if let Some(k) = q.keys().find(|k| k.as_str() != "limit") {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?}; only limit is accepted"
        )));
    }
    let limit = match q.get("limit") {
        None => 20,
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=100) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit = {v:?}: expected a whole number from 1 to 100"
                )));
            }
        },
    };
    match s.actuator.history(limit).await {
        Ok(records) => json_ok(StatusCode::OK, json!({ "records": records })),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )),
    }
}

fn authorize(s: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &s.token else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no admin token is configured (admin.token_file or FAILOVER_MONITOR_ADMIN_TOKEN): mutating calls are disabled",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if token.matches_header(presented) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    reason: String,
    #[serde(default)]
    force: bool,
    caller: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason: Option<String>,
    caller: Option<String>,
}

fn rejection(r: BytesRejection) -> ApiError {
    let status = r.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "bad_request"
    };
    ApiError::new(status, code, r.body_text())
}

fn parse_body<T: for<'de> Deserialize<'de>>(
    body: &[u8],
    empty_ok: bool,
) -> Result<Option<T>, ApiError> {
    if body.is_empty() || (!empty_ok && body.iter().all(u8::is_ascii_whitespace)) {
        return if empty_ok {
            Ok(None)
        } else {
            Err(ApiError::bad_request(
                "a JSON body is required: {\"reason\": \"...\", \"force\": false}",
            ))
        };
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    // serde would also take a struct from an array of its fields: only objects count.
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn check_caller(caller: Option<String>) -> Result<String, ApiError> {
    let caller = caller.unwrap_or_else(|| "operator".into());
    let ok = !caller.is_empty()
        && caller.len() <= 64
        && caller
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(caller)
    } else {
        Err(ApiError::bad_request(
            "caller: 1 to 64 characters of a-z, A-Z, 0-9, '-', '_', '.', '@'",
        ))
    }
}

/// The whitespace of the OpenAPI document's `\S` pattern (ECMAScript's `\s`), so the
/// server and the document agree on what an empty reason is.
fn is_pattern_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

fn check_reason(reason: &str) -> Result<(), ApiError> {
    if reason.chars().all(is_pattern_space) {
        return Err(ApiError::bad_request(
            "reason: required and must not be empty",
        ));
    }
    if reason.len() > 1024 {
        return Err(ApiError::bad_request("reason: at most 1024 bytes"));
    }
    Ok(())
}

async fn send<T>(
    s: &AdminState,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, ApiError> {
    s.handle.ask(make).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the daemon is shutting down",
        )
    })
}

/// A validated manual-move request body.
#[derive(Debug, PartialEq, Eq)]
pub struct MoveRequest {
    pub reason: String,
    pub force: bool,
    pub caller: String,
}

/// Parses and checks a `/v1/failover|failback|fence` body. Pure, so it is fuzzed on
/// its own (fuzz/fuzz_targets/admin_body.rs); every error is a 4xx.
pub fn parse_move_request(body: &[u8]) -> Result<MoveRequest, ApiError> {
    let body: MoveBody = parse_body(body, false)?.expect("empty bodies are refused");
    check_reason(&body.reason)?;
    Ok(MoveRequest {
        reason: body.reason,
        force: body.force,
        caller: check_caller(body.caller)?,
    })
}

/// Parses and checks a `/v1/pause|resume` body (which may be empty).
pub fn parse_pause_request(body: &[u8]) -> Result<(Option<String>, String), ApiError> {
    let body: PauseBody = parse_body(body, true)?.unwrap_or_default();
    if let Some(r) = &body.reason {
        check_reason(r)?;
    }
    Ok((body.reason, check_caller(body.caller)?))
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

async fn mov(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    to: AppState,
) -> ApiResult {
    authorize(&s, &headers)?;
    let body = body.map_err(rejection)?;
    let req = parse_move_request(&body)?;
    let result = send(&s, |reply| Command::Move {
        to,
        reason: req.reason,
        force: req.force,
        caller: req.caller,
        reply,
    })
    .await?;
    match result {
        Ok(done) => json_ok(
            StatusCode::OK,
            serde_json::to_value(done).unwrap_or_default(),
        ),
        Err(MoveError::Refused(r)) => {
            let (status, code) = match r {
                crate::policy::Refusal::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
                _ => (StatusCode::CONFLICT, "not_allowed"),
            };
            Err(ApiError::new(status, code, r.to_string()))
        }
        Err(MoveError::LostRace(current)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "lost_race",
            format!(
                "the item changed meanwhile (now {}); nothing was written",
                current.map_or("unknown".into(), |i| format!(
                    "{} version {}",
                    i.state, i.version
                ))
            ),
        )),
        Err(MoveError::NeedsHuman(why)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "needs_human", why))
        }
        Err(MoveError::Failed(e)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{e}; nothing was written"),
        )),
        Err(MoveError::Unknown(e)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "outcome_unknown",
            format!(
                "{e}; the write may have been applied: GET /v1/status shows the item once \
                 the monitor has read it again, GET /v1/history its audit record"
            ),
        )),
        Err(MoveError::Expired) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "another commit was in flight for too long; the move was not started",
        )),
    }
}

async fn pause(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    paused: bool,
) -> ApiResult {
    authorize(&s, &headers)?;
    let body = body.map_err(rejection)?;
    let (reason, caller) = parse_pause_request(&body)?;
    let was = send(&s, |reply| Command::SetPaused {
        paused,
        caller,
        reason: reason.unwrap_or_default(),
        reply,
    })
    .await?
    .map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the pause cannot be stored in the commit region: {e}"),
        )
    })?;
    json_ok(StatusCode::OK, json!({"paused": paused, "was_paused": was}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_and_pause_bodies_are_checked_without_a_server() {
        let ok = parse_move_request(br#"{"reason": "drill", "force": true, "caller": "a.b@c"}"#)
            .unwrap();
        assert_eq!(
            ok,
            MoveRequest {
                reason: "drill".into(),
                force: true,
                caller: "a.b@c".into()
            }
        );
        for bad in [
            &b""[..],
            b"{",
            b"{}",
            br#"["drill", false, "alice"]"#,
            br#"{"reason": " "}"#,
            br#"{"reason": "x", "y": 1}"#,
            b"\xff\xfe",
        ] {
            let e = parse_move_request(bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
        assert_eq!(parse_pause_request(b"").unwrap(), (None, "operator".into()));
        assert!(parse_pause_request(br#"{"caller": ""}"#).is_err());
        assert!(parse_pause_request(b"[null, null]").is_err());
    }

    /// The served OpenAPI document lists exactly the routes the router has.
    #[test]
    fn openapi_document_matches_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON");
        assert_eq!(
            doc["openapi"].as_str().map(|v| v.starts_with("3.")),
            Some(true)
        );
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str()))
                    .map(move |m| (m.clone(), path.clone()))
            })
            .collect();
        documented.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
        // Every mutating route documents 400, 401 and (for moves) 409.
        for (m, p) in ROUTES.iter().filter(|(m, _)| *m == "post") {
            let responses = &doc["paths"][p][m]["responses"];
            for code in ["200", "400", "401"] {
                assert!(
                    responses.get(code).is_some(),
                    "{m} {p} does not document {code}"
                );
            }
            if !p.ends_with("pause") && !p.ends_with("resume") {
                assert!(
                    responses.get("409").is_some(),
                    "{m} {p} does not document 409"
                );
            }
        }
    }
}
