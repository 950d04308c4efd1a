//! The SPCR (serial port console redirection, ACPI SPCR spec): the console.

use super::bytes::{u8_at, u32_at, u64_at};
use super::tables::TableFault;
use crate::console::{ConsoleDescriptor, SpcrError, SpcrFields, spcr_baud};

/// What ACPI said about the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpcrOutcome {
    /// There is no SPCR table.
    Absent,
    /// The table names a console Stratus can drive.
    Console(ConsoleDescriptor),
    /// The table is valid but names a console Stratus cannot drive.
    Unusable(SpcrError),
    /// The table is listed but failed validation (checksum, length).
    Invalid(TableFault),
}

/// Decodes the SPCR fields Stratus uses from the table's bytes (ACPI SPCR
/// spec, table 3). Fields past the table's length are treated as absent:
/// revision 2 tables (QEMU, many clouds) end at byte 80, before the precise
/// baud rate field of revision 3. `None` when the table is shorter than the
/// base address.
pub fn spcr_fields_from_bytes(table: &[u8]) -> Option<SpcrFields> {
    let precise_baud = u32_at(table, 80).filter(|&b| b != 0 && table.len() >= 88);
    Some(SpcrFields {
        interface_type: u8_at(table, 36)?,
        address_space: u8_at(table, 40)?,
        bit_width: u8_at(table, 41)?,
        access_size: u8_at(table, 43)?,
        address: u64_at(table, 44)?,
        baud: precise_baud.or_else(|| u8_at(table, 58).and_then(spcr_baud)),
    })
}

/// The console an SPCR table describes.
pub fn outcome(table: &[u8]) -> SpcrOutcome {
    match spcr_fields_from_bytes(table) {
        Some(fields) => match ConsoleDescriptor::from_spcr(&fields) {
            Ok(console) => SpcrOutcome::Console(console),
            Err(e) => SpcrOutcome::Unusable(e),
        },
        None => SpcrOutcome::Invalid(TableFault::BadLength(table.len() as u32)),
    }
}

/// The UART's interrupt as a GSI, when the table gives one (interrupt type
/// bit 1: I/O APIC, bit 3: Arm GIC).
pub fn interrupt(table: &[u8]) -> Option<u32> {
    let kind = u8_at(table, 52)?;
    let gsi = u32_at(table, 54)?;
    (kind & 0b1010 != 0).then_some(gsi)
}
