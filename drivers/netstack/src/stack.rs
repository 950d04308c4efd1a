//! The interface: smoltcp over one [`NetDevice`], configured by DHCPv4 or
//! statically, polled from a loop that sleeps between events.

use crate::config::{Ipv4Cidr, NetConfig};
use crate::device::{DeviceAdapter, DeviceCounters};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;
use core::time::Duration;
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{DhcpRepr, EthernetAddress, HardwareAddress, IpCidr};
use stratus_driver_api::{DriverServices, NetDevice, clock};

/// The longest sleep on a device whose frames raise no interrupt
/// ([`NetDevice::receive_interrupts`] false: no MSI-X, no ITS).
pub const POLLED_WAIT: Duration = Duration::from_millis(1);

/// The longest the run loop sleeps without a reason to wake: it re-checks
/// the device and the clock at least this often.
pub const MAX_SLEEP: Duration = Duration::from_millis(500);

/// The longest wait for transmit room when the device refused a frame and
/// smoltcp wants to send at once: a driver without transmit-completion
/// interrupts frees descriptors when asked, so the stack asks again this
/// often.
pub const TX_BLOCKED_WAIT: Duration = Duration::from_millis(1);

/// The largest DHCP answer whose options the stack reads (the lease time).
const DHCP_PACKET_BYTES: usize = 1500;

/// How far the stack's clock advances per poll while the kernel's clock
/// does not run yet (so timers still expire, slowly).
const FALLBACK_TICK_MICROS: u64 = 1_000;

/// What DHCP handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The address and prefix.
    pub address: Ipv4Cidr,
    /// The router, if the server named one.
    pub gateway: Option<Ipv4Addr>,
    /// Up to three DNS servers.
    pub dns: [Option<Ipv4Addr>; 3],
    /// The lease time the server granted, in seconds.
    pub lease_s: Option<u32>,
    /// The server that granted it.
    pub server: Ipv4Addr,
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        match self.gateway {
            Some(gateway) => write!(f, " gateway {gateway}")?,
            None => f.write_str(" gateway none")?,
        }
        f.write_str(" dns")?;
        let mut any = false;
        for dns in self.dns.iter().flatten() {
            write!(f, " {dns}")?;
            any = true;
        }
        if !any {
            f.write_str(" none")?;
        }
        match self.lease_s {
            Some(seconds) => write!(f, " lease_s={seconds}")?,
            None => f.write_str(" lease_s=infinite")?,
        }
        write!(f, " server {}", self.server)
    }
}

/// The interface as a handler may show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetInfo {
    /// The MAC address.
    pub mac: [u8; 6],
    /// The MTU.
    pub mtu: usize,
    /// The address in force (`None` while DHCP waits).
    pub address: Option<Ipv4Cidr>,
    /// The default gateway in force.
    pub gateway: Option<Ipv4Addr>,
    /// The DHCP lease, if the address came from one.
    pub lease: Option<Lease>,
}

impl fmt::Display for NetInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mac {} mtu {}", MacAddress(self.mac), self.mtu)?;
        match self.address {
            Some(address) => write!(f, " address {address}")?,
            None => f.write_str(" address none")?,
        }
        match self.gateway {
            Some(gateway) => write!(f, " gateway {gateway}"),
            None => f.write_str(" gateway none"),
        }
    }
}

/// Something the run loop serves after each poll of the interface: a
/// server over the stack's sockets ([`crate::http::HttpServer`]).
pub trait NetApp {
    /// Services the application's sockets; says how soon it wants to be
    /// called again without a frame arriving (an idle timeout), if at all.
    fn poll(&mut self, stack: &mut NetStack) -> Option<Duration>;
}

/// smoltcp's interface and sockets over one device.
pub struct NetStack {
    device: DeviceAdapter,
    iface: Interface,
    sockets: SocketSet<'static>,
    config: NetConfig,
    dhcp: Option<SocketHandle>,
    lease: Option<Lease>,
    fallback_micros: u64,
}

impl NetStack {
    /// An interface on `device` with the device's MAC address, configured
    /// as `config` says: a static address at once, or a DHCP client that
    /// configures the interface when a lease arrives (logged as
    /// `net: dhcp lease ...`). With DHCP, 1.5 KiB for the server's answer
    /// stay allocated after the stack is dropped (stacks live as long as
    /// the kernel).
    pub fn new(device: Arc<dyn NetDevice>, config: NetConfig) -> Self {
        let mac = device.mac();
        let mut adapter = DeviceAdapter::new(device);
        let mut fallback_micros = 0;
        let now = Self::clock(&mut fallback_micros);
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        iface_config.random_seed = seed(&mac, now);
        let mut iface = Interface::new(iface_config, &mut adapter, now);
        let mut sockets = SocketSet::new(Vec::new());
        let mut dhcp = None;
        match config {
            NetConfig::Dhcp => {
                let mut socket = dhcpv4::Socket::new();
                // Where the socket keeps the server's last answer, so the
                // lease time can be read from it. The socket set holds
                // 'static borrows: 1.5 KiB per stack, made once, kept for
                // the stack's (the kernel's) lifetime.
                socket.set_receive_packet_buffer(Box::leak(
                    vec![0; DHCP_PACKET_BYTES].into_boxed_slice(),
                ));
                dhcp = Some(sockets.add(socket));
            }
            NetConfig::Static { address, gateway } => {
                set_address(&mut iface, Some(address), gateway);
            }
        }
        let name = adapter.device().name();
        log::info!(
            target: "net",
            "{} mac {} mtu {} link {} config {}",
            name,
            MacAddress(mac),
            adapter.device().mtu(),
            if adapter.device().link_up() { "up" } else { "down" },
            config
        );
        Self {
            device: adapter,
            iface,
            sockets,
            config,
            dhcp,
            lease: None,
            fallback_micros,
        }
    }

    fn clock(fallback_micros: &mut u64) -> Instant {
        match clock::now_micros() {
            Some(now) => Instant::from_micros(i64::try_from(now).unwrap_or(i64::MAX)),
            None => {
                *fallback_micros = fallback_micros.saturating_add(FALLBACK_TICK_MICROS);
                Instant::from_micros(i64::try_from(*fallback_micros).unwrap_or(i64::MAX))
            }
        }
    }

    /// The stack's time: the kernel's monotonic clock.
    pub fn now(&mut self) -> Instant {
        Self::clock(&mut self.fallback_micros)
    }

    /// The device.
    pub fn device(&self) -> &Arc<dyn NetDevice> {
        self.device.device()
    }

    /// How the stack was configured.
    pub fn config(&self) -> NetConfig {
        self.config
    }

    /// The interface's address now (`None` while DHCP waits for a lease).
    pub fn address(&self) -> Option<Ipv4Cidr> {
        self.iface.ip_addrs().iter().find_map(|cidr| match cidr {
            IpCidr::Ipv4(v4) => Some(Ipv4Cidr {
                address: v4.address(),
                prefix: v4.prefix_len(),
            }),
            // Another crate of the kernel may turn on smoltcp's IPv6.
            #[allow(unreachable_patterns)]
            _ => None,
        })
    }

    /// The default gateway now.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        match self.config {
            NetConfig::Static { gateway, .. } => gateway,
            NetConfig::Dhcp => self.lease.and_then(|lease| lease.gateway),
        }
    }

    /// MAC, MTU, address, gateway and lease now.
    pub fn info(&self) -> NetInfo {
        NetInfo {
            mac: self.device().mac(),
            mtu: self.device().mtu(),
            address: self.address(),
            gateway: self.gateway(),
            lease: self.lease,
        }
    }

    /// The DHCP lease, once there is one.
    pub fn lease(&self) -> Option<Lease> {
        self.lease
    }

    /// What the device adapter counted.
    pub fn counters(&self) -> DeviceCounters {
        self.device.counters()
    }

    /// Count TCP SYNs for `port` (a server's refused connections are SYNs
    /// that no listening socket took).
    pub fn watch_port(&mut self, port: u16) {
        self.device.watch_port(port);
    }

    /// Adds a socket (TCP, UDP, ICMP) to the stack's set.
    pub fn add_socket<T: smoltcp::socket::AnySocket<'static>>(
        &mut self,
        socket: T,
    ) -> SocketHandle {
        self.sockets.add(socket)
    }

    /// The socket set, to reach sockets by handle.
    pub fn sockets(&mut self) -> &mut SocketSet<'static> {
        &mut self.sockets
    }

    /// Interface and sockets at once (a TCP `connect` needs the
    /// interface's context).
    pub fn parts(&mut self) -> (&mut Interface, &mut SocketSet<'static>) {
        (&mut self.iface, &mut self.sockets)
    }

    /// Processes received frames (at most [`crate::device::RX_BUDGET`]),
    /// sends what the sockets queued, runs the timers and the DHCP client.
    /// True when a socket's state may have changed.
    pub fn poll(&mut self) -> bool {
        let now = self.now();
        self.device.start_poll();
        let changed = self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.poll_dhcp();
        changed == PollResult::SocketStateChanged
    }

    fn poll_dhcp(&mut self) {
        let Some(handle) = self.dhcp else { return };
        let socket = self.sockets.get_mut::<dhcpv4::Socket>(handle);
        let lease = match socket.poll() {
            None => return,
            Some(dhcpv4::Event::Deconfigured) => None,
            Some(dhcpv4::Event::Configured(config)) => {
                let mut dns = [None; 3];
                for (slot, server) in dns.iter_mut().zip(config.dns_servers.iter()) {
                    *slot = Some(*server);
                }
                let lease_s = config
                    .packet
                    .as_ref()
                    .and_then(|packet| DhcpRepr::parse(packet).ok())
                    .and_then(|repr| repr.lease_duration);
                Some(Lease {
                    address: Ipv4Cidr {
                        address: config.address.address(),
                        prefix: config.address.prefix_len(),
                    },
                    gateway: config.router,
                    dns,
                    lease_s,
                    server: config.server.address,
                })
            }
        };
        match lease {
            Some(lease) => {
                log::info!(target: "net", "dhcp lease {lease}");
                set_address(&mut self.iface, Some(lease.address), lease.gateway);
            }
            None => {
                // smoltcp reports Deconfigured once at start, with no lease
                // held yet: only a lease that existed is lost.
                if self.lease.is_some() {
                    log::warn!(target: "net", "dhcp lease lost, asking again");
                }
                set_address(&mut self.iface, None, None);
            }
        }
        self.lease = lease;
    }

    /// How long until smoltcp's next timer (retransmission, ARP, DHCP);
    /// zero when it wants to be polled again at once.
    pub fn poll_delay(&mut self) -> Option<Duration> {
        let now = self.now();
        if self.device.budget_exhausted() {
            return Some(Duration::ZERO);
        }
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|delay| Duration::from_micros(delay.total_micros()))
    }

    /// Sleeps until a frame arrives, the device has transmit room again
    /// after refusing a frame, smoltcp's next timer, or `limit` (and never
    /// longer than [`MAX_SLEEP`]), halting the CPU between interrupts.
    /// True when woken by the device.
    pub fn wait(&mut self, services: &dyn DriverServices, limit: Duration) -> bool {
        let tx_blocked = self.device.tx_blocked();
        let mut delay = self.poll_delay().unwrap_or(MAX_SLEEP).min(MAX_SLEEP);
        if tx_blocked && delay < TX_BLOCKED_WAIT && !self.device.budget_exhausted() {
            // smoltcp wants to send now, and the device has no room: wait
            // for a transmit completion (or a frame) instead of spinning.
            delay = TX_BLOCKED_WAIT;
        }
        let device = self.device.device().as_ref();
        if !device.receive_interrupts() {
            // No interrupt will end the sleep when a frame arrives: look
            // again soon.
            delay = delay.min(POLLED_WAIT);
        }
        let delay = delay.min(limit);
        if delay.is_zero() {
            return true;
        }
        services.wait_until(delay, &mut || {
            device.receive_pending() || (tx_blocked && device.can_transmit())
        })
    }

    /// One round: poll, let `app` serve its sockets, poll again to send
    /// what it queued, then sleep ([`NetStack::wait`]).
    pub fn poll_once(&mut self, services: &dyn DriverServices, app: &mut dyn NetApp) {
        self.poll();
        let wanted = app.poll(self);
        self.poll();
        self.wait(services, wanted.unwrap_or(MAX_SLEEP));
    }

    /// Serves `app` for ever ([`NetStack::poll_once`] in a loop): driven
    /// by the device's interrupts and the timer, never a busy loop.
    pub fn run(&mut self, services: &dyn DriverServices, app: &mut dyn NetApp) -> ! {
        loop {
            self.poll_once(services, app);
        }
    }
}

fn set_address(iface: &mut Interface, address: Option<Ipv4Cidr>, gateway: Option<Ipv4Addr>) {
    iface.update_ip_addrs(|addrs| {
        addrs.clear();
        if let Some(address) = address {
            let cidr = smoltcp::wire::Ipv4Cidr::new(address.address, address.prefix);
            // One address in a list with room for at least one: cannot fail.
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        }
    });
    let routes = iface.routes_mut();
    routes.remove_default_ipv4_route();
    if let Some(gateway) = gateway {
        // Fails only when the route table is full; it was just emptied.
        let _ = routes.add_default_ipv4_route(gateway);
    }
}

/// A MAC address as `52:54:00:12:34:56`.
struct MacAddress([u8; 6]);

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A seed for smoltcp's initial sequence numbers and ports: the MAC and the
/// boot-relative time mixed (not secret, but different per machine and
/// boot).
fn seed(mac: &[u8; 6], now: Instant) -> u64 {
    let mut value = now.total_micros() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for byte in mac {
        value = (value ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
    }
    value ^ (value >> 29)
}
