//! A small HTTP/1.1 server over the stack's TCP sockets.
//!
//! * [`request`]: the request-head parser (pure, fuzzed);
//! * [`HttpServer`]: a fixed set of [`Limits::max_connections`] sockets
//!   listening on one port, keep-alive, one request at a time per
//!   connection (pipelined requests wait their turn in the socket), errors
//!   answered with their status and the connection closed, idle
//!   connections reclaimed;
//! * [`Handler`]: what the caller supplies, routes to [`Response`]s whose
//!   bodies may be generated while they are sent ([`BodySource`],
//!   [`BytePattern`] for `/bytes/N`).

pub mod request;
mod server;

pub use request::{Method, RequestError, RequestHead, Version, parse_request};
pub use server::HttpServer;

use crate::stack::NetInfo;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

/// The server's bounds. Every one of them caps memory or time a client can
/// take; [`Limits::DEFAULT`] states the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The TCP port served.
    pub port: u16,
    /// Sockets, so connections open at once (handshakes included); a SYN
    /// beyond them is answered with RST by the stack, never queued.
    pub max_connections: usize,
    /// The longest request head, request line and empty line included
    /// (larger: 431).
    pub max_head_bytes: usize,
    /// Header fields in one request at most (more: 431).
    pub max_headers: usize,
    /// The largest request body, by Content-Length (larger: 413). Bodies
    /// are read and dropped: the handler sees only the head.
    pub max_body_bytes: u64,
    /// A connection that makes no progress (no byte received while it
    /// waits for a request, no byte sent while it answers) for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// A request head must arrive whole within this time of its first
    /// byte (408 otherwise).
    pub head_timeout: Duration,
    /// A handshake (SYN to established) must end within this time, or its
    /// socket, which the connection limit counts, is reset and listens
    /// again.
    pub handshake_timeout: Duration,
    /// Each socket's receive buffer in bytes.
    pub rx_buffer_bytes: usize,
    /// Each socket's transmit buffer in bytes (the data in flight, so the
    /// throughput of one connection).
    pub tx_buffer_bytes: usize,
}

impl Limits {
    /// Port 80, 32 connections, 8 KiB heads of at most 64 fields, bodies
    /// up to 64 KiB, 15 s idle, 10 s per head, 3 s per handshake, 4 KiB
    /// receive and 32 KiB
    /// transmit buffers per socket (1.2 MiB of heap for all 32).
    pub const DEFAULT: Self = Self {
        port: 80,
        max_connections: 32,
        max_head_bytes: 8 * 1024,
        max_headers: 64,
        max_body_bytes: 64 * 1024,
        idle_timeout: Duration::from_secs(15),
        head_timeout: Duration::from_secs(10),
        handshake_timeout: Duration::from_secs(3),
        rx_buffer_bytes: 4 * 1024,
        tx_buffer_bytes: 32 * 1024,
    };
}

impl Limits {
    /// Heap the server takes when it starts, for its sockets' buffers
    /// (each connection's request buffer comes on top: up to
    /// `max_head_bytes` while a head is read).
    pub const fn socket_memory(&self) -> usize {
        self.max_connections * (self.rx_buffer_bytes + self.tx_buffer_bytes)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A response body whose bytes are produced as they are sent.
pub trait BodySource {
    /// Fills `buffer` with the next bytes (as many as fit and are left);
    /// returns how many. 0 before the promised length ends the connection.
    fn fill(&mut self, buffer: &mut [u8]) -> usize;
}

/// A response body.
pub enum Body {
    /// No body.
    Empty,
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// Bytes in the kernel image.
    Static(&'static [u8]),
    /// `len` bytes generated while sent.
    Stream {
        /// The length announced in Content-Length.
        len: u64,
        /// Where the bytes come from.
        source: Box<dyn BodySource + Send>,
    },
}

impl Body {
    /// The body's length.
    pub fn len(&self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Bytes(bytes) => bytes.len() as u64,
            Self::Static(bytes) => bytes.len() as u64,
            Self::Stream { len, .. } => *len,
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("Empty"),
            Self::Bytes(bytes) => write!(f, "Bytes({})", bytes.len()),
            Self::Static(bytes) => write!(f, "Static({})", bytes.len()),
            Self::Stream { len, .. } => write!(f, "Stream({len})"),
        }
    }
}

/// What a [`Handler`] answers.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The Content-Type, if the body has one.
    pub content_type: Option<&'static str>,
    /// An `Allow` field (for 405).
    pub allow: Option<&'static str>,
    /// Close the connection after this response.
    pub close: bool,
    /// The body (not sent for HEAD requests; its length is).
    pub body: Body,
}

impl Response {
    /// `status` with a plain-text body.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            allow: None,
            close: false,
            body: Body::Bytes(body.into()),
        }
    }

    /// 200 with `len` bytes of [`BytePattern`].
    pub fn bytes(len: u64) -> Self {
        Self {
            status: 200,
            content_type: Some("application/octet-stream"),
            allow: None,
            close: false,
            body: Body::Stream {
                len,
                source: Box::new(BytePattern::new()),
            },
        }
    }

    /// 404 Not Found.
    pub fn not_found() -> Self {
        Self::text(404, "not found\n")
    }

    /// 405 Method Not Allowed, naming the methods that are (`"GET, HEAD"`).
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::text(405, "method not allowed\n")
        }
    }

    /// `status` with its reason as the body, and the connection closed.
    pub fn error(status: u16) -> Self {
        let mut body = Vec::from(reason(status).as_bytes());
        body.push(b'\n');
        Self {
            close: true,
            ..Self::text(status, body)
        }
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The bytes of `/bytes/N`: byte `i` is `i % 251`, so a lost, doubled or
/// reordered segment shows (251 is prime, no power of two is a multiple of
/// it). A client checks with the same formula.
#[derive(Clone, Copy, Debug, Default)]
pub struct BytePattern {
    offset: u64,
}

impl BytePattern {
    /// From byte 0.
    pub const fn new() -> Self {
        Self { offset: 0 }
    }

    /// Byte `offset` of the pattern.
    pub const fn byte_at(offset: u64) -> u8 {
        (offset % 251) as u8
    }
}

impl BodySource for BytePattern {
    fn fill(&mut self, buffer: &mut [u8]) -> usize {
        let mut value = (self.offset % 251) as u8;
        for byte in buffer.iter_mut() {
            *byte = value;
            value = if value == 250 { 0 } else { value + 1 };
        }
        self.offset += buffer.len() as u64;
        buffer.len()
    }
}

/// The length in a `/bytes/N` path: `Some(Ok(N))` for `/bytes/N` with
/// `N <= max`, `Some(Err(()))` for a `/bytes/` path with a bad or too large
/// N, `None` for other paths.
#[allow(clippy::result_unit_err)]
pub fn bytes_route(path: &str, max: u64) -> Option<Result<u64, ()>> {
    let digits = path.strip_prefix("/bytes/")?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Err(()));
    }
    Some(digits.parse::<u64>().ok().filter(|n| *n <= max).ok_or(()))
}

/// Counters of the server and the device under it, for `/stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted since the server started.
    pub connections: u64,
    /// Connections open now.
    pub active: u64,
    /// Requests parsed (answered or being answered).
    pub requests: u64,
    /// Connection attempts refused because every socket was busy (SYNs
    /// no listening socket took; retransmitted SYNs count again).
    pub refused: u64,
    /// Requests refused by the server: malformed (400), too large (413,
    /// 431), unsupported (501, 505), too slow (408).
    pub errors: u64,
    /// Connections closed for want of progress.
    pub timeouts: u64,
    /// Connections the client reset or abandoned mid-request.
    pub resets: u64,
    /// Response bytes queued for sending, heads included.
    pub bytes_tx: u64,
    /// Frames received.
    pub frames_rx: u64,
    /// Frames transmitted.
    pub frames_tx: u64,
    /// Frames dropped (oversized received frames, transmit queue full).
    pub drops: u64,
    /// Errors the device reported.
    pub device_errors: u64,
    /// Heap bytes in use, as the kernel's probe says (see
    /// [`HttpServer::with_heap_probe`]).
    pub heap_used: Option<u64>,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connections={} active={} requests={} refused={} errors={} timeouts={} resets={} \
             bytes_tx={} frames_rx={} frames_tx={} drops={} device_errors={}",
            self.connections,
            self.active,
            self.requests,
            self.refused,
            self.errors,
            self.timeouts,
            self.resets,
            self.bytes_tx,
            self.frames_rx,
            self.frames_tx,
            self.drops,
            self.device_errors
        )?;
        match self.heap_used {
            Some(bytes) => write!(f, " heap_used={bytes}"),
            None => Ok(()),
        }
    }
}

/// What a handler may show besides the request: the counters and the
/// interface's configuration, as of this poll.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The counters.
    pub stats: &'a Stats,
    /// The interface: MAC, address, gateway, lease.
    pub net: &'a NetInfo,
}

/// The caller's routes.
pub trait Handler {
    /// Answers one request. Called once per request, after the head is
    /// parsed and before its body (if any) is read.
    fn respond(&mut self, request: &RequestHead<'_>, context: &Context<'_>) -> Response;
}

impl<F> Handler for F
where
    F: FnMut(&RequestHead<'_>, &Context<'_>) -> Response,
{
    fn respond(&mut self, request: &RequestHead<'_>, context: &Context<'_>) -> Response {
        self(request, context)
    }
}

#[cfg(test)]
mod tests;
