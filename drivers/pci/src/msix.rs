//! MSI-X and MSI (PCI Local Bus 3.0, 6.8; PCI Express Base 6.0, 7.7).
//!
//! [`Msix::new`] finds a function's MSI-X capability, maps the table
//! through its BAR, and masks every entry; a driver then programs entries
//! with messages from [`stratus_driver_api::DriverServices::allocate_msi`]
//! ([`Msix::set_entry`]) and enables the capability ([`Msix::enable`]).

use crate::{FunctionConfig, PciFunction, regs};
use stratus_driver_api::{DriverServices, IoMem, MsiMessage};

/// The most capability entries walked before the list is called corrupt.
const MAX_CAPABILITIES: usize = 48;

/// Offsets of capabilities with id `id` (see [`PciFunction::capabilities`]).
pub(crate) fn capability_offsets(
    config: &FunctionConfig,
    id: u8,
) -> impl Iterator<Item = u16> + '_ {
    let has_list = config.read_u16(regs::STATUS) & regs::STATUS_CAPABILITIES != 0;
    let mut next = if has_list {
        config.read_u8(regs::CAPABILITIES_POINTER) & !3
    } else {
        0
    };
    let mut walked = 0;
    core::iter::from_fn(move || {
        while next >= 0x40 && walked < MAX_CAPABILITIES {
            walked += 1;
            let offset = u16::from(next);
            let header = config.read_u16(offset);
            next = (header >> 8) as u8 & !3;
            if header as u8 == id {
                return Some(offset);
            }
        }
        None
    })
}

/// Why MSI-X could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixError {
    /// The function has no MSI-X capability.
    NoCapability,
    /// The table's BAR is missing, not memory, or too small for the table.
    BadTableBar,
    /// The table could not be mapped.
    Map(stratus_driver_api::ServiceError),
    /// The entry index is past the table.
    NoSuchEntry(u16),
}

/// A function's MSI-X table.
#[derive(Debug)]
pub struct Msix {
    config: FunctionConfig,
    capability: u16,
    table: IoMem,
    entries: u16,
}

impl Msix {
    /// Finds and maps the MSI-X table of `function`; every entry masked,
    /// the capability still disabled.
    pub fn new(function: &PciFunction, services: &dyn DriverServices) -> Result<Self, MsixError> {
        let _ = (function, services);
        todo!("stratus-pci: MSI-X table discovery")
    }

    /// Entries in the table.
    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// Programs entry `index` with `message` and unmasks it.
    pub fn set_entry(&self, index: u16, message: MsiMessage) -> Result<(), MsixError> {
        let _ = (index, message, &self.table, self.capability, &self.config);
        todo!("stratus-pci: MSI-X entry programming")
    }

    /// Masks entry `index`.
    pub fn mask_entry(&self, index: u16) -> Result<(), MsixError> {
        let _ = index;
        todo!("stratus-pci: MSI-X masking")
    }

    /// Enables MSI-X on the function (and with it disables INTx).
    pub fn enable(&self) {
        todo!("stratus-pci: MSI-X enable")
    }
}
