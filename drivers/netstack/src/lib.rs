//! TCP/IP for Stratus kernels: smoltcp over any
//! [`NetDevice`](stratus_driver_api::NetDevice), and a bounded HTTP/1.1
//! server.
//!
//! * [`NetStack`]: the interface (Ethernet, ARP, IPv4, ICMP echo replies,
//!   UDP, TCP) configured by DHCPv4 or a static address ([`NetConfig`],
//!   parsed from the command line's `ip=` and `gateway=`), polled from a
//!   loop that sleeps in `DriverServices::wait_until` until a frame
//!   arrives or a timer falls due: interrupts and the clock drive it, not
//!   a busy loop;
//! * [`http::HttpServer`]: a fixed number of connections, keep-alive,
//!   malformed or oversized requests refused (400, 413, 431), idle
//!   connections reclaimed, responses streamed from the caller's
//!   [`http::Handler`].
//!
//! The crate touches no hardware and has no `unsafe`. Its time is
//! [`stratus_driver_api::clock::now_micros`]. See docs/networking.md.
//!
//! ```no_run
//! # extern crate alloc;
//! # use alloc::{format, sync::Arc};
//! # use stratus_driver_api::{DriverServices, NetDevice};
//! use stratus_netstack::http::{Context, HttpServer, Limits, RequestHead, Response, bytes_route};
//! use stratus_netstack::{NetConfig, NetStack};
//!
//! fn serve(device: Arc<dyn NetDevice>, services: &dyn DriverServices, words: &[&str]) -> ! {
//!     let config = NetConfig::from_words(words.iter().copied()).unwrap_or(NetConfig::Dhcp);
//!     let mut stack = NetStack::new(device, config);
//!     let routes = |request: &RequestHead<'_>, cx: &Context<'_>| match request.path() {
//!         "/" => Response::text(200, format!("stratus: ready {}\n", cx.net)),
//!         "/stats" => Response::text(200, format!("{}\n", cx.stats)),
//!         path => match bytes_route(path, 1 << 30) {
//!             Some(Ok(len)) => Response::bytes(len),
//!             Some(Err(())) => Response::error(400),
//!             None => Response::not_found(),
//!         },
//!     };
//!     let mut server = HttpServer::new(Limits::DEFAULT, routes).with_heap_probe(|| 0);
//!     stack.run(services, &mut server)
//! }
//! ```
//!
//! A kernel that does other work calls [`NetStack::poll_once`] in its own
//! loop instead of [`NetStack::run`].
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod config;
pub mod device;
pub mod http;
pub mod stack;

pub use config::{ConfigError, Ipv4Cidr, NetConfig};
pub use device::DeviceCounters;
pub use smoltcp;
pub use stack::{Lease, NetApp, NetInfo, NetStack};
