//! `backtest`: a recorded trace replayed through a config's policy, printed for a
//! human or as JSON.

use std::fmt::Write as _;
use std::path::Path;

use failover_config::Settings;
use failover_core::model::AppState;
use failover_daemon::backtest::{self as replay, Report};

/// Replays `trace` through `settings` from `initial` and prints the report.
pub fn run(settings: &Settings, trace: &Path, initial: AppState, json: bool) -> anyhow::Result<()> {
    let records = replay::read_trace(trace)?;
    let report = replay::replay(settings, &records, initial);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, initial));
    }
    Ok(())
}

/// The report for a human: what was replayed, what was ignored, each transition.
pub fn render(report: &Report, initial: AppState) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} probe results over {:.1} s, replayed from {initial} with fall/rise, region rule, hold_down, fence and failback of this config (mode taken as auto)",
        report.records,
        report.duration_ms as f64 / 1000.0
    );
    for (name, n) in &report.unknown_probes {
        let _ = writeln!(
            out,
            "  ignored {n} results of probe {name:?}, which this config does not have"
        );
    }
    for t in &report.transitions {
        let _ = writeln!(
            out,
            "  {}  +{:>8.1} s  {} -> {}  ({})",
            t.at,
            t.t_ms as f64 / 1000.0,
            t.from,
            t.to,
            t.reason
        );
    }
    let _ = writeln!(out, "{} transition(s)", report.transitions.len());
    out
}
