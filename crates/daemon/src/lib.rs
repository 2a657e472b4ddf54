//! The runtime of failover-monitor: everything the daemon does with the outside
//! world, behind one [`backend::Backend`] seam, around the pure core
//! (`failover-core`).
//!
//! - [`probe`]: the probes and their scheduler, producing observations;
//! - [`action`]: the actuator, the only writer of the config item, its audit
//!   records, the stored pause and the DNS record; the sync of the two copies;
//! - [`coord`]: the coordination task (lease, views) of several instances;
//! - [`decision`]: the decision loop that owns the policy ([`Daemon`]);
//! - [`drill`]: practice failovers, run beside the loop through its moves;
//! - [`control`]: the loop's vocabulary, shared with the admin API;
//! - [`backend`]: the seam, and [`backend::AwsBackend`];
//! - [`client_path`]: the application as its clients reach it (state APIs, a signed
//!   write, a photo), for recovery reports and drills;
//! - [`observe`]: the client-path watcher and the RPO canary of recovery reports;
//! - [`readiness`]: the secondary's readiness, checked continuously, behind the
//!   [`readiness::ReadinessPart`] seam (the binary supplies the stack's part);
//! - [`metrics`], [`notify`] (systemd), [`clock`] (the wall clock), [`gate`] (where a
//!   stopped process's tasks wait), [`backtest`] (the observation trace and its
//!   replay).
//!
//! docs/ARCHITECTURE.md is the map. Architecture Invariant: this crate never
//! provisions (it does not depend on `failover-provision`) and knows nothing of the
//! command line or the admin API's HTTP (the binary does).

pub mod action;
pub mod backend;
pub mod backtest;
pub mod client_path;
pub mod clock;
pub mod control;
pub mod coord;
pub mod decision;
pub mod drill;
pub mod gate;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod probe;
pub mod readiness;

pub use decision::{Daemon, failover_bound};
