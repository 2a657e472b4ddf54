//! The admin bearer token: loaded from `admin.token_file` or
//! `FAILOVER_MONITOR_ADMIN_TOKEN`, never printed, compared in constant time.

use std::fmt;
use std::path::Path;

use crate::config::{ConfigError, Settings};

/// Environment variable holding the token; it takes precedence over `token_file`.
pub const TOKEN_ENV: &str = "FAILOVER_MONITOR_ADMIN_TOKEN";
const MIN_LEN: usize = 16;

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

/// The token the settings and the environment give, if any.
pub fn load(settings: &Settings, env: Option<String>) -> Result<Option<Token>, ConfigError> {
    if let Some(v) = env {
        return Token::new(v).map(Some).map_err(|why| ConfigError::Invalid {
            key: TOKEN_ENV.into(),
            value: "[redacted]".into(),
            allowed: why,
        });
    }
    let Some(path) = &settings.admin.token_file else {
        return Ok(None);
    };
    read_file(path).map(Some)
}

fn read_file(path: &Path) -> Result<Token, ConfigError> {
    let invalid = |allowed: String| ConfigError::Invalid {
        key: "admin.token_file".into(),
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
            tracing::warn!(path = %path.display(), "the admin token file is readable by every user");
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
}
