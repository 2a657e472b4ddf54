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
        for (k, v) in [
            ("route53.primary_value", &self.primary_value),
            ("route53.secondary_value", &self.secondary_value),
        ] {
            check_value(k, &record_type, v)?;
        }
        if self.primary_value == self.secondary_value {
            return Err(invalid(
                "route53.secondary_value",
                format!("{:?}", self.secondary_value),
                "must differ from route53.primary_value",
            ));
        }
        let txt = record_type == "TXT";
        let quote = |v: String| {
            if txt && !v.starts_with('"') {
                format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                v
            }
        };
        Ok(Route53Settings {
            zone_id: self.zone_id,
            record_name: format!("{name}."),
            record_type,
            ttl,
            primary_value: quote(self.primary_value),
            secondary_value: quote(self.secondary_value),
            endpoint_url: self.endpoint_url,
        })
    }
}

/// A value the record type can hold as Route 53 writes it: A and AAAA records take
/// an IP address of their family (a name would be refused by every change, which
/// then never converges); a CNAME a name (no spaces).
fn check_value(key: &str, record_type: &str, value: &str) -> Result<(), ConfigError> {
    let fits = match record_type {
        "A" => value.parse::<std::net::Ipv4Addr>().is_ok(),
        "AAAA" => value.parse::<std::net::Ipv6Addr>().is_ok(),
        "CNAME" => !value.contains(char::is_whitespace),
        _ => true,
    };
    if fits {
        return Ok(());
    }
    let what = match record_type {
        "A" => "an IPv4 address for an A record",
        "AAAA" => "an IPv6 address for an AAAA record",
        _ => "a domain name for a CNAME record",
    };
    Err(invalid(key, format!("{value:?}"), what))
}

/// `[route53]`'s record must not be the stack's own failover records
/// (`stack.domain`, which provisioning manages as a failover routing pair, which a
/// simple change could never match).
pub(super) fn check_not_the_stacks(
    r: &Route53Settings,
    stack_domain: Option<&str>,
) -> Result<(), ConfigError> {
    let same = stack_domain.is_some_and(|d| {
        d.trim_end_matches('.')
            .eq_ignore_ascii_case(r.record_name.trim_end_matches('.'))
    });
    if same {
        return Err(invalid(
            "route53.record_name",
            format!("{:?}", r.record_name.trim_end_matches('.')),
            "must not be stack.domain: provisioning manages that name as a failover \
             routing pair (Route 53 health checks move it), which the monitor must not change",
        ));
    }
    Ok(())
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

    #[test]
    fn values_fit_the_record_type() {
        let a = || RawRoute53 {
            record_type: Some("A".into()),
            ..record()
        };
        assert_eq!(
            a().validate().unwrap_err().to_string(),
            "route53.primary_value = \"primary.example.com\": an IPv4 address for an A record"
        );
        let ok = RawRoute53 {
            primary_value: "192.0.2.1".into(),
            secondary_value: "198.51.100.1".into(),
            ..a()
        };
        assert!(ok.validate().is_ok());
        let mut r = record();
        r.record_type = Some("AAAA".into());
        r.primary_value = "2001:db8::1".into();
        r.secondary_value = "192.0.2.1".into();
        assert!(r.validate().is_err());
        let mut r = record();
        r.record_type = Some("TXT".into());
        r.primary_value = "serving from the primary".into();
        let r = r.validate().unwrap();
        assert_eq!(
            r.primary_value, "\"serving from the primary\"",
            "quoted as Route 53 wants"
        );
    }

    #[test]
    fn the_stacks_own_failover_records_are_refused() {
        let r = record().validate().unwrap();
        assert!(check_not_the_stacks(&r, Some("app.example.com")).is_err());
        assert!(check_not_the_stacks(&r, Some("APP.example.com.")).is_err());
        assert!(check_not_the_stacks(&r, Some("photos.example.com")).is_ok());
        assert!(check_not_the_stacks(&r, None).is_ok());
    }
}
