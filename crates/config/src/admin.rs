//! `[admin]`: where the admin API (and `/metrics`) listens, its tokens, its TLS
//! certificate, and the limits that keep a flood of connections from mattering.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{HumanDuration, check_at_least, or_default};
use super::{ConfigError, defaults, invalid};
use crate::tokens::TOKEN_ENV;

/// `[admin]` as written; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    /// Address and port of the admin API, which serves `/metrics` too: an IP address,
    /// not a host name. Anything but a loopback address needs a token (`token_file`
    /// or the environment variable `FAILOVER_MONITOR_ADMIN_TOKEN`) and TLS
    /// (`tls_cert_file`, `tls_key_file`), unless `allow_cleartext_token` says why not.
    /// Default: `"127.0.0.1:9464"`.
    pub(super) listen: Option<String>,
    /// File holding the admin bearer token (at least 16 printable characters), which
    /// opens every route. `FAILOVER_MONITOR_ADMIN_TOKEN` takes precedence.
    /// Default: none (no admin token: mutating calls are refused).
    pub(super) token_file: Option<PathBuf>,
    /// File holding a read-only bearer token (the same rules; not the admin token's
    /// value), which opens `GET /v1/status` and `GET /v1/history` only.
    /// `FAILOVER_MONITOR_ADMIN_READ_TOKEN` takes precedence.
    /// Default: none (reads need the admin token; with neither, they are refused).
    pub(super) read_token_file: Option<PathBuf>,
    /// PEM file holding the server's certificate, followed by its chain: with
    /// `tls_key_file`, the admin API speaks HTTPS only (TLS 1.2 and 1.3). Read at
    /// start, and again on SIGHUP (a renewed certificate at the same paths).
    /// Default: none (plain HTTP).
    pub(super) tls_cert_file: Option<PathBuf>,
    /// PEM file holding the private key of `tls_cert_file` (PKCS #8, PKCS #1 or
    /// SEC 1). Set both or neither. Default: none.
    pub(super) tls_key_file: Option<PathBuf>,
    /// `true` lets a non-loopback `listen` serve plain HTTP, so that tokens cross the
    /// network in cleartext: only for a TLS-terminating sidecar or load balancer that
    /// is the only way to reach the port. Default: `false` (refused).
    pub(super) allow_cleartext_token: Option<bool>,
    /// A new connection must complete its TLS handshake and send its first request's
    /// head within this; a kept-alive one, the rest of a head within this of its
    /// first byte. Slower connections are closed. At least 100ms. Default: `"5s"`.
    pub(super) header_read_timeout: Option<HumanDuration>,
    /// A kept-alive connection is closed when no next request starts within this of
    /// the last answer. At least 100ms. Default: `"10s"`.
    pub(super) idle_timeout: Option<HumanDuration>,
    /// No connection stays open longer, whatever it does; it stops taking requests
    /// 30s (the longest a request may take) before. More than
    /// `header_read_timeout` + 30s. Default: `"1m"`.
    pub(super) max_connection_age: Option<HumanDuration>,
    /// Connections served at once, 1 to 1024; a connection beyond them is closed as
    /// soon as it is accepted. Default: `64`.
    pub(super) max_connections: Option<i64>,
}

/// The certificate and key files of the admin API's TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminTls {
    /// PEM: the certificate, then its chain.
    pub cert_file: PathBuf,
    /// PEM: its private key.
    pub key_file: PathBuf,
}

/// How long a connection to the admin API may take over each part, and how many
/// there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AdminLimits {
    /// TLS handshake and first head; the rest of a later head after its first byte.
    pub header_read_timeout: Duration,
    /// A kept-alive connection's wait for its next request.
    pub idle_timeout: Duration,
    /// The longest a connection stays open.
    pub max_connection_age: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: defaults::ADMIN_HEADER_READ_TIMEOUT,
            idle_timeout: defaults::ADMIN_IDLE_TIMEOUT,
            max_connection_age: defaults::ADMIN_MAX_CONNECTION_AGE,
            max_connections: defaults::ADMIN_MAX_CONNECTIONS as usize,
        }
    }
}

/// `[admin]`, validated, with the defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct AdminSettings {
    /// Address and port of the admin API and `/metrics`.
    pub listen: SocketAddr,
    /// File holding the admin token (`FAILOVER_MONITOR_ADMIN_TOKEN` takes precedence).
    pub token_file: Option<PathBuf>,
    /// File holding the read-only token (`FAILOVER_MONITOR_ADMIN_READ_TOKEN` takes
    /// precedence).
    pub read_token_file: Option<PathBuf>,
    /// None: plain HTTP.
    pub tls: Option<AdminTls>,
    /// Plain HTTP on a non-loopback address was asked for (a TLS-terminating proxy).
    pub allow_cleartext_token: bool,
    /// Timeouts and the connection cap.
    pub limits: AdminLimits,
}

const MIN_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_CONNECTIONS: i64 = 1024;

impl RawAdmin {
    pub(super) fn validate(self) -> Result<AdminSettings, ConfigError> {
        let text = self.listen.unwrap_or_else(|| defaults::ADMIN_LISTEN.into());
        let listen: SocketAddr = text.parse().map_err(|_| {
            invalid(
                "admin.listen",
                format!("{text:?}"),
                "expected an IP address and port such as \"127.0.0.1:9464\"",
            )
        })?;
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Some(AdminTls {
                cert_file,
                key_file,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "admin.tls_key_file",
                    "(not set)",
                    "required with admin.tls_cert_file: the certificate's private key",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "admin.tls_cert_file",
                    "(not set)",
                    "required with admin.tls_key_file: the certificate of that key",
                ));
            }
        };
        Ok(AdminSettings {
            listen,
            token_file: self.token_file,
            read_token_file: self.read_token_file,
            tls,
            allow_cleartext_token: self.allow_cleartext_token.unwrap_or(false),
            limits: limits(
                self.header_read_timeout,
                self.idle_timeout,
                self.max_connection_age,
                self.max_connections,
            )?,
        })
    }
}

fn limits(
    header_read_timeout: Option<HumanDuration>,
    idle_timeout: Option<HumanDuration>,
    max_connection_age: Option<HumanDuration>,
    max_connections: Option<i64>,
) -> Result<AdminLimits, ConfigError> {
    let header = or_default(header_read_timeout, defaults::ADMIN_HEADER_READ_TIMEOUT);
    check_at_least("admin.header_read_timeout", header, MIN_TIMEOUT)?;
    let idle = or_default(idle_timeout, defaults::ADMIN_IDLE_TIMEOUT);
    check_at_least("admin.idle_timeout", idle, MIN_TIMEOUT)?;
    let age = or_default(max_connection_age, defaults::ADMIN_MAX_CONNECTION_AGE);
    let request = defaults::ADMIN_REQUEST_TIMEOUT;
    if age <= header + request {
        return Err(invalid(
            "admin.max_connection_age",
            HumanDuration(age),
            format!(
                "must be more than admin.header_read_timeout ({}) + {} (the longest a \
                 request may take), so that a connection's first request can finish",
                HumanDuration(header),
                HumanDuration(request)
            ),
        ));
    }
    let cap = max_connections.unwrap_or(i64::from(defaults::ADMIN_MAX_CONNECTIONS));
    if !(1..=MAX_CONNECTIONS).contains(&cap) {
        return Err(invalid(
            "admin.max_connections",
            cap,
            format!("1 to {MAX_CONNECTIONS}"),
        ));
    }
    Ok(AdminLimits {
        header_read_timeout: header,
        idle_timeout: idle,
        max_connection_age: age,
        max_connections: usize::try_from(cap).unwrap_or(1),
    })
}

impl AdminSettings {
    /// What `run` checks of `[admin]` before it starts: [`Self::check_exposure`], and
    /// that the TLS files can be read (the binary, which speaks TLS, reads their PEM).
    pub(super) fn check_for_run(&self, has_token: bool) -> Result<(), ConfigError> {
        self.check_exposure(has_token)?;
        let Some(tls) = &self.tls else {
            return Ok(());
        };
        for (key, path) in [
            ("admin.tls_cert_file", &tls.cert_file),
            ("admin.tls_key_file", &tls.key_file),
        ] {
            if let Err(e) = std::fs::File::open(path) {
                return Err(invalid(
                    key,
                    format!("{:?}", path.display().to_string()),
                    format!("cannot be read: {e}"),
                ));
            }
        }
        Ok(())
    }

    /// An admin API reachable from other hosts must not be open, and its tokens must
    /// not cross the network in cleartext: `run` refuses a non-loopback `listen`
    /// without the admin token (a read-only token alone is not enough: this rule
    /// predates it and stays as strict), and one without TLS unless
    /// `allow_cleartext_token` is set.
    pub(super) fn check_exposure(&self, has_token: bool) -> Result<(), ConfigError> {
        if self.listen.ip().is_loopback() {
            return Ok(());
        }
        let listen = format!("\"{}\"", self.listen);
        if !has_token {
            return Err(invalid(
                "admin.listen",
                listen,
                format!(
                    "a non-loopback address needs an admin token (admin.token_file or {TOKEN_ENV})"
                ),
            ));
        }
        if self.tls.is_none() && !self.allow_cleartext_token {
            return Err(invalid(
                "admin.listen",
                listen,
                "a non-loopback address without TLS would carry the tokens in cleartext: \
                 set admin.tls_cert_file and admin.tls_key_file, or \
                 admin.allow_cleartext_token = true when a TLS-terminating proxy or load \
                 balancer is the only way to this port",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
