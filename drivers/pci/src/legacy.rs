//! x86 configuration mechanism #1: the address port 0xcf8 and the data
//! port 0xcfc (PCI Local Bus 3.0, 3.2.2.3.2), for machines without MCFG
//! (QEMU `-M pc`). Segment 0 only, 256 bytes per function.

use crate::{ConfigAccess, PciAddress};
use stratus_driver_api::PortIo;

const ADDRESS_PORT: u16 = 0xcf8;
const DATA_PORT: u16 = 0xcfc;
const ENABLE: u32 = 1 << 31;

/// Configuration access through the legacy ports.
pub struct LegacyConfigAccess {
    io: PortIo,
    /// The address/data pair is two steps: one access at a time.
    lock: spin::Mutex<()>,
}

impl core::fmt::Debug for LegacyConfigAccess {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LegacyConfigAccess")
    }
}

impl LegacyConfigAccess {
    /// Access through `io`.
    ///
    /// # Safety
    /// Ports 0xcf8..0xd00 must be the PCI configuration mechanism (every
    /// PC-compatible x86 machine), used by nothing else.
    pub unsafe fn new(io: PortIo) -> Self {
        Self {
            io,
            lock: spin::Mutex::new(()),
        }
    }

    /// The value for the address port, or `None` outside what the
    /// mechanism reaches.
    pub fn address_word(address: PciAddress, offset: u16) -> Option<u32> {
        let reachable =
            address.segment == 0 && address.device < 32 && address.function < 8 && offset < 256;
        reachable.then(|| {
            ENABLE
                | u32::from(address.bus) << 16
                | u32::from(address.device) << 11
                | u32::from(address.function) << 8
                | u32::from(offset & 0xfc)
        })
    }
}

impl ConfigAccess for LegacyConfigAccess {
    fn read_u32(&self, address: PciAddress, offset: u16) -> u32 {
        let Some(word) = Self::address_word(address, offset) else {
            return u32::MAX;
        };
        let _one = self.lock.lock();
        // SAFETY: the constructor's contract: these ports are the PCI
        // configuration mechanism; selecting and reading a register has no
        // other effect.
        unsafe {
            (self.io.write_u32)(ADDRESS_PORT, word);
            (self.io.read_u32)(DATA_PORT)
        }
    }

    fn write_u32(&self, address: PciAddress, offset: u16, value: u32) {
        let Some(word) = Self::address_word(address, offset) else {
            return;
        };
        let _one = self.lock.lock();
        // SAFETY: as in `read_u32`; the caller of this trait vouches for
        // the register written.
        unsafe {
            (self.io.write_u32)(ADDRESS_PORT, word);
            (self.io.write_u32)(DATA_PORT, value);
        }
    }

    fn space_size(&self) -> u16 {
        256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_word_packs_bus_device_function_and_register() {
        assert_eq!(
            LegacyConfigAccess::address_word(PciAddress::new(0, 1, 2, 3), 0x3e),
            Some(0x8001_133c)
        );
        assert_eq!(
            LegacyConfigAccess::address_word(PciAddress::new(1, 0, 0, 0), 0),
            None
        );
        assert_eq!(
            LegacyConfigAccess::address_word(PciAddress::new(0, 0, 0, 0), 0x100),
            None
        );
    }
}
