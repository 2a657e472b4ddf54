//! The lean HTTP/1.1 client of plain-`http` probes: a GET pre-encoded once, kept-alive
//! connections pooled per host and port, the response read only as far as the check
//! needs (the head, then the body only to look for `expect_body`).
//!
//! A connection owns its buffers, so a run that finds one in the pool allocates
//! nothing. Redirects, proxies, credentials in the URL and TLS are not handled here:
//! `http.rs` sends those through reqwest.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bodies are read up to this size to look for `expect_body`.
pub const MAX_BODY: usize = 64 * 1024;
/// The longest response head read.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// A connection's read buffer to start with: a typical head and a small body.
const BUFFER: usize = 4 * 1024;
/// Idle connections are closed after this long (the server may have closed them).
const IDLE_FOR: Duration = Duration::from_secs(30);
/// Idle connections kept per host and port, at least: more when more probes share the
/// endpoint (see [`Endpoint::checkin`]).
const MIN_IDLE: usize = 16;

/// Why an exchange failed.
#[derive(Debug)]
pub enum WireError {
    /// The connection failed before any byte of the answer came back: on a kept-alive
    /// connection the server may simply have closed it, so a new one is worth a try.
    BeforeAnswer(io::Error),
    /// The connection failed or closed in the middle of the answer.
    Io(io::Error),
    /// The answer is not HTTP/1.x.
    Invalid(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::BeforeAnswer(e) | WireError::Io(e) => write!(f, "connection error: {e}"),
            WireError::Invalid(why) => write!(f, "invalid HTTP response: {why}"),
        }
    }
}

/// Where the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// At the end of the connection (HTTP/1.0 style): never reusable.
    UntilClose,
}

/// The head of an answer.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    /// HTTP/1.1 and no `Connection: close`.
    pub keep_alive: bool,
    /// A `Location` header came with it.
    pub location: bool,
}

impl Head {
    /// A redirect reqwest would follow.
    pub fn redirect(&self) -> bool {
        self.location && matches!(self.status, 301 | 302 | 303 | 307 | 308)
    }
}

/// One host and port, and its idle connections, most recently used last.
pub struct Endpoint {
    host: Box<str>,
    port: u16,
    /// The address, when the host is an IP literal (no resolution).
    literal: Option<SocketAddr>,
    idle: Mutex<VecDeque<Conn>>,
}

impl Endpoint {
    pub fn new(host: &str, port: u16, literal: Option<SocketAddr>) -> Self {
        Self {
            host: host.into(),
            port,
            literal,
            idle: Mutex::new(VecDeque::new()),
        }
    }

    fn idle(&self) -> MutexGuard<'_, VecDeque<Conn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection, closing those idle too long.
    pub fn checkout(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = self.idle();
        while idle
            .front()
            .is_some_and(|c| now.saturating_duration_since(c.idle_since) >= IDLE_FOR)
        {
            idle.pop_front();
        }
        idle.pop_back()
    }

    /// Puts back a connection whose last answer was read to its end.
    ///
    /// Every probe of this endpoint holds one `Arc` of it and never has two runs in
    /// flight, so it never needs more idle connections than it has holders. A fixed
    /// cap below that closes a connection after every run once more runs than the cap
    /// are in flight (a backlog after a stall): each run then connects anew and leaves
    /// a socket in TIME_WAIT, which makes the backlog worse.
    pub fn checkin(self: &Arc<Self>, mut conn: Conn) {
        conn.idle_since = Instant::now();
        conn.shrink();
        let cap = Arc::strong_count(self).max(MIN_IDLE);
        let mut idle = self.idle();
        while idle.len() >= cap {
            idle.pop_front();
        }
        idle.push_back(conn);
    }

    pub async fn connect(&self) -> io::Result<Conn> {
        let stream = match self.literal {
            Some(addr) => TcpStream::connect(addr).await?,
            None => TcpStream::connect((&*self.host, self.port)).await?,
        };
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            body: Vec::new(),
            idle_since: Instant::now(),
        })
    }
}

/// One connection and its buffers: `buf[start..end]` is read and not yet consumed.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The body as far as it was read to look for `expect_body`.
    body: Vec<u8>,
    idle_since: Instant,
}

impl Conn {
    /// Sends `request` and reads the head of the answer (interim 1xx heads skipped).
    pub async fn send(&mut self, request: &[u8]) -> Result<Head, WireError> {
        self.stream
            .write_all(request)
            .await
            .map_err(WireError::BeforeAnswer)?;
        self.start = 0;
        self.end = 0;
        let mut answered = false;
        loop {
            if let Some(head) = self.parse_head()? {
                return Ok(head);
            }
            match self.fill().await {
                Ok(0) if !answered => {
                    return Err(WireError::BeforeAnswer(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(0) => return Err(WireError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => answered = true,
                Err(e) if !answered => return Err(WireError::BeforeAnswer(e)),
                Err(e) => return Err(WireError::Io(e)),
            }
        }
    }

    /// The head, once all of it is in the buffer; interim heads are consumed.
    fn parse_head(&mut self) -> Result<Option<Head>, WireError> {
        loop {
            if self.start == self.end {
                return Ok(None);
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            let parsed = response
                .parse(&self.buf[self.start..self.end])
                .map_err(|e| WireError::Invalid(e.to_string()))?;
            let httparse::Status::Complete(len) = parsed else {
                return Ok(None);
            };
            self.start += len;
            let head = head_of(&response)?;
            if !(100..200).contains(&head.status) || head.status == 101 {
                return Ok(Some(head));
            }
        }
    }

    /// Reads more into the buffer, making room first; 0 at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_HEAD {
                self.buf.resize(self.buf.len() * 2, 0);
            } else {
                return Err(io::Error::other("response head too large"));
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Consumes the body if all of it is already here, without waiting for more
    /// (the check does not need it): whether the connection can be used again.
    pub fn skip_buffered_body(&mut self, head: &Head) -> bool {
        let mut decoder = Decoder::new(head.framing);
        let Ok((used, done)) = decoder.decode(&self.buf[self.start..self.end], |_| {}) else {
            return false;
        };
        self.start += used;
        done && head.keep_alive && self.start == self.end
    }

    /// Reads the body until `needle` is found, the body ends, or [`MAX_BODY`] bytes
    /// were searched: whether it was found, and whether the connection can be used
    /// again.
    pub async fn find_in_body(
        &mut self,
        head: &Head,
        needle: &[u8],
    ) -> Result<(bool, bool), WireError> {
        let keep = needle.len().saturating_sub(1);
        let mut decoder = Decoder::new(head.framing);
        self.body.clear();
        let mut searched: usize = 0;
        loop {
            let Conn {
                buf,
                body,
                start,
                end,
                ..
            } = self;
            let (used, done) = decoder.decode(&buf[*start..*end], |data| {
                let room = MAX_BODY.saturating_sub(body.len());
                body.extend_from_slice(&data[..data.len().min(room)]);
            })?;
            *start += used;
            let from = searched.saturating_sub(keep);
            if memchr::memmem::find(&self.body[from..], needle).is_some() {
                // Found: reusable only if the rest is here already.
                let rest = done || self.skip_rest(&mut decoder);
                return Ok((true, rest && head.keep_alive && self.start == self.end));
            }
            searched = self.body.len();
            if done {
                return Ok((false, head.keep_alive && self.start == self.end));
            }
            if searched >= MAX_BODY {
                return Ok((false, false));
            }
            match self.fill().await {
                Ok(0) if head.framing == Framing::UntilClose => return Ok((false, false)),
                Ok(0) => return Err(WireError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => {}
                Err(e) => return Err(WireError::Io(e)),
            }
        }
    }

    /// Consumes what is buffered of the rest of a body: whether it ended.
    fn skip_rest(&mut self, decoder: &mut Decoder) -> bool {
        match decoder.decode(&self.buf[self.start..self.end], |_| {}) {
            Ok((used, done)) => {
                self.start += used;
                done
            }
            Err(_) => false,
        }
    }

    /// Gives back memory a large answer made the buffers grow to.
    fn shrink(&mut self) {
        if self.buf.len() > BUFFER {
            self.buf.truncate(BUFFER);
            self.buf.shrink_to_fit();
        }
        if self.body.capacity() > BUFFER {
            self.body = Vec::new();
        }
    }
}

/// The parts of a head the check needs.
fn head_of(response: &httparse::Response<'_, '_>) -> Result<Head, WireError> {
    let status = response.code.unwrap_or_default();
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut encoded = false;
    let mut close = response.version != Some(1);
    let mut location = false;
    for h in response.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| WireError::Invalid("invalid content-length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(WireError::Invalid("conflicting content-length".into()));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            chunked = last_token(h.value).eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if name.eq_ignore_ascii_case("location") {
            location = true;
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if encoded {
        Framing::UntilClose
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    Ok(Head {
        status,
        framing,
        keep_alive: !close && framing != Framing::UntilClose && status != 101,
        location,
    })
}

fn last_token(value: &[u8]) -> &[u8] {
    value
        .rsplit(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

/// Where a body decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the size line: its hex digits so far.
    Size(u8),
    /// After the size: an extension, up to the end of the line.
    Extension,
    SizeEnd,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    Trailer,
    TrailerLine,
    End,
}

/// Takes a body apart as it arrives: a length, chunks, or up to the close.
struct Decoder {
    framing: Framing,
    /// Bytes left: of the body (length), of the current chunk (chunked).
    left: u64,
    chunk: Chunk,
}

impl Decoder {
    fn new(framing: Framing) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Self {
            framing,
            left,
            chunk: Chunk::Size(0),
        }
    }

    /// Decodes from `input`, handing the body's bytes to `out`: how many bytes of
    /// `input` it used, and whether the body ended.
    fn decode(
        &mut self,
        input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<(usize, bool), WireError> {
        match self.framing {
            Framing::Length(_) => {
                let take = input
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                out(&input[..take]);
                self.left -= take as u64;
                Ok((take, self.left == 0))
            }
            Framing::UntilClose => {
                out(input);
                Ok((input.len(), false))
            }
            Framing::Chunked => self.chunked(input, out),
        }
    }

    fn chunked(
        &mut self,
        input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<(usize, bool), WireError> {
        let bad = |why: &str| WireError::Invalid(format!("invalid chunked body: {why}"));
        let mut i = 0;
        while i < input.len() {
            if self.chunk == Chunk::Data {
                let take = (input.len() - i).min(usize::try_from(self.left).unwrap_or(usize::MAX));
                out(&input[i..i + take]);
                i += take;
                self.left -= take as u64;
                if self.left == 0 {
                    self.chunk = Chunk::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.chunk = match (self.chunk, b) {
                (Chunk::Size(n), b) if b.is_ascii_hexdigit() => {
                    if n >= 15 {
                        return Err(bad("chunk size too large"));
                    }
                    let digit = (b as char).to_digit(16).unwrap_or_default();
                    self.left = self.left * 16 + u64::from(digit);
                    Chunk::Size(n + 1)
                }
                (Chunk::Size(n), b';' | b' ' | b'\t') if n > 0 => Chunk::Extension,
                (Chunk::Size(n), b'\r') if n > 0 => Chunk::SizeEnd,
                (Chunk::Extension, b'\r') => Chunk::SizeEnd,
                (Chunk::Extension, _) => Chunk::Extension,
                (Chunk::SizeEnd, b'\n') if self.left == 0 => Chunk::Trailer,
                (Chunk::SizeEnd, b'\n') => Chunk::Data,
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataLf, b'\n') => Chunk::Size(0),
                (Chunk::Trailer, b'\r') => Chunk::End,
                (Chunk::Trailer, b'\n') => return Ok((i, true)),
                (Chunk::TrailerLine, b'\n') => Chunk::Trailer,
                (Chunk::Trailer | Chunk::TrailerLine, _) => Chunk::TrailerLine,
                (Chunk::End, b'\n') => return Ok((i, true)),
                _ => return Err(bad("unexpected byte")),
            };
        }
        Ok((i, false))
    }
}

#[cfg(test)]
mod tests;
