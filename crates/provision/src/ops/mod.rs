//! The original stack's day-to-day operations, on the provisioned stack: upload a
//! tinted test photo ([`photo`]), list and add the comments of a photo
//! ([`comments`]), each going where the application's clients would go (the region
//! the config item points at) and saying which region and which path it used; and
//! deploy the web page to the website bucket or serve it locally ([`website`]).

pub mod comments;
pub mod photo;
pub mod png;
pub mod website;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::names::Names;
use crate::sdk::{Region, SdkResult};
use failover_config::Settings;
use failover_core::model::{AppState, Role};

/// A random RFC 4122 version 4 UUID.
pub fn uuid() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What an operation does in the region it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Writes follow the state and are refused while it is fenced.
    Write,
    /// Reads follow the state too, but a fenced state still serves them (from the
    /// primary).
    Read,
}

/// Where the clients would go now: the config item's region, refusing writes while
/// fenced (the page blocks them then). `--region` overrides.
pub async fn target(
    settings: &Settings,
    region: Option<Role>,
    access: Access,
) -> Result<(Role, Region)> {
    let role = match region {
        Some(role) => role,
        None => match state(settings).await? {
            AppState::Active => Role::Primary,
            AppState::Failover => Role::Secondary,
            AppState::Fenced if access == Access::Read => Role::Primary,
            AppState::Fenced => bail!(
                "the state is fenced: writes are blocked during a switch (pass --region to write anyway)"
            ),
        },
    };
    let (r, _) = Region::load(settings.regions.get(role)).await;
    Ok((role, r))
}

/// The state as the clients read it: the primary's item first, then the secondary's.
async fn state(settings: &Settings) -> Result<AppState> {
    let mut last = None;
    for role in Role::BOTH {
        let (r, _) = Region::load(settings.regions.get(role)).await;
        let item = r
            .ddb
            .get_item()
            .table_name(settings.config_table())
            .key("appId", AttributeValue::S(settings.app.id.clone()))
            .send()
            .await
            .sdk("dynamodb:GetItem");
        match item.map(|o| o.item) {
            Ok(Some(item)) => {
                return item
                    .get("state")
                    .and_then(|v| v.as_s().ok())
                    .context("the config item has no state")?
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{e}"));
            }
            Ok(None) => last = Some(format!("no config item in {role}")),
            Err(e) => last = Some(format!("{role}: {e:#}")),
        }
    }
    bail!(
        "cannot read the state from either region ({}); pass --region",
        last.unwrap_or_default()
    )
}

/// The photo bucket of a region.
pub fn bucket(settings: &Settings, role: Role) -> String {
    Names::new(&settings.app.project).bucket(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let a = uuid();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, uuid());
    }
}
