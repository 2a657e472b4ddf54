//! The pure core of failover-monitor: what the decision is made of, with no I/O and
//! no clock. Every input carries the `tokio::time::Instant` it happened at, so the
//! tests beside each module drive it with paused time.
//!
//! - [`model`]: the shared vocabulary (regions, states, the config item, audit
//!   records, the stored pause, the item keys);
//! - [`rules`]: what a user picks in `monitor.toml` that the core applies;
//! - [`policy`]: per-probe fall/rise hysteresis, the region rule, hold-down, modes,
//!   fencing, failback, votes and quorum: observations in, a verdict out;
//! - [`lease`]: the leader lease as a state machine;
//! - [`redact`]: the secrets a URL can carry, removed from error texts;
//! - [`liveness`]: which peers are alive, what their votes count for now, and a
//!   second process with this instance's id;
//! - [`commit`]: the commit lifecycle (in flight, retry, backoff, a stop for a
//!   human, humans' moves waiting);
//! - [`overrides`]: a human's pause and fence, and when they end;
//! - [`report`]: the recovery report of a transition (timeline, RTO, RPO);
//! - [`drill`]: practice failovers: the stored record, the steps, the schedule.
//!
//! Architecture Invariant: this crate depends on no other crate of the workspace,
//! on no AWS crate and on no network or runtime: tokio's `time` only.

pub mod commit;
pub mod drill;
pub mod lease;
pub mod liveness;
pub mod model;
pub mod overrides;
pub mod policy;
pub mod redact;
pub mod report;
pub mod rules;
