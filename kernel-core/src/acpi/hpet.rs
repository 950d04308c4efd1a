//! The HPET description table (IA-PC HPET specification 1.0a, 3.2.4).

use super::bytes::{GenericAddress, u8_at, u16_at, u32_at};
use core::fmt;

/// The high precision event timer block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hpet {
    /// Physical base of its registers (system memory).
    pub base: u64,
    /// HPET sequence number.
    pub number: u8,
    /// Hardware id of the event timer block (vendor, comparators...).
    pub block_id: u32,
    /// Minimum clock ticks for periodic mode without lost interrupts.
    pub min_tick: u16,
}

impl Hpet {
    /// Comparators in the block (bits 8-12 of the block id, plus one).
    pub fn comparators(&self) -> u32 {
        ((self.block_id >> 8) & 0x1f) + 1
    }
}

/// Why an HPET table cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpetError {
    /// The table is shorter than its 56 bytes.
    TooShort(usize),
    /// The register block is not in system memory (or has address 0).
    NotInMemory,
}

impl fmt::Display for HpetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "table too short ({n} bytes)"),
            Self::NotInMemory => f.write_str("register block not in system memory"),
        }
    }
}

/// Decodes an HPET table from its bytes (header included).
pub fn parse(table: &[u8]) -> Result<Hpet, HpetError> {
    let short = HpetError::TooShort(table.len());
    let block_id = u32_at(table, 36).ok_or(short)?;
    let number = u8_at(table, 52).ok_or(short)?;
    let min_tick = u16_at(table, 53).ok_or(short)?;
    u8_at(table, 55).ok_or(short)?;
    let base = GenericAddress::at(table, 40)
        .filter(|g| g.space == GenericAddress::MEMORY)
        .ok_or(HpetError::NotInMemory)?;
    Ok(Hpet {
        base: base.address,
        number,
        block_id,
        min_tick,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::bytes::test_table;

    #[test]
    fn register_block_must_be_in_memory() {
        let mut body = [0u8; 20];
        body[..4].copy_from_slice(&0x8086_a201u32.to_le_bytes());
        body[4] = 0; // system memory
        body[8..16].copy_from_slice(&0xfed0_0000u64.to_le_bytes());
        let hpet = parse(&test_table(b"HPET", 1, &body)).unwrap();
        assert_eq!((hpet.base, hpet.comparators()), (0xfed0_0000, 3));
        body[4] = 1; // I/O space
        assert_eq!(
            parse(&test_table(b"HPET", 1, &body)),
            Err(HpetError::NotInMemory)
        );
        assert_eq!(parse(&[0u8; 40]), Err(HpetError::TooShort(40)));
    }
}
