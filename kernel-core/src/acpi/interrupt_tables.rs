//! What the interrupt controllers and the timer need from ACPI, taken from
//! the decoded MADT and GTDT of [`AcpiPlatform`]: the arch-neutral
//! [`InterruptHardware`] description the architecture builds its controller
//! from, and the timer's interrupt line.

use super::description::AcpiPlatform;
use super::gtdt::{Gtdt, TimerInterrupt};
use super::madt::{InterruptOverride, Madt};
use alloc::vec::Vec;
use stratus_arch::interrupts::{
    InterruptHardware, InterruptLine, IoApicDescription, Polarity, RedistributorSource,
    SourceOverride, Trigger,
};

/// One GICv3 redistributor: RD_base and SGI_base frames, 64 KiB each.
pub const GICV3_REDISTRIBUTOR_LEN: u64 = 0x20000;

/// What the MADT and GTDT say about interrupts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterruptTables {
    /// x86: the local APIC's physical address.
    pub local_apic_phys: Option<u64>,
    /// x86: I/O APICs.
    pub io_apics: Vec<IoApicDescription>,
    /// x86: interrupt source overrides.
    pub overrides: Vec<SourceOverride>,
    /// arm: GIC distributor address and version.
    pub gic_distributor: Option<(u64, u8)>,
    /// arm: redistributor regions from GICR entries.
    pub gicr_ranges: Vec<(u64, u64)>,
    /// arm: per-CPU redistributor addresses from GICC entries (enabled or
    /// online-capable CPUs, non-zero addresses).
    pub gicc_redistributors: Vec<(u64, u64)>,
    /// arm: GIC ITS bases (MADT GIC ITS entries), in table order.
    pub gic_its: Vec<u64>,
    /// arm: the non-secure EL1 virtual timer's interrupt (GTDT).
    pub virtual_timer: Option<InterruptLine>,
}

/// MPS INTI flags (ACPI 6.5, table 5.26): 0 means "conforms to the bus"
/// (ISA: active high, edge).
fn override_line(o: &InterruptOverride) -> SourceOverride {
    SourceOverride {
        isa_irq: o.source,
        gsi: o.gsi,
        trigger: if o.flags.trigger() == 3 {
            Trigger::Level
        } else {
            Trigger::Edge
        },
        polarity: if o.flags.polarity() == 3 {
            Polarity::Low
        } else {
            Polarity::High
        },
    }
}

/// A GTDT timer interrupt as a line: a PPI (16..32) is per CPU.
fn timer_line(t: &TimerInterrupt) -> Option<InterruptLine> {
    match t.gsiv {
        0 => None,
        gsi @ 16..32 => Some(InterruptLine::PerCpu(gsi)),
        gsi => Some(InterruptLine::Gsi {
            gsi,
            trigger: if t.edge() {
                Trigger::Edge
            } else {
                Trigger::Level
            },
            polarity: if t.active_low() {
                Polarity::Low
            } else {
                Polarity::High
            },
        }),
    }
}

impl InterruptTables {
    /// From the platform description.
    pub fn from_platform(platform: &AcpiPlatform) -> Self {
        Self::from_tables(platform.madt.as_ref(), platform.gtdt.as_ref())
    }

    /// From a decoded MADT and GTDT, either of which may be missing.
    pub fn from_tables(madt: Option<&Madt>, gtdt: Option<&Gtdt>) -> Self {
        let mut out = Self {
            virtual_timer: gtdt
                .and_then(|g| g.el1_virtual.as_ref())
                .and_then(timer_line),
            ..Self::default()
        };
        let Some(madt) = madt else {
            return out;
        };
        out.local_apic_phys = Some(madt.local_apic_address).filter(|&a| a != 0);
        out.io_apics = madt
            .io_apics
            .iter()
            .map(|io| IoApicDescription {
                id: io.id,
                phys: u64::from(io.address),
                gsi_base: io.gsi_base,
            })
            .collect();
        out.overrides = madt.overrides.iter().map(override_line).collect();
        out.gic_distributor = madt.gicd.map(|d| (d.base, d.version));
        out.gicr_ranges = madt
            .gicr_ranges
            .iter()
            .map(|r| (r.base, u64::from(r.length)))
            .collect();
        out.gicc_redistributors = madt
            .cpus
            .iter()
            .filter(|c| c.enabled || c.online_capable)
            .filter_map(|c| c.gicr_base.filter(|&b| b != 0))
            .map(|base| (base, GICV3_REDISTRIBUTOR_LEN))
            .collect();
        out.gic_its = madt.its.iter().map(|its| its.base).collect();
        out
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
                its: &self.gic_its,
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
