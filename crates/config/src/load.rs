//! Reading `monitor.toml`, merging the `FAILOVER_MONITOR__SECTION__KEY` environment
//! variables over it, and saying which variable a bad key came from.

use std::io;
use std::path::Path;

use super::{ConfigError, RawConfig, Settings};

/// Environment variables with this prefix (and `__` between section and key) override
/// the file.
pub const ENV_PREFIX: &str = "FAILOVER_MONITOR";

/// The key errors about the file as a whole are reported under.
pub(super) const WHOLE_FILE: &str = "monitor.toml";

/// Reads `path`, applies environment overrides from the process environment, parses
/// and validates.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| read_error(path, &e))?;
    parse(&text, std::env::vars())
}

fn read_error(path: &Path, e: &io::Error) -> ConfigError {
    if e.kind() == io::ErrorKind::NotFound {
        ConfigError::NotFound {
            path: path.to_owned(),
            looked_for: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
        }
    } else {
        ConfigError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }
}

/// Parses config text with the given environment (only `FAILOVER_MONITOR__*` variables
/// are looked at). Pure, so tests pass their own environment.
pub fn parse(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let prefix = format!("{ENV_PREFIX}__");
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .collect();
    let origins = EnvOrigins::new(env.keys());
    merge_and_validate(text, env).map_err(|e| origins.attribute(e).redacted())
}

fn merge_and_validate(
    text: &str,
    env: config::Map<String, String>,
) -> Result<Settings, ConfigError> {
    let whole_file = |message: String| ConfigError::Parse {
        key: WHOLE_FILE.into(),
        message,
    };
    let merged = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        )
        .build()
        .map_err(|e| whole_file(one_line(&e.to_string())))?;
    // Going through serde_json::Value gives serde's own, precise error messages.
    let value: serde_json::Value = merged
        .try_deserialize()
        .map_err(|e| whole_file(e.to_string()))?;
    let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Parse {
            key: if key == "." { WHOLE_FILE.into() } else { key },
            message: e.into_inner().to_string(),
        }
    })?;
    raw.validate()
}

/// TOML syntax errors come as a multi-line snippet; keep "where" and "what".
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_owned();
    match lines.rfind(|l| !l.starts_with('|') && !l.contains(" | ")) {
        Some(last) if last != first => format!("{first}: {last}"),
        _ => first,
    }
}

/// Which environment variable set which key, so that an error about a key the file
/// does not have names the variable the user actually wrote.
pub(super) struct EnvOrigins(Vec<(Vec<String>, String)>);

impl EnvOrigins {
    /// `vars`: names of environment variables; only `FAILOVER_MONITOR__*` ones count.
    pub(super) fn new<'a>(vars: impl Iterator<Item = &'a String>) -> Self {
        let prefix = format!("{ENV_PREFIX}__");
        let mut origins: Vec<(Vec<String>, String)> = vars
            .filter_map(|var| {
                // As the `config` crate reads it: lower case, `__` between segments.
                let key = var.strip_prefix(&prefix)?.to_lowercase();
                let path = key.split("__").map(str::to_owned).collect();
                Some((path, var.clone()))
            })
            .collect();
        origins.sort_by(|a, b| a.1.cmp(&b.1));
        Self(origins)
    }

    /// The variable that set `key` itself, else one that set something inside it.
    fn variable_for(&self, key: &str) -> Option<&str> {
        let path = key_path(key);
        if path.is_empty() {
            return None;
        }
        let exact = self.0.iter().find(|(p, _)| *p == path);
        let inside = || self.0.iter().find(|(p, _)| p.starts_with(&path));
        exact.or_else(inside).map(|(_, var)| var.as_str())
    }

    pub(super) fn attribute(&self, error: ConfigError) -> ConfigError {
        let (ConfigError::Parse { key, .. } | ConfigError::Invalid { key, .. }) = &error else {
            return error;
        };
        if key == WHOLE_FILE {
            return error;
        }
        match self.variable_for(key) {
            Some(var) => ConfigError::FromEnv {
                var: var.to_owned(),
                error: Box::new(error),
            },
            None => error,
        }
    }
}

/// `probes[0].fall` -> `["probes", "0", "fall"]`, the shape of an environment key.
fn key_path(key: &str) -> Vec<String> {
    key.split(['.', '['])
        .map(|s| s.trim_end_matches(']').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_variables_are_compared_segment_by_segment() {
        assert_eq!(key_path("probes[12].fall"), ["probes", "12", "fall"]);
        assert_eq!(key_path("monitor.hold_down"), ["monitor", "hold_down"]);
        let vars = [
            "FAILOVER_MONITOR__MONITOR__HOLD_DOWN".to_string(),
            "FAILOVER_MONITOR__PROBES__0__FALL".to_string(),
        ];
        let origins = EnvOrigins::new(vars.iter());
        assert_eq!(
            origins.variable_for("monitor.hold_down"),
            Some("FAILOVER_MONITOR__MONITOR__HOLD_DOWN")
        );
        assert_eq!(
            origins.variable_for("probes"),
            Some("FAILOVER_MONITOR__PROBES__0__FALL")
        );
        assert_eq!(origins.variable_for("monitor.mode"), None);
        assert_eq!(origins.variable_for("monitor.hold"), None);
    }

    #[test]
    fn toml_errors_keep_where_and_what_on_one_line() {
        let message = "TOML parse error at line 8, column 9\n  |\n8 | [monitor\n  |         ^\nunclosed table, expected `]`\n";
        assert_eq!(
            one_line(message),
            "TOML parse error at line 8, column 9: unclosed table, expected `]`"
        );
    }
}
