//! The server's protections on real loopback sockets, with short limits and a router
//! of its own: heads and idle keep-alive connections cut at their deadlines, the cap,
//! the age limit, the drain.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep};

use super::Server;
use failover_config::AdminLimits;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn limits() -> AdminLimits {
    AdminLimits {
        header_read_timeout: MS(300),
        idle_timeout: MS(600),
        max_connection_age: Duration::from_secs(60),
        max_connections: 4,
    }
}

/// A server with `/` (at once) and `/slow` (after 1.5 s); stopped by the sender.
async fn start(limits: AdminLimits) -> (String, watch::Sender<bool>) {
    let router = Router::new().route("/", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            sleep(MS(1500)).await;
            "slow"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, mut rx) = watch::channel(false);
    let server = Server {
        listener,
        router,
        tls: None,
        limits,
    };
    tokio::spawn(server.serve(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    (addr, stop)
}

/// Reads until the peer closes (or `limit` passes: `None`); what was read.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&out).into_owned())
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

#[tokio::test]
async fn silent_and_slow_heads_are_cut_at_the_header_timeout() {
    let (addr, _stop) = start(limits()).await;
    let t0 = Instant::now();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let drip = async {
        for b in b"GET / HTTP/1.1\r\nhost: x\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            sleep(MS(50)).await;
        }
    };
    let (silent_out, ()) = tokio::join!(until_closed(&mut silent, MS(2000)), drip);
    assert_eq!(silent_out.as_deref(), Some(""), "closed without an answer");
    let slow_out = until_closed(&mut slow, MS(2000)).await;
    assert_eq!(slow_out.as_deref(), Some(""));
    let took = t0.elapsed();
    assert!(took >= MS(300) && took < MS(1200), "{took:?}");
}

#[tokio::test]
async fn a_kept_alive_connection_gets_the_idle_timeout_then_a_head_timeout() {
    let (addr, _stop) = start(limits()).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    // Requests 400 ms apart: longer than the head timeout, shorter than idle.
    for _ in 0..3 {
        s.write_all(GET).await.unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        sleep(MS(400)).await;
    }
    // Then a head begun and not finished: cut 300 ms after its first byte.
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let t = Instant::now();
    assert_eq!(until_closed(&mut s, MS(2000)).await.as_deref(), Some(""));
    assert!(
        t.elapsed() >= MS(250) && t.elapsed() < MS(900),
        "{:?}",
        t.elapsed()
    );
    // And an idle one: cut at the idle timeout after its answer.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(GET).await.unwrap();
    let mut buf = [0u8; 512];
    let _ = s.read(&mut buf).await.unwrap();
    let t = Instant::now();
    assert_eq!(until_closed(&mut s, MS(3000)).await.as_deref(), Some(""));
    assert!(
        t.elapsed() >= MS(550) && t.elapsed() < MS(1300),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let (addr, _stop) = start(limits()).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    sleep(MS(50)).await;
    let t = Instant::now();
    let mut fifth = TcpStream::connect(&addr).await.unwrap();
    assert!(until_closed(&mut fifth, MS(2000)).await.is_some());
    assert!(t.elapsed() < MS(200), "{:?}", t.elapsed());
    // once the held ones time out, there is room again
    sleep(MS(400)).await;
    let mut again = TcpStream::connect(&addr).await.unwrap();
    again.write_all(GET).await.unwrap();
    let mut buf = [0u8; 512];
    let n = again.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn a_connection_never_outlives_its_age() {
    let (addr, _stop) = start(AdminLimits {
        max_connection_age: MS(800),
        ..limits()
    })
    .await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    // the answer would come after 1.5 s: the socket is closed at 0.8 s instead
    assert_eq!(until_closed(&mut s, MS(3000)).await.as_deref(), Some(""));
    assert!(
        t.elapsed() >= MS(700) && t.elapsed() < MS(1400),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn stopping_answers_the_request_in_flight_then_closes() {
    let (addr, stop) = start(limits()).await;
    let mut busy = TcpStream::connect(&addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(GET).await.unwrap();
    let mut buf = [0u8; 512];
    let _ = idle.read(&mut buf).await.unwrap();
    sleep(MS(100)).await;
    stop.send(true).unwrap();
    // the idle one closes at once, the busy one after its answer
    assert_eq!(until_closed(&mut idle, MS(200)).await.as_deref(), Some(""));
    let answer = until_closed(&mut busy, MS(3000)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    // and nothing is accepted any more
    sleep(MS(50)).await;
    assert!(TcpStream::connect(&addr).await.is_err());
}
