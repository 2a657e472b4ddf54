//! `failover-monitor provision`, `photo` and `comments`: the whole two-region stack
//! the monitor guards, described from `monitor.toml`, created, inspected and
//! destroyed by one binary, and the original stack's day-to-day operations on it.
//!
//! The wing, folder by folder:
//!
//! - [`command`]: the command line (clap subcommands) and its glue; `main.rs` calls
//!   only [`command::provision`], [`command::photo`], [`command::comments`] and
//!   [`command::is_usage_error`].
//! - [`stack`]: the description: names, and every [`stack::Resource`] in creation
//!   order.
//! - [`engine`]: observe, plan, apply (in order, stopping at the first failure),
//!   destroy (in reverse, only what carries [`sdk::STACK_TAG`]); the [`engine::Kind`]
//!   trait is what it needs of each kind of resource.
//! - [`resources`]: one file per service, each kind implementing [`engine::Kind`];
//!   [`resources::Spec::kind`] is the one dispatch.
//! - [`context`]: the clients and the facts (ARNs, ids) earlier steps learned.
//! - [`ours`]: finding the stack's own resource among those of one name.
//! - [`report`]: what is printed, as text or JSON lines.
//! - [`outputs`]: the outputs, `uiConfig.json`, a `monitor.toml` for the stack.
//! - [`ops`]: photo upload and comments, routed like the application's clients.
//! - [`sdk`]: the batch clients (retries, long timeouts) and error vocabulary.
//!
//! Nothing is ever adopted: a resource with one of the stack's names that the stack
//! did not create makes the plan refuse before anything is written. The running
//! daemon never calls into this module (docs/ARCHITECTURE.md); it is a batch tool.

pub mod command;
pub mod context;
pub mod engine;
pub mod ops;
pub mod ours;
pub mod outputs;
pub mod report;
pub mod resources;
pub mod sdk;
pub mod stack;
