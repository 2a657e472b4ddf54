//! Everything the daemon touches outside its own process, behind one seam: the
//! config tables of both regions, the coordination store, the DNS record, the
//! probes, the wall clock and the seed of its random choices.
//!
//! [`AwsBackend`] is the real one. `crate::memory::MemoryBackend` runs the whole
//! daemon in one test process on in-memory stores with DynamoDB's semantics and
//! scripted probes; the simulation builds its world on the same seam.

use std::sync::Arc;

use crate::action::{
    Actuator, Canaries, CanaryPair, DnsRecord, DynamoCanary, DynamoItemStore, Extras, ItemStore,
    Route53,
};
use crate::client_path::{AwsClientPath, ClientPath};
use crate::clock::{SystemClock, WallClock};
use crate::coord::{CoordStore, DynamoCoordStore};
use crate::gate::Gate;
use crate::probe::{self, HttpClient, Probe, Prober};
use crate::readiness::{CommitWritePart, ReadinessPart, StackNotChecked, TablesPart};
use failover_aws::RegionClients;
use failover_aws::dynamo::Table;
use failover_config::{ProbeSpec, Settings};
use failover_core::model::{Role, keys};

/// What the daemon is built from, besides its settings.
pub trait Backend: Send + Sync {
    /// One region's copy of the config table.
    fn config_table(&self, settings: &Settings, role: Role) -> Arc<dyn ItemStore>;

    /// The lease and views of cooperating instances (in the secondary region).
    fn coordination(&self, settings: &Settings) -> Arc<dyn CoordStore>;

    /// The DNS record that follows the state, when one is configured.
    fn dns(&self, settings: &Settings) -> Option<Arc<dyn DnsRecord>>;

    /// The check of one configured probe.
    fn probe(&self, spec: &ProbeSpec, settings: &Settings) -> Arc<dyn Probe>;

    /// This instance's replication canaries (config table and data table, in both
    /// regions).
    fn canaries(&self, settings: &Settings) -> Canaries;

    fn clock(&self) -> Arc<dyn WallClock>;

    /// The seed of the daemon's random choices (probe phases and jitter, nonces).
    fn seed(&self) -> u64;

    /// A value of this process alone: with the instance id it makes the lease owner,
    /// so that a restarted or duplicated process is another owner.
    fn process_id(&self) -> String;

    /// Where the daemon's tasks wait while the process is stopped (the simulation's
    /// SIGSTOP); open by default.
    fn gate(&self) -> Gate {
        Gate::open()
    }

    /// The application as its clients reach it (state APIs, store API, bucket), for
    /// recovery reports and drills; None: not watched.
    fn client_path(&self, settings: &Settings) -> Option<Arc<dyn ClientPath>> {
        let _ = settings;
        None
    }

    /// The RPO canary (`<app id>#rpo` in the config table of both regions): written
    /// in the primary by the acting instance, read in both; None: not measured.
    fn rpo_canary(&self, settings: &Settings) -> Option<CanaryPair> {
        let _ = settings;
        None
    }

    /// The parts of the secondary's readiness check (`crate::readiness`); none: the
    /// readiness is not checked.
    fn readiness(&self, settings: &Settings) -> Vec<Arc<dyn ReadinessPart>> {
        let _ = settings;
        Vec::new()
    }
}

/// How the binary supplies the stack's part of the readiness check (the daemon
/// never provisions, so the part that compares the stack with what `provision`
/// wants comes from above).
pub type StackPart = Arc<dyn Fn(&Settings) -> Arc<dyn ReadinessPart> + Send + Sync>;

/// The actuator of `settings` on `backend`.
pub fn actuator(backend: &dyn Backend, settings: &Settings, seed: u64) -> Actuator {
    Actuator::new(
        backend.config_table(settings, Role::Primary),
        backend.config_table(settings, Role::Secondary),
        Extras {
            dns: backend.dns(settings),
            canaries: backend.canaries(settings),
            clock: backend.clock(),
            tables: settings.tables_mode(),
        },
        seed,
    )
}

/// AWS through the SDK: clients per region built once (credentials, endpoints).
pub struct AwsBackend {
    regions: [RegionClients; 2],
    route53: Option<RegionClients>,
    http: HttpClient,
    process: String,
    /// The stack's part of the readiness check, when the binary supplies one.
    stack_part: Option<StackPart>,
}

impl AwsBackend {
    /// Loads credentials and builds the clients the daemon and the CLI need.
    pub async fn load(settings: &Settings) -> Self {
        let primary = RegionClients::load(&settings.regions.primary).await;
        let secondary = RegionClients::load(&settings.regions.secondary).await;
        let route53 = match &settings.route53 {
            Some(r) => Some(Route53::load(r).await),
            None => None,
        };
        let http = probe::http_client();
        let process = ecs_task_id(http.reqwest())
            .await
            .unwrap_or_else(|| format!("{:08x}", fastrand::u32(..)));
        Self {
            regions: [primary, secondary],
            route53,
            http,
            process,
            stack_part: None,
        }
    }

    /// With the stack's part of the readiness check (the binary's provisioning
    /// wing); without it the readiness says the stack was not checked.
    pub fn with_stack_readiness(mut self, part: StackPart) -> Self {
        self.stack_part = Some(part);
        self
    }

    /// The actuator alone, for the CLI's `state` commands.
    pub fn actuator(&self, settings: &Settings) -> Actuator {
        actuator(self, settings, self.seed())
    }

    fn table(&self, settings: &Settings, role: Role, name: String) -> Table {
        let limit = settings.monitor.write_timeout;
        Table::new(self.regions[role as usize].dynamodb(limit), name, limit)
    }
}

impl Backend for AwsBackend {
    fn config_table(&self, settings: &Settings, role: Role) -> Arc<dyn ItemStore> {
        Arc::new(DynamoItemStore::new(
            self.table(settings, role, settings.config_table()),
            settings.app.id.clone(),
            role,
        ))
    }

    fn coordination(&self, settings: &Settings) -> Arc<dyn CoordStore> {
        Arc::new(DynamoCoordStore::new(
            self.table(settings, Role::Secondary, settings.config_table()),
            settings.app.id.clone(),
        ))
    }

    fn dns(&self, settings: &Settings) -> Option<Arc<dyn DnsRecord>> {
        let (cfg, clients) = settings.route53.as_ref().zip(self.route53.as_ref())?;
        Some(Arc::new(Route53::new(
            clients,
            cfg.clone(),
            settings.monitor.write_timeout,
        )))
    }

    fn probe(&self, spec: &ProbeSpec, settings: &Settings) -> Arc<dyn Probe> {
        Arc::new(Prober::new(
            spec,
            settings,
            &self.regions[spec.region as usize],
            &self.http,
            &self.process,
        ))
    }

    fn canaries(&self, settings: &Settings) -> Canaries {
        let me = &settings.monitor.instance_id;
        let pair = |table: &'static str, name: String, attr: &'static str, key: String| {
            let store = |role| -> Arc<dyn crate::action::CanaryStore> {
                Arc::new(DynamoCanary::new(
                    self.table(settings, role, name.clone()),
                    attr,
                    key.clone(),
                    role,
                ))
            };
            CanaryPair {
                table,
                key: key.clone(),
                primary: store(Role::Primary),
                secondary: store(Role::Secondary),
            }
        };
        Canaries(vec![
            pair(
                "config",
                settings.config_table(),
                "appId",
                keys::canary(&settings.app.id, me),
            ),
            pair(
                "data",
                settings.store_table(),
                "commentId",
                keys::data_canary(&settings.app.id, me),
            ),
        ])
    }

    fn clock(&self) -> Arc<dyn WallClock> {
        Arc::new(SystemClock)
    }

    fn seed(&self) -> u64 {
        fastrand::u64(..)
    }

    fn process_id(&self) -> String {
        self.process.clone()
    }

    fn client_path(&self, settings: &Settings) -> Option<Arc<dyn ClientPath>> {
        Some(Arc::new(AwsClientPath::new(
            settings,
            self.regions.clone(),
            self.http.reqwest().clone(),
        )))
    }

    fn rpo_canary(&self, settings: &Settings) -> Option<CanaryPair> {
        let key = keys::rpo_canary(&settings.app.id);
        let store = |role| -> Arc<dyn crate::action::CanaryStore> {
            Arc::new(DynamoCanary::new(
                self.table(settings, role, settings.config_table()),
                "appId",
                key.clone(),
                role,
            ))
        };
        Some(CanaryPair {
            table: "config",
            key: key.clone(),
            primary: store(Role::Primary),
            secondary: store(Role::Secondary),
        })
    }

    fn readiness(&self, settings: &Settings) -> Vec<Arc<dyn ReadinessPart>> {
        let secondary = &self.regions[Role::Secondary as usize];
        let stack: Arc<dyn ReadinessPart> = match &self.stack_part {
            Some(make) => make(settings),
            None => Arc::new(StackNotChecked(
                "this build has no provisioning (built without the `provision` feature): \
                 the stack's drift and the REST APIs' stage are not compared"
                    .into(),
            )),
        };
        vec![
            stack,
            Arc::new(TablesPart::new(
                settings,
                secondary.dynamodb(settings.monitor.write_timeout),
            )),
            Arc::new(CommitWritePart::new(
                settings,
                self.table(settings, Role::Secondary, settings.config_table()),
                self.clock(),
            )),
        ]
    }
}

/// The task id on ECS (the last part of the task ARN, from the task metadata
/// endpoint in `ECS_CONTAINER_METADATA_URI_V4`), so the lease owner names the task.
async fn ecs_task_id(http: &reqwest::Client) -> Option<String> {
    let base = std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok()?;
    let answer = http
        .get(format!("{base}/task"))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let task: serde_json::Value = serde_json::from_str(&answer.text().await.ok()?).ok()?;
    let arn = task.get("TaskARN")?.as_str()?;
    Some(arn.rsplit('/').next()?.to_owned())
}
