//! `failover-monitor provision`, `photo` and `comments`: the whole two-region stack
//! the monitor guards, described from `monitor.toml`, created, inspected and
//! destroyed by one binary, and the original stack's day-to-day operations on it.
//!
//! The wing, module by module, from the leaves up; the engine that plans and
//! applies is its own crate, [`failover_provision_engine`], which cannot name
//! anything here:
//!
//! - [`names`]: every `<project>-...` name; imports nothing else of this crate.
//! - [`stack`]: the description from the settings, checked before any AWS call.
//! - [`sdk`]: the batch clients (retries, long timeouts) and error vocabulary.
//! - [`ownership`]: finding the stack's own resource among those of one name.
//! - [`context`]: [`context::StackContext`], the clients and the facts (ARNs, ids)
//!   earlier steps learned, kept by key.
//! - [`resources`]: one file per service, each kind implementing the engine's
//!   `Kind`; [`resources::list`], the stack's resources in creation order, is the
//!   only place that names every kind.
//! - [`report`]: what is printed, as text or JSON lines; the engine's `Progress`.
//! - [`outputs`]: the outputs, `uiConfig.json`, a `monitor.toml` for the stack.
//! - [`readiness`]: the secondary's half of the stack against the plan, for the
//!   daemon's readiness check (the binary wires it in).
//! - [`ops`]: photo upload and comments, routed like the application's clients.
//! - [`command`]: the command line (clap subcommands) and its glue; `main.rs` calls
//!   only [`command::provision`], [`command::photo`], [`command::comments`] and
//!   [`command::is_usage_error`].
//!
//! Nothing is ever adopted: a resource with one of the stack's names that the stack
//! did not create makes the plan refuse before anything is written. The running
//! daemon never calls into this crate (docs/ARCHITECTURE.md); it is a batch tool.

pub mod command;
pub mod context;
pub mod names;
pub mod ops;
pub mod outputs;
pub mod ownership;
pub mod readiness;
pub mod report;
pub mod resources;
pub mod sdk;
pub mod stack;
