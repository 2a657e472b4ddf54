//! `[app]`: which application the monitor guards.

use serde::{Deserialize, Serialize};

use super::{ConfigError, defaults, invalid};

/// `[app]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    /// Required. The `appId` of the config item the monitor flips: the key of its item
    /// in `<project>-config`. Non-empty, without `#`.
    pub(super) id: String,
    /// Prefix of every resource name (`<project>-config`, `<project>-primary`, ...).
    /// 3 to 53 characters of a-z, 0-9 and `-`, not starting or ending with `-`.
    /// Default: `"photos"`.
    pub(super) project: Option<String>,
}

/// `[app]`, validated.
#[derive(Debug, Clone, Serialize)]
pub struct AppSettings {
    /// `appId` of the config item.
    pub id: String,
    /// Prefix of every resource name (`<project>-config`, `<project>-primary`, ...).
    pub project: String,
}

impl RawApp {
    pub(super) fn validate(self) -> Result<AppSettings, ConfigError> {
        let app = AppSettings {
            id: self.id,
            project: self.project.unwrap_or_else(|| defaults::PROJECT.into()),
        };
        if app.id.is_empty() || app.id.contains('#') {
            return Err(invalid(
                "app.id",
                format!("{:?}", app.id),
                "must be non-empty and must not contain '#'",
            ));
        }
        if !project_name_ok(&app.project) {
            return Err(invalid(
                "app.project",
                format!("{:?}", app.project),
                "3 to 53 characters of a-z, 0-9 and '-', not starting or ending with '-' \
                 (it prefixes S3 bucket names)",
            ));
        }
        Ok(app)
    }
}

/// The project prefixes S3 bucket names (`<project>-secondary` must still be a valid
/// bucket name, hence 53 and not 63).
fn project_name_ok(project: &str) -> bool {
    (3..=53).contains(&project.len())
        && project
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !project.starts_with('-')
        && !project.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, project: Option<&str>) -> Result<AppSettings, ConfigError> {
        RawApp {
            id: id.into(),
            project: project.map(Into::into),
        }
        .validate()
    }

    #[test]
    fn the_project_defaults_and_must_fit_a_bucket_name() {
        assert_eq!(app("a", None).unwrap().project, "photos");
        assert!(app("a", Some("abc")).is_ok());
        assert!(app("a", Some(&"a".repeat(53))).is_ok());
        for bad in ["ab", "-abc", "abc-", "ABC", "a_bc"] {
            assert!(app("a", Some(bad)).is_err(), "{bad}");
        }
        assert!(app("a", Some(&"a".repeat(54))).is_err());
    }

    #[test]
    fn the_app_id_cannot_reach_other_items() {
        assert_eq!(
            app("x#audit", None).unwrap_err().to_string(),
            "app.id = \"x#audit\": must be non-empty and must not contain '#'"
        );
        assert!(app("", None).is_err());
    }
}
