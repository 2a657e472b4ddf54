//! Every default of `monitor.toml`, in one place: the sections' validators apply them,
//! and `docs/REFERENCE.md` states them.
//!
//! The probe defaults are chosen so that 10% independent probe loss never flips the
//! region (see the policy's simulation test) while a dead region is detected in about
//! 5 x 2 s.

use std::time::Duration;

use super::{DynamoCheck, Failback, InsufficientData, Mode, QuorumRule, RegionRule, S3Check};
use failover_core::model::Role;

/// `app.project`.
pub const PROJECT: &str = "photos";

/// `monitor.mode`.
pub const MODE: Mode = Mode::Auto;
/// `monitor.failback`.
pub const FAILBACK: Failback = Failback::Manual;
/// `monitor.failback_after`.
pub const FAILBACK_AFTER: Duration = Duration::from_secs(600);
/// `monitor.hold_down`.
pub const HOLD_DOWN: Duration = Duration::from_secs(300);
/// `monitor.fence_for`: no fence, `active` goes straight to `failover`.
/// (`monitor.max_fence` defaults to `fence_for`: a fixed fence.)
pub const FENCE_FOR: Duration = Duration::ZERO;
/// `monitor.state_refresh`.
pub const STATE_REFRESH: Duration = Duration::from_secs(5);
/// `monitor.max_override`: the longest a human's pause or fence lasts.
pub const MAX_OVERRIDE: Duration = Duration::from_secs(72 * 3600);
/// `monitor.write_timeout`.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// `probe_defaults.interval`, and so every probe's `interval`.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// `probe_defaults.timeout`.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// `probe_defaults.jitter`.
pub const JITTER: Duration = Duration::from_millis(200);
/// `probe_defaults.fall`.
pub const FALL: u32 = 5;
/// `probe_defaults.rise`.
pub const RISE: u32 = 3;
/// `expect_status` of an `http` probe.
pub const EXPECT_STATUS: &[u16] = &[200];
/// `check` of an `s3` probe.
pub const S3_CHECK: S3Check = S3Check::HeadBucket;
/// `check` of a `dynamodb` probe.
pub const DYNAMODB_CHECK: DynamoCheck = DynamoCheck::GetItem;
/// `insufficient_data` of a `cloudwatch_alarm` probe.
pub const INSUFFICIENT_DATA: InsufficientData = InsufficientData::Ok;

/// `policy.failover_when`.
pub const FAILOVER_WHEN: RegionRule = RegionRule::Majority;
/// `policy.require_healthy_secondary`.
pub const REQUIRE_HEALTHY_SECONDARY: bool = true;

/// `admin.listen`: loopback, so no token is needed.
pub const ADMIN_LISTEN: &str = "127.0.0.1:9464";
/// `admin.header_read_timeout`: a request's head (and, first, a TLS handshake) within this.
pub const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// `admin.idle_timeout`: a kept-alive connection waits this long for the next request.
pub const ADMIN_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// `admin.max_connection_age`: no connection stays open longer.
pub const ADMIN_MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// `admin.max_connections`: connections served at once; more are closed at once.
pub const ADMIN_MAX_CONNECTIONS: u32 = 64;
/// The longest one admin request may take (a move waits for the commit in both
/// regions); not a key, but `admin.max_connection_age` is checked against it.
pub const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `coordination.lease`. (`coordination.view_ttl` defaults to the lease.)
pub const LEASE: Duration = Duration::from_secs(10);
/// `coordination.renew_every`.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// `coordination.quorum`.
pub const QUORUM: QuorumRule = QuorumRule::Majority;

/// `client_path.observe_for`: a transition's clients are watched this long.
pub const OBSERVE_FOR: Duration = Duration::from_secs(120);
/// `client_path.poll_every`.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// `client_path.canary_every`: the RPO canary's cadence.
pub const CANARY_EVERY: Duration = Duration::from_secs(10);

/// `readiness.every`: how often the secondary's readiness is checked.
pub const READINESS_EVERY: Duration = Duration::from_secs(300);

/// `route53.record_type`.
pub const ROUTE53_RECORD_TYPE: &str = "CNAME";
/// `route53.ttl`, in seconds.
pub const ROUTE53_TTL: i64 = 60;

/// `monitor.instance_id`: the host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`).
pub fn instance_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "failover-monitor".into())
}

/// `bucket` of an `s3` probe: the region's photo bucket, `<project>-<region role>`.
pub fn bucket(project: &str, region: Role) -> String {
    format!("{project}-{}", region.as_str())
}

/// `table` of a `dynamodb` probe: the config table, `<project>-config`.
pub fn table(project: &str) -> String {
    format!("{project}-config")
}
