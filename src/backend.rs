//! Everything the daemon touches outside its own process, behind one seam: the
//! config tables of both regions, the coordination store, the DNS record, the
//! probes, the wall clock and the seed of its random choices.
//!
//! [`AwsBackend`] is the real one. `crate::memory::MemoryBackend` runs the whole
//! daemon in one test process on in-memory stores with DynamoDB's semantics and
//! scripted probes; the simulation builds its world on the same seam.

use std::sync::Arc;

use crate::action::{Actuator, DnsRecord, DynamoItemStore, ItemStore, Route53};
use crate::aws::RegionClients;
use crate::aws::dynamo::Table;
use crate::clock::{SystemClock, WallClock};
use crate::config::{ProbeSpec, Settings};
use crate::coord::{CoordStore, DynamoCoordStore};
use crate::model::Role;
use crate::probe::{self, Probe, Prober};

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

    fn clock(&self) -> Arc<dyn WallClock>;

    /// The seed of the daemon's random choices (probe phases and jitter, nonces).
    fn seed(&self) -> u64;
}

/// AWS through the SDK: clients per region built once (credentials, endpoints).
pub struct AwsBackend {
    regions: [RegionClients; 2],
    route53: Option<RegionClients>,
    http: reqwest::Client,
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
        Self {
            regions: [primary, secondary],
            route53,
            http: probe::http_client(),
        }
    }

    /// The actuator alone, for the CLI's `state` commands.
    pub fn actuator(&self, settings: &Settings) -> Actuator {
        Actuator::new(
            self.config_table(settings, Role::Primary),
            self.config_table(settings, Role::Secondary),
            self.dns(settings),
            self.clock(),
            self.seed(),
        )
    }

    fn table(&self, settings: &Settings, role: Role) -> Table {
        let limit = settings.monitor.write_timeout;
        Table::new(
            self.regions[role as usize].dynamodb(limit),
            settings.config_table(),
            limit,
        )
    }
}

impl Backend for AwsBackend {
    fn config_table(&self, settings: &Settings, role: Role) -> Arc<dyn ItemStore> {
        Arc::new(DynamoItemStore::new(
            self.table(settings, role),
            settings.app.id.clone(),
            role,
        ))
    }

    fn coordination(&self, settings: &Settings) -> Arc<dyn CoordStore> {
        Arc::new(DynamoCoordStore::new(
            self.table(settings, Role::Secondary),
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
        ))
    }

    fn clock(&self) -> Arc<dyn WallClock> {
        Arc::new(SystemClock)
    }

    fn seed(&self) -> u64 {
        fastrand::u64(..)
    }
}
