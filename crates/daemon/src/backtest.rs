//! Observation traces and the policy backtest.
//!
//! With `monitor.record_observations` set, the daemon appends every probe result to a
//! JSONL file. `failover-monitor backtest` replays such a trace through the policy of
//! a (possibly different) config and reports the transitions it would have made and
//! when, so fall, rise, the region rule and hold-down can be tuned on real history
//! before they are deployed. The replay is pure: synthetic instants, no AWS.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use failover_config::{Mode, Settings};
use failover_core::model::{AppState, ConfigItem, Role};
use failover_core::policy::{Observation, Policy, PolicyConfig, Verdict};

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Milliseconds since the recording daemon started (monotonic).
    pub t_ms: u64,
    /// Wall-clock time of the result (RFC 3339).
    pub at: String,
    pub probe: String,
    pub region: Role,
    pub ok: bool,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure was about the monitor, not the region (inconclusive). Absent in
    /// traces recorded before it existed: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monitor_side: bool,
}

/// Appends records to a trace file.
pub struct Recorder {
    out: std::io::BufWriter<std::fs::File>,
    started: Instant,
}

impl Recorder {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            out: std::io::BufWriter::with_capacity(64 * 1024, file),
            started: Instant::now(),
        })
    }

    pub fn record(&mut self, obs: &Observation, name: &str, region: Role) -> std::io::Result<()> {
        let r = TraceRecord {
            t_ms: u64::try_from(obs.at.saturating_duration_since(self.started).as_millis())
                .unwrap_or(u64::MAX),
            at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            probe: name.to_owned(),
            region,
            ok: obs.ok,
            latency_ms: obs.latency.as_secs_f64() * 1000.0,
            error: obs.error.clone(),
            monitor_side: obs.monitor_side,
        };
        serde_json::to_writer(&mut self.out, &r)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A transition the replayed policy made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replayed {
    pub t_ms: u64,
    pub at: String,
    pub from: AppState,
    pub to: AppState,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub records: usize,
    /// Records of probes the config does not have, by name.
    pub unknown_probes: HashMap<String, usize>,
    pub duration_ms: u64,
    pub transitions: Vec<Replayed>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
}

pub fn read_trace(path: &Path) -> Result<Vec<TraceRecord>, TraceError> {
    let file = std::fs::File::open(path).map_err(|e| TraceError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| TraceError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| TraceError::Line {
            path: path.display().to_string(),
            line: i + 1,
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

/// Replays `trace` through the policy of `settings`, starting from `initial`, with
/// every wanted move committed at once. The mode is taken as `auto` (that is what is
/// being evaluated); pause and coordination do not apply to one recorded view.
pub fn replay(settings: &Settings, trace: &[TraceRecord], initial: AppState) -> Report {
    let cfg = PolicyConfig {
        mode: Mode::Auto,
        ..settings.policy_config()
    };
    let mut policy = Policy::new(
        cfg,
        settings
            .probes
            .iter()
            .map(|p| (p.name.clone(), p.region, p.fall, p.rise)),
    );
    let index: HashMap<(&str, Role), usize> = settings
        .probes
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.name.as_str(), p.region), i))
        .collect();
    let mut sorted: Vec<&TraceRecord> = trace.iter().collect();
    sorted.sort_by_key(|r| r.t_ms);
    // Synthetic time: far enough from the epoch of this process that nothing saturates.
    let base = Instant::now();
    let mut item = ConfigItem {
        state: initial,
        version: 0,
        updated_at: None,
        updated_by: Some("backtest".into()),
        reason: None,
        expires_at: None,
    };
    policy.observe_item(item.clone(), None, base);
    let mut unknown: HashMap<String, usize> = HashMap::new();
    let mut transitions = Vec::new();
    for r in &sorted {
        let Some(&i) = index.get(&(r.probe.as_str(), r.region)) else {
            *unknown.entry(r.probe.clone()).or_default() += 1;
            continue;
        };
        let at = base + Duration::from_millis(r.t_ms);
        policy.observe(&Observation {
            probe: i,
            at,
            ok: r.ok,
            latency: Duration::from_secs_f64(r.latency_ms.max(0.0) / 1000.0),
            error: r.error.clone(),
            monitor_side: r.monitor_side,
        });
        if let Verdict::Act(d) = policy.evaluate(at) {
            transitions.push(Replayed {
                t_ms: r.t_ms,
                at: r.at.clone(),
                from: d.from,
                to: d.to,
                reason: d.reason,
            });
            item = ConfigItem {
                state: d.to,
                version: item.version + 1,
                ..item
            };
            policy.committed(item.clone(), at);
        }
    }
    Report {
        records: trace.len(),
        unknown_probes: unknown,
        duration_ms: sorted.last().map_or(0, |r| r.t_ms) - sorted.first().map_or(0, |r| r.t_ms),
        transitions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(fall: u32) -> Settings {
        let text = format!(
            "[app]\nid = \"a\"\n[regions.primary]\nname = \"us-east-1\"\n[regions.secondary]\nname = \"ap-northeast-1\"\n\
             [monitor]\nmode = \"manual\"\nhold_down = \"30s\"\nfailback = \"auto\"\nfailback_after = \"5s\"\n\
             [probe_defaults]\ninterval = \"1s\"\nfall = {fall}\nrise = 2\n\
             [[probes]]\nname = \"api\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
             [[probes]]\nname = \"s\"\nkind = \"dynamodb\"\nregion = \"secondary\"\n"
        );
        failover_config::parse(&text, Vec::new()).unwrap()
    }

    fn rec(t_ms: u64, probe: &str, region: Role, ok: bool) -> TraceRecord {
        TraceRecord {
            t_ms,
            at: format!("t+{t_ms}"),
            probe: probe.into(),
            region,
            ok,
            latency_ms: 2.0,
            error: None,
            monitor_side: false,
        }
    }

    /// 10 s up, 20 s down, 60 s up again; one result per probe per second.
    fn outage_trace() -> Vec<TraceRecord> {
        let mut t = Vec::new();
        for s in 0..90u64 {
            t.push(rec(s * 1000, "api", Role::Primary, !(10..30).contains(&s)));
            t.push(rec(s * 1000 + 10, "s", Role::Secondary, true));
        }
        t.push(rec(5, "retired-probe", Role::Primary, false));
        t
    }

    #[tokio::test(start_paused = true)]
    async fn replay_reports_the_moves_a_config_would_make() {
        let r = replay(&settings(3), &outage_trace(), AppState::Active);
        let moves: Vec<(u64, AppState, AppState)> = r
            .transitions
            .iter()
            .map(|t| (t.t_ms, t.from, t.to))
            .collect();
        // down at the 3rd failure (12 s); back after rise (31 s) + failback_after 5 s,
        // but hold_down (30 s after 12 s) holds it until 42 s.
        assert_eq!(
            moves,
            [
                (12_000, AppState::Active, AppState::Failover),
                (42_000, AppState::Failover, AppState::Active)
            ]
        );
        assert_eq!(r.unknown_probes.get("retired-probe"), Some(&1));
        assert_eq!(r.records, 181);
    }

    #[tokio::test(start_paused = true)]
    async fn a_higher_fall_rides_out_the_same_trace() {
        let r = replay(&settings(25), &outage_trace(), AppState::Active);
        assert!(r.transitions.is_empty(), "{:?}", r.transitions);
    }

    #[test]
    fn trace_lines_round_trip_and_bad_lines_name_the_line() {
        let dir = std::env::temp_dir().join(format!("fm-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.jsonl");
        let r = rec(7, "api", Role::Primary, false);
        std::fs::write(
            &path,
            format!("{}\n\nnot json\n", serde_json::to_string(&r).unwrap()),
        )
        .unwrap();
        let err = read_trace(&path).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        std::fs::write(&path, format!("{}\n", serde_json::to_string(&r).unwrap())).unwrap();
        assert_eq!(read_trace(&path).unwrap(), vec![r]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
