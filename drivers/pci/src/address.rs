//! Where a function is: segment group, bus, device, function.

use core::fmt;

/// A PCI function's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// Segment group (ACPI MCFG); 0 on most machines, 1 on Graviton metal.
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
}

impl PciAddress {
    /// The address `segment:bus:device.function`.
    pub const fn new(segment: u16, bus: u8, device: u8, function: u8) -> Self {
        Self {
            segment,
            bus,
            device,
            function,
        }
    }

    /// The requester id the function's DMA and MSI writes carry: bus << 8 |
    /// device << 3 | function.
    pub const fn requester_id(&self) -> u16 {
        (self.bus as u16) << 8 | ((self.device & 0x1f) as u16) << 3 | (self.function & 7) as u16
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn prints_like_lspci_and_packs_the_requester_id() {
        let a = PciAddress::new(1, 0x3a, 0x1f, 7);
        assert_eq!(a.to_string(), "0001:3a:1f.7");
        assert_eq!(a.requester_id(), 0x3aff);
    }
}
