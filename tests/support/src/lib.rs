//! What failover-monitor's integration tests (`tests/*.rs`) share, one module per
//! concern:
//!
//! - [`emulator`]: the two-region AWS emulator, a moto server per region on a free
//!   loopback port (killing one is a region outage), seeded like the demo.
//! - [`config`]: monitor.toml texts for that emulator: quick probing, every probe
//!   kind, cooperating instances.
//! - [`monitor`]: `failover-monitor` processes (always with an admin token), their
//!   signals, exit codes and JSON log, and the CLI.
//! - [`admin`]: what a running daemon exposes, as the tests observe it: `/v1/status`,
//!   `/metrics`, `/readyz`, every request with the admin token.
//! - [`inproc`]: real daemons in the test's own process, on in-memory stores with
//!   DynamoDB's semantics, scripted probes and paused time.
//! - [`tables`]: the config item and audit records in the emulator's tables, the one
//!   place the tests read them through the daemon's actuator.
//! - [`proxy`]: a TCP proxy per monitor instance, to cut one instance's way to a region.
//! - [`ecs`]: ECS's task metadata endpoint, so that monitor processes run as tasks
//!   (their process value is the task id, as on ECS).
//! - [`runner`]: the randomized suites' runner: trial count and seed from the
//!   environment, one line per trial, the closing `N passed, M failed` line.
//!
//! Tests wait on what the daemon exposes (status, metrics, the tables), never on the
//! wording of its log. Everything a helper starts is stopped, and every file it writes
//! removed, on drop.
//!
//! A crate rather than a module compiled into every test binary: each binary uses a
//! different part, and in a crate the public items are an API instead of dead code, so
//! nothing needs `allow(dead_code)`. What the compiler cannot see, a public helper no
//! test uses any more, the test at the end of this file finds.

use std::fmt::Display;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub mod admin;
pub mod config;
pub mod ecs;
pub mod emulator;
pub mod iam;
pub mod monitor;
pub mod proxy;
pub mod runner;
pub mod tables;

/// The `appId` of the config item the emulator is seeded with.
pub const APP_ID: &str = "test-app";
/// The project prefix of every resource name.
pub const PROJECT: &str = "photos";

/// How often waits look again.
const POLL: Duration = Duration::from_millis(50);

/// The repository (for `deploy/local/`, `.venv`).
fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
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
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Calls `check` until it gives `Ok`, for at most `limit`; `Err` says what it saw last.
pub async fn poll<T>(
    limit: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> Result<T, String> {
    let until = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() >= until => return Err(last),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// [`poll`], panicking after `limit` with `what` and what `check` saw last.
pub async fn wait_for<T>(
    limit: Duration,
    what: impl Display,
    check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    poll(limit, check)
        .await
        .unwrap_or_else(|last| panic!("{what}: not within {limit:?}; last seen: {last}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Identifiers declared `pub` in `text` (items, methods, fields).
    fn public_names(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("pub ") else {
                continue;
            };
            let rest = ["async fn ", "fn ", "const ", "struct ", "enum ", "static "]
                .iter()
                .find_map(|k| rest.strip_prefix(k))
                .unwrap_or(rest);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != "mod" && name != "use" {
                names.push(name);
            }
        }
        names
    }

    /// Whether `name` occurs in `text` as a whole identifier.
    fn mentions(text: &str, name: &str) -> bool {
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        text.match_indices(name).any(|(i, _)| {
            !text[..i].chars().next_back().is_some_and(ident)
                && !text[i + name.len()..].chars().next().is_some_and(ident)
        })
    }

    fn rust_files(dir: &Path) -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("readable directory")
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("readable source");
                (p.display().to_string(), text)
            })
            .collect();
        files.sort();
        files
    }

    /// A public helper no test uses is dead code the compiler cannot report (a crate's
    /// public items are its API): find it by name in the test binaries.
    #[test]
    fn every_public_helper_is_used_by_a_test_binary() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let tests: String = rust_files(&here.join(".."))
            .into_iter()
            .map(|(_, text)| text)
            .collect();
        assert!(
            mentions(&tests, "Emulator"),
            "the test binaries were not found"
        );
        let sources: Vec<(String, String)> = rust_files(&here.join("src"))
            .into_iter()
            .map(|(path, text)| {
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                (path, code.to_owned())
            })
            .collect();
        // A type the tests get from a helper without naming it counts as used.
        let returned = |name: &str| {
            let arrow = format!("-> {name} ");
            sources.iter().any(|(_, code)| code.contains(&arrow))
        };
        let mut unused = Vec::new();
        for (path, code) in &sources {
            for name in public_names(code) {
                if !mentions(&tests, &name) && !returned(&name) {
                    unused.push(format!("{path}: {name}"));
                }
            }
        }
        assert!(
            unused.is_empty(),
            "public helpers no test uses (delete them, or make them private):\n{}",
            unused.join("\n")
        );
    }

    #[test]
    fn public_names_and_mentions() {
        let src = "pub struct A {\n    pub b: u8,\n}\nimpl A {\n    pub async fn c() {}\n    fn d() {}\n    pub(crate) fn e() {}\n}\npub const F: u8 = 1;\n";
        assert_eq!(public_names(src), ["A", "b", "c", "F"]);
        assert!(mentions("x.c().await", "c"));
        assert!(!mentions("abc()", "c"));
        assert!(!mentions("c_d", "c"));
    }
}
