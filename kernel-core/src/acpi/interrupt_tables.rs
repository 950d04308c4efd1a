//! The interrupt hardware from the MADT and the timer interrupt from the
//! GTDT, decoded from the tables' bytes with every length checked.
//!
//! A stopgap until full ACPI discovery keeps the MADT for the kernel's
//! lifetime: [`discover`] is the one function to replace. The `acpi`
//! crate's MADT iterator is not used because it trusts entry lengths (a
//! zero length loops forever, one past the end reads beyond the table).

use super::{DirectMapAcpiHandler, table_bytes};
use ::acpi::madt::Madt;
use ::acpi::sdt::{SdtHeader, Signature};
use ::acpi::{AcpiTable, AcpiTables};
use alloc::vec::Vec;
use stratus_arch::interrupts::{
    InterruptHardware, InterruptLine, IoApicDescription, Polarity, RedistributorSource,
    SourceOverride, Trigger,
};

/// Size of the common ACPI table header.
const HEADER_LEN: usize = 36;
/// One GICv3 redistributor: RD_base and SGI_base frames, 64 KiB each.
pub const GICV3_REDISTRIBUTOR_LEN: u64 = 0x20000;

/// What the MADT and GTDT say about interrupts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterruptTables {
    /// x86: the local APIC's physical address (entry type 5 overrides the
    /// header's 32-bit one).
    pub local_apic_phys: Option<u64>,
    /// x86: I/O APICs.
    pub io_apics: Vec<IoApicDescription>,
    /// x86: interrupt source overrides.
    pub overrides: Vec<SourceOverride>,
    /// x86: enabled (or online-capable) local APIC / x2APIC ids.
    pub apic_ids: Vec<u32>,
    /// arm: GIC distributor address and version.
    pub gic_distributor: Option<(u64, u8)>,
    /// arm: redistributor regions from GICR entries.
    pub gicr_ranges: Vec<(u64, u64)>,
    /// arm: per-CPU redistributor addresses from GICC entries (non-zero).
    pub gicc_redistributors: Vec<(u64, u64)>,
    /// arm: the non-secure EL1 virtual timer's interrupt (GTDT).
    pub virtual_timer: Option<InterruptLine>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// MPS INTI flags (ACPI 6.5, table 5.26): polarity bits 1:0, trigger 3:2;
/// 0 means "conforms to the bus" (ISA: active high, edge).
fn mps_flags(flags: u16) -> (Trigger, Polarity) {
    let polarity = if flags & 3 == 3 {
        Polarity::Low
    } else {
        Polarity::High
    };
    let trigger = if (flags >> 2) & 3 == 3 {
        Trigger::Level
    } else {
        Trigger::Edge
    };
    (trigger, polarity)
}

impl InterruptTables {
    /// Decodes a MADT (ACPI 6.5, 5.2.12). Entries that are too short for
    /// their type are skipped; a zero or overlong entry length ends the walk.
    pub fn read_madt(&mut self, madt: &[u8]) {
        let Some(lapic) = u32_at(madt, HEADER_LEN) else {
            return;
        };
        self.local_apic_phys = Some(u64::from(lapic)).filter(|&a| a != 0);
        let mut at = HEADER_LEN + 8;
        while let (Some(&kind), Some(&len)) = (madt.get(at), madt.get(at + 1)) {
            let len = usize::from(len);
            let Some(e) = madt.get(at..at + len).filter(|_| len >= 2) else {
                break;
            };
            self.read_madt_entry(kind, e);
            at += len;
        }
    }

    fn read_madt_entry(&mut self, kind: u8, e: &[u8]) {
        // Flags bit 0 enabled, bit 1 online capable (ACPI 6.5, table 5.22).
        let usable = |flags: u32| flags & 3 != 0;
        match kind {
            0 if e.len() >= 8 && u32_at(e, 4).is_some_and(usable) => {
                self.apic_ids.push(u32::from(e[3]));
            }
            1 if e.len() >= 12 => {
                if let (Some(phys), Some(gsi_base)) = (u32_at(e, 4), u32_at(e, 8)) {
                    self.io_apics.push(IoApicDescription {
                        id: e[2],
                        phys: u64::from(phys),
                        gsi_base,
                    });
                }
            }
            2 if e.len() >= 10 => {
                if let (Some(gsi), Some(flags)) = (u32_at(e, 4), u16_at(e, 8))
                    && e[2] == 0
                {
                    let (trigger, polarity) = mps_flags(flags);
                    self.overrides.push(SourceOverride {
                        isa_irq: e[3],
                        gsi,
                        trigger,
                        polarity,
                    });
                }
            }
            5 if e.len() >= 12 => {
                self.local_apic_phys = u64_at(e, 4).filter(|&a| a != 0);
            }
            9 if e.len() >= 16 => {
                if let (Some(id), Some(flags)) = (u32_at(e, 4), u32_at(e, 8))
                    && usable(flags)
                {
                    self.apic_ids.push(id);
                }
            }
            0xb if e.len() >= 76 => {
                if let (Some(flags), Some(gicr)) = (u32_at(e, 12), u64_at(e, 60))
                    && usable(flags)
                    && gicr != 0
                {
                    self.gicc_redistributors
                        .push((gicr, GICV3_REDISTRIBUTOR_LEN));
                }
            }
            0xc if e.len() >= 21 => {
                if let Some(base) = u64_at(e, 8) {
                    self.gic_distributor = Some((base, e[20]));
                }
            }
            0xe if e.len() >= 16 => {
                if let (Some(base), Some(len)) = (u64_at(e, 4), u32_at(e, 12)) {
                    self.gicr_ranges.push((base, u64::from(len)));
                }
            }
            _ => {}
        }
    }

    /// Decodes the GTDT's non-secure EL1 virtual timer interrupt (ACPI 6.5,
    /// 5.2.25: GSIV at offset 64, flags at 68: bit 0 edge, bit 1 active low).
    pub fn read_gtdt(&mut self, gtdt: &[u8]) {
        if let (Some(gsi), Some(flags)) = (u32_at(gtdt, 64), u32_at(gtdt, 68))
            && gsi != 0
        {
            let trigger = if flags & 1 != 0 {
                Trigger::Edge
            } else {
                Trigger::Level
            };
            let polarity = if flags & 2 != 0 {
                Polarity::Low
            } else {
                Polarity::High
            };
            self.virtual_timer = Some(if (16..32).contains(&gsi) {
                InterruptLine::PerCpu(gsi)
            } else {
                InterruptLine::Gsi {
                    gsi,
                    trigger,
                    polarity,
                }
            });
        }
    }

    /// The description the architecture builds its controller from, or
    /// `None` when the MADT named none.
    pub fn hardware(&self) -> Option<InterruptHardware<'_>> {
        if let Some((distributor_phys, version)) = self.gic_distributor {
            let (redistributors, source) = if self.gicr_ranges.is_empty() {
                (&self.gicc_redistributors[..], RedistributorSource::PerCpu)
            } else {
                (&self.gicr_ranges[..], RedistributorSource::Ranges)
            };
            return Some(InterruptHardware::Gic {
                version,
                distributor_phys,
                redistributors,
                source,
            });
        }
        self.local_apic_phys
            .map(|local_apic_phys| InterruptHardware::Apic {
                local_apic_phys,
                io_apics: &self.io_apics,
                overrides: &self.overrides,
            })
    }
}

/// The GTDT as far as the common header; its fields are read from bytes.
#[repr(transparent)]
struct Gtdt {
    header: SdtHeader,
}

// SAFETY: a GTDT begins with the common table header, which is all this
// type claims to hold; the signature is the GTDT's.
unsafe impl AcpiTable for Gtdt {
    const SIGNATURE: Signature = Signature::GTDT;
    fn header(&self) -> &SdtHeader {
        &self.header
    }
}

/// Reads the MADT and GTDT reachable from the RSDP at physical `rsdp`.
/// Missing tables are logged and leave their fields empty.
///
/// # Safety
/// As [`super::discover`]: `rsdp` is the loader's RSDP and the direct map
/// at `hhdm_offset` covers the ACPI tables.
pub unsafe fn discover(rsdp: u64, hhdm_offset: u64) -> InterruptTables {
    let mut out = InterruptTables::default();
    let handler = DirectMapAcpiHandler::new(hhdm_offset);
    // SAFETY: the caller's guarantee; the crate checks signature and checksum.
    let Ok(tables) = (unsafe { AcpiTables::from_rsdp(handler, rsdp as usize) }) else {
        return out;
    };
    match tables.find_table::<Madt>() {
        Ok(madt) => out.read_madt(table_bytes(madt.get().get_ref())),
        Err(e) => {
            log::warn!(target: "acpi", "no usable MADT ({e:?}): no interrupt controller described")
        }
    }
    if let Ok(gtdt) = tables.find_table::<Gtdt>() {
        out.read_gtdt(table_bytes(&*gtdt));
    }
    out
}

#[cfg(test)]
mod tests;
