//! The admin API's tests: request checks without a server, then a served router over
//! in-memory regions (loopback only), and the OpenAPI document against the routes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::*;
use failover_daemon::action::{HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT};
use failover_daemon::control::Request;
#[test]
fn move_and_pause_bodies_are_checked_without_a_server() {
    let ok =
        parse_move_request(br#"{"reason": "drill", "force": true, "caller": "a.b@c"}"#).unwrap();
    assert_eq!(
        ok,
        MoveRequest {
            reason: "drill".into(),
            force: true,
            caller: "a.b@c".into(),
            lasts: None,
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
    assert_eq!(
        parse_pause_request(b"").unwrap(),
        PauseRequest {
            caller: "operator".into(),
            ..PauseRequest::default()
        }
    );
    let two_hours = parse_pause_request(br#"{"for": "2h"}"#).unwrap();
    assert_eq!(two_hours.lasts, Some(Duration::from_secs(7200)));
    for bad in [r#"{"for": "0s"}"#, r#"{"for": "soon"}"#, r#"{"for": 7200}"#] {
        let e = parse_pause_request(bad.as_bytes()).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let fence = parse_move_request(br#"{"reason": "r", "for": "30m"}"#).unwrap();
    assert_eq!(fence.lasts, Some(Duration::from_secs(1800)));
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
            .message()
            .contains("only limit and before")
    );
}

/// A served router over in-memory regions (the secondary with the config item at
/// version 30 and its 30 audit records) with `tokens`; pause and resume are
/// answered as a daemon would. Loopback only.
async fn serve_with(tokens: Tokens) -> String {
    use failover_core::model::{AuditRecord, ConfigItem, Role, Trigger, keys};
    use failover_testkit::{MemItemStore, MemTable, Record, TokioWallClock};
    let tables = [MemTable::new(), MemTable::new()];
    let mut report = failover_core::report::Report::new(
        30,
        AppState::Failover,
        AppState::Active,
        Trigger::Manual,
        "admin:ana",
    );
    report.complete = true;
    tables[1].put(&keys::report("app", 30), Record::Report(Box::new(report)));
    for t in &tables {
        t.put(
            "app",
            Record::Item(ConfigItem {
                state: AppState::Active,
                version: 30,
                updated_at: None,
                updated_by: None,
                reason: None,
                expires_at: None,
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
        failover_daemon::action::Extras {
            dns: None,
            canaries: failover_daemon::action::Canaries::default(),
            clock: Arc::new(TokioWallClock::new(std::time::SystemTime::UNIX_EPOCH)),
            tables: failover_config::TablesMode::PerRegion,
        },
        1,
    ));
    let (_status_tx, status) =
        tokio::sync::watch::channel(failover_daemon::control::Status::default());
    let (requests, mut rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let _keep = _status_tx;
        while let Some(cmd) = rx.recv().await {
            if let Request::SetPaused { reply, .. } = cmd {
                let _ = reply.send(Ok(false));
            }
        }
    });
    let state = Arc::new(AdminState {
        handle: Handle { status, requests },
        metrics: Arc::new(Metrics::new()),
        actuator,
        tokens,
        aws: tokio::runtime::Handle::current(),
        drill_schedule: serde_json::Value::Null,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = Server {
        listener,
        router: router(state),
        tls: None,
        limits: failover_config::AdminLimits::default(),
    };
    tokio::spawn(server.serve(std::future::pending()));
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

fn openapi_doc() -> Value {
    serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON")
}

/// The served OpenAPI document lists exactly the routes the router has.
#[test]
fn openapi_document_matches_the_routes() {
    let doc = openapi_doc();
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
    // The history parameters agree with the server's bounds.
    let params = &doc["paths"]["/v1/history"]["get"]["parameters"];
    assert_eq!(params[0]["name"], "limit");
    assert_eq!(params[0]["schema"]["maximum"], HISTORY_MAX_LIMIT);
    assert_eq!(params[0]["schema"]["default"], HISTORY_DEFAULT_LIMIT);
    assert_eq!(params[1]["name"], "before");
    assert_eq!(params[1]["schema"]["minimum"], 1);
    assert_eq!(params[1]["schema"]["maximum"], BEFORE_MAX);
}

/// Each route documents the tokens it takes and the refusals it gives.
#[test]
fn openapi_document_states_tokens_and_refusals() {
    let doc = openapi_doc();
    // Every mutating route documents its success (200, or 202 for a drill that
    // runs on), 400, 401 and (for moves and drills) 409.
    for (m, p) in ROUTES.iter().filter(|(m, _)| *m == "post") {
        let responses = &doc["paths"][p][m]["responses"];
        assert!(
            responses.get("200").is_some() || responses.get("202").is_some(),
            "{m} {p} documents no success"
        );
        for code in ["400", "401"] {
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
    for p in ["/v1/status", "/v1/history", "/v1/drills"] {
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
}

#[tokio::test]
async fn reports_are_read_by_version_or_latest_as_json_or_a_page() {
    let base = serve_with(both()).await;
    for path in ["/v1/reports/30", "/v1/reports/latest"] {
        let (code, body) = call("GET", format!("{base}{path}"), Some(READ)).await;
        assert_eq!((code, body["version"].as_u64()), (200, Some(30)), "{path}");
        assert_eq!(body["by"], "admin:ana");
        assert_eq!(call("GET", format!("{base}{path}"), None).await.0, 401);
    }
    let (code, page) = call(
        "GET",
        format!("{base}/v1/reports/30?format=html"),
        Some(READ),
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        page.as_str()
            .is_some_and(|p| p.starts_with("<!doctype html>")),
        "{page}"
    );
    let (code, body) = call("GET", format!("{base}/v1/reports/29"), Some(ADMIN)).await;
    assert_eq!((code, body["error"].as_str()), (404, Some("not_found")));
    for bad in [
        "/v1/reports/0",
        "/v1/reports/x",
        "/v1/reports/30?format=pdf",
        "/v1/reports/30?x=1",
    ] {
        assert_eq!(
            call("GET", format!("{base}{bad}"), Some(READ)).await.0,
            400,
            "{bad}"
        );
    }
}
