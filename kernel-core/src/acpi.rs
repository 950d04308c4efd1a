//! ACPI discovery: the tables are found ([`tables`]), decoded into one
//! arch-neutral [`AcpiPlatform`] kept for the kernel's lifetime
//! ([`description`]), and summed up on the console ([`summary`]).
//!
//! Each table has a parser of its own (a pure function over the table's
//! bytes, bounded by its length): [`madt`], [`mcfg`], [`hpet`], [`fadt`],
//! [`gtdt`], [`iort`], [`spcr`]; the DSDT and SSDTs are walked (no AML
//! interpreter) for `\_S5` ([`sleep`]) and the PCI host bridges' I/O windows
//! ([`pci_host`] over [`aml_scan`]). A table that is missing, unreadable,
//! truncated, has a bad checksum or does not decode is named in a warning
//! and skipped; discovery goes on with the rest. Every address the firmware
//! gives is checked against the memory map before it is read.

use crate::boot_info::{MemoryKind, MemoryRegion};

pub mod aml_scan;
pub mod bytes;
pub mod description;
pub mod dump;
pub mod fadt;
pub mod gtdt;
pub mod hpet;
pub mod interrupt_tables;
pub mod iort;
pub mod madt;
pub mod mcfg;
pub mod pci_host;
pub mod sleep;
pub mod soft_off;
pub mod spcr;
pub mod summary;
pub mod tables;

pub use description::{AcpiPlatform, describe};
pub use fadt::PmTimer;
pub use spcr::{SpcrOutcome, spcr_fields_from_bytes};
pub use tables::{PhysicalMemory, RootError, TableFault, read_tables};

/// Physical memory through the higher-half direct map, limited to the
/// ranges the memory map lists (the loader maps all of them; ACPI tables lie
/// in ACPI reclaimable, ACPI NVS or reserved regions).
#[derive(Clone, Copy, Debug)]
pub struct DirectMap<'a> {
    hhdm_offset: u64,
    regions: &'a [MemoryRegion],
}

impl<'a> DirectMap<'a> {
    /// The direct map at `hhdm_offset` over `regions`.
    ///
    /// # Safety
    /// Every byte of every region (other than bad memory) must be mapped
    /// readable at `hhdm_offset + phys` for as long as the value is used.
    pub unsafe fn new(hhdm_offset: u64, regions: &'a [MemoryRegion]) -> Self {
        Self {
            hhdm_offset,
            regions,
        }
    }

    /// True when every byte of `[phys, phys + len)` lies in listed regions.
    fn covers(&self, phys: u64, len: u64) -> bool {
        let Some(end) = phys.checked_add(len) else {
            return false;
        };
        let mut cursor = phys;
        while cursor < end {
            let next = self
                .regions
                .iter()
                .filter(|r| r.kind != MemoryKind::BadMemory)
                .find(|r| r.base <= cursor && cursor < r.end())
                .map(|r| r.end());
            match next {
                Some(next) => cursor = next,
                None => return false,
            }
        }
        true
    }
}

impl PhysicalMemory for DirectMap<'_> {
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
        if !self.covers(phys, len as u64) {
            return None;
        }
        let virt = phys.checked_add(self.hhdm_offset)?;
        if virt == 0 {
            return None;
        }
        // SAFETY: the range lies in memory-map regions, which the direct map
        // covers (the contract of `DirectMap::new`); it is only read.
        Some(unsafe { core::slice::from_raw_parts(virt as *const u8, len) })
    }
}

/// Why ACPI could not be read at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiUnavailable(pub RootError);

impl core::fmt::Display for AcpiUnavailable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RSDP/XSDT unusable: {}", self.0)
    }
}

/// Reads and decodes the tables reachable from the RSDP at physical `rsdp`,
/// logs the summary, and looks for x86 soft-off (`\_S5`).
///
/// # Safety
/// `rsdp` must be the physical address the loader reported for the RSDP,
/// and every region of `regions` must be mapped readable in the direct map
/// at `hhdm_offset`.
pub unsafe fn discover(
    rsdp: u64,
    hhdm_offset: u64,
    regions: &[MemoryRegion],
) -> Result<AcpiPlatform, AcpiUnavailable> {
    // SAFETY: the caller's guarantee.
    let memory = unsafe { DirectMap::new(hhdm_offset, regions) };
    let set = read_tables(&memory, rsdp).map_err(AcpiUnavailable)?;
    let platform = describe(&set, &memory);
    summary::log(&platform);
    match platform.soft_off {
        Some(Ok(off)) => log::info!(
            "S5 power-off through PM1a control {:#x} (value {:#x})",
            off.pm1a_control,
            off.pm1a_value
        ),
        Some(Err(e)) => log::warn!("no S5 power-off: {e}"),
        None => {}
    }
    Ok(platform)
}

/// `acpi=dump`: every table as hex on the console.
///
/// # Safety
/// As [`discover`].
pub unsafe fn dump_tables(rsdp: u64, hhdm_offset: u64, regions: &[MemoryRegion]) {
    // SAFETY: the caller's guarantee.
    let memory = unsafe { DirectMap::new(hhdm_offset, regions) };
    match read_tables(&memory, rsdp) {
        Ok(set) => dump::dump(&memory, rsdp, &set),
        Err(e) => log::error!("dump: {e}"),
    }
}

#[cfg(test)]
mod tests;
