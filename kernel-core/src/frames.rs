//! The physical frame allocator.
//!
//! Built from the usable regions of the memory map. Frames are handed out
//! from the low end of each region (a bump pointer per region); the first
//! MiB is held back for x86 application-processor trampolines, which need
//! real-mode addressable memory. Freeing frames is not supported yet: nothing
//! at boot gives memory back.

use crate::boot_info::{MemoryKind, MemoryMap};

/// Size of a physical frame.
pub const FRAME_SIZE: u64 = 4096;

/// Memory below this address is never handed out.
pub const LOW_MEMORY_RESERVE: u64 = 0x10_0000;

/// The most free ranges tracked.
const MAX_RANGES: usize = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FreeRange {
    /// Next free frame.
    next: u64,
    /// One past the last free byte.
    end: u64,
}

impl FreeRange {
    fn frames(&self) -> u64 {
        (self.end - self.next) / FRAME_SIZE
    }
}

/// Hands out 4 KiB physical frames from the usable memory.
#[derive(Clone, Debug)]
pub struct FrameAllocator {
    ranges: [FreeRange; MAX_RANGES],
    len: usize,
    allocated: u64,
}

impl FrameAllocator {
    /// Collects the usable regions of `map`, trimmed to whole frames and
    /// above [`LOW_MEMORY_RESERVE`].
    pub fn from_memory_map(map: &MemoryMap) -> Self {
        let mut allocator = Self {
            ranges: [FreeRange::default(); MAX_RANGES],
            len: 0,
            allocated: 0,
        };
        for region in map
            .regions()
            .iter()
            .filter(|r| r.kind == MemoryKind::Usable)
        {
            let start = align_up(region.base.max(LOW_MEMORY_RESERVE), FRAME_SIZE);
            let end = region.end() & !(FRAME_SIZE - 1);
            if end > start && allocator.len < MAX_RANGES {
                allocator.ranges[allocator.len] = FreeRange { next: start, end };
                allocator.len += 1;
            }
        }
        allocator
    }

    /// One frame, or `None` when memory is exhausted.
    pub fn allocate(&mut self) -> Option<u64> {
        self.allocate_contiguous(1)
    }

    /// `count` physically contiguous frames (for DMA buffers and the heap):
    /// the physical address of the first, or `None` when no region has room.
    pub fn allocate_contiguous(&mut self, count: u64) -> Option<u64> {
        if count == 0 {
            return None;
        }
        let range = self.ranges[..self.len]
            .iter_mut()
            .find(|r| r.frames() >= count)?;
        let base = range.next;
        range.next += count * FRAME_SIZE;
        self.allocated += count;
        Some(base)
    }

    /// Frames still free.
    pub fn free_frames(&self) -> u64 {
        self.ranges[..self.len].iter().map(FreeRange::frames).sum()
    }

    /// Frames handed out so far.
    pub fn allocated_frames(&self) -> u64 {
        self.allocated
    }

    /// The largest number of contiguous frames one call could still get.
    pub fn largest_contiguous(&self) -> u64 {
        self.ranges[..self.len]
            .iter()
            .map(FreeRange::frames)
            .max()
            .unwrap_or(0)
    }
}

/// Rounds `value` up to a multiple of `align` (a power of two).
pub const fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_info::MemoryRegion;

    fn map(regions: &[(u64, u64, MemoryKind)]) -> MemoryMap {
        let mut m = MemoryMap::new();
        for &(base, len, kind) in regions {
            m.push(MemoryRegion { base, len, kind });
        }
        m
    }

    #[test]
    fn skips_low_memory_and_unusable_regions() {
        let m = map(&[
            (0, 0xa0000, MemoryKind::Usable),
            (0x100000, 0x3000, MemoryKind::Reserved),
            (0x200000, 0x2000, MemoryKind::Usable),
        ]);
        let mut a = FrameAllocator::from_memory_map(&m);
        assert_eq!(a.free_frames(), 2);
        assert_eq!(a.allocate(), Some(0x200000));
        assert_eq!(a.allocate(), Some(0x201000));
        assert_eq!(a.allocate(), None);
        assert_eq!(a.allocated_frames(), 2);
    }

    #[test]
    fn trims_partial_frames() {
        let m = map(&[(0x100800, 0x2000, MemoryKind::Usable)]);
        let mut a = FrameAllocator::from_memory_map(&m);
        // 0x100800..0x102800 holds one whole frame: 0x101000..0x102000.
        assert_eq!(a.free_frames(), 1);
        assert_eq!(a.allocate(), Some(0x101000));
    }

    #[test]
    fn region_straddling_low_reserve_is_cut() {
        let m = map(&[(0x80000, 0x100000, MemoryKind::Usable)]);
        let a = FrameAllocator::from_memory_map(&m);
        assert_eq!(a.free_frames(), (0x180000 - 0x100000) / FRAME_SIZE);
    }

    #[test]
    fn contiguous_request_skips_small_regions() {
        let m = map(&[
            (0x200000, 0x1000, MemoryKind::Usable),
            (0x400000, 0x10000, MemoryKind::Usable),
        ]);
        let mut a = FrameAllocator::from_memory_map(&m);
        assert_eq!(a.largest_contiguous(), 16);
        assert_eq!(a.allocate_contiguous(4), Some(0x400000));
        assert_eq!(a.allocate_contiguous(13), None);
        assert_eq!(a.allocate_contiguous(12), Some(0x404000));
        assert_eq!(a.allocate(), Some(0x200000));
        assert_eq!(a.free_frames(), 0);
        assert_eq!(a.allocate_contiguous(0), None);
    }
}
