//! What one probe checks, by kind: the kind-specific keys of a `[[probes]]` entry
//! (`url`, `bucket`, `check`, `alarms`, ...) and their validation into a [`CheckSpec`].

use serde::de::{DeserializeOwned, IntoDeserializer, value::Error as ValueError};
use serde::{Deserialize, Serialize};

use super::app::AppSettings;
use super::values::check_http_url;
use super::{ConfigError, defaults, invalid};
use failover_core::model::Role;

/// `kind` of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKindName {
    Http,
    S3,
    Dynamodb,
    CloudwatchAlarm,
}

impl ProbeKindName {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKindName::Http => "http",
            ProbeKindName::S3 => "s3",
            ProbeKindName::Dynamodb => "dynamodb",
            ProbeKindName::CloudwatchAlarm => "cloudwatch_alarm",
        }
    }

    /// The kind-specific keys this kind accepts.
    fn keys(self) -> &'static [&'static str] {
        match self {
            ProbeKindName::Http => &["url", "expect_status", "expect_body"],
            ProbeKindName::S3 => &["bucket", "check"],
            ProbeKindName::Dynamodb => &["table", "check"],
            ProbeKindName::CloudwatchAlarm => &["alarms", "insufficient_data"],
        }
    }
}

/// `check` of an `s3` probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum S3Check {
    /// `HeadBucket`: the bucket exists and answers.
    HeadBucket,
    /// Put, get and delete a small canary object under `health/`.
    Roundtrip,
}

/// `check` of a `dynamodb` probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DynamoCheck {
    /// `GetItem` of the config item (it must exist).
    GetItem,
    /// `DescribeTable`: the table is ACTIVE.
    DescribeTable,
}

/// How a `cloudwatch_alarm` probe reads an alarm in INSUFFICIENT_DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InsufficientData {
    /// The alarm counts as fine.
    Ok,
    /// The alarm counts as firing: the probe fails.
    Down,
}

/// What a probe checks, validated, with the defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub enum CheckSpec {
    /// GET a URL.
    Http {
        /// `{app_id}` already substituted.
        url: String,
        /// The probe succeeds only with one of these statuses.
        expect_status: Vec<u16>,
        /// When set, the body (its first 64 KiB) must contain this text.
        expect_body: Option<String>,
    },
    /// One S3 bucket of the probe's region.
    S3 {
        /// The bucket's name.
        bucket: String,
        /// What is done to it.
        check: S3Check,
    },
    /// One DynamoDB table of the probe's region.
    Dynamodb {
        /// The table's name.
        table: String,
        /// What is done to it.
        check: DynamoCheck,
    },
    /// CloudWatch alarms of the probe's region.
    CloudwatchAlarm {
        /// The probe fails while any of them is in ALARM.
        alarms: Vec<String>,
        /// How INSUFFICIENT_DATA counts.
        insufficient_data: InsufficientData,
    },
}

/// The kind-specific keys of one `[[probes]]` entry, as written (see `RawProbe`, whose
/// fields these are; the reference documents them there).
#[derive(Debug)]
pub(super) struct CheckKeys {
    /// `http`: the URL to GET.
    pub(super) url: Option<String>,
    /// `http`: the statuses that count as success.
    pub(super) expect_status: Option<Vec<u16>>,
    /// `http`: text the body must contain.
    pub(super) expect_body: Option<String>,
    /// `s3`: the bucket.
    pub(super) bucket: Option<String>,
    /// `dynamodb`: the table.
    pub(super) table: Option<String>,
    /// `s3` and `dynamodb`: what is done to the bucket or table.
    pub(super) check: Option<String>,
    /// `cloudwatch_alarm`: the alarm names.
    pub(super) alarms: Option<Vec<String>>,
    /// `cloudwatch_alarm`: how INSUFFICIENT_DATA counts.
    pub(super) insufficient_data: Option<InsufficientData>,
}

/// Where the probe is and how its keys are named in messages.
pub(super) struct ProbeContext<'a> {
    /// `probes[<i>]`.
    pub(super) prefix: String,
    /// The region the probe watches (default bucket names depend on it).
    pub(super) region: Role,
    /// `app.id` for `{app_id}` in URLs, `app.project` for default names.
    pub(super) app: &'a AppSettings,
}

impl ProbeContext<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.prefix)
    }
}

impl CheckKeys {
    /// The keys that were given, so that a key meant for another kind is reported
    /// instead of silently ignored.
    fn given(&self) -> impl Iterator<Item = &'static str> {
        [
            ("url", self.url.is_some()),
            ("expect_status", self.expect_status.is_some()),
            ("expect_body", self.expect_body.is_some()),
            ("bucket", self.bucket.is_some()),
            ("table", self.table.is_some()),
            ("check", self.check.is_some()),
            ("alarms", self.alarms.is_some()),
            ("insufficient_data", self.insufficient_data.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
    }

    pub(super) fn validate(
        self,
        kind: ProbeKindName,
        cx: &ProbeContext,
    ) -> Result<CheckSpec, ConfigError> {
        let allowed = kind.keys();
        if let Some(extra) = self.given().find(|k| !allowed.contains(k)) {
            return Err(ConfigError::Parse {
                key: cx.key(extra),
                message: format!(
                    "not a key of kind \"{}\" (its keys: {})",
                    kind.as_str(),
                    allowed.join(", ")
                ),
            });
        }
        match kind {
            ProbeKindName::Http => self.http(cx),
            ProbeKindName::S3 => Ok(CheckSpec::S3 {
                check: typed_check(
                    cx.key("check"),
                    self.check,
                    defaults::S3_CHECK,
                    "kind \"s3\" allows \"head_bucket\" or \"roundtrip\"",
                )?,
                bucket: self
                    .bucket
                    .unwrap_or_else(|| defaults::bucket(&cx.app.project, cx.region)),
            }),
            ProbeKindName::Dynamodb => Ok(CheckSpec::Dynamodb {
                check: typed_check(
                    cx.key("check"),
                    self.check,
                    defaults::DYNAMODB_CHECK,
                    "kind \"dynamodb\" allows \"get_item\" or \"describe_table\"",
                )?,
                table: self
                    .table
                    .unwrap_or_else(|| defaults::table(&cx.app.project)),
            }),
            ProbeKindName::CloudwatchAlarm => self.cloudwatch_alarm(cx),
        }
    }

    fn http(self, cx: &ProbeContext) -> Result<CheckSpec, ConfigError> {
        let url = self.url.ok_or_else(|| ConfigError::Parse {
            key: cx.key("url"),
            message: "missing; kind \"http\" needs the URL to GET".into(),
        })?;
        check_http_url(&cx.key("url"), &url)?;
        let expect_status = self
            .expect_status
            .unwrap_or_else(|| defaults::EXPECT_STATUS.to_vec());
        if expect_status.is_empty() {
            return Err(invalid(
                cx.key("expect_status"),
                "[]",
                "must list at least one status",
            ));
        }
        if let Some(bad) = expect_status.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(invalid(
                cx.key("expect_status"),
                bad,
                "HTTP statuses are 100 to 599",
            ));
        }
        Ok(CheckSpec::Http {
            url: url.replace("{app_id}", &cx.app.id),
            expect_status,
            expect_body: self.expect_body,
        })
    }

    fn cloudwatch_alarm(self, cx: &ProbeContext) -> Result<CheckSpec, ConfigError> {
        let alarms = self.alarms.unwrap_or_default();
        if alarms.is_empty() || alarms.iter().any(String::is_empty) {
            return Err(invalid(
                cx.key("alarms"),
                format!("{alarms:?}"),
                "kind \"cloudwatch_alarm\" needs at least one alarm name",
            ));
        }
        Ok(CheckSpec::CloudwatchAlarm {
            alarms,
            insufficient_data: self
                .insufficient_data
                .unwrap_or(defaults::INSUFFICIENT_DATA),
        })
    }
}

/// `check` is one key shared by two kinds with different values, so the file keeps it
/// as text and the kind's enum (its serde names) reads it once the kind is known.
/// `allowed` is what the error says the kind accepts.
fn typed_check<T: DeserializeOwned>(
    key: String,
    value: Option<String>,
    default: T,
    allowed: &str,
) -> Result<T, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let text: &str = &value;
    T::deserialize(IntoDeserializer::<ValueError>::into_deserializer(text))
        .map_err(|_| invalid(key, format!("{value:?}"), allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_are_the_enums_serde_names() {
        let s3 = |v: Option<&str>| {
            typed_check(
                "k".into(),
                v.map(Into::into),
                S3Check::HeadBucket,
                "s3 only",
            )
        };
        assert_eq!(s3(Some("roundtrip")).ok(), Some(S3Check::Roundtrip));
        assert_eq!(s3(None).ok(), Some(S3Check::HeadBucket));
        let dynamodb = typed_check(
            "k".into(),
            Some("describe_table".into()),
            DynamoCheck::GetItem,
            "",
        );
        assert_eq!(dynamodb.ok(), Some(DynamoCheck::DescribeTable));
        // A value of the other kind is as unknown as a typo.
        assert_eq!(
            s3(Some("get_item")).unwrap_err().to_string(),
            "k = \"get_item\": s3 only"
        );
    }

    #[test]
    fn every_kind_names_its_keys() {
        for kind in [
            ProbeKindName::Http,
            ProbeKindName::S3,
            ProbeKindName::Dynamodb,
            ProbeKindName::CloudwatchAlarm,
        ] {
            let name: ProbeKindName =
                serde_json::from_value(serde_json::json!(kind.as_str())).unwrap();
            assert_eq!(name, kind);
            assert!(!kind.keys().is_empty());
        }
    }
}
