//! `report [VERSION] [--json|--html]`: a transition's recovery report, read from
//! DynamoDB directly (the commit region, else the primary), printed as text, JSON or
//! one self-contained HTML page.

use anyhow::{Context, bail};

use crate::report_page;
use failover_config::Settings;
use failover_daemon::backend::AwsBackend;

/// How far below the item's version the newest report is looked for.
const NEWEST_DEPTH: u64 = 20;

pub async fn run(
    settings: &Settings,
    version: Option<u64>,
    json: bool,
    html: bool,
) -> anyhow::Result<()> {
    let actuator = AwsBackend::load(settings).await.actuator(settings);
    let report = match version {
        Some(v) => actuator
            .report(v)
            .await
            .context("reading the recovery report")?,
        None => {
            let item = actuator
                .current()
                .await
                .context("reading the config item from the commit region")?;
            actuator
                .newest_report(item.version, NEWEST_DEPTH)
                .await
                .context("reading the recovery reports")?
        }
    };
    let Some(report) = report else {
        match version {
            Some(v) => bail!("no recovery report of version {v}"),
            None => bail!("no recovery report among the last {NEWEST_DEPTH} versions"),
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if html {
        print!("{}", report_page::html(&report));
    } else {
        print!("{}", report_page::text(&report));
    }
    Ok(())
}
