//! The command line's commands, called by the binary (`src/main.rs`), which only
//! parses, initialises logging, loads what a command needs, dispatches here and maps
//! errors to exit codes (0 ok, 1 runtime failure, 2 usage or config).
//!
//! - `args`: the grammar (clap), every command, subcommand and flag.
//! - `check`: what `check-config` answers for a file that loads.
//! - `state`: `state get|history` on DynamoDB directly; `state set|switch` through the
//!   running daemon's admin API (its safety rules), or with `--force` directly.
//! - `admin`: `admin ...`, the operator's side of the admin API.
//! - `daemon`: how the CLI reaches a running daemon (address, tokens, what to say when
//!   a token is refused), with or without a config.
//! - `caller`: who is acting, as the audit records name them.
//! - `backtest`: a recorded trace replayed through a config's policy, printed.
//! - `report`: a transition's recovery report, from DynamoDB, as text, JSON or HTML.
//!
//! The provisioning commands (`provision`, `photo`, `comments`) live in their wing,
//! `failover_provision::command`; `args` embeds their subcommands.

pub mod admin;
pub mod args;
pub mod backtest;
pub mod caller;
pub mod check;
pub mod daemon;
pub mod drill;
#[cfg(test)]
mod reference;
pub mod report;
pub mod state;

use std::path::Path;

pub use args::{Cli, Command, LogFormat};

use failover_config::{self as config, ConfigError, Settings};

/// A command used the wrong way (exit 2), as opposed to a failure while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Whether `e` is the operator's to fix in the command line or the config (exit 2)
/// rather than a failure while running (exit 1).
pub fn is_usage_error(e: &anyhow::Error) -> bool {
    #[cfg(feature = "provision")]
    if failover_provision::command::is_usage_error(e) {
        return true;
    }
    e.downcast_ref::<UsageError>().is_some() || e.downcast_ref::<ConfigError>().is_some()
}

/// The config as a command that can do without it sees it: the settings, or why
/// they could not be read.
pub struct Loaded(Result<Settings, ConfigError>);

impl Loaded {
    /// Reads and validates `path` (`config::load`), keeping the error.
    pub fn load(path: &Path) -> Self {
        Self(config::load(path))
    }

    /// An outcome already at hand (tests, or a caller that parsed the text itself).
    pub fn from_result(result: Result<Settings, ConfigError>) -> Self {
        Self(result)
    }

    /// The settings, when the file loaded.
    pub fn settings(&self) -> Option<&Settings> {
        self.0.as_ref().ok()
    }

    /// Why the file did not load, if it did not.
    pub fn unread(&self) -> Option<&ConfigError> {
        self.0.as_ref().err()
    }

    /// The settings, or the error that stops a command needing them (exit 2).
    pub fn require(self) -> Result<Settings, ConfigError> {
        self.0
    }
}
