//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`), spoken directly: one
//! datagram per message to `$NOTIFY_SOCKET`. Outside systemd every call is a no-op.

use std::time::Duration;

/// Sends `msg` (e.g. `READY=1`) to the service manager. Returns false when there is
/// none or the message could not be sent.
pub fn notify(msg: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return false;
    };
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        match std::os::unix::net::SocketAddr::from_abstract_name(name) {
            Ok(addr) => sock.send_to_addr(msg.as_bytes(), &addr).is_ok(),
            Err(_) => false,
        }
    } else {
        sock.send_to(msg.as_bytes(), &path).is_ok()
    }
}

/// How often to send `WATCHDOG=1`: half the interval systemd asked for, if it asked
/// this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
