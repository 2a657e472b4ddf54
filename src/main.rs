//! The `failover-monitor` binary. Thin: parses the command line, initialises logging,
//! loads what the command needs, hands over to the library (`failover_monitor::cli`,
//! the daemon in `app`, provisioning in `provision::command`) and maps errors to exit
//! codes: 0 ok, 1 runtime failure, 2 usage or config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use failover_config::{self as config, ConfigError};
use failover_monitor::app;
use failover_monitor::cli::{self, Cli, Command, Loaded, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
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
    // On a worker, not on this thread: `block_on`'s future runs on the calling thread,
    // so every probe result the decision loop awaited woke this thread across from
    // the workers (a futex wake and a context switch per result, measured: 164 a
    // second at 200 probes/s). Spawned, it wakes as any task does, on the workers.
    let done = runtime.block_on(async { tokio::spawn(dispatch(cli.command, cli.config)).await });
    let result = match done {
        Ok(result) => result,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(anyhow::anyhow!("the main task ended: {e}")),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ConfigError>().is_some() => {
            eprintln!("failover-monitor: invalid config: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("failover-monitor: {e:#}");
            ExitCode::from(if cli::is_usage_error(&e) { 2 } else { 1 })
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

/// Runs `command` with the config at `path`: loaded strictly for the commands that
/// need it, leniently for those that talk to a running daemon (`admin`, the state
/// moves), which decide themselves whether a missing or invalid file matters.
async fn dispatch(command: Command, path: PathBuf) -> anyhow::Result<()> {
    let load = || config::load(&path);
    match command {
        Command::Run => app::run(path.clone(), load()?).await,
        Command::CheckConfig => {
            println!(
                "{}",
                cli::check::check_config(&path, load()?, std::env::vars())?
            );
            Ok(())
        }
        Command::State { command } => cli::state::run(command, Loaded::load(&path)).await,
        Command::Admin(args) => cli::admin::run(args, Loaded::load(&path)).await,
        Command::Drill(args) => cli::drill::run(args, Loaded::load(&path)).await,
        Command::Report {
            version,
            json,
            html,
        } => cli::report::run(&load()?, version, json, html).await,
        Command::Backtest {
            trace,
            initial,
            json,
        } => cli::backtest::run(&load()?, &trace, initial.into(), json),
        #[cfg(feature = "provision")]
        Command::Provision { json, command } => {
            use failover_provision::command::provision;
            provision(command, json, &path, &load()?).await
        }
        #[cfg(feature = "provision")]
        Command::Photo { command } => failover_provision::command::photo(command, &load()?).await,
        #[cfg(feature = "provision")]
        Command::Comments { json, command } => {
            failover_provision::command::comments(command, json, &load()?).await
        }
    }
}
