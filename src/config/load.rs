//! Reading `monitor.toml` and merging the `FAILOVER_MONITOR__SECTION__KEY` environment
//! variables over it.

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
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    parse(&text, std::env::vars())
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
    merge_and_validate(text, env)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_keep_where_and_what_on_one_line() {
        let message = "TOML parse error at line 8, column 9\n  |\n8 | [monitor\n  |         ^\nunclosed table, expected `]`\n";
        assert_eq!(
            one_line(message),
            "TOML parse error at line 8, column 9: unclosed table, expected `]`"
        );
    }
}
