//! The `failover-monitor` command line. Thin: parses arguments, loads the config and
//! hands over to the library. Exit codes: 0 ok, 1 runtime failure, 2 usage or config.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use failover_monitor::action::{Outcome, Transition};
use failover_monitor::app;
use failover_monitor::config::{self, Settings};
use failover_monitor::model::{AppState, Role, Trigger};

#[derive(Parser)]
#[command(
    name = "failover-monitor",
    version,
    about = "Decides when a two-region AWS application fails over, and flips it"
)]
struct Cli {
    /// The config file.
    #[arg(long, global = true, default_value = "monitor.toml")]
    config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: probe, decide, act.
    Run,
    /// Validate the config and exit (2 with the reason when it is wrong).
    CheckConfig,
    /// Read or change the config item by hand (audited, versioned).
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// Print both regions' copies of the config item.
    Get {
        #[arg(long)]
        json: bool,
    },
    /// Move the state to the given value.
    Set {
        state: StateArg,
        #[arg(long, default_value = "set by hand")]
        reason: String,
    },
    /// Toggle active <-> failover.
    Switch {
        #[arg(long, default_value = "switched by hand")]
        reason: String,
    },
    /// Print the audit records, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    Active,
    Fenced,
    Failover,
}

impl From<StateArg> for AppState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Active => AppState::Active,
            StateArg::Fenced => AppState::Fenced,
            StateArg::Failover => AppState::Failover,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let settings = match config::load(&cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("failover-monitor: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig = cli.command {
        let primary = settings
            .probes
            .iter()
            .filter(|p| p.region == Role::Primary)
            .count();
        println!(
            "{}: ok ({} probes: {} primary, {} secondary; mode {}, failover when {})",
            cli.config.display(),
            settings.probes.len(),
            primary,
            settings.probes.len() - primary,
            settings.monitor.mode.as_str(),
            settings.policy.failover_when,
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("failover-monitor: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(execute(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover-monitor: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn execute(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Run => app::run(settings, shutdown_signal()).await,
        Command::CheckConfig => Ok(()),
        Command::State { command } => state(command, settings).await,
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing and exiting"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing and exiting"),
    }
}

fn operator() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

async fn state(command: StateCommand, settings: Settings) -> anyhow::Result<()> {
    let actuator = app::actuator(&settings).await;
    let (to, reason) = match command {
        StateCommand::Get { json } => {
            let report = actuator.sync().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for (role, read) in [
                    (Role::Primary, &report.primary),
                    (Role::Secondary, &report.secondary),
                ] {
                    match read {
                        Ok(Some(i)) => println!(
                            "{role:<9} {:<8} version {:<4} updated {} by {}",
                            i.state,
                            i.version,
                            i.updated_at.as_deref().unwrap_or("-"),
                            i.updated_by.as_deref().unwrap_or("-")
                        ),
                        Ok(None) => println!("{role:<9} (no config item)"),
                        Err(e) => println!("{role:<9} unreadable: {e}"),
                    }
                }
                if report.action != failover_monitor::action::SyncAction::None {
                    println!("sync: {}", serde_json::to_string(&report.action)?);
                }
            }
            if report.newest().is_none() {
                bail!("no region returned the config item");
            }
            return Ok(());
        }
        StateCommand::History { limit, json } => {
            let records = actuator
                .history(limit)
                .await
                .context("reading the audit records")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                for r in records {
                    println!(
                        "v{:<4} {}  {:>8} -> {:<8} {:<6} by {}: {}{}",
                        r.version,
                        r.at,
                        r.from,
                        r.to,
                        r.trigger.as_str(),
                        r.by,
                        r.reason,
                        if r.forced { " (forced)" } else { "" }
                    );
                }
            }
            return Ok(());
        }
        StateCommand::Set { state, reason } => (Some(AppState::from(state)), reason),
        StateCommand::Switch { reason } => (None, reason),
    };
    let current = app::current_item(&actuator).await?;
    let to = match to {
        Some(to) => to,
        None => match current.state {
            AppState::Active => AppState::Failover,
            AppState::Failover => AppState::Active,
            AppState::Fenced => {
                bail!("the state is fenced: say which state comes next with `state set`")
            }
        },
    };
    if current.state == to {
        bail!(
            "the state is already {to} (version {}): nothing to do",
            current.version
        );
    }
    let t = Transition {
        from: current.state,
        to,
        expected_version: current.version,
        reason,
        evidence: json!({ "source": "cli" }),
        trigger: Trigger::Manual,
        by: operator(),
        forced: false,
    };
    match actuator.transition(&t).await? {
        Outcome::Committed { item, primary, .. } => {
            println!(
                "{} -> {} (version {}) committed in the secondary",
                t.from, t.to, item.version
            );
            match primary {
                Ok(()) => println!("primary updated"),
                Err(e) => {
                    println!("primary not updated yet ({e}); a running monitor will catch it up")
                }
            }
            Ok(())
        }
        Outcome::LostRace { current } => bail!(
            "lost the race: the item changed meanwhile (now {}); nothing was written",
            current.map_or("unknown".into(), |i| format!(
                "{} version {}",
                i.state, i.version
            ))
        ),
    }
}
