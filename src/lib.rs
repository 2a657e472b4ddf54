//! failover-monitor watches a two-region AWS application and decides when it moves
//! from the primary region to the secondary and back, by flipping the `state` of one
//! DynamoDB config item between `active`, `fenced` and `failover`.
//!
//! The pipeline, and the module of each stage:
//!
//! - [`config`]: `monitor.toml` plus environment overrides, parsed strictly into
//!   [`config::Settings`].
//! - [`probe`]: one task per probe (http, s3, dynamodb, cloudwatch_alarm) producing
//!   [`policy::Observation`]s on its own interval, with jitter and a timeout.
//! - [`policy`]: pure decision logic (fall/rise hysteresis, region rule, hold-down,
//!   modes, fencing, failback). No I/O, no clock.
//! - [`action`]: the actuator, the only writer: versioned conditional writes of the
//!   config item, committed in the secondary with an audit record, then synced to the
//!   primary.
//! - [`app`]: wiring and the decision loop that owns the policy.
//! - [`admin`]: the authenticated HTTP admin API (axum), serving [`metrics`] too.
//! - [`cli`]: the command line's commands (`check-config`, `state`, `admin`,
//!   `backtest`), which the thin binary (`src/main.rs`) dispatches to.
//! - [`provision`]: the batch tool that creates, inspects and destroys the stack the
//!   daemon guards (never called by the daemon), with the original stack's
//!   operations (upload a photo, comments) and their command line.
//! - [`aws`]: SDK clients per region; [`model`]: the shared vocabulary;
//!   [`notify`]: systemd readiness and watchdog notifications.

pub mod action;
pub mod admin;
pub mod app;
pub mod aws;
pub mod backend;
pub mod backtest;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod coord;
pub mod daemon;
pub mod gate;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod policy;
pub mod probe;
#[cfg(feature = "provision")]
pub mod provision;
