//! The admin HTTP API (axum): health, readiness, metrics, status, history, and the
//! operator's moves (failover, failback, fence, pause, resume).
//!
//! Manual moves are not made here: they are sent into the decision loop as
//! [`Request`](failover_daemon::control::Request)s, so they take the same path as automatic ones (safety rules, the
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
//!
//! Here: the router and the request timeout. `server.rs` accepts, caps and drains
//! connections on a thread of its own (away from the probes), `connection.rs` holds
//! each connection to its deadlines, `tls.rs` reads the certificate; `handlers.rs`
//! answers each route (`reports.rs` the recovery reports), `requests.rs` parses and
//! checks bodies and queries (pure),
//! `error.rs` is the JSON error answer, `client.rs` the operator's side (what
//! `failover-monitor admin` and the CLI's moves send, over HTTP or HTTPS).

pub mod client;
mod connection;
mod error;
mod handlers;
mod reports;
mod requests;
pub mod server;
#[cfg(test)]
mod tests;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::ApiError;
pub use failover_config::tokens::{Token, Tokens};
pub use requests::{
    BEFORE_MAX, HistoryQuery, MoveRequest, PauseRequest, parse_history_query, parse_move_request,
    parse_pause_request,
};
pub use server::Server;

use failover_core::model::AppState;
use failover_daemon::action::Actuator;
use failover_daemon::control::Handle;
use failover_daemon::metrics::Metrics;
use handlers::{
    abort_drill, drills, healthz, history, metrics, move_state, openapi, pause, readyz,
    start_drill, status,
};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 16 * 1024;
/// Longest a request may take (a move waits for the commit in both regions).
pub const REQUEST_TIMEOUT: Duration = failover_config::defaults::ADMIN_REQUEST_TIMEOUT;

/// Every route, as the OpenAPI document must list it (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/status"),
    ("get", "/v1/history"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/reports/{version}"),
    ("get", "/v1/drills"),
    ("post", "/v1/drills"),
    ("post", "/v1/drills/abort"),
    ("post", "/v1/failover"),
    ("post", "/v1/failback"),
    ("post", "/v1/fence"),
    ("post", "/v1/pause"),
    ("post", "/v1/resume"),
];

/// The OpenAPI document, kept in `docs/` and served as is.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// What the handlers share: the way into the decision loop, the metrics, the
/// actuator (for history pages) and the tokens.
pub struct AdminState {
    pub handle: Handle,
    pub metrics: Arc<Metrics>,
    pub actuator: Arc<Actuator>,
    /// The admin token (None: every mutating call is refused) and the read-only token
    /// (None: reads need the admin token; with neither, reads are refused too).
    pub tokens: Tokens,
    /// The daemon's runtime, which owns the AWS clients' connections: the handlers'
    /// AWS calls run there, not on the admin server's thread.
    pub aws: tokio::runtime::Handle,
    /// `[drills]` as configured (the schedule `GET /v1/drills` shows).
    pub drill_schedule: serde_json::Value,
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
        .route("/v1/reports/{version}", get(reports::report))
        .route("/v1/drills", get(drills).post(start_drill))
        .route("/v1/drills/abort", post(abort_drill))
        .route(
            "/v1/failover",
            post(|s: State<Arc<AdminState>>, h: HeaderMap, b| {
                move_state(s, h, b, AppState::Failover)
            }),
        )
        .route(
            "/v1/failback",
            post(|s: State<Arc<AdminState>>, h: HeaderMap, b| {
                move_state(s, h, b, AppState::Active)
            }),
        )
        .route(
            "/v1/fence",
            post(|s: State<Arc<AdminState>>, h: HeaderMap, b| {
                move_state(s, h, b, AppState::Fenced)
            }),
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
