//! The connection state machine of [`HttpServer`].
//!
//! Each of the [`Limits::max_connections`] slots owns one TCP socket for
//! the server's lifetime. A slot listens; the stack hands it a connection
//! (the socket leaves `LISTEN`); the slot reads one request head at a time
//! into its input buffer (at most [`Limits::max_head_bytes`]), asks the
//! handler, drops any request body, sends the response as the socket's
//! transmit buffer drains, and then either reads the next request (bytes
//! of pipelined requests already wait in its buffer or the socket) or
//! closes. When every slot is busy no socket listens and smoltcp answers a
//! SYN with RST: connections beyond the limit are refused, never queued.

use super::request::{Method, parse_request};
use super::{Body, Context, Handler, Limits, Response, Stats, reason};
use crate::stack::{NetApp, NetInfo, NetStack};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use core::time::Duration;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant;

/// Requests one connection may complete in one poll (pipelined requests
/// beyond wait for the next poll, so one client cannot starve the others).
const REQUESTS_PER_POLL: usize = 8;

/// Calls of `send`/`recv` per connection and poll: a ring buffer hands out
/// at most two contiguous pieces.
const CHUNKS_PER_POLL: usize = 3;

/// The interim response to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How long a connection the server closed may take to finish closing.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The caller's handler with what it may show of the interface.
struct Responder<'a> {
    handler: &'a mut dyn Handler,
    net: &'a NetInfo,
}

/// What a slot is doing.
enum Phase {
    /// The socket listens (or is in its handshake): no connection yet.
    Listening,
    /// Reading a request head.
    Reading,
    /// Dropping `left` bytes of request body, then sending.
    Discarding { left: u64, response: Outgoing },
    /// Sending a response.
    Sending(Outgoing),
    /// The server closed its side; waiting for the socket to close.
    Closing,
    /// Aborted: an RST goes out with the next poll, then the slot listens.
    Aborted,
}

/// A response being sent.
struct Outgoing {
    head: Vec<u8>,
    head_sent: usize,
    body: Body,
    /// Body bytes still to send (0 for HEAD).
    body_left: u64,
    body_sent: usize,
    keep_alive: bool,
}

struct Slot {
    handle: SocketHandle,
    phase: Phase,
    input: Vec<u8>,
    /// When the connection last made progress.
    progress: Instant,
    /// When the first byte of the head being read arrived.
    head_started: Option<Instant>,
    /// Whether the socket listened at the end of the last poll.
    was_listening: bool,
    /// When the handshake of the connection being accepted began.
    handshake: Option<Instant>,
    /// Whether the slot stopped with work left (pipelined requests beyond
    /// [`REQUESTS_PER_POLL`]): poll again at once.
    again: bool,
}

/// The HTTP/1.1 server: a fixed set of sockets on [`Limits::port`], the
/// caller's [`Handler`] behind them.
pub struct HttpServer<H: Handler> {
    limits: Limits,
    handler: H,
    slots: Vec<Slot>,
    stats: Stats,
    heap_probe: Option<fn() -> usize>,
    syns_seen: u64,
    accepted: u64,
    started: bool,
}

impl<H: Handler> HttpServer<H> {
    /// A server with `limits`, answering with `handler`. Its sockets are
    /// added to the stack on the first [`HttpServer::poll`] (or
    /// [`HttpServer::start`]).
    pub fn new(limits: Limits, handler: H) -> Self {
        Self {
            limits,
            handler,
            slots: Vec::new(),
            stats: Stats::default(),
            heap_probe: None,
            syns_seen: 0,
            accepted: 0,
            started: false,
        }
    }

    /// Reports heap use in [`Stats::heap_used`] from `probe` (the crate
    /// cannot see the kernel's heap): `kernel_core::heap::usage().0`.
    pub fn with_heap_probe(mut self, probe: fn() -> usize) -> Self {
        self.heap_probe = Some(probe);
        self
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The counters as of the last poll.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The handler.
    pub fn handler(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Adds the listening sockets to `stack` (once).
    pub fn start(&mut self, stack: &mut NetStack) {
        if self.started {
            return;
        }
        self.started = true;
        stack.watch_port(self.limits.port);
        let now = stack.now();
        for _ in 0..self.limits.max_connections {
            let rx = tcp::SocketBuffer::new(vec![0; self.limits.rx_buffer_bytes.max(64)]);
            let tx = tcp::SocketBuffer::new(vec![0; self.limits.tx_buffer_bytes.max(64)]);
            let mut socket = tcp::Socket::new(rx, tx);
            socket.set_nagle_enabled(false);
            // smoltcp resets a connection whose peer stopped answering;
            // later than the server's own idle checks, which count it.
            socket.set_timeout(Some(duration(self.limits.idle_timeout.saturating_mul(2))));
            // Listening at once, so that no SYN of the first poll is
            // refused; a slot whose socket cannot listen tries again.
            let phase = match socket.listen(self.limits.port) {
                Ok(()) => Phase::Listening,
                Err(_) => Phase::Aborted,
            };
            let was_listening = socket.is_listening();
            let handle = stack.add_socket(socket);
            self.slots.push(Slot {
                handle,
                phase,
                input: Vec::new(),
                progress: now,
                head_started: None,
                was_listening,
                handshake: None,
                again: false,
            });
        }
        log::info!(
            target: "http",
            "serving port {} max_connections={} max_head={} max_body={} idle_s={}",
            self.limits.port,
            self.limits.max_connections,
            self.limits.max_head_bytes,
            self.limits.max_body_bytes,
            self.limits.idle_timeout.as_secs()
        );
    }

    /// Services every connection once: accepts, reads requests, sends
    /// responses, closes and reclaims. Returns how soon a timeout falls
    /// due (the caller sleeps at most that long).
    pub fn poll(&mut self, stack: &mut NetStack) -> Option<Duration> {
        self.start(stack);
        let now = stack.now();
        self.update_device_stats(stack);
        let info = stack.info();
        let mut responder = Responder {
            handler: &mut self.handler,
            net: &info,
        };
        let mut next: Option<Instant> = None;
        for index in 0..self.slots.len() {
            let socket = stack
                .sockets()
                .get_mut::<tcp::Socket>(self.slots[index].handle);
            let deadline = service(
                &mut self.slots[index],
                socket,
                now,
                &self.limits,
                &mut responder,
                &mut self.stats,
                &mut self.accepted,
            );
            if let Some(deadline) = deadline {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        // SYNs no listening socket took were answered with RST.
        let syns = stack.counters().syns;
        let new_syns = syns.saturating_sub(self.syns_seen);
        self.syns_seen = syns;
        let accepted = core::mem::take(&mut self.accepted);
        let refused = new_syns.saturating_sub(accepted);
        if refused > 0 {
            self.stats.refused += refused;
            log::debug!(target: "http", "refused {refused} connections (all busy)");
        }
        self.stats.active = self
            .slots
            .iter()
            .filter(|slot| !matches!(slot.phase, Phase::Listening | Phase::Aborted))
            .count() as u64;
        next.map(|deadline| {
            if deadline <= now {
                Duration::ZERO
            } else {
                Duration::from_micros((deadline - now).total_micros())
            }
        })
    }

    fn update_device_stats(&mut self, stack: &NetStack) {
        let counters = stack.counters();
        self.stats.frames_rx = counters.frames_rx;
        self.stats.frames_tx = counters.frames_tx;
        self.stats.drops = counters.rx_dropped + counters.tx_dropped;
        self.stats.device_errors = counters.device_errors;
        self.stats.heap_used = self.heap_probe.map(|probe| probe() as u64);
    }
}

impl<H: Handler> NetApp for HttpServer<H> {
    fn poll(&mut self, stack: &mut NetStack) -> Option<Duration> {
        HttpServer::poll(self, stack)
    }
}

fn duration(d: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Services one slot; returns its next deadline.
fn service(
    slot: &mut Slot,
    socket: &mut tcp::Socket<'static>,
    now: Instant,
    limits: &Limits,
    handler: &mut Responder<'_>,
    stats: &mut Stats,
    accepted: &mut u64,
) -> Option<Instant> {
    let state = socket.state();
    if slot.was_listening && state != State::Listen {
        *accepted += 1;
    }
    match (&slot.phase, state) {
        // A socket that closed or went back to listening: whatever the
        // slot was doing is over.
        (_, State::Closed) | (_, State::TimeWait) => {
            if state == State::TimeWait {
                // Closed by us and acknowledged: forget the connection at
                // once (listen() clears it without sending anything).
                socket.abort();
            }
            if matches!(
                slot.phase,
                Phase::Reading | Phase::Discarding { .. } | Phase::Sending(_)
            ) {
                // The client reset it, or smoltcp gave up retransmitting.
                stats.resets += 1;
            }
            relisten(slot, socket, limits, now);
        }
        (Phase::Listening, State::Listen) => slot.handshake = None,
        (Phase::Listening, State::SynReceived) => {
            // A handshake the client never completes (a SYN flood, a lost
            // peer) gives its socket back after the handshake timeout.
            let start = *slot.handshake.get_or_insert(now);
            if now >= start + duration(limits.handshake_timeout) {
                stats.timeouts += 1;
                socket.abort();
                slot.phase = Phase::Aborted;
                slot.progress = now;
            }
        }
        (Phase::Aborted, _) => {
            // The RST went out with the last poll.
            socket.abort();
            relisten(slot, socket, limits, now);
        }
        (Phase::Listening, _) => {
            // A new connection.
            stats.connections += 1;
            slot.handshake = None;
            slot.phase = Phase::Reading;
            slot.progress = now;
            slot.head_started = None;
            drive(slot, socket, now, limits, handler, stats);
        }
        (_, State::Listen | State::SynReceived) => {
            // Reset during a connection and back to listening.
            stats.resets += 1;
            reset_slot(slot, now);
        }
        _ => drive(slot, socket, now, limits, handler, stats),
    }
    slot.was_listening = socket.state() == State::Listen;
    deadline(slot, limits)
}

fn relisten(slot: &mut Slot, socket: &mut tcp::Socket<'static>, limits: &Limits, now: Instant) {
    reset_slot(slot, now);
    if let Err(error) = socket.listen(limits.port) {
        log::warn!(target: "http", "cannot listen on port {}: {error:?}", limits.port);
        slot.phase = Phase::Aborted;
    }
}

fn reset_slot(slot: &mut Slot, now: Instant) {
    slot.phase = Phase::Listening;
    slot.handshake = None;
    slot.again = false;
    slot.input = Vec::new();
    slot.progress = now;
    slot.head_started = None;
}

fn deadline(slot: &Slot, limits: &Limits) -> Option<Instant> {
    if slot.again {
        return Some(Instant::ZERO);
    }
    let idle = slot.progress + duration(limits.idle_timeout);
    match slot.phase {
        Phase::Listening => slot
            .handshake
            .map(|start| start + duration(limits.handshake_timeout)),
        Phase::Aborted => Some(slot.progress),
        Phase::Closing => Some(slot.progress + duration(CLOSE_TIMEOUT)),
        Phase::Reading => match slot.head_started {
            Some(start) => Some(idle.min(start + duration(limits.head_timeout))),
            None => Some(idle),
        },
        Phase::Discarding { .. } | Phase::Sending(_) => Some(idle),
    }
}

/// Moves an open connection forward as far as its buffers allow.
fn drive(
    slot: &mut Slot,
    socket: &mut tcp::Socket<'static>,
    now: Instant,
    limits: &Limits,
    handler: &mut Responder<'_>,
    stats: &mut Stats,
) {
    let mut requests = 0;
    let mut passes = 0;
    slot.again = false;
    // Each pass either completes a phase or stops (break) for want of data
    // or room; the bound keeps one connection from taking the whole poll,
    // and `again` has the next poll come at once.
    loop {
        if passes == REQUESTS_PER_POLL * 3 {
            slot.again = true;
            break;
        }
        passes += 1;
        let phase = core::mem::replace(&mut slot.phase, Phase::Aborted);
        slot.phase = match phase {
            Phase::Reading => {
                if requests == REQUESTS_PER_POLL {
                    // More may wait in the buffer: the next poll goes on.
                    slot.phase = Phase::Reading;
                    slot.again = true;
                    break;
                }
                match read_head(slot, socket, now, limits, handler, stats) {
                    Some(next) => {
                        requests += 1;
                        next
                    }
                    None => {
                        // Nothing complete: wait, unless the client is gone
                        // or too slow.
                        let next = waiting(slot, socket, now, limits, stats);
                        slot.phase = next;
                        break;
                    }
                }
            }
            Phase::Discarding { mut left, response } => {
                let from_input = left.min(slot.input.len() as u64) as usize;
                slot.input.drain(..from_input);
                left -= from_input as u64;
                for _ in 0..CHUNKS_PER_POLL {
                    if left == 0 || !socket.can_recv() {
                        break;
                    }
                    let taken = socket
                        .recv(|data| {
                            let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                            (n, n)
                        })
                        .unwrap_or(0);
                    if taken > 0 {
                        slot.progress = now;
                    }
                    left -= taken as u64;
                }
                if left == 0 {
                    Phase::Sending(response)
                } else if !socket.may_recv() {
                    // The client stopped sending before its body ended.
                    stats.resets += 1;
                    socket.abort();
                    slot.phase = Phase::Aborted;
                    break;
                } else {
                    slot.phase = Phase::Discarding { left, response };
                    break;
                }
            }
            Phase::Sending(mut response) => {
                if !socket.may_send() {
                    stats.resets += 1;
                    socket.abort();
                    slot.phase = Phase::Aborted;
                    break;
                }
                match send(&mut response, socket, stats) {
                    Err(()) => {
                        log::warn!(target: "http", "response body ended early");
                        socket.abort();
                        slot.phase = Phase::Aborted;
                        break;
                    }
                    Ok(progress) => {
                        if progress {
                            slot.progress = now;
                        }
                    }
                }
                if response.head_sent < response.head.len() || response.body_left > 0 {
                    slot.phase = Phase::Sending(response);
                    break;
                }
                if response.keep_alive {
                    slot.progress = now;
                    slot.head_started = None;
                    Phase::Reading
                } else {
                    socket.close();
                    slot.progress = now;
                    slot.phase = Phase::Closing;
                    break;
                }
            }
            Phase::Closing => {
                // Drop whatever the client still sends; wait for the close.
                for _ in 0..CHUNKS_PER_POLL {
                    if !socket.can_recv() || socket.recv(|data| (data.len(), ())).is_err() {
                        break;
                    }
                }
                if now >= slot.progress + duration(CLOSE_TIMEOUT) {
                    socket.abort();
                    slot.phase = Phase::Aborted;
                } else {
                    slot.phase = Phase::Closing;
                }
                break;
            }
            other => {
                slot.phase = other;
                break;
            }
        };
    }
    // A client that stops reading its response (or sending its body) holds
    // a socket: reclaim it once it made no progress for the idle timeout.
    if matches!(slot.phase, Phase::Sending(_) | Phase::Discarding { .. })
        && now >= slot.progress + duration(limits.idle_timeout)
    {
        stats.timeouts += 1;
        log::debug!(target: "http", "connection stalled, reset");
        socket.abort();
        slot.phase = Phase::Aborted;
    }
}

/// Reads into the slot's input and parses; the phase that follows a
/// complete (or refused) head, `None` while incomplete.
fn read_head(
    slot: &mut Slot,
    socket: &mut tcp::Socket<'static>,
    now: Instant,
    limits: &Limits,
    handler: &mut Responder<'_>,
    stats: &mut Stats,
) -> Option<Phase> {
    // Parse what is buffered first (pipelined requests), then read.
    for attempt in 0..=CHUNKS_PER_POLL {
        if !slot.input.is_empty() {
            match parse_request(&slot.input, limits) {
                Ok(Some(head)) => {
                    stats.requests += 1;
                    let context = Context {
                        stats,
                        net: handler.net,
                    };
                    let mut response = handler.handler.respond(&head, &context);
                    let keep_alive = head.keep_alive && !response.close;
                    let len = response.body.len();
                    if head.method == Method::Head {
                        // The length a GET would get, and no body.
                        response.body = Body::Empty;
                    }
                    let outgoing = outgoing(response, keep_alive, len);
                    let body = head.content_length;
                    let head_len = head.head_len;
                    let expects_continue = body > 0
                        && head
                            .header("expect")
                            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
                    slot.input.drain(..head_len);
                    slot.head_started = None;
                    slot.progress = now;
                    if expects_continue
                        && socket.send_capacity() - socket.send_queue() >= CONTINUE.len()
                    {
                        // The client waits for this before it sends the
                        // body (or for its own timeout when it is missing).
                        let _ = socket.send_slice(CONTINUE);
                    }
                    return Some(if body > 0 {
                        Phase::Discarding {
                            left: body,
                            response: outgoing,
                        }
                    } else {
                        Phase::Sending(outgoing)
                    });
                }
                Ok(None) => {}
                Err(error) => {
                    stats.errors += 1;
                    log::debug!(target: "http", "{error}, answering {}", error.status());
                    return Some(refuse(slot, error.status(), now));
                }
            }
        }
        if attempt == CHUNKS_PER_POLL || !socket.can_recv() {
            return None;
        }
        let room = limits.max_head_bytes.saturating_sub(slot.input.len());
        if room == 0 {
            return None;
        }
        let input = &mut slot.input;
        let taken = socket
            .recv(|data| {
                let n = data.len().min(room);
                input.extend_from_slice(&data[..n]);
                (n, n)
            })
            .unwrap_or(0);
        if taken > 0 {
            slot.progress = now;
            slot.head_started.get_or_insert(now);
        }
    }
    None
}

/// An error response that closes the connection.
fn refuse(slot: &mut Slot, status: u16, now: Instant) -> Phase {
    slot.input = Vec::new();
    slot.head_started = None;
    slot.progress = now;
    let response = Response::error(status);
    let len = response.body.len();
    Phase::Sending(outgoing(response, false, len))
}

/// What a reading connection does when no complete head is buffered.
fn waiting(
    slot: &mut Slot,
    socket: &mut tcp::Socket<'static>,
    now: Instant,
    limits: &Limits,
    stats: &mut Stats,
) -> Phase {
    if !socket.may_recv() {
        // The client closed its side: if it left half a request, that is
        // all it will send.
        if !slot.input.is_empty() {
            stats.resets += 1;
        }
        socket.close();
        slot.progress = now;
        return Phase::Closing;
    }
    if let Some(start) = slot.head_started
        && now >= start + duration(limits.head_timeout)
    {
        stats.timeouts += 1;
        stats.errors += 1;
        return refuse(slot, 408, now);
    }
    if now >= slot.progress + duration(limits.idle_timeout) {
        if slot.input.is_empty() {
            // An idle keep-alive connection: close it quietly.
            socket.close();
            slot.progress = now;
            stats.timeouts += 1;
            return Phase::Closing;
        }
        stats.timeouts += 1;
        stats.errors += 1;
        return refuse(slot, 408, now);
    }
    Phase::Reading
}

/// The response head and body to send; `len` is the Content-Length (a
/// HEAD response announces it with an empty body).
fn outgoing(response: Response, keep_alive: bool, len: u64) -> Outgoing {
    let mut head = alloc::string::String::with_capacity(160);
    let status = response.status;
    // Writing to a String cannot fail.
    let _ = write!(
        head,
        "HTTP/1.1 {status} {}\r\nServer: stratus\r\n",
        reason(status)
    );
    let _ = write!(head, "Content-Length: {len}\r\n");
    if let Some(content_type) = response.content_type {
        let _ = write!(head, "Content-Type: {content_type}\r\n");
    }
    if let Some(allow) = response.allow {
        let _ = write!(head, "Allow: {allow}\r\n");
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let _ = write!(head, "Connection: {connection}\r\n\r\n");
    Outgoing {
        head: head.into_bytes(),
        head_sent: 0,
        body_left: response.body.len(),
        body: response.body,
        body_sent: 0,
        keep_alive,
    }
}

/// Fills the socket's transmit buffer from the response. `Ok(true)` when
/// bytes were queued; `Err` when a streamed body ended before its length.
fn send(
    response: &mut Outgoing,
    socket: &mut tcp::Socket<'static>,
    stats: &mut Stats,
) -> Result<bool, ()> {
    let mut progress = false;
    for _ in 0..CHUNKS_PER_POLL {
        if !socket.can_send()
            || (response.head_sent == response.head.len() && response.body_left == 0)
        {
            break;
        }
        let result = socket.send(|buffer| {
            let mut used = 0;
            if response.head_sent < response.head.len() {
                let head = &response.head[response.head_sent..];
                let n = head.len().min(buffer.len());
                buffer[..n].copy_from_slice(&head[..n]);
                response.head_sent += n;
                used = n;
            }
            let room = &mut buffer[used..];
            let want = room
                .len()
                .min(usize::try_from(response.body_left).unwrap_or(usize::MAX));
            if want == 0 {
                return (used, Ok(used));
            }
            let room = &mut room[..want];
            let n = match &mut response.body {
                Body::Empty => 0,
                Body::Bytes(bytes) => copy_from(bytes, &mut response.body_sent, room),
                Body::Static(bytes) => copy_from(bytes, &mut response.body_sent, room),
                Body::Stream { source, .. } => source.fill(room).min(want),
            };
            response.body_left -= n as u64;
            let ended = if n == 0 { Err(()) } else { Ok(()) };
            (used + n, ended.map(|()| used + n))
        });
        match result {
            Ok(Ok(queued)) => {
                stats.bytes_tx = stats.bytes_tx.saturating_add(queued as u64);
                progress |= queued > 0;
            }
            Ok(Err(())) => return Err(()),
            Err(_) => break,
        }
    }
    Ok(progress)
}

fn copy_from(bytes: &[u8], sent: &mut usize, room: &mut [u8]) -> usize {
    let rest = bytes.get(*sent..).unwrap_or(&[]);
    let n = rest.len().min(room.len());
    room[..n].copy_from_slice(&rest[..n]);
    *sent += n;
    n
}
