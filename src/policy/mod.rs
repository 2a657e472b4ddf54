//! The decision: from probe results and the current config item to "move the state
//! from X to Y now", or to why not.
//!
//! Architecture Invariant: nothing here does I/O or reads a clock. Every input carries
//! its time (`tokio::time::Instant`), so the whole policy is driven by tests with
//! paused time or with synthetic instants.

mod health;

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

pub use health::{Health, ProbeHealth};

use crate::config::{Failback, Mode, QuorumRule, RegionRule, Settings};
use crate::model::{AppState, ConfigItem, Role};

/// One probe result, as the probe tasks report it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Index of the probe in `Settings::probes`.
    pub probe: usize,
    pub at: Instant,
    pub ok: bool,
    pub latency: Duration,
    /// Why it failed (None when ok).
    pub error: Option<String>,
}

/// The knobs of the policy, copied out of [`Settings`].
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
}

impl PolicyConfig {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            mode: s.monitor.mode,
            failback: s.monitor.failback,
            failback_after: s.monitor.failback_after,
            hold_down: s.monitor.hold_down,
            fence_for: s.monitor.fence_for,
            max_fence: s.monitor.max_fence,
            rule: s.policy.failover_when,
            require_healthy_secondary: s.policy.require_healthy_secondary,
        }
    }
}

/// One measurement of replication from the primary to the secondary, taken while
/// fenced: a canary written in the primary and looked for in the secondary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replication {
    #[serde(skip)]
    pub at: Instant,
    /// The canary arrived: everything written before it has replicated.
    pub drained: bool,
    /// How long the canary took to arrive (the lag), when it did.
    pub lag_ms: Option<u64>,
    pub detail: String,
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
    /// Another instance holds the leader lease (or nobody does).
    NotLeader { leader: Option<String> },
}

/// What the cooperating instances say (None when this instance acts alone).
#[derive(Debug, Clone, PartialEq)]
pub struct Coordination {
    /// This instance holds a valid lease.
    pub leader: bool,
    pub leader_id: Option<String>,
    /// Live instances, this one included.
    pub live: usize,
    /// Live instances other than this one that see the primary down.
    pub others_down: usize,
    pub quorum: QuorumRule,
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

#[derive(Debug, Clone)]
struct ProbeSlot {
    name: String,
    role: Role,
    health: ProbeHealth,
    last_ok: Option<bool>,
    last_error: Option<String>,
    last_latency: Option<Duration>,
    successes: u64,
    failures: u64,
}

impl ProbeSlot {
    fn new(name: String, role: Role, fall: u32, rise: u32) -> Self {
        Self {
            name,
            role,
            health: ProbeHealth::new(fall, rise),
            last_ok: None,
            last_error: None,
            last_latency: None,
            successes: 0,
            failures: 0,
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

pub struct Policy {
    cfg: PolicyConfig,
    probes: Vec<ProbeSlot>,
    item: Option<ConfigItem>,
    last_transition_at: Option<Instant>,
    fenced_at: Option<Instant>,
    primary_up_since: Option<Instant>,
    paused: bool,
    coordination: Option<Coordination>,
    replication: Option<Replication>,
    /// Probes per region (index `Role as usize`) and health (`health_index`), kept up
    /// to date on every flip so that an evaluation costs O(1), not O(probes).
    counts: [[usize; 3]; 2],
}

fn health_index(h: Health) -> usize {
    match h {
        Health::Unknown => 0,
        Health::Up => 1,
        Health::Down => 2,
    }
}

impl Policy {
    /// `probes` are `(name, region, fall, rise)` in the order observations index them.
    pub fn new(
        cfg: PolicyConfig,
        probes: impl IntoIterator<Item = (String, Role, u32, u32)>,
    ) -> Self {
        Self {
            cfg,
            probes: probes
                .into_iter()
                .map(|(name, role, fall, rise)| ProbeSlot::new(name, role, fall, rise))
                .collect(),
            item: None,
            last_transition_at: None,
            fenced_at: None,
            primary_up_since: None,
            paused: false,
            coordination: None,
            replication: None,
            counts: [[0; 3]; 2],
        }
        .recounted()
    }

    fn recounted(mut self) -> Self {
        self.recount();
        self
    }

    fn recount(&mut self) {
        self.counts = [[0; 3]; 2];
        for p in &self.probes {
            self.counts[p.role as usize][health_index(p.health.health())] += 1;
        }
    }

    /// Takes in a replication measurement.
    pub fn observe_replication(&mut self, r: Replication) {
        self.replication = Some(r);
    }

    /// Whether a replication measurement is wanted now: while in a fence of ours.
    pub fn measuring_replication(&self) -> bool {
        self.item
            .as_ref()
            .is_some_and(|i| i.state == AppState::Fenced && !i.set_by_human())
    }

    /// The last measurement taken since the current fence began.
    fn replication_in_fence(&self) -> Option<&Replication> {
        let since = self.fenced_at?;
        self.replication.as_ref().filter(|r| r.at >= since)
    }

    /// Updates what the other instances say; None to act alone.
    pub fn set_coordination(&mut self, c: Option<Coordination>) {
        self.coordination = c;
    }

    /// The primary is down as far as acting goes: by this instance's region rule
    /// alone, or, with cooperating instances, by a quorum of the live ones.
    pub fn effective_primary_down(&self) -> bool {
        let own = self.primary_down();
        match &self.coordination {
            None => own,
            Some(c) => usize::from(own) + c.others_down >= c.quorum.threshold(c.live),
        }
    }

    pub fn from_settings(s: &Settings) -> Self {
        Self::new(
            PolicyConfig::from_settings(s),
            s.probes
                .iter()
                .map(|p| (p.name.clone(), p.region, p.fall, p.rise)),
        )
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    pub fn item(&self) -> Option<&ConfigItem> {
        self.item.as_ref()
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Feeds one probe result. Returns the probe's new health when it flipped.
    pub fn observe(&mut self, obs: &Observation) -> Option<Health> {
        let slot = self.probes.get_mut(obs.probe)?;
        slot.last_ok = Some(obs.ok);
        slot.last_error = obs.error.clone();
        slot.last_latency = Some(obs.latency);
        if obs.ok {
            slot.successes += 1;
        } else {
            slot.failures += 1;
        }
        let before = slot.health.health();
        let flipped = slot.health.observe(obs.ok, obs.at);
        if let Some(now) = flipped {
            let role = slot.role as usize;
            self.counts[role][health_index(before)] -= 1;
            self.counts[role][health_index(now)] += 1;
        }
        if self.region_up(Role::Primary) {
            self.primary_up_since.get_or_insert(obs.at);
        } else {
            self.primary_up_since = None;
        }
        flipped
    }

    /// Tells the policy what the config item is now. `changed_at` is when it took
    /// this version, if known (the caller converts `updatedAt`). Older versions than
    /// the one already known are ignored.
    pub fn observe_item(&mut self, item: ConfigItem, changed_at: Option<Instant>, now: Instant) {
        if let Some(known) = &self.item {
            if item.version < known.version {
                return;
            }
            if item.version == known.version && item.state == known.state {
                self.item = Some(item);
                return;
            }
        }
        let first = self.item.is_none();
        // A change we see happen is a transition now; at start-up we only know what
        // the item says about itself. Version 0 is the item as seeded (by
        // `provision` or by hand): no transition happened, so nothing holds down.
        self.last_transition_at = if item.version == 0 {
            None
        } else if first {
            changed_at
        } else {
            Some(changed_at.unwrap_or(now))
        };
        self.fenced_at = (item.state == AppState::Fenced).then(|| changed_at.unwrap_or(now));
        self.item = Some(item);
    }

    /// Records a transition this instance committed.
    pub fn committed(&mut self, item: ConfigItem, now: Instant) {
        self.item = None;
        self.observe_item(item, Some(now), now);
        self.last_transition_at = Some(now);
    }

    pub fn probe_views(&self, now: Instant) -> Vec<ProbeView> {
        self.probes
            .iter()
            .map(|p| ProbeView {
                name: p.name.clone(),
                region: p.role,
                health: p.health.health(),
                for_ms: p
                    .health
                    .since()
                    .map(|s| millis(now.saturating_duration_since(s))),
                last_ok: p.last_ok,
                last_error: p.last_error.clone(),
                last_latency_ms: p.last_latency.map(|d| d.as_secs_f64() * 1000.0),
                successes: p.successes,
                failures: p.failures,
            })
            .collect()
    }

    /// Takes a new configuration (a reload). What the policy knows of the item, the
    /// last transition, a fence under way and the pause survive; a probe keeps its
    /// health when one of the same name, region, fall and rise is still configured.
    pub fn reconfigure(
        &mut self,
        cfg: PolicyConfig,
        probes: impl IntoIterator<Item = (String, Role, u32, u32)>,
    ) {
        let mut old = std::mem::take(&mut self.probes);
        self.probes = probes
            .into_iter()
            .map(|(name, role, fall, rise)| {
                let same = |p: &ProbeSlot| {
                    p.name == name && p.role == role && p.health.thresholds() == (fall, rise)
                };
                match old.iter().position(same) {
                    Some(i) => old.swap_remove(i),
                    None => ProbeSlot::new(name, role, fall, rise),
                }
            })
            .collect();
        self.cfg = cfg;
        self.recount();
        if !self.region_up(Role::Primary) {
            self.primary_up_since = None;
        }
    }

    fn not_up(&self, role: Role) -> String {
        let names: Vec<&str> = self
            .in_region(role)
            .filter(|p| p.health.health() != Health::Up)
            .map(|p| p.name.as_str())
            .collect();
        format!("not up: {}", names.join(", "))
    }

    /// A human's move to `to`, checked against the safety rules unless `force`.
    /// Hold-down, pause and `mode = "manual"` do not apply to humans.
    pub fn manual(&self, to: AppState, force: bool, now: Instant) -> Result<Decision, Refusal> {
        let item = self.item.as_ref().ok_or(Refusal::NotReady)?;
        if item.state == to {
            return Err(Refusal::AlreadyThere(to));
        }
        if self.cfg.mode == Mode::DryRun {
            return Err(Refusal::DryRun);
        }
        if !force {
            let serves_from_primary = to != AppState::Failover;
            if serves_from_primary
                && item.state == AppState::Failover
                && !self.region_up(Role::Primary)
            {
                return Err(Refusal::PrimaryUnhealthy(self.not_up(Role::Primary)));
            }
            if to == AppState::Active && !self.region_up(Role::Primary) {
                return Err(Refusal::PrimaryUnhealthy(self.not_up(Role::Primary)));
            }
            if to == AppState::Failover && !self.region_up(Role::Secondary) {
                return Err(Refusal::SecondaryUnhealthy(self.not_up(Role::Secondary)));
            }
        }
        Ok(Decision {
            from: item.state,
            to,
            expected_version: item.version,
            reason: String::new(),
            evidence: self.evidence(now),
        })
    }

    fn in_region(&self, role: Role) -> impl Iterator<Item = &ProbeSlot> {
        self.probes.iter().filter(move |p| p.role == role)
    }

    /// The region rule applied to the primary's probes.
    pub fn primary_down(&self) -> bool {
        let c = &self.counts[Role::Primary as usize];
        let total: usize = c.iter().sum();
        total > 0 && c[health_index(Health::Down)] >= self.cfg.rule.threshold(total)
    }

    /// Every probe of the region is up (vacuously true without probes).
    pub fn region_up(&self, role: Role) -> bool {
        let c = &self.counts[role as usize];
        c[health_index(Health::Up)] == c.iter().sum::<usize>()
    }

    fn evidence(&self, now: Instant) -> serde_json::Value {
        let down = self
            .in_region(Role::Primary)
            .filter(|p| p.health.health() == Health::Down)
            .count();
        let quorum = self.coordination.as_ref().map(|c| {
            json!({
                "live": c.live,
                "down_votes": usize::from(self.primary_down()) + c.others_down,
                "needed": c.quorum.threshold(c.live),
                "rule": c.quorum.to_string(),
            })
        });
        json!({
            "rule": self.cfg.rule.to_string(),
            "primary_down": down,
            "primary_probes": self.in_region(Role::Primary).count(),
            "probes": self.probe_views(now),
            "quorum": quorum,
            "replication": self.replication_in_fence(),
        })
    }

    /// What to do now.
    pub fn evaluate(&self, now: Instant) -> Verdict {
        let Some(item) = &self.item else {
            return Verdict::Hold {
                why: "config item not read yet".into(),
            };
        };
        let primary_down = self.effective_primary_down();
        // (target, reason, subject to hold_down)
        let wanted: Option<(AppState, String, bool)> = match item.state {
            AppState::Active if primary_down => {
                let to = if self.cfg.fence_for.is_zero() {
                    AppState::Failover
                } else {
                    AppState::Fenced
                };
                Some((
                    to,
                    format!("primary down ({} of its probes)", self.cfg.rule),
                    true,
                ))
            }
            AppState::Active => None,
            AppState::Fenced if item.set_by_human() => {
                return Verdict::Hold {
                    why: "fenced by a human; only a human moves it on".into(),
                };
            }
            AppState::Fenced if !primary_down => {
                // The fence was ours and the primary recovered: lift it.
                Some((
                    AppState::Active,
                    "primary recovered during the fence".into(),
                    false,
                ))
            }
            AppState::Fenced => {
                let d = self
                    .fenced_at
                    .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
                let replication = self.replication_in_fence();
                if d < self.cfg.fence_for {
                    return Verdict::Hold {
                        why: format!(
                            "fenced; failover in {} ms at the earliest",
                            millis(self.cfg.fence_for - d)
                        ),
                    };
                }
                match replication {
                    Some(r) if r.drained => Some((
                        AppState::Failover,
                        format!(
                            "primary still down; replication drained (lag {} ms)",
                            r.lag_ms.unwrap_or_default()
                        ),
                        false,
                    )),
                    _ if d >= self.cfg.max_fence => Some((
                        AppState::Failover,
                        format!(
                            "primary still down after fencing for {:?}; replication not confirmed drained",
                            self.cfg.max_fence
                        ),
                        false,
                    )),
                    _ => {
                        return Verdict::Hold {
                            why: format!(
                                "fenced; waiting for replication to drain, at most {} ms more",
                                millis(self.cfg.max_fence - d)
                            ),
                        };
                    }
                }
            }
            AppState::Failover if item.set_by_human() => None,
            AppState::Failover => match self.cfg.failback {
                Failback::Manual => None,
                Failback::Auto if primary_down => None,
                Failback::Auto => match self.primary_up_since {
                    Some(since)
                        if now.saturating_duration_since(since) >= self.cfg.failback_after =>
                    {
                        Some((
                            AppState::Active,
                            format!(
                                "primary up for {:?} (failback = auto)",
                                self.cfg.failback_after
                            ),
                            true,
                        ))
                    }
                    _ => None,
                },
            },
        };
        let Some((to, reason, hold_down_applies)) = wanted else {
            return Verdict::Hold {
                why: match (item.state, primary_down) {
                    (AppState::Failover, _) if item.set_by_human() => {
                        "failed over by a human; only a human fails back".into()
                    }
                    (AppState::Failover, _) => "in failover; failback not due".into(),
                    _ => "primary healthy".into(),
                },
            };
        };
        let decision = Decision {
            from: item.state,
            to,
            expected_version: item.version,
            reason,
            evidence: self.evidence(now),
        };
        let block = |because| Verdict::Blocked {
            wanted: decision.clone(),
            because,
        };
        if self.cfg.mode == Mode::Manual {
            return block(Blocked::ManualMode);
        }
        if self.paused {
            return block(Blocked::Paused);
        }
        if let Some(c) = &self.coordination
            && !c.leader
        {
            return block(Blocked::NotLeader {
                leader: c.leader_id.clone(),
            });
        }
        if hold_down_applies && let Some(last) = self.last_transition_at {
            let elapsed = now.saturating_duration_since(last);
            if elapsed < self.cfg.hold_down {
                return block(Blocked::HoldDown {
                    remaining_ms: millis(self.cfg.hold_down - elapsed),
                });
            }
        }
        if to != AppState::Active
            && self.cfg.require_healthy_secondary
            && !self.region_up(Role::Secondary)
        {
            let down = self
                .in_region(Role::Secondary)
                .filter(|p| p.health.health() != Health::Up)
                .map(|p| p.name.clone())
                .collect();
            return block(Blocked::SecondaryUnhealthy { down });
        }
        if self.cfg.mode == Mode::DryRun {
            return block(Blocked::DryRun);
        }
        Verdict::Act(decision)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
