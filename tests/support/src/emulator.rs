//! The two-region AWS emulator: one process per region on its own loopback port
//! (moto server with the execution layer of the REST APIs provisioned into it,
//! `deploy/local/region`), so that killing one is a region outage and suspending one
//! a region that hangs. Seeded by `deploy/local/seed.py`, like the local demo.
//!
//! By default the two regions replicate to each other, as AWS regions do
//! (`deploy/local/REPLICATION.md`: S3 replication rules, DynamoDB global tables, a
//! lag, a partition switch), and are seeded with global tables, the default of
//! `stack.tables`. [`Emulator::start_per_region`] starts two regions that do not
//! replicate, each with its own tables, and writes `stack.tables = "per-region"` into
//! the configs it makes.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use failover_config::TablesMode;
use failover_core::model::Role;
use serde_json::Value;

use crate::{APP_ID, PROJECT, TempDir, free_port, poll, repo};

/// A program of the Python venv holding moto (`deploy/local/venv.sh` makes it).
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

/// The program that starts one emulated region: moto server with the execution layer
/// of the REST APIs provisioned into it, in one process (the path
/// `deploy/local/venv.sh` prints). It runs the venv's Python.
fn region_program() -> PathBuf {
    let _ = venv_bin("python");
    repo().join("deploy/local/region")
}

/// Sends `sig` (`STOP`, `CONT`, `TERM`, `KILL`, ...) to a process.
pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// One emulated region: a moto server process on its own port.
pub struct Region {
    role: Role,
    pub name: &'static str,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl Region {
    /// Starts a moto server for `role` on `port`, alone (no peer), its output in
    /// `dir`, with extra environment variables for it (moto's own switches).
    pub fn start_with(
        role: Role,
        name: &'static str,
        port: u16,
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::start_with_env(role, name, port, dir, env)
    }

    /// The same with owned variables (the replication ones among them); a
    /// [`Region::restart`] starts the process again with them.
    fn start_with_env(
        role: Role,
        name: &'static str,
        port: u16,
        dir: &Path,
        env: Vec<(String, String)>,
    ) -> Self {
        let mut r = Self {
            role,
            name,
            port,
            child: None,
            log: dir.join(format!("moto-{role}.log")),
            env,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).expect("creating the moto log");
        let child = Command::new(region_program())
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting deploy/local/region");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        for _ in 0..300 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the emulated {} region did not listen on {}",
            self.role, self.port
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("the region is running").id()
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

    /// Ends a [`Region::stop`].
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// Starts a fresh emulator on the same port, with the same variables (the same
    /// peer): empty, seed it again.
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
    /// How the seed made the tables, and what [`Emulator::config`] says.
    tables: TablesMode,
    _dir: TempDir,
}

/// How long a region's replication control call may take (a suspended region's hangs).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(3);

impl Emulator {
    /// Starts both regions as a replicating pair and seeds them with global tables
    /// (config item `active`, without a version, written in the secondary; an S3
    /// replication rule `public` -> the secondary's bucket); returns once converged.
    pub fn start() -> Self {
        let emu = Self::start_empty();
        emu.seed_all();
        emu.wait_converged_blocking();
        emu
    }

    /// Starts both regions as a replicating pair with nothing in them (for
    /// `provision`, whose default is global tables).
    pub fn start_empty() -> Self {
        Self::launch(true, TablesMode::Global)
    }

    /// Starts two regions that do not replicate, each seeded with its own tables
    /// (`stack.tables = "per-region"`, written into every [`Emulator::config`]).
    pub fn start_per_region() -> Self {
        let emu = Self::start_empty_per_region();
        emu.seed_all();
        emu
    }

    /// Two regions that do not replicate, with nothing in them; the configs say
    /// `stack.tables = "per-region"` (for `provision` of one table per region).
    pub fn start_empty_per_region() -> Self {
        Self::launch(false, TablesMode::PerRegion)
    }

    /// Both ports are chosen before either region starts: each is told its peer's.
    fn launch(peered: bool, tables: TablesMode) -> Self {
        let dir = TempDir::new("emulator");
        let ports = (free_port(), free_port());
        let env = |region: &str, peer: &str, peer_port: u16| -> Vec<(String, String)> {
            if !peered {
                return Vec::new();
            }
            vec![
                ("EMULATOR_REGION".into(), region.into()),
                (
                    "EMULATOR_PEER_URL".into(),
                    format!("http://127.0.0.1:{peer_port}"),
                ),
                ("EMULATOR_PEER_REGION".into(), peer.into()),
            ]
        };
        let primary = Region::start_with_env(
            Role::Primary,
            "us-east-1",
            ports.0,
            &dir.0,
            env("us-east-1", "ap-northeast-1", ports.1),
        );
        let secondary = Region::start_with_env(
            Role::Secondary,
            "ap-northeast-1",
            ports.1,
            &dir.0,
            env("ap-northeast-1", "us-east-1", ports.0),
        );
        Self {
            primary,
            secondary,
            tables,
            _dir: dir,
        }
    }

    pub fn region(&self, role: Role) -> &Region {
        match role {
            Role::Primary => &self.primary,
            Role::Secondary => &self.secondary,
        }
    }

    /// How this emulator's tables are made (what its configs say `stack.tables` is).
    pub fn tables_mode(&self) -> TablesMode {
        self.tables
    }

    /// Runs deploy/local/seed.py against one region (idempotent). With global tables,
    /// a primary that came back empty rejoins the secondary's replicas and gets every
    /// item from them: nothing is written over the secondary's copy.
    pub fn seed(&self, role: Role) {
        self.run_seed(&[role]);
    }

    fn seed_all(&self) {
        self.run_seed(&Role::BOTH);
    }

    fn run_seed(&self, roles: &[Role]) {
        let tables = match self.tables {
            TablesMode::Global => "global",
            TablesMode::PerRegion => "per-region",
        };
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(repo().join("deploy/local/seed.py"))
            .args(["--project", PROJECT, "--app-id", APP_ID, "--tables", tables])
            .args(["--primary-region", self.primary.name])
            .args(["--secondary-region", self.secondary.name]);
        for &role in roles {
            cmd.arg(format!("--{role}")).arg(self.region(role).url());
        }
        let out = cmd.output().expect("running seed.py");
        assert!(
            out.status.success(),
            "seed.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits (blocking) until both regions have nothing left to send, with
    /// `deploy/local/emulator/control.py wait`.
    fn wait_converged_blocking(&self) {
        let out = Command::new(venv_bin("python"))
            .arg(repo().join("deploy/local/emulator/control.py"))
            .args([self.primary.url(), self.secondary.url()])
            .args(["wait", "30"])
            .output()
            .expect("running control.py");
        assert!(
            out.status.success(),
            "the seeded regions did not converge: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// One region's replication status (`GET /_emulator/replication/status`):
    /// `outbound.pending`, `partitioned`, `inbound.last_latency_ms`, ...
    pub async fn replication_status(&self, role: Role) -> Result<Value, String> {
        self.region(role).control("GET", "status", None).await
    }

    /// How long a change waits before it is sent, in both regions.
    pub async fn set_replication_lag(&self, lag: Duration) {
        let body = serde_json::json!({ "seconds": lag.as_secs_f64() }).to_string();
        self.control_both("lag", Some(body)).await;
    }

    /// Stops replication both ways (set on both regions, as `emulator.sh
    /// partition-replication` does): changes queue until [`Emulator::heal_replication`].
    pub async fn partition_replication(&self) {
        self.control_both("partition", None).await;
    }

    /// Ends a partition on both regions; what queued is sent at once.
    pub async fn heal_replication(&self) {
        self.control_both("heal", None).await;
    }

    async fn control_both(&self, action: &str, body: Option<String>) {
        for role in Role::BOTH {
            self.region(role)
                .control("POST", action, body.clone())
                .await
                .unwrap_or_else(|e| panic!("replication {action} in the {role} region: {e}"));
        }
    }

    /// Waits until the regions have converged: both answer, neither is partitioned,
    /// and neither has a change left to send (`outbound.pending` 0).
    pub async fn wait_converged(&self, limit: Duration) {
        let converged = poll(limit, async || {
            let mut seen = Vec::new();
            for role in Role::BOTH {
                let s = self.replication_status(role).await?;
                if s["partitioned"] != false || s["outbound"]["pending"] != 0 {
                    seen.push(format!("{role}: {s}"));
                }
            }
            if seen.is_empty() {
                Ok(())
            } else {
                Err(seen.join("\n"))
            }
        })
        .await;
        if let Err(last) = converged {
            panic!("replication did not converge within {limit:?}: {last}");
        }
    }
}

impl Region {
    /// One call to the region's replication control endpoint; its JSON answer.
    async fn control(
        &self,
        verb: &str,
        action: &str,
        body: Option<String>,
    ) -> Result<Value, String> {
        let client = reqwest::Client::builder()
            .timeout(CONTROL_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let url = format!("{}/_emulator/replication/{action}", self.url());
        let req = match verb {
            "GET" => client.get(&url),
            _ => client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.unwrap_or_else(|| "{}".into())),
        };
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        let code = resp.status();
        let text = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
        if !code.is_success() {
            return Err(format!("{url}: {code}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{url}: {e}: {text}"))
    }
}

/// The emulator's credentials for SDK clients made in the test process itself.
pub fn use_emulator_credentials() {
    // SAFETY: every caller sets the same two values, before the clients it makes read
    // them; no thread reads the environment while it changes in a way that matters.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    }
}
