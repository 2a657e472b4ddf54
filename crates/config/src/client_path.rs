//! `[client_path]`: how the monitor reaches the application as its clients do (each
//! region's state API, store API and photo bucket), to see when clients are served
//! after a transition (the recovery report) and to verify a drill; and the RPO
//! canary's cadence. Optional; every key has a default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::checks::CheckSpec;
use super::probes::ProbeSpec;
use super::values::{HumanDuration, check_at_least, check_http_url, or_default};
use super::{ConfigError, defaults};
use failover_core::model::Role;

/// `[client_path]` as written; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClientPath {
    /// The primary's state API, as the application's clients read it (`{app_id}` is
    /// replaced). Default: the URL of the first `http` probe of the primary whose URL
    /// contains `/state/`; without one, no state API is watched there.
    primary_state_url: Option<String>,
    /// The secondary's state API, as for the primary.
    secondary_state_url: Option<String>,
    /// The primary's store API, ending before `/comments/...` (the stage URL, e.g.
    /// `https://<id>.execute-api.<region>.amazonaws.com/prod`). A signed
    /// `POST /comments/{photoId}` and a `GET` through it are the client-path write.
    /// Default: none (no client-path write is measured there).
    primary_store_url: Option<String>,
    /// The secondary's store API, as for the primary.
    secondary_store_url: Option<String>,
    /// The primary's photo bucket (a drill's photo put, get and delete). Default:
    /// `<project>-primary`.
    primary_bucket: Option<String>,
    /// The secondary's photo bucket. Default: `<project>-secondary`.
    secondary_bucket: Option<String>,
    /// After a transition, how long the monitor watches the state APIs and tries
    /// the client-path write before the report is complete. Duration, at least
    /// `poll_every`. Default: `"2m"`.
    observe_for: Option<HumanDuration>,
    /// How often it reads the state APIs meanwhile. Duration, at least `"100ms"`.
    /// Default: `"500ms"`.
    poll_every: Option<HumanDuration>,
    /// How often the acting instance writes the RPO canary in the primary (and
    /// every instance reads it in both regions). Duration, at least `"1s"`.
    /// Default: `"10s"`.
    canary_every: Option<HumanDuration>,
}

/// One region's client path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientRegion {
    /// The state API (`{app_id}` replaced), if one is known.
    pub state_url: Option<String>,
    /// The store API's stage URL, if configured.
    pub store_url: Option<String>,
    /// The photo bucket.
    pub bucket: String,
}

/// `[client_path]`, validated, with the defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientPathSettings {
    /// Indexed by `Role as usize`.
    pub regions: [ClientRegion; 2],
    /// How long a transition's clients are watched.
    pub observe_for: Duration,
    /// How often the state APIs are read meanwhile.
    pub poll_every: Duration,
    /// How often the RPO canary is written and read.
    pub canary_every: Duration,
}

impl ClientPathSettings {
    pub fn region(&self, role: Role) -> &ClientRegion {
        &self.regions[role as usize]
    }
}

impl RawClientPath {
    pub(super) fn validate(
        self,
        app_id: &str,
        project: &str,
        probes: &[ProbeSpec],
    ) -> Result<ClientPathSettings, ConfigError> {
        let observe_for = or_default(self.observe_for, defaults::OBSERVE_FOR);
        let poll_every = or_default(self.poll_every, defaults::POLL_EVERY);
        let canary_every = or_default(self.canary_every, defaults::CANARY_EVERY);
        check_at_least(
            "client_path.poll_every",
            poll_every,
            Duration::from_millis(100),
        )?;
        check_at_least("client_path.observe_for", observe_for, poll_every)?;
        check_at_least(
            "client_path.canary_every",
            canary_every,
            Duration::from_secs(1),
        )?;
        let region =
            |role: Role, state: Option<String>, store: Option<String>, bucket: Option<String>| {
                let prefix = format!("client_path.{role}");
                if let Some(url) = &state {
                    check_http_url(&format!("{prefix}_state_url"), url)?;
                }
                if let Some(url) = &store {
                    check_http_url(&format!("{prefix}_store_url"), url)?;
                }
                Ok::<_, ConfigError>(ClientRegion {
                    state_url: state
                        .map(|u| u.replace("{app_id}", app_id))
                        .or_else(|| state_probe(probes, role)),
                    store_url: store.map(|u| u.trim_end_matches('/').to_owned()),
                    bucket: bucket.unwrap_or_else(|| defaults::bucket(project, role)),
                })
            };
        Ok(ClientPathSettings {
            regions: [
                region(
                    Role::Primary,
                    self.primary_state_url,
                    self.primary_store_url,
                    self.primary_bucket,
                )?,
                region(
                    Role::Secondary,
                    self.secondary_state_url,
                    self.secondary_store_url,
                    self.secondary_bucket,
                )?,
            ],
            observe_for,
            poll_every,
            canary_every,
        })
    }
}

/// The URL of the region's first `http` probe that reads a state API.
fn state_probe(probes: &[ProbeSpec], role: Role) -> Option<String> {
    probes.iter().find_map(|p| match &p.check {
        CheckSpec::Http { url, .. } if p.region == role && url.contains("/state/") => {
            Some(url.clone())
        }
        _ => None,
    })
}
