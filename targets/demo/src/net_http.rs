//! `net=http`: the first network interface, brought up by DHCP (or `ip=`
//! and `gateway=` on the command line), serving HTTP/1.1 on port 80 with
//! `stratus-netstack`:
//!
//! * `GET /`: the ready line's facts and the interface's;
//! * `GET /bytes/N`: N bytes of the pattern `i % 251` (up to 1 GiB);
//! * `GET /stats`: the server's and the device's counters and heap use,
//!   one `key=value` line.
//!
//! The ready line waits for the address (at most [`ADDRESS_WAIT`]) and
//! ends with `ip=`, the address or `none`. The stack then serves for ever,
//! sleeping between interrupts.

use crate::platform::Kernel;
use crate::platform::kernel_core::__arch::ExitStatus;
use crate::platform::kernel_core::heap;
use alloc::format;
use alloc::string::{String, ToString};
use core::time::Duration;
use stratus_driver_api::clock;
use stratus_netstack::http::{
    Context, Handler, HttpServer, Limits, Method, RequestHead, Response, bytes_route,
};
use stratus_netstack::{NetConfig, NetStack};

/// How long the ready line waits for a DHCP lease.
const ADDRESS_WAIT: Duration = Duration::from_secs(30);
/// The largest `/bytes/N`.
const MAX_BYTES: u64 = 1 << 30;

/// The routes.
struct Routes {
    ready: String,
}

impl Handler for Routes {
    fn respond(&mut self, request: &RequestHead<'_>, context: &Context<'_>) -> Response {
        if !matches!(request.method, Method::Get | Method::Head) {
            return Response::method_not_allowed("GET, HEAD");
        }
        match request.path() {
            "/" => Response::text(200, format!("{}\nnet: {}\n", self.ready, context.net)),
            "/stats" => Response::text(200, format!("{}\n", context.stats)),
            path => match bytes_route(path, MAX_BYTES) {
                Some(Ok(len)) => Response::bytes(len),
                Some(Err(())) => Response::error(400),
                None => Response::not_found(),
            },
        }
    }
}

fn heap_used() -> usize {
    heap::usage().0
}

/// Brings the network up and serves HTTP; never returns. With no network
/// interface it says so, prints the ready line with `ip=none` and stops
/// (with a failure status under `exit=qemu`).
pub fn serve(kernel: &Kernel) -> ! {
    let cmdline = kernel.cmdline();
    let Some(device) = kernel.net_devices().first().cloned() else {
        log::error!(target: "net", "net=http: no network interface was found");
        kernel.print_ready_line_with(&[("ip", "none")]);
        if cmdline.is("exit", "qemu") {
            kernel.shutdown(ExitStatus::Failure);
        }
        kernel.idle()
    };
    let config =
        NetConfig::from_values(cmdline.get("ip"), cmdline.get("gateway")).unwrap_or_else(|e| {
            log::error!(target: "net", "{e}; asking DHCP instead");
            NetConfig::Dhcp
        });
    let services = kernel.services;
    let mut stack = NetStack::new(device, config);
    let start = clock::now_micros();
    let waited_too_long = || match (start, clock::now_micros()) {
        (Some(start), Some(now)) => now.saturating_sub(start) > ADDRESS_WAIT.as_micros() as u64,
        _ => false,
    };
    // Bounded by the clock; without one (never, after boot) by rounds. The
    // address is looked at right after each poll, which is where DHCP
    // configures it.
    let mut rounds = 0u32;
    loop {
        stack.poll();
        if stack.address().is_some() || waited_too_long() || rounds >= 1_000_000 {
            break;
        }
        stack.wait(services, Duration::from_millis(100));
        rounds += 1;
    }
    let ip = stack
        .address()
        .map_or_else(|| "none".to_string(), |a| a.address.to_string());
    if ip == "none" {
        log::warn!(target: "net", "no address after {} s; serving once one comes", ADDRESS_WAIT.as_secs());
    }
    let ready = kernel.print_ready_line_with(&[("ip", &ip)]);
    let mut server = HttpServer::new(Limits::DEFAULT, Routes { ready }).with_heap_probe(heap_used);
    server.start(&mut stack);
    stack.run(services, &mut server)
}
