//! The vocabulary every other module shares: the two region roles, the application
//! states and the config item that holds one of them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which of the two regions a probe, a client or a copy of the config item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub const BOTH: [Role; 2] = [Role::Primary, Role::Secondary];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }

    pub fn other(self) -> Role {
        match self {
            Role::Primary => Role::Secondary,
            Role::Secondary => Role::Primary,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The value of the config item's `state` attribute, which every client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    /// Everything is served from the primary region.
    Active,
    /// Still served from the primary, but writes are blocked (a switch is under way).
    Fenced,
    /// Everything is served from the secondary region.
    Failover,
}

impl AppState {
    pub const ALL: [AppState; 3] = [AppState::Active, AppState::Fenced, AppState::Failover];

    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Active => "active",
            AppState::Fenced => "fenced",
            AppState::Failover => "failover",
        }
    }
}

impl fmt::Display for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?}: expected one of active, fenced, failover")]
pub struct UnknownState(pub String);

impl FromStr for AppState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(AppState::Active),
            "fenced" => Ok(AppState::Fenced),
            "failover" => Ok(AppState::Failover),
            other => Err(UnknownState(other.to_owned())),
        }
    }
}

/// Who asked for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The policy, from probe results.
    Auto,
    /// A human, through the CLI or the admin API.
    Manual,
    /// A drill's move (its fence, failover, failback or abort).
    Drill,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Auto => "auto",
            Trigger::Manual => "manual",
            Trigger::Drill => "drill",
        }
    }
}

/// One region's copy of the config item, as read from DynamoDB.
///
/// An item written by the original stack has only `appId` and `state`: it reads as
/// version 0 with the other attributes empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigItem {
    pub state: AppState,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human's fence, or a drill's fence or failover, ends at this time (RFC
    /// 3339; attribute `expiresAt`): the monitors then lift the fence, or fail a
    /// drill back onto a healthy primary. Every other state has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl ConfigItem {
    /// The item as the original stack seeds it: `state` only, so version 0 and
    /// nothing else.
    pub fn seeded(state: AppState) -> Self {
        Self {
            state,
            version: 0,
            updated_at: None,
            updated_by: None,
            reason: None,
            expires_at: None,
        }
    }

    /// The drill whose move set this state (`updatedBy` is `drill:<id>`).
    pub fn set_by_drill(&self) -> Option<&str> {
        self.updated_by.as_deref()?.strip_prefix("drill:")
    }

    /// True when a human set this state (CLI or admin API) rather than a monitor.
    pub fn set_by_human(&self) -> bool {
        self.updated_by
            .as_deref()
            .is_some_and(|by| by.starts_with("admin:") || by.starts_with("cli:"))
    }
}

/// The durable record of one committed transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub version: u64,
    pub from: AppState,
    pub to: AppState,
    pub at: String,
    pub by: String,
    pub trigger: Trigger,
    pub reason: String,
    /// Free-form JSON: the probe results and rule that led to the move.
    pub evidence: serde_json::Value,
    /// True when a human overrode the safety rules.
    #[serde(default)]
    pub forced: bool,
}

impl AuditRecord {
    /// Whether `item` is the very item this record's transition wrote (its version,
    /// its state `to`, its `updatedAt` the record's `at`): not changed by hand since.
    pub fn wrote(&self, item: &ConfigItem) -> bool {
        item.version == self.version
            && item.state == self.to
            && item.updated_at.as_deref() == Some(self.at.as_str())
    }
}

/// Automatic transitions stopped (or restarted) by an operator, stored beside the
/// config item so that every instance honours it, across restarts and leader
/// changes. `seq` orders the changes (each write is conditioned on the last one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRecord {
    pub paused: bool,
    /// `admin:<caller>` or `cli:<user>`.
    pub by: String,
    pub reason: String,
    /// RFC 3339.
    pub at: String,
    pub seq: u64,
    /// A pause ends at this time (RFC 3339), and every instance then resumes
    /// automatic moves. `None` in a pause stored before pauses expired: it ends
    /// `monitor.max_override` after `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// The leader lease a transition write is conditioned on (with cooperating
/// instances): the write happens only while the lease item still names this owner
/// and token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub owner: String,
    pub token: u64,
}

/// The keys of the items the monitor keeps in the config table beside the config
/// item (`appId = <app id>`). The state API's `appId = :v1` query never sees them.
pub mod keys {
    /// The audit record of version `version`.
    pub fn audit(app_id: &str, version: u64) -> String {
        format!("{app_id}#audit#{version}")
    }

    /// The leader lease of cooperating instances.
    pub fn lease(app_id: &str) -> String {
        format!("{app_id}#lease")
    }

    /// One instance's published view.
    pub fn view(app_id: &str, instance: &str) -> String {
        format!("{app_id}#view#{instance}")
    }

    /// The prefix of every view key.
    pub fn view_prefix(app_id: &str) -> String {
        format!("{app_id}#view#")
    }

    /// The replication canary of one instance in the config table.
    pub fn canary(app_id: &str, instance: &str) -> String {
        format!("{app_id}#canary#{instance}")
    }

    /// The replication canary of one instance in the application's data table
    /// (`commentId`; without a `photoId`, the `photoId` index never shows it).
    pub fn data_canary(app_id: &str, instance: &str) -> String {
        format!("failover-monitor#canary#{app_id}#{instance}")
    }

    /// The drill running now, or the last one.
    pub fn drill(app_id: &str) -> String {
        format!("{app_id}#drill")
    }

    /// The operator's pause.
    pub fn pause(app_id: &str) -> String {
        format!("{app_id}#pause")
    }

    /// The recovery report of version `version`, beside its audit record.
    pub fn report(app_id: &str, version: u64) -> String {
        format!("{app_id}#report#{version}")
    }

    /// The RPO canary: written in the primary by the acting instance, read in the
    /// secondary (one key for the whole fleet).
    pub fn rpo_canary(app_id: &str) -> String {
        format!("{app_id}#rpo")
    }

    /// One instance's readiness write: the small conditional write in the commit
    /// region by which the readiness check shows the monitor can write there.
    pub fn ready(app_id: &str, instance: &str) -> String {
        format!("{app_id}#ready#{instance}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_knows_the_item_it_wrote() {
        let record = AuditRecord {
            version: 4,
            from: AppState::Active,
            to: AppState::Failover,
            at: "2027-01-01T00:00:00.000Z".into(),
            by: "a".into(),
            trigger: Trigger::Auto,
            reason: "down".into(),
            evidence: serde_json::Value::Null,
            forced: false,
        };
        let item = ConfigItem {
            state: AppState::Failover,
            version: 4,
            updated_at: Some(record.at.clone()),
            updated_by: Some("a".into()),
            reason: Some("down".into()),
            expires_at: None,
        };
        assert!(record.wrote(&item));
        let changed = [
            ConfigItem {
                version: 5,
                ..item.clone()
            },
            ConfigItem {
                state: AppState::Active,
                ..item.clone()
            },
            ConfigItem {
                updated_at: Some("2027-01-01T00:00:01.000Z".into()),
                ..item.clone()
            },
            ConfigItem {
                updated_at: None,
                ..item
            },
        ];
        for other in &changed {
            assert!(!record.wrote(other), "{other:?}");
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in AppState::ALL {
            assert_eq!(s.as_str().parse::<AppState>(), Ok(s));
        }
        assert_eq!(
            "Active".parse::<AppState>().unwrap_err().to_string(),
            "unknown state \"Active\": expected one of active, fenced, failover"
        );
    }

    #[test]
    fn human_writers_are_recognised_by_prefix() {
        let mut item = ConfigItem {
            state: AppState::Fenced,
            version: 3,
            updated_at: None,
            updated_by: Some("monitor-a".into()),
            reason: None,
            expires_at: None,
        };
        assert!(!item.set_by_human());
        item.updated_by = Some("admin:alice".into());
        assert!(item.set_by_human());
        item.updated_by = Some("cli:root".into());
        assert!(item.set_by_human());
        item.updated_by = None;
        assert!(!item.set_by_human());
    }

    #[test]
    fn a_trigger_is_named_as_the_audit_record_stores_it() {
        for (t, name) in [
            (Trigger::Auto, "auto"),
            (Trigger::Manual, "manual"),
            (Trigger::Drill, "drill"),
        ] {
            assert_eq!(t.as_str(), name);
            assert_eq!(serde_json::to_value(t).unwrap(), name);
        }
    }

    #[test]
    fn the_drill_and_readiness_keys_are_spelled_per_app_and_instance() {
        assert_eq!(keys::drill("photos"), "photos#drill");
        assert_eq!(keys::ready("photos", "monitor-a"), "photos#ready#monitor-a");
    }
}
