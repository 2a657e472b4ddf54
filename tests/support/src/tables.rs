//! The config item and the audit records in the emulator's tables, read for assertions
//! the way the daemon reads them: through its actuator. This file is the one place the
//! tests reach into `failover_daemon::action` to read (`Tables::table`); when the
//! actuator's API changes, it is what to adapt.

use std::ops::RangeInclusive;
use std::time::Duration;

use std::sync::Arc;

use failover_config::Settings;
use failover_core::model::{AuditRecord, ConfigItem, Role};
use failover_daemon::action::{Actuator, ItemStore};
use failover_daemon::backend::{AwsBackend, Backend};
use failover_daemon::coord::CoordStore;
use tokio::time::Instant;

use crate::config::{FAST_MONITOR, PROBES_ALL_KINDS};
use crate::emulator::{Emulator, use_emulator_credentials};
use crate::poll;

/// Both regions' config tables.
pub struct Tables {
    actuator: Actuator,
    backend: AwsBackend,
    settings: Settings,
}

impl Emulator {
    /// This emulator's config tables, through an actuator of its own.
    pub async fn tables(&self) -> Tables {
        use_emulator_credentials();
        let text = self.config(&format!("{FAST_MONITOR}\n{PROBES_ALL_KINDS}"));
        let settings = failover_config::parse(&text, Vec::new()).expect("the test config is valid");
        let backend = AwsBackend::load(&settings).await;
        Tables {
            actuator: backend.actuator(&settings),
            backend,
            settings,
        }
    }
}

impl Tables {
    fn table(&self, role: Role) -> &dyn ItemStore {
        self.actuator.table(role)
    }

    /// The coordination store (lease, views) in the secondary's table.
    pub fn coordination(&self) -> Arc<dyn CoordStore> {
        self.backend.coordination(&self.settings)
    }

    /// The actuator itself, for the tests whose subject it is (leases, fencing).
    pub fn actuator(&self) -> &Actuator {
        &self.actuator
    }

    /// One region's config item; `Err` when unreadable or absent.
    pub async fn try_item(&self, role: Role) -> Result<ConfigItem, String> {
        match self.table(role).read().await {
            Ok(Some(item)) => Ok(item),
            Ok(None) => Err(format!("no config item in the {role} table")),
            Err(e) => Err(format!("the {role} item is unreadable: {e}")),
        }
    }

    /// The audit records of `versions` that exist in one region, newest first.
    pub async fn try_audits(
        &self,
        role: Role,
        versions: RangeInclusive<u64>,
    ) -> Result<Vec<AuditRecord>, String> {
        self.table(role)
            .audits(&versions.collect::<Vec<_>>(), true)
            .await
            .map_err(|e| format!("the {role} audit records are unreadable: {e}"))
    }

    /// Whether `instance`'s replication canary is in one region's config table.
    pub async fn canary(&self, role: Role, instance: &str) -> bool {
        let mut settings = self.settings.clone();
        settings.monitor.instance_id = instance.to_owned();
        let canaries = self.backend.canaries(&settings);
        let config = canaries
            .0
            .iter()
            .find(|c| c.table == "config")
            .expect("a config-table canary");
        let store = match role {
            Role::Primary => &config.primary,
            Role::Secondary => &config.secondary,
        };
        store
            .read()
            .await
            .unwrap_or_else(|e| panic!("the {role} canary is unreadable: {e}"))
            .is_some()
    }

    /// One region's config item; panics when unreadable or absent.
    pub async fn item(&self, role: Role) -> ConfigItem {
        self.try_item(role).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tables::try_audits`], panicking when unreadable.
    pub async fn audits(&self, role: Role, versions: RangeInclusive<u64>) -> Vec<AuditRecord> {
        self.try_audits(role, versions)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Polls one region's item until `pred` holds, for at most `limit`; returns it and
    /// how long that took, or what the item was last.
    pub async fn try_wait_item(
        &self,
        role: Role,
        limit: Duration,
        pred: impl Fn(&ConfigItem) -> bool,
    ) -> Result<(ConfigItem, Duration), String> {
        let start = Instant::now();
        poll(limit, async || match self.try_item(role).await {
            Ok(item) if pred(&item) => Ok((item, start.elapsed())),
            Ok(item) => Err(format!("{item:?}")),
            Err(e) => Err(e),
        })
        .await
    }

    /// [`Tables::try_wait_item`], panicking after `limit`.
    pub async fn wait_item(
        &self,
        role: Role,
        limit: Duration,
        pred: impl Fn(&ConfigItem) -> bool,
    ) -> (ConfigItem, Duration) {
        self.try_wait_item(role, limit, pred)
            .await
            .unwrap_or_else(|last| {
                panic!("the {role} item did not reach the expected state within {limit:?}: {last}")
            })
    }
}
