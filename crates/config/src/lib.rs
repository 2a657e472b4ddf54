//! `monitor.toml`: loading (file, then `FAILOVER_MONITOR__SECTION__KEY` environment
//! overrides), strict parsing and validation into [`Settings`].
//!
//! Parsing happens in two steps, the way blackbox_exporter does it: serde rejects
//! unknown keys and malformed values (the path to the key comes from
//! `serde_path_to_error`), then [`RawConfig::validate`] applies defaults and the rules
//! that span several keys. Every error names the key, the value and what is allowed
//! (and the environment variable, when the key came from one); the table tests over
//! `tests/testdata/config/invalid-*.toml` pin the exact text.
//!
//! One file per section, each holding the section as written (`Raw*`, whose `///`
//! comments are the user's documentation, repeated in `docs/REFERENCE.md`), its
//! validated settings and its validation: `app`, `regions`, `monitor`, `probes` (with
//! the kind-specific keys in `checks`), `policy`, `admin`, `stack`, `coordination`,
//! `route53`. Beside them: `load` (file, environment, which variable a bad key came
//! from), `values` (durations and shared checks) and `defaults` (every default, once).

mod admin;
mod app;
mod checks;
mod client_path;
mod coordination;
pub mod defaults;
mod drills;
mod load;
mod monitor;
mod policy;
mod probes;
mod readiness;
#[cfg(test)]
mod reference;
mod regions;
mod route53;
mod stack;
#[cfg(test)]
mod tests;
pub mod tokens;
mod values;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use admin::{AdminLimits, AdminSettings, AdminTls};
pub use app::AppSettings;
pub use checks::{CheckSpec, DynamoCheck, InsufficientData, ProbeKindName, S3Check};
pub use client_path::{ClientPathSettings, ClientRegion};
pub use coordination::CoordinationSettings;
pub use drills::{BlockingAlarm, DrillSettings, MAX_DRILL_STEP};
/// The rules the pure core applies, as `monitor.toml` names them.
pub use failover_core::rules::{Failback, Mode, QuorumRule, ReadinessRule, RegionRule};
pub use load::{ENV_PREFIX, load, parse};
pub use monitor::MonitorSettings;
pub use policy::PolicySettings;
pub use probes::{ProbeDefaults, ProbeSpec};
pub use readiness::ReadinessSettings;
pub use regions::{RegionSettings, RegionsSettings};
pub use route53::Route53Settings;
pub use stack::{StackSettings, TablesMode};
pub use values::HumanDuration;

use failover_core::model::Role;
use failover_core::policy::{Policy, PolicyConfig};

use crate::tokens::Tokens;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config file: {reason}")]
    Read { path: PathBuf, reason: String },
    /// The file is not there: say where it was looked for and how to name another.
    #[error(
        "{path}: cannot read the config file: it does not exist (looked for {looked_for}); \
         `--config PATH` names another file, and without it the file is ./monitor.toml \
         in the working directory",
        path = .path.display(),
        looked_for = .looked_for.display()
    )]
    NotFound { path: PathBuf, looked_for: PathBuf },
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
    /// `error` is about a key an environment variable set, not the file.
    #[error("{}", DisplayFromEnv(.var, .error))]
    FromEnv {
        var: String,
        error: Box<ConfigError>,
    },
}

impl ConfigError {
    /// The same error without the secrets a value it echoes can carry (a probe
    /// URL's presigned signature or API key, credentials before a host): every text
    /// it holds passes through [`failover_core::redact::redact_config_text`]. Every
    /// error leaving this crate is redacted, so neither `check-config`, `run` nor a
    /// reload's log echoes them.
    pub fn redacted(self) -> Self {
        let r = |s: String| failover_core::redact::redact_config_text(&s);
        match self {
            ConfigError::Read { path, reason } => ConfigError::Read {
                path,
                reason: r(reason),
            },
            e @ ConfigError::NotFound { .. } => e,
            ConfigError::Parse { key, message } => ConfigError::Parse {
                key,
                message: r(message),
            },
            ConfigError::Invalid {
                key,
                value,
                allowed,
            } => ConfigError::Invalid {
                key,
                value: r(value),
                allowed: r(allowed),
            },
            ConfigError::FromEnv { var, error } => ConfigError::FromEnv {
                var,
                error: Box::new(error.redacted()),
            },
        }
    }
}

/// Renders [`ConfigError::FromEnv`]: the variable right after the key, where the eye
/// looks for what to fix.
struct DisplayFromEnv<'a>(&'a str, &'a ConfigError);

impl fmt::Display for DisplayFromEnv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let DisplayFromEnv(var, error) = self;
        let origin = format!("(from the environment variable {var})");
        match error {
            ConfigError::Parse { key, message } => write!(f, "{key} {origin}: {message}"),
            ConfigError::Invalid {
                key,
                value,
                allowed,
            } => write!(f, "{key} = {value} {origin}: {allowed}"),
            other => write!(f, "{other} {origin}"),
        }
    }
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

/// The file as written. Every section rejects keys it does not know.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[app]`: which application the monitor guards. Required.
    app: app::RawApp,
    /// `[regions.primary]` and `[regions.secondary]`. Required.
    regions: regions::RawRegions,
    /// `[monitor]`: this instance, its mode and timing.
    #[serde(default)]
    monitor: monitor::RawMonitor,
    /// `[probe_defaults]`: what every probe gets unless it sets its own.
    #[serde(default)]
    probe_defaults: probes::RawProbeDefaults,
    /// `[[probes]]`: none is a file for `provision` only.
    #[serde(default)]
    probes: Vec<probes::RawProbe>,
    /// `[policy]`: when the primary counts as down.
    #[serde(default)]
    policy: policy::RawPolicy,
    /// `[admin]`: the admin API.
    #[serde(default)]
    admin: admin::RawAdmin,
    /// `[stack]`: what `provision` needs.
    #[serde(default)]
    stack: stack::RawStack,
    /// `[coordination]`: cooperating instances.
    #[serde(default)]
    coordination: coordination::RawCoordination,
    /// `[route53]`: a DNS record that follows the state.
    route53: Option<route53::RawRoute53>,
    /// `[client_path]`: the application as its clients reach it.
    #[serde(default)]
    client_path: client_path::RawClientPath,
    /// `[readiness]`: the secondary's readiness, checked continuously.
    #[serde(default)]
    readiness: readiness::RawReadiness,
    /// `[drills]`: practice failovers.
    #[serde(default)]
    drills: drills::RawDrills,
}

impl RawConfig {
    /// Section by section, in file order, so the first error is the first in the file.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let app = self.app.validate()?;
        let regions = self.regions.validate()?;
        let monitor = self.monitor.validate()?;
        let probe_defaults = self.probe_defaults.resolve();
        let probes = probes::validate_all(self.probes, &probe_defaults, &app)?;
        let policy = self.policy.validate(&probes)?;
        let admin = self.admin.validate()?;
        let stack = self.stack.validate()?;
        let coordination = self.coordination.validate(&monitor.instance_id)?;
        if let Some(c) = &coordination {
            coordination::check_votes_can_be_fresh(c, &probes)?;
        }
        let route53 = self
            .route53
            .map(route53::RawRoute53::validate)
            .transpose()?;
        if let Some(r) = &route53 {
            route53::check_not_the_stacks(r, stack.domain.as_deref())?;
        }
        let client_path = self.client_path.validate(&app.id, &app.project, &probes)?;
        let readiness = self.readiness.validate()?;
        let drills = self.drills.validate()?;
        let settings = Settings {
            readiness,
            client_path,
            drills,
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
        };
        check_a_move_can_be_answered(&settings)?;
        Ok(settings)
    }
}

/// How long a human's move may take to be answered (the admin API's request
/// timeout); `failover_daemon::control::ANSWER_WITHIN` is the same.
pub const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// A human's move waits at least this long behind a commit in flight before it is
/// answered as expired (`failover_daemon::control::move_wait`).
const SHORTEST_MOVE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `monitor.write_timeout` leaves a human's move time to wait behind a commit in
/// flight, commit, and be answered within the admin API's request timeout: a move
/// answered "timed out" is then always a move that never started.
fn check_a_move_can_be_answered(s: &Settings) -> Result<(), ConfigError> {
    let budget = ANSWER_WITHIN - std::time::Duration::from_secs(1) - SHORTEST_MOVE_WAIT;
    if s.longest_commit() <= budget {
        return Ok(());
    }
    let most = budget / s.commit_calls();
    Err(invalid(
        "monitor.write_timeout",
        humantime::format_duration(s.monitor.write_timeout),
        format!(
            "at most {}{}: a human's move makes up to {} calls of up to write_timeout each, \
             and must be answered within the admin API's {}s (with {}s to wait behind a \
             commit in flight)",
            humantime::format_duration(most),
            if s.route53.is_some() {
                " with [route53]"
            } else {
                ""
            },
            s.commit_calls(),
            ANSWER_WITHIN.as_secs(),
            SHORTEST_MOVE_WAIT.as_secs()
        ),
    ))
}

/// The validated settings the rest of the program uses.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Which application the monitor guards.
    pub app: AppSettings,
    /// Where its two copies run.
    pub regions: RegionsSettings,
    /// This instance, its mode and timing.
    pub monitor: MonitorSettings,
    /// `[probe_defaults]` with the built-in defaults filled in (the probes already
    /// carry them; kept for `provision monitor-config`).
    pub probe_defaults: ProbeDefaults,
    /// Every probe, with its defaults filled in.
    pub probes: Vec<ProbeSpec>,
    /// When the primary counts as down.
    pub policy: PolicySettings,
    /// The admin API.
    pub admin: AdminSettings,
    /// What `provision` needs.
    pub stack: StackSettings,
    /// None: a single instance acting alone.
    pub coordination: Option<CoordinationSettings>,
    /// None: DNS is not touched.
    pub route53: Option<Route53Settings>,
    /// The application as its clients reach it (reports, drills, the RPO canary).
    pub client_path: ClientPathSettings,
    /// The secondary's readiness check and what a not-ready one does.
    pub readiness: ReadinessSettings,
    /// Practice failovers (`[drills]`).
    pub drills: DrillSettings,
}

impl Settings {
    /// `<project>-config`, the table holding the config item.
    pub fn config_table(&self) -> String {
        defaults::table(&self.app.project)
    }

    /// `<project>-store`, the application's data table (comments).
    pub fn store_table(&self) -> String {
        format!("{}-store", self.app.project)
    }

    /// How the two copies of each table are made, for the daemon and `provision`
    /// alike: `stack.tables` when set, else global tables (an endpoint changes
    /// nothing: the local emulator replicates).
    pub fn tables_mode(&self) -> TablesMode {
        self.stack.tables_mode()
    }
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

/// Everything `run` checks before it starts, beyond the file itself: [`for_run`], the
/// admin token (`FAILOVER_MONITOR_ADMIN_TOKEN` in `env`, else `admin.token_file`), the
/// read-only token (`FAILOVER_MONITOR_ADMIN_READ_TOKEN`, else `admin.read_token_file`),
/// that an admin API reachable from other hosts has an admin token and TLS, and that
/// the TLS files can be read. `check-config`
/// calls it too, so it refuses exactly what `run` would. `env` is the process
/// environment (the one the settings were loaded with), passed in so that tests can
/// give their own.
pub fn for_run_with_env(
    settings: Settings,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Settings, Tokens), ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (env_admin, env_read) = (var(tokens::TOKEN_ENV), var(tokens::READ_TOKEN_ENV));
    let ready = || {
        let settings = for_run(settings)?;
        let tokens = tokens::load_tokens(&settings, env_admin, env_read)?;
        settings.admin.check_for_run(tokens.admin.is_some())?;
        Ok((settings, tokens))
    };
    ready().map_err(|e| {
        load::EnvOrigins::new(env.iter().map(|(k, _)| k))
            .attribute(e)
            .redacted()
    })
}

impl Settings {
    /// The policy's knobs. `evidence_ttl`, how fresh a lone instance's evidence must
    /// be, is twice the slowest primary probe's `interval + jitter + timeout`.
    pub fn policy_config(&self) -> PolicyConfig {
        PolicyConfig {
            mode: self.monitor.mode,
            failback: self.monitor.failback,
            failback_after: self.monitor.failback_after,
            hold_down: self.monitor.hold_down,
            fence_for: self.monitor.fence_for,
            max_fence: self.monitor.max_fence,
            rule: self.policy.failover_when,
            require_healthy_secondary: self.policy.require_healthy_secondary,
            fence_expiry: self.monitor.max_fence + self.failover_bound(),
            max_override: self.monitor.max_override,
            evidence_ttl: self
                .probes
                .iter()
                .filter(|p| p.region == Role::Primary)
                .map(|p| (p.interval + p.jitter + p.timeout) * 2)
                .max()
                .unwrap_or(std::time::Duration::MAX),
        }
    }

    /// The calls one commit of a human's move may make, each bounded by
    /// `monitor.write_timeout`: the transaction in the commit region, the primary's
    /// copy (or the read after a lost race), and the DNS record's read and change
    /// when `[route53]` is set.
    pub fn commit_calls(&self) -> u32 {
        3 + if self.route53.is_some() { 2 } else { 0 }
    }

    /// The longest one commit may take.
    pub fn longest_commit(&self) -> std::time::Duration {
        self.monitor.write_timeout * self.commit_calls()
    }

    /// The longest from the moment the primary stops answering every instance to the
    /// failover committed in the secondary, provided that from then on a quorum of the
    /// configured instances run (not stopped, their paths to the secondary and to each
    /// other intact), the secondary passes its probes and takes writes, and nothing else
    /// holds the move back (mode auto, not paused, hold-down over, no item for a human
    /// to settle):
    ///
    /// - detection, `fall x interval + jitter + timeout` (the slowest primary probe);
    /// - with cooperating instances, the votes: `3 x renew_every` (a view published,
    ///   read, and, for a peer seen for the first time, seen to change); and a leader:
    ///   `max(lease, view_ttl) + 2 x renew_every` if the one that held the lease died
    ///   with the outage (or a duplicate of an instance must be waited out);
    /// - the commit: `2 x write_timeout + 500 ms` (an attempt that timed out, the
    ///   backoff, which for a move's first failure is 0.5 s, the retry with the same
    ///   token);
    /// - with `fence_for > 0`: `max_fence` and a second commit.
    pub fn failover_bound(&self) -> std::time::Duration {
        let detection = self
            .probes
            .iter()
            .filter(|p| p.region == Role::Primary)
            .map(|p| p.interval * p.fall + p.jitter + p.timeout)
            .max()
            .unwrap_or_default();
        let coordination = self
            .coordination
            .as_ref()
            .map_or(std::time::Duration::ZERO, |c| {
                c.renew_every * 3 + c.lease.max(c.view_ttl) + c.renew_every * 2
            });
        let commit = self.monitor.write_timeout * 2 + std::time::Duration::from_millis(500);
        let fence = if self.monitor.fence_for.is_zero() {
            std::time::Duration::ZERO
        } else {
            self.monitor.max_fence + commit
        };
        detection + coordination + commit + fence
    }

    /// A fresh policy for these settings, its probes in the configured order.
    pub fn policy(&self) -> Policy {
        Policy::new(
            self.policy_config(),
            self.probes
                .iter()
                .map(|p| (p.name.clone(), p.region, p.fall, p.rise)),
        )
    }
}
