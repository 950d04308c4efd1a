//! The network device interface: what a TCP/IP stack needs of a NIC,
//! knowing nothing of virtio (or gVNIC, ENA).
//!
//! Frames are whole Ethernet frames without the frame check sequence. The
//! interface is polled: a stack asks for received frames and transmits
//! when it has something to send, and sleeps in between with
//! [`crate::DriverServices::wait_until`] on [`NetDevice::receive_pending`];
//! the device's interrupt (MSI-X where the platform delivers it) is what
//! wakes the CPU.

use core::fmt;

/// Why a network operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The transmit queue is full: try again after a completion.
    Busy,
    /// The frame is larger than the device takes (or, for receive, than the
    /// buffer given).
    TooLarge(usize),
    /// The link is down.
    LinkDown,
    /// The device reported an error: its name as the specification gives it.
    Device(&'static str),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy => f.write_str("transmit queue full"),
            Self::TooLarge(n) => write!(f, "a frame of {n} bytes does not fit"),
            Self::LinkDown => f.write_str("link down"),
            Self::Device(name) => write!(f, "device error: {name}"),
        }
    }
}

/// A network interface.
pub trait NetDevice: Send + Sync {
    /// A short name for logs (`virtio-net0`).
    fn name(&self) -> &str;

    /// The MAC address.
    fn mac(&self) -> [u8; 6];

    /// The largest IP packet a frame carries (1500 on most clouds, 9001 on
    /// AWS within a placement group).
    fn mtu(&self) -> usize;

    /// Whether the link is up.
    fn link_up(&self) -> bool;

    /// Transmit/receive queue pairs the driver uses.
    fn queue_count(&self) -> usize;

    /// Queues one frame for transmission.
    fn transmit(&self, frame: &[u8]) -> Result<(), NetError>;

    /// Copies the next received frame into `buffer`: its length, or `None`
    /// when no frame is waiting.
    fn receive(&self, buffer: &mut [u8]) -> Result<Option<usize>, NetError>;

    /// Whether a received frame is waiting (cheap: a stack calls it with
    /// interrupts masked before halting).
    fn receive_pending(&self) -> bool;

    /// Whether a received frame raises an interrupt that wakes a waiting
    /// CPU. When not (no MSI-X, MSIs unavailable), a stack must bound its
    /// sleeps to a short poll interval instead.
    fn receive_interrupts(&self) -> bool {
        false
    }
}
