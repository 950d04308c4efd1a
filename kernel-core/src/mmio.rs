//! Device memory: a window of kernel virtual addresses where device registers
//! are mapped with device attributes through [`stratus_arch::DeviceMapper`].
//!
//! Registers must never be reached through the cacheable direct map; every
//! driver gets its registers from [`DeviceMemory::map`].
//!
//! Device addresses come from outside (ACPI tables, the device tree, PCI
//! BARs), so every mapping is checked against the loader's memory map first
//! ([`check_device_range`]): a range that touches memory the kernel owns or
//! may come to own is refused, since mapping RAM as a device and writing to
//! it would corrupt whatever lives there (the heap, page tables, the kernel).
//! Refused kinds: usable RAM, loader-reclaimable memory, the kernel image and
//! modules, ACPI reclaimable and ACPI NVS memory (ACPI tables are read through
//! the direct map, never mapped as devices) and bad memory. Allowed: reserved
//! ranges, the framebuffer and addresses the map does not list at all, which
//! is where firmware puts device registers.

use crate::boot_info::{MemoryKind, MemoryMap};
use crate::frames::{FRAME_SIZE, FrameAllocator, align_up};
use core::fmt;
use stratus_arch::{DeviceMapper, DeviceMapping, FrameSource, MapError};

/// Why device registers were not mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceMapError {
    /// The range overlaps memory the memory map gives to the kernel.
    NotDeviceMemory {
        /// First byte of the overlapping map entry.
        base: u64,
        /// What the map says is there.
        kind: MemoryKind,
    },
    /// The range is empty or runs past the end of the address space.
    BadRange,
    /// The architecture could not map it.
    Map(MapError),
}

impl fmt::Display for DeviceMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceMapError::NotDeviceMemory { base, kind } => write!(
                f,
                "the memory map says {kind:?} memory is there (entry at {base:#x}); not a device"
            ),
            DeviceMapError::BadRange => f.write_str("the range wraps around the address space"),
            DeviceMapError::Map(e) => write!(f, "{e}"),
        }
    }
}

impl DeviceMapError {
    /// The nearest [`MapError`], for interfaces that speak only that (the
    /// arch's register-mapping callback): a refused range is a physical
    /// address the kernel must not reach. Log `self` first: it says why.
    pub fn as_map_error(self) -> MapError {
        match self {
            DeviceMapError::NotDeviceMemory { .. } | DeviceMapError::BadRange => {
                MapError::BadPhysicalAddress
            }
            DeviceMapError::Map(e) => e,
        }
    }
}

impl From<MapError> for DeviceMapError {
    fn from(e: MapError) -> Self {
        DeviceMapError::Map(e)
    }
}

/// Whether device registers may live in memory of this kind.
fn may_hold_devices(kind: MemoryKind) -> bool {
    matches!(kind, MemoryKind::Reserved | MemoryKind::Framebuffer)
}

/// Checks that the pages holding `len` bytes at physical `phys` are not
/// memory the kernel owns (see the module documentation for the kinds).
pub fn check_device_range(map: &MemoryMap, phys: u64, len: u64) -> Result<(), DeviceMapError> {
    let start = phys & !(FRAME_SIZE - 1);
    let end = phys
        .checked_add(len.max(1))
        .and_then(|end| end.checked_add(FRAME_SIZE - 1))
        .ok_or(DeviceMapError::BadRange)?
        & !(FRAME_SIZE - 1);
    match map
        .regions()
        .iter()
        .find(|r| !may_hold_devices(r.kind) && r.len > 0 && r.base < end && start < r.end())
    {
        Some(r) => Err(DeviceMapError::NotDeviceMemory {
            base: r.base,
            kind: r.kind,
        }),
        None => Ok(()),
    }
}

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

/// Hands out virtual ranges in the device window and maps them, after
/// checking each physical range against the memory map.
pub struct DeviceMemory {
    hhdm_offset: u64,
    next: u64,
    end: u64,
    memory_map: MemoryMap,
}

impl fmt::Debug for DeviceMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceMemory")
            .field("hhdm_offset", &self.hhdm_offset)
            .field("next", &self.next)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl DeviceMemory {
    /// The window for a direct map at `hhdm_offset`; physical ranges are
    /// checked against `memory_map` (a copy is kept).
    pub fn new(hhdm_offset: u64, memory_map: &MemoryMap) -> Self {
        let start = hhdm_offset.wrapping_add(WINDOW_OFFSET_FROM_HHDM);
        Self {
            hhdm_offset,
            next: start,
            end: start + WINDOW_SIZE,
            memory_map: memory_map.clone(),
        }
    }

    /// Reserves virtual space for `len` bytes at physical `phys` (any
    /// alignment) and returns the page-aligned request for the mapper. A
    /// guard page is left between consecutive mappings.
    pub fn reserve(
        &mut self,
        phys: u64,
        len: u64,
    ) -> Result<(DeviceMapping, MmioRegion), DeviceMapError> {
        let page_phys = phys & !(FRAME_SIZE - 1);
        if phys.checked_add(len).is_none() || len > WINDOW_SIZE {
            return Err(DeviceMapError::BadRange);
        }
        let page_len = align_up(phys - page_phys + len.max(1), FRAME_SIZE);
        let virt = self.next;
        if virt + page_len > self.end {
            return Err(MapError::BadVirtualAddress.into());
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
    /// attributes; page tables come from `frames`. Refuses ranges the memory
    /// map gives to the kernel ([`check_device_range`]).
    pub fn map<M: DeviceMapper>(
        &mut self,
        phys: u64,
        len: u64,
        frames: &mut FrameAllocator,
    ) -> Result<MmioRegion, DeviceMapError> {
        let hhdm_offset = self.hhdm_offset;
        self.map_with(phys, len, &mut |request| {
            M::map_device(
                request,
                hhdm_offset,
                &mut ZeroedFrames::new(frames, hhdm_offset),
            )
        })
    }

    /// Like [`DeviceMemory::map`], with the page-table work done by `map`
    /// (given the page-aligned request) instead of an architecture type.
    pub fn map_with(
        &mut self,
        phys: u64,
        len: u64,
        map: &mut dyn FnMut(DeviceMapping) -> Result<(), MapError>,
    ) -> Result<MmioRegion, DeviceMapError> {
        check_device_range(&self.memory_map, phys, len)?;
        let (request, region) = self.reserve(phys, len)?;
        map(request)?;
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

    use crate::boot_info::MemoryRegion;
    extern crate std;
    use std::vec::Vec;

    fn window(hhdm: u64) -> DeviceMemory {
        DeviceMemory::new(hhdm, &MemoryMap::new())
    }

    /// The shape of QEMU q35's map under OVMF: usable RAM from 1 MiB (heap at
    /// 0x900000), the kernel, loader data, ACPI, reserved firmware ranges.
    fn q35_map() -> MemoryMap {
        let mut map = MemoryMap::new();
        for (base, len, kind) in [
            (0x0, 0xa_0000, MemoryKind::Usable),
            (0x10_0000, 0x1d00_0000, MemoryKind::Usable),
            (0x1db9_1000, 0x10_0000, MemoryKind::KernelAndModules),
            (0x1dc9_1000, 0x20_0000, MemoryKind::LoaderReclaimable),
            (0x1fb7_e000, 0x8_0000, MemoryKind::AcpiReclaimable),
            (0x1fbf_e000, 0x2_0000, MemoryKind::AcpiNvs),
            (0xb000_0000, 0x1000_0000, MemoryKind::Reserved),
            (0x8000_0000, 0x30_0000, MemoryKind::Framebuffer),
        ] {
            map.push(MemoryRegion { base, len, kind });
        }
        map
    }

    #[test]
    fn ram_and_kernel_memory_are_refused() {
        let map = q35_map();
        let refused = |phys, len| {
            check_device_range(&map, phys, len).map_err(|e| match e {
                DeviceMapError::NotDeviceMemory { kind, .. } => Some(kind),
                _ => None,
            })
        };
        assert_eq!(refused(0x90_0000, 0x1000), Err(Some(MemoryKind::Usable)));
        assert_eq!(
            refused(0x1db9_1000, 8),
            Err(Some(MemoryKind::KernelAndModules))
        );
        assert_eq!(
            refused(0x1dc9_2000, 8),
            Err(Some(MemoryKind::LoaderReclaimable))
        );
        assert_eq!(
            refused(0x1fb8_0000, 8),
            Err(Some(MemoryKind::AcpiReclaimable))
        );
        assert_eq!(refused(0x1fbf_f000, 8), Err(Some(MemoryKind::AcpiNvs)));
        // The page below usable RAM, registers ending in usable RAM's page.
        assert_eq!(refused(0xf_fff8, 0x10), Err(Some(MemoryKind::Usable)));
        // Devices: unlisted, reserved, the framebuffer, beyond RAM.
        assert_eq!(refused(0xa_0000, 0x1000), Ok(()));
        assert_eq!(refused(0xf_f000, 0x1000), Ok(()));
        assert_eq!(refused(0xb000_0000, 0x1000), Ok(()));
        assert_eq!(refused(0x8000_0000, 0x1000), Ok(()));
        assert_eq!(refused(0x10_0000_0000, 0x1000), Ok(()));
        assert_eq!(
            check_device_range(&map, u64::MAX - 4, 8),
            Err(DeviceMapError::BadRange)
        );
    }

    #[test]
    fn map_checks_before_reserving() {
        let mut dm = DeviceMemory::new(0xffff_8000_0000_0000, &q35_map());
        let mut frames = FrameAllocator::from_memory_map(&MemoryMap::new());
        assert!(matches!(
            dm.map::<NoMapper>(0x90_0000, 0x1000, &mut frames),
            Err(DeviceMapError::NotDeviceMemory { .. })
        ));
        // Nothing was taken from the window.
        assert_eq!(dm.next, 0xffff_c000_0000_0000);
        assert_eq!(
            dm.map::<NoMapper>(0xfe00_0000, 0x1000, &mut frames),
            Ok(MmioRegion {
                virt: 0xffff_c000_0000_0000,
                phys: 0xfe00_0000,
                len: 0x1000
            })
        );
    }

    struct NoMapper;
    impl DeviceMapper for NoMapper {
        fn map_device(_: DeviceMapping, _: u64, _: &mut dyn FrameSource) -> Result<(), MapError> {
            Ok(())
        }
        fn map_memory(_: DeviceMapping, _: u64, _: &mut dyn FrameSource) -> Result<(), MapError> {
            Ok(())
        }
    }

    #[test]
    fn fuzz_device_range_check() {
        let map = q35_map();
        stratus_fuzz::fuzz(
            "device_range_check",
            &[
                &[0u8; 16],
                &0x90_0000u64
                    .to_le_bytes()
                    .iter()
                    .chain(&0x1000u64.to_le_bytes())
                    .copied()
                    .collect::<Vec<u8>>(),
            ],
            |input| {
                let mut word = [0u8; 8];
                let n = input.len().min(8);
                word[..n].copy_from_slice(&input[..n]);
                let phys = u64::from_le_bytes(word);
                let mut word = [0u8; 8];
                let rest = input.get(8..).unwrap_or(&[]);
                let n = rest.len().min(8);
                word[..n].copy_from_slice(&rest[..n]);
                let len = u64::from_le_bytes(word);
                let verdict = check_device_range(&map, phys, len);
                // Accepted ranges touch no owned memory, byte by page.
                if verdict.is_ok() {
                    let start = phys & !(FRAME_SIZE - 1);
                    let end = phys.saturating_add(len.max(1));
                    for r in map.regions().iter().filter(|r| !may_hold_devices(r.kind)) {
                        assert!(end <= r.base || r.end() <= start, "{phys:#x}+{len:#x}");
                    }
                }
                let mut dm = DeviceMemory::new(0xffff_8000_0000_0000, &map);
                let mut frames = FrameAllocator::from_memory_map(&MemoryMap::new());
                let _ = dm.map::<NoMapper>(phys, len, &mut frames);
            },
        );
    }

    #[test]
    fn reserve_keeps_offset_and_guard_pages() {
        let mut dm = window(0xffff_8000_0000_0000);
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
        let mut dm = window(0xffff_0000_0000_0000);
        assert!(dm.reserve(0, WINDOW_SIZE + 1).is_err());
        assert!(dm.reserve(u64::MAX - 1, 2).is_err());
        assert!(dm.reserve(0, WINDOW_SIZE - FRAME_SIZE).is_ok());
        assert_eq!(
            dm.reserve(0, 1),
            Err(DeviceMapError::Map(MapError::BadVirtualAddress))
        );
    }
}
