//! How long a real outage may take to be committed as a failover: the bound the
//! simulation checks in every seed and the emulator's trials measure against
//! (`docs/ARCHITECTURE.md`, "How fast a real outage is failed over").

use std::time::Duration;

use crate::config::Settings;
use crate::model::Role;

/// The longest from the moment the primary stops answering every instance to the
/// failover committed in the secondary, provided that from then on a quorum of the
/// configured instances run (not stopped, their paths to the secondary and to each
/// other intact), the secondary passes its probes and takes writes, and nothing else
/// holds the move back (mode auto, not paused, hold-down over, no item for a human
/// to settle):
///
/// - detection, `fall x interval + jitter + timeout` (the slowest primary probe);
/// - with cooperating instances, the votes: `3 x renew_every` (a view published,
///   read, and, for a peer seen for the first time, seen to change); and a leader:
///   `max(lease, view_ttl) + 2 x renew_every` if the one that held the lease died
///   with the outage (or a duplicate of an instance must be waited out);
/// - the commit: `2 x write_timeout + 500 ms` (an attempt that timed out, the
///   backoff, the retry with the same token);
/// - with `fence_for > 0`: `max_fence` and a second commit.
pub fn failover_bound(s: &Settings) -> Duration {
    let detection = s
        .probes
        .iter()
        .filter(|p| p.region == Role::Primary)
        .map(|p| p.interval * p.fall + p.jitter + p.timeout)
        .max()
        .unwrap_or_default();
    let coordination = s.coordination.as_ref().map_or(Duration::ZERO, |c| {
        c.renew_every * 3 + c.lease.max(c.view_ttl) + c.renew_every * 2
    });
    let commit = s.monitor.write_timeout * 2 + Duration::from_millis(500);
    let fence = if s.monitor.fence_for.is_zero() {
        Duration::ZERO
    } else {
        s.monitor.max_fence + commit
    };
    detection + coordination + commit + fence
}
