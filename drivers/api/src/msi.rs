//! Message-signalled interrupts (PCI MSI and MSI-X) as drivers see them.
//!
//! A driver asks the kernel for a vector ([`crate::DriverServices::allocate_msi`])
//! with the device's identity ([`MsiSource`]), the CPU the interrupt should
//! reach and a handler. The kernel allocates an interrupt id, registers the
//! handler and returns the [`MsiMessage`] the driver programs into the
//! device's MSI or MSI-X table. On x86 the message addresses the target's
//! local APIC; on aarch64 it is a write to the GICv3 ITS translation
//! register, with the device id from IORT and an event id the ITS maps to
//! an LPI.

/// Who raises the interrupt: the PCI function, by segment and requester id
/// (bus << 8 | device << 3 | function).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiSource {
    /// PCI segment group.
    pub segment: u16,
    /// Requester id.
    pub requester_id: u16,
}

/// The write a device performs to raise the interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    /// Address written.
    pub address: u64,
    /// Data written (32 bits for MSI-X; MSI uses the low 16).
    pub data: u32,
}

/// What runs when the interrupt arrives: called with the `context` given
/// at allocation, with interrupts masked, on the target CPU. Handlers must
/// be short and must not allocate.
pub type InterruptHandler = fn(context: usize);

/// A request for one vector.
#[derive(Clone, Copy, Debug)]
pub struct MsiRequest {
    /// The device.
    pub source: MsiSource,
    /// The kernel's index of the CPU the interrupt should reach (0 is the
    /// boot CPU).
    pub cpu: usize,
    /// The handler.
    pub handler: InterruptHandler,
    /// Its argument.
    pub context: usize,
}

/// An allocated vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiVector {
    /// The kernel's interrupt id (x86 vector, GIC LPI).
    pub id: u32,
    /// What to program into the device.
    pub message: MsiMessage,
    /// The CPU index it reaches.
    pub cpu: usize,
    /// The device it was allocated for.
    pub source: MsiSource,
}
