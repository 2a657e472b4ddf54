//! `[regions.primary]` and `[regions.secondary]`: where the two copies of the
//! application run.

use serde::{Deserialize, Serialize};

use super::values::check_http_url;
use super::{ConfigError, invalid};
use failover_core::model::Role;

/// `[regions]` as written: both regions are required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegions {
    /// The region that serves while the state is `active` or `fenced`.
    pub(super) primary: RawRegion,
    /// The region that serves while the state is `failover`.
    pub(super) secondary: RawRegion,
}

/// `[regions.primary]` or `[regions.secondary]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    /// Required. The AWS region name, such as `"us-east-1"` (primary) or
    /// `"ap-northeast-1"` (secondary). The two must differ unless their
    /// `endpoint_url`s do.
    pub(super) name: String,
    /// Only for an emulator: every AWS call for this region goes to this
    /// `http://` or `https://` URL instead of AWS. Default: none (AWS).
    pub(super) endpoint_url: Option<String>,
}

/// Both regions, validated.
#[derive(Debug, Clone, Serialize)]
pub struct RegionsSettings {
    /// Serves while the state is `active` or `fenced`.
    pub primary: RegionSettings,
    /// Serves while the state is `failover`; holds the commit point of every transition.
    pub secondary: RegionSettings,
}

impl RegionsSettings {
    pub fn get(&self, role: Role) -> &RegionSettings {
        match role {
            Role::Primary => &self.primary,
            Role::Secondary => &self.secondary,
        }
    }
}

/// One region, validated.
#[derive(Debug, Clone, Serialize)]
pub struct RegionSettings {
    /// AWS region name, e.g. `us-east-1`.
    pub name: String,
    /// Only for an emulator: every AWS call for this region goes there.
    pub endpoint_url: Option<String>,
}

impl RawRegions {
    pub(super) fn validate(self) -> Result<RegionsSettings, ConfigError> {
        for (role, r) in [
            (Role::Primary, &self.primary),
            (Role::Secondary, &self.secondary),
        ] {
            check_region_name(&format!("regions.{role}.name"), &r.name)?;
            if let Some(url) = &r.endpoint_url {
                check_http_url(&format!("regions.{role}.endpoint_url"), url)?;
            }
        }
        if self.primary.name == self.secondary.name
            && self.primary.endpoint_url == self.secondary.endpoint_url
        {
            return Err(invalid(
                "regions.secondary.name",
                format!("{:?}", self.secondary.name),
                "must differ from regions.primary.name",
            ));
        }
        Ok(RegionsSettings {
            primary: self.primary.into_settings(),
            secondary: self.secondary.into_settings(),
        })
    }
}

impl RawRegion {
    fn into_settings(self) -> RegionSettings {
        RegionSettings {
            name: self.name,
            endpoint_url: self.endpoint_url,
        }
    }
}

fn check_region_name(key: &str, name: &str) -> Result<(), ConfigError> {
    // <area>-<direction>-<number>, e.g. us-east-1, ap-northeast-1, us-gov-west-1.
    let parts: Vec<&str> = name.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok();
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{name:?}"),
            "not an AWS region name; expected a name such as \"us-east-1\"",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(primary: (&str, Option<&str>), secondary: (&str, Option<&str>)) -> RawRegions {
        let region = |(name, url): (&str, Option<&str>)| RawRegion {
            name: name.into(),
            endpoint_url: url.map(Into::into),
        };
        RawRegions {
            primary: region(primary),
            secondary: region(secondary),
        }
    }

    #[test]
    fn region_names_look_like_aws_ones() {
        for ok in ["us-east-1", "ap-northeast-1", "us-gov-west-1"] {
            assert!(check_region_name("k", ok).is_ok(), "{ok}");
        }
        for bad in ["tokyo", "us-east", "us-east-x", "US-east-1", "us--1"] {
            assert!(check_region_name("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_region_twice_is_allowed_only_behind_two_endpoints() {
        let same = regions(("us-east-1", None), ("us-east-1", None));
        assert_eq!(
            same.validate().unwrap_err().to_string(),
            "regions.secondary.name = \"us-east-1\": must differ from regions.primary.name"
        );
        let two_emulators = regions(
            ("us-east-1", Some("http://127.0.0.1:5001")),
            ("us-east-1", Some("http://127.0.0.1:5002")),
        );
        assert!(two_emulators.validate().is_ok());
        let bad_url = regions(("us-east-1", Some("127.0.0.1:5001")), ("us-west-2", None));
        assert_eq!(
            bad_url.validate().unwrap_err().to_string(),
            "regions.primary.endpoint_url = \"127.0.0.1:5001\": must start with http:// or https://"
        );
    }
}
