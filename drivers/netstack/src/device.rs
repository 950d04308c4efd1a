//! smoltcp's `phy::Device` over a [`NetDevice`]: one frame copied in per
//! receive token, one frame copied out per transmit token.
//!
//! The adapter bounds the work of one poll (at most [`RX_BUDGET`] received
//! frames), so a flood of frames cannot keep the stack inside smoltcp's
//! ingress loop, and it counts what it sees ([`DeviceCounters`]). When the
//! device has no transmit descriptor free it hands smoltcp no transmit
//! token: the data stays queued in the sockets, and the stack's wait
//! includes [`NetDevice::can_transmit`].

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};
use stratus_driver_api::{NetDevice, NetError};

/// Frames taken from the device in one poll of the stack at most.
pub const RX_BUDGET: u32 = 64;

/// Ethernet header: two addresses and the type (no VLAN tag, no FCS).
const ETHERNET_HEADER: usize = 14;

/// Receive attempts that may fail (oversized or bad frames) in one call
/// before the adapter gives up until the next poll.
const RX_SKIPS: u32 = 8;

/// What the adapter counted since the stack was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Frames received and handed to the stack.
    pub frames_rx: u64,
    /// Frames given to the device for transmission.
    pub frames_tx: u64,
    /// Received frames dropped: larger than the MTU, or a length the
    /// device got wrong.
    pub rx_dropped: u64,
    /// Frames the stack built that the device refused (queue full or an
    /// error): TCP sends them again.
    pub tx_dropped: u64,
    /// Errors the device reported.
    pub device_errors: u64,
    /// TCP SYNs (without ACK) seen for the watched port: connection
    /// attempts, accepted or not.
    pub syns: u64,
}

/// The `phy::Device` smoltcp polls.
pub struct DeviceAdapter {
    device: Arc<dyn NetDevice>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    budget: u32,
    tx_blocked: bool,
    watch_port: Option<u16>,
    counters: DeviceCounters,
}

impl DeviceAdapter {
    /// An adapter with frame buffers for the device's MTU.
    pub fn new(device: Arc<dyn NetDevice>) -> Self {
        let frame = Self::frame_len(device.as_ref());
        Self {
            device,
            rx: vec![0; frame],
            tx: Vec::with_capacity(frame),
            budget: RX_BUDGET,
            tx_blocked: false,
            watch_port: None,
            counters: DeviceCounters::default(),
        }
    }

    /// The largest frame: MTU plus the Ethernet header, at least what IPv4
    /// requires of a link (576 + header).
    fn frame_len(device: &dyn NetDevice) -> usize {
        device.mtu().clamp(576, 65_535) + ETHERNET_HEADER
    }

    /// The device.
    pub fn device(&self) -> &Arc<dyn NetDevice> {
        &self.device
    }

    /// Counters so far.
    pub fn counters(&self) -> DeviceCounters {
        self.counters
    }

    /// Count TCP SYNs to `port` (see [`DeviceCounters::syns`]).
    pub fn watch_port(&mut self, port: u16) {
        self.watch_port = Some(port);
    }

    /// Starts a poll: a fresh receive budget, and forgets that transmit
    /// was refused.
    pub fn start_poll(&mut self) {
        self.budget = RX_BUDGET;
        self.tx_blocked = false;
    }

    /// Whether the last poll stopped receiving because its budget ran out
    /// (more frames may be waiting).
    pub fn budget_exhausted(&self) -> bool {
        self.budget == 0
    }

    /// Whether smoltcp wanted to send and the device had no room.
    pub fn tx_blocked(&self) -> bool {
        self.tx_blocked
    }

    fn count_syn(&mut self, len: usize) {
        let Some(port) = self.watch_port else { return };
        let Ok(frame) = EthernetFrame::new_checked(&self.rx[..len]) else {
            return;
        };
        if frame.ethertype() != EthernetProtocol::Ipv4 {
            return;
        }
        let Ok(ip) = Ipv4Packet::new_checked(frame.payload()) else {
            return;
        };
        if ip.next_header() != IpProtocol::Tcp {
            return;
        }
        let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
            return;
        };
        if tcp.syn() && !tcp.ack() && tcp.dst_port() == port {
            self.counters.syns += 1;
        }
    }
}

/// A received frame.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// Room for one frame to transmit.
pub struct TxToken<'a> {
    device: &'a dyn NetDevice,
    buffer: &'a mut Vec<u8>,
    counters: &'a mut DeviceCounters,
    blocked: &'a mut bool,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        self.buffer.clear();
        self.buffer.resize(len, 0);
        let result = f(self.buffer);
        match self.device.transmit(self.buffer) {
            Ok(()) => self.counters.frames_tx += 1,
            Err(NetError::Busy) => {
                self.counters.tx_dropped += 1;
                *self.blocked = true;
            }
            Err(NetError::TooLarge(_)) | Err(NetError::LinkDown) => self.counters.tx_dropped += 1,
            Err(NetError::Device(name)) => {
                self.counters.tx_dropped += 1;
                self.counters.device_errors += 1;
                log::debug!(target: "net", "transmit error {name}");
            }
        }
        result
    }
}

impl phy::Device for DeviceAdapter {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let mut skips = 0;
        let len = loop {
            if self.budget == 0 || skips == RX_SKIPS {
                return None;
            }
            match self.device.receive(&mut self.rx) {
                Ok(None) => return None,
                Ok(Some(len)) if len <= self.rx.len() && len >= ETHERNET_HEADER => break len,
                Ok(Some(_)) | Err(NetError::TooLarge(_)) => {
                    self.counters.rx_dropped += 1;
                    skips += 1;
                }
                Err(NetError::Busy) | Err(NetError::LinkDown) => return None,
                Err(NetError::Device(name)) => {
                    self.counters.device_errors += 1;
                    log::debug!(target: "net", "receive error {name}");
                    return None;
                }
            }
        };
        self.budget -= 1;
        self.counters.frames_rx += 1;
        self.count_syn(len);
        let rx = RxToken {
            frame: &self.rx[..len],
        };
        let tx = TxToken {
            device: self.device.as_ref(),
            buffer: &mut self.tx,
            counters: &mut self.counters,
            blocked: &mut self.tx_blocked,
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        if !self.device.can_transmit() {
            self.tx_blocked = true;
            return None;
        }
        Some(TxToken {
            device: self.device.as_ref(),
            buffer: &mut self.tx,
            counters: &mut self.counters,
            blocked: &mut self.tx_blocked,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = Self::frame_len(self.device.as_ref());
        caps.max_burst_size = None;
        caps
    }
}
