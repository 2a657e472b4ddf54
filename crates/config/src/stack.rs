//! `[stack]`: what `provision` needs beyond the regions and the project. The daemon
//! reads `tables` only (how the two copies of the config item are kept).

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// How `provision` makes the two copies of each table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TablesMode {
    /// One DynamoDB global table with a replica in the secondary (AWS, and the local
    /// emulator, which replicates between its two regions). The default.
    Global,
    /// Two independent tables; the monitor copies every commit itself. Only when set.
    PerRegion,
}

/// `[stack]` as written; every key is optional for the daemon.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStack {
    /// How the two copies of each table are made, for `provision` and the daemon alike:
    /// `"global"` (one DynamoDB global table with a replica in the secondary; the
    /// monitor writes the secondary's replica only and replication carries the
    /// change) or `"per-region"` (two independent tables; the monitor copies every
    /// commit into the primary's itself). Default: `"global"`, with or without an
    /// `endpoint_url` (the local emulator replicates too).
    pub(super) tables: Option<TablesMode>,
    /// The one admin-created Cognito user: its name, 1 to 128 characters without
    /// whitespace. Required by `provision`.
    pub(super) cognito_username: Option<String>,
    /// That user's e-mail address. Required by `provision`.
    pub(super) cognito_email: Option<String>,
    /// Route 53 hosted zone where `provision` makes a health check per region and a
    /// failover record pair for `domain`. Set both or neither. Default: none (no DNS).
    pub(super) route53_zone_id: Option<String>,
    /// The domain name of those failover records. Set with `route53_zone_id`.
    /// Default: none.
    pub(super) domain: Option<String>,
}

/// `[stack]`, validated.
#[derive(Debug, Clone, Serialize)]
pub struct StackSettings {
    /// As written; [`StackSettings::tables_mode`] is the mode in force.
    pub tables: Option<TablesMode>,
    /// The one admin-created Cognito user (required by `provision`).
    pub cognito_username: Option<String>,
    /// Its e-mail address (required by `provision`).
    pub cognito_email: Option<String>,
    /// Zone of the health checks and failover records; set together with `domain`.
    pub route53_zone_id: Option<String>,
    /// Name of the failover records; set together with `route53_zone_id`.
    pub domain: Option<String>,
}

impl StackSettings {
    /// How the two copies of each table are made: `stack.tables` when set, else
    /// global tables, as on AWS. The one rule: the daemon and `provision` both ask
    /// here (through `Settings::tables_mode`).
    pub fn tables_mode(&self) -> TablesMode {
        self.tables.unwrap_or(TablesMode::Global)
    }
}

impl RawStack {
    pub(super) fn validate(self) -> Result<StackSettings, ConfigError> {
        if let Some(email) = &self.cognito_email
            && !email.contains('@')
        {
            return Err(invalid(
                "stack.cognito_email",
                format!("{email:?}"),
                "must be an e-mail address",
            ));
        }
        if let Some(user) = &self.cognito_username
            && (user.is_empty() || user.len() > 128 || user.chars().any(char::is_whitespace))
        {
            return Err(invalid(
                "stack.cognito_username",
                format!("{user:?}"),
                "1 to 128 characters without whitespace (a Cognito user name)",
            ));
        }
        match (&self.route53_zone_id, &self.domain) {
            (Some(_), None) => {
                return Err(invalid(
                    "stack.domain",
                    "(not set)",
                    "required with stack.route53_zone_id: the name of the failover records",
                ));
            }
            (None, Some(d)) => {
                return Err(invalid(
                    "stack.route53_zone_id",
                    "(not set)",
                    format!("required with stack.domain ({d:?}): the zone holding it"),
                ));
            }
            _ => {}
        }
        Ok(StackSettings {
            tables: self.tables,
            cognito_username: self.cognito_username,
            cognito_email: self.cognito_email,
            route53_zone_id: self.route53_zone_id,
            domain: self.domain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_and_domain_come_together() {
        let zone_only = RawStack {
            route53_zone_id: Some("Z1".into()),
            ..RawStack::default()
        };
        assert!(
            zone_only
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("stack.domain = (not set): required with stack.route53_zone_id")
        );
        let both = RawStack {
            route53_zone_id: Some("Z1".into()),
            domain: Some("photos.example.com".into()),
            ..RawStack::default()
        };
        assert!(both.validate().is_ok());
    }

    #[test]
    fn the_cognito_user_is_checked_before_provisioning() {
        let bad_mail = RawStack {
            cognito_email: Some("ops".into()),
            ..RawStack::default()
        };
        assert!(bad_mail.validate().is_err());
        let spaced = RawStack {
            cognito_username: Some("o ps".into()),
            ..RawStack::default()
        };
        assert!(spaced.validate().is_err());
    }
}
