//! The config errors a user meets first, through the binary: `check-config` refuses
//! exactly what `run` refuses, with the same message; an environment variable that
//! sets a bad key is named; a missing file says where it was looked for.
//! Nothing here needs the emulator.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::TempDir;
use support::monitor::cli;

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

/// An exposed admin API needs the token and TLS; without TLS, both commands refuse
/// it alike, unless `admin.allow_cleartext_token` declares a TLS-terminating proxy.
#[test]
fn check_config_accepts_an_exposed_admin_api_with_a_token_and_no_cleartext() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/config/invalid-admin-exposed.toml");
    let token = ("FAILOVER_MONITOR_ADMIN_TOKEN", "0123456789abcdef-test");
    for command in ["check-config", "run"] {
        let mut cmd = cli(&path);
        cmd.arg(command).env(token.0, token.1);
        let out = output_within(cmd, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert_eq!(
            refusal(&out),
            "failover-monitor: invalid config: admin.listen = \"[::]:9464\": a non-loopback \
             address without TLS would carry the tokens in cleartext: set \
             admin.tls_cert_file and admin.tls_key_file, or admin.allow_cleartext_token = \
             true when a TLS-terminating proxy or load balancer is the only way to this port",
            "{command}"
        );
    }
    let mut cmd = cli(&path);
    cmd.arg("check-config")
        .env(token.0, token.1)
        .env("FAILOVER_MONITOR__ADMIN__ALLOW_CLEARTEXT_TOKEN", "true");
    let out = output_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", refusal(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
}

#[test]
fn a_bad_environment_variable_is_named() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("monitor.toml");
    for command in ["check-config", "run"] {
        let mut cmd = cli(&shipped);
        cmd.arg(command)
            .env("FAILOVER_MONITOR__MONITOR__MODEE", "x");
        let out = output_within(cmd, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{command}");
        let got = refusal(&out);
        assert!(
            got.starts_with(
                "failover-monitor: invalid config: monitor.modee (from the environment \
                 variable FAILOVER_MONITOR__MONITOR__MODEE): unknown field `modee`"
            ),
            "{command}: {got}"
        );
        let mut cmd = cli(&shipped);
        cmd.arg(command)
            .env("FAILOVER_MONITOR__MONITOR__HOLD_DOWN", "soon");
        let got = refusal(&output_within(cmd, Duration::from_secs(30)));
        assert!(
            got.starts_with(
                "failover-monitor: invalid config: monitor.hold_down (from the environment \
                 variable FAILOVER_MONITOR__MONITOR__HOLD_DOWN): invalid value: string \"soon\""
            ),
            "{command}: {got}"
        );
    }
}

#[test]
fn a_missing_default_file_says_where_it_looked_and_how_to_name_another() {
    let dir = TempDir::new("nocfg");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_failover-monitor"));
    cmd.arg("check-config").current_dir(&dir.0);
    let out = output_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    // The working directory as the process sees it (symbolic links resolved).
    let looked_for = dir.0.canonicalize().unwrap().join("monitor.toml");
    assert_eq!(
        refusal(&out),
        format!(
            "failover-monitor: invalid config: monitor.toml: cannot read the config file: it \
             does not exist (looked for {}); `--config PATH` names another file, and without \
             it the file is ./monitor.toml in the working directory",
            looked_for.display()
        )
    );
}
