//! The client path on the in-memory regions: a region's state API answers what
//! its config table holds (`{state, version}`, as the provisioned mapping template
//! does), the store API writes into its data table, the bucket always works; each
//! can be made to fail by script (`client/<region>/state|store|photo`).

use async_trait::async_trait;

use crate::{Answer, MemTable, Record, Script};
use failover_core::model::Role;
use failover_daemon::client_path::{ClientPath, ClientState};

/// [`ClientPath`] on a [`crate::MemoryBackend`]'s tables.
pub struct MemClientPath {
    pub(crate) app_id: String,
    pub(crate) instance: String,
    pub(crate) tables: [MemTable; 2],
    pub(crate) data: [MemTable; 2],
    pub(crate) script: Script,
}

/// The script name of one part of a region's client path.
pub fn client_part(region: Role, part: &str) -> String {
    format!("client/{region}/{part}")
}

impl MemClientPath {
    async fn scripted(&self, region: Role, part: &str) -> Result<(), String> {
        match self.script.get(&self.instance, &client_part(region, part)) {
            Answer::Ok => Ok(()),
            Answer::Fail(why) | Answer::Denied(why) => Err(why),
            Answer::Hang => std::future::pending().await,
        }
    }
}

#[async_trait]
impl ClientPath for MemClientPath {
    fn reads(&self, _region: Role) -> bool {
        true
    }

    fn writes(&self, _region: Role) -> bool {
        true
    }

    async fn state(&self, region: Role) -> Result<ClientState, String> {
        self.scripted(region, "state").await?;
        let table = &self.tables[region as usize];
        if table.is_down() {
            return Err("the region does not answer".into());
        }
        match table.get(&self.app_id) {
            Some(Record::Item(i)) => Ok(ClientState {
                state: i.state,
                version: Some(i.version),
            }),
            _ => Err("the answer has no state (no config item?)".into()),
        }
    }

    async fn write(&self, region: Role, comment_id: &str, nonce: &str) -> Result<(), String> {
        self.scripted(region, "store").await?;
        let table = &self.data[region as usize];
        if table.is_down() || self.tables[region as usize].is_down() {
            return Err("the region does not answer".into());
        }
        let key = format!("comment#{comment_id}");
        table.put(&key, Record::Canary(nonce.to_owned()));
        match table.get(&key) {
            Some(Record::Canary(n)) if n == nonce => Ok(()),
            _ => Err("the comment written does not read back".into()),
        }
    }

    async fn photo(&self, region: Role, _key: &str) -> Result<(), String> {
        self.scripted(region, "photo").await?;
        if self.tables[region as usize].is_down() {
            return Err("the region does not answer".into());
        }
        Ok(())
    }
}
