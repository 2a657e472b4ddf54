//! `[drills]`: practice failovers, on demand (`drill run`, `POST /v1/drills`) and,
//! with `every`, on a schedule. Optional; without the section a drill runs only on
//! demand, with the defaults below.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{HumanDuration, check_at_least, or_default};
use super::{ConfigError, invalid};
use failover_core::drill::{Day, Schedule, Window};
use failover_core::model::Role;

/// `[drills]` as written; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDrills {
    /// A scheduled drill is due once the last successful one is this old. Duration,
    /// at least `"1h"`. Default: none (drills run only on demand).
    every: Option<HumanDuration>,
    /// Scheduled drills start only inside this UTC window, `"HH:MM-HH:MM"` (it may
    /// wrap past midnight). Default: `"00:00-00:00"`, the whole day.
    window: Option<String>,
    /// UTC dates (`"YYYY-MM-DD"`) on which no scheduled drill starts. Default: none.
    #[serde(default)]
    blocked_dates: Vec<String>,
    /// CloudWatch alarm names that keep a drill (scheduled or on demand) from
    /// starting and abort a running one: `"name"` in the primary region,
    /// `"secondary:name"` in the secondary. Default: none.
    #[serde(default)]
    blocking_alarms: Vec<String>,
    /// How long a drill stays failed over before it fails back. Duration, at least
    /// `"1s"`. Default: `"10m"`.
    hold: Option<HumanDuration>,
    /// A fence before the failover (writes blocked), `"0s"` for none. Default: `"0s"`.
    fence: Option<HumanDuration>,
    /// How long each verification may take to see clients served by the new region.
    /// Duration, at least `"1s"`. Default: `"2m"`.
    verify_for: Option<HumanDuration>,
    /// A drill that is not done this long after its start aborts. Default: the fence,
    /// the hold, twice `verify_for` and five minutes.
    max_duration: Option<HumanDuration>,
    /// After a scheduled drill that did not succeed, the next try waits this long.
    /// Duration, at least `"1m"`. Default: `"1h"`.
    retry_after: Option<HumanDuration>,
    /// How often a running drill reads its blocking alarms. Duration, at least
    /// `"1s"`. Default: `"10s"`.
    alarm_every: Option<HumanDuration>,
}

/// One blocking alarm: its name and the region it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockingAlarm {
    pub region: Role,
    pub name: String,
}

/// `[drills]`, validated, with the defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillSettings {
    /// None: no scheduled drills.
    pub every: Option<Duration>,
    /// `HH:MM-HH:MM` UTC.
    pub window: String,
    /// `YYYY-MM-DD`.
    pub blocked_dates: Vec<String>,
    pub blocking_alarms: Vec<BlockingAlarm>,
    pub hold: Duration,
    pub fence: Duration,
    pub verify_for: Duration,
    /// None: derived per drill from its fence and hold ([`DrillSettings::limit`]).
    pub max_duration: Option<Duration>,
    pub retry_after: Duration,
    pub alarm_every: Duration,
}

impl Default for DrillSettings {
    fn default() -> Self {
        RawDrills::default()
            .validate()
            .expect("the defaults are valid")
    }
}

/// Longest hold or fence a drill may ask for.
pub const MAX_DRILL_STEP: Duration = Duration::from_secs(24 * 3600);

impl DrillSettings {
    /// The schedule, when drills are scheduled.
    pub fn schedule(&self) -> Option<Schedule> {
        let every = self.every?;
        Some(Schedule {
            every,
            window: Window::parse(&self.window).unwrap_or(Window::ALWAYS),
            blocked: self
                .blocked_dates
                .iter()
                .filter_map(|d| Day::parse(d).ok())
                .collect(),
            retry_after: self.retry_after,
        })
    }

    /// How long a drill with this fence and hold may take before it aborts.
    pub fn limit(&self, fence: Duration, hold: Duration) -> Duration {
        self.max_duration
            .unwrap_or(fence + hold + self.verify_for * 2 + Duration::from_secs(300))
    }
}

impl RawDrills {
    pub(super) fn validate(self) -> Result<DrillSettings, ConfigError> {
        let every = self.every.map(|d| d.0);
        if let Some(e) = every {
            check_at_least("drills.every", e, Duration::from_secs(3600))?;
        }
        let window = self.window.unwrap_or_else(|| "00:00-00:00".into());
        Window::parse(&window)
            .map_err(|why| invalid("drills.window", format!("{window:?}"), why))?;
        for d in &self.blocked_dates {
            Day::parse(d).map_err(|why| invalid("drills.blocked_dates", format!("{d:?}"), why))?;
        }
        let mut blocking_alarms = Vec::new();
        for a in self.blocking_alarms {
            let (region, name) = match a.split_once(':') {
                Some(("primary", n)) => (Role::Primary, n),
                Some(("secondary", n)) => (Role::Secondary, n),
                _ => (Role::Primary, a.as_str()),
            };
            if name.is_empty() || name.len() > 255 {
                return Err(invalid(
                    "drills.blocking_alarms",
                    format!("{a:?}"),
                    "a CloudWatch alarm name (1 to 255 characters), optionally after \
                     \"primary:\" or \"secondary:\"",
                ));
            }
            blocking_alarms.push(BlockingAlarm {
                region,
                name: name.to_owned(),
            });
        }
        let hold = or_default(self.hold, Duration::from_secs(600));
        check_at_least("drills.hold", hold, Duration::from_secs(1))?;
        let fence = or_default(self.fence, Duration::ZERO);
        for (key, d) in [("drills.hold", hold), ("drills.fence", fence)] {
            if d > MAX_DRILL_STEP {
                return Err(invalid(key, HumanDuration(d), "at most 24h"));
            }
        }
        let verify_for = or_default(self.verify_for, Duration::from_secs(120));
        check_at_least("drills.verify_for", verify_for, Duration::from_secs(1))?;
        let retry_after = or_default(self.retry_after, Duration::from_secs(3600));
        check_at_least("drills.retry_after", retry_after, Duration::from_secs(60))?;
        let alarm_every = or_default(self.alarm_every, Duration::from_secs(10));
        check_at_least("drills.alarm_every", alarm_every, Duration::from_secs(1))?;
        let max_duration = self.max_duration.map(|d| d.0);
        if let Some(m) = max_duration {
            let least = fence + hold + verify_for * 2;
            if m < least {
                return Err(invalid(
                    "drills.max_duration",
                    HumanDuration(m),
                    format!(
                        "at least drills.fence + drills.hold + 2 x drills.verify_for \
                         ({}), or no drill could finish",
                        HumanDuration(least)
                    ),
                ));
            }
        }
        Ok(DrillSettings {
            every,
            window,
            blocked_dates: self.blocked_dates,
            blocking_alarms,
            hold,
            fence,
            verify_for,
            max_duration,
            retry_after,
            alarm_every,
        })
    }
}
