//! ACPI soft-off (S5) for x86: the PM1 control registers from the FADT and
//! the sleep type from `\_S5` in the DSDT (or an SSDT), combined into the
//! [`AcpiSoftOff`] the architecture's power-off writes. Pure: it works on
//! the decoded FADT and on table bytes the table walk already bounded and
//! checked.

use super::fadt::Fadt;
use super::sleep::{self, S5Error};
use super::tables::HEADER_LEN;
use core::fmt;
use stratus_arch::AcpiSoftOff;

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
            Self::S5(e) => e.fmt(f),
        }
    }
}

/// The soft-off description from a FADT and the AML tables: the DSDT first,
/// then the SSDTs (each a whole table, header included). The first table
/// with a readable `\_S5` decides; when none has one, the DSDT's error is
/// reported.
pub fn soft_off<'t>(
    fadt: &Fadt,
    dsdt: Option<&'t [u8]>,
    ssdts: impl IntoIterator<Item = &'t [u8]>,
) -> Result<AcpiSoftOff, SoftOffError> {
    if fadt.hardware_reduced() {
        return Err(SoftOffError::HardwareReduced);
    }
    let pm1a_control = fadt
        .pm1a_control
        .and_then(|r| r.io_port())
        .ok_or(SoftOffError::NoPm1aControl)?;
    let pm1b_control = match fadt.pm1b_control {
        None => None,
        Some(r) => Some(r.io_port().ok_or(SoftOffError::UnsupportedPm1bControl)?),
    };
    let aml = |table: &'t [u8]| table.get(HEADER_LEN..).unwrap_or_default();
    let dsdt = dsdt.ok_or(SoftOffError::NoDsdt)?;
    let s5 = sleep::find_s5(aml(dsdt))
        .or_else(|e| {
            ssdts
                .into_iter()
                .find_map(|t| sleep::find_s5(aml(t)).ok())
                .ok_or(e)
        })
        .map_err(SoftOffError::S5)?;
    let acpi_enable = u16::try_from(fadt.smi_command)
        .ok()
        .filter(|&port| port != 0 && fadt.acpi_enable != 0)
        .map(|port| (port, fadt.acpi_enable));
    Ok(AcpiSoftOff {
        pm1a_control,
        pm1b_control,
        pm1a_value: s5.pm1a_value(),
        pm1b_value: s5.pm1b_value(),
        acpi_enable,
    })
}
