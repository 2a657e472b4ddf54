//! A flood against the admin API's TLS port while the daemon runs twenty probes every
//! 100 ms: first two thousand idle connections and two hundred slow ones (a TLS
//! record dripped a byte at a time, or a handshake and then an HTTP head dripped),
//! then sixty-four clients doing full TLS handshakes with a 4096-bit RSA key (each
//! costs the server a signature) as fast as they can. The probes' schedule lag must
//! not show it, idle and slow connections must be cut at the header timeout, the
//! process must hold no more sockets than the cap allows, and `/healthz` must answer
//! afterwards.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};
use tokio_rustls::TlsConnector;

use crate::listener::{
    Cert, Lag, PROBES, config, https_url, lag, lag_between, open_fds, open_files_limit, pid_of,
    responder, wait_ready_https,
};
use support::emulator::Emulator;
use support::monitor::Monitor;

const HEADER: Duration = Duration::from_secs(2);
/// How late a cut may come after the header timeout (scheduling, the loopback).
const SLACK: Duration = Duration::from_secs(1);
const CAP: usize = 64;
const IDLE: usize = 2000;
const SLOW: usize = 200;
const HANDSHAKERS: usize = 64;
const PHASE: Duration = Duration::from_secs(12);
/// A probe run may start this late and no later, flood or not: a bucket of the
/// histogram. Quiet, on a loaded 2-core host, runs start within 25 ms; during the
/// flood a few reach 50 ms; with the admin server on the daemon's runtime, hundreds
/// pass 100 ms.
const LAG_BOUND: f64 = 0.1;

/// What the attackers saw.
#[derive(Default)]
struct Tally {
    /// How long each idle or slow connection lasted until the server cut it.
    cut_after: Vec<Duration>,
    /// Connections still open at the header timeout plus the slack.
    held: usize,
    /// Full handshakes completed and answered.
    handshakes: usize,
}

type Shared = Arc<Mutex<Tally>>;

/// What an attacker waits before its next connection, and before its first: 2 to
/// 3 s, so that two thousand of them open about 800 a second. Faster, the listen
/// backlog overflows and a connection waits in the kernel, unaccepted, for longer
/// than any deadline of the server (what the server cannot see it cannot cut).
async fn pause() {
    sleep(Duration::from_millis(2000 + fastrand::u64(0..1000))).await;
}

fn record(tally: &Shared, closed: bool, after: Duration) {
    let mut tally = tally.lock().unwrap();
    if closed {
        tally.cut_after.push(after);
    } else {
        tally.held += 1;
    }
}

/// Reads until the peer closes or `limit` passes; whether it closed.
async fn closed_within(s: &mut (impl AsyncRead + Unpin), limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    timeout(limit, async {
        while let Ok(1..) = s.read(&mut buf).await {}
    })
    .await
    .is_ok()
}

/// Connects and sends nothing; records when the server closes.
async fn idle(addr: SocketAddr, until: Instant, tally: Shared) {
    pause().await;
    while Instant::now() < until {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            sleep(Duration::from_millis(100)).await;
            continue;
        };
        let t = Instant::now();
        let closed = closed_within(&mut s, HEADER + SLACK).await;
        record(&tally, closed, t.elapsed());
        pause().await;
    }
}

/// Writes `bytes` one at a time, 500 ms apart, until the server closes; whether it
/// closed within `limit`.
async fn drip(
    s: &mut (impl AsyncRead + AsyncWrite + Unpin),
    bytes: &[u8],
    limit: Duration,
) -> bool {
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    for b in bytes.iter().cycle() {
        if t.elapsed() > limit {
            return false;
        }
        if s.write_all(&[*b]).await.is_err() || s.flush().await.is_err() {
            return true;
        }
        if let Ok(Ok(0) | Err(_)) = timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            return true;
        }
    }
    unreachable!("the bytes cycle")
}

/// A slow client: a TLS record dripped (`tls: None`), or a handshake and then an
/// HTTP head dripped inside it.
async fn slow(addr: SocketAddr, tls: Option<TlsConnector>, until: Instant, tally: Shared) {
    // A handshake record header announcing 512 bytes, then filler.
    const RECORD: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];
    const HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ";
    pause().await;
    while Instant::now() < until {
        let Ok(s) = TcpStream::connect(addr).await else {
            sleep(Duration::from_millis(100)).await;
            continue;
        };
        let t = Instant::now();
        let closed = match &tls {
            None => {
                let mut s = s;
                drip(&mut s, RECORD, HEADER + SLACK).await
            }
            Some(connector) => {
                let name = ServerName::try_from("127.0.0.1").unwrap();
                match connector.connect(name, s).await {
                    Ok(mut s) => drip(&mut s, HEAD, HEADER + SLACK).await,
                    Err(_) => true, // refused at the cap
                }
            }
        };
        record(&tally, closed, t.elapsed());
        pause().await;
    }
}

/// Full handshakes, one after the other, each followed by one request.
async fn handshakes(addr: SocketAddr, tls: TlsConnector, until: Instant, tally: Shared) {
    while Instant::now() < until {
        let Ok(s) = TcpStream::connect(addr).await else {
            continue;
        };
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let Ok(mut s) = tls.connect(name, s).await else {
            sleep(Duration::from_millis(5)).await;
            continue;
        };
        let req = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
        let mut answer = Vec::new();
        if s.write_all(req).await.is_ok()
            && s.read_to_end(&mut answer).await.is_ok()
            && answer.starts_with(b"HTTP/1.1 200")
        {
            tally.lock().unwrap().handshakes += 1;
        }
    }
}

/// The most file descriptors the process had open, sampled until `until`.
async fn max_fds(pid: u32, until: Instant) -> usize {
    let mut max = 0;
    while Instant::now() < until {
        max = max.max(open_fds(pid));
        sleep(Duration::from_millis(100)).await;
    }
    max
}

/// Prints the lag between two readings; fails when a run started later than
/// [`LAG_BOUND`], or when too few runs were observed (missed slots).
fn check_lag(phase: &str, before: &Lag, after: &Lag) {
    let (runs, above) = lag_between(before, after);
    eprintln!("{phase}: {runs} probe runs; runs later than each bound (s): {above:?}");
    let late = above
        .iter()
        .find(|(le, _)| (*le - LAG_BOUND).abs() < 1e-9)
        .map(|(_, n)| *n)
        .expect("the bound is a bucket of the histogram");
    assert_eq!(late, 0.0, "{phase}: probe runs later than {LAG_BOUND} s");
    let expected = PROBES as f64 * 10.0 * PHASE.as_secs_f64() * 0.8;
    assert!(
        runs >= expected,
        "{phase}: {runs} probe runs, {expected} expected"
    );
}

/// The monitor under test: its HTTPS client, its process and its address.
struct Target<'a> {
    mon: &'a Monitor,
    cert: &'a Cert,
    http: reqwest::Client,
    pid: u32,
    addr: SocketAddr,
}

/// Two thousand idle and two hundred slow connections for [`PHASE`].
async fn idle_and_slow(t: &Target<'_>) {
    let idle_count = IDLE.min(open_files_limit().saturating_sub(SLOW + 300));
    let before = lag(t.mon, &t.http).await;
    let base_fds = open_fds(t.pid);
    let tally = Shared::default();
    let until = Instant::now() + PHASE;
    let mut tasks = Vec::new();
    for _ in 0..idle_count {
        tasks.push(tokio::spawn(idle(t.addr, until, tally.clone())));
    }
    for i in 0..SLOW {
        let tls = (i % 2 == 1).then(|| t.cert.connector());
        tasks.push(tokio::spawn(slow(t.addr, tls, until, tally.clone())));
    }
    let fds = max_fds(t.pid, until).await;
    for task in tasks {
        task.await.unwrap();
    }
    let after = lag(t.mon, &t.http).await;
    let tally = tally.lock().unwrap();
    let longest = tally.cut_after.iter().max().copied().unwrap_or_default();
    eprintln!(
        "idle and slow: {idle_count} idle and {SLOW} slow clients; {} connections cut \
         (the longest after {longest:?}), {} held; open fds {base_fds} before, at most \
         {fds} during",
        tally.cut_after.len(),
        tally.held
    );
    assert_eq!(
        tally.held, 0,
        "connections open past the header timeout + {SLACK:?}"
    );
    assert!(
        tally.cut_after.len() >= idle_count,
        "every attacker connected"
    );
    assert!(
        fds <= base_fds + CAP + 16,
        "{fds} open fds: the cap is {CAP}"
    );
    check_lag("idle and slow", &before, &after);
}

/// [`HANDSHAKERS`] clients doing full TLS handshakes for [`PHASE`].
async fn handshake_flood(t: &Target<'_>) {
    let before = lag(t.mon, &t.http).await;
    let tally = Shared::default();
    let until = Instant::now() + PHASE;
    let tasks: Vec<_> = (0..HANDSHAKERS)
        .map(|_| tokio::spawn(handshakes(t.addr, t.cert.connector(), until, tally.clone())))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let after = lag(t.mon, &t.http).await;
    let done = tally.lock().unwrap().handshakes;
    eprintln!("handshakes: {done} full handshakes answered");
    assert!(done >= 200, "only {done} handshakes: no load");
    check_lag("handshakes", &before, &after);
}

/// Mutations this test catches (each tried): no header timeout (connections held),
/// no connection cap (open fds), the admin server on the daemon's runtime (the
/// handshake flood delays probe runs by 100 to 500 ms and skips most of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_connections_is_cut_capped_and_never_delays_the_probes() {
    let emu = Emulator::start();
    let cert = Cert::self_signed(4096);
    let target = responder().await;
    let admin = cert.admin_section(&format!(
        "header_read_timeout = \"{}s\"\nmax_connections = {CAP}",
        HEADER.as_secs()
    ));
    let mon = Monitor::start(&config(&emu, target, &admin));
    let http = cert.https();
    wait_ready_https(&mon, &http).await;
    let t = Target {
        mon: &mon,
        cert: &cert,
        pid: pid_of(&mon),
        addr: format!("127.0.0.1:{}", mon.admin_port).parse().unwrap(),
        http,
    };
    // quiet first, for comparison
    let before = lag(&mon, &t.http).await;
    sleep(PHASE).await;
    check_lag("quiet", &before, &lag(&mon, &t.http).await);

    idle_and_slow(&t).await;
    handshake_flood(&t).await;

    // the admin API answers as before
    let r = t
        .http
        .get(https_url(&mon, "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
