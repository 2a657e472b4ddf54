//! The command line of `provision`, `photo` and `comments` (feature `provision`).

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use failover_monitor::config::Settings;
use failover_monitor::model::Role;
use failover_monitor::{ops, provision};

pub fn is_usage_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<provision::UsageError>().is_some()
}

#[derive(Subcommand)]
pub enum ProvisionCommand {
    /// What apply would create, update or refuse (changes nothing).
    Plan,
    /// Create what is missing and bring back what drifted; a second apply changes nothing.
    Apply,
    /// Delete every resource the stack created (asks unless --yes).
    Destroy {
        #[arg(long)]
        yes: bool,
    },
    /// Print the stack's outputs as JSON and write uiConfig.json.
    Output {
        /// Where to write uiConfig.json.
        #[arg(long, default_value = "uiConfig.json")]
        ui_config: PathBuf,
    },
    /// Write a monitor.toml whose probes target the provisioned resources.
    MonitorConfig {
        /// The file to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the web page's uiConfig.json.
    UiConfig {
        #[arg(long, default_value = "uiConfig.json")]
        out: PathBuf,
    },
    /// Print the CloudFront URL of the website.
    CdnUrl,
}

#[derive(Subcommand)]
pub enum PhotoCommand {
    /// Upload a tinted test image (or --file) to public/<uuid> in the bucket the state points at.
    Upload {
        #[arg(long, value_enum)]
        region: Option<RegionArg>,
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum CommentsCommand {
    /// List a photo's comments (a random photo of the bucket when none is given).
    List {
        photo_id: Option<String>,
        #[arg(long, value_enum)]
        region: Option<RegionArg>,
    },
    /// Add a comment to a photo.
    Add {
        photo_id: Option<String>,
        #[arg(long, default_value = "ops")]
        user: String,
        #[arg(long)]
        message: String,
        #[arg(long, value_enum)]
        region: Option<RegionArg>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RegionArg {
    Primary,
    Secondary,
}

impl From<RegionArg> for Role {
    fn from(r: RegionArg) -> Self {
        match r {
            RegionArg::Primary => Role::Primary,
            RegionArg::Secondary => Role::Secondary,
        }
    }
}

pub async fn provision(
    command: ProvisionCommand,
    json: bool,
    config_path: &Path,
    settings: &Settings,
) -> anyhow::Result<()> {
    let cmd = match command {
        ProvisionCommand::Plan => provision::Command::Plan,
        ProvisionCommand::Apply => provision::Command::Apply,
        ProvisionCommand::Destroy { yes } => provision::Command::Destroy { yes },
        ProvisionCommand::Output { ui_config } => provision::Command::Output {
            ui_config: Some(ui_config),
        },
        ProvisionCommand::MonitorConfig { out } => provision::Command::MonitorConfig { out },
        ProvisionCommand::UiConfig { out } => provision::Command::UiConfig { out },
        ProvisionCommand::CdnUrl => provision::Command::CdnUrl,
    };
    provision::run(settings, config_path, cmd, json).await
}

pub async fn photo(command: PhotoCommand, settings: &Settings) -> anyhow::Result<()> {
    let PhotoCommand::Upload { region, file, json } = command;
    let up = ops::upload(settings, region.map(Role::from), file.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string(&up)?);
    } else {
        println!(
            "uploaded s3://{}/{} ({} bytes, tint {}) in the {} region; photo id {}",
            up.bucket, up.key, up.bytes, up.tint, up.region, up.photo_id
        );
    }
    Ok(())
}

pub async fn comments(
    command: CommentsCommand,
    json_out: bool,
    settings: &Settings,
) -> anyhow::Result<()> {
    let via_line = |via: &ops::Via| {
        let why = via
            .api_error
            .as_ref()
            .map(|e| format!(" (store API unavailable: {e})"))
            .unwrap_or_default();
        format!(
            "{} region, photo {}, via {}{why}",
            via.region, via.photo_id, via.path
        )
    };
    match command {
        CommentsCommand::List { photo_id, region } => {
            let (via, list) = ops::list(settings, region.map(Role::from), photo_id).await?;
            if json_out {
                println!("{}", json!({"via": via, "comments": list}));
            } else {
                println!("{}", via_line(&via));
                for c in &list {
                    println!("  {} {}: {}", c.comment_id, c.user, c.message);
                }
                println!("{} comment(s)", list.len());
            }
        }
        CommentsCommand::Add {
            photo_id,
            user,
            message,
            region,
        } => {
            let (via, c) =
                ops::add(settings, region.map(Role::from), photo_id, &user, &message).await?;
            if json_out {
                println!("{}", json!({"via": via, "comment": c}));
            } else {
                println!("added comment {} -- {}", c.comment_id, via_line(&via));
            }
        }
    }
    Ok(())
}
