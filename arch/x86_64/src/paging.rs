//! Device mappings in the current 4-level page tables, through the `x86_64`
//! crate's `OffsetPageTable` (tables reached through the direct map).

use stratus_arch::{DeviceMapping, FrameSource, MapError};
use x86_64::registers::control::Cr3;
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

struct Frames<'a>(&'a mut dyn FrameSource);

// SAFETY: `FrameSource` hands out fresh, zeroed, unused frames only.
unsafe impl FrameAllocator<Size4KiB> for Frames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        self.0
            .allocate_zeroed_frame()
            .map(|p| PhysFrame::containing_address(PhysAddr::new(p)))
    }
}

/// Maps `mapping` uncached (PCD + PWT), writable and, when EFER.NXE is on,
/// not executable.
pub fn map_device(
    mapping: DeviceMapping,
    hhdm_offset: u64,
    frames: &mut dyn FrameSource,
) -> Result<(), MapError> {
    map_pages(
        mapping,
        PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH,
        hhdm_offset,
        frames,
    )
}

/// Maps RAM `mapping` write-back, writable and, when EFER.NXE is on, not
/// executable.
pub fn map_memory(
    mapping: DeviceMapping,
    hhdm_offset: u64,
    frames: &mut dyn FrameSource,
) -> Result<(), MapError> {
    map_pages(mapping, PageTableFlags::empty(), hhdm_offset, frames)
}

/// Maps `mapping` present and writable with the `caching` flags added.
fn map_pages(
    mapping: DeviceMapping,
    caching: PageTableFlags,
    hhdm_offset: u64,
    frames: &mut dyn FrameSource,
) -> Result<(), MapError> {
    if !(mapping.phys | mapping.virt | mapping.len).is_multiple_of(4096) {
        return Err(MapError::Unaligned);
    }
    let virt_start = VirtAddr::try_new(mapping.virt).map_err(|_| MapError::BadVirtualAddress)?;
    if mapping.virt < 0xffff_8000_0000_0000 {
        return Err(MapError::BadVirtualAddress);
    }
    let mut flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | caching;
    if Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE) {
        flags |= PageTableFlags::NO_EXECUTE;
    }
    let (level_4_frame, _) = Cr3::read();
    let level_4 = (level_4_frame.start_address().as_u64() + hhdm_offset) as *mut PageTable;
    // SAFETY: CR3 holds the active top-level table, reachable through the
    // direct map at `hhdm_offset`; this CPU is the only one touching page
    // tables during boot, so the exclusive reference does not alias.
    let mut tables = unsafe { OffsetPageTable::new(&mut *level_4, VirtAddr::new(hhdm_offset)) };
    let mut frames = Frames(frames);
    for offset in (0..mapping.len).step_by(4096) {
        let page = Page::<Size4KiB>::containing_address(virt_start + offset);
        let frame = PhysFrame::containing_address(PhysAddr::new(mapping.phys + offset));
        // SAFETY: the page lies in one of kernel-core's windows (devices,
        // stacks), which nothing else maps; the frame is device memory or a
        // frame the allocator handed to the caller, so no Rust reference is
        // affected by this new mapping.
        match unsafe { tables.map_to(page, frame, flags, &mut frames) } {
            Ok(flush) => flush.flush(),
            Err(MapToError::FrameAllocationFailed) => return Err(MapError::OutOfFrames),
            Err(MapToError::PageAlreadyMapped(_)) | Err(MapToError::ParentEntryHugePage) => {
                return Err(MapError::AlreadyMapped {
                    virt: page.start_address().as_u64(),
                });
            }
        }
    }
    Ok(())
}
