//! The bearer tokens: the admin token (`admin.token_file` or
//! `FAILOVER_MONITOR_ADMIN_TOKEN`), which opens every route, and the read-only token
//! (`admin.read_token_file` or `FAILOVER_MONITOR_ADMIN_READ_TOKEN`), which opens the
//! GET routes that show state (`/v1/status`, `/v1/history`). Never printed, compared
//! in constant time.

use std::fmt;
use std::path::Path;

use crate::{ConfigError, Settings};

/// Environment variable holding the admin token; it takes precedence over `token_file`.
pub const TOKEN_ENV: &str = "FAILOVER_MONITOR_ADMIN_TOKEN";
/// Environment variable holding the read-only token; it takes precedence over
/// `read_token_file`.
pub const READ_TOKEN_ENV: &str = "FAILOVER_MONITOR_ADMIN_READ_TOKEN";
const MIN_LEN: usize = 16;

/// How the daemon's 401 begins when it has no token at all, so reads are refused
/// whatever the caller sends (the CLI then says that the daemon needs a token).
pub const NO_TOKEN_CONFIGURED: &str = "no token is configured";
/// How the daemon's 401 begins when it has no admin token, so every mutating call is
/// refused whatever the caller sends.
pub const NO_ADMIN_TOKEN_CONFIGURED: &str = "no admin token is configured";

/// A secret that prints as `[redacted]`.
#[derive(Clone)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl Token {
    pub fn new(value: String) -> Result<Self, String> {
        let value = value.trim().to_owned();
        if value.len() < MIN_LEN {
            return Err(format!("must be at least {MIN_LEN} characters"));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces".into());
        }
        Ok(Self(value))
    }

    /// The value, for an `Authorization` header sent by the CLI.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks an `Authorization` header value (`Bearer <token>`) in time that does not
    /// depend on where the first differing byte is.
    pub fn matches_header(&self, header: &str) -> bool {
        let presented = header.strip_prefix("Bearer ").unwrap_or("");
        constant_time_eq(presented.as_bytes(), self.0.as_bytes())
    }
}

/// Compares every byte of the longer input whatever the content; only the lengths'
/// equality is visible in the timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// One of the two tokens: where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Opens every route.
    Admin,
    /// Opens the GET routes only.
    Read,
}

impl TokenKind {
    /// The environment variable that gives it (and wins over the file).
    pub fn env(self) -> &'static str {
        match self {
            TokenKind::Admin => TOKEN_ENV,
            TokenKind::Read => READ_TOKEN_ENV,
        }
    }

    /// The config key naming its file.
    pub fn key(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin.token_file",
            TokenKind::Read => "admin.read_token_file",
        }
    }

    fn file(self, settings: &Settings) -> Option<&Path> {
        match self {
            TokenKind::Admin => settings.admin.token_file.as_deref(),
            TokenKind::Read => settings.admin.read_token_file.as_deref(),
        }
    }
}

/// The tokens a daemon accepts; either may be absent.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub admin: Option<Token>,
    pub read: Option<Token>,
}

/// What an `Authorization` header opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No configured token matches.
    Denied,
    /// The read-only token: GET routes only.
    Read,
    /// The admin token: every route.
    Admin,
}

impl Tokens {
    /// Whether any token is configured.
    pub fn any(&self) -> bool {
        self.admin.is_some() || self.read.is_some()
    }

    /// Checks `header` against both tokens (both comparisons always run, each in
    /// constant time).
    pub fn access(&self, header: &str) -> Access {
        let admin = self
            .admin
            .as_ref()
            .is_some_and(|t| t.matches_header(header));
        let read = self.read.as_ref().is_some_and(|t| t.matches_header(header));
        match (admin, read) {
            (true, _) => Access::Admin,
            (false, true) => Access::Read,
            (false, false) => Access::Denied,
        }
    }
}

/// The admin token the settings and the environment give, if any.
pub fn load(settings: &Settings, env: Option<String>) -> Result<Option<Token>, ConfigError> {
    load_kind(TokenKind::Admin, settings, env)
}

/// The token of `kind` the settings and `env` (the value of [`TokenKind::env`], if
/// set) give, if any.
pub fn load_kind(
    kind: TokenKind,
    settings: &Settings,
    env: Option<String>,
) -> Result<Option<Token>, ConfigError> {
    load_from(kind, env, kind.file(settings))
}

/// The token of `kind` from `env` (the value of [`TokenKind::env`], if set), else
/// from `file`: what the CLI sends when a flag names the file or no config was read.
pub fn load_from(
    kind: TokenKind,
    env: Option<String>,
    file: Option<&Path>,
) -> Result<Option<Token>, ConfigError> {
    if let Some(v) = env {
        return Token::new(v).map(Some).map_err(|why| ConfigError::Invalid {
            key: kind.env().into(),
            value: "[redacted]".into(),
            allowed: why,
        });
    }
    let Some(path) = file else {
        return Ok(None);
    };
    read_file(kind, path).map(Some)
}

/// Both tokens; the read-only token must differ from the admin token (the same value
/// in both would make the read-only one an admin token).
pub fn load_tokens(
    settings: &Settings,
    env_admin: Option<String>,
    env_read: Option<String>,
) -> Result<Tokens, ConfigError> {
    let read_from_env = env_read.is_some();
    let tokens = Tokens {
        admin: load_kind(TokenKind::Admin, settings, env_admin)?,
        read: load_kind(TokenKind::Read, settings, env_read)?,
    };
    if let (Some(a), Some(r)) = (&tokens.admin, &tokens.read)
        && constant_time_eq(a.expose().as_bytes(), r.expose().as_bytes())
    {
        let (key, value) = if read_from_env {
            (READ_TOKEN_ENV.to_owned(), "[redacted]".to_owned())
        } else {
            let path = settings
                .admin
                .read_token_file
                .as_deref()
                .unwrap_or(Path::new(""));
            (
                TokenKind::Read.key().to_owned(),
                format!("{:?}", path.display().to_string()),
            )
        };
        return Err(ConfigError::Invalid {
            key,
            value,
            allowed: "the read-only token must differ from the admin token".into(),
        });
    }
    Ok(tokens)
}

fn read_file(kind: TokenKind, path: &Path) -> Result<Token, ConfigError> {
    let invalid = |allowed: String| ConfigError::Invalid {
        key: kind.key().into(),
        value: format!("{:?}", path.display().to_string()),
        allowed,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot be read: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o004 != 0
        {
            tracing::warn!(path = %path.display(), key = kind.key(), "a token file is readable by every user");
        }
    }
    Token::new(text).map_err(|why| invalid(format!("the token in it {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_agrees_with_eq() {
        for (a, b) in [
            ("", ""),
            ("a", ""),
            ("abc", "abc"),
            ("abc", "abd"),
            ("abc", "abcd"),
            ("xbc", "abc"),
        ] {
            assert_eq!(
                constant_time_eq(a.as_bytes(), b.as_bytes()),
                a == b,
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn tokens_check_bearer_headers_and_never_print() {
        let t = Token::new("0123456789abcdef-secret\n".into()).unwrap();
        assert!(t.matches_header("Bearer 0123456789abcdef-secret"));
        assert!(!t.matches_header("Bearer 0123456789abcdef-secreT"));
        assert!(!t.matches_header("0123456789abcdef-secret"));
        assert!(!t.matches_header("Basic 0123456789abcdef-secret"));
        assert_eq!(format!("{t:?}"), "Token([redacted])");
        assert_eq!(
            Token::new("short".into()).unwrap_err(),
            "must be at least 16 characters"
        );
        assert!(Token::new("has a space in it, long enough".into()).is_err());
    }

    #[test]
    fn the_read_token_opens_reads_and_the_admin_token_everything() {
        let admin = Token::new("admin-token-0123456789".into()).unwrap();
        let read = Token::new("read-token-0123456789".into()).unwrap();
        let both = Tokens {
            admin: Some(admin.clone()),
            read: Some(read.clone()),
        };
        assert!(both.any());
        assert_eq!(both.access("Bearer admin-token-0123456789"), Access::Admin);
        assert_eq!(both.access("Bearer read-token-0123456789"), Access::Read);
        assert_eq!(both.access("Bearer read-token-012345678"), Access::Denied);
        assert_eq!(both.access("read-token-0123456789"), Access::Denied);
        assert_eq!(both.access(""), Access::Denied);
        let read_only = Tokens {
            admin: None,
            read: Some(read),
        };
        assert_eq!(
            read_only.access("Bearer read-token-0123456789"),
            Access::Read
        );
        assert_eq!(
            read_only.access("Bearer admin-token-0123456789"),
            Access::Denied
        );
        let none = Tokens::default();
        assert!(!none.any());
        // No configured token: even an empty bearer value opens nothing.
        assert_eq!(none.access("Bearer "), Access::Denied);
        assert_eq!(format!("{both:?}").matches("[redacted]").count(), 2);
        assert!(!format!("{both:?}").contains("0123456789"));
    }
}
