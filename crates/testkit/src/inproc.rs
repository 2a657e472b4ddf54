//! Real daemons in this process: the decision loop, policy, coordination and
//! actuator of the library, on in-memory stores with DynamoDB's semantics and
//! scripted probes ([`crate::MemoryBackend`]), with tokio's clock paused. No
//! emulator, no sleeps of real time, no log reading: tests assert on `Status`, the
//! stores and the metrics.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use failover_config::{self as config, Settings};
use failover_core::model::{AppState, AuditRecord, ConfigItem, Role};
use failover_daemon::Daemon;
use failover_daemon::control::{Handle, Status};
use failover_daemon::metrics::Metrics;

use crate::{Answer, MemoryBackend, Record};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The `appId` of the in-process tests' config item.
pub const APP: &str = "app-1";

/// One monitor instance running in this process.
pub struct Node {
    pub handle: Handle,
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Node {
    /// Starts a daemon for `settings` on `world` (its own `seed`: its process value
    /// and random choices).
    pub fn start(settings: Settings, world: &MemoryBackend, seed: u64) -> Self {
        let metrics = Arc::new(Metrics::new());
        let backend = Arc::new(world.instance(seed));
        let (daemon, handle) = Daemon::new(settings, backend, metrics.clone()).expect("daemon");
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(daemon.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Self {
            handle,
            metrics,
            stop,
            task,
        }
    }

    pub fn status(&self) -> Status {
        self.handle.status.borrow().clone()
    }

    /// Waits (in paused time) until the status satisfies `f`, at most `limit`.
    pub async fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        f: impl Fn(&Status) -> bool,
    ) -> Status {
        let mut rx = self.handle.status.clone();
        match tokio::time::timeout(limit, rx.wait_for(|s| f(s))).await {
            Ok(Ok(s)) => s.clone(),
            _ => panic!("{what}: not within {limit:?}; status: {:#?}", self.status()),
        }
    }

    /// The value of a metric series (the sum over its labels when `series` is a
    /// name with `{`), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Transitions this instance committed.
    pub fn transitions(&self) -> u64 {
        self.metric("failover_monitor_transitions_total{") as u64
    }

    /// Stops it cleanly (as SIGTERM does).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.expect("daemon task");
    }

    /// Kills it (as SIGKILL does): nothing of it runs any more, nothing is cleaned up.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// A monitor.toml for the in-process tests: quick probing (down after 3 failures
/// 100 ms apart), probes `p-api`, `p-table` (primary) and `s-api` (secondary).
/// `extra` goes into `[monitor]`, `tail` after the probes (more tables); `tables` is
/// `stack.tables`.
pub fn settings_in(instance: &str, extra: &str, tail: &str, tables: &str) -> Settings {
    let text = format!(
        r#"
[app]
id = "{APP}"
[regions.primary]
name = "us-east-1"
[regions.secondary]
name = "ap-northeast-1"
[monitor]
instance_id = "{instance}"
hold_down = "0s"
state_refresh = "500ms"
write_timeout = "1s"
{extra}
[probe_defaults]
interval = "100ms"
timeout = "80ms"
jitter = "10ms"
fall = 3
rise = 2
[[probes]]
name = "p-api"
kind = "http"
region = "primary"
url = "https://primary.invalid/state"
[[probes]]
name = "p-table"
kind = "dynamodb"
region = "primary"
[[probes]]
name = "s-api"
kind = "http"
region = "secondary"
url = "https://secondary.invalid/state"
[stack]
tables = "{tables}"
{tail}
"#
    );
    config::parse(&text, Vec::new()).expect("test config")
}

/// [`settings_in`] with one table per region.
pub fn settings_with(instance: &str, extra: &str, tail: &str) -> Settings {
    settings_in(instance, extra, tail, "per-region")
}

/// [`settings_with`] without extras.
pub fn settings(instance: &str, extra: &str) -> Settings {
    settings_with(instance, extra, "")
}

/// The `[coordination]` table of cooperating `instances`.
pub fn coordination(instances: &[&str], lease: &str) -> String {
    let list = instances
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[coordination]\ninstances = [{list}]\nlease = \"{lease}\"\nrenew_every = \"300ms\"\nview_ttl = \"1500ms\""
    )
}

/// Settings of one of several cooperating instances.
pub fn coordinated(instance: &str, instances: &[&str], lease: &str) -> Settings {
    settings_with(instance, "", &coordination(instances, lease))
}

/// Two regions with the config item seeded `active` at version 0.
pub fn world() -> MemoryBackend {
    let b = MemoryBackend::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        7,
    );
    b.seed_item(APP, &ConfigItem::seeded(AppState::Active));
    b
}

/// The primary's probes fail (one refused, one hanging).
pub fn primary_down(b: &MemoryBackend) {
    b.script
        .set("p-api", Answer::Fail("connection refused".into()));
    b.script.set("p-table", Answer::Hang);
}

/// The primary's probes pass again.
pub fn primary_up(b: &MemoryBackend) {
    b.script.set("p-api", Answer::Ok);
    b.script.set("p-table", Answer::Ok);
}

/// One region's audit records, oldest first.
pub fn audits(b: &MemoryBackend, role: Role) -> Vec<AuditRecord> {
    b.table(role)
        .dump()
        .into_iter()
        .filter_map(|(_, r)| match r {
            Record::Audit(a) => Some(a),
            _ => None,
        })
        .collect()
}

/// One region's config item.
pub fn item(b: &MemoryBackend, role: Role) -> Option<ConfigItem> {
    b.item(APP, role)
}
