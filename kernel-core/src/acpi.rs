//! ACPI discovery: the tables are found ([`tables`]), decoded into one
//! arch-neutral [`AcpiPlatform`] kept for the kernel's lifetime
//! ([`description`]), and summed up on the console ([`summary`]).
//!
//! Each table has a parser of its own (a pure function over the table's
//! bytes, bounded by its length): [`madt`], [`mcfg`], [`hpet`], [`fadt`],
//! [`gtdt`], [`iort`], [`spcr`]. A table that is missing, unreadable,
//! truncated, has a bad checksum or does not decode is named in a warning
//! and skipped; discovery goes on with the rest. Every address the firmware
//! gives is checked against the memory map before it is read.

use crate::boot_info::{MemoryKind, MemoryRegion};
use ::acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;

pub mod bytes;
pub mod description;
pub mod dump;
pub mod fadt;
pub mod gtdt;
pub mod hpet;
pub mod iort;
pub mod madt;
pub mod mcfg;
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

/// Reaches ACPI tables for the `acpi` crate (used for the AML tables of
/// [`soft_off`]) through the higher-half direct map.
#[derive(Clone, Copy, Debug)]
pub struct DirectMapAcpiHandler {
    hhdm_offset: u64,
}

impl DirectMapAcpiHandler {
    /// A handler for a direct map at `hhdm_offset`.
    pub fn new(hhdm_offset: u64) -> Self {
        Self { hhdm_offset }
    }
}

impl AcpiHandler for DirectMapAcpiHandler {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt = (physical_address as u64).wrapping_add(self.hhdm_offset) as *mut T;
        // SAFETY: the direct map covers all memory the firmware reported,
        // ACPI tables included, so `virt` is mapped for `size` bytes; the
        // caller (the acpi crate) guarantees a `T` lives there. A null
        // pointer cannot result from adding the higher-half offset.
        unsafe {
            PhysicalMapping::new(
                physical_address,
                NonNull::new_unchecked(virt),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
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
    let mut platform = describe(&set, &memory);
    summary::log(&platform);
    if platform.psci().is_none() && platform.fadt.is_some() {
        // The `acpi` crate follows every listed pointer and header length
        // without looking at the memory map: let it only at tables that were
        // all found readable here.
        if let Some(t) = platform.tables.iter().find(|t| {
            matches!(
                t.fault,
                Some(TableFault::Unreadable | TableFault::BadLength(_) | TableFault::Truncated(_))
            )
        }) {
            log::warn!(
                "no S5 power-off: {} at {:#x} is unreadable",
                t.signature,
                t.phys
            );
            return Ok(platform);
        }
        if platform.dsdt.is_none() {
            log::warn!("no S5 power-off: no readable DSDT");
            return Ok(platform);
        }
        // SAFETY: the caller's guarantee; every table the crate will follow
        // was just read within the memory map, and the crate validates them.
        let found = unsafe { find_soft_off(rsdp, hhdm_offset) };
        match found {
            Ok(off) => {
                log::info!(
                    "S5 power-off through PM1a control {:#x} (value {:#x})",
                    off.pm1a_control,
                    off.pm1a_value
                );
                platform.soft_off = Some(off);
            }
            Err(e) => log::warn!("no S5 power-off: {e}"),
        }
    }
    Ok(platform)
}

/// Soft-off through the `acpi` crate's view of the FADT and AML tables.
///
/// # Safety
/// As [`discover`].
unsafe fn find_soft_off(
    rsdp: u64,
    hhdm_offset: u64,
) -> Result<stratus_arch::AcpiSoftOff, soft_off::SoftOffError> {
    let handler = DirectMapAcpiHandler::new(hhdm_offset);
    // SAFETY: the caller guarantees the address is the loader's RSDP; the
    // crate checks the signature and checksum before following it.
    let tables = unsafe { AcpiTables::from_rsdp(handler, rsdp as usize) }
        .map_err(|_| soft_off::SoftOffError::NoDsdt)?;
    let fadt = tables
        .find_table::<::acpi::fadt::Fadt>()
        .map_err(|_| soft_off::SoftOffError::NoDsdt)?;
    // SAFETY: as above.
    unsafe { soft_off::discover(&tables, &fadt, hhdm_offset) }
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
