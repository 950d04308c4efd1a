//! ECAM: configuration space mapped in memory, 4 KiB per function, 1 MiB
//! per bus (PCI Express Base 6.0, 7.2.2), one window per MCFG entry.

use crate::{ConfigAccess, PciAddress};
use stratus_driver_api::IoMem;

/// Bytes of ECAM space per bus.
pub const BUS_BYTES: u64 = 1 << 20;

/// The ECAM window of one segment group's bus range.
#[derive(Debug)]
pub struct EcamConfigAccess {
    regs: IoMem,
    segment: u16,
    start_bus: u8,
    end_bus: u8,
}

impl EcamConfigAccess {
    /// `regs` maps buses `start_bus..=end_bus` of `segment` (bus
    /// `start_bus` at offset 0; [`EcamConfigAccess::window`] says what to
    /// map).
    pub fn new(regs: IoMem, segment: u16, start_bus: u8, end_bus: u8) -> Self {
        Self {
            regs,
            segment,
            start_bus,
            end_bus,
        }
    }

    /// Physical address and length to map for an MCFG entry whose `base`
    /// is bus 0's address.
    pub fn window(base: u64, start_bus: u8, end_bus: u8) -> Option<(u64, u64)> {
        let buses = u64::from(end_bus.checked_sub(start_bus)?) + 1;
        let phys = base.checked_add(u64::from(start_bus) * BUS_BYTES)?;
        phys.checked_add(buses * BUS_BYTES)?;
        Some((phys, buses * BUS_BYTES))
    }

    /// The buses it reaches.
    pub fn buses(&self) -> core::ops::RangeInclusive<u8> {
        self.start_bus..=self.end_bus
    }

    fn offset(&self, address: PciAddress, offset: u16) -> Option<usize> {
        let decoded = address.segment == self.segment
            && (self.start_bus..=self.end_bus).contains(&address.bus)
            && address.device < 32
            && address.function < 8
            && offset < 4096;
        decoded.then(|| {
            (usize::from(address.bus - self.start_bus) << 20)
                | usize::from(address.device) << 15
                | usize::from(address.function) << 12
                | usize::from(offset & !3)
        })
    }
}

impl ConfigAccess for EcamConfigAccess {
    fn read_u32(&self, address: PciAddress, offset: u16) -> u32 {
        self.offset(address, offset)
            .and_then(|at| self.regs.read::<u32>(at).ok())
            .unwrap_or(u32::MAX)
    }

    fn write_u32(&self, address: PciAddress, offset: u16, value: u32) {
        if let Some(at) = self.offset(address, offset) {
            let _ = self.regs.write::<u32>(at, value);
        }
    }

    fn space_size(&self) -> u16 {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use stratus_driver_api::CachePolicy;

    #[test]
    fn functions_are_found_by_bus_device_and_function() {
        // Buses 1..=2 of segment 3: 2 MiB.
        let mut backing = std::vec![0u32; (2 * BUS_BYTES / 4) as usize];
        let at = |bus: usize, dev: usize, func: usize, off: usize| {
            ((bus - 1) << 20 | dev << 15 | func << 12 | off) / 4
        };
        backing[at(2, 3, 1, 0x10)] = 0xfeb0_0000;
        // SAFETY: `backing` stands in for the window and outlives `access`.
        let regs = unsafe {
            IoMem::new(
                backing.as_mut_ptr() as usize,
                0,
                backing.len() * 4,
                CachePolicy::Uncached,
            )
        };
        let access = EcamConfigAccess::new(regs, 3, 1, 2);
        assert_eq!(
            access.read_u32(PciAddress::new(3, 2, 3, 1), 0x10),
            0xfeb0_0000
        );
        // Other segments, buses outside the range, bad numbers: all ones.
        assert_eq!(access.read_u32(PciAddress::new(0, 2, 3, 1), 0x10), u32::MAX);
        assert_eq!(access.read_u32(PciAddress::new(3, 0, 3, 1), 0x10), u32::MAX);
        assert_eq!(access.read_u32(PciAddress::new(3, 3, 0, 0), 0), u32::MAX);
        assert_eq!(access.read_u32(PciAddress::new(3, 1, 32, 0), 0), u32::MAX);
        access.write_u32(PciAddress::new(3, 1, 0, 0), 0x104, 7);
        assert_eq!(backing[at(1, 0, 0, 0x104)], 7);
        assert_eq!(
            EcamConfigAccess::window(0xb000_0000, 0, 255),
            Some((0xb000_0000, 256 << 20))
        );
        assert_eq!(EcamConfigAccess::window(0x1000, 2, 1), None);
        assert_eq!(EcamConfigAccess::window(u64::MAX - 10, 0, 0), None);
    }
}
