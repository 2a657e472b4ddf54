//! Value types and checks shared by several sections: durations written the humantime
//! way, URLs, lower bounds.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Unexpected};
use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// A duration written the humantime way: `"500ms"`, `"2s"`, `"5m"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"2s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(s)
                    .map(HumanDuration)
                    .map_err(|_| E::invalid_value(Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(V)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// The duration the file gives, else `default`.
pub(super) fn or_default(value: Option<HumanDuration>, default: Duration) -> Duration {
    value.map_or(default, |d| d.0)
}

/// `key = d` must be at least `min`.
pub(super) fn check_at_least(key: &str, d: Duration, min: Duration) -> Result<(), ConfigError> {
    if d < min {
        return Err(invalid(
            key,
            HumanDuration(d),
            format!("must be at least {}", HumanDuration(min)),
        ));
    }
    Ok(())
}

/// Endpoint and probe URLs: plain HTTP(S), nothing else.
pub(super) fn check_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{url:?}"),
            "must start with http:// or https://",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_the_humantime_way_and_print_back() {
        let d: HumanDuration = serde_json::from_value(serde_json::json!("1h 30m")).unwrap();
        assert_eq!(d.0, Duration::from_secs(5400));
        assert_eq!(d.to_string(), "1h 30m");
        let err = serde_json::from_value::<HumanDuration>(serde_json::json!("soon"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid value: string \"soon\", expected a duration such as \"500ms\", \"2s\" or \"5m\""
        );
    }

    #[test]
    fn lower_bounds_name_the_key_the_value_and_the_bound() {
        let ms = Duration::from_millis;
        assert!(check_at_least("k", ms(100), ms(100)).is_ok());
        let err = check_at_least("k", ms(99), ms(100)).unwrap_err();
        assert_eq!(err.to_string(), "k = 99ms: must be at least 100ms");
    }
}
