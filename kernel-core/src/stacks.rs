//! Kernel stacks with guard pages.
//!
//! The direct map is one contiguous range, so a stack carved out of it runs
//! straight into its neighbour when it overflows. Stacks are mapped instead
//! in a window of their own, each with an unmapped guard page below it: an
//! overflow faults on the guard page and is reported as a page fault
//! (through the CPU's separate exception stack) instead of corrupting
//! memory.

use crate::frames::{FRAME_SIZE, FrameAllocator};
use crate::mmio::ZeroedFrames;
use stratus_arch::{DeviceMapper, DeviceMapping, MapError};

/// Where the stack window starts, relative to the direct map: 65 TiB above
/// it, right after the device window.
pub const WINDOW_OFFSET_FROM_HHDM: u64 = 0x4100_0000_0000;

/// Size of the stack window (1 TiB).
pub const WINDOW_SIZE: u64 = 0x100_0000_0000;

/// A mapped stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelStack {
    /// The first address past the stack (the initial stack pointer).
    pub top: u64,
    /// The lowest mapped address.
    pub bottom: u64,
    /// The unmapped guard page right below `bottom`.
    pub guard: u64,
}

/// Hands out stacks in the stack window.
#[derive(Debug)]
pub struct KernelStacks {
    hhdm_offset: u64,
    next: u64,
    end: u64,
}

impl KernelStacks {
    /// The window for a direct map at `hhdm_offset`.
    pub fn new(hhdm_offset: u64) -> Self {
        let start = hhdm_offset.wrapping_add(WINDOW_OFFSET_FROM_HHDM);
        Self {
            hhdm_offset,
            next: start,
            end: start + WINDOW_SIZE,
        }
    }

    /// Maps a stack of `bytes` (rounded up to whole pages) from fresh frames,
    /// with an unmapped guard page below it.
    pub fn allocate<M: DeviceMapper>(
        &mut self,
        bytes: u64,
        frames: &mut FrameAllocator,
    ) -> Result<KernelStack, MapError> {
        let pages = bytes.div_ceil(FRAME_SIZE).max(1);
        let guard = self.next;
        let bottom = guard + FRAME_SIZE;
        let top = bottom + pages * FRAME_SIZE;
        if top > self.end {
            return Err(MapError::BadVirtualAddress);
        }
        let phys = frames
            .allocate_contiguous(pages)
            .ok_or(MapError::OutOfFrames)?;
        self.next = top;
        let request = DeviceMapping {
            phys,
            virt: bottom,
            len: pages * FRAME_SIZE,
        };
        M::map_memory(
            request,
            self.hhdm_offset,
            &mut ZeroedFrames::new(frames, self.hhdm_offset),
        )?;
        Ok(KernelStack { top, bottom, guard })
    }
}
