//! The config errors a user meets first, through the binary: `check-config` refuses
//! exactly what `run` refuses, with the same message.
//! Nothing here needs the emulator.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::cli;

/// Runs `cmd` without any `FAILOVER_MONITOR*` variable of the test's own environment,
/// killing it if it is still running after `limit` (a `run` that failed to refuse
/// would serve forever).
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    for (name, _) in std::env::vars() {
        if name.starts_with("FAILOVER_MONITOR") {
            cmd.env_remove(name);
        }
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let step = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    while child.try_wait().unwrap().is_none() {
        if waited >= limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(step);
        waited += step;
    }
    child.wait_with_output().unwrap()
}

/// The line the binary ends with when it refuses a config.
fn refusal(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn check_config_and_run_refuse_every_invalid_file_alike() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/config");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("invalid-")
        })
        .collect();
    files.sort();
    assert!(
        files
            .iter()
            .any(|p| p.ends_with("invalid-admin-exposed.toml")),
        "the non-loopback admin case is among them"
    );
    let mut mismatches = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .unwrap();
        let expected = format!("failover-monitor: invalid config: {expected}");
        for command in ["check-config", "run"] {
            let mut cmd = cli(path);
            cmd.arg(command);
            let out = output_within(cmd, Duration::from_secs(30));
            let got = refusal(&out);
            if out.status.code() != Some(2) || got != expected {
                mismatches.push(format!(
                    "{} {command}: exit {:?}\n  expected: {expected}\n       got: {got}",
                    path.display(),
                    out.status.code()
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn check_config_accepts_an_exposed_admin_api_with_a_token() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/config/invalid-admin-exposed.toml");
    let mut cmd = cli(&path);
    cmd.arg("check-config");
    cmd.env("FAILOVER_MONITOR_ADMIN_TOKEN", "0123456789abcdef-test");
    let out = output_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", refusal(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
}
