//! The process's limit on open files, against what its probes may hold: each `http`
//! probe keeps one connection (in flight or idle), the AWS clients a few each, the
//! admin server up to its `max_connections`. Read from `/proc/self/limits`, so that
//! a limit too low is said at start, not found as failed connects at the first
//! stall (they would be about the monitor: `probe::http`'s `own_limit`).

/// File descriptors beyond one per probe: AWS clients' pools, the admin server,
/// logs, the runtime.
pub const SPARE_FILES: u64 = 256;

/// The soft limit on open files, from the text of `/proc/self/limits`; `None` when
/// it is unlimited or cannot be read.
pub fn soft_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The limit, when it is below what `probes` may need: (limit, need).
pub fn too_low(limits: &str, probes: usize) -> Option<(u64, u64)> {
    let need = probes as u64 + SPARE_FILES;
    let soft = soft_open_files(limits)?;
    (soft < need).then_some((soft, need))
}

/// [`too_low`] of this process.
pub fn this_process_too_low(probes: usize) -> Option<(u64, u64)> {
    too_low(&std::fs::read_to_string("/proc/self/limits").ok()?, probes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max cpu time              unlimited            unlimited            seconds   \n\
        Max open files            1024                 524288               files     \n\
        Max locked memory         8388608              8388608              bytes     \n";

    #[test]
    fn the_soft_limit_is_read_and_compared_with_the_probes() {
        assert_eq!(soft_open_files(LIMITS), Some(1024));
        assert_eq!(too_low(LIMITS, 700), None);
        assert_eq!(too_low(LIMITS, 768), None);
        assert_eq!(too_low(LIMITS, 769), Some((1024, 1025)));
        let unlimited = LIMITS.replace("1024                ", "unlimited           ");
        assert_eq!(soft_open_files(&unlimited), None);
        assert_eq!(too_low(&unlimited, 1_000_000), None);
        assert_eq!(soft_open_files("garbage"), None);
    }

    #[test]
    fn this_process_has_a_limit_to_read() {
        // Linux: the file exists and names the limit (CI and every deployment).
        let text = std::fs::read_to_string("/proc/self/limits").unwrap();
        assert!(soft_open_files(&text).is_some_and(|n| n > 0), "{text}");
    }
}
