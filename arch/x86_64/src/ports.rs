//! I/O port access.
//!
//! Port accesses are `unsafe`: a port can be a device that changes memory
//! or the machine's state (the PCI configuration ports 0xcf8/0xcfc reach
//! every device's bus mastering and BARs; 0xcf9 resets the machine; a DMA
//! controller's ports start transfers into RAM). The caller vouches that
//! the port belongs to the device it drives and that the access is one that
//! device expects.

use stratus_arch::PortIo;
use x86_64::instructions::port::Port;

/// Reads a byte from a port.
///
/// # Safety
/// `port` must belong to a device the caller owns, and reading it must not
/// break what anything else relies on.
pub unsafe fn read_u8(port: u16) -> u8 {
    // SAFETY: the caller's contract.
    unsafe { Port::<u8>::new(port).read() }
}

/// Writes a byte to a port.
///
/// # Safety
/// As for [`read_u8`]; the write must be one the device expects.
pub unsafe fn write_u8(port: u16, value: u8) {
    // SAFETY: the caller's contract.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Reads 16 bits from a port.
///
/// # Safety
/// As for [`read_u8`].
pub unsafe fn read_u16(port: u16) -> u16 {
    // SAFETY: the caller's contract.
    unsafe { Port::<u16>::new(port).read() }
}

/// Writes 16 bits to a port.
///
/// # Safety
/// As for [`write_u8`].
pub unsafe fn write_u16(port: u16, value: u16) {
    // SAFETY: the caller's contract.
    unsafe { Port::<u16>::new(port).write(value) }
}

/// Reads 32 bits from a port.
///
/// # Safety
/// As for [`read_u8`].
pub unsafe fn read_u32(port: u16) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { Port::<u32>::new(port).read() }
}

/// Writes 32 bits to a port.
///
/// # Safety
/// As for [`write_u8`].
pub unsafe fn write_u32(port: u16, value: u32) {
    // SAFETY: the caller's contract.
    unsafe { Port::<u32>::new(port).write(value) }
}

/// The port accessors handed to drivers.
pub const PORT_IO: PortIo = PortIo {
    read_u8,
    write_u8,
    read_u32,
    write_u32,
};
