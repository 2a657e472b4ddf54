//! `GET /v1/reports/{version}`: a transition's recovery report (the read-only or the
//! admin token), as JSON, or as one self-contained HTML page with `?format=html`.
//! `latest` names the newest report.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;

use super::AdminState;
use super::error::{ApiError, ApiResult, json_ok};
use super::handlers::authorize_read;
use super::requests::BEFORE_MAX;
use crate::report_page;

/// How far below the item's version `latest` looks.
const NEWEST_DEPTH: u64 = 20;

/// `{version}`: a version (1 to 2^53 - 1) or `latest`.
fn parse_version(text: &str) -> Result<Option<u64>, ApiError> {
    if text == "latest" {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(v) if (1..=BEFORE_MAX).contains(&v) => Ok(Some(v)),
        _ => Err(ApiError::bad_request(format!(
            "version = {text:?}: expected a version, a whole number from 1 to {BEFORE_MAX}, \
             or latest"
        ))),
    }
}

pub(super) async fn report(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(version): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    authorize_read(&s, &headers)?;
    let Query(q) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    if let Some(k) = q.keys().find(|k| k.as_str() != "format") {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?}; only format is accepted"
        )));
    }
    let html = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format = {other:?}: expected json or html"
            )));
        }
    };
    let version = parse_version(&version)?;
    let actuator = s.actuator.clone();
    let read = s
        .aws
        .spawn(async move {
            match version {
                Some(v) => actuator.report(v).await,
                None => {
                    let item = actuator.current().await?;
                    actuator.newest_report(item.version, NEWEST_DEPTH).await
                }
            }
        })
        .await
        .map_err(|e| unavailable(format!("the read did not finish: {e}")))?
        .map_err(|e| unavailable(e.to_string()))?;
    let Some(report) = read else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            match version {
                Some(v) => format!("no recovery report of version {v}"),
                None => format!("no recovery report among the last {NEWEST_DEPTH} versions"),
            },
        ));
    };
    if html {
        return Ok((
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            report_page::html(&report),
        )
            .into_response());
    }
    json_ok(
        StatusCode::OK,
        serde_json::to_value(report).unwrap_or_default(),
    )
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_named_by_its_version_or_latest() {
        assert_eq!(parse_version("7").unwrap(), Some(7));
        assert_eq!(parse_version("latest").unwrap(), None);
        for bad in ["0", "-1", "x", "9007199254740992"] {
            assert_eq!(
                parse_version(bad).unwrap_err().status(),
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
}
