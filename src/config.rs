//! `monitor.toml`: loading (file, then `FAILOVER_MONITOR__SECTION__KEY` environment
//! overrides), strict parsing and validation into [`Settings`].
//!
//! Parsing happens in two steps, the way blackbox_exporter does it: serde rejects
//! unknown keys and malformed values (the path to the key comes from
//! `serde_path_to_error`), then [`RawConfig::validate`] applies defaults and the rules
//! that span several keys. Every error names the key, the value and what is allowed;
//! the table tests over `tests/testdata/config/invalid-*.toml` pin the exact text.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Unexpected};
use serde::{Deserialize, Serialize};

use crate::model::Role;

/// Environment variables with this prefix (and `__` between section and key) override
/// the file.
pub const ENV_PREFIX: &str = "FAILOVER_MONITOR";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config file: {reason}")]
    Read { path: PathBuf, reason: String },
    /// A key is unknown, or its value has the wrong type or form.
    #[error("{key}: {message}")]
    Parse { key: String, message: String },
    /// A value is well-formed but not allowed (alone or together with another key).
    #[error("{key} = {value}: {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
}

fn invalid(
    key: impl Into<String>,
    value: impl fmt::Display,
    allowed: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

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

/// What the daemon may do on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Decide and write.
    Auto,
    /// Observe and report what it would do; only humans move the state.
    Manual,
    /// Decide and log the decision, never write.
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Manual => "manual",
            Mode::DryRun => "dry-run",
        }
    }
}

/// Whether the daemon moves `failover` back to `active` by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Failback {
    Manual,
    Auto,
}

/// How many of the primary's probes must be down for the primary to count as down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RegionRule {
    Any,
    All,
    /// More than half of the primary's probes.
    Majority,
    /// At least `n` of the `m` primary probes (`m` must be their count).
    AtLeast {
        n: usize,
        m: usize,
    },
}

impl RegionRule {
    /// How many down probes out of `total` make the region down.
    pub fn threshold(self, total: usize) -> usize {
        match self {
            RegionRule::Any => 1,
            RegionRule::All => total,
            RegionRule::Majority => total / 2 + 1,
            RegionRule::AtLeast { n, .. } => n,
        }
    }
}

impl fmt::Display for RegionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionRule::Any => f.write_str("any"),
            RegionRule::All => f.write_str("all"),
            RegionRule::Majority => f.write_str("majority"),
            RegionRule::AtLeast { n, m } => write!(f, "{n} of {m}"),
        }
    }
}

impl<'de> Deserialize<'de> for RegionRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = RegionRule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"any\", \"all\", \"majority\" or \"<n> of <m>\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RegionRule, E> {
                match s {
                    "any" => return Ok(RegionRule::Any),
                    "all" => return Ok(RegionRule::All),
                    "majority" => return Ok(RegionRule::Majority),
                    _ => {}
                }
                let mut words = s.split_whitespace();
                if let (Some(n), Some("of"), Some(m), None) =
                    (words.next(), words.next(), words.next(), words.next())
                    && let (Ok(n), Ok(m)) = (n.parse(), m.parse())
                {
                    return Ok(RegionRule::AtLeast { n, m });
                }
                Err(E::invalid_value(Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(V)
    }
}

/// How a `cloudwatch_alarm` probe reads an alarm in INSUFFICIENT_DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InsufficientData {
    Ok,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum S3Check {
    /// `HeadBucket`: the bucket exists and answers.
    HeadBucket,
    /// Put, get and delete a small canary object under `health/`.
    Roundtrip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DynamoCheck {
    /// `GetItem` of the config item (it must exist).
    GetItem,
    /// `DescribeTable`: the table is ACTIVE.
    DescribeTable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKindName {
    Http,
    S3,
    Dynamodb,
    CloudwatchAlarm,
}

// ---------------------------------------------------------------------------------
// The file as written. Every struct rejects keys it does not know.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    app: RawApp,
    regions: RawRegions,
    #[serde(default)]
    monitor: RawMonitor,
    #[serde(default)]
    probe_defaults: RawProbeDefaults,
    #[serde(default)]
    probes: Vec<RawProbe>,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    stack: RawStack,
    #[serde(default)]
    coordination: RawCoordination,
    route53: Option<RawRoute53>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute53 {
    zone_id: String,
    record_name: String,
    record_type: Option<String>,
    ttl: Option<i64>,
    primary_value: String,
    secondary_value: String,
    endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoordination {
    instances: Option<Vec<String>>,
    lease: Option<HumanDuration>,
    renew_every: Option<HumanDuration>,
    view_ttl: Option<HumanDuration>,
    quorum: Option<QuorumRule>,
}

/// How many live instances must see the primary down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum QuorumRule {
    Majority,
    AtLeast(usize),
}

impl<'de> Deserialize<'de> for QuorumRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = QuorumRule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"majority\" or a whole number of instances")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<QuorumRule, E> {
                match s {
                    "majority" => Ok(QuorumRule::Majority),
                    other => other
                        .parse()
                        .map(QuorumRule::AtLeast)
                        .map_err(|_| E::invalid_value(Unexpected::Str(s), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<QuorumRule, E> {
                usize::try_from(n)
                    .map(QuorumRule::AtLeast)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(n), &self))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<QuorumRule, E> {
                usize::try_from(n)
                    .map(QuorumRule::AtLeast)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
            }
        }
        d.deserialize_any(V)
    }
}

impl QuorumRule {
    /// Down votes needed among `live` instances.
    pub fn threshold(self, live: usize) -> usize {
        match self {
            QuorumRule::Majority => live / 2 + 1,
            QuorumRule::AtLeast(n) => n,
        }
    }
}

impl fmt::Display for QuorumRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumRule::Majority => f.write_str("majority"),
            QuorumRule::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    /// `appId` of the config item.
    id: String,
    /// Prefix of every resource name.
    #[serde(default = "default_project")]
    project: String,
}

fn default_project() -> String {
    "photos".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegions {
    primary: RawRegion,
    secondary: RawRegion,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    name: String,
    endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    instance_id: Option<String>,
    mode: Option<Mode>,
    failback: Option<Failback>,
    failback_after: Option<HumanDuration>,
    hold_down: Option<HumanDuration>,
    fence_for: Option<HumanDuration>,
    max_fence: Option<HumanDuration>,
    state_refresh: Option<HumanDuration>,
    write_timeout: Option<HumanDuration>,
    record_observations: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbeDefaults {
    interval: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
    jitter: Option<HumanDuration>,
    fall: Option<u32>,
    rise: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    name: String,
    kind: ProbeKindName,
    region: Role,
    interval: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
    jitter: Option<HumanDuration>,
    fall: Option<u32>,
    rise: Option<u32>,
    // http
    url: Option<String>,
    expect_status: Option<Vec<u16>>,
    expect_body: Option<String>,
    // s3 and dynamodb
    bucket: Option<String>,
    table: Option<String>,
    check: Option<String>,
    // cloudwatch_alarm
    alarms: Option<Vec<String>>,
    insufficient_data: Option<InsufficientData>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    failover_when: Option<RegionRule>,
    require_healthy_secondary: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStack {
    tables: Option<TablesMode>,
    cognito_username: Option<String>,
    cognito_email: Option<String>,
    route53_zone_id: Option<String>,
    domain: Option<String>,
}

// ---------------------------------------------------------------------------------
// The validated settings the rest of the program uses.

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub app: AppSettings,
    pub regions: RegionsSettings,
    pub monitor: MonitorSettings,
    /// `[probe_defaults]` with the built-in defaults filled in (the probes already
    /// carry them; kept for `provision monitor-config`).
    pub probe_defaults: ProbeDefaults,
    pub probes: Vec<ProbeSpec>,
    pub policy: PolicySettings,
    pub admin: AdminSettings,
    pub stack: StackSettings,
    /// None: a single instance acting alone.
    pub coordination: Option<CoordinationSettings>,
    /// None: DNS is not touched.
    pub route53: Option<Route53Settings>,
}

/// The DNS record that follows the state: `primary_value` while active or fenced,
/// `secondary_value` in failover.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route53Settings {
    pub zone_id: String,
    /// Fully qualified, with the trailing dot.
    pub record_name: String,
    pub record_type: String,
    pub ttl: i64,
    pub primary_value: String,
    pub secondary_value: String,
    /// Only for an emulator.
    pub endpoint_url: Option<String>,
}

/// Several instances cooperating through the config table in the secondary region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoordinationSettings {
    /// Every cooperating instance's `instance_id` (this one included).
    pub instances: Vec<String>,
    /// How long a leader's lease lasts without renewal.
    pub lease: Duration,
    /// How often the lease is renewed and this instance's view published.
    pub renew_every: Duration,
    /// A peer whose view has not changed for this long is not live.
    pub view_ttl: Duration,
    pub quorum: QuorumRule,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppSettings {
    /// `appId` of the config item.
    pub id: String,
    /// Prefix of every resource name (`<project>-config`, `<project>-primary`, ...).
    pub project: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionsSettings {
    pub primary: RegionSettings,
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

#[derive(Debug, Clone, Serialize)]
pub struct RegionSettings {
    /// AWS region name, e.g. `us-east-1`.
    pub name: String,
    /// Only for an emulator: every AWS call for this region goes there.
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonitorSettings {
    /// Unique per cooperating instance; written as `updatedBy`.
    pub instance_id: String,
    pub mode: Mode,
    pub failback: Failback,
    /// With `failback = "auto"`: how long the primary must have been up.
    pub failback_after: Duration,
    /// No automatic transition sooner than this after the last one.
    pub hold_down: Duration,
    /// > 0: fail over in two steps, active -> fenced, wait this long, -> failover.
    pub fence_for: Duration,
    /// While fenced, wait for replication to drain, but no longer than this
    /// (default: `fence_for`, i.e. a fixed fence).
    pub max_fence: Duration,
    /// How often both copies of the config item are read (and the lagging one caught up).
    pub state_refresh: Duration,
    /// Upper bound of one AWS write attempt by the actuator.
    pub write_timeout: Duration,
    /// Append every probe result to this JSONL file, for `failover-monitor backtest`.
    pub record_observations: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeSpec {
    pub name: String,
    pub region: Role,
    pub interval: Duration,
    pub timeout: Duration,
    /// Each run starts up to this much later than its slot, so probes do not align.
    pub jitter: Duration,
    /// Consecutive failures before the probe counts as down.
    pub fall: u32,
    /// Consecutive successes before it counts as up again.
    pub rise: u32,
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

#[derive(Debug, Clone, Serialize)]
pub enum CheckSpec {
    Http {
        /// `{app_id}` already substituted.
        url: String,
        expect_status: Vec<u16>,
        expect_body: Option<String>,
    },
    S3 {
        bucket: String,
        check: S3Check,
    },
    Dynamodb {
        table: String,
        check: DynamoCheck,
    },
    CloudwatchAlarm {
        alarms: Vec<String>,
        insufficient_data: InsufficientData,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicySettings {
    pub failover_when: RegionRule,
    /// No automatic failover unless every secondary probe is up.
    pub require_healthy_secondary: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeDefaults {
    pub interval: Duration,
    pub timeout: Duration,
    pub jitter: Duration,
    pub fall: u32,
    pub rise: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
}

/// How `provision` makes the two copies of each table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TablesMode {
    /// One DynamoDB global table with a replica in the secondary (AWS).
    Global,
    /// Two independent tables (emulators, which do not replicate).
    PerRegion,
}

#[derive(Debug, Clone, Serialize)]
pub struct StackSettings {
    /// None: global tables on AWS, one table per region against an emulator.
    pub tables: Option<TablesMode>,
    pub cognito_username: Option<String>,
    pub cognito_email: Option<String>,
    pub route53_zone_id: Option<String>,
    pub domain: Option<String>,
}

/// The settings, if `run` can use them: a file without probes is valid for
/// `provision` only.
pub fn for_run(settings: Settings) -> Result<Settings, ConfigError> {
    if settings.probes.is_empty() {
        return Err(invalid(
            "probes",
            "0 probe(s)",
            "`run` needs at least one probe on the primary region \
             (`failover-monitor provision monitor-config` writes them for a provisioned stack)",
        ));
    }
    Ok(settings)
}

impl Settings {
    /// `<project>-config`, the table holding the config item.
    pub fn config_table(&self) -> String {
        format!("{}-config", self.app.project)
    }
}

/// Defaults chosen so that 10% independent probe loss never flips the region (see the
/// policy's simulation test) while a dead region is detected in about 5 x 2 s.
pub mod defaults {
    use std::time::Duration;

    pub const INTERVAL: Duration = Duration::from_secs(2);
    pub const TIMEOUT: Duration = Duration::from_secs(1);
    pub const JITTER: Duration = Duration::from_millis(200);
    pub const FALL: u32 = 5;
    pub const RISE: u32 = 3;
    pub const FAILBACK_AFTER: Duration = Duration::from_secs(600);
    pub const HOLD_DOWN: Duration = Duration::from_secs(300);
    pub const STATE_REFRESH: Duration = Duration::from_secs(5);
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
    pub const ADMIN_LISTEN: &str = "127.0.0.1:9464";
}

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
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
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
        .map_err(|e| ConfigError::Parse {
            key: "monitor.toml".into(),
            message: one_line(&e.to_string()),
        })?;
    // Going through serde_json::Value gives serde's own, precise error messages.
    let value: serde_json::Value = merged.try_deserialize().map_err(|e| ConfigError::Parse {
        key: "monitor.toml".into(),
        message: e.to_string(),
    })?;
    let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Parse {
            key: if key == "." {
                "monitor.toml".into()
            } else {
                key
            },
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "failover-monitor".into())
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

impl RawConfig {
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let app = AppSettings {
            id: self.app.id,
            project: self.app.project,
        };
        if app.id.is_empty() || app.id.contains('#') {
            return Err(invalid(
                "app.id",
                format!("{:?}", app.id),
                "must be non-empty and must not contain '#'",
            ));
        }
        let project_ok = (3..=53).contains(&app.project.len())
            && app
                .project
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !app.project.starts_with('-')
            && !app.project.ends_with('-');
        if !project_ok {
            return Err(invalid(
                "app.project",
                format!("{:?}", app.project),
                "3 to 53 characters of a-z, 0-9 and '-', not starting or ending with '-' \
                 (it prefixes S3 bucket names)",
            ));
        }

        for (role, r) in [
            (Role::Primary, &self.regions.primary),
            (Role::Secondary, &self.regions.secondary),
        ] {
            check_region_name(&format!("regions.{role}.name"), &r.name)?;
            if let Some(url) = &r.endpoint_url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(invalid(
                    format!("regions.{role}.endpoint_url"),
                    format!("{url:?}"),
                    "must start with http:// or https://",
                ));
            }
        }
        if self.regions.primary.name == self.regions.secondary.name
            && self.regions.primary.endpoint_url == self.regions.secondary.endpoint_url
        {
            return Err(invalid(
                "regions.secondary.name",
                format!("{:?}", self.regions.secondary.name),
                "must differ from regions.primary.name",
            ));
        }
        let regions = RegionsSettings {
            primary: RegionSettings {
                name: self.regions.primary.name,
                endpoint_url: self.regions.primary.endpoint_url,
            },
            secondary: RegionSettings {
                name: self.regions.secondary.name,
                endpoint_url: self.regions.secondary.endpoint_url,
            },
        };

        let m = self.monitor;
        let instance_id = m.instance_id.unwrap_or_else(hostname);
        if instance_id.is_empty()
            || instance_id.starts_with("admin:")
            || instance_id.starts_with("cli:")
        {
            return Err(invalid(
                "monitor.instance_id",
                format!("{instance_id:?}"),
                "must be non-empty and must not start with \"admin:\" or \"cli:\"",
            ));
        }
        let monitor = MonitorSettings {
            instance_id,
            mode: m.mode.unwrap_or(Mode::Auto),
            failback: m.failback.unwrap_or(Failback::Manual),
            failback_after: m.failback_after.map_or(defaults::FAILBACK_AFTER, |d| d.0),
            hold_down: m.hold_down.map_or(defaults::HOLD_DOWN, |d| d.0),
            fence_for: m.fence_for.map_or(Duration::ZERO, |d| d.0),
            max_fence: m.max_fence.or(m.fence_for).map_or(Duration::ZERO, |d| d.0),
            state_refresh: m.state_refresh.map_or(defaults::STATE_REFRESH, |d| d.0),
            write_timeout: m.write_timeout.map_or(defaults::WRITE_TIMEOUT, |d| d.0),
            record_observations: m.record_observations,
        };
        if monitor.max_fence < monitor.fence_for {
            return Err(invalid(
                "monitor.max_fence",
                HumanDuration(monitor.max_fence),
                format!(
                    "must be at least monitor.fence_for ({})",
                    HumanDuration(monitor.fence_for)
                ),
            ));
        }
        for (key, d) in [
            ("monitor.state_refresh", monitor.state_refresh),
            ("monitor.write_timeout", monitor.write_timeout),
        ] {
            if d < Duration::from_millis(100) {
                return Err(invalid(key, HumanDuration(d), "must be at least 100ms"));
            }
        }

        let pd = self.probe_defaults;
        let probe_defaults = ProbeDefaults {
            interval: pd.interval.map_or(defaults::INTERVAL, |d| d.0),
            timeout: pd.timeout.map_or(defaults::TIMEOUT, |d| d.0),
            jitter: pd.jitter.map_or(defaults::JITTER, |d| d.0),
            fall: pd.fall.unwrap_or(defaults::FALL),
            rise: pd.rise.unwrap_or(defaults::RISE),
        };
        let mut names = HashSet::new();
        let mut probes = Vec::with_capacity(self.probes.len());
        for (i, p) in self.probes.into_iter().enumerate() {
            let spec = validate_probe(i, p, &pd, &app)?;
            if !names.insert(spec.name.clone()) {
                return Err(invalid(
                    format!("probes[{i}].name"),
                    format!("{:?}", spec.name),
                    "already used by another probe; names must be unique",
                ));
            }
            probes.push(spec);
        }
        let primary_probes = probes.iter().filter(|p| p.region == Role::Primary).count();
        // No probes at all is a file for `provision` (which writes the probes with
        // `provision monitor-config`); `run` refuses it.
        if primary_probes == 0 && !probes.is_empty() {
            return Err(invalid(
                "probes",
                format!("{} probe(s), none with region = \"primary\"", probes.len()),
                "at least one probe must watch the primary region",
            ));
        }

        let policy = PolicySettings {
            failover_when: self.policy.failover_when.unwrap_or(RegionRule::Majority),
            require_healthy_secondary: self.policy.require_healthy_secondary.unwrap_or(true),
        };
        if let RegionRule::AtLeast { n, m } = policy.failover_when
            && (n == 0 || n > m || m != primary_probes)
        {
            return Err(invalid(
                "policy.failover_when",
                format!("\"{n} of {m}\""),
                format!(
                    "n must be between 1 and m, and m must equal the number of primary \
                     probes ({primary_probes})"
                ),
            ));
        }

        let listen_text = self
            .admin
            .listen
            .unwrap_or_else(|| defaults::ADMIN_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "admin.listen",
                format!("{listen_text:?}"),
                "expected an IP address and port such as \"127.0.0.1:9464\"",
            )
        })?;
        let admin = AdminSettings {
            listen,
            token_file: self.admin.token_file,
        };

        let stack = StackSettings {
            tables: self.stack.tables,
            cognito_username: self.stack.cognito_username,
            cognito_email: self.stack.cognito_email,
            route53_zone_id: self.stack.route53_zone_id,
            domain: self.stack.domain,
        };
        if let Some(email) = &stack.cognito_email
            && !email.contains('@')
        {
            return Err(invalid(
                "stack.cognito_email",
                format!("{email:?}"),
                "must be an e-mail address",
            ));
        }
        if let Some(user) = &stack.cognito_username
            && (user.is_empty() || user.len() > 128 || user.chars().any(char::is_whitespace))
        {
            return Err(invalid(
                "stack.cognito_username",
                format!("{user:?}"),
                "1 to 128 characters without whitespace (a Cognito user name)",
            ));
        }
        match (&stack.route53_zone_id, &stack.domain) {
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

        let coordination = validate_coordination(self.coordination, &monitor.instance_id)?;
        let route53 = self.route53.map(validate_route53).transpose()?;

        Ok(Settings {
            app,
            regions,
            monitor,
            probe_defaults,
            probes,
            policy,
            admin,
            stack,
            coordination,
            route53,
        })
    }
}

fn validate_route53(r: RawRoute53) -> Result<Route53Settings, ConfigError> {
    if r.zone_id.is_empty() || !r.zone_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            "route53.zone_id",
            format!("{:?}", r.zone_id),
            "a hosted zone id such as \"Z0123456789ABC\"",
        ));
    }
    let name = r.record_name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || !name.contains('.') {
        return Err(invalid(
            "route53.record_name",
            format!("{:?}", r.record_name),
            "a fully qualified domain name",
        ));
    }
    let record_type = r.record_type.unwrap_or_else(|| "CNAME".into());
    if !["CNAME", "A", "AAAA", "TXT"].contains(&record_type.as_str()) {
        return Err(invalid(
            "route53.record_type",
            format!("{record_type:?}"),
            "one of \"CNAME\", \"A\", \"AAAA\", \"TXT\"",
        ));
    }
    let ttl = r.ttl.unwrap_or(60);
    if !(1..=172_800).contains(&ttl) {
        return Err(invalid("route53.ttl", ttl, "seconds between 1 and 172800"));
    }
    for (k, v) in [
        ("route53.primary_value", &r.primary_value),
        ("route53.secondary_value", &r.secondary_value),
    ] {
        if v.is_empty() {
            return Err(invalid(k, "\"\"", "must not be empty"));
        }
    }
    if r.primary_value == r.secondary_value {
        return Err(invalid(
            "route53.secondary_value",
            format!("{:?}", r.secondary_value),
            "must differ from route53.primary_value",
        ));
    }
    Ok(Route53Settings {
        zone_id: r.zone_id,
        record_name: format!("{name}."),
        record_type,
        ttl,
        primary_value: r.primary_value,
        secondary_value: r.secondary_value,
        endpoint_url: r.endpoint_url,
    })
}

fn validate_coordination(
    c: RawCoordination,
    me: &str,
) -> Result<Option<CoordinationSettings>, ConfigError> {
    let Some(instances) = c.instances else {
        if c.lease.is_some()
            || c.renew_every.is_some()
            || c.view_ttl.is_some()
            || c.quorum.is_some()
        {
            return Err(ConfigError::Parse {
                key: "coordination.instances".into(),
                message:
                    "missing; the other coordination keys need the list of cooperating instances"
                        .into(),
            });
        }
        return Ok(None);
    };
    if !instances.iter().any(|i| i == me) {
        return Err(invalid(
            "coordination.instances",
            format!("{instances:?}"),
            format!("must include this instance's monitor.instance_id ({me:?})"),
        ));
    }
    let unique: HashSet<&String> = instances.iter().collect();
    if unique.len() != instances.len() || instances.iter().any(|i| i.is_empty() || i.contains('#'))
    {
        return Err(invalid(
            "coordination.instances",
            format!("{instances:?}"),
            "instance ids must be unique, non-empty and without '#'",
        ));
    }
    let renew_every = c.renew_every.map_or(Duration::from_secs(2), |d| d.0);
    let lease = c.lease.map_or(Duration::from_secs(10), |d| d.0);
    let view_ttl = c.view_ttl.map_or(lease, |d| d.0);
    if renew_every < Duration::from_millis(100) {
        return Err(invalid(
            "coordination.renew_every",
            HumanDuration(renew_every),
            "must be at least 100ms",
        ));
    }
    if lease < renew_every * 3 {
        return Err(invalid(
            "coordination.lease",
            HumanDuration(lease),
            format!(
                "must be at least 3 x renew_every ({})",
                HumanDuration(renew_every * 3)
            ),
        ));
    }
    if view_ttl < renew_every * 2 {
        return Err(invalid(
            "coordination.view_ttl",
            HumanDuration(view_ttl),
            format!(
                "must be at least 2 x renew_every ({})",
                HumanDuration(renew_every * 2)
            ),
        ));
    }
    let quorum = c.quorum.unwrap_or(QuorumRule::Majority);
    if let QuorumRule::AtLeast(n) = quorum
        && (n == 0 || n > instances.len())
    {
        return Err(invalid(
            "coordination.quorum",
            n,
            format!(
                "must be \"majority\" or between 1 and the number of instances ({})",
                instances.len()
            ),
        ));
    }
    Ok(Some(CoordinationSettings {
        instances,
        lease,
        renew_every,
        view_ttl,
        quorum,
    }))
}

fn validate_probe(
    i: usize,
    p: RawProbe,
    pd: &RawProbeDefaults,
    app: &AppSettings,
) -> Result<ProbeSpec, ConfigError> {
    let key = |k: &str| format!("probes[{i}].{k}");
    if p.name.is_empty()
        || !p
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            key("name"),
            format!("{:?}", p.name),
            "must be non-empty and use only a-z, A-Z, 0-9, '-' and '_'",
        ));
    }
    let interval = p
        .interval
        .or(pd.interval)
        .map_or(defaults::INTERVAL, |d| d.0);
    let timeout = p.timeout.or(pd.timeout).map_or(defaults::TIMEOUT, |d| d.0);
    let jitter = p.jitter.or(pd.jitter).map_or(defaults::JITTER, |d| d.0);
    let fall = p.fall.or(pd.fall).unwrap_or(defaults::FALL);
    let rise = p.rise.or(pd.rise).unwrap_or(defaults::RISE);
    if interval < Duration::from_millis(10) {
        return Err(invalid(
            key("interval"),
            HumanDuration(interval),
            "must be at least 10ms",
        ));
    }
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
    for (k, v) in [("fall", fall), ("rise", rise)] {
        if !(1..=1000).contains(&v) {
            return Err(invalid(key(k), v, "must be between 1 and 1000"));
        }
    }

    // Which kind-specific keys were given, so that a key meant for another kind is
    // reported instead of silently ignored.
    let given: Vec<&str> = [
        ("url", p.url.is_some()),
        ("expect_status", p.expect_status.is_some()),
        ("expect_body", p.expect_body.is_some()),
        ("bucket", p.bucket.is_some()),
        ("table", p.table.is_some()),
        ("check", p.check.is_some()),
        ("alarms", p.alarms.is_some()),
        ("insufficient_data", p.insufficient_data.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let (kind_name, allowed): (&str, &[&str]) = match p.kind {
        ProbeKindName::Http => ("http", &["url", "expect_status", "expect_body"]),
        ProbeKindName::S3 => ("s3", &["bucket", "check"]),
        ProbeKindName::Dynamodb => ("dynamodb", &["table", "check"]),
        ProbeKindName::CloudwatchAlarm => ("cloudwatch_alarm", &["alarms", "insufficient_data"]),
    };
    if let Some(extra) = given.iter().find(|k| !allowed.contains(k)) {
        return Err(ConfigError::Parse {
            key: key(extra),
            message: format!(
                "not a key of kind \"{kind_name}\" (its keys: {})",
                allowed.join(", ")
            ),
        });
    }
    let role_suffix = p.region.as_str();
    let check = match p.kind {
        ProbeKindName::Http => {
            let url = p.url.ok_or_else(|| ConfigError::Parse {
                key: key("url"),
                message: "missing; kind \"http\" needs the URL to GET".into(),
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    key("url"),
                    format!("{url:?}"),
                    "must start with http:// or https://",
                ));
            }
            let expect_status = p.expect_status.unwrap_or_else(|| vec![200]);
            if expect_status.is_empty() {
                return Err(invalid(
                    key("expect_status"),
                    "[]",
                    "must list at least one status",
                ));
            }
            if let Some(bad) = expect_status.iter().find(|s| !(100..=599).contains(*s)) {
                return Err(invalid(
                    key("expect_status"),
                    bad,
                    "HTTP statuses are 100 to 599",
                ));
            }
            CheckSpec::Http {
                url: url.replace("{app_id}", &app.id),
                expect_status,
                expect_body: p.expect_body,
            }
        }
        ProbeKindName::S3 => {
            let check = match p.check.as_deref() {
                None | Some("head_bucket") => S3Check::HeadBucket,
                Some("roundtrip") => S3Check::Roundtrip,
                Some(other) => {
                    return Err(invalid(
                        key("check"),
                        format!("{other:?}"),
                        "kind \"s3\" allows \"head_bucket\" or \"roundtrip\"",
                    ));
                }
            };
            CheckSpec::S3 {
                bucket: p
                    .bucket
                    .unwrap_or_else(|| format!("{}-{role_suffix}", app.project)),
                check,
            }
        }
        ProbeKindName::Dynamodb => {
            let check = match p.check.as_deref() {
                None | Some("get_item") => DynamoCheck::GetItem,
                Some("describe_table") => DynamoCheck::DescribeTable,
                Some(other) => {
                    return Err(invalid(
                        key("check"),
                        format!("{other:?}"),
                        "kind \"dynamodb\" allows \"get_item\" or \"describe_table\"",
                    ));
                }
            };
            CheckSpec::Dynamodb {
                table: p.table.unwrap_or_else(|| format!("{}-config", app.project)),
                check,
            }
        }
        ProbeKindName::CloudwatchAlarm => {
            let alarms = p.alarms.unwrap_or_default();
            if alarms.is_empty() || alarms.iter().any(String::is_empty) {
                return Err(invalid(
                    key("alarms"),
                    format!("{alarms:?}"),
                    "kind \"cloudwatch_alarm\" needs at least one alarm name",
                ));
            }
            CheckSpec::CloudwatchAlarm {
                alarms,
                insufficient_data: p.insufficient_data.unwrap_or(InsufficientData::Ok),
            }
        }
    };
    Ok(ProbeSpec {
        name: p.name,
        region: p.region,
        interval,
        timeout,
        jitter,
        fall,
        rise,
        check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [app]
        id = "app-1"
        [regions.primary]
        name = "us-east-1"
        [regions.secondary]
        name = "ap-northeast-1"
        [[probes]]
        name = "cfg"
        kind = "dynamodb"
        region = "primary"
    "#;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn minimal_config_gets_the_documented_defaults() {
        let s = parse(MINIMAL, no_env()).unwrap();
        assert_eq!(s.app.project, "photos");
        assert_eq!(s.monitor.mode, Mode::Auto);
        assert_eq!(s.monitor.failback, Failback::Manual);
        assert_eq!(s.monitor.hold_down, Duration::from_secs(300));
        assert_eq!(s.policy.failover_when, RegionRule::Majority);
        assert_eq!(s.admin.listen, "127.0.0.1:9464".parse().unwrap());
        let p = &s.probes[0];
        assert_eq!(
            (p.interval, p.timeout, p.fall, p.rise),
            (defaults::INTERVAL, defaults::TIMEOUT, 5, 3)
        );
        match &p.check {
            CheckSpec::Dynamodb { table, check } => {
                assert_eq!(table, "photos-config");
                assert_eq!(*check, DynamoCheck::GetItem);
            }
            other => panic!("unexpected check {other:?}"),
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = vec![
            (
                "FAILOVER_MONITOR__MONITOR__MODE".to_string(),
                "dry-run".to_string(),
            ),
            (
                "FAILOVER_MONITOR__MONITOR__HOLD_DOWN".to_string(),
                "90s".to_string(),
            ),
            (
                "FAILOVER_MONITOR__APP__ID".to_string(),
                "from-env".to_string(),
            ),
            (
                "FAILOVER_MONITOR_ADMIN_TOKEN".to_string(),
                "not-a-key".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let s = parse(MINIMAL, env).unwrap();
        assert_eq!(s.monitor.mode, Mode::DryRun);
        assert_eq!(s.monitor.hold_down, Duration::from_secs(90));
        assert_eq!(s.app.id, "from-env");
    }

    #[test]
    fn environment_values_are_validated_like_the_file() {
        let env = vec![(
            "FAILOVER_MONITOR__MONITOR__MODE".to_string(),
            "sometimes".to_string(),
        )];
        let err = parse(MINIMAL, env).unwrap_err().to_string();
        assert_eq!(
            err,
            "monitor.mode: unknown variant `sometimes`, expected one of `auto`, `manual`, `dry-run`"
        );
    }

    #[test]
    fn region_rules_parse_and_count() {
        let rule: RegionRule = serde_json::from_value(serde_json::json!("2 of 3")).unwrap();
        assert_eq!(rule, RegionRule::AtLeast { n: 2, m: 3 });
        assert_eq!(rule.threshold(3), 2);
        assert_eq!(RegionRule::Majority.threshold(1), 1);
        assert_eq!(RegionRule::Majority.threshold(4), 3);
        assert_eq!(RegionRule::All.threshold(4), 4);
        assert!(serde_json::from_value::<RegionRule>(serde_json::json!("2 of")).is_err());
    }

    /// Each `tests/testdata/config/invalid-*.toml` starts with `# error: <exact text>`.
    #[test]
    fn invalid_configs_fail_with_the_exact_message() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/config");
        let mut seen = 0;
        let mut mismatches = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with("invalid-") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let expected = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# error: "))
                .unwrap_or_else(|| panic!("{name}: first line must be `# error: ...`"));
            let got = parse(&text, no_env()).map(|_| ()).unwrap_err().to_string();
            if got != expected {
                mismatches.push(format!(
                    "{name}:\n  expected: {expected}\n       got: {got}"
                ));
            }
            seen += 1;
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
        assert!(seen >= 15, "only {seen} invalid configs found");
    }

    #[test]
    fn the_shipped_monitor_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("monitor.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let s = parse(&text, no_env()).unwrap();
        let kinds: HashSet<&str> = s.probes.iter().map(|p| p.kind()).collect();
        for k in ["http", "s3", "dynamodb", "cloudwatch_alarm"] {
            assert!(kinds.contains(k), "monitor.toml has no {k} probe");
        }
    }

    #[test]
    fn a_file_without_probes_is_for_provision_and_run_refuses_it() {
        let text = "[app]\nid = \"a\"\n[regions.primary]\nname = \"us-east-1\"\n\
                    [regions.secondary]\nname = \"ap-northeast-1\"\n\
                    [probe_defaults]\ninterval = \"1s\"\nfall = 3\n";
        let s = parse(text, no_env()).unwrap();
        assert!(s.probes.is_empty());
        assert_eq!(s.probe_defaults.interval, Duration::from_secs(1));
        assert_eq!(s.probe_defaults.fall, 3);
        assert_eq!(s.probe_defaults.rise, defaults::RISE);
        let err = for_run(s).unwrap_err().to_string();
        assert!(
            err.starts_with("probes = 0 probe(s): `run` needs at least one probe"),
            "{err}"
        );
    }
}
