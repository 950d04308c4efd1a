//! Device mappings in the current TTBR1_EL1 translation tables, reached
//! through the direct map. The walk itself is [`crate::table_walk`]; this
//! module reads the system registers, picks the MAIR index for
//! Device-nGnRnE, and does the barriers and TLB maintenance.
//!
//! The Limine protocol guarantees the 4 KiB granule and `T1SZ` = 16 for
//! 4-level paging, but not the layout of `MAIR_EL1`: only that it holds the
//! attributes of the mappings it made, "in an unspecified order". Genuine
//! Limine 8.x leaves the unused attribute bytes zero, and zero is
//! Device-nGnRnE, so an index is normally found as is. When no byte is zero,
//! an index that no descriptor in either half uses is reprogrammed to
//! Device-nGnRnE.

use crate::descriptor::{self, LowerHalf, PAGE_SIZE};
use crate::table_walk::{self, TableMemory};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{MAIR_EL1, Readable, TCR_EL1, TTBR0_EL1, TTBR1_EL1, Writeable};
use core::arch::asm;
use stratus_arch::{DeviceMapping, FrameSource, MapError};

/// Translation tables reached through the direct map.
pub(crate) struct DirectMappedTables {
    hhdm_offset: u64,
}

impl DirectMappedTables {
    /// # Safety
    /// Every translation table reachable from TTBR0_EL1 / TTBR1_EL1, and
    /// every frame the caller's `FrameSource` hands out, must be mapped
    /// read/write at `phys + hhdm_offset`, and no Rust reference may cover
    /// them while this value is used.
    pub(crate) unsafe fn new(hhdm_offset: u64) -> Self {
        Self { hhdm_offset }
    }

    fn entry(&self, table: u64, index: usize) -> *mut u64 {
        debug_assert!(index < descriptor::ENTRIES_PER_TABLE);
        (table.wrapping_add(self.hhdm_offset) as *mut u64).wrapping_add(index)
    }
}

impl TableMemory for DirectMappedTables {
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a translation table (the walker only follows
        // TTBRn and table descriptors), mapped at `hhdm_offset` as `new`
        // requires; entries are aligned u64s and `index` < 512.
        unsafe { self.entry(table, index).read_volatile() }
    }

    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as for `read_entry`. The walker writes only entries that
        // are invalid (nothing translates through them yet) or tables it
        // just took from the frame source.
        unsafe { self.entry(table, index).write_volatile(value) }
    }
}

/// The MAIR index holding Device-nGnRnE, once chosen. `None` when none
/// could be had.
static DEVICE_ATTR_INDEX: spin::Once<Option<u8>> = spin::Once::new();

/// Bits \[47:12\] of a TTBR: the level 0 table (the low bit is CnP, the top
/// 16 bits the ASID).
pub(crate) fn table_base(ttbr: u64) -> u64 {
    ttbr & descriptor::OUTPUT_ADDRESS_MASK
}

/// Finds or makes a Device-nGnRnE entry in MAIR_EL1.
fn choose_device_attr_index(tables: &DirectMappedTables, tcr: u64) -> Option<u8> {
    let mair = MAIR_EL1.get();
    if let Some(index) = table_walk::device_attr_index(mair) {
        log::debug!("MAIR_EL1 {mair:#018x}, Device-nGnRnE at index {index}");
        return Some(index);
    }
    let mut used = table_walk::used_attr_indices(tables, table_base(TTBR1_EL1.get()));
    used |= match descriptor::lower_half(tcr) {
        LowerHalf::Disabled => 0,
        LowerHalf::Walkable => table_walk::used_attr_indices(tables, table_base(TTBR0_EL1.get())),
        // Its indices are unknown, so none can be called free.
        LowerHalf::Unreadable => u8::MAX,
    };
    let Some(index) = table_walk::free_attr_index(used) else {
        log::error!("MAIR_EL1 {mair:#018x} has no Device-nGnRnE entry and no unused index");
        return None;
    };
    MAIR_EL1.set(table_walk::with_attr(
        mair,
        index,
        descriptor::MAIR_DEVICE_NGNRNE,
    ));
    barrier::isb(barrier::SY);
    // SAFETY: TLB maintenance only: drops cached translations (which may
    // hold the old attributes) on this CPU. No descriptor uses `index`.
    unsafe { asm!("tlbi vmalle1", options(nostack, preserves_flags)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
    log::info!("MAIR_EL1 was {mair:#018x}; index {index} (unused) now Device-nGnRnE");
    Some(index)
}

/// Above this many pages one full TLB invalidation is cheaper than one per page.
const MAX_PAGES_INVALIDATED_ONE_BY_ONE: u64 = 64;

/// Makes new descriptors for `mapping` visible and drops any stale TLB
/// entry for its pages on every CPU of the inner shareable domain.
fn publish(mapping: &DeviceMapping) {
    barrier::dsb(barrier::ISHST);
    let pages = mapping.len / PAGE_SIZE;
    if pages > MAX_PAGES_INVALIDATED_ONE_BY_ONE {
        // SAFETY: TLB maintenance only; it touches no memory.
        unsafe { asm!("tlbi vmalle1is", options(nostack, preserves_flags)) };
    } else {
        for page in 0..pages {
            // The operand holds VA[55:12] in bits [43:0]; `vaae` covers all ASIDs.
            let operand = ((mapping.virt + page * PAGE_SIZE) >> 12) & ((1 << 44) - 1);
            // SAFETY: as above.
            unsafe { asm!("tlbi vaae1is, {}", in(reg) operand, options(nostack, preserves_flags)) };
        }
    }
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}

/// Checks `mapping` and the translation regime, and gives the kernel's
/// tables through the direct map with the current TCR_EL1.
fn kernel_tables(
    mapping: &DeviceMapping,
    hhdm_offset: u64,
) -> Result<(DirectMappedTables, u64), MapError> {
    table_walk::validate(mapping)?;
    let tcr = TCR_EL1.get();
    if let Err(problem) = descriptor::check_kernel_translation(tcr) {
        log::error!("cannot map {:#x}: {problem}", mapping.phys);
        return Err(MapError::UnsupportedTranslation);
    }
    // SAFETY: the Limine protocol maps all memory-map entries, which hold
    // the loader's translation tables (bootloader-reclaimable) and the
    // frames of kernel-core's allocator, in the direct map at `hhdm_offset`.
    // Only the boot CPU edits translation tables (secondary CPUs map
    // nothing).
    Ok((unsafe { DirectMappedTables::new(hhdm_offset) }, tcr))
}

/// Maps every page of `mapping` in TTBR1 with the page descriptor `page`
/// and publishes the new descriptors, also after `OutOfFrames`, which may
/// leave the first pages mapped.
fn map_and_publish(
    tables: &mut DirectMappedTables,
    frames: &mut dyn FrameSource,
    mapping: &DeviceMapping,
    page: impl Fn(u64) -> u64,
) -> Result<(), MapError> {
    let result = table_walk::map_pages(tables, frames, table_base(TTBR1_EL1.get()), mapping, page);
    publish(mapping);
    result
}

/// Maps `mapping` as Device-nGnRnE, EL1 read/write, never executable.
pub fn map_device(
    mapping: DeviceMapping,
    hhdm_offset: u64,
    frames: &mut dyn FrameSource,
) -> Result<(), MapError> {
    let (mut tables, tcr) = kernel_tables(&mapping, hhdm_offset)?;
    let attr_index = *DEVICE_ATTR_INDEX.call_once(|| choose_device_attr_index(&tables, tcr));
    let attr_index = attr_index.ok_or(MapError::UnsupportedTranslation)?;
    map_and_publish(&mut tables, frames, &mapping, |phys| {
        descriptor::device_page_descriptor(phys, attr_index)
    })
}

/// Maps RAM `mapping` as normal memory with the attributes the kernel's own
/// data has (found by translating one of its statics), EL1 read/write,
/// never executable.
pub fn map_memory(
    mapping: DeviceMapping,
    hhdm_offset: u64,
    frames: &mut dyn FrameSource,
) -> Result<(), MapError> {
    let (mut tables, _) = kernel_tables(&mapping, hhdm_offset)?;
    let root = table_base(TTBR1_EL1.get());
    let data =
        crate::secondary_tables::translate(&tables, root, (&raw const DEVICE_ATTR_INDEX) as u64)
            .ok_or(MapError::UnsupportedTranslation)?;
    map_and_publish(&mut tables, frames, &mapping, |phys| {
        descriptor::memory_page_descriptor(phys, data.leaf)
    })
}
