//! The command line of `provision`, `photo` and `comments`: the clap subcommands
//! `main.rs` embeds, and the glue from each to the engine, the outputs or the
//! operations. These functions are the wing's entry points.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use tokio::time::Instant;

use crate::context::StackContext;
use crate::ops::{self, comments, website};
use crate::outputs;
use crate::report::Reporter;
use crate::resources;
use crate::stack::Stack;
use failover_config::Settings;
use failover_core::model::Role;
use failover_provision_engine::{self as engine, Action};

/// A command used the wrong way (exit 2), as opposed to a failure while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn is_usage_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<UsageError>().is_some()
}

#[derive(Debug, Clone, Subcommand)]
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
    /// Upload the web page (built into this binary) and uiConfig.json to the website
    /// bucket under console/.
    WebsiteDeploy,
    /// Serve the website bucket's console/ on a loopback port, standing in for
    /// CloudFront (read from the bucket on each request). Ctrl-C stops it.
    WebsiteLocal {
        /// The port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
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

/// Runs one `provision` subcommand; `source` is the config file it was read from.
pub async fn provision(
    command: ProvisionCommand,
    json: bool,
    source: &Path,
    settings: &Settings,
) -> Result<()> {
    let stack = Stack::from_settings(settings)?;
    let reporter = Reporter { json };
    if let ProvisionCommand::Destroy { yes: false } = command {
        confirm_destroy(&stack)?;
    }
    let all = resources::list(&stack);
    let context = StackContext::connect(stack).await;
    match command {
        ProvisionCommand::Plan => {
            let plan = engine::plan(&context, all, false).await?;
            reporter.plan(&plan, false);
        }
        ProvisionCommand::Apply => {
            let t = Instant::now();
            let summary = engine::apply(&context, all, &reporter).await?;
            reporter.finish("apply", &summary, t);
        }
        ProvisionCommand::Destroy { .. } => {
            let t = Instant::now();
            let summary = engine::destroy(&context, all, &reporter).await?;
            reporter.finish("destroy", &summary, t);
        }
        ProvisionCommand::WebsiteLocal { port } => website_local(&context, port).await?,
        other => write_outputs(&context, other, source, json).await?,
    }
    Ok(())
}

/// `provision website-local`: serves until Ctrl-C.
async fn website_local(context: &StackContext, port: u16) -> Result<()> {
    let bucket = context.names().website_bucket();
    let s3 = context.region(Role::Primary).s3.clone();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("listening on 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    if !website::deployed(&s3, &bucket).await? {
        eprintln!(
            "note: s3://{bucket}/{} holds no page yet: run `failover-monitor provision website-deploy`",
            website::PREFIX
        );
    }
    println!(
        "serving s3://{bucket}/{} at http://{addr}/ (standing in for CloudFront: each request \
         reads the bucket, so a new website-deploy shows at once); Ctrl-C stops",
        website::PREFIX
    );
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    website::serve(listener, s3, bucket, stop)
        .await
        .context("serving the website")?;
    println!("stopped");
    Ok(())
}

/// The subcommands that read the stack and write what it gives its users.
async fn write_outputs(
    context: &StackContext,
    command: ProvisionCommand,
    source: &Path,
    json: bool,
) -> Result<()> {
    let missing = read_outputs(context).await?;
    match command {
        ProvisionCommand::Output { ui_config } => {
            let out = outputs::outputs(context, &missing);
            println!("{}", serde_json::to_string_pretty(&out)?);
            write_ui_config(context, &ui_config)?;
            eprintln!("wrote {}", ui_config.display());
        }
        ProvisionCommand::UiConfig { out } => {
            write_ui_config(context, &out)?;
            println!("wrote {}", out.display());
        }
        ProvisionCommand::CdnUrl => match outputs::cdn_url(context) {
            Some(url) => println!("{url}"),
            None => bail!("no CloudFront distribution: run `provision apply` first"),
        },
        ProvisionCommand::WebsiteDeploy => {
            complete(&missing)?;
            let ui = ui_config_text(context)?;
            let bucket = context.names().website_bucket();
            let done = website::deploy(&context.region(Role::Primary).s3, &bucket, &ui).await?;
            if json {
                println!("{}", serde_json::to_string(&done)?);
            } else {
                for o in &done.objects {
                    println!(
                        "put s3://{bucket}/{} ({} bytes, {}, Cache-Control: {})",
                        o.key, o.bytes, o.content_type, o.cache_control
                    );
                }
                for folder in &done.removed {
                    println!("removed s3://{bucket}/{folder} (an older page)");
                }
                println!(
                    "deployed the page (version {}) to s3://{bucket}/{}; {}",
                    done.version,
                    website::PREFIX,
                    match outputs::cdn_url(context) {
                        Some(url) if context.region(Role::Primary).endpoint.is_none() =>
                            format!("served at {url}"),
                        _ => "serve it with `failover-monitor provision website-local`".into(),
                    }
                );
            }
        }
        ProvisionCommand::MonitorConfig { out } => {
            complete(&missing)?;
            let text = outputs::monitor_toml(context, &source.display().to_string())?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
        }
        ProvisionCommand::Plan
        | ProvisionCommand::Apply
        | ProvisionCommand::Destroy { .. }
        | ProvisionCommand::WebsiteLocal { .. } => {}
    }
    Ok(())
}

/// Refuses to write outputs for a stack that `apply` has not completed.
fn complete(missing: &[String]) -> Result<()> {
    match missing.first() {
        Some(first) => bail!(
            "the stack is not complete ({} missing, e.g. {first}): run `provision apply` first",
            missing.len(),
        ),
        None => Ok(()),
    }
}

/// Observes the stack without changing it, so that the context learns its facts:
/// what is missing.
async fn read_outputs(context: &StackContext) -> Result<Vec<String>> {
    let plan = engine::plan(context, resources::list(&context.stack), false).await?;
    Ok(plan
        .steps
        .iter()
        .filter(|s| !matches!(s.action, Action::Keep))
        .map(|s| s.resource.to_string())
        .collect())
}

fn ui_config_text(context: &StackContext) -> Result<String> {
    Ok(serde_json::to_string_pretty(&outputs::ui_config(context))? + "\n")
}

fn write_ui_config(context: &StackContext, path: &Path) -> Result<()> {
    let text = ui_config_text(context)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn confirm_destroy(stack: &Stack) -> Result<()> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "destroy deletes every resource of the stack and needs --yes when not run from a terminal".into(),
        )
        .into());
    }
    eprint!(
        "This deletes every resource of stack {:?} in {} and {} (photos and comments with them).\n\
         Type the project name to confirm: ",
        stack.project(),
        stack.region_name(Role::Primary),
        stack.region_name(Role::Secondary)
    );
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != stack.project() {
        return Err(UsageError("not confirmed; nothing was deleted".into()).into());
    }
    Ok(())
}

pub async fn photo(command: PhotoCommand, settings: &Settings) -> Result<()> {
    let PhotoCommand::Upload { region, file, json } = command;
    let up = ops::photo::upload(settings, region.map(Role::from), file.as_deref()).await?;
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

pub async fn comments(command: CommentsCommand, json_out: bool, settings: &Settings) -> Result<()> {
    match command {
        CommentsCommand::List { photo_id, region } => {
            let (via, list) = comments::list(settings, region.map(Role::from), photo_id).await?;
            if json_out {
                println!("{}", json!({"via": via, "comments": list}));
            } else {
                println!("{via}");
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
            let region = region.map(Role::from);
            let (via, c) = comments::add(settings, region, photo_id, &user, &message).await?;
            if json_out {
                println!("{}", json!({"via": via, "comment": c}));
            } else {
                println!("added comment {} -- {via}", c.comment_id);
            }
        }
    }
    Ok(())
}
