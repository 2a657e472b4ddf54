//! The route handlers: the open routes, the reads (status, history) and the
//! operator's moves and pause, each checking its token first.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::oneshot;

use super::error::{ApiError, ApiResult, json_ok, rejection};
use super::requests::{
    parse_abort_request, parse_drill_request, parse_history_query, parse_move_request,
    parse_pause_request,
};
use super::{AdminState, OPENAPI};
use failover_config::tokens::{
    Access, NO_ADMIN_TOKEN_CONFIGURED, NO_TOKEN_CONFIGURED, READ_TOKEN_ENV, TOKEN_ENV,
};
use failover_core::model::AppState;
use failover_daemon::control::{MoveError, PauseError, Request};

pub(super) async fn healthz() -> ApiResult {
    json_ok(StatusCode::OK, json!({"status": "ok"}))
}

pub(super) async fn readyz(State(s): State<Arc<AdminState>>) -> ApiResult {
    if s.handle.status.borrow().ready {
        json_ok(StatusCode::OK, json!({"status": "ready"}))
    } else {
        json_ok(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not ready", "reason": "the config item has not been read yet"}),
        )
    }
}

pub(super) async fn metrics(State(s): State<Arc<AdminState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(super) async fn status(State(s): State<Arc<AdminState>>, headers: HeaderMap) -> ApiResult {
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
            "coordination_mismatch": st.coordination_mismatch,
            "needs_human": st.needs_human,
            "committing": st.committing,
            "ready": st.ready,
            "item": st.item,
            "regions": {"primary": st.primary_item, "secondary": st.secondary_item},
            "divergence": st.divergence,
            "dns_error": st.dns_error,
            "policy": st.verdict,
            "probes": st.probes,
            "drill": st.drill,
            "overrides": st.overrides,
            "secondary_readiness": st.secondary_readiness,
        }),
    )
}

pub(super) async fn history(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    authorize_read(&s, &headers)?;
    let Query(q) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let q = parse_history_query(&q)?;
    let actuator = s.actuator.clone();
    let page = s
        .aws
        .spawn(async move { actuator.history(q.limit, q.before).await })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the history read did not finish: {e}"),
            )
        })?;
    match page {
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
pub(super) fn authorize_read(s: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    if !s.tokens.any() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "{NO_TOKEN_CONFIGURED}: reads are disabled; set a read-only token \
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
pub(super) fn authorize(s: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    let access = s.tokens.access(presented(headers));
    if access == Access::Read {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the read-only token opens GET /v1/status, /v1/history and /v1/reports only; this call \
                 needs the admin token (admin.token_file or {TOKEN_ENV})"
            ),
        ));
    }
    if s.tokens.admin.is_none() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "{NO_ADMIN_TOKEN_CONFIGURED} (admin.token_file or {TOKEN_ENV}): mutating \
                 calls are disabled"
            ),
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

pub(super) async fn send<T>(
    s: &AdminState,
    make: impl FnOnce(oneshot::Sender<T>) -> Request,
) -> Result<T, ApiError> {
    s.handle.ask(make).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the daemon is shutting down",
        )
    })
}

pub(super) async fn move_state(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    to: AppState,
) -> ApiResult {
    authorize(&s, &headers)?;
    let body = body.map_err(rejection)?;
    let req = parse_move_request(&body)?;
    let result = send(&s, |reply| Request::Move {
        to,
        reason: req.reason,
        force: req.force,
        caller: req.caller,
        lasts: req.lasts,
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
                failover_core::policy::Refusal::NotReady => {
                    (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
                }
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
        Err(MoveError::Lasts(why)) => Err(ApiError::bad_request(why)),
        Err(MoveError::Expired) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "another commit was in flight for too long; the move was not started",
        )),
    }
}

/// `GET /v1/drills`: the drill running now or the last one, and the schedule.
pub(super) async fn drills(State(s): State<Arc<AdminState>>, headers: HeaderMap) -> ApiResult {
    authorize_read(&s, &headers)?;
    let st = s.handle.status.borrow().clone();
    json_ok(
        StatusCode::OK,
        json!({"drill": st.drill, "schedule": s.drill_schedule}),
    )
}

fn drill_error(e: failover_daemon::drill::DrillError) -> ApiError {
    use failover_daemon::drill::DrillError as E;
    let code = match &e {
        E::NotLeader(_) => "not_leader",
        E::Running(_) => "drill_running",
        E::NotRunning => "no_drill",
        E::Store(_) => "unavailable",
        E::Invalid(_) => "bad_request",
    };
    let status = match &e {
        E::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::CONFLICT,
    };
    ApiError::new(status, code, e.to_string())
}

/// `POST /v1/drills`: starts a drill on the acting instance; answered 202 once its
/// record is stored (the drill then runs: `GET /v1/drills` follows it).
pub(super) async fn start_drill(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let body = body.map_err(rejection)?;
    let req = parse_drill_request(&body)?;
    let plan = failover_daemon::drill::Plan {
        hold: req.hold,
        fence: req.fence,
        reason: req.reason,
        by: format!("admin:{}", req.caller),
        scheduled: false,
    };
    let record = send(&s, |reply| {
        Request::Drill(failover_daemon::drill::DrillRequest::Start { plan, reply })
    })
    .await?
    .map_err(drill_error)?;
    json_ok(
        StatusCode::ACCEPTED,
        serde_json::to_value(record).unwrap_or_default(),
    )
}

/// `POST /v1/drills/abort`: stops the running drill (back to `active` when the
/// primary is healthy).
pub(super) async fn abort_drill(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let body = body.map_err(rejection)?;
    let req = parse_abort_request(&body)?;
    let record = send(&s, |reply| {
        Request::Drill(failover_daemon::drill::DrillRequest::Abort {
            caller: req.caller,
            reason: req.reason.unwrap_or_else(|| "no reason given".into()),
            reply,
        })
    })
    .await?
    .map_err(drill_error)?;
    json_ok(
        StatusCode::ACCEPTED,
        serde_json::to_value(record).unwrap_or_default(),
    )
}

pub(super) async fn pause(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    paused: bool,
) -> ApiResult {
    authorize(&s, &headers)?;
    let body = body.map_err(rejection)?;
    let req = parse_pause_request(&body)?;
    let was = send(&s, |reply| Request::SetPaused {
        paused,
        caller: req.caller,
        reason: req.reason.unwrap_or_default(),
        lasts: req.lasts,
        reply,
    })
    .await?
    .map_err(|e| match e {
        PauseError::Lasts(why) => ApiError::bad_request(why),
        PauseError::Store(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the pause cannot be stored in the commit region: {e}"),
        ),
    })?;
    json_ok(StatusCode::OK, json!({"paused": paused, "was_paused": was}))
}
