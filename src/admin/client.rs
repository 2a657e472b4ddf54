//! The operator's side of the admin API: `failover-monitor admin ...` and the CLI's
//! state moves talk to a running daemon over HTTP or HTTPS and print the answer for a
//! human, or as JSON; a refused token is answered with exactly what to set. A token
//! never goes over plain HTTP to a host other than loopback unless the operator says
//! so ([`Transport::allow_cleartext_token`]).

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Url;
use reqwest::tls::Certificate;
use serde_json::{Value, json};

use crate::cli::UsageError;

use failover_config::tokens::{
    NO_ADMIN_TOKEN_CONFIGURED, NO_TOKEN_CONFIGURED, READ_TOKEN_ENV, TOKEN_ENV, Token, TokenKind,
};

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<Token>,
}

/// What the daemon answered: the status code and the JSON body.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// `http://<listen>` (`https://` with `tls`), with a wildcard address replaced by
/// loopback.
pub fn base_url(listen: SocketAddr, tls: bool) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, listen.port()))
}

/// How the client reaches the daemon beyond its URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    /// For `https://`: a PEM file of the certificates to trust, in place of the
    /// system's roots (`--ca-file`, or the config's `admin.tls_cert_file`), and where
    /// it came from.
    pub ca_file: Option<(PathBuf, &'static str)>,
    /// `--allow-cleartext-token`: a token may go over `http://` to another host.
    pub allow_cleartext_token: bool,
}

/// Whether `url`'s host is this machine's loopback (an address, or `localhost`).
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<std::net::IpAddr>()
        .map_or(host.eq_ignore_ascii_case("localhost"), |ip| {
            ip.is_loopback()
        })
}

/// The base URL, checked: HTTP(S), and no token in cleartext off this machine unless
/// `transport` allows it.
fn check_base(base: &str, token: bool, transport: &Transport) -> Result<Url, UsageError> {
    let url = Url::parse(base).map_err(|e| UsageError(format!("--url {base}: not a URL ({e})")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if !token || transport.allow_cleartext_token || is_loopback(&url) => Ok(url),
        "http" => Err(UsageError(format!(
            "refusing to send a token to {base} in cleartext: it is not a loopback \
             address; use https:// (the daemon's admin.tls_cert_file and \
             admin.tls_key_file), or --allow-cleartext-token where the path to it is \
             private"
        ))),
        other => Err(UsageError(format!(
            "--url {base}: the scheme must be http or https, not {other}"
        ))),
    }
}

/// The certificates of `transport.ca_file`, if any.
fn trusted(transport: &Transport) -> Result<Option<Vec<Certificate>>, UsageError> {
    let Some((path, from)) = &transport.ca_file else {
        return Ok(None);
    };
    let bad = |why: String| UsageError(format!("{from} {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let certs = Certificate::from_pem_bundle(&pem).map_err(|e| bad(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no certificate (-----BEGIN CERTIFICATE-----)".into()
        ));
    }
    Ok(Some(certs))
}

impl Client {
    /// A client for the daemon at `base`, sending `token` with every call; refuses
    /// (a usage error, before anything is sent) a token over plain HTTP to another
    /// host unless `transport` allows it, and a CA file that cannot be used.
    pub fn new(
        base: String,
        token: Option<Token>,
        transport: &Transport,
    ) -> Result<Self, UsageError> {
        check_base(&base, token.is_some(), transport)?;
        let mut builder = reqwest::Client::builder();
        if let Some(certs) = trusted(transport)? {
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| UsageError(format!("cannot set up HTTPS: {e}")))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// A GET, with the token when the client has one.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the daemon at {}", self.base))?;
        Self::answer(resp).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Answer> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the daemon at {}", self.base))?;
        Self::answer(resp).await
    }

    /// Whether a failover-monitor daemon answers `GET /healthz` within `limit`; the
    /// error says what answered instead, or why nothing did.
    /// A TLS failure (an untrusted certificate, plain HTTP answering HTTPS) is an
    /// `Err` of the outer result: something answered, and it cannot be told whether
    /// it is a daemon, so nothing may act as if none ran.
    pub async fn probe_health(&self, limit: Duration) -> anyhow::Result<Result<(), String>> {
        let resp = match self
            .http
            .get(format!("{}/healthz", self.base))
            .timeout(limit)
            .send()
            .await
        {
            Ok(resp) => resp,
            Err(e) if is_tls_failure(&e) => bail!(
                "{} answered, but TLS failed ({}): if it is the monitor, name the \
                 certificate's CA with --ca-file",
                self.base,
                describe(e)
            ),
            Err(e) => return Ok(Err(describe(e))),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(if status == 200 && body["status"] == "ok" {
            Ok(())
        } else {
            Err(format!(
                "GET /healthz answered {status}, not as a failover-monitor daemon does"
            ))
        })
    }

    async fn answer(resp: reqwest::Response) -> anyhow::Result<Answer> {
        let status = resp.status().as_u16();
        let text = resp.text().await.context("reading the daemon's answer")?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }
}

/// Whether the TLS layer failed (rustls' own error somewhere in the chain): a peer
/// answered, with a certificate not trusted or not in TLS at all. An `io::Error`
/// hides what it wraps from `source()`, so the walk goes through `get_ref()` there.
fn is_tls_failure(e: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<tokio_rustls::rustls::Error>() {
            return true;
        }
        cause = match c.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    false
}

/// A reqwest error in a few words, without the URL (the caller names it).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".into();
    }
    // The innermost cause says it best ("Connection refused (os error 111)").
    let e = e.without_url();
    let mut cause: &dyn std::error::Error = &e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// A request body for a move; `lasts`, how long a fence lasts, as `for`.
pub fn move_body(
    reason: &str,
    force: bool,
    caller: &str,
    lasts: Option<std::time::Duration>,
) -> Value {
    let mut body = json!({"reason": reason, "force": force, "caller": caller});
    if let Some(d) = lasts {
        body["for"] = humantime::format_duration(d).to_string().into();
    }
    body
}

/// What to set when `status` or `history` is refused (401).
pub const READ_HINT: &str = "status and history send the read-only token, else the admin \
    token: set FAILOVER_MONITOR_ADMIN_READ_TOKEN to the daemon's read-only token (or name \
    a file holding it with --read-token-file PATH or admin.read_token_file in the config), \
    or FAILOVER_MONITOR_ADMIN_TOKEN to its admin token (--token-file PATH, admin.token_file)";
/// What to set when a move, pause or resume is refused (401 or 403).
pub const ADMIN_HINT: &str = "this command sends the admin token: set \
    FAILOVER_MONITOR_ADMIN_TOKEN to the daemon's admin token (or name a file holding it \
    with --token-file PATH or admin.token_file in the config); a read-only token cannot \
    change anything";

/// Where the token a command sent came from, so that a refusal names what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The environment variable ([`TokenKind::env`]).
    Env(&'static str),
    /// The file a flag named: the flag and the path.
    Flag(&'static str, PathBuf),
    /// The file the config named: the key and the path.
    Config(&'static str, PathBuf),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Env(var) => write!(f, "from {var}"),
            TokenSource::Flag(flag, path) => write!(f, "from {flag} {}", path.display()),
            TokenSource::Config(key, path) => write!(f, "from {key} = {}", path.display()),
        }
    }
}

/// The token a command sent: which one, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub kind: TokenKind,
    pub from: TokenSource,
}

/// What to tell the operator when the daemon refused the token (401 or 403): the
/// command needs `needs` (the read-only token, which the admin token stands in for, or
/// the admin token), sent `sent`, and the daemon said `message`.
pub fn token_hint(needs: TokenKind, sent: Option<&Sent>, status: u16, message: &str) -> String {
    let hint = match needs {
        TokenKind::Admin => ADMIN_HINT,
        TokenKind::Read => READ_HINT,
    };
    if message.starts_with(NO_ADMIN_TOKEN_CONFIGURED) && needs == TokenKind::Admin {
        return format!(
            "the daemon itself has no admin token, so it refuses every change whatever is \
             sent: start it with {TOKEN_ENV} or admin.token_file set; then {hint}"
        );
    }
    if message.starts_with(NO_TOKEN_CONFIGURED) {
        return format!(
            "the daemon itself has no token, so it refuses status and history whatever is \
             sent: start it with {READ_TOKEN_ENV} or admin.read_token_file (or the admin \
             token) set; then {hint}"
        );
    }
    match sent {
        None => format!("no token was sent; {hint}"),
        Some(s) if status == 403 => {
            format!(
                "the token sent ({}) is the daemon's read-only token; {hint}",
                s.from
            )
        }
        Some(s) => {
            let which = match s.kind {
                TokenKind::Admin => "admin",
                TokenKind::Read => "read-only",
            };
            format!(
                "the daemon does not have the {which} token sent ({}); {hint}",
                s.from
            )
        }
    }
}

/// Fails with the daemon's error message when the status is not 2xx, followed by
/// `hint` when the daemon refused the token (401 or 403).
pub fn check(answer: &Answer, hint: Option<&str>) -> anyhow::Result<()> {
    if (200..300).contains(&answer.status) {
        return Ok(());
    }
    let msg = answer.body["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| answer.body.to_string());
    match hint {
        Some(h) if matches!(answer.status, 401 | 403) => {
            bail!("the daemon answered {}: {msg}\n{h}", answer.status)
        }
        _ => bail!("the daemon answered {}: {msg}", answer.status),
    }
}

/// The path of one history page.
pub fn history_path(limit: usize, before: Option<u64>) -> String {
    match before {
        Some(b) => format!("/v1/history?limit={limit}&before={b}"),
        None => format!("/v1/history?limit={limit}"),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `admin status` for a human.
pub fn render_status(s: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "state     {} (version {})   mode {}{}   leader {}",
        text(&s["state"]),
        text(&s["version"]),
        text(&s["mode"]),
        if s["paused"] == true { " (paused)" } else { "" },
        text(&s["leader"]),
    );
    for role in ["primary", "secondary"] {
        let item = &s["regions"][role];
        let _ = if item.is_null() {
            writeln!(out, "{role:<9} unreadable")
        } else {
            writeln!(
                out,
                "{role:<9} {} v{}",
                text(&item["state"]),
                text(&item["version"])
            )
        };
    }
    if !s["divergence"].is_null() {
        let _ = writeln!(out, "DIVERGENCE {}", text(&s["divergence"]));
    }
    let _ = writeln!(out, "policy    {}", text(&s["policy"]));
    let readiness = &s["secondary_readiness"];
    if !readiness.is_null() {
        let reasons: Vec<&str> = readiness["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .collect();
        let _ = writeln!(
            out,
            "readiness {} at {}{}",
            if readiness["ready"] == true {
                "ready"
            } else {
                "NOT READY"
            },
            text(&readiness["checked_at"]),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", reasons.join("; "))
            }
        );
    }
    let drill = &s["drill"];
    if !drill.is_null() {
        let _ = writeln!(
            out,
            "drill     {} {} at {}{}",
            text(&drill["id"]),
            drill["outcome"].as_str().unwrap_or("RUNNING"),
            text(&drill["step"]),
            drill["why"]
                .as_str()
                .map_or(String::new(), |w| format!(": {w}"))
        );
    }
    let _ = writeln!(
        out,
        "{:<28} {:<9} {:<7} {:>10} {:>8} {:>8}  last error",
        "probe", "region", "health", "latency", "ok", "failed"
    );
    for p in s["probes"].as_array().into_iter().flatten() {
        let latency = p["last_latency_ms"]
            .as_f64()
            .map_or("-".into(), |ms| format!("{ms:.1}ms"));
        let _ = writeln!(
            out,
            "{:<28} {:<9} {:<7} {:>10} {:>8} {:>8}  {}",
            text(&p["name"]),
            text(&p["region"]),
            text(&p["health"]),
            latency,
            text(&p["successes"]),
            text(&p["failures"]),
            p["last_error"].as_str().unwrap_or(""),
        );
    }
    out
}

/// `admin history` for a human.
pub fn render_history(body: &Value) -> String {
    let mut out = String::new();
    for r in body["records"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "v{:<4} {}  {:>8} -> {:<8} {:<6} by {}: {}{}",
            text(&r["version"]),
            text(&r["at"]),
            text(&r["from"]),
            text(&r["to"]),
            text(&r["trigger"]),
            text(&r["by"]),
            text(&r["reason"]),
            if r["forced"] == true { " (forced)" } else { "" },
        );
    }
    if let Some(next) = body["next_before"].as_u64() {
        let _ = writeln!(out, "older records: --before {next}");
    }
    out
}

/// A committed move for a human.
pub fn render_move(body: &Value) -> String {
    let r = &body["record"];
    format!(
        "{} -> {} committed (version {}){}",
        text(&r["from"]),
        text(&r["to"]),
        text(&r["version"]),
        if body["primary_updated"] == true {
            ""
        } else {
            "; the primary's copy will follow when it answers"
        }
    )
}

#[cfg(test)]
mod tests;
