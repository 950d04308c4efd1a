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

/// Message control register (16 bits at capability + 2).
const MESSAGE_CONTROL: u16 = 2;
/// Table offset and BIR (capability + 4).
const TABLE_OFFSET: u16 = 4;
/// Message control: MSI-X enable.
const CONTROL_ENABLE: u16 = 1 << 15;
/// Message control: function mask.
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// Bytes per table entry: address low, address high, data, vector control.
const ENTRY_BYTES: usize = 16;
/// Vector control: masked.
const VECTOR_MASKED: u32 = 1;

impl Msix {
    /// Finds and maps the MSI-X table of `function`; every entry masked,
    /// the capability still disabled.
    pub fn new(function: &PciFunction, services: &dyn DriverServices) -> Result<Self, MsixError> {
        let capability = function
            .capabilities(regs::CAP_MSIX)
            .next()
            .ok_or(MsixError::NoCapability)?;
        let config = function.config;
        let entries = (config.read_u16(capability + MESSAGE_CONTROL) & 0x7ff) + 1;
        let table = config.read_u32(capability + TABLE_OFFSET);
        let (bir, offset) = ((table & 7) as usize, (table & !7) as usize);
        let bar = function
            .map_bar(bir, services)
            .ok_or(MsixError::BadTableBar)?
            .map_err(MsixError::Map)?;
        let table = bar
            .window(offset, usize::from(entries) * ENTRY_BYTES)
            .map_err(|_| MsixError::BadTableBar)?;
        let msix = Self {
            config,
            capability,
            table,
            entries,
        };
        for index in 0..entries {
            msix.mask_entry(index)?;
        }
        Ok(msix)
    }

    /// Entries in the table.
    pub fn entries(&self) -> u16 {
        self.entries
    }

    fn entry(&self, index: u16) -> Result<usize, MsixError> {
        if index < self.entries {
            Ok(usize::from(index) * ENTRY_BYTES)
        } else {
            Err(MsixError::NoSuchEntry(index))
        }
    }

    /// Programs entry `index` with `message` and unmasks it.
    pub fn set_entry(&self, index: u16, message: MsiMessage) -> Result<(), MsixError> {
        let at = self.entry(index)?;
        let bad = |_| MsixError::BadTableBar;
        self.table
            .write::<u32>(at + 12, VECTOR_MASKED)
            .map_err(bad)?;
        self.table
            .write::<u32>(at, message.address as u32)
            .map_err(bad)?;
        self.table
            .write::<u32>(at + 4, (message.address >> 32) as u32)
            .map_err(bad)?;
        self.table.write::<u32>(at + 8, message.data).map_err(bad)?;
        self.table.write::<u32>(at + 12, 0).map_err(bad)
    }

    /// Masks entry `index`.
    pub fn mask_entry(&self, index: u16) -> Result<(), MsixError> {
        let at = self.entry(index)?;
        self.table
            .write::<u32>(at + 12, VECTOR_MASKED)
            .map_err(|_| MsixError::BadTableBar)
    }

    /// Enables MSI-X on the function (which turns its INTx off) with the
    /// function mask clear.
    pub fn enable(&self) {
        let control = self.config.read_u16(self.capability + MESSAGE_CONTROL);
        self.config.write_u16(
            self.capability + MESSAGE_CONTROL,
            (control | CONTROL_ENABLE) & !CONTROL_FUNCTION_MASK,
        );
    }

    /// Disables MSI-X on the function.
    pub fn disable(&self) {
        let control = self.config.read_u16(self.capability + MESSAGE_CONTROL);
        self.config
            .write_u16(self.capability + MESSAGE_CONTROL, control & !CONTROL_ENABLE);
    }
}
