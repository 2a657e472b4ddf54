//! The body decoder and the head's framing, byte by byte.

use super::*;

/// Decodes `input` cut into pieces of `step` bytes: the body, and whether it ended
/// exactly at the end of the input.
fn decode_in_steps(
    framing: Framing,
    input: &[u8],
    step: usize,
) -> Result<(Vec<u8>, bool), WireError> {
    let mut decoder = Decoder::new(framing);
    let mut body = Vec::new();
    let mut at = 0;
    let mut pending: Vec<u8> = Vec::new();
    while at < input.len() {
        let end = (at + step).min(input.len());
        pending.extend_from_slice(&input[at..end]);
        at = end;
        let (used, done) = decoder.decode(&pending, |d| body.extend_from_slice(d))?;
        pending.drain(..used);
        if done {
            return Ok((body, at == input.len() && pending.is_empty()));
        }
    }
    Ok((body, false))
}

#[test]
fn chunks_extensions_and_trailers_decode_whatever_the_cuts() {
    let input = b"4\r\nWiki\r\n6;name=value\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n";
    for step in 1..input.len() {
        let (body, exact) = decode_in_steps(Framing::Chunked, input, step).unwrap();
        assert_eq!(body, b"Wikipedia in \r\n\r\nchunks.", "step {step}");
        assert!(exact, "step {step}");
    }
}

#[test]
fn a_body_of_a_length_ends_at_its_length() {
    let (body, exact) = decode_in_steps(Framing::Length(5), b"hello", 2).unwrap();
    assert_eq!(body, b"hello");
    assert!(exact);
    let mut d = Decoder::new(Framing::Length(0));
    assert_eq!(d.decode(b"", |_| {}).unwrap(), (0, true));
}

#[test]
fn malformed_chunks_are_refused() {
    for bad in [
        &b"x\r\n"[..],
        b"\r\n",
        b"4\r\nWikiXX",
        b"11111111111111111\r\n",
    ] {
        assert!(
            decode_in_steps(Framing::Chunked, bad, 1).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

fn head(text: &str) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    assert!(r.parse(text.as_bytes()).unwrap().is_complete());
    head_of(&r).unwrap()
}

#[test]
fn the_head_says_where_the_body_ends_and_whether_the_connection_stays() {
    let h = head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (Framing::Length(12), true));
    let h =
        head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, true));
    let h = head("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, Close\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (Framing::Length(2), false));
    let h = head("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n");
    assert!(!h.keep_alive);
    let h = head("HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
    let h = head("HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (Framing::Length(0), true));
    let h = head("HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n");
    assert!(h.redirect());
    let h = head("HTTP/1.1 304 Not Modified\r\nLocation: /x\r\n\r\n");
    assert!(!h.redirect());
}

#[test]
fn conflicting_lengths_are_refused() {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let text = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n";
    assert!(r.parse(text.as_bytes()).unwrap().is_complete());
    assert!(head_of(&r).is_err());
}

/// Idle connections of `endpoint` after `n` runs all finished at once.
async fn idle_after_overlapping_runs(endpoint: &Arc<Endpoint>, n: usize) -> usize {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(endpoint.connect().await.unwrap());
    }
    for conn in conns {
        endpoint.checkin(conn);
    }
    endpoint.idle().len()
}

#[tokio::test]
async fn the_pool_keeps_a_connection_per_probe_sharing_the_endpoint() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and keeps every connection open, as a kept-alive server does.
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });

    // 40 probes on one endpoint, every run in flight at once (a backlog after a
    // stall): every connection is kept, so the next runs connect nothing.
    let endpoint = Arc::new(Endpoint::new("127.0.0.1", addr.port(), Some(addr)));
    let holders: Vec<_> = (0..39).map(|_| endpoint.clone()).collect();
    assert_eq!(idle_after_overlapping_runs(&endpoint, 40).await, 40);

    // With one probe left, the pool shrinks back to its floor on the next check-in.
    drop(holders);
    assert_eq!(idle_after_overlapping_runs(&endpoint, 1).await, MIN_IDLE);
    server.abort();
}
