//! The `failover-monitor` command line. Thin: parses arguments, loads the config and
//! hands over to the library. Exit codes: 0 ok, 1 runtime failure, 2 usage or config.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

#[cfg(feature = "provision")]
use failover_monitor::provision::command as stack_cli;
#[cfg(not(feature = "provision"))]
mod stack_cli {
    /// Without provisioning there is no usage error of its own.
    pub fn is_usage_error(_: &anyhow::Error) -> bool {
        false
    }
}
use serde_json::json;

use failover_monitor::action::{
    HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, Outcome, PrimaryCopy, Transition,
};
use failover_monitor::app;
use failover_monitor::backend::AwsBackend;
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
    /// Replay recorded probe results (monitor.record_observations) through this
    /// config's policy and print the transitions it would have made.
    Backtest {
        /// The JSONL trace.
        #[arg(long)]
        trace: PathBuf,
        /// The state the item had when the trace began.
        #[arg(long, value_enum, default_value_t = StateArg::Active)]
        initial: StateArg,
        #[arg(long)]
        json: bool,
    },
    /// Create, inspect or destroy the whole two-region stack.
    #[cfg(feature = "provision")]
    Provision {
        /// JSON lines instead of text (one object per resource, then a summary).
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: stack_cli::ProvisionCommand,
    },
    /// Photos of the stack (the original `make upload`).
    #[cfg(feature = "provision")]
    Photo {
        #[command(subcommand)]
        command: stack_cli::PhotoCommand,
    },
    /// Comments of a photo (the original `make get-comment` / `add-comment`), through
    /// the store API when it answers, else on the table directly.
    #[cfg(feature = "provision")]
    Comments {
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: stack_cli::CommentsCommand,
    },
    /// Talk to a running daemon's admin API.
    Admin {
        /// Base URL of the admin API (default: http://<admin.listen>).
        #[arg(long)]
        url: Option<String>,
        /// File holding the admin token, sent by every command but `health`
        /// (FAILOVER_MONITOR_ADMIN_TOKEN wins over it; default: admin.token_file).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// File holding the read-only token, sent by `status` and `history` in place of
        /// the admin token (FAILOVER_MONITOR_ADMIN_READ_TOKEN wins over it; default:
        /// admin.read_token_file).
        #[arg(long)]
        read_token_file: Option<PathBuf>,
        /// Print the daemon's JSON answer as is.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Liveness (GET /healthz): exit 0 when the daemon answers; for container health checks.
    Health,
    /// State, mode, probes, and what the policy would do.
    Status,
    /// Audit records, newest first, one page at a time.
    History {
        /// Records per page (1 to 50).
        #[arg(long, default_value_t = HISTORY_DEFAULT_LIMIT, value_parser = parse_limit)]
        limit: usize,
        /// Only records with a version below this one (the previous page's next_before).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        before: Option<u64>,
    },
    /// Move to failover (refused if the secondary fails its probes, unless --force).
    Failover(MoveArgs),
    /// Move back to active (refused if the primary fails its probes, unless --force).
    Failback(MoveArgs),
    /// Move to fenced (writes blocked).
    Fence(MoveArgs),
    /// Stop automatic transitions; probing goes on.
    Pause {
        #[arg(long)]
        reason: Option<String>,
    },
    /// Restart automatic transitions.
    Resume {
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(clap::Args)]
struct MoveArgs {
    /// Why (recorded in the audit record).
    #[arg(long)]
    reason: String,
    /// Override the safety rules (audited as forced).
    #[arg(long)]
    force: bool,
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
    /// Print the audit records, newest first, one page at a time.
    History {
        /// Records per page (1 to 50).
        #[arg(long, default_value_t = HISTORY_DEFAULT_LIMIT, value_parser = parse_limit)]
        limit: usize,
        /// Only records with a version below this one (the previous page's last version).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        before: Option<u64>,
        /// The records as a JSON array (the next page's `--before` goes to stderr).
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

/// `--limit` of the history commands: 1 to 50 records per page.
fn parse_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=HISTORY_MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from 1 to {HISTORY_MAX_LIMIT}"
        )),
    }
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
        if settings.probes.is_empty() {
            println!(
                "{}: ok for `provision`; no probes, so `run` would refuse it \
                 (`provision monitor-config` writes them)",
                cli.config.display()
            );
            return ExitCode::SUCCESS;
        }
        // Exactly what `run` refuses before it starts (the admin token included).
        if let Err(e) = config::for_run_with_env(settings.clone(), std::env::vars()) {
            eprintln!("failover-monitor: invalid config: {e}");
            return ExitCode::from(2);
        }
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
    match runtime.block_on(execute(cli.command, cli.config, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if stack_cli::is_usage_error(&e) => {
            eprintln!("failover-monitor: {e:#}");
            ExitCode::from(2)
        }
        Err(e) if e.downcast_ref::<config::ConfigError>().is_some() => {
            eprintln!("failover-monitor: invalid config: {e:#}");
            ExitCode::from(2)
        }
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

async fn execute(command: Command, config_path: PathBuf, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Run => app::run(config_path, settings).await,
        Command::CheckConfig => Ok(()),
        Command::State { command } => state(command, settings).await,
        Command::Backtest {
            trace,
            initial,
            json,
        } => backtest(&settings, &trace, initial.into(), json),
        #[cfg(feature = "provision")]
        Command::Provision { json, command } => {
            stack_cli::provision(command, json, &config_path, &settings).await
        }
        #[cfg(feature = "provision")]
        Command::Photo { command } => stack_cli::photo(command, &settings).await,
        #[cfg(feature = "provision")]
        Command::Comments { json, command } => stack_cli::comments(command, json, &settings).await,
        Command::Admin {
            url,
            token_file,
            read_token_file,
            json,
            command,
        } => admin(command, url, (token_file, read_token_file), json, settings).await,
    }
}

fn backtest(
    settings: &Settings,
    trace: &std::path::Path,
    initial: AppState,
    json_out: bool,
) -> anyhow::Result<()> {
    use failover_monitor::backtest;
    let records = backtest::read_trace(trace)?;
    let report = backtest::replay(settings, &records, initial);
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} probe results over {:.1} s, replayed from {initial} with fall/rise, region rule, hold_down, fence and failback of this config (mode taken as auto)",
        report.records,
        report.duration_ms as f64 / 1000.0
    );
    for (name, n) in &report.unknown_probes {
        println!("  ignored {n} results of probe {name:?}, which this config does not have");
    }
    for t in &report.transitions {
        println!(
            "  {}  +{:>8.1} s  {} -> {}  ({})",
            t.at,
            t.t_ms as f64 / 1000.0,
            t.from,
            t.to,
            t.reason
        );
    }
    println!("{} transition(s)", report.transitions.len());
    Ok(())
}

async fn admin(
    command: AdminCommand,
    url: Option<String>,
    (token_file, read_token_file): (Option<PathBuf>, Option<PathBuf>),
    json_out: bool,
    mut settings: Settings,
) -> anyhow::Result<()> {
    use failover_monitor::admin::auth::TokenKind;
    use failover_monitor::admin::{auth, client};
    if token_file.is_some() {
        settings.admin.token_file = token_file;
    }
    if read_token_file.is_some() {
        settings.admin.read_token_file = read_token_file;
    }
    let load = |kind: TokenKind| auth::load_kind(kind, &settings, std::env::var(kind.env()).ok());
    // Reads send the read-only token when there is one (the least the call needs),
    // else the admin token; the moves need the admin token; health needs none.
    let (token, hint) = match command {
        AdminCommand::Health => (None, None),
        AdminCommand::Status | AdminCommand::History { .. } => {
            let token = match load(TokenKind::Read)? {
                Some(t) => Some(t),
                None => load(TokenKind::Admin)?,
            };
            (token, Some(client::READ_HINT))
        }
        _ => (load(TokenKind::Admin)?, Some(client::ADMIN_HINT)),
    };
    let base = url.unwrap_or_else(|| client::base_url(settings.admin.listen));
    let c = client::Client::new(base, token);
    let caller = operator().trim_start_matches("cli:").to_owned();
    let (answer, render): (_, fn(&serde_json::Value) -> String) = match command {
        AdminCommand::Health => (c.get("/healthz").await?, |b| {
            b["status"].as_str().unwrap_or("?").to_string()
        }),
        AdminCommand::Status => (c.get("/v1/status").await?, client::render_status),
        AdminCommand::History { limit, before } => (
            c.get(&client::history_path(limit, before)).await?,
            client::render_history,
        ),
        AdminCommand::Failover(m) => (
            c.post(
                "/v1/failover",
                client::move_body(&m.reason, m.force, &caller),
            )
            .await?,
            client::render_move,
        ),
        AdminCommand::Failback(m) => (
            c.post(
                "/v1/failback",
                client::move_body(&m.reason, m.force, &caller),
            )
            .await?,
            client::render_move,
        ),
        AdminCommand::Fence(m) => (
            c.post("/v1/fence", client::move_body(&m.reason, m.force, &caller))
                .await?,
            client::render_move,
        ),
        AdminCommand::Pause { reason } | AdminCommand::Resume { reason }
            if reason.as_deref() == Some("") =>
        {
            bail!("--reason must not be empty")
        }
        AdminCommand::Pause { reason } => (
            c.post("/v1/pause", json!({"reason": reason, "caller": caller}))
                .await?,
            |b| format!("paused (was paused: {})", b["was_paused"]),
        ),
        AdminCommand::Resume { reason } => (
            c.post("/v1/resume", json!({"reason": reason, "caller": caller}))
                .await?,
            |b| format!("resumed (was paused: {})", b["was_paused"]),
        ),
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
        return client::check(&answer, hint);
    }
    client::check(&answer, hint)?;
    let out = render(&answer.body);
    println!("{}", out.trim_end());
    Ok(())
}

fn operator() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

async fn state(command: StateCommand, settings: Settings) -> anyhow::Result<()> {
    let actuator = AwsBackend::load(&settings).await.actuator(&settings);
    let (to, reason) = match command {
        StateCommand::Get { json } => {
            let report = actuator.sync(false).await;
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
        StateCommand::History {
            limit,
            before,
            json,
        } => {
            let page = actuator
                .history(limit, before)
                .await
                .context("reading the audit records")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page.records)?);
                if let Some(next) = page.next_before {
                    eprintln!("older records: --before {next}");
                }
            } else {
                for r in page.records {
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
                if let Some(next) = page.next_before {
                    println!("older records: --before {next}");
                }
            }
            return Ok(());
        }
        StateCommand::Set { state, reason } => (Some(AppState::from(state)), reason),
        StateCommand::Switch { reason } => (None, reason),
    };
    let current = actuator
        .current()
        .await
        .context("reading the config item from the secondary region (the commit point)")?;
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
        fence: None,
    };
    match actuator.transition(&t).await? {
        Outcome::Committed { item, primary, .. } => {
            println!(
                "{} -> {} (version {}) committed in the secondary",
                t.from, t.to, item.version
            );
            match primary {
                PrimaryCopy::Written => println!("primary updated"),
                PrimaryCopy::Replicates => {
                    println!("global table: replication carries it to the primary")
                }
                PrimaryCopy::Pending { error } => {
                    println!(
                        "primary not updated yet ({error}); a running monitor will catch it up"
                    )
                }
            }
            Ok(())
        }
        Outcome::NeedsHuman { reason } => bail!("{reason}"),
        Outcome::Deposed => bail!("refused by the lease check; nothing was written"),
        Outcome::LostRace { current } => bail!(
            "lost the race: the item changed meanwhile (now {}); nothing was written",
            current.map_or("unknown".into(), |i| format!(
                "{} version {}",
                i.state, i.version
            ))
        ),
    }
}
