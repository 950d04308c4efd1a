//! Memory the interrupt hardware reads and writes itself (the GIC ITS's
//! tables and command queue, LPI configuration and pending tables): zeroed,
//! physically contiguous, aligned, from the frame allocator, reached
//! through the direct map. It is never given back; the frames an alignment
//! left over before and after it are.

use crate::frames::{FRAME_SIZE, FrameAllocator, align_up};
use stratus_arch::ControllerMemory;

/// Frames to ask for so that an `align`-aligned run of `bytes` fits in
/// them wherever they start (the allocator only guarantees 4 KiB), and the
/// run's offset from a block starting at `phys`. `None` for an alignment
/// that is not a power of two or a size that overflows.
pub fn aligned_run(bytes: u64, align: u64) -> Option<(u64, u64)> {
    if bytes == 0 || !align.is_power_of_two() {
        return None;
    }
    let align = align.max(FRAME_SIZE);
    let frames = bytes.checked_add(FRAME_SIZE - 1)? / FRAME_SIZE;
    Some((frames.checked_add(align / FRAME_SIZE - 1)?, align))
}

/// `bytes` of zeroed memory aligned to `align`, or `None` when the
/// allocator has no run long enough.
pub fn allocate(
    frames: &mut FrameAllocator,
    hhdm_offset: u64,
    bytes: u64,
    align: u64,
) -> Option<ControllerMemory> {
    let (count, align) = aligned_run(bytes, align)?;
    let block = frames.allocate_contiguous(count)?;
    let phys = align_up(block, align);
    let len = align_up(bytes, FRAME_SIZE);
    frames.free_contiguous(block, (phys - block) / FRAME_SIZE);
    let block_end = block + count * FRAME_SIZE;
    frames.free_contiguous(phys + len, (block_end - phys - len) / FRAME_SIZE);
    let virt = phys + hhdm_offset;
    // SAFETY: `[phys, phys + len)` lies inside the block just taken from
    // the allocator (`count` frames leave room for the alignment), so
    // nothing else refers to it; the loader maps all RAM in the direct map
    // at `hhdm_offset`.
    unsafe { core::ptr::write_bytes(virt as *mut u8, 0, len as usize) };
    Some(ControllerMemory { virt, phys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_info::{MemoryKind, MemoryMap, MemoryRegion};
    extern crate std;

    /// 64 KiB-aligned memory from an allocator over a host buffer standing
    /// in for RAM (the "direct map" offset points into the buffer).
    #[test]
    fn aligned_zeroed_and_slack_given_back() {
        const PHYS: u64 = 0x10_1000; // 4 KiB past a 64 KiB boundary.
        const LEN: u64 = 0x40000;
        let mut ram = std::vec![0xa5u8; (LEN + 0x10000) as usize];
        let host = ram.as_mut_ptr() as u64;
        let mut map = MemoryMap::default();
        map.push(MemoryRegion {
            base: PHYS,
            len: LEN,
            kind: MemoryKind::Usable,
        });
        let mut frames = FrameAllocator::from_memory_map(&map);
        let hhdm = host.wrapping_sub(PHYS);
        let free = frames.free_frames();
        let m = allocate(&mut frames, hhdm, 0x800, 0x10000).unwrap();
        assert_eq!(m.phys, 0x11_0000);
        assert_eq!(m.virt, m.phys.wrapping_add(hhdm));
        let offset = (m.phys - PHYS) as usize;
        assert!(ram[offset..offset + 0x1000].iter().all(|&b| b == 0));
        assert_eq!(ram[offset - 1], 0xa5, "nothing before it is touched");
        assert_eq!(ram[offset + 0x1000], 0xa5, "nothing after its last frame");
        // Only its one frame stays taken; the 15 frames of slack are free.
        assert_eq!(frames.free_frames(), free - 1);
        assert_eq!(frames.allocate(), Some(PHYS));
        assert!(allocate(&mut frames, hhdm, LEN, 0x1000).is_none());
    }

    #[test]
    fn runs_leave_room_for_their_alignment() {
        // A 2 KiB pending table 64 KiB aligned: 1 frame + 15 of slack.
        assert_eq!(aligned_run(2048, 0x10000), Some((16, 0x10000)));
        // Page-aligned memory needs no slack.
        assert_eq!(aligned_run(8192, 4096), Some((2, 4096)));
        assert_eq!(aligned_run(1, 256), Some((1, 4096)));
        assert_eq!(aligned_run(0, 4096), None);
        assert_eq!(aligned_run(4096, 3000), None);
        assert_eq!(aligned_run(u64::MAX, 4096), None);
        // Wherever the block starts, the aligned run ends inside it.
        let (count, align) = aligned_run(0x3000, 0x10000).unwrap();
        for start in (0..0x20000u64).step_by(FRAME_SIZE as usize) {
            let phys = align_up(start, align);
            assert!(phys + 0x3000 <= start + count * FRAME_SIZE);
        }
    }
}
