//! Device memory: a window of kernel virtual addresses where device registers
//! are mapped with device attributes through [`stratus_arch::DeviceMapper`].
//!
//! Registers must never be reached through the cacheable direct map; every
//! driver gets its registers from [`DeviceMemory::map`].

use crate::frames::{FRAME_SIZE, FrameAllocator, align_up};
use stratus_arch::{DeviceMapper, DeviceMapping, FrameSource, MapError};

/// Where the device window starts, relative to the direct map: 64 TiB above
/// it, past any RAM a cloud VM has, below the kernel image.
pub const WINDOW_OFFSET_FROM_HHDM: u64 = 0x4000_0000_0000;

/// Size of the device window (1 TiB).
pub const WINDOW_SIZE: u64 = 0x100_0000_0000;

/// A mapped register block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioRegion {
    /// Virtual address of the physical address that was asked for.
    pub virt: u64,
    /// Physical address asked for.
    pub phys: u64,
    /// Length asked for.
    pub len: u64,
}

/// Hands out virtual ranges in the device window and maps them.
#[derive(Debug)]
pub struct DeviceMemory {
    hhdm_offset: u64,
    next: u64,
    end: u64,
}

impl DeviceMemory {
    /// The window for a direct map at `hhdm_offset`.
    pub fn new(hhdm_offset: u64) -> Self {
        let start = hhdm_offset.wrapping_add(WINDOW_OFFSET_FROM_HHDM);
        Self {
            hhdm_offset,
            next: start,
            end: start + WINDOW_SIZE,
        }
    }

    /// Reserves virtual space for `len` bytes at physical `phys` (any
    /// alignment) and returns the page-aligned request for the mapper. A
    /// guard page is left between consecutive mappings.
    pub fn reserve(
        &mut self,
        phys: u64,
        len: u64,
    ) -> Result<(DeviceMapping, MmioRegion), MapError> {
        let page_phys = phys & !(FRAME_SIZE - 1);
        let page_len = align_up(phys - page_phys + len.max(1), FRAME_SIZE);
        let virt = self.next;
        if virt + page_len > self.end {
            return Err(MapError::BadVirtualAddress);
        }
        self.next = virt + page_len + FRAME_SIZE;
        let request = DeviceMapping {
            phys: page_phys,
            virt,
            len: page_len,
        };
        Ok((
            request,
            MmioRegion {
                virt: virt + (phys - page_phys),
                phys,
                len,
            },
        ))
    }

    /// Maps `len` bytes of registers at physical `phys` with device
    /// attributes; page tables come from `frames`.
    pub fn map<M: DeviceMapper>(
        &mut self,
        phys: u64,
        len: u64,
        frames: &mut FrameAllocator,
    ) -> Result<MmioRegion, MapError> {
        let (request, region) = self.reserve(phys, len)?;
        let mut source = ZeroedFrames {
            frames,
            hhdm_offset: self.hhdm_offset,
        };
        M::map_device(request, self.hhdm_offset, &mut source)?;
        Ok(region)
    }
}

/// Frames from the allocator, zeroed through the direct map.
/// The frame allocator as a [`FrameSource`] of zero-filled frames, reached
/// through the direct map.
pub(crate) struct ZeroedFrames<'a> {
    frames: &'a mut FrameAllocator,
    hhdm_offset: u64,
}

impl<'a> ZeroedFrames<'a> {
    /// Zeroed frames from `frames`, written through the direct map at
    /// `hhdm_offset`.
    pub(crate) fn new(frames: &'a mut FrameAllocator, hhdm_offset: u64) -> Self {
        Self {
            frames,
            hhdm_offset,
        }
    }
}

impl FrameSource for ZeroedFrames<'_> {
    fn allocate_zeroed_frame(&mut self) -> Option<u64> {
        let phys = self.frames.allocate()?;
        let virt = (phys + self.hhdm_offset) as *mut u8;
        // SAFETY: `phys` is a usable RAM frame just taken from the allocator,
        // so nothing else refers to it; the loader maps all RAM in the direct
        // map at `hhdm_offset`, so `virt` is valid for FRAME_SIZE bytes.
        unsafe { core::ptr::write_bytes(virt, 0, FRAME_SIZE as usize) };
        Some(phys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_keeps_offset_and_guard_pages() {
        let mut dm = DeviceMemory::new(0xffff_8000_0000_0000);
        let (req, region) = dm.reserve(0x0900_0010, 0x20).unwrap();
        assert_eq!(
            req,
            DeviceMapping {
                phys: 0x0900_0000,
                virt: 0xffff_c000_0000_0000,
                len: 0x1000
            }
        );
        assert_eq!(region.virt, 0xffff_c000_0000_0010);
        let (req2, _) = dm.reserve(0xfe00_0ff0, 0x20).unwrap();
        // Straddles a page boundary: two pages, after one guard page.
        assert_eq!(
            req2,
            DeviceMapping {
                phys: 0xfe00_0000,
                virt: 0xffff_c000_0000_2000,
                len: 0x2000
            }
        );
    }

    #[test]
    fn window_runs_out() {
        let mut dm = DeviceMemory::new(0xffff_0000_0000_0000);
        assert!(dm.reserve(0, WINDOW_SIZE + 1).is_err());
        assert!(dm.reserve(0, WINDOW_SIZE - FRAME_SIZE).is_ok());
        assert_eq!(dm.reserve(0, 1), Err(MapError::BadVirtualAddress));
    }
}
