//! The metrics as Prometheus sees them: `promtool check metrics` on the live output, a
//! real Prometheus server scraping the daemon on loopback and answering PromQL, the
//! alert rules through `promtool check rules` and `promtool test rules`, and every
//! series the dashboard and the rules use actually exported.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::admin::all_probes_up;
use support::config::{FAST_MONITOR, PROBES_ALL_KINDS};
use support::emulator::Emulator;
use support::monitor::Monitor;
use support::{TempDir, free_port, wait_for};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool from Debian's `prometheus` package (tests/run.sh installs it).
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found: install Debian's prometheus package (tests/run.sh does)")
        })
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Self {
        let dir = TempDir::new("prometheus");
        let config = dir.0.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }}\n\
                 rule_files: ['{}']\n\
                 scrape_configs:\n  - job_name: failover-monitor\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
                repo().join("deploy/prometheus/rules.yml").display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.0.join("prometheus.log")).unwrap();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// The value of a single-sample instant query, once there is one.
    async fn query_until(&self, q: &str, want: &str, limit: Duration) -> Value {
        let http = reqwest::Client::new();
        let until = tokio::time::Instant::now() + limit;
        let mut last = Value::Null;
        loop {
            let encoded: String = q
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            if let Ok(r) = http
                .get(format!(
                    "http://127.0.0.1:{}/api/v1/query?query={encoded}",
                    self.port
                ))
                .send()
                .await
                && let Ok(text) = r.text().await
                && let Ok(v) = serde_json::from_str::<Value>(&text)
            {
                if v["data"]["result"][0]["value"][1] == want {
                    return v;
                }
                last = v;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "{q}: never {want}; last answer {last}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Names of the failover_monitor_* series a text (PromQL, JSON) refers to.
fn series_in(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .match_indices("failover_monitor_")
        .map(|(i, _)| {
            text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_the_daemon_and_promtool_accepts_the_metrics() {
    let emu = Emulator::start();
    let mon = Monitor::start(&emu.config(&format!(
        "{FAST_MONITOR}\n[monitor]\nstate_refresh = \"500ms\"\n{PROBES_ALL_KINDS}"
    )));
    mon.wait_verdict("hold: primary healthy", Duration::from_secs(20))
        .await;
    // wait until every probe has a known health, then make one manual transition so
    // that every series exists
    mon.wait_status(Duration::from_secs(20), "every probe up", all_probes_up)
        .await;
    let (code, body, _) = mon
        .post("/v1/failover", r#"{"reason": "prometheus test"}"#)
        .await;
    assert_eq!(code, 200, "{body}");
    // and a pause with an end, so that the override's series exists too
    let (code, body, _) = mon
        .post("/v1/pause", r#"{"reason": "prometheus test", "for": "2h"}"#)
        .await;
    assert_eq!(code, 200, "{body}");
    wait_for(
        Duration::from_secs(10),
        "the pause's expiry series",
        async || {
            let m = mon.metrics().await;
            m.value(
                "failover_monitor_override_expiry_seconds",
                &[("override", "pause")],
            )
            .filter(|v| *v > 0.0)
            .ok_or_else(|| "absent".to_owned())
        },
    )
    .await;
    // and the secondary's readiness, exported once its first check concluded
    wait_for(
        Duration::from_secs(20),
        "the readiness series",
        async || {
            let m = mon.metrics().await;
            m.value("failover_monitor_secondary_ready", &[])
                .ok_or_else(|| "absent".to_owned())
        },
    )
    .await;
    let metrics = mon.metrics().await;
    let metrics = metrics.text();

    // promtool's linter
    let mut check = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), metrics.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // every series the dashboard and the rules use is exported
    let exported: Vec<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for (file, text) in [
        (
            "deploy/grafana/failover-monitor.json",
            std::fs::read_to_string(repo().join("deploy/grafana/failover-monitor.json")).unwrap(),
        ),
        (
            "deploy/prometheus/rules.yml",
            std::fs::read_to_string(repo().join("deploy/prometheus/rules.yml")).unwrap(),
        ),
    ] {
        let used = series_in(&text);
        assert!(used.len() >= 5, "{file} uses only {used:?}");
        for name in used {
            assert!(
                exported.contains(&name.as_str()),
                "{file} uses {name}, which the daemon does not export"
            );
        }
    }

    // a real Prometheus scrapes it and answers PromQL
    let prom = Prometheus::start(mon.admin_port);
    let limit = Duration::from_secs(30);
    prom.query_until("up{job=\"failover-monitor\"}", "1", limit)
        .await;
    prom.query_until("failover_monitor_app_state{state=\"failover\"}", "1", limit)
        .await;
    prom.query_until("failover_monitor_app_state{state=\"active\"}", "0", limit)
        .await;
    prom.query_until(
        "failover_monitor_probe_success{probe=\"p-config\",region=\"primary\",kind=\"dynamodb\"}",
        "1",
        limit,
    )
    .await;
    prom.query_until("min(failover_monitor_probe_up)", "1", limit)
        .await;
    prom.query_until(
        "sum(failover_monitor_transitions_total{trigger=\"manual\"})",
        "1",
        limit,
    )
    .await;
    // the rules load and evaluate: the app is not active, so that alert is pending
    prom.query_until(
        "count(ALERTS{alertname=\"FailoverMonitorNotActive\",alertstate=\"pending\"})",
        "1",
        limit,
    )
    .await;
    // A monitor alone is its own quorum and the one that acts: the alerts of
    // cooperating instances stay silent.
    prom.query_until("failover_monitor_quorum_reachable", "1", limit)
        .await;
    for alert in [
        "FailoverMonitorQuorumUnreachable",
        "FailoverMonitorNoLeader",
        "FailoverMonitorNeedsHuman",
        "FailoverMonitorDuplicateInstance",
    ] {
        prom.query_until(
            &format!("count(ALERTS{{alertname=\"{alert}\"}}) or vector(0)"),
            "0",
            limit,
        )
        .await;
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let dir = repo().join("deploy/prometheus");
    for args in [
        &["check", "rules", "rules.yml"][..],
        &["test", "rules", "rules.test.yml"][..],
    ] {
        let out = Command::new(tool("promtool"))
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn dashboard_is_importable_json_with_a_query_per_panel() {
    let text =
        std::fs::read_to_string(repo().join("deploy/grafana/failover-monitor.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        assert!(targets.iter().all(|t| {
            t["expr"]
                .as_str()
                .is_some_and(|e| e.contains("failover_monitor_"))
        }));
    }
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for want in [
        "State over time",
        "Probe success (last run)",
        "Probe latency p50 / p99",
        "Transitions",
        "Paused",
        "Leader",
        "Quorum reachable",
        "Needs a human",
        "Duplicate instance id",
        "Commit attempts by outcome",
        "Secondary ready",
    ] {
        assert!(titles.contains(&want), "no panel {want:?} in {titles:?}");
    }
}
