//! Configuration space access.

use crate::PciAddress;

/// Configuration space of one segment group (or several): 32-bit reads and
/// writes at a dword-aligned `offset` (0..4096 with ECAM, 0..256 with the
/// legacy ports) of function `address`.
///
/// Implementations: ECAM over an [`stratus_driver_api::IoMem`] of the
/// MCFG window, and the x86 ports 0xcf8/0xcfc. A read of a function that
/// does not exist returns all ones, as the hardware does; a read outside
/// the mechanism's range returns all ones too, and such a write is dropped.
pub trait ConfigAccess: Send + Sync {
    /// Reads the dword at `offset` (rounded down to a multiple of 4).
    fn read_u32(&self, address: PciAddress, offset: u16) -> u32;

    /// Writes the dword at `offset` (rounded down to a multiple of 4).
    fn write_u32(&self, address: PciAddress, offset: u16, value: u32);

    /// The size of each function's configuration space this mechanism
    /// reaches: 4096 (ECAM) or 256 (legacy ports).
    fn space_size(&self) -> u16;
}

/// The configuration space of one function: byte, word and dword accesses
/// on top of a [`ConfigAccess`].
#[derive(Clone, Copy)]
pub struct FunctionConfig {
    access: &'static dyn ConfigAccess,
    address: PciAddress,
}

impl core::fmt::Debug for FunctionConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FunctionConfig({})", self.address)
    }
}

impl FunctionConfig {
    /// Function `address` through `access`.
    pub fn new(access: &'static dyn ConfigAccess, address: PciAddress) -> Self {
        Self { access, address }
    }

    /// The function's address.
    pub fn address(&self) -> PciAddress {
        self.address
    }

    /// The size of the configuration space reachable (256 or 4096).
    pub fn space_size(&self) -> u16 {
        self.access.space_size()
    }

    /// The dword at `offset`.
    pub fn read_u32(&self, offset: u16) -> u32 {
        self.access.read_u32(self.address, offset & !3)
    }

    /// The word at `offset` (2-byte aligned).
    pub fn read_u16(&self, offset: u16) -> u16 {
        (self.read_u32(offset) >> ((offset & 2) * 8)) as u16
    }

    /// The byte at `offset`.
    pub fn read_u8(&self, offset: u16) -> u8 {
        (self.read_u32(offset) >> ((offset & 3) * 8)) as u8
    }

    /// Writes the dword at `offset`.
    pub fn write_u32(&self, offset: u16, value: u32) {
        self.access.write_u32(self.address, offset & !3, value)
    }

    /// Writes the word at `offset` (2-byte aligned) by read-modify-write
    /// of its dword. Do not use it on registers whose other half has
    /// write-one-to-clear bits (the status register beside the command
    /// register: [`FunctionConfig::write_command`] takes care of that).
    pub fn write_u16(&self, offset: u16, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read_u32(offset);
        let new = (old & !(0xffff << shift)) | (u32::from(value) << shift);
        self.write_u32(offset, new)
    }

    /// Writes the command register, leaving the status register's
    /// write-one-to-clear bits alone.
    pub fn write_command(&self, command: u16) {
        // Writing zeros to the status half clears nothing.
        self.write_u32(crate::regs::COMMAND, u32::from(command))
    }
}
