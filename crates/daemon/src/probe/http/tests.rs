//! The `http` check against servers on loopback: the lean way (kept-alive
//! connections, heads and bodies as servers send them) and what it hands to reqwest.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::probe::http_client;

/// One answer of the test server: written in these pieces, then the connection
/// closed or kept.
struct Reply {
    pieces: Vec<Vec<u8>>,
    close: bool,
}

fn reply(text: &str) -> Reply {
    Reply {
        pieces: vec![text.as_bytes().to_vec()],
        close: false,
    }
}

/// A server answering each request (by its path and its number on the connection)
/// with `script`; counts the connections it accepted.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Server {
    async fn start(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let (script, count) = (Arc::new(script), connections.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for n in 0.. {
                        let Some(path) = read_request(&mut stream, &mut buf).await else {
                            return;
                        };
                        let r = script(&path, n);
                        for piece in &r.pieces {
                            if stream.write_all(piece).await.is_err() {
                                return;
                            }
                            tokio::task::yield_now().await;
                        }
                        if r.close {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, connections }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request head; its path, or None at the end of the connection.
async fn read_request(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return head.split(' ').nth(1).map(str::to_owned);
        }
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn probe(url: String, body: Option<&str>) -> HttpProbe {
    probe_with(&http_client(), url, body)
}

fn probe_with(client: &HttpClient, url: String, body: Option<&str>) -> HttpProbe {
    HttpProbe::new(
        client,
        url,
        vec![200],
        body.map(str::to_owned),
        Duration::from_secs(5),
    )
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"state\":\"active\"}";

#[tokio::test]
async fn runs_share_one_kept_alive_connection() {
    let server = Server::start(|_, _| reply(OK)).await;
    let client = http_client();
    let p = probe_with(&client, server.url("/health.json?p=1"), Some("active"));
    assert!(p.lean.is_some());
    for _ in 0..5 {
        p.check().await.unwrap();
    }
    let other = probe_with(&client, server.url("/other"), None);
    other.check().await.unwrap();
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn the_body_is_searched_across_chunks_and_reads() {
    let server = Server::start(|_, _| Reply {
        pieces: vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"st".to_vec(),
            b"\r\n7\r\nate\":\"a\r\n".to_vec(),
            b"2\r\nct\r\n6\r\nive\"}\n\r\n0\r\n\r\n".to_vec(),
        ],
        close: false,
    })
    .await;
    let client = http_client();
    let found = probe_with(&client, server.url("/"), Some("\"state\":\"active\""));
    found.check().await.unwrap();
    let missing = probe_with(&client, server.url("/"), Some("failover"));
    let missing = missing.check().await;
    assert_eq!(missing, Err(ProbeError::Body("failover".into())));
    assert_eq!(server.connections(), 1, "both answers read to their end");
}

#[tokio::test]
async fn an_unexpected_status_is_evidence() {
    let server =
        Server::start(|_, _| reply("HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")).await;
    let got = probe(server.url("/"), Some("active")).check().await;
    assert_eq!(
        got,
        Err(ProbeError::Status {
            got: 503,
            expected: vec![200]
        })
    );
}

/// A kept-alive connection the server closed while it was idle: the run tries
/// once more on a new one instead of failing.
#[tokio::test]
async fn a_connection_the_server_closed_is_replaced() {
    let server = Server::start(|_, _| Reply {
        pieces: vec![OK.as_bytes().to_vec()],
        close: true,
    })
    .await;
    let p = probe(server.url("/"), None);
    for _ in 0..3 {
        p.check().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn redirects_are_followed_as_reqwest_follows_them() {
    let server = Server::start(|path, _| match path {
        "/old" => reply("HTTP/1.1 301 Moved\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n"),
        _ => reply(OK),
    })
    .await;
    probe(server.url("/old"), Some("active"))
        .check()
        .await
        .unwrap();
}

#[tokio::test]
async fn broken_answers_are_about_the_region() {
    let garbage = Server::start(|_, _| Reply {
        pieces: vec![b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()],
        close: true,
    })
    .await;
    let err = probe(garbage.url("/?token=hunter2"), None)
        .check()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProbeError::Transport(t) if t.contains("invalid HTTP response")),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let cut = Server::start(|_, _| Reply {
        pieces: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome".to_vec()],
        close: true,
    })
    .await;
    let err = probe(cut.url("/"), Some("active"))
        .check()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProbeError::Transport(t) if t.contains("reading the body")),
        "{err}"
    );
    assert!(!err.monitor_side());
}

/// A real reqwest failure (a refused connection on loopback) names its URL; the
/// probe's error keeps the host and path and drops the credentials and the query,
/// on either way.
#[tokio::test]
async fn transport_errors_do_not_carry_credentials_or_queries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for url in [
        format!("http://user:hunter2@127.0.0.1:{port}/health?X-Amz-Signature=hunter2"),
        format!("http://127.0.0.1:{port}/health?X-Amz-Signature=hunter2"),
    ] {
        let err = probe(url, None).check().await.unwrap_err();
        assert!(matches!(err, ProbeError::Transport(_)), "{err}");
        let err = err.to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.contains(&format!("http://127.0.0.1:{port}/health?<redacted>")),
            "{err}"
        );
    }

    let bad = probe("http://user:hunter2@exa mple.com/?k=hunter2".into(), None);
    let err = bad.check().await.unwrap_err();
    assert!(err.monitor_side());
    let err = err.to_string();
    assert!(err.starts_with("invalid url"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// `Connection: close` is obeyed even when the server leaves the connection open:
/// each run opens its own.
#[tokio::test]
async fn a_connection_the_server_asks_to_close_is_not_reused() {
    let server = Server::start(|_, _| {
        reply("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nactive")
    })
    .await;
    let p = probe(server.url("/"), Some("active"));
    for _ in 0..3 {
        p.check().await.unwrap();
    }
    assert_eq!(server.connections(), 3);
}

/// A body of a length is read only until `expect_body` is found: the rest may
/// never come. Such a connection is not reused (its answer was not read to the end).
#[tokio::test]
async fn a_slow_body_is_read_only_as_far_as_the_check_needs() {
    let server = Server::start(|_, _| Reply {
        pieces: vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec(),
            b"{\"state\":".to_vec(),
            b"\"active\"".to_vec(),
        ],
        close: false,
    })
    .await;
    let p = probe(server.url("/"), Some("\"state\":\"active\""));
    for _ in 0..2 {
        // A guard against a hang only; the check itself does not wait for the rest.
        let got = tokio::time::timeout(Duration::from_secs(30), p.check()).await;
        assert_eq!(got, Ok(Ok(())));
    }
    assert_eq!(server.connections(), 2);
}

/// A body without a length or chunks ends with the connection: searched to there,
/// and the connection never reused.
#[tokio::test]
async fn a_body_until_the_close_is_searched_to_the_end() {
    let server = Server::start(|_, _| Reply {
        pieces: vec![
            b"HTTP/1.0 200 OK\r\n\r\n{\"state\":".to_vec(),
            b"\"failover\"}".to_vec(),
        ],
        close: true,
    })
    .await;
    let client = http_client();
    probe_with(&client, server.url("/"), Some("failover"))
        .check()
        .await
        .unwrap();
    let missing = probe_with(&client, server.url("/"), Some("active"))
        .check()
        .await;
    assert_eq!(missing, Err(ProbeError::Body("active".into())));
    assert_eq!(server.connections(), 2);
}

/// A connect that fails on the monitor's own limits (its file descriptors, the
/// system's, its local ports, socket buffers) is about the monitor; a refused or
/// unreachable one is about the region. At 20,000 probes a stall's catch-up once ran
/// the process out of descriptors: that is no outage of the region.
#[test]
fn a_connect_failing_on_the_monitors_own_limits_is_about_the_monitor() {
    let probe = HttpProbe::new(
        &http_client(),
        "http://127.0.0.1:9/health?token=hunter2".into(),
        vec![200],
        None,
        Duration::from_secs(1),
    );
    for errno in [
        libc::EMFILE,
        libc::ENFILE,
        libc::EADDRNOTAVAIL,
        libc::ENOBUFS,
    ] {
        let err = probe.connect_failed(&std::io::Error::from_raw_os_error(errno));
        assert!(err.monitor_side(), "errno {errno}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    for errno in [
        libc::ECONNREFUSED,
        libc::ECONNRESET,
        libc::EHOSTUNREACH,
        libc::ENETUNREACH,
    ] {
        let err = probe.connect_failed(&std::io::Error::from_raw_os_error(errno));
        assert!(
            matches!(err, ProbeError::Transport(_)),
            "errno {errno}: {err}"
        );
    }
    // Through reqwest (TLS probes, redirects), the same rule on the error's causes.
    let wrapped = std::io::Error::other(std::io::Error::from_raw_os_error(libc::EMFILE));
    assert!(caused_by_own_limit(&wrapped));
    let refused = std::io::Error::other(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
    assert!(!caused_by_own_limit(&refused));
}
