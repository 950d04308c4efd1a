//! The GTDT (generic timer description table, ACPI 6.5, 5.2.25): the Arm
//! generic timer interrupts and the memory-mapped timer blocks and
//! watchdogs. Azure arm64 names the timer interrupt only here. The `acpi`
//! crate 5.x has no GTDT support.

use super::bytes::{entries, u32_at, u64_at};
use alloc::vec::Vec;
use core::fmt;

/// One architectural timer's interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerInterrupt {
    /// The GSIV (a PPI number, 16-31).
    pub gsiv: u32,
    /// Flags: bit 0 edge-triggered, bit 1 active low, bit 2 always-on.
    pub flags: u32,
}

impl TimerInterrupt {
    /// Edge-triggered (level otherwise).
    pub fn edge(&self) -> bool {
        self.flags & 1 != 0
    }
    /// Active low (high otherwise).
    pub fn active_low(&self) -> bool {
        self.flags & 2 != 0
    }
}

impl fmt::Display for TimerInterrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gsi={} {} {}",
            self.gsiv,
            if self.edge() { "edge" } else { "level" },
            if self.active_low() { "low" } else { "high" }
        )
    }
}

/// A memory-mapped generic timer block (platform timer type 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GtBlock {
    /// Physical base of its CNTCTLBase frame.
    pub base: u64,
    /// Timers in the block.
    pub timers: u32,
}

/// An SBSA generic watchdog (platform timer type 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watchdog {
    /// Refresh frame.
    pub refresh_frame: u64,
    /// Control frame.
    pub control_frame: u64,
    /// Its interrupt.
    pub gsiv: u32,
}

/// What the GTDT describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gtdt {
    /// Secure EL1 physical timer (often absent in VMs).
    pub secure_el1: Option<TimerInterrupt>,
    /// Non-secure EL1 physical timer.
    pub el1_physical: Option<TimerInterrupt>,
    /// EL1 virtual timer: the one a kernel in a VM uses.
    pub el1_virtual: Option<TimerInterrupt>,
    /// EL2 physical timer.
    pub el2_physical: Option<TimerInterrupt>,
    /// EL2 virtual timer (revision 3 tables).
    pub el2_virtual: Option<TimerInterrupt>,
    /// Memory-mapped timer blocks.
    pub gt_blocks: Vec<GtBlock>,
    /// SBSA watchdogs.
    pub watchdogs: Vec<Watchdog>,
}

/// Why a GTDT cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GtdtError {
    /// The table is shorter than its fixed part.
    TooShort(usize),
    /// The platform timer array lies outside the table or an entry in it is
    /// malformed.
    BadPlatformTimers {
        /// Entries the header announces.
        count: u32,
        /// Their offset.
        offset: u32,
    },
}

impl fmt::Display for GtdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "table too short ({n} bytes)"),
            Self::BadPlatformTimers { count, offset } => {
                write!(f, "{count} platform timers at offset {offset} do not fit")
            }
        }
    }
}

const FIXED_LEN: usize = 96;
const EL2_VIRTUAL: usize = 96;

fn timer(table: &[u8], at: usize) -> Option<TimerInterrupt> {
    let gsiv = u32_at(table, at)?;
    (gsiv != 0).then(|| TimerInterrupt {
        gsiv,
        flags: u32_at(table, at + 4).unwrap_or(0),
    })
}

/// Decodes a GTDT from its bytes (header included).
pub fn parse(table: &[u8]) -> Result<Gtdt, GtdtError> {
    if table.len() < FIXED_LEN {
        return Err(GtdtError::TooShort(table.len()));
    }
    let mut gtdt = Gtdt {
        secure_el1: timer(table, 48),
        el1_physical: timer(table, 56),
        el1_virtual: timer(table, 64),
        el2_physical: timer(table, 72),
        el2_virtual: timer(table, EL2_VIRTUAL),
        gt_blocks: Vec::new(),
        watchdogs: Vec::new(),
    };
    let count = u32_at(table, 88).unwrap_or(0);
    let offset = u32_at(table, 92).unwrap_or(0);
    if count == 0 {
        return Ok(gtdt);
    }
    let bad = GtdtError::BadPlatformTimers { count, offset };
    let start = usize::try_from(offset).map_err(|_| bad)?;
    if start < FIXED_LEN {
        return Err(bad);
    }
    let mut seen = 0u32;
    for entry in entries(table, start, true).take(count as usize) {
        let (kind, e, _) = entry.map_err(|_| bad)?;
        match kind {
            0 => gtdt.gt_blocks.push(GtBlock {
                base: u64_at(e, 4).ok_or(bad)?,
                timers: u32_at(e, 12).ok_or(bad)?,
            }),
            1 => gtdt.watchdogs.push(Watchdog {
                refresh_frame: u64_at(e, 4).ok_or(bad)?,
                control_frame: u64_at(e, 12).ok_or(bad)?,
                gsiv: u32_at(e, 20).ok_or(bad)?,
            }),
            _ => {}
        }
        seen += 1;
    }
    if seen != count {
        return Err(bad);
    }
    Ok(gtdt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::bytes::test_table;

    fn gtdt(revision: u8, platform: &[u8], count: u32) -> alloc::vec::Vec<u8> {
        let mut body = alloc::vec![0u8; 104 - 36];
        body[64 - 36..68 - 36].copy_from_slice(&27u32.to_le_bytes());
        body[68 - 36..72 - 36].copy_from_slice(&0b110u32.to_le_bytes());
        body[96 - 36..100 - 36].copy_from_slice(&28u32.to_le_bytes());
        body[88 - 36..92 - 36].copy_from_slice(&count.to_le_bytes());
        body[92 - 36..96 - 36].copy_from_slice(&104u32.to_le_bytes());
        body.extend_from_slice(platform);
        test_table(b"GTDT", revision, &body)
    }

    #[test]
    fn revision_3_with_a_watchdog() {
        let mut watchdog = alloc::vec![1u8, 28, 0, 0];
        watchdog.extend_from_slice(&0x2a44_0000u64.to_le_bytes());
        watchdog.extend_from_slice(&0x2a45_0000u64.to_le_bytes());
        watchdog.extend_from_slice(&93u32.to_le_bytes());
        watchdog.extend_from_slice(&0u32.to_le_bytes());
        let g = parse(&gtdt(3, &watchdog, 1)).unwrap();
        let virt = g.el1_virtual.unwrap();
        assert_eq!(
            (virt.gsiv, virt.edge(), virt.active_low()),
            (27, false, true)
        );
        assert_eq!(g.el2_virtual.map(|t| t.gsiv), Some(28));
        assert_eq!(g.secure_el1, None);
        assert_eq!(g.watchdogs[0].gsiv, 93);
        assert_eq!(g.watchdogs[0].control_frame, 0x2a45_0000);
    }

    #[test]
    fn platform_timers_past_the_end_are_refused() {
        assert_eq!(
            parse(&gtdt(3, &[0, 20, 0], 2)),
            Err(GtdtError::BadPlatformTimers {
                count: 2,
                offset: 104
            })
        );
        assert_eq!(parse(&[0u8; 95]), Err(GtdtError::TooShort(95)));
    }
}
