//! The stack and the HTTP server end to end over a fake wire: two
//! in-memory frame queues joining two `NetDevice`s, the server's stack on
//! one end and a second smoltcp interface acting as client on the other,
//! with static addresses.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use stratus_driver_api::{NetDevice, NetError, clock};
use stratus_netstack::http::{
    BytePattern, Context, HttpServer, Limits, Method, RequestHead, Response, Stats, bytes_route,
};
use stratus_netstack::smoltcp::iface::SocketHandle;
use stratus_netstack::smoltcp::socket::tcp;
use stratus_netstack::smoltcp::wire::IpAddress;
use stratus_netstack::{Ipv4Cidr, NetConfig, NetStack};

// ---------------------------------------------------------------- the wire

/// Frames in flight one way, at most `capacity` of them.
#[derive(Default)]
struct Queue {
    frames: Mutex<VecDeque<Vec<u8>>>,
}

/// One end of the wire.
struct FakeNic {
    name: &'static str,
    mac: [u8; 6],
    rx: Arc<Queue>,
    tx: Arc<Queue>,
    capacity: usize,
}

impl NetDevice for FakeNic {
    fn name(&self) -> &str {
        self.name
    }
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn mtu(&self) -> usize {
        1500
    }
    fn link_up(&self) -> bool {
        true
    }
    fn queue_count(&self) -> usize {
        1
    }
    fn transmit(&self, frame: &[u8]) -> Result<(), NetError> {
        if frame.len() > 1514 {
            return Err(NetError::TooLarge(frame.len()));
        }
        let mut frames = self.tx.frames.lock().unwrap();
        if frames.len() >= self.capacity {
            return Err(NetError::Busy);
        }
        frames.push_back(frame.to_vec());
        Ok(())
    }
    fn receive(&self, buffer: &mut [u8]) -> Result<Option<usize>, NetError> {
        let Some(frame) = self.rx.frames.lock().unwrap().pop_front() else {
            return Ok(None);
        };
        if frame.len() > buffer.len() {
            return Err(NetError::TooLarge(frame.len()));
        }
        buffer[..frame.len()].copy_from_slice(&frame);
        Ok(Some(frame.len()))
    }
    fn receive_pending(&self) -> bool {
        !self.rx.frames.lock().unwrap().is_empty()
    }
    fn can_transmit(&self) -> bool {
        self.tx.frames.lock().unwrap().len() < self.capacity
    }
    fn receive_interrupts(&self) -> bool {
        // HostServices' wait polls `done` every 50 µs: as good as an
        // interrupt for these tests.
        true
    }
}

fn wire() -> (Arc<FakeNic>, Arc<FakeNic>) {
    let a_to_b = Arc::new(Queue::default());
    let b_to_a = Arc::new(Queue::default());
    let server = FakeNic {
        name: "fake-server",
        mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        rx: b_to_a.clone(),
        tx: a_to_b.clone(),
        capacity: 128,
    };
    let client = FakeNic {
        name: "fake-client",
        mac: [0x52, 0x54, 0, 0x65, 0x43, 0x21],
        rx: a_to_b,
        tx: b_to_a,
        capacity: 128,
    };
    (Arc::new(server), Arc::new(client))
}

fn host_clock() {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now);
    clock::install(|| Some(START.get()?.elapsed().as_micros() as u64));
}

// ------------------------------------------------------------ the fixture

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const READY: &str = "stratus: ready arch=host\n";

fn routes(request: &RequestHead<'_>, cx: &Context<'_>) -> Response {
    if !matches!(request.method, Method::Get | Method::Head) {
        return Response::method_not_allowed("GET, HEAD");
    }
    match request.path() {
        "/" => Response::text(200, READY),
        "/stats" => Response::text(200, format!("{}\n", cx.stats)),
        "/net" => Response::text(200, format!("{}\n", cx.net)),
        path => match bytes_route(path, 1 << 30) {
            Some(Ok(len)) => Response::bytes(len),
            Some(Err(())) => Response::error(400),
            None => Response::not_found(),
        },
    }
}

type Routes = fn(&RequestHead<'_>, &Context<'_>) -> Response;

struct Net {
    server_stack: NetStack,
    server: HttpServer<Routes>,
    client: NetStack,
    next_port: u16,
}

fn address(address: Ipv4Addr) -> NetConfig {
    NetConfig::Static {
        address: Ipv4Cidr {
            address,
            prefix: 24,
        },
        gateway: None,
    }
}

impl Net {
    fn new(limits: Limits) -> Self {
        host_clock();
        let (server_nic, client_nic) = wire();
        let server_stack = NetStack::new(server_nic, address(SERVER));
        let client = NetStack::new(client_nic, address(CLIENT));
        let mut server_stack = server_stack;
        let mut server = HttpServer::new(limits, routes as Routes).with_heap_probe(|| 4096);
        server.start(&mut server_stack);
        Self {
            server_stack,
            server,
            client,
            next_port: 40_000,
        }
    }

    /// One round of both ends.
    fn step(&mut self) {
        self.server_stack.poll();
        self.server.poll(&mut self.server_stack);
        self.server_stack.poll();
        self.client.poll();
    }

    /// Steps until `done` (at most 20 s of wall time).
    fn until(&mut self, what: &str, mut done: impl FnMut(&mut Self) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            self.step();
        }
    }

    /// Steps for `time` of wall time.
    fn run_for(&mut self, time: Duration) {
        let start = Instant::now();
        while start.elapsed() < time {
            self.step();
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.client.sockets().get_mut::<tcp::Socket>(handle)
    }

    /// A client socket connecting to the server (not waiting).
    fn start_connect(&mut self) -> SocketHandle {
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0; 16 * 1024]),
        );
        let handle = self.client.add_socket(socket);
        self.next_port += 1;
        let port = self.next_port;
        let (iface, sockets) = self.client.parts();
        sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(iface.context(), (IpAddress::Ipv4(SERVER), 80), port)
            .unwrap();
        handle
    }

    /// A connected client socket.
    fn connect(&mut self) -> SocketHandle {
        let handle = self.start_connect();
        self.until("the connection", |net| {
            net.socket(handle).state() == tcp::State::Established
        });
        handle
    }

    fn send(&mut self, handle: SocketHandle, mut bytes: &[u8]) {
        self.until("sending", |net| {
            if !bytes.is_empty() {
                let sent = net.socket(handle).send_slice(bytes).unwrap();
                bytes = &bytes[sent..];
            }
            bytes.is_empty()
        });
    }

    /// Reads one response: status, head, body (by Content-Length).
    fn response(&mut self, handle: SocketHandle) -> Reply {
        let mut input = Vec::new();
        let mut head_end = None;
        let mut body_len = None;
        self.until("a response", |net| {
            let socket = net.socket(handle);
            while socket.can_recv() {
                let want = match (head_end, body_len) {
                    (Some(end), Some(len)) => end + len - input.len(),
                    _ => 1,
                };
                if want == 0 {
                    break;
                }
                socket
                    .recv(|data| {
                        let n = data.len().min(want);
                        input.extend_from_slice(&data[..n]);
                        (n, ())
                    })
                    .unwrap();
                if head_end.is_none()
                    && let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n")
                {
                    head_end = Some(end + 4);
                    let head = std::str::from_utf8(&input[..end]).unwrap();
                    body_len = Some(
                        head.lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .map(|v| v.parse::<usize>().unwrap())
                            .unwrap_or(0),
                    );
                }
            }
            matches!((head_end, body_len), (Some(end), Some(len)) if input.len() == end + len)
        });
        let end = head_end.unwrap();
        let head = String::from_utf8(input[..end].to_vec()).unwrap();
        let status = head[9..12].parse().unwrap();
        Reply {
            status,
            head,
            body: input[end..].to_vec(),
        }
    }

    /// Waits until the server closed the connection (FIN or RST).
    fn closed_by_server(&mut self, handle: SocketHandle) {
        self.until("the server to close", |net| {
            let socket = net.socket(handle);
            while socket.can_recv() {
                socket.recv(|data| (data.len(), ())).unwrap();
            }
            !socket.may_recv()
        });
        // As a client does: close its side too.
        self.socket(handle).close();
    }

    fn get(&mut self, handle: SocketHandle, path: &str) -> Reply {
        let request = format!("GET {path} HTTP/1.1\r\nHost: 10.0.2.15\r\nUser-Agent: test\r\n\r\n");
        self.send(handle, request.as_bytes());
        self.response(handle)
    }

    fn stats(&mut self) -> Stats {
        self.server.stats()
    }
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

// ------------------------------------------------------------- the tests

#[test]
fn get_root_and_keep_alive() {
    let mut net = Net::new(Limits::DEFAULT);
    let conn = net.connect();
    let reply = net.get(conn, "/");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), READY);
    assert!(
        reply.head.contains("Connection: keep-alive\r\n"),
        "{}",
        reply.head
    );
    assert!(reply.head.contains("Content-Type: text/plain"));
    // A second request on the same connection.
    let reply = net.get(conn, "/stats");
    assert_eq!(reply.status, 200);
    let text = reply.text();
    assert!(text.contains("connections=1 active=1 requests=2"), "{text}");
    assert!(text.contains("heap_used=4096"), "{text}");
    assert!(
        net.socket(conn).may_recv(),
        "keep-alive closed the connection"
    );
    let reply = net.get(conn, "/net");
    assert_eq!(
        reply.text(),
        "mac 52:54:00:12:34:56 mtu 1500 address 10.0.2.15/24 gateway none\n"
    );
    let reply = net.get(conn, "/nothing");
    assert_eq!(reply.status, 404);
    assert_eq!(net.stats().requests, 4);
    assert!(net.stats().frames_rx > 0 && net.stats().frames_tx > 0);
}

#[test]
fn a_mebibyte_arrives_intact() {
    let mut net = Net::new(Limits::DEFAULT);
    let conn = net.connect();
    let reply = net.get(conn, "/bytes/1048576");
    assert_eq!(reply.status, 200);
    assert!(reply.head.contains("Content-Length: 1048576\r\n"));
    assert_eq!(reply.body.len(), 1 << 20);
    for (i, byte) in reply.body.iter().enumerate() {
        assert_eq!(*byte, BytePattern::byte_at(i as u64), "byte {i}");
    }
    // The connection is still good for another request.
    assert_eq!(
        net.get(conn, "/bytes/10").body,
        (0..10).collect::<Vec<u8>>()
    );
    assert!(net.stats().bytes_tx > 1 << 20);
}

#[test]
fn pipelined_and_split_requests() {
    let mut net = Net::new(Limits::DEFAULT);
    let conn = net.connect();
    // Three requests in one segment: three responses, in order.
    net.send(
        conn,
        b"GET /bytes/3 HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let first = net.response(conn);
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, &[0u8, 1, 2][..])
    );
    // HEAD: the GET's length announced, no body sent.
    let mut input = Vec::new();
    net.until("the HEAD response", |net| {
        let socket = net.socket(conn);
        if socket.can_recv() {
            socket
                .recv(|data| {
                    input.extend_from_slice(data);
                    (data.len(), ())
                })
                .unwrap();
        }
        input.windows(4).filter(|w| w == b"\r\n\r\n").count() >= 2
            && input.ends_with(READY.as_bytes())
    });
    let text = String::from_utf8(input).unwrap();
    let head_reply = text.split("\r\n\r\n").next().unwrap();
    assert!(head_reply.contains(&format!("Content-Length: {}\r\n", READY.len())));
    assert!(text.ends_with(READY));
    // One byte at a time.
    for byte in b"GET /bytes/5 HTTP/1.1\r\nHost: a\r\n\r\n" {
        net.send(conn, &[*byte]);
        for _ in 0..3 {
            net.step();
        }
    }
    let reply = net.response(conn);
    assert_eq!(reply.body, [0, 1, 2, 3, 4]);
}

#[test]
fn malformed_request_gets_400_and_close() {
    let mut net = Net::new(Limits::DEFAULT);
    let conn = net.connect();
    net.send(conn, b"GET / HTTP/1.1\r\nHost : bad\r\n\r\n");
    let reply = net.response(conn);
    assert_eq!(reply.status, 400);
    assert!(reply.head.contains("Connection: close\r\n"));
    net.closed_by_server(conn);
    assert_eq!(net.stats().errors, 1);
    // Garbage with bare line feeds is refused as soon as it is seen.
    let conn = net.connect();
    net.send(conn, b"hello\nworld\n");
    assert_eq!(net.response(conn).status, 400);
    net.closed_by_server(conn);
}

#[test]
fn oversized_requests_get_431_and_413() {
    let mut net = Net::new(Limits::DEFAULT);
    let conn = net.connect();
    let mut request = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    while request.len() < 10_000 {
        request
            .push_str("X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    request.push_str("\r\n");
    net.send(conn, request.as_bytes());
    let reply = net.response(conn);
    assert_eq!(reply.status, 431);
    net.closed_by_server(conn);
    let conn = net.connect();
    net.send(
        conn,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n",
    );
    assert_eq!(net.response(conn).status, 413);
    net.closed_by_server(conn);
    // A body within the limit is read and dropped; the connection goes on.
    let conn = net.connect();
    let mut post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n\r\n".to_vec();
    post.extend(std::iter::repeat_n(b'z', 20_000));
    net.send(conn, &post);
    let reply = net.response(conn);
    assert_eq!(reply.status, 405);
    assert!(reply.head.contains("Allow: GET, HEAD\r\n"));
    assert_eq!(net.get(conn, "/").status, 200);
    assert_eq!(net.stats().errors, 2);
}

#[test]
fn connections_beyond_the_limit_are_refused() {
    let limits = Limits {
        max_connections: 4,
        ..Limits::DEFAULT
    };
    let mut net = Net::new(limits);
    let held: Vec<SocketHandle> = (0..4).map(|_| net.connect()).collect();
    net.run_for(Duration::from_millis(20));
    assert_eq!(net.stats().active, 4);
    // The fifth is answered with RST.
    let extra = net.start_connect();
    net.until("the refusal", |net| {
        net.socket(extra).state() == tcp::State::Closed
    });
    net.run_for(Duration::from_millis(20));
    assert!(net.stats().refused >= 1, "{}", net.stats());
    // Every held connection still works.
    for conn in &held {
        assert_eq!(net.get(*conn, "/").status, 200);
    }
    // One closes; a new connection gets its socket.
    net.socket(held[0]).close();
    net.until("the slot to be free", |net| net.stats().active == 3);
    let conn = net.connect();
    assert_eq!(net.get(conn, "/").status, 200);
    assert_eq!(net.stats().connections, 5);
}

#[test]
fn many_connections_at_once() {
    let mut net = Net::new(Limits::DEFAULT);
    let conns: Vec<SocketHandle> = (0..32).map(|_| net.start_connect()).collect();
    net.until("32 connections", |net| {
        conns
            .iter()
            .all(|c| net.socket(*c).state() == tcp::State::Established)
    });
    for conn in &conns {
        net.send(*conn, b"GET /bytes/20000 HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    for conn in &conns {
        let reply = net.response(*conn);
        assert_eq!(reply.body.len(), 20_000);
        assert!(
            reply
                .body
                .iter()
                .enumerate()
                .all(|(i, b)| *b == BytePattern::byte_at(i as u64))
        );
    }
    assert_eq!(net.stats().connections, 32);
    assert_eq!(net.stats().requests, 32);
}

#[test]
fn a_client_reset_leaves_the_server_answering() {
    let mut net = Net::new(Limits::DEFAULT);
    // Reset in the middle of a request head.
    let conn = net.connect();
    net.send(conn, b"GET / HTTP/1.1\r\nHo");
    net.run_for(Duration::from_millis(20));
    net.socket(conn).abort();
    net.until("the reset to count", |net| net.stats().resets == 1);
    // Reset in the middle of a large response.
    let conn = net.connect();
    net.send(conn, b"GET /bytes/16777216 HTTP/1.1\r\nHost: a\r\n\r\n");
    net.until("some of the body", |net| {
        net.socket(conn).recv_queue() > 10_000
    });
    net.socket(conn).abort();
    net.until("the second reset", |net| {
        net.stats().resets == 2 && net.stats().active == 0
    });
    // The server still answers.
    let conn = net.connect();
    let reply = net.get(conn, "/");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), READY);
}

#[test]
fn idle_connections_are_reclaimed() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(200),
        head_timeout: Duration::from_millis(150),
        ..Limits::DEFAULT
    };
    let mut net = Net::new(limits);
    // Idle after a request: closed quietly.
    let conn = net.connect();
    assert_eq!(net.get(conn, "/").status, 200);
    net.closed_by_server(conn);
    assert_eq!(net.stats().timeouts, 1);
    // Half a head for too long: 408.
    let conn = net.connect();
    net.send(conn, b"GET / HTTP/1.1\r\n");
    let reply = net.response(conn);
    assert_eq!(reply.status, 408);
    net.closed_by_server(conn);
    net.until("all slots free", |net| net.stats().active == 0);
}

#[test]
fn http_1_0_closes_after_the_response() {
    let mut net = Net::new(Limits::DEFAULT);
    let conn = net.connect();
    net.send(conn, b"GET / HTTP/1.0\r\n\r\n");
    let reply = net.response(conn);
    assert_eq!(reply.status, 200);
    assert!(reply.head.contains("Connection: close\r\n"));
    net.closed_by_server(conn);
    // The slot (in TIME-WAIT on the server's side) is reclaimed at once.
    net.until("the slot to be free", |net| net.stats().active == 0);
}

#[test]
fn dhcp_mode_asks_for_a_lease() {
    host_clock();
    let (server_nic, client_nic) = wire();
    let mut stack = NetStack::new(server_nic, NetConfig::Dhcp);
    assert_eq!(stack.address(), None);
    stack.poll();
    // A DHCPDISCOVER: broadcast, IPv4, UDP from port 68 to port 67.
    let mut frame = [0u8; 1514];
    let len = client_nic
        .receive(&mut frame)
        .unwrap()
        .expect("no frame sent");
    let frame = &frame[..len];
    assert_eq!(&frame[0..6], &[0xff; 6]);
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    assert_eq!(frame[23], 17);
    let udp = 14 + usize::from(frame[14] & 0x0f) * 4;
    assert_eq!(&frame[udp..udp + 4], &[0, 68, 0, 67]);
}

/// The server as a kernel runs it: `poll_once` in a loop, sleeping in
/// `DriverServices::wait_until` (the host fake) between events, on its
/// own thread; the client on this one.
#[test]
fn the_run_loop_sleeps_between_events() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use stratus_driver_api::dma::host::HostDma;
    use stratus_driver_api::services::host::HostServices;

    static DMA: HostDma = HostDma {
        outstanding: std::sync::atomic::AtomicUsize::new(0),
    };
    static SERVICES: HostServices = HostServices::new(&DMA);
    static STOP: AtomicBool = AtomicBool::new(false);
    static ROUNDS: AtomicU64 = AtomicU64::new(0);
    host_clock();
    let (server_nic, client_nic) = wire();
    let server_thread = std::thread::spawn(move || {
        let mut stack = NetStack::new(server_nic, address(SERVER));
        let mut server = HttpServer::new(Limits::DEFAULT, routes as Routes);
        let start = Instant::now();
        while !STOP.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(30) {
            stack.poll_once(&SERVICES, &mut server);
            ROUNDS.fetch_add(1, Ordering::SeqCst);
        }
        server.stats()
    });
    let mut client = NetStack::new(client_nic, address(CLIENT));
    let socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        tcp::SocketBuffer::new(vec![0; 4096]),
    );
    let conn = client.add_socket(socket);
    let (iface, sockets) = client.parts();
    sockets
        .get_mut::<tcp::Socket>(conn)
        .connect(iface.context(), (IpAddress::Ipv4(SERVER), 80), 45_000)
        .unwrap();
    let request = b"GET /bytes/1048576 HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut sent = false;
    let mut body = Vec::new();
    let mut head_len = None;
    let start = Instant::now();
    while body.len() < (1 << 20) + head_len.unwrap_or(usize::MAX / 2) {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out");
        client.poll();
        let socket = client.sockets().get_mut::<tcp::Socket>(conn);
        if !sent && socket.can_send() {
            assert_eq!(socket.send_slice(request).unwrap(), request.len());
            sent = true;
        }
        while socket.can_recv() {
            socket
                .recv(|data| {
                    body.extend_from_slice(data);
                    (data.len(), ())
                })
                .unwrap();
        }
        if head_len.is_none() {
            head_len = body
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| p + 4);
        }
        client.poll();
        std::thread::sleep(Duration::from_micros(100));
    }
    let head_len = head_len.unwrap();
    assert!(body.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(
        body[head_len..]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == BytePattern::byte_at(i as u64))
    );
    // Idle with a keep-alive connection open: the loop sleeps until the
    // timer, it does not spin.
    let before = ROUNDS.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1200));
    let idle_rounds = ROUNDS.load(Ordering::SeqCst) - before;
    STOP.store(true, Ordering::SeqCst);
    let stats = server_thread.join().unwrap();
    assert!(idle_rounds <= 10, "{idle_rounds} rounds in 1.2 s of idling");
    assert_eq!(stats.requests, 1);
}

#[test]
fn sixteen_mebibytes_arrive_intact() {
    let mut net = Net::new(Limits::DEFAULT);
    let conn = net.connect();
    let reply = net.get(conn, "/bytes/16777216");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 16 << 20);
    let bad = reply
        .body
        .iter()
        .enumerate()
        .position(|(i, b)| *b != BytePattern::byte_at(i as u64));
    assert_eq!(bad, None);
    assert_eq!(net.stats().drops, 0);
}

#[test]
fn a_client_that_stops_reading_is_reclaimed() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(200),
        ..Limits::DEFAULT
    };
    let mut net = Net::new(limits);
    let conn = net.connect();
    net.send(conn, b"GET /bytes/16777216 HTTP/1.1\r\nHost: a\r\n\r\n");
    // Never read: both windows fill, the server makes no progress.
    net.until("the reset", |net| {
        net.socket(conn).state() == tcp::State::Closed
    });
    assert_eq!(net.stats().timeouts, 1);
    net.until("the slot to be free", |net| net.stats().active == 0);
}

#[test]
fn ping_and_udp() {
    use stratus_netstack::smoltcp::phy::ChecksumCapabilities;
    use stratus_netstack::smoltcp::socket::{icmp, udp};
    use stratus_netstack::smoltcp::wire::{Icmpv4Packet, Icmpv4Repr};

    let mut net = Net::new(Limits::DEFAULT);
    // ICMP echo: the server's interface answers by itself.
    let mut socket = icmp::Socket::new(
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
    );
    socket.bind(icmp::Endpoint::Ident(0x5354)).unwrap();
    let ping = net.client.add_socket(socket);
    let request = Icmpv4Repr::EchoRequest {
        ident: 0x5354,
        seq_no: 7,
        data: b"stratus ping",
    };
    {
        let socket = net.client.sockets().get_mut::<icmp::Socket>(ping);
        let buffer = socket
            .send(request.buffer_len(), IpAddress::Ipv4(SERVER))
            .unwrap();
        let mut packet = Icmpv4Packet::new_unchecked(buffer);
        request.emit(&mut packet, &ChecksumCapabilities::default());
    }
    let mut reply = None;
    net.until("the echo reply", |net| {
        let socket = net.client.sockets().get_mut::<icmp::Socket>(ping);
        if let Ok((data, from)) = socket.recv() {
            let packet = Icmpv4Packet::new_checked(data).unwrap();
            let repr = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default()).unwrap();
            if let Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } = repr
            {
                reply = Some((ident, seq_no, data.to_vec(), from));
            }
        }
        reply.is_some()
    });
    assert_eq!(
        reply,
        Some((0x5354, 7, b"stratus ping".to_vec(), IpAddress::Ipv4(SERVER)))
    );
    // UDP: an echo socket on the server's stack.
    let udp_socket = || {
        udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 2048]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 2048]),
        )
    };
    let mut echo = udp_socket();
    echo.bind(7).unwrap();
    let echo = net.server_stack.add_socket(echo);
    let mut client = udp_socket();
    client.bind(5000).unwrap();
    let client = net.client.add_socket(client);
    net.client
        .sockets()
        .get_mut::<udp::Socket>(client)
        .send_slice(b"datagram", (IpAddress::Ipv4(SERVER), 7))
        .unwrap();
    let mut answer = Vec::new();
    net.until("the UDP echo", |net| {
        let server = net.server_stack.sockets().get_mut::<udp::Socket>(echo);
        if let Ok((data, meta)) = server.recv() {
            let data = data.to_vec();
            server.send_slice(&data, meta.endpoint).unwrap();
        }
        let socket = net.client.sockets().get_mut::<udp::Socket>(client);
        if let Ok((data, _)) = socket.recv() {
            answer = data.to_vec();
        }
        !answer.is_empty()
    });
    assert_eq!(answer, b"datagram");
}

#[test]
fn many_pipelined_requests_and_100_continue() {
    let mut net = Net::new(Limits::DEFAULT);
    let conn = net.connect();
    let mut requests = String::new();
    for n in 0..20 {
        requests.push_str(&format!("GET /bytes/{n} HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
    net.send(conn, requests.as_bytes());
    for n in 0..20 {
        let reply = net.response(conn);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), n);
    }
    // A client that waits for 100 Continue before its body.
    net.send(
        conn,
        b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    );
    assert_eq!(net.response(conn).status, 100);
    net.send(conn, b"abc");
    assert_eq!(net.response(conn).status, 405);
    assert_eq!(net.get(conn, "/").status, 200);
}

// ----------------------------------------------------- a tiny DHCP server

fn ones_complement(data: &[u8], mut sum: u32) -> u16 {
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The DHCP message type and transaction id of a client's frame, if it is
/// a DHCP request (Ethernet, IPv4, UDP 68 -> 67).
fn dhcp_message(frame: &[u8]) -> Option<(u8, [u8; 4])> {
    if frame.get(12..14)? != [8, 0] || *frame.get(23)? != 17 {
        return None;
    }
    let udp = 14 + usize::from(frame[14] & 0x0f) * 4;
    if frame.get(udp..udp + 4)? != [0, 68, 0, 67] {
        return None;
    }
    let bootp = &frame[udp + 8..];
    let xid = bootp.get(4..8)?.try_into().ok()?;
    let mut options = bootp.get(240..)?;
    while let [code, len, rest @ ..] = options {
        if *code == 53 {
            return Some((*rest.first()?, xid));
        }
        options = rest.get(usize::from(*len)..)?;
    }
    None
}

/// An OFFER (2) or ACK (5) for 10.0.2.15/24 from 10.0.2.2.
fn dhcp_reply(kind: u8, xid: [u8; 4], client_mac: [u8; 6]) -> Vec<u8> {
    let mut bootp = vec![2, 1, 6, 0];
    bootp.extend_from_slice(&xid);
    bootp.extend_from_slice(&[0; 4]); // secs, flags
    bootp.extend_from_slice(&[0; 4]); // ciaddr
    bootp.extend_from_slice(&SERVER.octets()); // yiaddr
    bootp.extend_from_slice(&CLIENT.octets()); // siaddr
    bootp.extend_from_slice(&[0; 4]); // giaddr
    bootp.extend_from_slice(&client_mac);
    bootp.resize(236, 0);
    bootp.extend_from_slice(&[99, 130, 83, 99]);
    bootp.extend_from_slice(&[53, 1, kind]);
    bootp.extend_from_slice(&[54, 4, 10, 0, 2, 2]);
    bootp.extend_from_slice(&[51, 4, 0, 1, 0x51, 0x80]); // 86400 s
    bootp.extend_from_slice(&[1, 4, 255, 255, 255, 0]);
    bootp.extend_from_slice(&[3, 4, 10, 0, 2, 2]);
    bootp.extend_from_slice(&[6, 4, 10, 0, 2, 3]);
    bootp.push(255);
    let udp_len = 8 + bootp.len();
    let mut udp = vec![0, 67, 0, 68, (udp_len >> 8) as u8, udp_len as u8, 0, 0];
    udp.extend_from_slice(&bootp);
    let mut pseudo = CLIENT.octets().to_vec();
    pseudo.extend_from_slice(&[255, 255, 255, 255, 0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let mut sum = 0u32;
    for pair in pseudo.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    let check = ones_complement(&udp, sum);
    udp[6..8].copy_from_slice(&check.to_be_bytes());
    let total = 20 + udp.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        64,
        17,
        0,
        0,
    ];
    ip.extend_from_slice(&CLIENT.octets());
    ip.extend_from_slice(&[255, 255, 255, 255]);
    let check = ones_complement(&ip, 0);
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[0x52, 0x54, 0, 0x65, 0x43, 0x21, 8, 0]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&udp);
    frame
}

#[test]
fn a_dhcp_lease_configures_the_interface() {
    host_clock();
    let (server_nic, client_nic) = wire();
    let mac = server_nic.mac();
    let mut stack = NetStack::new(server_nic, NetConfig::Dhcp);
    let start = Instant::now();
    while stack.lease().is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "no lease");
        stack.poll();
        let mut frame = [0u8; 1514];
        while let Some(len) = client_nic.receive(&mut frame).unwrap() {
            match dhcp_message(&frame[..len]) {
                Some((1, xid)) => client_nic.transmit(&dhcp_reply(2, xid, mac)).unwrap(),
                Some((3, xid)) => client_nic.transmit(&dhcp_reply(5, xid, mac)).unwrap(),
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let lease = stack.lease().unwrap();
    assert_eq!(
        lease.to_string(),
        "10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3 lease_s=86400 server 10.0.2.2"
    );
    assert_eq!(
        stack.address(),
        Some(Ipv4Cidr {
            address: SERVER,
            prefix: 24
        })
    );
    assert_eq!(stack.gateway(), Some(CLIENT));
}

/// A TCP SYN to the server's port 80 from `from:port` at a MAC nobody
/// answers for: a handshake that never completes.
fn black_hole_syn(from: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut frame = vec![
        0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x02, 0, 0, 0, 0, 0x99, 8, 0,
    ];
    let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&from.octets());
    ip.extend_from_slice(&SERVER.octets());
    let check = ones_complement(&ip, 0);
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    let mut tcp = port.to_be_bytes().to_vec();
    tcp.extend_from_slice(&[0, 80]); // destination port
    tcp.extend_from_slice(&[0, 0, 0x10, 0]); // sequence number
    tcp.extend_from_slice(&[0, 0, 0, 0]); // acknowledgment number
    tcp.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]); // SYN, window
    let mut pseudo = from.octets().to_vec();
    pseudo.extend_from_slice(&SERVER.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    let mut sum = 0u32;
    for pair in pseudo.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    let check = ones_complement(&tcp, sum);
    tcp[16..18].copy_from_slice(&check.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

#[test]
fn half_open_handshakes_give_their_sockets_back() {
    let limits = Limits {
        max_connections: 2,
        handshake_timeout: Duration::from_millis(200),
        ..Limits::DEFAULT
    };
    let mut net = Net::new(limits);
    let black_hole = Ipv4Addr::new(10, 0, 2, 99);
    for port in [1000, 1001] {
        net.client
            .device()
            .transmit(&black_hole_syn(black_hole, port))
            .unwrap();
    }
    net.run_for(Duration::from_millis(20));
    // Both sockets wait in their handshakes: a real client is refused.
    let refused = net.start_connect();
    net.until("the refusal", |net| {
        net.socket(refused).state() == tcp::State::Closed
    });
    // After the handshake timeout the sockets listen again.
    net.until("the half-open sockets to be reset", |net| {
        net.stats().timeouts == 2
    });
    let conn = net.connect();
    assert_eq!(net.get(conn, "/").status, 200);
    assert!(net.stats().refused >= 1);
}
