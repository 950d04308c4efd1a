//! MSI with a single message (PCI Local Bus 3.0, 6.8.1), for functions
//! without MSI-X.
//!
//! [`Msi::new`] finds the MSI capability; [`Msi::set_message`] writes the
//! address (32- or 64-bit layout, as the capability says) and data;
//! [`Msi::enable`] turns it on with one message (multiple message enable 0).

use crate::{FunctionConfig, PciFunction, regs};
use stratus_driver_api::MsiMessage;

/// Why MSI could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiError {
    /// The function has no MSI capability.
    NoCapability,
    /// The address is above 4 GiB and the function has 32-bit addresses only.
    AddressTooWide(u64),
    /// The data does not fit the 16-bit message data register.
    DataTooWide(u32),
}

/// Message control register (16 bits at capability + 2).
const MESSAGE_CONTROL: u16 = 2;
/// Message control: MSI enable.
const CONTROL_ENABLE: u16 = 1 << 0;
/// Message control: multiple message enable (bits 6:4).
const CONTROL_MULTIPLE_ENABLE: u16 = 7 << 4;
/// Message control: 64-bit address capable.
const CONTROL_64BIT: u16 = 1 << 7;
/// Message address, low 32 bits (capability + 4).
const ADDRESS_LOW: u16 = 4;
/// Message address, high 32 bits (capability + 8, 64-bit layout only).
const ADDRESS_HIGH: u16 = 8;

/// A function's MSI capability, used with a single message.
#[derive(Debug)]
pub struct Msi {
    config: FunctionConfig,
    capability: u16,
    is_64bit: bool,
}

impl Msi {
    /// Finds the MSI capability of `function`; left as it is (disabled
    /// after reset).
    pub fn new(function: &PciFunction) -> Result<Self, MsiError> {
        let capability = function
            .capabilities(regs::CAP_MSI)
            .next()
            .ok_or(MsiError::NoCapability)?;
        let config = function.config;
        let is_64bit = config.read_u16(capability + MESSAGE_CONTROL) & CONTROL_64BIT != 0;
        Ok(Self {
            config,
            capability,
            is_64bit,
        })
    }

    /// Whether the function takes 64-bit message addresses.
    pub fn is_64bit(&self) -> bool {
        self.is_64bit
    }

    /// Programs the message address and data.
    pub fn set_message(&self, message: MsiMessage) -> Result<(), MsiError> {
        let data = u16::try_from(message.data).map_err(|_| MsiError::DataTooWide(message.data))?;
        let high = (message.address >> 32) as u32;
        if high != 0 && !self.is_64bit {
            return Err(MsiError::AddressTooWide(message.address));
        }
        let at = self.capability;
        self.config
            .write_u32(at + ADDRESS_LOW, message.address as u32);
        let data_offset = if self.is_64bit {
            self.config.write_u32(at + ADDRESS_HIGH, high);
            12
        } else {
            8
        };
        self.config.write_u16(at + data_offset, data);
        Ok(())
    }

    /// Enables MSI with one message (which turns the function's INTx off).
    pub fn enable(&self) {
        let control = self.config.read_u16(self.capability + MESSAGE_CONTROL);
        self.config.write_u16(
            self.capability + MESSAGE_CONTROL,
            (control & !CONTROL_MULTIPLE_ENABLE) | CONTROL_ENABLE,
        );
    }

    /// Disables MSI on the function.
    pub fn disable(&self) {
        let control = self.config.read_u16(self.capability + MESSAGE_CONTROL);
        self.config
            .write_u16(self.capability + MESSAGE_CONTROL, control & !CONTROL_ENABLE);
    }
}
