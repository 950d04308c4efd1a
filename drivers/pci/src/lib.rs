//! PCI and PCI Express, architecture-neutral.
//!
//! * [`ConfigAccess`]: configuration space of a whole segment group, through
//!   ECAM (memory-mapped, from ACPI MCFG) or the x86 legacy ports
//!   0xcf8/0xcfc when there is no MCFG.
//! * [`enumerate`]: walks buses through bridges and lists every function.
//! * [`PciFunction`]: one function as a driver gets it: ids, class, decoded
//!   and sized BARs, capabilities, BAR mapping with the right cache policy,
//!   bus mastering (enabled only for a function a driver claims).
//! * [`io_space`]: where I/O BARs are for the CPU (ports on x86, a memory
//!   window the firmware describes on Arm).
//! * [`msix`] and [`msi`]: MSI-X and single-message MSI programming with messages from the driver API.
//! * [`PciDriver`]: what a driver implements so the kernel can offer it the
//!   functions it finds.
#![no_std]

extern crate alloc;

mod address;
mod config;
mod driver;
pub mod ecam;
mod enumerate;
#[cfg(any(test, feature = "fakes"))]
pub mod fake;
mod function;
pub mod io_space;
pub mod legacy;
pub mod msi;
pub mod msix;

pub use address::PciAddress;
pub use config::{ConfigAccess, FunctionConfig};
pub use driver::{PciDriver, Probed};
pub use ecam::EcamConfigAccess;
pub use enumerate::{enumerate, size_bars};
pub use function::{Bar, PciFunction};
pub use io_space::{IoBarError, IoRegion, IoSpace, IoWindow};
pub use legacy::LegacyConfigAccess;

/// Configuration-space offsets and capability ids used across drivers
/// (PCI Local Bus 3.0, 6.1 and 6.7; PCI Express Base 6.0, 7.5).
pub mod regs {
    /// Vendor id (16 bits).
    pub const VENDOR_ID: u16 = 0x00;
    /// Device id (16 bits).
    pub const DEVICE_ID: u16 = 0x02;
    /// Command register (16 bits).
    pub const COMMAND: u16 = 0x04;
    /// Status register (16 bits).
    pub const STATUS: u16 = 0x06;
    /// Revision id, programming interface, subclass, class (32 bits).
    pub const CLASS_REVISION: u16 = 0x08;
    /// Header type (8 bits; bit 7: multi-function).
    pub const HEADER_TYPE: u16 = 0x0e;
    /// First BAR (type 0 header: six, type 1: two).
    pub const BAR0: u16 = 0x10;
    /// Type 1 header: primary, secondary and subordinate bus numbers.
    pub const BRIDGE_BUSES: u16 = 0x18;
    /// Subsystem vendor id (type 0 header).
    pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2c;
    /// Capabilities pointer (8 bits).
    pub const CAPABILITIES_POINTER: u16 = 0x34;
    /// Interrupt line and pin (8 bits each).
    pub const INTERRUPT_LINE: u16 = 0x3c;

    /// Command: I/O space decoding.
    pub const COMMAND_IO: u16 = 1 << 0;
    /// Command: memory space decoding.
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    /// Command: bus mastering (the device may DMA).
    pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
    /// Command: legacy INTx disabled.
    pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
    /// Status: a capability list is present.
    pub const STATUS_CAPABILITIES: u16 = 1 << 4;

    /// Capability id: MSI.
    pub const CAP_MSI: u8 = 0x05;
    /// Capability id: vendor specific (virtio's structures).
    pub const CAP_VENDOR: u8 = 0x09;
    /// Capability id: PCI Express.
    pub const CAP_PCIE: u8 = 0x10;
    /// Capability id: MSI-X.
    pub const CAP_MSIX: u8 = 0x11;
}

#[cfg(test)]
mod tests;
