//! The wall clock, as a seam. The daemon's timing runs on `tokio::time::Instant`
//! (monotonic, pausable in tests); the wall clock only stamps what people read
//! (`updatedAt`, an audit record's `at`) and dates an item's last change. The
//! simulation gives each instance a skewed one.

use std::time::SystemTime;

/// Where the time of day comes from.
pub trait WallClock: Send + Sync {
    fn now(&self) -> SystemTime;

    /// `now` as RFC 3339 with milliseconds, as the config item stores it.
    fn rfc3339(&self) -> String {
        humantime::format_rfc3339_millis(self.now()).to_string()
    }
}

/// The host's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
