//! I/O port access.

use stratus_arch::PortIo;
use x86_64::instructions::port::Port;

fn read_u8(port: u16) -> u8 {
    // SAFETY: reading a port has no memory-safety effect; which ports are
    // read is the caller's (a driver's) business.
    unsafe { Port::<u8>::new(port).read() }
}

/// Writes a byte to a port.
pub fn write_u8(port: u16, value: u8) {
    // SAFETY: as for `read_u8`: port writes touch devices, not memory.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Reads 16 bits at a port.
pub fn read_u16(port: u16) -> u16 {
    // SAFETY: as for `read_u8`.
    unsafe { Port::<u16>::new(port).read() }
}

/// Writes 16 bits to a port.
pub fn write_u16(port: u16, value: u16) {
    // SAFETY: as for `write_u8`.
    unsafe { Port::<u16>::new(port).write(value) }
}

fn read_u32(port: u16) -> u32 {
    // SAFETY: as for `read_u8`.
    unsafe { Port::<u32>::new(port).read() }
}

/// Writes 32 bits to a port.
pub fn write_u32(port: u16, value: u32) {
    // SAFETY: as for `write_u8`.
    unsafe { Port::<u32>::new(port).write(value) }
}

/// The port accessors handed to drivers.
pub const PORT_IO: PortIo = PortIo {
    read_u8,
    write_u8,
    read_u32,
};
