//! The `failover-monitor` binary's own parts: the command line ([`cli`]), the admin
//! HTTP API ([`admin`]), the process wiring of `run` ([`app`]), the recovery
//! report as text and as a page ([`report_page`]) and the provisioning wing's part
//! of the secondary's readiness check (`readiness`, with the `provision` feature). The daemon, its
//! pure core, the configuration, the AWS clients and provisioning are crates of
//! their own under `crates/`; docs/ARCHITECTURE.md is the map of all of them.
//!
//! A library beside `src/main.rs` so that tests and the fuzz targets reach the admin
//! API's request parsing and the command line's tree. Nothing below this package
//! depends on it: the compiler keeps the command line and the HTTP API out of the
//! daemon.

pub mod admin;
pub mod app;
pub mod cli;
#[cfg(feature = "provision")]
pub mod readiness;
pub mod report_page;
