//! The FADT (`FACP`, ACPI 6.5, 5.2.9): power-management registers, the
//! DSDT's address, reset, PSCI conduit and boot flags, decoded from the
//! table's bytes. A field is read only when the table is long enough to hold
//! it: QEMU's i440FX PC has a 116-byte revision 1 FADT.

use super::bytes::{GenericAddress, u8_at, u16_at, u32_at, u64_at};
use core::fmt;
use stratus_arch::PsciConduit;

/// Where the ACPI power-management timer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmTimer {
    /// An I/O port (x86).
    Port {
        /// The port.
        port: u16,
        /// Counter width: 24 or 32 bits.
        bits: u32,
    },
}

/// A register the FADT names (PM1 control blocks, reset register).
pub type Register = GenericAddress;

/// What the FADT describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fadt {
    /// Table revision (major) and the FADT minor version.
    pub revision: (u8, u8),
    /// The DSDT's physical address (X_DSDT when set, else DSDT).
    pub dsdt: Option<u64>,
    /// The SCI interrupt (x86: an ISA IRQ / GSI).
    pub sci_interrupt: u16,
    /// PM1a control block.
    pub pm1a_control: Option<Register>,
    /// PM1b control block.
    pub pm1b_control: Option<Register>,
    /// PM1a event block.
    pub pm1a_event: Option<Register>,
    /// The PM timer.
    pub pm_timer: Option<PmTimer>,
    /// Reset register and the value to write, when the FADT says it works.
    pub reset: Option<(Register, u8)>,
    /// PSCI conduit (ARM boot architecture flags).
    pub psci: Option<PsciConduit>,
    /// IA-PC boot architecture flags (bit 1: 8042 present...).
    pub iapc_boot_flags: u16,
    /// Fixed feature flags.
    pub flags: u32,
    /// The SMI command port (0: none; the ACPI hardware is the OS's).
    pub smi_command: u32,
    /// The value written to the SMI command port to take the ACPI hardware
    /// from the firmware (`ACPI_ENABLE`).
    pub acpi_enable: u8,
}

impl Fadt {
    /// Hardware-reduced ACPI: no PM1 blocks, sleep through the sleep
    /// control register (all arm64 platforms).
    pub fn hardware_reduced(&self) -> bool {
        self.flags & FLAG_HW_REDUCED != 0
    }

    /// The reset register when it is an I/O port, with its value.
    pub fn reset_port(&self) -> Option<(u16, u8)> {
        self.reset.and_then(|(r, v)| Some((r.io_port()?, v)))
    }
}

/// Why a FADT cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FadtError {
    /// Shorter than a revision 1 FADT (116 bytes).
    TooShort(usize),
}

impl fmt::Display for FadtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "table too short ({n} bytes)"),
        }
    }
}

const REV1_LEN: usize = 116;
const FLAG_PM_TIMER_32: u32 = 1 << 8;
const FLAG_RESET_REG_SUP: u32 = 1 << 10;
const FLAG_HW_REDUCED: u32 = 1 << 20;

/// A 32-bit I/O block (pre-ACPI-2.0 field) as a register of `len` bytes.
fn legacy_block(table: &[u8], at: usize, len_at: usize) -> Option<Register> {
    let port = u32_at(table, at).filter(|&p| p != 0)?;
    let len = u8_at(table, len_at).unwrap_or(0);
    Some(Register {
        space: GenericAddress::IO,
        bit_width: len.saturating_mul(8),
        bit_offset: 0,
        access_size: 0,
        address: u64::from(port),
    })
}

/// The extended (X_) block when present, else the legacy one.
fn block(table: &[u8], x_at: usize, at: usize, len_at: usize) -> Option<Register> {
    GenericAddress::at(table, x_at).or_else(|| legacy_block(table, at, len_at))
}

/// Decodes a FADT from its bytes (header included).
pub fn parse(table: &[u8]) -> Result<Fadt, FadtError> {
    if table.len() < REV1_LEN {
        return Err(FadtError::TooShort(table.len()));
    }
    let flags = u32_at(table, 112).unwrap_or(0);
    let dsdt = u64_at(table, 140)
        .filter(|&a| a != 0)
        .or_else(|| u32_at(table, 40).filter(|&a| a != 0).map(u64::from));
    let reset = GenericAddress::at(table, 116)
        .zip(u8_at(table, 128))
        .filter(|_| flags & FLAG_RESET_REG_SUP != 0);
    let arm_boot = u16_at(table, 129).unwrap_or(0);
    let psci = (arm_boot & 1 != 0).then_some(if arm_boot & 2 != 0 {
        PsciConduit::Hvc
    } else {
        PsciConduit::Smc
    });
    let pm_timer = block(table, 208, 76, 91)
        .and_then(|r| r.io_port())
        .map(|port| PmTimer::Port {
            port,
            bits: if flags & FLAG_PM_TIMER_32 != 0 {
                32
            } else {
                24
            },
        });
    Ok(Fadt {
        revision: (table[8], u8_at(table, 131).unwrap_or(0) & 0xf),
        dsdt,
        sci_interrupt: u16_at(table, 46).unwrap_or(0),
        pm1a_control: block(table, 172, 64, 89),
        pm1b_control: block(table, 184, 68, 89),
        pm1a_event: block(table, 148, 56, 88),
        pm_timer,
        reset,
        psci,
        iapc_boot_flags: u16_at(table, 109).unwrap_or(0),
        flags,
        smi_command: u32_at(table, 48).unwrap_or(0),
        acpi_enable: u8_at(table, 52).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::bytes::test_table;

    #[test]
    fn extended_blocks_win_over_legacy_ones() {
        let mut body = alloc::vec![0u8; 276 - 36];
        body[64 - 36..68 - 36].copy_from_slice(&0xb004u32.to_le_bytes());
        body[89 - 36] = 2;
        // X_PM1a_CNT_BLK: I/O port 0x604, 16 bits.
        body[172 - 36] = 1;
        body[173 - 36] = 16;
        body[176 - 36..184 - 36].copy_from_slice(&0x604u64.to_le_bytes());
        body[140 - 36..148 - 36].copy_from_slice(&0x7fe0_0000u64.to_le_bytes());
        body[40 - 36..44 - 36].copy_from_slice(&0x1234u32.to_le_bytes());
        let f = parse(&test_table(b"FACP", 6, &body)).unwrap();
        assert_eq!(f.pm1a_control.and_then(|r| r.io_port()), Some(0x604));
        assert_eq!(f.dsdt, Some(0x7fe0_0000));
        assert_eq!(f.reset, None, "RESET_REG_SUP is clear");
        assert_eq!(f.psci, None);
    }

    #[test]
    fn too_short_is_refused() {
        assert_eq!(parse(&[0u8; 100]), Err(FadtError::TooShort(100)));
    }
}
