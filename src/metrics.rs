//! The Prometheus registry: every series failover-monitor exports, named as
//! docs/REFERENCE.md lists them (prefix `failover_monitor_`). The decision loop updates it;
//! the admin server renders it on `/metrics`.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::model::{AppState, Trigger};

/// Probe durations run from a few ms (a refused connection) to the timeout (a hang).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub probe_success: IntGaugeVec,
    pub probe_up: IntGaugeVec,
    pub probe_duration: HistogramVec,
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
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("failover_monitor")
}

impl Metrics {
    pub fn new() -> Self {
        let m = Self {
            registry: Registry::new(),
            probe_success: IntGaugeVec::new(
                opts("probe_success", "Whether the last run of the probe succeeded (1) or failed (0)."),
                &["probe", "region", "kind"],
            )
            .expect("valid metric"),
            probe_up: IntGaugeVec::new(
                opts("probe_up", "The probe's health after fall/rise hysteresis: 1 up, 0 down."),
                &["probe", "region"],
            )
            .expect("valid metric"),
            probe_duration: HistogramVec::new(
                HistogramOpts::new("probe_duration_seconds", "How long each probe run took.")
                    .namespace("failover_monitor")
                    .buckets(DURATION_BUCKETS.to_vec()),
                &["probe", "region", "kind"],
            )
            .expect("valid metric"),
            app_state: IntGaugeVec::new(
                opts("app_state", "The committed state of the config item: 1 for the current state."),
                &["state"],
            )
            .expect("valid metric"),
            transitions: IntCounterVec::new(
                opts("transitions_total", "Transitions this instance committed."),
                &["from", "to", "trigger"],
            )
            .expect("valid metric"),
            paused: IntGauge::with_opts(opts("paused", "1 while automatic transitions are paused.")).expect("valid metric"),
            leader: IntGauge::with_opts(opts("leader", "1 while this instance may act on its own decisions."))
                .expect("valid metric"),
            last_transition: Gauge::with_opts(opts(
                "last_transition_timestamp_seconds",
                "Unix time of the last committed transition (the item's updatedAt).",
            ))
            .expect("valid metric"),
            build_info: IntGaugeVec::new(opts("build_info", "Always 1; the version as a label."), &["version"])
                .expect("valid metric"),
            config_reload_ok: IntGauge::with_opts(opts(
                "config_last_reload_successful",
                "Whether the last configuration load or reload succeeded.",
            ))
            .expect("valid metric"),
            config_reload_time: Gauge::with_opts(opts(
                "config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load or reload.",
            ))
            .expect("valid metric"),
            divergence: IntGauge::with_opts(opts(
                "region_divergence",
                "1 while the regions' copies of the config item disagree in a way the sync cannot fix.",
            ))
            .expect("valid metric"),
            item_version: IntGauge::with_opts(opts("item_version", "The version of the committed config item."))
                .expect("valid metric"),
            schedule_lag: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "probe_schedule_lag_seconds",
                    "How late probe runs start after their slot (jitter excluded): the scheduler's health.",
                )
                .namespace("failover_monitor")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            )
            .expect("valid metric"),
        };
        let r = &m.registry;
        for c in [
            Box::new(m.probe_success.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.probe_up.clone()),
            Box::new(m.probe_duration.clone()),
            Box::new(m.app_state.clone()),
            Box::new(m.transitions.clone()),
            Box::new(m.paused.clone()),
            Box::new(m.leader.clone()),
            Box::new(m.last_transition.clone()),
            Box::new(m.build_info.clone()),
            Box::new(m.config_reload_ok.clone()),
            Box::new(m.config_reload_time.clone()),
            Box::new(m.divergence.clone()),
            Box::new(m.item_version.clone()),
            Box::new(m.schedule_lag.clone()),
        ] {
            r.register(c).expect("metric names are unique");
        }
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    pub fn set_state(&self, state: AppState) {
        for s in AppState::ALL {
            self.app_state
                .with_label_values(&[s.as_str()])
                .set(i64::from(s == state));
        }
    }

    pub fn transition(&self, from: AppState, to: AppState, trigger: Trigger) {
        self.transitions
            .with_label_values(&[from.as_str(), to.as_str(), trigger.as_str()])
            .inc();
    }

    /// Forgets the per-probe series (after a reload removed or renamed probes).
    pub fn reset_probes(&self) {
        self.probe_success.reset();
        self.probe_up.reset();
        self.probe_duration.reset();
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
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

    #[test]
    fn every_design_series_is_exported_with_its_prefix() {
        let m = Metrics::new();
        m.probe_success
            .with_label_values(&["api", "primary", "http"])
            .set(1);
        m.probe_up.with_label_values(&["api", "primary"]).set(1);
        m.probe_duration
            .with_label_values(&["api", "primary", "http"])
            .observe(0.012);
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
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
