//! The decision: from probe results and the current config item to "move the state
//! from X to Y now", or to why not.
//!
//! - `health.rs`: the per-probe fall/rise state machine;
//! - `types.rs`: what goes in and comes out;
//! - here: the [`Policy`] and what it knows (probes, item, timers);
//! - `evaluate.rs`: what to do now, and a human's move checked against the rules;
//! - `evidence.rs`: this instance's vote and the (bounded) evidence of a decision;
//! - `index.rs`: what an evaluation needs of the probes, kept up to date per result.
//!
//! Architecture Invariant: nothing here does I/O or reads a clock. Every input carries
//! its time (`tokio::time::Instant`), so the whole policy is driven by tests with
//! paused time or with synthetic instants.

mod evaluate;
mod evidence;
mod health;
mod index;
mod readiness;
mod types;

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub use health::{Check, Health, ProbeHealth};
use index::ProbeIndex;
pub use readiness::SecondaryReadiness;
pub use types::{
    Blocked, Coordination, Decision, ItemChange, Observation, PolicyConfig, ProbeView, Refusal,
    Replication, Verdict, Vote,
};

use crate::liveness::counts_as_down;
use crate::model::{AppState, ConfigItem, Role};
use crate::overrides::{self, Left};

#[derive(Debug, Clone)]
struct ProbeSlot {
    name: String,
    role: Role,
    health: ProbeHealth,
    last_ok: Option<bool>,
    /// The last result was a failure that is evidence about the region (not one
    /// about the monitor).
    last_failed: bool,
    last_error: Option<String>,
    last_latency: Option<Duration>,
    /// When the last result arrived.
    last_at: Option<Instant>,
    /// When the current run of failures began (None after a success).
    failing_since: Option<Instant>,
    successes: u64,
    failures: u64,
}

impl ProbeSlot {
    fn view(&self, now: Instant) -> ProbeView {
        ProbeView {
            name: self.name.clone(),
            region: self.role,
            health: self.health.health(),
            for_ms: self
                .health
                .since()
                .map(|s| millis(now.saturating_duration_since(s))),
            last_ok: self.last_ok,
            last_error: self.last_error.clone(),
            last_latency_ms: self.last_latency.map(|d| d.as_secs_f64() * 1000.0),
            successes: self.successes,
            failures: self.failures,
        }
    }

    fn new(name: String, role: Role, fall: u32, rise: u32) -> Self {
        Self {
            name,
            role,
            health: ProbeHealth::new(fall, rise),
            last_ok: None,
            last_failed: false,
            last_error: None,
            last_latency: None,
            last_at: None,
            failing_since: None,
            successes: 0,
            failures: 0,
        }
    }
}

pub struct Policy {
    cfg: PolicyConfig,
    probes: Vec<ProbeSlot>,
    item: Option<ConfigItem>,
    last_transition_at: Option<Instant>,
    fenced_at: Option<Instant>,
    primary_up_since: Option<Instant>,
    paused: bool,
    /// When the pause ends (None: never, as a test or a backtest sets it).
    pause_end: Option<SystemTime>,
    /// The wall-clock time of the evaluation, handed in: overrides end by it.
    /// None (a backtest): no override ever ends.
    wall: Option<SystemTime>,
    coordination: Option<Coordination>,
    replication: Option<Replication>,
    /// When what the policy knows of the item was learned: our commit returned, or
    /// the commit-region read that brought it was issued.
    learned_at: Option<Instant>,
    /// Probes per region (index `Role as usize`) and health (`health_index`), kept up
    /// to date on every flip so that an evaluation costs O(1), not O(probes).
    counts: [[usize; 4]; 2],
    /// The rest of what an evaluation needs of the probes, kept up to date likewise.
    index: ProbeIndex,
    /// The secondary's last readiness check, and what a not-ready one does.
    readiness: (crate::rules::ReadinessRule, SecondaryReadiness),
}

fn health_index(h: Health) -> usize {
    match h {
        Health::Unknown => 0,
        Health::Up => 1,
        Health::Down => 2,
        Health::Inconclusive => 3,
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
            pause_end: None,
            wall: None,
            coordination: None,
            replication: None,
            learned_at: None,
            counts: [[0; 4]; 2],
            index: ProbeIndex::default(),
            readiness: Default::default(),
        }
        .recounted()
    }

    fn recounted(mut self) -> Self {
        self.recount();
        self
    }

    fn recount(&mut self) {
        self.counts = [[0; 4]; 2];
        for p in &self.probes {
            self.counts[p.role as usize][health_index(p.health.health())] += 1;
        }
        self.index = ProbeIndex::of(&self.probes);
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

    /// The primary is down as far as acting goes: by this instance's own vote alone
    /// (fresh within `evidence_ttl`), or, with cooperating instances, by a quorum of
    /// the configured ones. Its own vote and its peers' are counted by the same
    /// rule ([`counts_as_down`]).
    pub fn effective_primary_down(&self, now: Instant) -> bool {
        self.down_votes(now) >= self.coordination.as_ref().map_or(1, Coordination::needed)
    }

    /// The coordination input last set (None when acting alone).
    pub fn coordination(&self) -> Option<&Coordination> {
        self.coordination.as_ref()
    }

    /// Down votes counted now: this instance's and the live peers' (each down only
    /// while its evidence is fresh).
    pub fn down_votes(&self, now: Instant) -> usize {
        let (vote, age) = self.vote(now);
        let (ttl, others) = match &self.coordination {
            None => (self.cfg.evidence_ttl, 0),
            Some(c) => (c.max_evidence_age, c.others_down),
        };
        usize::from(counts_as_down(vote, age, Duration::ZERO, ttl)) + others
    }

    /// Whether every primary probe that is down failed its last check (none
    /// answered it, none said only something about the monitor).
    fn down_is_current(&self) -> bool {
        self.index.down_is_current()
    }

    /// How long the item has been fenced (None while it is not).
    pub fn fenced_for(&self, now: Instant) -> Option<Duration> {
        self.item
            .as_ref()
            .filter(|i| i.state == AppState::Fenced)
            .and(self.fenced_at)
            .map(|t| now.saturating_duration_since(t))
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    pub fn item(&self) -> Option<&ConfigItem> {
        self.item.as_ref()
    }

    /// Automatic moves are paused now: a pause is stored and has not ended.
    pub fn paused(&self) -> bool {
        self.paused && !self.pause_left().is_some_and(Left::ended)
    }

    /// A pause without an end (tests, backtests); [`Policy::set_pause`] with one.
    pub fn set_paused(&mut self, paused: bool) {
        self.set_pause(paused, None);
    }

    /// The stored pause: paused or not, and when it ends.
    pub fn set_pause(&mut self, paused: bool, end: Option<SystemTime>) {
        self.paused = paused;
        self.pause_end = end;
    }

    /// The wall-clock time now, by which overrides end.
    pub fn set_wall_clock(&mut self, now: SystemTime) {
        self.wall = Some(now);
    }

    /// What is left of a stored pause with an end (None: no pause, or no end, or
    /// no wall clock handed in).
    pub fn pause_left(&self) -> Option<Left> {
        let wall = self.wall?;
        (self.paused && self.pause_end.is_some()).then(|| Left::at(self.pause_end, wall))
    }

    /// When a human's fence ends, while the item is one.
    pub fn fence_end(&self) -> Option<SystemTime> {
        let item = self.item.as_ref()?;
        if item.state != AppState::Fenced || !item.set_by_human() {
            return None;
        }
        overrides::end(
            item.expires_at.as_deref(),
            item.updated_at.as_deref(),
            self.cfg.max_override,
        )
        .or(Some(SystemTime::UNIX_EPOCH))
    }

    /// When a drill's fence or failover ends, while the item is one: the monitors
    /// then lift the fence, or fail back onto a healthy primary.
    pub fn drill_end(&self) -> Option<SystemTime> {
        let item = self.item.as_ref()?;
        item.set_by_drill()?;
        if item.state == AppState::Active {
            return None;
        }
        overrides::end(
            item.expires_at.as_deref(),
            item.updated_at.as_deref(),
            self.cfg.max_override,
        )
        .or(Some(SystemTime::UNIX_EPOCH))
    }

    /// What is left of a drill's fence or failover (None: none, or no wall clock).
    pub fn drill_left(&self) -> Option<Left> {
        let wall = self.wall?;
        self.drill_end().map(|end| Left::at(Some(end), wall))
    }

    /// What is left of a human's fence (None: no human's fence, or no wall clock).
    pub fn fence_left(&self) -> Option<Left> {
        let wall = self.wall?;
        self.fence_end().map(|end| Left::at(Some(end), wall))
    }

    /// Feeds one probe result. Returns the probe's new health when it flipped.
    pub fn observe(&mut self, obs: &Observation) -> Option<Health> {
        let slot = self.probes.get_mut(obs.probe)?;
        let before = ProbeIndex::before(slot);
        slot.last_ok = Some(obs.ok);
        slot.last_failed = !obs.ok && !obs.monitor_side;
        slot.last_error = obs.error.clone();
        slot.last_latency = Some(obs.latency);
        slot.last_at = Some(obs.at);
        if obs.ok {
            slot.successes += 1;
            slot.failing_since = None;
        } else {
            slot.failures += 1;
            slot.failing_since.get_or_insert(obs.at);
        }
        let flipped = slot
            .health
            .observe(Check::of(obs.ok, obs.monitor_side), obs.at);
        if let Some(now) = flipped {
            let role = slot.role as usize;
            self.counts[role][health_index(before.0)] -= 1;
            self.counts[role][health_index(now)] += 1;
        }
        self.index.update(obs.probe, before, slot);
        if self.region_up(Role::Primary) {
            self.primary_up_since.get_or_insert(obs.at);
        } else {
            self.primary_up_since = None;
        }
        flipped
    }

    /// Takes in the item as some read found it, when that read cannot say more than
    /// what it found (a copy that may lag, a fallback, a trace): `changed_at` is when
    /// it reached this version, if known (the caller converts `updatedAt`). A version
    /// older than the one already known is ignored.
    pub fn observe_item(&mut self, item: ConfigItem, changed_at: Option<Instant>, now: Instant) {
        let _ = self.observe_read(item, changed_at, None, now);
    }

    /// Takes in the item as a strongly consistent read of the commit region found
    /// it, the read issued at `issued`. Such a read is the truth once it was issued
    /// after what the policy knows was learned (our commit returned, or the read that
    /// brought it was issued): a lower version then means the item was re-seeded,
    /// restored or set back by hand, and it replaces what we remember, timers
    /// included. A read issued earlier may be older than our own commit and never
    /// lowers anything. `issued` None: a read that never lowers anything.
    pub fn observe_read(
        &mut self,
        item: ConfigItem,
        changed_at: Option<Instant>,
        issued: Option<Instant>,
        now: Instant,
    ) -> ItemChange {
        let authoritative = issued.filter(|i| self.learned_at.is_none_or(|l| *i >= l));
        // What a read brings is learned no earlier than it was issued (now, when the
        // read cannot say): a later read issued before that is not newer than it.
        let learned = issued.unwrap_or(now);
        let change = match &self.item {
            None => ItemChange::First,
            Some(known) if item.version < known.version => match authoritative {
                None => return ItemChange::None,
                Some(_) => ItemChange::Reset,
            },
            Some(known) if item.version == known.version && item.state == known.state => {
                self.item = Some(item);
                if authoritative.is_some() {
                    self.learned_at = Some(learned);
                }
                return ItemChange::None;
            }
            Some(_) => ItemChange::Newer,
        };
        if change == ItemChange::Reset {
            self.replication = None;
            self.learned_at = Some(learned);
        } else {
            self.learned_at = Some(self.learned_at.map_or(learned, |l| l.max(learned)));
        }
        self.take_item(item, changed_at, now, change != ItemChange::Newer);
        change
    }

    /// Makes `item` the current one. A change we see happen is a transition now; a
    /// first sight (at start-up, or after a reset) knows only what the item says
    /// about itself. Version 0 is the item as seeded (by `provision` or by hand): no
    /// transition happened, so nothing holds down.
    fn take_item(
        &mut self,
        item: ConfigItem,
        changed_at: Option<Instant>,
        now: Instant,
        first: bool,
    ) {
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

    /// Records a transition this instance committed: learned now.
    pub fn committed(&mut self, item: ConfigItem, now: Instant) {
        self.item = None;
        self.take_item(item, Some(now), now, true);
        self.last_transition_at = Some(now);
        self.learned_at = Some(now);
    }

    /// The onset of the region's outage as its probes saw it: the probe down now
    /// whose run of failures began first, and when.
    pub fn onset(&self, role: Role) -> Option<(String, Instant)> {
        self.index
            .down(role)
            .map(|i| &self.probes[i])
            .filter_map(|p| p.failing_since.map(|t| (p.name.clone(), t)))
            .min_by_key(|(_, t)| *t)
    }

    pub fn probe_views(&self, now: Instant) -> Vec<ProbeView> {
        self.probes.iter().map(|p| p.view(now)).collect()
    }

    /// The first `limit` probes that are not up, in the configured order, without
    /// looking at the others.
    pub fn probes_not_up(&self, now: Instant, limit: usize) -> Vec<ProbeView> {
        let not_up = |role| self.index.not_up(role);
        index::merge(not_up(Role::Primary), not_up(Role::Secondary))
            .take(limit)
            .map(|i| self.probes[i].view(now))
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

    /// The region rule says the primary is down here (before freshness and the
    /// other instances): [`Policy::region_vote`] is `Down`.
    pub fn primary_down(&self) -> bool {
        self.region_vote() == Vote::Down
    }

    /// Every probe of the region that can judge it is up, and one can (vacuously
    /// true without probes).
    pub fn region_up(&self, role: Role) -> bool {
        let (total, decisive) = self.decisive(role);
        total == 0
            || (decisive > 0 && self.counts[role as usize][health_index(Health::Up)] == decisive)
    }

    /// The region's probes, and those of them not inconclusive.
    fn decisive(&self, role: Role) -> (usize, usize) {
        let c = &self.counts[role as usize];
        let total: usize = c.iter().sum();
        (total, total - c[health_index(Health::Inconclusive)])
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
