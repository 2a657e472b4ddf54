//! The one helper every integration test shares: a two-region AWS emulator (one moto
//! server per region on a free loopback port, so killing one is a region outage),
//! seeded like the demo, and monitor processes started from generated configs.
//! Everything it starts is killed and every file it writes removed on drop.

#![allow(dead_code)]
#![allow(clippy::disallowed_types)] // wall-clock waits on real processes

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use failover_monitor::action::Actuator;
use failover_monitor::config::{self, Settings};
use failover_monitor::model::{AuditRecord, ConfigItem, Role};

pub const APP_ID: &str = "test-app";
pub const PROJECT: &str = "photos";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("FAILOVER_MONITOR_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let path = dir.join("bin").join(name);
    assert!(
        path.exists(),
        "{} not found: run deploy/local/venv.sh first (tests/run.sh does)",
        path.display()
    );
    path
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fm-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// One emulated region: a moto server process on its own port.
pub struct Region {
    pub role: Role,
    pub name: &'static str,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl Region {
    fn start(role: Role, name: &'static str, port: u16, dir: &Path) -> Self {
        Self::start_with(role, name, port, dir, &[])
    }

    /// A region whose moto server gets extra environment variables.
    pub fn start_with(
        role: Role,
        name: &'static str,
        port: u16,
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let mut r = Self {
            role,
            name,
            port,
            child: None,
            log: dir.join(format!("moto-{role}.log")),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting moto_server");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        for _ in 0..300 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "moto_server for {} did not listen on {}",
            self.role, self.port
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("region is running").id()
    }

    /// Region outage: the process dies (connections refused, its data gone).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "CONT");
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Region hang: the process is suspended (connections open, requests hang).
    pub fn stop(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// Starts a fresh emulator on the same port (empty: seed it again).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Primary (`us-east-1`) and secondary (`ap-northeast-1`) regions.
pub struct Emulator {
    pub primary: Region,
    pub secondary: Region,
    pub dir: TempDir,
}

impl Emulator {
    /// Starts both regions and seeds them (config item `active` without a version).
    pub fn start() -> Self {
        let emu = Self::start_empty();
        emu.seed(Role::Primary);
        emu.seed(Role::Secondary);
        emu
    }

    /// Starts both regions with nothing in them (for `provision`).
    pub fn start_empty() -> Self {
        let dir = TempDir::new("emulator");
        let primary = Region::start(Role::Primary, "us-east-1", free_port(), &dir.0);
        let secondary = Region::start(Role::Secondary, "ap-northeast-1", free_port(), &dir.0);
        Self {
            primary,
            secondary,
            dir,
        }
    }

    pub fn region(&self, role: Role) -> &Region {
        match role {
            Role::Primary => &self.primary,
            Role::Secondary => &self.secondary,
        }
    }

    /// Runs deploy/local/seed.py against one region (idempotent).
    pub fn seed(&self, role: Role) {
        let r = self.region(role);
        let out = Command::new(venv_bin("python"))
            .arg(repo().join("deploy/local/seed.py"))
            .args(["--project", PROJECT, "--app-id", APP_ID])
            .arg(format!("--{role}"))
            .arg(r.url())
            .arg(format!("--{role}-region"))
            .arg(r.name)
            .output()
            .expect("running seed.py");
        assert!(
            out.status.success(),
            "seed.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A monitor.toml for this emulator: `[regions]` and `[app]` filled in, then
    /// `body` (monitor, probes, policy ...). `{primary}` / `{secondary}` in `body`
    /// become the regions' URLs.
    pub fn config(&self, body: &str) -> String {
        format!(
            "[app]\nid = \"{APP_ID}\"\nproject = \"{PROJECT}\"\n\
             [regions.primary]\nname = \"us-east-1\"\nendpoint_url = \"{p}\"\n\
             [regions.secondary]\nname = \"ap-northeast-1\"\nendpoint_url = \"{s}\"\n{}",
            body.replace("{primary}", &self.primary.url())
                .replace("{secondary}", &self.secondary.url()),
            p = self.primary.url(),
            s = self.secondary.url(),
        )
    }

    /// An actuator of this emulator, for reading (and writing) the item from tests.
    pub async fn actuator(&self) -> Actuator {
        set_test_credentials();
        let settings = self.settings(&format!("{}\n{}", FAST_MONITOR, PROBES_ALL_KINDS));
        failover_monitor::backend::AwsBackend::load(&settings)
            .await
            .actuator(&settings)
    }

    /// The coordination store (lease, views) of this emulator's secondary.
    pub async fn coordination(&self) -> std::sync::Arc<dyn failover_monitor::coord::CoordStore> {
        use failover_monitor::backend::Backend;
        set_test_credentials();
        let settings = self.settings(&format!("{}\n{}", FAST_MONITOR, PROBES_ALL_KINDS));
        failover_monitor::backend::AwsBackend::load(&settings)
            .await
            .coordination(&settings)
    }

    pub fn settings(&self, body: &str) -> Settings {
        config::parse(&self.config(body), Vec::new()).expect("test config is valid")
    }
}

pub fn set_test_credentials() {
    // SAFETY: set once, to the same values, before any client reads them.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    }
}

/// Quick probing and no hold-down, so tests run in seconds.
pub const FAST_MONITOR: &str = r#"
[probe_defaults]
interval = "300ms"
timeout = "250ms"
jitter = "20ms"
fall = 3
rise = 2
"#;

/// Every probe kind the emulator can serve, on both regions.
pub const PROBES_ALL_KINDS: &str = r#"
[[probes]]
name = "p-endpoint"
kind = "http"
region = "primary"
url = "{primary}/"
expect_body = "ListAllMyBucketsResult"
[[probes]]
name = "p-photos"
kind = "s3"
region = "primary"
check = "roundtrip"
[[probes]]
name = "p-config"
kind = "dynamodb"
region = "primary"
[[probes]]
name = "p-alarm"
kind = "cloudwatch_alarm"
region = "primary"
alarms = ["photos-primary-api-5xx"]
[[probes]]
name = "s-photos"
kind = "s3"
region = "secondary"
[[probes]]
name = "s-config"
kind = "dynamodb"
region = "secondary"
check = "describe_table"
"#;

/// The admin token every test monitor gets.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running `failover-monitor` process with its JSON log in a file and its admin
/// API on a free loopback port.
pub struct Monitor {
    child: Option<Child>,
    pub log: PathBuf,
    pub config: PathBuf,
    pub admin_port: u16,
    _dir: TempDir,
}

impl Monitor {
    /// `failover-monitor run` with `config_text` as its monitor.toml.
    pub fn start(config_text: &str) -> Self {
        Self::start_with(config_text, &[("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN)])
    }

    /// Same, with extra environment variables (and no token unless given).
    pub fn start_with(config_text: &str, env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("monitor");
        let config = dir.0.join("monitor.toml");
        std::fs::write(&config, config_text).unwrap();
        let log = dir.0.join("monitor.log");
        let admin_port = free_port();
        let child = cli(&config)
            .args(["--log-format", "json", "run"])
            .env(
                "FAILOVER_MONITOR__ADMIN__LISTEN",
                format!("127.0.0.1:{admin_port}"),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
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

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Sends a signal (`HUP`, `TERM`, `STOP`, ...) to the monitor.
    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// Waits for the process to exit on its own; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Log lines (JSON events) containing `needle` in their message or a field.
    pub fn count(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until the log has a message containing `needle`.
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while self.count(needle) == 0 {
            assert!(
                tokio::time::Instant::now() < until,
                "no log message containing {needle:?} within {limit:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then wait for the exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        signal(c.id(), "TERM");
        for _ in 0..100 {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok().and_then(|s| s.code())
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

/// The `failover-monitor` binary with `--config` and emulator credentials.
pub fn cli(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_failover-monitor"));
    cmd.arg("--config")
        .arg(config)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("RUST_LOG", "info")
        .env_remove("AWS_PROFILE");
    cmd
}

/// Polls one region's item until `pred` holds; returns it and how long it took.
pub async fn wait_item(
    act: &Actuator,
    role: Role,
    limit: Duration,
    pred: impl Fn(&ConfigItem) -> bool,
) -> (ConfigItem, Duration) {
    let start = tokio::time::Instant::now();
    loop {
        if let Ok(Some(item)) = act.table(role).read().await
            && pred(&item)
        {
            return (item, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "{role} item did not reach the expected state within {limit:?}: {:?}",
            act.table(role).read().await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Reads one region's item, panicking when unreadable.
pub async fn item(act: &Actuator, role: Role) -> ConfigItem {
    act.table(role)
        .read()
        .await
        .expect("item readable")
        .expect("item exists")
}

pub async fn audits(
    act: &Actuator,
    role: Role,
    versions: std::ops::RangeInclusive<u64>,
) -> Vec<AuditRecord> {
    act.table(role)
        .audits(&versions.collect::<Vec<_>>())
        .await
        .expect("audits readable")
}

/// A TCP forwarder on loopback in front of one region: one per monitor instance, so
/// that each instance's view of the region can be cut on its own.
pub struct Proxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<new port> to 127.0.0.1:`target`. Needs a tokio runtime.
    pub async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, cs) = (cut.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    drop(inbound); // refused, as far as the client can tell
                    continue;
                }
                let h = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                cs.lock().unwrap().push(h.abort_handle());
            }
        });
        Self {
            port,
            cut,
            conns,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection through it, and every new one, until `restore`.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

/// A monitor config for one of several cooperating instances: `primary_url` is its own
/// way to the primary (a [`Proxy`]), the secondary is shared.
pub fn cooperating_config(
    emu: &Emulator,
    me: &str,
    instances: &[&str],
    primary_url: &str,
    extra: &str,
) -> String {
    let list = instances
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[app]\nid = \"{APP_ID}\"\nproject = \"{PROJECT}\"\n\
         [regions.primary]\nname = \"us-east-1\"\nendpoint_url = \"{primary_url}\"\n\
         [regions.secondary]\nname = \"ap-northeast-1\"\nendpoint_url = \"{s}\"\n\
         [monitor]\ninstance_id = \"{me}\"\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n{extra}\n\
         [coordination]\ninstances = [{list}]\nlease = \"2s\"\nrenew_every = \"300ms\"\nview_ttl = \"1500ms\"\n\
         {FAST_MONITOR}\n\
         [[probes]]\nname = \"p-endpoint\"\nkind = \"http\"\nregion = \"primary\"\nurl = \"{primary_url}/\"\n\
         [[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"p-photos\"\nkind = \"s3\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"s-config\"\nkind = \"dynamodb\"\nregion = \"secondary\"\n",
        s = emu.secondary.url(),
    )
}

/// GET a JSON document from a monitor's admin API (Null while it does not answer).
pub async fn get_json(url: String) -> serde_json::Value {
    // Every test monitor has TOKEN; /v1/status and /v1/history need one.
    let Ok(resp) = reqwest::Client::new()
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
    else {
        return serde_json::Value::Null;
    };
    let text = resp.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// A number from the environment (trial counts, seeds), or `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Prints the randomized suites' closing line and fails the test on any failure.
pub fn finish_trials(label: &str, seed: u64, passed: usize, failed: usize) {
    println!("{label} (seed {seed}): {passed} passed, {failed} failed");
    assert_eq!(failed, 0, "{failed} of {} {label} failed", passed + failed);
}
