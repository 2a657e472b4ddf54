//! The two-region AWS emulator: one process per region on its own loopback port
//! (moto server with the execution layer of the REST APIs provisioned into it,
//! `deploy/local/region`), so that killing one is a region outage and suspending one
//! a region that hangs. Seeded by `deploy/local/seed.py`, like the local demo.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use failover_core::model::Role;

use crate::{APP_ID, PROJECT, TempDir, free_port, repo};

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
    /// Starts a moto server for `role` on `port`, its output in `dir`, with extra
    /// environment variables for it (moto's own switches).
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
    _dir: TempDir,
}

impl Emulator {
    /// Starts both regions and seeds them (config item `active`, without a version).
    pub fn start() -> Self {
        let emu = Self::start_empty();
        emu.seed(Role::Primary);
        emu.seed(Role::Secondary);
        emu
    }

    /// Starts both regions with nothing in them (for `provision`).
    pub fn start_empty() -> Self {
        let dir = TempDir::new("emulator");
        let primary = Region::start_with(Role::Primary, "us-east-1", free_port(), &dir.0, &[]);
        let secondary =
            Region::start_with(Role::Secondary, "ap-northeast-1", free_port(), &dir.0, &[]);
        Self {
            primary,
            secondary,
            _dir: dir,
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
