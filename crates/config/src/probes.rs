//! `[probe_defaults]` and `[[probes]]`: what is probed, how often, and how many
//! results it takes to call a probe down or up. The kind-specific keys are in
//! `checks.rs`.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::app::AppSettings;
use super::checks::{CheckKeys, CheckSpec, InsufficientData, ProbeContext, ProbeKindName};
use super::values::{HumanDuration, check_at_least, or_default};
use super::{ConfigError, defaults, invalid};
use failover_core::model::Role;

/// `[probe_defaults]` as written: what every probe gets unless it sets its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbeDefaults {
    /// How often each probe runs. Duration. Default: `"2s"`.
    pub(super) interval: Option<HumanDuration>,
    /// How long one run may take before it counts as a failure. Duration.
    /// Default: `"1s"`.
    pub(super) timeout: Option<HumanDuration>,
    /// Each run starts up to this much later than its slot, so probes do not align.
    /// Duration. Default: `"200ms"`.
    pub(super) jitter: Option<HumanDuration>,
    /// Consecutive failures before a probe counts as down. Whole number. Default: `5`.
    pub(super) fall: Option<u32>,
    /// Consecutive successes before a probe counts as up again. Whole number.
    /// Default: `3`.
    pub(super) rise: Option<u32>,
}

/// `[probe_defaults]` with the built-in defaults filled in: what a probe that sets
/// nothing gets.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeDefaults {
    /// How often each probe runs.
    pub interval: Duration,
    /// How long one run may take before it counts as a failure.
    pub timeout: Duration,
    /// Each run starts up to this much later than its slot.
    pub jitter: Duration,
    /// Consecutive failures before a probe counts as down.
    pub fall: u32,
    /// Consecutive successes before a probe counts as up again.
    pub rise: u32,
}

/// One `[[probes]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    /// Required. The probe's name in logs, metrics and the status; unique; a-z, A-Z,
    /// 0-9, `-` and `_`.
    pub(super) name: String,
    /// Required. `"http"`, `"s3"`, `"dynamodb"` or `"cloudwatch_alarm"`; decides which
    /// of the kind-specific keys below apply.
    pub(super) kind: ProbeKindName,
    /// Required. The region it watches: `"primary"` or `"secondary"`.
    pub(super) region: Role,
    /// How often it runs, at least `"10ms"`. Duration. Default:
    /// `probe_defaults.interval`.
    pub(super) interval: Option<HumanDuration>,
    /// How long one run may take before it counts as a failure; above zero and at most
    /// the interval. Duration. Default: `probe_defaults.timeout`.
    pub(super) timeout: Option<HumanDuration>,
    /// Each run starts up to this much later than its slot; shorter than the interval.
    /// Duration. Default: `probe_defaults.jitter`.
    pub(super) jitter: Option<HumanDuration>,
    /// Consecutive failures before the probe counts as down, 1 to 1000.
    /// Default: `probe_defaults.fall`.
    pub(super) fall: Option<u32>,
    /// Consecutive successes before it counts as up again, 1 to 1000.
    /// Default: `probe_defaults.rise`.
    pub(super) rise: Option<u32>,
    /// `http`, required: the URL to GET (`http://` or `https://`); `{app_id}` is
    /// replaced by `app.id`.
    pub(super) url: Option<String>,
    /// `http`: the statuses that count as success (100 to 599). Default: `[200]`.
    pub(super) expect_status: Option<Vec<u16>>,
    /// `http`: text the body (its first 64 KiB) must contain. Default: none (any body).
    pub(super) expect_body: Option<String>,
    /// `s3`: the bucket. Default: `"<project>-<region>"`, the region's photo bucket.
    pub(super) bucket: Option<String>,
    /// `dynamodb`: the table. Default: `"<project>-config"`, the config table.
    pub(super) table: Option<String>,
    /// `s3`: `"head_bucket"` (the bucket answers) or `"roundtrip"` (put, get and
    /// delete `health/<instance>-<n>`: the region accepts writes); default
    /// `"head_bucket"`. `dynamodb`: `"get_item"` (the config item is readable) or
    /// `"describe_table"` (the table is ACTIVE); default `"get_item"`.
    pub(super) check: Option<String>,
    /// `cloudwatch_alarm`, required: alarm names; the probe fails while any is in
    /// ALARM.
    pub(super) alarms: Option<Vec<String>>,
    /// `cloudwatch_alarm`: how an alarm in INSUFFICIENT_DATA counts, `"ok"` or
    /// `"down"`. Default: `"ok"`.
    pub(super) insufficient_data: Option<InsufficientData>,
}

/// One probe, validated, with the defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeSpec {
    /// Unique among the probes.
    pub name: String,
    /// The region it watches.
    pub region: Role,
    /// How often it runs.
    pub interval: Duration,
    /// How long one run may take before it counts as a failure.
    pub timeout: Duration,
    /// Each run starts up to this much later than its slot, so probes do not align.
    pub jitter: Duration,
    /// Consecutive failures before the probe counts as down.
    pub fall: u32,
    /// Consecutive successes before it counts as up again.
    pub rise: u32,
    /// What it checks.
    pub check: CheckSpec,
}

impl ProbeSpec {
    pub fn kind(&self) -> &'static str {
        match self.check {
            CheckSpec::Http { .. } => "http",
            CheckSpec::S3 { .. } => "s3",
            CheckSpec::Dynamodb { .. } => "dynamodb",
            CheckSpec::CloudwatchAlarm { .. } => "cloudwatch_alarm",
        }
    }
}

impl RawProbeDefaults {
    /// The only place probe timing defaults are applied: each probe then falls back to
    /// the result.
    pub(super) fn resolve(self) -> ProbeDefaults {
        ProbeDefaults {
            interval: or_default(self.interval, defaults::INTERVAL),
            timeout: or_default(self.timeout, defaults::TIMEOUT),
            jitter: or_default(self.jitter, defaults::JITTER),
            fall: self.fall.unwrap_or(defaults::FALL),
            rise: self.rise.unwrap_or(defaults::RISE),
        }
    }
}

/// Validates every probe: each on its own, names unique, and at least one on the
/// primary unless there are none at all (a file for `provision`, which `run` refuses).
pub(super) fn validate_all(
    probes: Vec<RawProbe>,
    pd: &ProbeDefaults,
    app: &AppSettings,
) -> Result<Vec<ProbeSpec>, ConfigError> {
    let mut names = HashSet::new();
    let mut specs = Vec::with_capacity(probes.len());
    for (i, p) in probes.into_iter().enumerate() {
        let spec = p.validate(i, pd, app)?;
        if !names.insert(spec.name.clone()) {
            return Err(invalid(
                format!("probes[{i}].name"),
                format!("{:?}", spec.name),
                "already used by another probe; names must be unique",
            ));
        }
        specs.push(spec);
    }
    let primary = specs.iter().filter(|p| p.region == Role::Primary).count();
    if primary == 0 && !specs.is_empty() {
        return Err(invalid(
            "probes",
            format!("{} probe(s), none with region = \"primary\"", specs.len()),
            "at least one probe must watch the primary region",
        ));
    }
    Ok(specs)
}

impl RawProbe {
    fn validate(
        self,
        i: usize,
        pd: &ProbeDefaults,
        app: &AppSettings,
    ) -> Result<ProbeSpec, ConfigError> {
        let cx = ProbeContext {
            prefix: format!("probes[{i}]"),
            region: self.region,
            app,
        };
        let key = |k: &str| format!("{}.{k}", cx.prefix);
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                key("name"),
                format!("{:?}", self.name),
                "must be non-empty and use only a-z, A-Z, 0-9, '-' and '_'",
            ));
        }
        let interval = or_default(self.interval, pd.interval);
        let timeout = or_default(self.timeout, pd.timeout);
        let jitter = or_default(self.jitter, pd.jitter);
        let fall = self.fall.unwrap_or(pd.fall);
        let rise = self.rise.unwrap_or(pd.rise);
        check_timing(&key, interval, timeout, jitter)?;
        for (k, v) in [("fall", fall), ("rise", rise)] {
            if !(1..=1000).contains(&v) {
                return Err(invalid(key(k), v, "must be between 1 and 1000"));
            }
        }
        let keys = CheckKeys {
            url: self.url,
            expect_status: self.expect_status,
            expect_body: self.expect_body,
            bucket: self.bucket,
            table: self.table,
            check: self.check,
            alarms: self.alarms,
            insufficient_data: self.insufficient_data,
        };
        let check = keys.validate(self.kind, &cx)?;
        Ok(ProbeSpec {
            name: self.name,
            region: self.region,
            interval,
            timeout,
            jitter,
            fall,
            rise,
            check,
        })
    }
}

fn check_timing(
    key: &dyn Fn(&str) -> String,
    interval: Duration,
    timeout: Duration,
    jitter: Duration,
) -> Result<(), ConfigError> {
    check_at_least(&key("interval"), interval, Duration::from_millis(10))?;
    if timeout.is_zero() || timeout > interval {
        return Err(invalid(
            key("timeout"),
            HumanDuration(timeout),
            format!(
                "must be greater than 0 and at most the interval ({})",
                HumanDuration(interval)
            ),
        ));
    }
    if jitter >= interval {
        return Err(invalid(
            key("jitter"),
            HumanDuration(jitter),
            format!(
                "must be shorter than the interval ({})",
                HumanDuration(interval)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(name: &str, region: Role) -> RawProbe {
        RawProbe {
            name: name.into(),
            kind: ProbeKindName::Dynamodb,
            region,
            interval: None,
            timeout: None,
            jitter: None,
            fall: None,
            rise: None,
            url: None,
            expect_status: None,
            expect_body: None,
            bucket: None,
            table: None,
            check: None,
            alarms: None,
            insufficient_data: None,
        }
    }

    fn app() -> AppSettings {
        AppSettings {
            id: "a".into(),
            project: "shop".into(),
        }
    }

    #[test]
    fn a_probe_takes_what_it_does_not_set_from_probe_defaults() {
        let pd = RawProbeDefaults {
            interval: Some(HumanDuration(Duration::from_secs(4))),
            fall: Some(7),
            ..RawProbeDefaults::default()
        }
        .resolve();
        let mut p = probe("p", Role::Primary);
        p.rise = Some(9);
        let spec = p.validate(0, &pd, &app()).unwrap();
        assert_eq!(
            (spec.interval, spec.timeout, spec.fall, spec.rise),
            (Duration::from_secs(4), defaults::TIMEOUT, 7, 9)
        );
        match spec.check {
            CheckSpec::Dynamodb { table, check } => {
                assert_eq!(
                    (table.as_str(), check),
                    ("shop-config", defaults::DYNAMODB_CHECK)
                );
            }
            other => panic!("unexpected check {other:?}"),
        }
    }

    #[test]
    fn probes_need_unique_names_and_one_on_the_primary() {
        let pd = RawProbeDefaults::default().resolve();
        assert!(validate_all(Vec::new(), &pd, &app()).unwrap().is_empty());
        let only_secondary = vec![probe("s", Role::Secondary)];
        assert_eq!(
            validate_all(only_secondary, &pd, &app())
                .unwrap_err()
                .to_string(),
            "probes = 1 probe(s), none with region = \"primary\": \
             at least one probe must watch the primary region"
        );
        let twice = vec![probe("p", Role::Primary), probe("p", Role::Secondary)];
        assert!(validate_all(twice, &pd, &app()).is_err());
    }

    #[test]
    fn jitter_must_stay_inside_the_interval() {
        let pd = RawProbeDefaults::default().resolve();
        let mut p = probe("p", Role::Primary);
        p.jitter = Some(HumanDuration(Duration::from_secs(2)));
        assert_eq!(
            p.validate(3, &pd, &app()).unwrap_err().to_string(),
            "probes[3].jitter = 2s: must be shorter than the interval (2s)"
        );
    }
}
