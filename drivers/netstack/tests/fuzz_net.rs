//! Fuzz targets: what the network hands the stack. HTTP request heads
//! (`fuzz_http_request`), the `ip=`/`gateway=` words of the command line
//! (`fuzz_net_config`), `/bytes/N` paths (`fuzz_bytes_route`) and whole
//! Ethernet frames into the stack with the HTTP server listening
//! (`fuzz_net_frames`).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use stratus_driver_api::{NetDevice, NetError};
use stratus_netstack::http::{
    Context, HttpServer, Limits, RequestHead, Response, bytes_route, parse_request,
};
use stratus_netstack::{Ipv4Cidr, NetConfig, NetStack};

const SMALL: Limits = Limits {
    max_head_bytes: 96,
    max_headers: 4,
    max_body_bytes: 10,
    ..Limits::DEFAULT
};

#[test]
fn fuzz_http_request() {
    let corpus: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: 10.0.2.15\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
        b"GET /bytes/16777216 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n",
        b"POST /x HTTP/1.0\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
        b"\r\n\r\nHEAD /stats?x=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET * HTTP/2.0\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ];
    stratus_fuzz::fuzz("http-request", corpus, |data| {
        for limits in [&Limits::DEFAULT, &SMALL] {
            match parse_request(data, limits) {
                Ok(Some(head)) => {
                    assert!(head.head_len <= data.len() && head.head_len <= limits.max_head_bytes);
                    assert!(data[..head.head_len].ends_with(b"\r\n\r\n"));
                    assert!(head.content_length <= limits.max_body_bytes);
                    assert!(!head.target.is_empty() && !head.target.contains(' '));
                    assert!(head.headers().count() <= limits.max_headers);
                    let _ = head.path();
                    let _ = head.header("host");
                    // The same head arriving in two reads: incomplete first.
                    assert_eq!(parse_request(&data[..head.head_len - 1], limits), Ok(None));
                }
                Ok(None) => assert!(data.len() < limits.max_head_bytes),
                Err(error) => {
                    assert!([400, 413, 431, 501, 505].contains(&error.status()));
                    let _ = error.to_string();
                }
            }
        }
    });
}

#[test]
fn fuzz_net_config() {
    let corpus: &[&[u8]] = &[
        b"net=http ip=10.0.2.15/24 gateway=10.0.2.2",
        b"ip=dhcp",
        b"ip=192.168.100.200 exit=qemu",
        b"gateway=1.2.3.4 ip=1.2.3.5/8",
    ];
    stratus_fuzz::fuzz("net-config", corpus, |data| {
        let text = String::from_utf8_lossy(data);
        match NetConfig::from_words(text.split_whitespace()) {
            Ok(NetConfig::Dhcp) => {}
            Ok(NetConfig::Static { address, gateway }) => {
                assert!(address.prefix <= 32);
                let again = match gateway {
                    Some(g) => format!("ip={address} gateway={g}"),
                    None => format!("ip={address}"),
                };
                assert_eq!(
                    NetConfig::from_words(again.split_whitespace()),
                    Ok(NetConfig::Static { address, gateway })
                );
                let _ = NetConfig::Static { address, gateway }.to_string();
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
    });
}

#[test]
fn fuzz_bytes_route() {
    let corpus: &[&[u8]] = &[
        b"/bytes/16777216",
        b"/bytes/0",
        b"/bytes/18446744073709551615",
    ];
    stratus_fuzz::fuzz("bytes-route", corpus, |data| {
        let path = String::from_utf8_lossy(data);
        if let Some(Ok(n)) = bytes_route(&path, 1 << 30) {
            assert!(n <= 1 << 30);
            assert_eq!(path, format!("/bytes/{}", &path[7..]));
        }
    });
}

/// A device whose receive queue the fuzzer fills; what it transmits is
/// dropped.
struct FrameSink {
    rx: Mutex<VecDeque<Vec<u8>>>,
}

impl NetDevice for FrameSink {
    fn name(&self) -> &str {
        "fuzz"
    }
    fn mac(&self) -> [u8; 6] {
        [0x52, 0x54, 0, 0x12, 0x34, 0x56]
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
        assert!(frame.len() <= 1514);
        Ok(())
    }
    fn receive(&self, buffer: &mut [u8]) -> Result<Option<usize>, NetError> {
        let Some(frame) = self.rx.lock().unwrap().pop_front() else {
            return Ok(None);
        };
        if frame.len() > buffer.len() {
            return Err(NetError::TooLarge(frame.len()));
        }
        buffer[..frame.len()].copy_from_slice(&frame);
        Ok(Some(frame.len()))
    }
    fn receive_pending(&self) -> bool {
        !self.rx.lock().unwrap().is_empty()
    }
}

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 + TCP frame from 10.0.2.2:40000 to 10.0.2.15:80.
fn tcp_frame(flags: u8, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![
        0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x54, 0, 0x65, 0x43, 0x21, 8, 0,
    ];
    let total = 20 + 20 + payload.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ];
    ip.extend_from_slice(&[10, 0, 2, 2, 10, 0, 2, 15]);
    let sum = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut tcp = vec![0x9c, 0x40, 0, 80];
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    let mut pseudo = vec![10, 0, 2, 2, 10, 0, 2, 15, 0, 6];
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    let mut sum = 0u32;
    for pair in pseudo.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    let sum = checksum(&tcp, sum);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

#[test]
fn fuzz_net_frames() {
    let arp = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x65, 0x43, 0x21, 8, 6, 0, 1, 8, 0, 6,
        4, 0, 1, 0x52, 0x54, 0, 0x65, 0x43, 0x21, 10, 0, 2, 2, 0, 0, 0, 0, 0, 0, 10, 0, 2, 15,
    ];
    let syn = tcp_frame(0x02, 1000, &[]);
    let data = tcp_frame(0x18, 1001, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let corpus: Vec<&[u8]> = vec![&arp, &syn, &data];
    let device = Arc::new(FrameSink {
        rx: Mutex::new(VecDeque::new()),
    });
    let config = NetConfig::Static {
        address: Ipv4Cidr {
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix: 24,
        },
        gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
    };
    let mut stack = NetStack::new(device.clone(), config);
    let limits = Limits {
        max_connections: 2,
        ..Limits::DEFAULT
    };
    let routes = |_: &RequestHead<'_>, _: &Context<'_>| Response::text(200, "ok\n");
    let mut server = HttpServer::new(limits, routes);
    server.start(&mut stack);
    stratus_fuzz::fuzz("net-frames", &corpus, |frame| {
        device.rx.lock().unwrap().push_back(frame.to_vec());
        stack.poll();
        server.poll(&mut stack);
        stack.poll();
        assert!(server.stats().active <= 2);
    });
    assert!(stack.counters().frames_rx > 0);
}
