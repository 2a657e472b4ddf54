//! `[admin]`: where the admin API (and `/metrics`) listens, and where its tokens are.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, defaults, invalid};
use crate::tokens::TOKEN_ENV;

/// `[admin]` as written; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    /// Address and port of the admin API, which serves `/metrics` too: an IP address,
    /// not a host name. Anything but a loopback address needs a token (`token_file`
    /// or the environment variable `FAILOVER_MONITOR_ADMIN_TOKEN`).
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
}

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
        Ok(AdminSettings {
            listen,
            token_file: self.token_file,
            read_token_file: self.read_token_file,
        })
    }
}

impl AdminSettings {
    /// An admin API reachable from other hosts must not be open: `run` refuses a
    /// non-loopback `listen` without the admin token (a read-only token alone is not
    /// enough: this rule predates it and stays as strict).
    pub(super) fn check_exposure(&self, has_token: bool) -> Result<(), ConfigError> {
        if self.listen.ip().is_loopback() || has_token {
            return Ok(());
        }
        Err(invalid(
            "admin.listen",
            format!("\"{}\"", self.listen),
            format!(
                "a non-loopback address needs an admin token (admin.token_file or {TOKEN_ENV})"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(listen: &str) -> AdminSettings {
        RawAdmin {
            listen: Some(listen.into()),
            ..RawAdmin::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn only_loopback_may_go_without_a_token() {
        for open in ["127.0.0.1:9464", "[::1]:9464"] {
            assert!(admin(open).check_exposure(false).is_ok(), "{open}");
        }
        for exposed in ["0.0.0.0:9464", "[::]:9464", "10.0.0.5:9464"] {
            assert!(admin(exposed).check_exposure(true).is_ok(), "{exposed}");
            assert!(admin(exposed).check_exposure(false).is_err(), "{exposed}");
        }
        assert_eq!(
            admin("[::]:9464")
                .check_exposure(false)
                .unwrap_err()
                .to_string(),
            "admin.listen = \"[::]:9464\": a non-loopback address needs an admin token \
             (admin.token_file or FAILOVER_MONITOR_ADMIN_TOKEN)"
        );
    }

    #[test]
    fn listen_is_an_address_not_a_host_name() {
        assert_eq!(
            RawAdmin::default().validate().unwrap().listen,
            defaults::ADMIN_LISTEN.parse::<SocketAddr>().unwrap()
        );
        let err = RawAdmin {
            listen: Some("localhost:9464".into()),
            ..RawAdmin::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("admin.listen = \"localhost:9464\"")
        );
    }
}
