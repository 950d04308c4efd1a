//! The MADT (`APIC`, ACPI 6.5, 5.2.12): CPUs and interrupt controllers, for
//! both the x86 local APIC / x2APIC / I/O APIC model and the Arm GIC.
//!
//! The `acpi` crate 5.x gives the GIC entries only as raw structures, so the
//! whole table is decoded here from its bytes. Entry types Stratus does not
//! use are counted and skipped by their length; an entry whose length is
//! shorter than its type's fields, or that runs past the table, makes the
//! whole table invalid.

use super::bytes::{BadEntry, entries, u8_at, u16_at, u32_at, u64_at};
use alloc::vec::Vec;
use core::fmt;

/// How a CPU is named by the interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuHwId {
    /// An 8-bit local APIC id (MADT type 0).
    Apic(u8),
    /// A 32-bit x2APIC id (MADT type 9): ids above 255 appear on large VMs.
    X2Apic(u32),
    /// The MPIDR affinity value from the GICC entry (MADT type 0xB).
    Mpidr(u64),
}

/// One CPU the firmware describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// ACPI processor UID (matches the DSDT's processor objects).
    pub uid: u32,
    /// The interrupt controller's name for it.
    pub hw_id: CpuHwId,
    /// Usable now.
    pub enabled: bool,
    /// Disabled but may be brought online (hot-plug).
    pub online_capable: bool,
    /// GICC: this CPU's redistributor (GICv3), when the firmware gives it
    /// per CPU rather than as GICR ranges (bare metal, Azure).
    pub gicr_base: Option<u64>,
    /// GICC: the performance-monitor interrupt (GSIV), 0 when none.
    pub pmu_gsiv: u32,
}

/// An I/O APIC (MADT type 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Its APIC id.
    pub id: u8,
    /// Physical address of its registers.
    pub address: u32,
    /// The first global system interrupt it serves.
    pub gsi_base: u32,
}

/// MPS INTI flags (polarity and trigger mode) as the MADT gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntiFlags(pub u16);

impl IntiFlags {
    /// Polarity: 0 bus default, 1 active high, 3 active low.
    pub fn polarity(self) -> u16 {
        self.0 & 3
    }
    /// Trigger: 0 bus default, 1 edge, 3 level.
    pub fn trigger(self) -> u16 {
        (self.0 >> 2) & 3
    }
}

/// An ISA interrupt routed to another GSI (MADT type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptOverride {
    /// The ISA IRQ.
    pub source: u8,
    /// The GSI it arrives on.
    pub gsi: u32,
    /// Polarity and trigger.
    pub flags: IntiFlags,
}

/// An NMI: a GSI wired as NMI (type 3) or a local APIC LINT pin (types 4, 0xA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nmi {
    /// A global system interrupt that is an NMI source.
    Source {
        /// The GSI.
        gsi: u32,
        /// Polarity and trigger.
        flags: IntiFlags,
    },
    /// LINT pin `lint` of the CPU with ACPI UID `uid` (`None`: every CPU).
    LocalPin {
        /// ACPI processor UID, `None` for all processors.
        uid: Option<u32>,
        /// LINT0 or LINT1.
        lint: u8,
        /// Polarity and trigger.
        flags: IntiFlags,
    },
}

/// The GIC distributor (MADT type 0xC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gicd {
    /// Physical base of its registers.
    pub base: u64,
    /// GIC version (1-4; 0: "find out from the hardware").
    pub version: u8,
}

/// A GICv3 redistributor discovery range (MADT type 0xE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicrRange {
    /// Physical base.
    pub base: u64,
    /// Length in bytes.
    pub length: u32,
}

/// A GIC interrupt translation service (MADT type 0xF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicIts {
    /// Its id (IORT ITS groups name ITSs by it).
    pub id: u32,
    /// Physical base of its registers.
    pub base: u64,
}

/// What the MADT describes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Madt {
    /// The local APIC address (32-bit field, or the type 5 override).
    pub local_apic_address: u64,
    /// PCAT_COMPAT: the machine also has dual 8259 PICs (to be masked).
    pub pcat_compat: bool,
    /// Every CPU entry (local APIC, x2APIC or GICC).
    pub cpus: Vec<Cpu>,
    /// I/O APICs.
    pub io_apics: Vec<IoApic>,
    /// ISA interrupt source overrides.
    pub overrides: Vec<InterruptOverride>,
    /// NMI sources and local NMI pins.
    pub nmis: Vec<Nmi>,
    /// The GIC distributor.
    pub gicd: Option<Gicd>,
    /// GICv3 redistributor ranges.
    pub gicr_ranges: Vec<GicrRange>,
    /// GIC ITSs.
    pub its: Vec<GicIts>,
    /// Entries of other types (GICv2m MSI frames, multiprocessor wakeup...).
    pub other_entries: usize,
}

impl Madt {
    /// CPUs named by x2APIC id.
    pub fn x2apic_cpus(&self) -> usize {
        self.cpus
            .iter()
            .filter(|c| matches!(c.hw_id, CpuHwId::X2Apic(_)))
            .count()
    }

    /// The hardware ids of the enabled CPUs, in table order and without
    /// duplicates: APIC or x2APIC id, or the MPIDR's affinity fields (Aff3
    /// and Aff2-Aff0, the bits PSCI `CPU_ON` takes). CPUs that are only
    /// online capable are hot-plug material and not listed.
    pub fn enabled_cpu_ids(&self) -> Vec<u64> {
        let mut ids = Vec::new();
        for cpu in self.cpus.iter().filter(|c| c.enabled) {
            let id = match cpu.hw_id {
                CpuHwId::Apic(id) => u64::from(id),
                CpuHwId::X2Apic(id) => u64::from(id),
                CpuHwId::Mpidr(mpidr) => mpidr & MPIDR_AFFINITY,
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// CPUs whose GICC entry carries their redistributor.
    pub fn per_cpu_redistributors(&self) -> usize {
        self.cpus.iter().filter(|c| c.gicr_base.is_some()).count()
    }
}

/// Why a MADT cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MadtError {
    /// The table ends before the first entry.
    TooShort(usize),
    /// An entry's length is impossible or runs past the table.
    BadEntry(BadEntry),
    /// An entry is shorter than its type's fields.
    ShortEntry(BadEntry),
}

impl fmt::Display for MadtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "table too short ({n} bytes)"),
            Self::BadEntry(e) => write!(
                f,
                "entry type {:#x} at offset {} has length {}",
                e.kind, e.offset, e.length
            ),
            Self::ShortEntry(e) => write!(
                f,
                "entry type {:#x} at offset {} is too short ({} bytes)",
                e.kind, e.offset, e.length
            ),
        }
    }
}

const ENTRIES: usize = 44;
/// MPIDR_EL1 affinity fields: Aff3 (bits 32-39), Aff2-Aff0 (bits 0-23).
const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;
const ENABLED: u32 = 1 << 0;
const ONLINE_CAPABLE: u32 = 1 << 1;
/// GICC flags bit 3 (ACPI 6.5): online capable.
const GICC_ONLINE_CAPABLE: u32 = 1 << 3;

/// Decodes a MADT from its bytes (header included).
pub fn parse(table: &[u8]) -> Result<Madt, MadtError> {
    let mut madt = Madt {
        local_apic_address: u32_at(table, 36)
            .map(u64::from)
            .ok_or(MadtError::TooShort(table.len()))?,
        pcat_compat: u32_at(table, 40).ok_or(MadtError::TooShort(table.len()))? & 1 != 0,
        ..Madt::default()
    };
    for entry in entries(table, ENTRIES, false) {
        let (kind, e, offset) = entry.map_err(MadtError::BadEntry)?;
        let short = MadtError::ShortEntry(BadEntry {
            offset,
            kind,
            length: e.len(),
        });
        decode_entry(&mut madt, kind, e).ok_or(short)?;
    }
    Ok(madt)
}

/// Adds one entry to `madt`; `None` when it is shorter than its fields.
fn decode_entry(madt: &mut Madt, kind: u8, e: &[u8]) -> Option<()> {
    match kind {
        0 => {
            let flags = u32_at(e, 4)?;
            madt.cpus.push(Cpu {
                uid: u32::from(u8_at(e, 2)?),
                hw_id: CpuHwId::Apic(u8_at(e, 3)?),
                enabled: flags & ENABLED != 0,
                online_capable: flags & ONLINE_CAPABLE != 0,
                gicr_base: None,
                pmu_gsiv: 0,
            });
        }
        1 => madt.io_apics.push(IoApic {
            id: u8_at(e, 2)?,
            address: u32_at(e, 4)?,
            gsi_base: u32_at(e, 8)?,
        }),
        2 => madt.overrides.push(InterruptOverride {
            source: u8_at(e, 3)?,
            gsi: u32_at(e, 4)?,
            flags: IntiFlags(u16_at(e, 8)?),
        }),
        3 => madt.nmis.push(Nmi::Source {
            flags: IntiFlags(u16_at(e, 2)?),
            gsi: u32_at(e, 4)?,
        }),
        4 => {
            let uid = u8_at(e, 2)?;
            madt.nmis.push(Nmi::LocalPin {
                uid: (uid != 0xff).then_some(u32::from(uid)),
                flags: IntiFlags(u16_at(e, 3)?),
                lint: u8_at(e, 5)?,
            });
        }
        5 => madt.local_apic_address = u64_at(e, 4)?,
        9 => {
            let flags = u32_at(e, 8)?;
            madt.cpus.push(Cpu {
                uid: u32_at(e, 12)?,
                hw_id: CpuHwId::X2Apic(u32_at(e, 4)?),
                enabled: flags & ENABLED != 0,
                online_capable: flags & ONLINE_CAPABLE != 0,
                gicr_base: None,
                pmu_gsiv: 0,
            });
        }
        0xa => {
            let uid = u32_at(e, 4)?;
            madt.nmis.push(Nmi::LocalPin {
                uid: (uid != u32::MAX).then_some(uid),
                flags: IntiFlags(u16_at(e, 2)?),
                lint: u8_at(e, 8)?,
            });
        }
        0xb => {
            // GICC: 76 bytes in ACPI 5.1, 80 in 6.0, 82 in 6.3 and later;
            // the MPIDR (offset 68) is the last field Stratus needs.
            let flags = u32_at(e, 12)?;
            let mpidr = u64_at(e, 68)?;
            madt.cpus.push(Cpu {
                uid: u32_at(e, 8)?,
                hw_id: CpuHwId::Mpidr(mpidr),
                enabled: flags & ENABLED != 0,
                online_capable: flags & GICC_ONLINE_CAPABLE != 0,
                gicr_base: Some(u64_at(e, 60)?).filter(|&b| b != 0),
                pmu_gsiv: u32_at(e, 20)?,
            });
        }
        0xc => {
            // A second GICD is not allowed; the first one counts.
            let gicd = Gicd {
                base: u64_at(e, 8)?,
                version: u8_at(e, 20)?,
            };
            madt.gicd.get_or_insert(gicd);
        }
        0xe => madt.gicr_ranges.push(GicrRange {
            base: u64_at(e, 4)?,
            length: u32_at(e, 12)?,
        }),
        0xf => madt.its.push(GicIts {
            id: u32_at(e, 4)?,
            base: u64_at(e, 8)?,
        }),
        _ => madt.other_entries += 1,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::bytes::test_table;

    fn gicc(length: u8, uid: u32, mpidr: u64, gicr: u64) -> alloc::vec::Vec<u8> {
        let mut e = alloc::vec![0u8; usize::from(length)];
        e[0] = 0xb;
        e[1] = length;
        e[8..12].copy_from_slice(&uid.to_le_bytes());
        e[12..16].copy_from_slice(&1u32.to_le_bytes());
        e[60..68].copy_from_slice(&gicr.to_le_bytes());
        e[68..76].copy_from_slice(&mpidr.to_le_bytes());
        e
    }

    fn madt(entries: &[alloc::vec::Vec<u8>]) -> alloc::vec::Vec<u8> {
        let mut body = alloc::vec![0u8; 8];
        for e in entries {
            body.extend_from_slice(e);
        }
        test_table(b"APIC", 5, &body)
    }

    #[test]
    fn gicc_of_every_acpi_version() {
        let m = parse(&madt(&[
            gicc(76, 0, 0x0, 0),
            gicc(80, 1, 0x100, 0x1020_0000),
            gicc(82, 2, 0x1_0000_0000, 0),
        ]))
        .unwrap();
        let ids: alloc::vec::Vec<_> = m.cpus.iter().map(|c| c.hw_id).collect();
        assert_eq!(ids, [0, 0x100, 0x1_0000_0000].map(CpuHwId::Mpidr));
        assert_eq!(m.cpus[1].gicr_base, Some(0x1020_0000));
        assert_eq!(m.per_cpu_redistributors(), 1);
    }

    #[test]
    fn entry_shorter_than_its_type_is_refused() {
        let mut short = gicc(76, 0, 0, 0);
        short.truncate(40);
        short[1] = 40;
        assert_eq!(
            parse(&madt(&[short])),
            Err(MadtError::ShortEntry(BadEntry {
                offset: 44,
                kind: 0xb,
                length: 40
            }))
        );
        assert_eq!(parse(&[0u8; 40]), Err(MadtError::TooShort(40)));
    }

    fn lapic(id: u8, flags: u32) -> alloc::vec::Vec<u8> {
        let mut e = alloc::vec![0, 8, id, id];
        e.extend_from_slice(&flags.to_le_bytes());
        e
    }

    #[test]
    fn enabled_cpu_ids_of_apics_and_x2apics() {
        let mut x2 = alloc::vec![9, 16, 0, 0];
        x2.extend_from_slice(&300u32.to_le_bytes());
        x2.extend_from_slice(&1u32.to_le_bytes());
        x2.extend_from_slice(&[0; 4]);
        // CPU 2 is only online capable; CPU 1 is listed twice.
        let m = parse(&madt(&[
            lapic(0, 1),
            lapic(1, 1),
            lapic(2, 2),
            lapic(1, 1),
            x2,
        ]))
        .unwrap();
        assert_eq!(m.enabled_cpu_ids(), [0, 1, 300]);
        assert_eq!(m.cpus.iter().filter(|c| c.online_capable).count(), 1);
    }

    #[test]
    fn enabled_cpu_ids_are_mpidr_affinity() {
        let mut off = gicc(80, 2, 0x100, 0);
        off[12] = 0;
        let m = parse(&madt(&[
            gicc(80, 0, 0x8000_0000, 0),
            gicc(80, 1, 0x1_0000_0001, 0),
            off,
        ]))
        .unwrap();
        assert_eq!(m.enabled_cpu_ids(), [0, 0x1_0000_0001]);
    }

    #[test]
    fn unknown_entries_are_counted_and_skipped() {
        let m = parse(&madt(&[alloc::vec![0x7f, 4, 0, 0], gicc(80, 0, 0, 0)])).unwrap();
        assert_eq!((m.other_entries, m.cpus.len()), (1, 1));
    }
}
