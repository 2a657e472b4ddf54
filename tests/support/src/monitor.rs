//! `failover-monitor` processes: `run` from a generated config, with its admin API on a
//! free loopback port and an admin token always configured, its JSON log in a file;
//! signals and exit codes. And the CLI, for the commands that run and exit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::emulator::signal;
use crate::{TempDir, free_port};

/// The admin token every test monitor gets (through `FAILOVER_MONITOR_ADMIN_TOKEN`),
/// and that [`crate::admin`] sends with every request.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// The binary under test. Cargo (1.94 and later) tells integration tests where it is
/// when it runs them; run by hand, a test binary finds it beside its own directory.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_failover-monitor") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("failover-monitor")))
        .filter(|p| p.exists())
        .expect("the failover-monitor binary: run the tests with cargo test")
}

/// The `failover-monitor` binary with `--config` and the emulator's credentials.
pub fn cli(config: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("--config")
        .arg(config)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("RUST_LOG", "info")
        .env_remove("AWS_PROFILE");
    cmd
}

/// A running `failover-monitor run`. Killed, and its files removed, on drop.
pub struct Monitor {
    child: Option<Child>,
    log: PathBuf,
    /// Its monitor.toml (rewrite it and send `HUP` to reload).
    pub config: PathBuf,
    pub admin_port: u16,
    _dir: TempDir,
}

impl Monitor {
    /// `failover-monitor run` with `config_text` as its monitor.toml.
    pub fn start(config_text: &str) -> Self {
        Self::start_with(config_text, &[])
    }

    /// Same, without any admin token: for the tests of what is refused then.
    pub fn start_without_tokens(config_text: &str) -> Self {
        Self::spawn(config_text, &[], false)
    }

    /// Same, with extra environment variables (applied after the admin token's, so
    /// they may replace it).
    pub fn start_with(config_text: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(config_text, env, true)
    }

    fn spawn(config_text: &str, env: &[(&str, &str)], token: bool) -> Self {
        let dir = TempDir::new("monitor");
        let config = dir.0.join("monitor.toml");
        std::fs::write(&config, config_text).expect("writing monitor.toml");
        let log = dir.0.join("monitor.log");
        let admin_port = free_port();
        let mut cmd = cli(&config);
        cmd.args(["--log-format", "json", "run"]).env(
            "FAILOVER_MONITOR__ADMIN__LISTEN",
            format!("127.0.0.1:{admin_port}"),
        );
        if token {
            cmd.env("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN);
        } else {
            cmd.env_remove("FAILOVER_MONITOR_ADMIN_TOKEN")
                .env_remove("FAILOVER_MONITOR_ADMIN_READ_TOKEN");
        }
        let child = cmd
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating the monitor log"))
            .spawn()
            .expect("starting failover-monitor");
        Self {
            child: Some(child),
            log,
            config,
            admin_port,
            _dir: dir,
        }
    }

    /// The admin API's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Sends a signal (`HUP`, `TERM`, `STOP`, `CONT`, `KILL` ...) to the process.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            signal(c.id(), sig);
        }
    }

    /// Waits up to `limit` for the process to exit on its own (killing it after);
    /// returns its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// SIGTERM, then the exit code (`None` when it had to be killed after 5 s).
    pub async fn terminate(&mut self) -> Option<i32> {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(5)).await
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's events, one JSON object per line (`--log-format json`); panics at a
    /// line that is not one. For tests whose subject is the log itself.
    pub fn log_events(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(v @ Value::Object(_)) => v,
                _ => panic!("not a JSON log event: {line:?}"),
            })
            .collect()
    }

    /// The last `n` lines of the log, for failure messages (not for assertions).
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
