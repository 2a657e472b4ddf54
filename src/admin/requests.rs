//! The request bodies and queries the admin API accepts, and their checks. Pure, so
//! they are tested (and fuzzed: `fuzz/fuzz_targets/admin_body.rs`) without a server;
//! every error is a 400.

use std::collections::HashMap;

use serde::Deserialize;

use super::error::ApiError;
use failover_daemon::action::{HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    reason: String,
    #[serde(default)]
    force: bool,
    caller: Option<String>,
    /// A fence: how long it lasts (humantime).
    #[serde(rename = "for")]
    lasts: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason: Option<String>,
    caller: Option<String>,
    #[serde(rename = "for")]
    lasts: Option<String>,
}

/// `for`: a duration in humantime form, above zero (its maximum,
/// `monitor.max_override`, is the daemon's to check).
fn check_lasts(lasts: Option<&str>) -> Result<Option<std::time::Duration>, ApiError> {
    let Some(text) = lasts else {
        return Ok(None);
    };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(Some(d)),
        _ => Err(ApiError::bad_request(format!(
            "for = {text:?}: expected a duration above zero such as \"30m\" or \"2h\""
        ))),
    }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillBody {
    reason: String,
    caller: Option<String>,
    /// How long the drill stays failed over (humantime); default `drills.hold`.
    hold: Option<String>,
    /// A fence before the failover (humantime, "0s" for none); default
    /// `drills.fence`.
    fence: Option<String>,
}

/// A validated `POST /v1/drills` body.
#[derive(Debug, PartialEq, Eq)]
pub struct DrillRequestBody {
    pub reason: String,
    pub caller: String,
    pub hold: Option<std::time::Duration>,
    pub fence: Option<std::time::Duration>,
}

/// `hold` and `fence`: durations of at most 24 hours (`hold` above zero).
fn check_step(
    key: &str,
    text: Option<&str>,
    zero_ok: bool,
) -> Result<Option<std::time::Duration>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if (zero_ok || !d.is_zero()) && d <= failover_config::MAX_DRILL_STEP => Ok(Some(d)),
        _ => Err(ApiError::bad_request(format!(
            "{key} = {text:?}: expected a duration {} up to 24h, such as \"10m\"",
            if zero_ok { "from 0s" } else { "above zero" }
        ))),
    }
}

/// Parses and checks a `POST /v1/drills` body; every error is a 400.
pub fn parse_drill_request(body: &[u8]) -> Result<DrillRequestBody, ApiError> {
    let body: DrillBody = parse_body(body, false)?.expect("empty bodies are refused");
    check_reason(&body.reason)?;
    Ok(DrillRequestBody {
        hold: check_step("hold", body.hold.as_deref(), false)?,
        fence: check_step("fence", body.fence.as_deref(), true)?,
        reason: body.reason,
        caller: check_caller(body.caller)?,
    })
}

/// Parses and checks a `POST /v1/drills/abort` body (a reason is optional).
pub fn parse_abort_request(body: &[u8]) -> Result<PauseRequest, ApiError> {
    let r = parse_pause_request(body)?;
    if r.lasts.is_some() {
        return Err(ApiError::bad_request("for: an abort does not last"));
    }
    Ok(r)
}

/// A validated manual-move request body.
#[derive(Debug, PartialEq, Eq)]
pub struct MoveRequest {
    pub reason: String,
    pub force: bool,
    pub caller: String,
    /// `for`: how long a fence lasts.
    pub lasts: Option<std::time::Duration>,
}

/// A validated pause or resume request body.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct PauseRequest {
    pub reason: Option<String>,
    pub caller: String,
    /// `for`: how long a pause lasts.
    pub lasts: Option<std::time::Duration>,
}

/// Parses and checks a `/v1/failover|failback|fence` body. Pure, so it is fuzzed on
/// its own (fuzz/fuzz_targets/admin_body.rs); every error is a 4xx.
pub fn parse_move_request(body: &[u8]) -> Result<MoveRequest, ApiError> {
    let body: MoveBody = parse_body(body, false)?.expect("empty bodies are refused");
    check_reason(&body.reason)?;
    Ok(MoveRequest {
        lasts: check_lasts(body.lasts.as_deref())?,
        reason: body.reason,
        force: body.force,
        caller: check_caller(body.caller)?,
    })
}

/// Parses and checks a `/v1/pause|resume` body (which may be empty).
pub fn parse_pause_request(body: &[u8]) -> Result<PauseRequest, ApiError> {
    let body: PauseBody = parse_body(body, true)?.unwrap_or_default();
    if let Some(r) = &body.reason {
        check_reason(r)?;
    }
    Ok(PauseRequest {
        lasts: check_lasts(body.lasts.as_deref())?,
        reason: body.reason,
        caller: check_caller(body.caller)?,
    })
}
