//! The command line's grammar (clap): every command, subcommand and flag, with the
//! `///` comments `--help` prints. `docs/REFERENCE.md`, section "Command line", says
//! the same for a reader; a unit test (`reference.rs`) keeps the two in step.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use failover_core::model::AppState;
use failover_daemon::action::{HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT};
#[cfg(feature = "provision")]
use failover_provision::command::{CommentsCommand, PhotoCommand, ProvisionCommand};

#[derive(Parser)]
#[command(
    name = "failover-monitor",
    version,
    about = "Decides when a two-region AWS application fails over, and flips it"
)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "monitor.toml"
    )]
    pub config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon: probe, decide, act.
    Run,
    /// Validate the config and exit (2 with the reason when it is wrong).
    CheckConfig,
    /// Read the config item and its audit records; move it (through the running
    /// monitor's safety rules, or with --force directly).
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Replay recorded probe results (monitor.record_observations) through this
    /// config's policy and print the transitions it would have made.
    Backtest {
        /// The JSONL trace.
        #[arg(long, value_name = "FILE")]
        trace: PathBuf,
        /// The state the item had when the trace began.
        #[arg(long, value_enum, default_value_t = StateArg::Active)]
        initial: StateArg,
        /// The report as JSON.
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
        command: ProvisionCommand,
    },
    /// Photos of the stack (the original `make upload`).
    #[cfg(feature = "provision")]
    Photo {
        #[command(subcommand)]
        command: PhotoCommand,
    },
    /// Comments of a photo (the original `make get-comment` / `add-comment`), through
    /// the store API when it answers, else on the table directly.
    #[cfg(feature = "provision")]
    Comments {
        /// JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: CommentsCommand,
    },
    /// Talk to a running daemon's admin API (needs no valid config: the address and
    /// tokens may come from the flags and the environment).
    Admin(AdminArgs),
    /// Practice failovers through the running monitor: start one and follow it to
    /// its outcome, show the last one, stop the running one.
    Drill(DrillArgs),
    /// Print the recovery report of a transition (read from DynamoDB directly):
    /// its timeline, recovery time and replication lag.
    Report {
        /// The transition's version (default: the newest report).
        #[arg(id = "report_version", value_name = "VERSION", value_parser = clap::value_parser!(u64).range(1..))]
        version: Option<u64>,
        /// The report as JSON.
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// The report as one self-contained HTML page (with a timeline picture).
        #[arg(long)]
        html: bool,
    },
}

/// How the CLI reaches a running daemon: shared by `admin` and the state moves.
#[derive(Args, Clone, Default)]
pub struct DaemonArgs {
    /// Base URL of the daemon's admin API (default: http://<admin.listen> of the
    /// config, else http://127.0.0.1:9464).
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// File holding the admin token (FAILOVER_MONITOR_ADMIN_TOKEN wins over it;
    /// default: admin.token_file of the config).
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Who is acting, recorded in the audit record and the item's updatedBy (default:
    /// FAILOVER_MONITOR_CALLER, else SUDO_USER, else USER, else the OS user).
    #[arg(long, global = true, value_name = "NAME")]
    pub caller: Option<String>,
    /// PEM file of the certificates to trust for an https:// URL, in place of the
    /// system's roots (default: admin.tls_cert_file of the config, when the config
    /// gives the URL).
    #[arg(long, global = true, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Send a token over http:// to a host other than loopback (refused otherwise:
    /// it would cross the network in cleartext).
    #[arg(long, global = true)]
    pub allow_cleartext_token: bool,
}

#[derive(Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// File holding the read-only token, sent by `status` and `history` in place of
    /// the admin token (FAILOVER_MONITOR_ADMIN_READ_TOKEN wins over it; default:
    /// admin.read_token_file of the config).
    #[arg(long, global = true, value_name = "PATH")]
    pub read_token_file: Option<PathBuf>,
    /// Print the daemon's JSON answer as is.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Liveness (GET /healthz): exit 0 when the daemon answers; for container health checks.
    Health,
    /// State, mode, probes, and what the policy would do.
    Status,
    /// Audit records, newest first, one page at a time.
    History {
        /// Records per page (1 to 50).
        #[arg(long, value_name = "N", default_value_t = HISTORY_DEFAULT_LIMIT, value_parser = parse_limit)]
        limit: usize,
        /// Only records with a version below this one (the previous page's next_before).
        #[arg(long, value_name = "V", value_parser = clap::value_parser!(u64).range(1..))]
        before: Option<u64>,
    },
    /// Move to failover (refused if the secondary fails its probes, unless --force).
    Failover(AdminMoveArgs),
    /// Move back to active (refused if the primary fails its probes, unless --force).
    Failback(AdminMoveArgs),
    /// Move to fenced (writes blocked) until it ends (--for).
    Fence {
        #[command(flatten)]
        m: AdminMoveArgs,
        /// How long the fence lasts (at most monitor.max_override, the default).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_lasts)]
        lasts: Option<Duration>,
    },
    /// Stop automatic transitions until the pause ends (--for); probing goes on.
    Pause {
        /// Why (stored with the pause).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// How long the pause lasts (at most monitor.max_override, the default).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_lasts)]
        lasts: Option<Duration>,
    },
    /// Restart automatic transitions.
    Resume {
        /// Why (stored with the resume).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

#[derive(Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// File holding the read-only token, sent by `status` (as for `admin`).
    #[arg(long, global = true, value_name = "PATH")]
    pub read_token_file: Option<PathBuf>,
    /// Print the daemon's JSON answers as they are.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: DrillCommand,
}

#[derive(Subcommand)]
pub enum DrillCommand {
    /// Start a drill on the acting instance (preflight, an optional fence, failover,
    /// verification, hold, failback, verification) and follow it to its outcome:
    /// exit 0 when it SUCCEEDED, 1 when it FAILED or was INTERRUPTED.
    Run {
        /// Why (recorded with the drill and its audit records).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// How long it stays failed over (default: drills.hold).
        #[arg(long, value_name = "DURATION", value_parser = parse_step)]
        hold: Option<Duration>,
        /// A fence before the failover (default: drills.fence; 0s for none).
        #[arg(long, value_name = "DURATION", value_parser = parse_step)]
        fence: Option<Duration>,
        /// Start it and return at once (follow it with `drill status`).
        #[arg(long)]
        no_wait: bool,
    },
    /// The drill running now or the last one, and the schedule.
    Status,
    /// Stop the running drill (back to active when the primary is healthy).
    Abort {
        /// Why.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

/// A drill's hold or fence: a duration up to 24 hours.
fn parse_step(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d <= failover_config::MAX_DRILL_STEP => Ok(d),
        Ok(_) => Err("at most 24h".into()),
        Err(e) => Err(format!("{e} (a duration such as 10m or 30s)")),
    }
}

#[derive(Args)]
pub struct AdminMoveArgs {
    /// Why (recorded in the audit record).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Override the safety rules (audited as forced).
    #[arg(long)]
    pub force: bool,
}

#[derive(Subcommand)]
pub enum StateCommand {
    /// Print both regions' copies of the config item.
    Get {
        /// Both copies and the sync's finding as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move the state to the given value, through the running monitor's safety rules.
    Set {
        /// The state to move to.
        #[arg(value_enum, value_name = "STATE")]
        state: StateArg,
        /// Why (recorded in the audit record).
        #[arg(long, value_name = "TEXT", default_value = "set by hand")]
        reason: String,
        /// `fenced` only: how long the fence lasts (at most monitor.max_override,
        /// the default).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_lasts)]
        lasts: Option<Duration>,
        #[command(flatten)]
        how: StateMoveArgs,
    },
    /// Toggle active <-> failover, through the running monitor's safety rules.
    Switch {
        /// Why (recorded in the audit record).
        #[arg(long, value_name = "TEXT", default_value = "switched by hand")]
        reason: String,
        #[command(flatten)]
        how: StateMoveArgs,
    },
    /// Print the audit records, newest first, one page at a time.
    History {
        /// Records per page (1 to 50).
        #[arg(long, value_name = "N", default_value_t = HISTORY_DEFAULT_LIMIT, value_parser = parse_limit)]
        limit: usize,
        /// Only records with a version below this one (the previous page's last version).
        #[arg(long, value_name = "V", value_parser = clap::value_parser!(u64).range(1..))]
        before: Option<u64>,
        /// The records as a JSON array (the next page's `--before` goes to stderr).
        #[arg(long)]
        json: bool,
    },
}

/// How a state move is made: through the running daemon, or forced without one.
#[derive(Args, Clone, Default)]
pub struct StateMoveArgs {
    /// Through a running monitor: override its safety rules. Without one: write the
    /// config item directly, unchecked. Audited as forced either way.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StateArg {
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

/// `--for`: a duration above zero (`30m`, `2h`).
fn parse_lasts(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err("expected a duration above zero, such as 30m or 2h".into()),
    }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn daemon_flags_go_before_or_after_the_subcommand() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            match cli.command {
                Command::Admin(a) => (a.daemon.url, a.daemon.caller),
                _ => unreachable!(),
            }
        };
        let want = (Some("http://h:1".to_owned()), Some("ana".to_owned()));
        let before = [
            "fm",
            "admin",
            "--url",
            "http://h:1",
            "--caller",
            "ana",
            "status",
        ];
        let after = [
            "fm",
            "admin",
            "status",
            "--url",
            "http://h:1",
            "--caller",
            "ana",
        ];
        assert_eq!(parse(&before), want);
        assert_eq!(parse(&after), want);
        assert!(Cli::try_parse_from(["fm", "state", "history", "--limit", "51"]).is_err());
        let cli = Cli::try_parse_from(["fm", "state", "set", "fenced", "--force"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::State {
                command: StateCommand::Set {
                    state: StateArg::Fenced,
                    how: StateMoveArgs { force: true, .. },
                    ..
                }
            }
        ));
    }
}
