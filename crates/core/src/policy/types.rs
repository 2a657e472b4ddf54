//! The policy's vocabulary: what goes in (observations, coordination, replication
//! measurements) and what comes out (verdicts, decisions, refusals).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::health::Health;
use crate::model::{AppState, Role};
use crate::rules::{Failback, Mode, QuorumRule, RegionRule};

/// One probe result, as the probe tasks report it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Index of the probe in the configured list of probes.
    pub probe: usize,
    pub at: Instant,
    pub ok: bool,
    pub latency: Duration,
    /// Why it failed (None when ok).
    pub error: Option<String>,
    /// The failure is evidence about the monitor (its permissions, credentials or
    /// configuration), not about the region: inconclusive.
    pub monitor_side: bool,
}

/// The knobs of the policy (`failover-config` fills them from `monitor.toml`).
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub mode: Mode,
    pub failback: Failback,
    pub failback_after: Duration,
    pub hold_down: Duration,
    pub fence_for: Duration,
    pub max_fence: Duration,
    pub rule: RegionRule,
    pub require_healthy_secondary: bool,
    /// A fence the monitors set that can neither go on to `failover` (the primary
    /// not down on fresh evidence, or no quorum) nor be lifted (the primary not up)
    /// is lifted once it is this old: `max_fence` plus the failover bound, the
    /// longest a real outage takes to be confirmed. It never blocks writes for ever.
    pub fence_expiry: Duration,
    /// Acting alone, a primary that is down counts only while the evidence is this
    /// fresh (the age of the least recently heard primary probe's last report):
    /// twice the slowest primary probe's `interval + jitter + timeout`. A process
    /// resumed after a stop (SIGSTOP, a VM paused) waits for fresh results instead
    /// of acting on what it saw before. (With cooperating instances the own vote
    /// has `coordination.view_ttl` for this.)
    pub evidence_ttl: Duration,
    /// A human's pause or fence stored without its end (written before overrides
    /// expired) ends this long after it was set (`monitor.max_override`).
    pub max_override: Duration,
}

/// One measurement of replication from the primary to the secondary, taken while
/// fenced: this instance's canary items (one per table: the config table's and the
/// data table's), written in the primary with a fresh nonce after the fence began,
/// looked for in the secondary. It measures those items' lag only: DynamoDB global
/// tables replicate items one by one with no order across items, and S3 objects are
/// not measured at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replication {
    #[serde(skip)]
    pub at: Instant,
    /// Every canary item arrived in the secondary.
    pub canary_arrived: bool,
    /// The canary items' lag (from the first write to the last arrival), when they
    /// arrived.
    pub lag_ms: Option<u64>,
    /// The canary items measured (`<table>: <key>`).
    pub items: Vec<String>,
    pub detail: String,
}

impl Replication {
    /// The measurement as an audit record's evidence carries it. `drained` is the
    /// earlier name of `canary_arrived`, kept for readers of older records.
    pub fn evidence(&self) -> serde_json::Value {
        serde_json::json!({
            "canary_arrived": self.canary_arrived,
            "drained": self.canary_arrived,
            "lag_ms": self.lag_ms,
            "items": self.items,
            "detail": self.detail,
        })
    }
}

/// What a read of the item changed in what the policy knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemChange {
    /// Nothing: the same item, or an older one from a read that cannot lower.
    None,
    /// The first item known.
    First,
    /// A newer version, or the same version in another state.
    Newer,
    /// A lower version from the commit region, read after what we knew was learned:
    /// the item was re-seeded, restored or set back by hand. What was remembered of
    /// the old item (timers, replication, moves under way) no longer applies.
    Reset,
}

/// A transition the policy wants the actuator to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub from: AppState,
    pub to: AppState,
    /// The version the item must still have for the write to succeed.
    pub expected_version: u64,
    pub reason: String,
    pub evidence: serde_json::Value,
}

impl Decision {
    /// What the move is about: from, to, and the version it starts from.
    pub fn key(&self) -> crate::commit::MoveKey {
        crate::commit::MoveKey {
            from: self.from,
            to: self.to,
            version: self.expected_version,
        }
    }
}

/// Why a wanted move is not made now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Blocked {
    /// `mode = "manual"`: only humans move the state.
    ManualMode,
    /// `mode = "dry-run"`: decisions are logged, never written.
    DryRun,
    /// Automatic transitions are paused by an operator.
    Paused,
    /// The last transition was too recent.
    HoldDown { remaining_ms: u64 },
    /// The secondary does not pass its own probes.
    SecondaryUnhealthy { down: Vec<String> },
    /// The last readiness check found the secondary not ready, and
    /// `[readiness] failover = "block"`.
    SecondaryNotReady { reasons: Vec<String> },
    /// Another instance holds the leader lease (or nobody does).
    NotLeader { leader: Option<String> },
    /// Live instances run another `[coordination]` section (a change rolled out to
    /// some of them only): automatic moves wait until all agree.
    CoordinationMismatch { instances: Vec<String> },
}

/// What the cooperating instances say (None when this instance acts alone).
#[derive(Debug, Clone, PartialEq)]
pub struct Coordination {
    /// This instance holds a valid lease.
    pub leader: bool,
    pub leader_id: Option<String>,
    /// The configured instances, this one included: the quorum counts against them,
    /// never against the ones that happen to be alive.
    pub configured: usize,
    /// Other instances whose views are live (seen to change within `view_ttl`).
    pub others_live: usize,
    /// Other live instances whose vote, fresh enough, says the primary is down.
    pub others_down: usize,
    /// This instance's own vote counts only while its evidence is younger than this.
    pub max_evidence_age: Duration,
    pub quorum: QuorumRule,
    /// Live instances whose `[coordination]` section differs from this one's: they
    /// may count another quorum, so nothing is decided together until they agree.
    pub mismatch: Vec<String>,
}

impl Coordination {
    /// Votes needed for an automatic failover.
    pub fn needed(&self) -> usize {
        self.quorum.threshold(self.configured)
    }

    /// Enough instances are live to ever reach the quorum.
    pub fn reachable(&self) -> bool {
        1 + self.others_live >= self.needed()
    }
}

/// One instance's vote on the primary, with the age of the evidence behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vote {
    /// The region rule says the primary is down.
    Down,
    /// The region rule cannot say down, whatever the probes not yet known turn out.
    Up,
    /// Not enough known to say either.
    Unknown,
}

impl Vote {
    pub fn as_str(self) -> &'static str {
        match self {
            Vote::Down => "down",
            Vote::Up => "up",
            Vote::Unknown => "unknown",
        }
    }
}

impl std::str::FromStr for Vote {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "down" => Ok(Vote::Down),
            "up" => Ok(Vote::Up),
            "unknown" => Ok(Vote::Unknown),
            other => Err(format!("unknown vote {other:?}")),
        }
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing to do.
    Hold { why: String },
    /// Make this transition now.
    Act(Decision),
    /// A transition is wanted but a rule or the mode holds it back.
    Blocked { wanted: Decision, because: Blocked },
}

impl Verdict {
    /// A short, stable description, used to log only when it changes.
    pub fn summary(&self) -> String {
        match self {
            Verdict::Hold { why } => format!("hold: {why}"),
            Verdict::Act(d) => format!("act: {} -> {}", d.from, d.to),
            Verdict::Blocked { wanted, because } => {
                let because = match because {
                    Blocked::HoldDown { .. } => "hold_down".to_string(),
                    other => serde_json::to_value(other)
                        .ok()
                        .and_then(|v| v["kind"].as_str().map(str::to_owned))
                        .unwrap_or_default(),
                };
                format!("blocked ({because}): {} -> {}", wanted.from, wanted.to)
            }
        }
    }
}

/// A probe as the policy sees it, for status output and evidence.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeView {
    pub name: String,
    pub region: Role,
    pub health: Health,
    /// How long the current health has held.
    pub for_ms: Option<u64>,
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<f64>,
    pub successes: u64,
    pub failures: u64,
}

/// Why a manual move is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the config item has not been read yet")]
    NotReady,
    #[error("the state is already {0}")]
    AlreadyThere(AppState),
    #[error("mode is dry-run: nothing is ever written")]
    DryRun,
    #[error("safety rule: the secondary does not pass its probes ({0}); use force to override")]
    SecondaryUnhealthy(String),
    #[error("safety rule: the primary does not pass its probes ({0}); use force to override")]
    PrimaryUnhealthy(String),
}
