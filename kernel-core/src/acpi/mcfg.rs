//! The MCFG (PCI Express memory-mapped configuration, PCI Firmware spec 3.2,
//! 4.1.2): one ECAM region per PCI segment group and bus range.

use super::bytes::{u8_at, u16_at, u64_at};
use alloc::vec::Vec;
use core::fmt;

/// One ECAM region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcamRegion {
    /// Physical base (the address of bus 0's configuration space, even when
    /// `start_bus` is not 0).
    pub base: u64,
    /// PCI segment group (not always 0: Graviton bare metal uses 1).
    pub segment: u16,
    /// First bus decoded.
    pub start_bus: u8,
    /// Last bus decoded.
    pub end_bus: u8,
}

impl fmt::Display for EcamRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}-{:02x} @{:#x}",
            self.segment, self.start_bus, self.end_bus, self.base
        )
    }
}

/// Why an MCFG cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum McfgError {
    /// The table ends before its first entry.
    TooShort(usize),
    /// The entries do not fill the table in whole 16-byte records.
    PartialEntry(usize),
    /// An entry's bus range runs backwards.
    BusRange(EcamRegion),
}

impl fmt::Display for McfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "table too short ({n} bytes)"),
            Self::PartialEntry(n) => write!(f, "{n} bytes left after the last whole entry"),
            Self::BusRange(r) => write!(f, "bus range runs backwards ({r})"),
        }
    }
}

const ENTRIES: usize = 44;
const ENTRY_LEN: usize = 16;

/// Decodes an MCFG from its bytes (header included).
pub fn parse(table: &[u8]) -> Result<Vec<EcamRegion>, McfgError> {
    let body = table
        .get(ENTRIES..)
        .ok_or(McfgError::TooShort(table.len()))?;
    let chunks = body.chunks_exact(ENTRY_LEN);
    if !chunks.remainder().is_empty() {
        return Err(McfgError::PartialEntry(chunks.remainder().len()));
    }
    chunks
        .map(|e| {
            let region = EcamRegion {
                base: u64_at(e, 0).unwrap_or(0),
                segment: u16_at(e, 8).unwrap_or(0),
                start_bus: u8_at(e, 10).unwrap_or(0),
                end_bus: u8_at(e, 11).unwrap_or(0),
            };
            if region.end_bus < region.start_bus {
                Err(McfgError::BusRange(region))
            } else {
                Ok(region)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::bytes::test_table;

    fn entry(base: u64, segment: u16, start: u8, end: u8) -> [u8; 16] {
        let mut e = [0u8; 16];
        e[..8].copy_from_slice(&base.to_le_bytes());
        e[8..10].copy_from_slice(&segment.to_le_bytes());
        e[10] = start;
        e[11] = end;
        e
    }

    #[test]
    fn every_segment_group() {
        let mut body = alloc::vec![0u8; 8];
        body.extend_from_slice(&entry(0xb000_0000, 0, 0, 0xff));
        body.extend_from_slice(&entry(0x3f00_0000_0000, 1, 0x10, 0x1f));
        let regions = parse(&test_table(b"MCFG", 1, &body)).unwrap();
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[1].segment, 1);
        assert_eq!(
            alloc::format!("{}", regions[1]),
            "0001:10-1f @0x3f0000000000"
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        let mut body = alloc::vec![0u8; 8];
        body.extend_from_slice(&entry(0xb000_0000, 0, 0x20, 0x1f));
        assert!(matches!(
            parse(&test_table(b"MCFG", 1, &body)),
            Err(McfgError::BusRange(_))
        ));
        body.truncate(8 + 10);
        assert_eq!(
            parse(&test_table(b"MCFG", 1, &body)),
            Err(McfgError::PartialEntry(10))
        );
    }
}
