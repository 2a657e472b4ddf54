//! Every series failover-monitor exports (prefix `failover_monitor_`;
//! `docs/REFERENCE.md` lists them): the Prometheus registry, and the per-probe series
//! in rows of their own (`probes.rs`), which grow with the number of probes. The
//! decision loop updates them; the admin server renders them on `/metrics`.

mod probes;

use std::sync::{Arc, RwLock};

use prometheus::{
    Encoder, Gauge, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub use probes::{DURATION_BUCKETS, ProbeRows};

use failover_core::model::{AppState, Trigger};

pub struct Metrics {
    registry: Registry,
    /// `probe_success`, `probe_up`, `probe_inconclusive`, `probe_duration_seconds`
    /// of the configured probes.
    probes: RwLock<Arc<ProbeRows>>,
    pub app_state: IntGaugeVec,
    pub transitions: IntCounterVec,
    pub paused: IntGauge,
    pub leader: IntGauge,
    pub last_transition: Gauge,
    pub build_info: IntGaugeVec,
    pub config_reload_ok: IntGauge,
    pub config_reload_time: Gauge,
    pub divergence: IntGauge,
    pub item_version: IntGauge,
    pub schedule_lag: prometheus::Histogram,
    pub quorum_reachable: IntGauge,
    pub needs_human: IntGauge,
    /// Absent until a readiness check concludes (see [`Metrics::set_secondary_ready`]).
    pub secondary_ready: IntGaugeVec,
    pub fenced_seconds: Gauge,
    pub duplicate_instance: IntGauge,
    pub coordination_mismatch: IntGauge,
    pub commit_attempts: IntCounterVec,
    pub override_expiry: prometheus::GaugeVec,
    pub last_recovery: Gauge,
    pub rpo_bound: Gauge,
    pub drill_last_success: Gauge,
    pub drill_last_outcome: IntGaugeVec,
    pub drill_running: IntGauge,
    pub drill_period: Gauge,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("failover_monitor")
}

/// Registers `c` and hands it back.
fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    reg(
        r,
        IntGauge::with_opts(opts(name, help)).expect("valid metric"),
    )
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    reg(
        r,
        IntGaugeVec::new(opts(name, help), labels).expect("valid metric"),
    )
}

fn float(r: &Registry, name: &str, help: &str) -> Gauge {
    reg(r, Gauge::with_opts(opts(name, help)).expect("valid metric"))
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(
        r,
        IntCounterVec::new(opts(name, help), labels).expect("valid metric"),
    )
}

fn histogram_opts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help)
        .namespace("failover_monitor")
        .buckets(buckets.to_vec())
}

/// How late probe runs start (seconds).
const LAG_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let m = Self {
            probes: RwLock::default(),
            app_state: gauge_vec(&r, "app_state", "The committed state of the config item: 1 for the current state.", &["state"]),
            transitions: counter_vec(&r, "transitions_total", "Transitions this instance committed.", &["from", "to", "trigger"]),
            paused: gauge(&r, "paused", "1 while automatic transitions are paused."),
            leader: gauge(&r, "leader", "1 while this instance may act on its own decisions."),
            last_transition: float(&r, "last_transition_timestamp_seconds", "Unix time of the last committed transition (the item's updatedAt)."),
            build_info: gauge_vec(&r, "build_info", "Always 1; the version as a label.", &["version"]),
            config_reload_ok: gauge(&r, "config_last_reload_successful", "Whether the last configuration load or reload succeeded."),
            config_reload_time: float(&r, "config_last_reload_success_timestamp_seconds", "Unix time of the last successful configuration load or reload."),
            divergence: gauge(&r, "region_divergence", "1 while the regions' copies of the config item disagree in a way the sync cannot fix."),
            item_version: gauge(&r, "item_version", "The version of the committed config item."),
            schedule_lag: reg(&r, prometheus::Histogram::with_opts(histogram_opts("probe_schedule_lag_seconds", "How late probe runs start after their slot (jitter excluded): the scheduler's health.", LAG_BUCKETS)).expect("valid metric")),
            quorum_reachable: gauge(&r, "quorum_reachable", "With cooperating instances: 1 while enough configured instances are live to reach the failover quorum, 0 while not (a lone survivor never fails over on its own); 1 for an instance that acts alone."),
            needs_human: gauge(&r, "needs_human", "1 while the config item is in a state only a human can settle (reset below versions already used); automatic moves are stopped."),
            secondary_ready: gauge_vec(&r, "secondary_ready", "The secondary's last readiness check: 1 ready, 0 not ready (status secondary_readiness says why); absent before the first check and while the last could say nothing about the secondary.", &[]),
            fenced_seconds: float(&r, "fenced_seconds", "How long the config item has been fenced (writes blocked), 0 while it is not. A fence of the monitors is lifted once it is older than max_fence plus the failover bound."),
            duplicate_instance: gauge(&r, "duplicate_instance", "1 while another live process runs with this instance id (this one does not take the lease)."),
            coordination_mismatch: gauge(&r, "coordination_mismatch", "1 while a live instance runs another [coordination] section than this one (instances, lease, timing, quorum): automatic moves wait until they agree."),
            commit_attempts: counter_vec(&r, "commit_attempts_total", "Attempts to commit a transition, by outcome: committed, lost_race, deposed, needs_human, busy, unknown.", &["outcome"]),
            override_expiry: reg(&r, prometheus::GaugeVec::new(opts("override_expiry_seconds", "Seconds until a human's override ends (override: pause, fence), 0 once ended (the monitors then lift it); absent while there is none."), &["override"]).expect("valid metric")),
            last_recovery: float(&r, "last_recovery_seconds", "The recovery time (RTO) of the last transition this instance reported: from the onset (the first failed probe, or a drill's start) to clients served by the new region (docs/REFERENCE.md, \"Recovery reports\")."),
            rpo_bound: float(&r, "rpo_bound_seconds", "The replication lag bound of the last move to the secondary this instance reported: writes after the newest RPO canary the secondary had may be missing there (one canary key, not every item)."),
            drill_last_success: float(&r, "drill_last_success_timestamp_seconds", "Unix time of the last successful drill, as the drill record in the commit region says; 0 while none ever succeeded."),
            drill_last_outcome: gauge_vec(&r, "drill_last_outcome", "1 for the outcome of the last drill that ended (SUCCEEDED, FAILED, INTERRUPTED), 0 for the others (all 0 before the first).", &["outcome"]),
            drill_running: gauge(&r, "drill_running", "1 while a drill runs (by the drill record)."),
            drill_period: float(&r, "drill_period_seconds", "[drills] every, in seconds; 0 without a schedule. FailoverMonitorDrillOverdue fires when no drill succeeded in twice this."),
            registry: r,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for o in failover_core::drill::Outcome::ALL {
            m.drill_last_outcome.with_label_values(&[o.as_str()]).set(0);
        }
        m
    }

    pub fn set_state(&self, state: AppState) {
        for s in AppState::ALL {
            self.app_state
                .with_label_values(&[s.as_str()])
                .set(i64::from(s == state));
        }
    }

    /// The secondary's readiness: `Some(ready)`, or None (unknown) to export nothing.
    pub fn set_secondary_ready(&self, ready: Option<bool>) {
        match ready {
            Some(ready) => self
                .secondary_ready
                .with_label_values::<&str>(&[])
                .set(i64::from(ready)),
            None => self.secondary_ready.reset(),
        }
    }

    pub fn transition(&self, from: AppState, to: AppState, trigger: Trigger) {
        self.transitions
            .with_label_values(&[from.as_str(), to.as_str(), trigger.as_str()])
            .inc();
    }

    /// Exports the series of `rows` from now on, instead of the previous probes'.
    pub fn set_probes(&self, rows: Arc<ProbeRows>) {
        *self.probes.write().unwrap_or_else(|e| e.into_inner()) = rows;
    }

    /// Forgets the per-probe series (after a reload removed or renamed probes).
    pub fn reset_probes(&self) {
        self.set_probes(Arc::default());
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let probes = self
            .probes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut buf = Vec::with_capacity(probes.text_len());
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding to a Vec cannot fail");
        let mut text = String::from_utf8(buf).expect("the text format is UTF-8");
        probes.render(&mut text);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_core::model::Role;
    use failover_core::policy::Health;

    /// `docs/REFERENCE.md` lists every series, so the user's reference cannot drift.
    #[test]
    fn every_series_is_in_the_reference() {
        let doc = include_str!("../../../docs/REFERENCE.md");
        let section = &doc[doc.find("## Metrics").expect("a Metrics section")..];
        let m = Metrics::new();
        let rows = Arc::new(ProbeRows::new([("p", Role::Primary, "http")]));
        rows.observe(0, true, std::time::Duration::from_millis(100));
        rows.set_health(0, Health::Up);
        m.set_probes(rows);
        m.set_state(AppState::Active);
        m.transition(AppState::Active, AppState::Failover, Trigger::Auto);
        m.commit_attempts.with_label_values(&["committed"]).inc();
        m.override_expiry.with_label_values(&["pause"]).set(60.0);
        m.set_secondary_ready(Some(true));
        let text = m.render();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE failover_monitor_"))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(families.len(), 29, "every series is checked");
        for name in families {
            assert!(
                section.contains(&format!("| `{name}` |")),
                "{name} is not in docs/REFERENCE.md's Metrics section"
            );
        }
    }

    #[test]
    fn every_design_series_is_exported_with_its_prefix() {
        let m = Metrics::new();
        let rows = Arc::new(ProbeRows::new([("api", Role::Primary, "http")]));
        rows.observe(0, true, std::time::Duration::from_millis(12));
        rows.set_health(0, Health::Up);
        m.set_probes(rows);
        m.set_state(AppState::Failover);
        m.transition(AppState::Active, AppState::Failover, Trigger::Auto);
        let text = m.render();
        for name in [
            "failover_monitor_probe_success{",
            "failover_monitor_probe_up{",
            "failover_monitor_probe_duration_seconds_bucket{",
            "failover_monitor_app_state{state=\"failover\"} 1",
            "failover_monitor_app_state{state=\"active\"} 0",
            "failover_monitor_transitions_total{from=\"active\",to=\"failover\",trigger=\"auto\"} 1",
            "failover_monitor_paused ",
            "failover_monitor_leader ",
            "failover_monitor_last_transition_timestamp_seconds ",
            "failover_monitor_build_info{version=",
            "failover_monitor_config_last_reload_successful ",
            "failover_monitor_quorum_reachable ",
            "failover_monitor_needs_human ",
            "failover_monitor_duplicate_instance ",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
