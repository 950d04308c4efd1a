//! The physical frame allocator.
//!
//! Built from the usable regions of the memory map: a sorted list of free
//! ranges. Frames are handed out from the low end of the first range that
//! has room (first fit), and given back ([`FrameAllocator::free_contiguous`])
//! into the list, merged with their neighbours, so DMA buffers that come and
//! go do not fragment memory for good. The first MiB is held back for x86
//! application-processor trampolines, which need real-mode addressable
//! memory.
//!
//! The kernel's one allocator lives behind an interrupt-safe lock once boot
//! is done ([`install`], [`global`]), so handlers and every CPU reach it.

use crate::boot_info::{MemoryKind, MemoryMap};
use crate::irq_lock::IrqSafeSpinlock;

/// Size of a physical frame.
pub const FRAME_SIZE: u64 = 4096;

/// Memory below this address is never handed out.
pub const LOW_MEMORY_RESERVE: u64 = 0x10_0000;

/// The most free ranges tracked. A free that would need more (memory cut
/// into more than this many pieces) keeps the frames out of circulation
/// and counts them ([`FrameAllocator::lost_frames`]).
const MAX_RANGES: usize = 256;

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
    /// Free ranges, sorted by address, never overlapping or touching.
    ranges: [FreeRange; MAX_RANGES],
    len: usize,
    allocated: u64,
    lost: u64,
}

impl FrameAllocator {
    /// Collects the usable regions of `map`, trimmed to whole frames and
    /// above [`LOW_MEMORY_RESERVE`].
    pub fn from_memory_map(map: &MemoryMap) -> Self {
        let mut allocator = Self {
            ranges: [FreeRange::default(); MAX_RANGES],
            len: 0,
            allocated: 0,
            lost: 0,
        };
        for region in map
            .regions()
            .iter()
            .filter(|r| r.kind == MemoryKind::Usable)
        {
            let start = align_up(region.base.max(LOW_MEMORY_RESERVE), FRAME_SIZE);
            let end = region.end() & !(FRAME_SIZE - 1);
            if end > start {
                allocator.insert(start, end);
            }
        }
        allocator.allocated = 0;
        allocator.lost = 0;
        allocator
    }

    /// Adds `start..end` to the free list, merged with the ranges it
    /// touches. Returns false (and counts the frames as lost) when the list
    /// is full or the range overlaps free memory (a double free).
    fn insert(&mut self, start: u64, end: u64) -> bool {
        let ranges = &mut self.ranges[..self.len];
        let at = ranges.partition_point(|r| r.end <= start);
        let overlaps_next = at < ranges.len() && ranges[at].next < end;
        if overlaps_next {
            self.lost += (end - start) / FRAME_SIZE;
            return false;
        }
        let joins_previous = at > 0 && ranges[at - 1].end == start;
        let joins_next = at < ranges.len() && ranges[at].next == end;
        match (joins_previous, joins_next) {
            (true, true) => {
                ranges[at - 1].end = ranges[at].end;
                self.ranges.copy_within(at + 1..self.len, at);
                self.len -= 1;
            }
            (true, false) => ranges[at - 1].end = end,
            (false, true) => ranges[at].next = start,
            (false, false) => {
                if self.len == MAX_RANGES {
                    self.lost += (end - start) / FRAME_SIZE;
                    return false;
                }
                self.ranges.copy_within(at..self.len, at + 1);
                self.ranges[at] = FreeRange { next: start, end };
                self.len += 1;
            }
        }
        true
    }

    /// Gives back `count` frames starting at `base`, from an earlier
    /// [`FrameAllocator::allocate_contiguous`] (or several). Frames that
    /// are free already are refused and counted as lost, never handed out
    /// twice.
    pub fn free_contiguous(&mut self, base: u64, count: u64) {
        if count == 0 || !base.is_multiple_of(FRAME_SIZE) {
            return;
        }
        let Some(end) = count
            .checked_mul(FRAME_SIZE)
            .and_then(|len| base.checked_add(len))
        else {
            return;
        };
        if self.insert(base, end) {
            self.allocated = self.allocated.saturating_sub(count);
        }
    }

    /// Frames that could not be taken back (see [`MAX_RANGES`]).
    pub fn lost_frames(&self) -> u64 {
        self.lost
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
        let at = self.ranges[..self.len]
            .iter()
            .position(|r| r.frames() >= count)?;
        let range = &mut self.ranges[at];
        let base = range.next;
        range.next += count * FRAME_SIZE;
        if range.next == range.end {
            self.ranges.copy_within(at + 1..self.len, at);
            self.len -= 1;
        }
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

static GLOBAL: spin::Once<IrqSafeSpinlock<FrameAllocator>> = spin::Once::new();

/// Makes `allocator` the kernel's shared frame allocator (once, at the end
/// of boot); later calls are ignored.
pub fn install(allocator: FrameAllocator) -> &'static IrqSafeSpinlock<FrameAllocator> {
    GLOBAL.call_once(|| IrqSafeSpinlock::new(allocator))
}

/// The shared frame allocator, once [`install`]ed.
pub fn global() -> Option<&'static IrqSafeSpinlock<FrameAllocator>> {
    GLOBAL.get()
}

/// Rounds `value` up to a multiple of `align` (a power of two).
pub const fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_info::MemoryRegion;
    extern crate std;

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

    #[test]
    fn freed_frames_merge_with_their_neighbours_and_come_back() {
        let m = map(&[(0x200000, 0x10000, MemoryKind::Usable)]);
        let mut a = FrameAllocator::from_memory_map(&m);
        let first = a.allocate_contiguous(4).unwrap();
        let second = a.allocate_contiguous(4).unwrap();
        let third = a.allocate_contiguous(8).unwrap();
        assert_eq!(a.free_frames(), 0);
        // Free the middle, then the first: one range of 8 again.
        a.free_contiguous(second, 4);
        assert_eq!(a.largest_contiguous(), 4);
        a.free_contiguous(first, 4);
        assert_eq!(a.largest_contiguous(), 8);
        assert_eq!(a.allocate_contiguous(8), Some(first));
        a.free_contiguous(first, 8);
        a.free_contiguous(third, 8);
        assert_eq!(a.largest_contiguous(), 16);
        assert_eq!(a.allocated_frames(), 0);
        assert_eq!(a.lost_frames(), 0);
    }

    #[test]
    fn a_double_free_is_refused_and_counted() {
        let m = map(&[(0x200000, 0x4000, MemoryKind::Usable)]);
        let mut a = FrameAllocator::from_memory_map(&m);
        let base = a.allocate_contiguous(2).unwrap();
        a.free_contiguous(base, 2);
        a.free_contiguous(base, 1);
        assert_eq!(a.lost_frames(), 1);
        assert_eq!(a.free_frames(), 4);
        // Every frame is handed out once.
        let mut seen = std::vec::Vec::new();
        while let Some(f) = a.allocate() {
            assert!(!seen.contains(&f));
            seen.push(f);
        }
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn a_full_free_list_loses_frames_instead_of_corrupting() {
        let m = map(&[(
            0x200000,
            (MAX_RANGES as u64 * 2 + 2) * FRAME_SIZE,
            MemoryKind::Usable,
        )]);
        let mut a = FrameAllocator::from_memory_map(&m);
        let frames: std::vec::Vec<u64> = (0..MAX_RANGES * 2 + 2)
            .map(|_| a.allocate().unwrap())
            .collect();
        // Every other frame back: each is a range of its own.
        for f in frames.iter().step_by(2) {
            a.free_contiguous(*f, 1);
        }
        assert_eq!(a.free_frames(), MAX_RANGES as u64);
        assert_eq!(a.lost_frames(), 1);
        // Freeing the rest merges everything around the lost frame (the
        // last even one) back together.
        for f in frames.iter().skip(1).step_by(2) {
            a.free_contiguous(*f, 1);
        }
        assert_eq!(a.largest_contiguous(), MAX_RANGES as u64 * 2);
        assert_eq!(a.free_frames(), MAX_RANGES as u64 * 2 + 1);
    }
}
