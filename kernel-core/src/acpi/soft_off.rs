//! ACPI soft-off (S5) for x86: the PM1 control registers from the FADT and
//! the sleep type from `\_S5` in the DSDT (or an SSDT), combined into the
//! [`AcpiSoftOff`] the architecture's power-off writes.

use super::sleep::{self, S5Error, S5SleepType};
use ::acpi::address::{AddressSpace, GenericAddress};
use ::acpi::fadt::Fadt;
use ::acpi::{AcpiHandler, AcpiTables, AmlTable};
use core::fmt;
use stratus_arch::AcpiSoftOff;

/// The largest AML table read. QEMU's DSDT is about 8 KiB, large servers'
/// a few hundred; a length beyond this is a lie.
pub const MAX_AML_BYTES: u32 = 4 << 20;

/// Why the machine cannot be powered off through ACPI S5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftOffError {
    /// The FADT marks the platform hardware-reduced: S5 goes through the
    /// sleep control register, which Stratus does not drive yet.
    HardwareReduced,
    /// The PM1a control block is missing or not in I/O port space.
    NoPm1aControl,
    /// The PM1b control block is not in I/O port space.
    UnsupportedPm1bControl,
    /// There is no readable DSDT.
    NoDsdt,
    /// A DSDT or SSDT length is out of bounds.
    BadAmlLength(u32),
    /// The `\_S5` object could not be read.
    S5(S5Error),
}

impl fmt::Display for SoftOffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HardwareReduced => {
                f.write_str("hardware-reduced ACPI (sleep control register not supported)")
            }
            Self::NoPm1aControl => f.write_str("FADT has no PM1a control block in I/O space"),
            Self::UnsupportedPm1bControl => {
                f.write_str("FADT PM1b control block is not in I/O space")
            }
            Self::NoDsdt => f.write_str("no readable DSDT"),
            Self::BadAmlLength(n) => write!(f, "AML table length {n} out of bounds"),
            Self::S5(e) => e.fmt(f),
        }
    }
}

fn io_port(block: &GenericAddress) -> Option<u16> {
    if block.address_space != AddressSpace::SystemIo || block.address == 0 {
        return None;
    }
    u16::try_from(block.address)
        .ok()
        .filter(|p| p.checked_add(1).is_some())
}

/// The PM1 control ports and `ACPI_ENABLE` handshake of a FADT, with the
/// sleep type filled in.
pub fn soft_off_from_fadt(fadt: &Fadt, s5: S5SleepType) -> Result<AcpiSoftOff, SoftOffError> {
    let flags = fadt.flags;
    if flags.system_is_hw_reduced_acpi() {
        return Err(SoftOffError::HardwareReduced);
    }
    let pm1a_control = fadt
        .pm1a_control_block()
        .ok()
        .as_ref()
        .and_then(io_port)
        .ok_or(SoftOffError::NoPm1aControl)?;
    let pm1b_control = match fadt.pm1b_control_block() {
        Ok(None) => None,
        Ok(Some(block)) => Some(io_port(&block).ok_or(SoftOffError::UnsupportedPm1bControl)?),
        Err(_) => return Err(SoftOffError::UnsupportedPm1bControl),
    };
    let (smi_command, enable_value) = (fadt.smi_cmd_port, fadt.acpi_enable);
    let acpi_enable = u16::try_from(smi_command)
        .ok()
        .filter(|&port| port != 0 && enable_value != 0)
        .map(|port| (port, enable_value));
    Ok(AcpiSoftOff {
        pm1a_control,
        pm1b_control,
        pm1a_value: s5.pm1a_value(),
        pm1b_value: s5.pm1b_value(),
        acpi_enable,
    })
}

/// The AML bytes of a table the `acpi` crate found, through the direct map.
///
/// # Safety
/// The direct map at `hhdm_offset` must cover the table, as it covers every
/// ACPI table under the Limine protocol.
unsafe fn aml_bytes(table: &AmlTable, hhdm_offset: u64) -> Result<&'static [u8], SoftOffError> {
    // The crate subtracts the 36-byte header from the table's length, which
    // wraps for a lying header: bound it before anything is read.
    if table.length == 0 || table.length > MAX_AML_BYTES {
        return Err(SoftOffError::BadAmlLength(table.length));
    }
    let start = (table.address as u64)
        .checked_add(hhdm_offset)
        .ok_or(SoftOffError::NoDsdt)?;
    // SAFETY: the caller guarantees the direct map covers the table; the
    // length is the table's own, bounded above.
    Ok(unsafe { core::slice::from_raw_parts(start as *const u8, table.length as usize) })
}

/// Finds `\_S5` in the DSDT, then in each SSDT, and builds the soft-off
/// description.
///
/// # Safety
/// The tables must come from the loader's RSDP, and the direct map at
/// `hhdm_offset` must cover them.
pub unsafe fn discover<H: AcpiHandler>(
    tables: &AcpiTables<H>,
    fadt: &Fadt,
    hhdm_offset: u64,
) -> Result<AcpiSoftOff, SoftOffError> {
    // A zero DSDT address would be followed by the `acpi` crate.
    if !matches!(fadt.dsdt_address(), Ok(address) if address != 0) {
        return Err(SoftOffError::NoDsdt);
    }
    let dsdt = tables.dsdt().map_err(|_| SoftOffError::NoDsdt)?;
    // SAFETY: forwarded from the caller.
    let mut result = sleep::find_s5(unsafe { aml_bytes(&dsdt, hhdm_offset) }?);
    if result.is_err() {
        for ssdt in tables.ssdts() {
            // SAFETY: forwarded from the caller.
            let Ok(aml) = (unsafe { aml_bytes(&ssdt, hhdm_offset) }) else {
                continue;
            };
            if let Ok(found) = sleep::find_s5(aml) {
                result = Ok(found);
                break;
            }
        }
    }
    soft_off_from_fadt(fadt, result.map_err(SoftOffError::S5)?)
}
