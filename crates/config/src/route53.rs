//! `[route53]`: one DNS record the daemon points at the serving region after every
//! transition. Optional; without the section DNS is not touched.

use serde::{Deserialize, Serialize};

use super::{ConfigError, defaults, invalid};

/// `[route53]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute53 {
    /// Required. The hosted zone holding the record, such as `"Z0123456789ABC"`.
    pub(super) zone_id: String,
    /// Required. The record's fully qualified name (a trailing dot is optional).
    pub(super) record_name: String,
    /// `"CNAME"`, `"A"`, `"AAAA"` or `"TXT"`. Default: `"CNAME"`.
    pub(super) record_type: Option<String>,
    /// The record's TTL in seconds, 1 to 172800. Default: `60`.
    pub(super) ttl: Option<i64>,
    /// Required. The record's value while the state is `active` or `fenced`.
    pub(super) primary_value: String,
    /// Required. The record's value in `failover`; must differ from `primary_value`.
    pub(super) secondary_value: String,
    /// Only for an emulator: Route 53 calls go to this URL. Default: none (AWS).
    pub(super) endpoint_url: Option<String>,
}

/// The DNS record that follows the state: `primary_value` while active or fenced,
/// `secondary_value` in failover.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route53Settings {
    /// The hosted zone holding the record.
    pub zone_id: String,
    /// Fully qualified, with the trailing dot.
    pub record_name: String,
    /// `CNAME`, `A`, `AAAA` or `TXT`.
    pub record_type: String,
    /// Seconds.
    pub ttl: i64,
    /// The value while active or fenced.
    pub primary_value: String,
    /// The value in failover.
    pub secondary_value: String,
    /// Only for an emulator.
    pub endpoint_url: Option<String>,
}

const RECORD_TYPES: [&str; 4] = ["CNAME", "A", "AAAA", "TXT"];

impl RawRoute53 {
    pub(super) fn validate(self) -> Result<Route53Settings, ConfigError> {
        if self.zone_id.is_empty() || !self.zone_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(
                "route53.zone_id",
                format!("{:?}", self.zone_id),
                "a hosted zone id such as \"Z0123456789ABC\"",
            ));
        }
        let name = self.record_name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || !name.contains('.') {
            return Err(invalid(
                "route53.record_name",
                format!("{:?}", self.record_name),
                "a fully qualified domain name",
            ));
        }
        let record_type = self
            .record_type
            .unwrap_or_else(|| defaults::ROUTE53_RECORD_TYPE.into());
        if !RECORD_TYPES.contains(&record_type.as_str()) {
            return Err(invalid(
                "route53.record_type",
                format!("{record_type:?}"),
                "one of \"CNAME\", \"A\", \"AAAA\", \"TXT\"",
            ));
        }
        let ttl = self.ttl.unwrap_or(defaults::ROUTE53_TTL);
        if !(1..=172_800).contains(&ttl) {
            return Err(invalid("route53.ttl", ttl, "seconds between 1 and 172800"));
        }
        for (k, v) in [
            ("route53.primary_value", &self.primary_value),
            ("route53.secondary_value", &self.secondary_value),
        ] {
            if v.is_empty() {
                return Err(invalid(k, "\"\"", "must not be empty"));
            }
        }
        if self.primary_value == self.secondary_value {
            return Err(invalid(
                "route53.secondary_value",
                format!("{:?}", self.secondary_value),
                "must differ from route53.primary_value",
            ));
        }
        Ok(Route53Settings {
            zone_id: self.zone_id,
            record_name: format!("{name}."),
            record_type,
            ttl,
            primary_value: self.primary_value,
            secondary_value: self.secondary_value,
            endpoint_url: self.endpoint_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RawRoute53 {
        RawRoute53 {
            zone_id: "Z0123".into(),
            record_name: "App.Example.com".into(),
            record_type: None,
            ttl: None,
            primary_value: "primary.example.com".into(),
            secondary_value: "secondary.example.com".into(),
            endpoint_url: None,
        }
    }

    #[test]
    fn the_record_name_is_normalized_and_defaults_applied() {
        let r = record().validate().unwrap();
        assert_eq!(r.record_name, "app.example.com.");
        assert_eq!((r.record_type.as_str(), r.ttl), ("CNAME", 60));
    }

    #[test]
    fn both_values_are_needed_and_differ() {
        let mut r = record();
        r.secondary_value = r.primary_value.clone();
        assert!(r.validate().is_err());
        let mut r = record();
        r.ttl = Some(0);
        assert_eq!(
            r.validate().unwrap_err().to_string(),
            "route53.ttl = 0: seconds between 1 and 172800"
        );
        let mut r = record();
        r.record_type = Some("MX".into());
        assert!(r.validate().is_err());
    }
}
