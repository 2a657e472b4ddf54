//! The admin HTTP API (axum): health, readiness, metrics, status, history, and the
//! operator's moves (failover, failback, fence, pause, resume).
//!
//! Manual moves are not made here: they are sent into the decision loop as
//! [`Command`]s, so they take the same path as automatic ones (safety rules, the
//! actuator's versioned commit, the audit record).
//!
//! Who may call what: `/healthz`, `/readyz`, `/metrics` (Prometheus scrapes it) and
//! `/v1/openapi.json` are open; `GET /v1/status` and `GET /v1/history` need the
//! read-only token or the admin token; every `POST` needs the admin token (the
//! read-only token gets 403). With no token configured, everything but the open
//! routes answers 401.
//!
//! Architecture Invariant: every route that shows or changes state checks the bearer
//! token before it looks at anything else of the request; bad input always gets a 4xx
//! JSON error, never a 5xx.

pub mod auth;
pub mod client;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use auth::{Token, Tokens};

use crate::action::{Actuator, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT};
use crate::control::{Command, Handle, MoveError};
use crate::metrics::Metrics;
use crate::model::AppState;
use auth::{Access, READ_TOKEN_ENV, TOKEN_ENV};

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
    /// The admin token (None: every mutating call is refused) and the read-only token
    /// (None: reads need the admin token; with neither, reads are refused too).
    pub tokens: Tokens,
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
    /// The message goes out with URL secrets redacted: an AWS SDK's error text can
    /// name the URL it called.
    fn into_response(self) -> Response {
        let message = crate::probe::redact_urls(&self.message);
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

type ApiResult = Result<Response, ApiError>;

fn json_ok(status: StatusCode, v: Value) -> ApiResult {
    Ok((status, axum::Json(v)).into_response())
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/v1/status",
            get(|s: State<Arc<AdminState>>, h: HeaderMap| status(s, h)),
        )
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

async fn status(State(s): State<Arc<AdminState>>, headers: HeaderMap) -> ApiResult {
    authorize_read(&s, &headers)?;
    let st = s.handle.status.borrow().clone();
    json_ok(
        StatusCode::OK,
        json!({
            "instance_id": st.instance_id,
            "state": st.item.as_ref().map(|i| i.state),
            "version": st.item.as_ref().map(|i| i.version),
            "mode": st.mode,
            "paused": st.paused,
            "pause": st.pause,
            "leader": st.leader,
            "is_leader": st.is_leader,
            "instances": st.instances,
            "quorum": st.quorum,
            "duplicate": st.duplicate,
            "needs_human": st.needs_human,
            "committing": st.committing,
            "ready": st.ready,
            "item": st.item,
            "regions": {"primary": st.primary_item, "secondary": st.secondary_item},
            "divergence": st.divergence,
            "policy": st.verdict,
            "probes": st.probes,
        }),
    )
}

/// The largest `before`: the largest integer every JSON client reads exactly (2^53 - 1).
pub const BEFORE_MAX: u64 = (1 << 53) - 1;

/// A validated `GET /v1/history` query.
#[derive(Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    /// 1 to [`HISTORY_MAX_LIMIT`]; default [`HISTORY_DEFAULT_LIMIT`].
    pub limit: usize,
    /// Only records with a version below this one (1 to [`BEFORE_MAX`]); `None`: from
    /// the newest.
    pub before: Option<u64>,
}

/// Parses and checks the `/v1/history` query parameters; every error is a 400.
pub fn parse_history_query(q: &HashMap<String, String>) -> Result<HistoryQuery, ApiError> {
    if let Some(k) = q
        .keys()
        .find(|k| !["limit", "before"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?}; only limit and before are accepted"
        )));
    }
    let limit = match q.get("limit") {
        None => HISTORY_DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=HISTORY_MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit = {v:?}: expected a whole number from 1 to {HISTORY_MAX_LIMIT}"
                )));
            }
        },
    };
    let before = match q.get("before") {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=BEFORE_MAX).contains(&n) => Some(n),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "before = {v:?}: expected a version, a whole number from 1 to \
                     {BEFORE_MAX} (the next_before of the previous page)"
                )));
            }
        },
    };
    Ok(HistoryQuery { limit, before })
}

async fn history(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    authorize_read(&s, &headers)?;
    let Query(q) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let q = parse_history_query(&q)?;
    match s.actuator.history(q.limit, q.before).await {
        Ok(page) => json_ok(
            StatusCode::OK,
            json!({"records": page.records, "next_before": page.next_before}),
        ),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )),
    }
}

fn presented(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The reads (`GET /v1/status`, `GET /v1/history`): the read-only or the admin token.
fn authorize_read(s: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    if !s.tokens.any() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "no token is configured: reads are disabled; set a read-only token \
                 (admin.read_token_file or {READ_TOKEN_ENV}) or the admin token \
                 (admin.token_file or {TOKEN_ENV})"
            ),
        ));
    }
    match s.tokens.access(presented(headers)) {
        Access::Admin | Access::Read => Ok(()),
        Access::Denied => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required \
             (the read-only token or the admin token)",
        )),
    }
}

/// The mutating calls: the admin token only; the read-only token gets 403.
fn authorize(s: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    let access = s.tokens.access(presented(headers));
    if access == Access::Read {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the read-only token opens GET /v1/status and /v1/history only; this call \
                 needs the admin token (admin.token_file or {TOKEN_ENV})"
            ),
        ));
    }
    if s.tokens.admin.is_none() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no admin token is configured (admin.token_file or FAILOVER_MONITOR_ADMIN_TOKEN): mutating calls are disabled",
        ));
    }
    if access == Access::Admin {
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

    #[tokio::test]
    async fn error_messages_go_out_without_url_secrets() {
        let e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "secondary region unavailable: dispatch failure for url \
             (https://key:secret@dynamodb.example/?X-Amz-Signature=secret)",
        );
        let body = axum::body::to_bytes(e.into_response().into_body(), 4096)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["message"],
            "secondary region unavailable: dispatch failure for url \
             (https://dynamodb.example/?<redacted>)"
        );
    }

    #[test]
    fn history_queries_are_checked_without_a_server() {
        let q = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            parse_history_query(&map)
        };
        assert_eq!(
            q(&[]).unwrap(),
            HistoryQuery {
                limit: 20,
                before: None
            }
        );
        assert_eq!(
            q(&[("limit", "50"), ("before", "7")]).unwrap(),
            HistoryQuery {
                limit: 50,
                before: Some(7)
            }
        );
        for bad in [
            &[("limit", "0")][..],
            &[("limit", "51")],
            &[("limit", "-1")],
            &[("limit", "abc")],
            &[("before", "0")],
            &[("before", "-3")],
            &[("before", "18446744073709551616")],
            &[("before", "9007199254740992")],
            &[("before", "")],
            &[("foo", "1")],
        ] {
            let e = q(bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
        assert!(
            q(&[("foo", "1")])
                .unwrap_err()
                .message
                .contains("only limit and before")
        );
    }

    /// A served router over in-memory regions (the secondary with the config item at
    /// version 30 and its 30 audit records) with `tokens`; pause and resume are
    /// answered as a daemon would. Loopback only.
    async fn serve_with(tokens: Tokens) -> String {
        use crate::memory::{MemItemStore, MemTable, Record, TokioWallClock};
        use crate::model::{AuditRecord, ConfigItem, Role, Trigger, keys};
        let tables = [MemTable::new(), MemTable::new()];
        for t in &tables {
            t.put(
                "app",
                Record::Item(ConfigItem {
                    state: AppState::Active,
                    version: 30,
                    updated_at: None,
                    updated_by: None,
                    reason: None,
                }),
            );
            for v in 1..=30 {
                t.put(
                    &keys::audit("app", v),
                    Record::Audit(AuditRecord {
                        version: v,
                        from: AppState::Active,
                        to: AppState::Fenced,
                        at: "2026-01-01T00:00:00Z".into(),
                        by: "test".into(),
                        trigger: Trigger::Manual,
                        reason: format!("move {v}"),
                        evidence: json!({}),
                        forced: false,
                    }),
                );
            }
        }
        let actuator = Arc::new(Actuator::new(
            Arc::new(MemItemStore::new(tables[0].clone(), "app", Role::Primary)),
            Arc::new(MemItemStore::new(tables[1].clone(), "app", Role::Secondary)),
            crate::action::Extras {
                dns: None,
                canaries: crate::action::Canaries::default(),
                clock: Arc::new(TokioWallClock::new(std::time::SystemTime::UNIX_EPOCH)),
                tables: crate::config::TablesMode::PerRegion,
            },
            1,
        ));
        let (_status_tx, status) = tokio::sync::watch::channel(crate::control::Status::default());
        let (commands, mut rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let _keep = _status_tx;
            while let Some(cmd) = rx.recv().await {
                if let Command::SetPaused { reply, .. } = cmd {
                    let _ = reply.send(Ok(false));
                }
            }
        });
        let state = Arc::new(AdminState {
            handle: Handle { status, commands },
            metrics: Arc::new(Metrics::new()),
            actuator,
            tokens,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener, router(state), std::future::pending()));
        base
    }

    const ADMIN: &str = "admin-token-0123456789";
    const READ: &str = "read-token-0123456789";

    fn both() -> Tokens {
        Tokens {
            admin: Some(Token::new(ADMIN.into()).unwrap()),
            read: Some(Token::new(READ.into()).unwrap()),
        }
    }

    async fn call(method: &str, url: String, token: Option<&str>) -> (u16, Value) {
        let http = reqwest::Client::new();
        let mut req = if method == "GET" {
            http.get(url)
        } else {
            http.post(url).body("{}")
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    #[tokio::test]
    async fn reads_need_a_token_and_the_read_token_opens_only_reads() {
        let base = serve_with(both()).await;
        for path in ["/v1/status", "/v1/history"] {
            let url = format!("{base}{path}");
            for token in [None, Some("wrong-token-0123456789"), Some("")] {
                let (code, body) = call("GET", url.clone(), token).await;
                assert_eq!(
                    (code, body["error"].as_str()),
                    (401, Some("unauthorized")),
                    "{path} {token:?}"
                );
            }
            assert_eq!(call("GET", url.clone(), Some(READ)).await.0, 200, "{path}");
            assert_eq!(call("GET", url.clone(), Some(ADMIN)).await.0, 200, "{path}");
        }
        // the open routes stay open
        for path in ["/healthz", "/metrics", "/v1/openapi.json"] {
            assert_eq!(
                call("GET", format!("{base}{path}"), None).await.0,
                200,
                "{path}"
            );
        }
        // the read token on a mutating call: 403, whatever the body
        for path in [
            "/v1/pause",
            "/v1/resume",
            "/v1/failover",
            "/v1/failback",
            "/v1/fence",
        ] {
            let (code, body) = call("POST", format!("{base}{path}"), Some(READ)).await;
            assert_eq!(
                (code, body["error"].as_str()),
                (403, Some("forbidden")),
                "{path}"
            );
            assert_eq!(
                call("POST", format!("{base}{path}"), None).await.0,
                401,
                "{path}"
            );
        }
        assert_eq!(
            call("POST", format!("{base}/v1/pause"), Some(ADMIN))
                .await
                .0,
            200
        );
        // the token is checked before the query
        assert_eq!(
            call("GET", format!("{base}/v1/history?limit=0"), None)
                .await
                .0,
            401
        );
        let (code, body) = call("GET", format!("{base}/v1/history?limit=%zz"), Some(READ)).await;
        assert_eq!(
            (code, body["error"].as_str()),
            (400, Some("bad_request")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn without_tokens_reads_are_refused_with_what_to_set() {
        let base = serve_with(Tokens::default()).await;
        let (code, body) = call("GET", format!("{base}/v1/status"), None).await;
        assert_eq!(code, 401);
        let msg = body["message"].as_str().unwrap();
        for name in [
            "admin.read_token_file",
            "FAILOVER_MONITOR_ADMIN_READ_TOKEN",
            "admin.token_file",
            "FAILOVER_MONITOR_ADMIN_TOKEN",
        ] {
            assert!(msg.contains(name), "{msg}");
        }
        // a read token alone: reads open, mutating calls still refused
        let base = serve_with(Tokens {
            admin: None,
            read: Some(Token::new(READ.into()).unwrap()),
        })
        .await;
        assert_eq!(
            call("GET", format!("{base}/v1/status"), Some(READ)).await.0,
            200
        );
        assert_eq!(
            call("POST", format!("{base}/v1/pause"), Some(READ)).await.0,
            403
        );
        let (code, body) = call("POST", format!("{base}/v1/pause"), None).await;
        assert_eq!(code, 401);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("no admin token is configured")
        );
    }

    #[tokio::test]
    async fn history_pages_follow_next_before_to_the_end() {
        let base = serve_with(both()).await;
        let mut seen = Vec::new();
        let mut path = "/v1/history?limit=12".to_owned();
        loop {
            let (code, body) = call("GET", format!("{base}{path}"), Some(READ)).await;
            assert_eq!(code, 200, "{body}");
            let page: Vec<u64> = body["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["version"].as_u64().unwrap())
                .collect();
            assert!(page.len() <= 12);
            seen.extend(page);
            match body["next_before"].as_u64() {
                Some(b) => path = format!("/v1/history?limit=12&before={b}"),
                None => {
                    assert!(body["next_before"].is_null(), "{body}");
                    break;
                }
            }
        }
        assert_eq!(seen, (1..=30).rev().collect::<Vec<u64>>());
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
            assert!(
                responses.get("403").is_some(),
                "{m} {p} does not document 403 (the read-only token)"
            );
            assert_eq!(
                doc["paths"][p][m]["security"],
                json!([{"bearer": []}]),
                "{m} {p}: the admin token only"
            );
            if !p.ends_with("pause") && !p.ends_with("resume") {
                assert!(
                    responses.get("409").is_some(),
                    "{m} {p} does not document 409"
                );
            }
        }
        // The reads take either token and document 401; the open routes take none.
        for p in ["/v1/status", "/v1/history"] {
            let op = &doc["paths"][p]["get"];
            assert_eq!(
                op["security"],
                json!([{"bearer": []}, {"readToken": []}]),
                "{p}"
            );
            assert!(
                op["responses"].get("401").is_some(),
                "{p} does not document 401"
            );
        }
        for p in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
            assert!(doc["paths"][p]["get"].get("security").is_none(), "{p}");
        }
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert_eq!(
            schemes.keys().collect::<Vec<_>>(),
            ["bearer", "readToken"],
            "the two tokens"
        );
        // The history parameters agree with the server's bounds.
        let params = &doc["paths"]["/v1/history"]["get"]["parameters"];
        assert_eq!(params[0]["name"], "limit");
        assert_eq!(params[0]["schema"]["maximum"], HISTORY_MAX_LIMIT);
        assert_eq!(params[0]["schema"]["default"], HISTORY_DEFAULT_LIMIT);
        assert_eq!(params[1]["name"], "before");
        assert_eq!(params[1]["schema"]["minimum"], 1);
        assert_eq!(params[1]["schema"]["maximum"], BEFORE_MAX);
    }
}
