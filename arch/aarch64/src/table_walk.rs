//! Translation table walks over an abstract table memory, so that the logic
//! is tested on the host against a fake and runs in the kernel against the
//! direct map (`crate::paging`).
//!
//! Only the TTBR1_EL1 (kernel) half is ever written, with 4 KiB pages.

use crate::descriptor::{
    self, ENTRIES_PER_TABLE, Entry, KERNEL_HALF_START, LAST_LEVEL, MAX_PHYS_ADDRESS, PAGE_SIZE,
};
use stratus_arch::{DeviceMapping, FrameSource, MapError};

/// Memory holding translation tables, addressed by the tables' physical
/// addresses.
pub trait TableMemory {
    /// Reads entry `index` (0..512) of the table at physical `table`.
    fn read_entry(&self, table: u64, index: usize) -> u64;

    /// Writes entry `index` (0..512) of the table at physical `table`.
    fn write_entry(&mut self, table: u64, index: usize, value: u64);
}

/// Checks a request: 4 KiB alignment, a virtual range inside the kernel
/// half (48-bit, TTBR1_EL1) that does not wrap, and a physical range the
/// 48-bit descriptors can hold.
pub fn validate(mapping: &DeviceMapping) -> Result<(), MapError> {
    if !(mapping.phys | mapping.virt | mapping.len).is_multiple_of(PAGE_SIZE) {
        return Err(MapError::Unaligned);
    }
    if mapping.virt < KERNEL_HALF_START {
        return Err(MapError::BadVirtualAddress);
    }
    if mapping.len == 0 {
        return Ok(());
    }
    mapping
        .virt
        .checked_add(mapping.len - 1)
        .ok_or(MapError::BadVirtualAddress)?;
    match mapping.phys.checked_add(mapping.len) {
        Some(end) if end <= MAX_PHYS_ADDRESS => Ok(()),
        _ => Err(MapError::BadPhysicalAddress),
    }
}

/// The pages of a validated request, as (virtual, physical) pairs.
fn pages(mapping: &DeviceMapping) -> impl Iterator<Item = (u64, u64)> {
    let (virt, phys) = (mapping.virt, mapping.phys);
    (0..mapping.len / PAGE_SIZE).map(move |i| (virt + i * PAGE_SIZE, phys + i * PAGE_SIZE))
}

/// Returns the first page of the range that something already maps: a
/// valid page, or a block (or reserved level 0 leaf) covering it.
fn first_mapped<M: TableMemory + ?Sized>(
    mem: &M,
    root: u64,
    mapping: &DeviceMapping,
) -> Option<u64> {
    pages(mapping).map(|(virt, _)| virt).find(|&virt| {
        let mut table = root;
        for level in 0..=LAST_LEVEL {
            match descriptor::classify(
                mem.read_entry(table, descriptor::table_index(virt, level)),
                level,
            ) {
                Entry::Invalid => return false,
                Entry::Leaf => return true,
                Entry::Table { next } => table = next,
            }
        }
        unreachable!("level 3 descriptors are never tables")
    })
}

/// Maps every page of `mapping` in the tables rooted at physical `root`
/// (the TTBR1_EL1 level 0 table) with device attributes from MAIR index
/// `attr_index`. Missing tables come from `frames` (which zero them).
///
/// The whole range is checked first, so `AlreadyMapped` leaves the tables
/// untouched; `OutOfFrames` may leave the first pages mapped. The caller
/// makes the writes visible to the table walker and invalidates TLBs.
pub fn map_device_pages<M: TableMemory + ?Sized>(
    mem: &mut M,
    frames: &mut dyn FrameSource,
    root: u64,
    mapping: &DeviceMapping,
    attr_index: u8,
) -> Result<(), MapError> {
    map_pages(mem, frames, root, mapping, |phys| {
        descriptor::device_page_descriptor(phys, attr_index)
    })
}

/// Maps every page of `mapping` like [`map_device_pages`], with the level 3
/// descriptor `page(phys)` for each page.
pub fn map_pages<M: TableMemory + ?Sized>(
    mem: &mut M,
    frames: &mut dyn FrameSource,
    root: u64,
    mapping: &DeviceMapping,
    page: impl Fn(u64) -> u64,
) -> Result<(), MapError> {
    validate(mapping)?;
    if let Some(virt) = first_mapped(mem, root, mapping) {
        return Err(MapError::AlreadyMapped { virt });
    }
    for (virt, phys) in pages(mapping) {
        let mut table = root;
        for level in 0..LAST_LEVEL {
            let index = descriptor::table_index(virt, level);
            table = match descriptor::classify(mem.read_entry(table, index), level) {
                Entry::Table { next } => next,
                Entry::Invalid => {
                    let next = frames
                        .allocate_zeroed_frame()
                        .ok_or(MapError::OutOfFrames)?;
                    mem.write_entry(table, index, descriptor::table_descriptor(next));
                    next
                }
                // Excluded by `first_mapped`.
                Entry::Leaf => return Err(MapError::AlreadyMapped { virt }),
            };
        }
        mem.write_entry(table, descriptor::table_index(virt, LAST_LEVEL), page(phys));
    }
    Ok(())
}

/// The set of MAIR indices (bit `i` for `AttrIndx` = i) that some block or
/// page descriptor in the tables rooted at `root` refers to. Stops early once
/// all eight are seen.
pub fn used_attr_indices<M: TableMemory + ?Sized>(mem: &M, root: u64) -> u8 {
    let mut used = 0u8;
    collect_attr_indices(mem, root, 0, &mut used);
    used
}

fn collect_attr_indices<M: TableMemory + ?Sized>(mem: &M, table: u64, level: usize, used: &mut u8) {
    for index in 0..ENTRIES_PER_TABLE {
        if *used == u8::MAX {
            return;
        }
        let value = mem.read_entry(table, index);
        match descriptor::classify(value, level) {
            Entry::Invalid => {}
            Entry::Leaf => *used |= 1 << descriptor::attr_index(value),
            Entry::Table { next } => collect_attr_indices(mem, next, level + 1, used),
        }
    }
}

/// The first MAIR_EL1 index whose attribute byte is Device-nGnRnE (0x00).
pub fn device_attr_index(mair: u64) -> Option<u8> {
    (0..8u8).find(|&i| (mair >> (8 * i)) as u8 == descriptor::MAIR_DEVICE_NGNRNE)
}

/// The first MAIR_EL1 index no descriptor uses, given the `used` set from
/// [`used_attr_indices`]; it can be reprogrammed without changing any
/// existing mapping.
pub fn free_attr_index(used: u8) -> Option<u8> {
    (0..8u8).find(|&i| used & (1 << i) == 0)
}

/// `mair` with attribute byte `index` set to `attr`.
pub fn with_attr(mair: u64, index: u8, attr: u8) -> u64 {
    let shift = 8 * u32::from(index);
    (mair & !(0xff << shift)) | (u64::from(attr) << shift)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::descriptor::{DESCRIPTOR, Descriptor};
    use std::vec;
    use std::vec::Vec;

    /// Physical memory made of 4 KiB frames starting at `BASE`, zero-filled.
    struct FakeMemory {
        words: Vec<u64>,
        writes: usize,
    }

    const BASE: u64 = 0x4000_0000;
    const FRAMES: usize = 16;

    impl FakeMemory {
        fn new() -> Self {
            Self {
                words: vec![0; FRAMES * ENTRIES_PER_TABLE],
                writes: 0,
            }
        }

        fn slot(table: u64, index: usize) -> usize {
            assert!(
                table >= BASE && table.is_multiple_of(PAGE_SIZE),
                "table {table:#x} outside fake memory"
            );
            assert!(index < ENTRIES_PER_TABLE);
            ((table - BASE) / 8) as usize + index
        }
    }

    impl TableMemory for FakeMemory {
        fn read_entry(&self, table: u64, index: usize) -> u64 {
            self.words[Self::slot(table, index)]
        }

        fn write_entry(&mut self, table: u64, index: usize, value: u64) {
            self.writes += 1;
            let slot = Self::slot(table, index);
            self.words[slot] = value;
        }
    }

    /// Hands out frames 1.. of the fake memory (frame 0 is the root).
    struct FakeFrames {
        next: usize,
        limit: usize,
    }

    impl FakeFrames {
        fn new() -> Self {
            Self {
                next: 1,
                limit: FRAMES,
            }
        }
    }

    impl FrameSource for FakeFrames {
        fn allocate_zeroed_frame(&mut self) -> Option<u64> {
            if self.next == self.limit {
                return None;
            }
            self.next += 1;
            Some(BASE + (self.next as u64 - 1) * PAGE_SIZE)
        }
    }

    const ROOT: u64 = BASE;

    /// Walks like the MMU: the level 3 descriptor for `virt`, if tables lead there.
    fn leaf(mem: &FakeMemory, virt: u64) -> Option<u64> {
        let mut table = ROOT;
        for level in 0..LAST_LEVEL {
            match descriptor::classify(
                mem.read_entry(table, descriptor::table_index(virt, level)),
                level,
            ) {
                Entry::Table { next } => table = next,
                _ => return None,
            }
        }
        Some(mem.read_entry(table, descriptor::table_index(virt, LAST_LEVEL)))
    }

    fn request(phys: u64, virt: u64, len: u64) -> DeviceMapping {
        DeviceMapping { phys, virt, len }
    }

    #[test]
    fn mapping_creates_three_tables_and_device_pages() {
        let (mut mem, mut frames) = (FakeMemory::new(), FakeFrames::new());
        let virt = 0xffff_4000_0000_0000;
        map_device_pages(
            &mut mem,
            &mut frames,
            ROOT,
            &request(0x0900_0000, virt, 0x2000),
            2,
        )
        .unwrap();
        assert_eq!(frames.next, 4, "levels 1, 2 and 3 allocated");
        for (i, phys) in [0x0900_0000u64, 0x0900_1000].into_iter().enumerate() {
            let d = Descriptor::new(leaf(&mem, virt + i as u64 * PAGE_SIZE).expect("mapped"));
            assert!(d.is_set(DESCRIPTOR::VALID));
            assert!(d.matches_all(DESCRIPTOR::TYPE::TableOrPage));
            assert_eq!(d.read(DESCRIPTOR::OUTPUT_ADDR) << 12, phys);
            assert_eq!(d.read(DESCRIPTOR::ATTR_INDX), 2);
            assert!(d.is_set(DESCRIPTOR::AF));
            assert!(d.matches_all(DESCRIPTOR::AP::KernelReadWrite));
            assert!(d.is_set(DESCRIPTOR::PXN) && d.is_set(DESCRIPTOR::UXN));
            assert!(!d.is_set(DESCRIPTOR::NG));
        }
        assert_eq!(
            leaf(&mem, virt + 0x2000),
            Some(0),
            "the next page stays unmapped"
        );
        // The intermediate descriptors are plain table descriptors.
        let l0 = mem.read_entry(ROOT, descriptor::table_index(virt, 0));
        assert_eq!(l0, (BASE + PAGE_SIZE) | 0b11);
    }

    #[test]
    fn second_mapping_reuses_tables() {
        let (mut mem, mut frames) = (FakeMemory::new(), FakeFrames::new());
        let virt = 0xffff_4000_0000_0000;
        map_device_pages(
            &mut mem,
            &mut frames,
            ROOT,
            &request(0x0900_0000, virt, 0x1000),
            0,
        )
        .unwrap();
        map_device_pages(
            &mut mem,
            &mut frames,
            ROOT,
            &request(0x1000_0000, virt + 0x2000, 0x1000),
            0,
        )
        .unwrap();
        assert_eq!(
            frames.next, 4,
            "no new table for a page in the same level 3 table"
        );
        // Crossing a 2 MiB boundary needs one more level 3 table.
        map_device_pages(
            &mut mem,
            &mut frames,
            ROOT,
            &request(0x1000_0000, virt + 0x1f_f000, 0x2000),
            0,
        )
        .unwrap();
        assert_eq!(frames.next, 5);
        assert!(leaf(&mem, virt + 0x20_0000).is_some_and(|d| d & 1 == 1));
    }

    #[test]
    fn already_mapped_page_is_refused_without_writes() {
        let (mut mem, mut frames) = (FakeMemory::new(), FakeFrames::new());
        let virt = 0xffff_4000_0000_0000;
        map_device_pages(
            &mut mem,
            &mut frames,
            ROOT,
            &request(0x0900_0000, virt + 0x3000, 0x1000),
            0,
        )
        .unwrap();
        let writes = mem.writes;
        let err = map_device_pages(
            &mut mem,
            &mut frames,
            ROOT,
            &request(0x0a00_0000, virt, 0x8000),
            0,
        );
        assert_eq!(
            err,
            Err(MapError::AlreadyMapped {
                virt: virt + 0x3000
            })
        );
        assert_eq!(mem.writes, writes, "nothing written for a refused request");
    }

    #[test]
    fn blocks_in_the_way_are_refused() {
        let (mut mem, mut frames) = (FakeMemory::new(), FakeFrames::new());
        // A 1 GiB block at level 1, as a loader's direct map has.
        let virt = 0xffff_0000_4000_0000;
        let l1 = BASE + 5 * PAGE_SIZE;
        mem.write_entry(
            ROOT,
            descriptor::table_index(virt, 0),
            descriptor::table_descriptor(l1),
        );
        mem.write_entry(
            l1,
            descriptor::table_index(virt, 1),
            0x4000_0000 | 1 << 10 | 0b01,
        );
        let err = map_device_pages(
            &mut mem,
            &mut frames,
            ROOT,
            &request(0x0900_0000, virt + 0x1234_5000, 0x1000),
            0,
        );
        assert_eq!(
            err,
            Err(MapError::AlreadyMapped {
                virt: virt + 0x1234_5000
            })
        );
        assert_eq!(frames.next, 1, "no table allocated");
    }

    #[test]
    fn unaligned_and_out_of_range_requests_are_refused() {
        let (mut mem, mut frames) = (FakeMemory::new(), FakeFrames::new());
        let virt = 0xffff_4000_0000_0000;
        for bad in [
            request(0x0900_0010, virt, 0x1000),
            request(0x0900_0000, virt + 8, 0x1000),
            request(0x0900_0000, virt, 0x800),
        ] {
            assert_eq!(
                map_device_pages(&mut mem, &mut frames, ROOT, &bad, 0),
                Err(MapError::Unaligned)
            );
        }
        for bad in [
            request(0x0900_0000, 0x0000_4000_0000_0000, 0x1000),
            request(0x0900_0000, 0xffff_ffff_ffff_f000, 0x2000),
        ] {
            assert_eq!(
                map_device_pages(&mut mem, &mut frames, ROOT, &bad, 0),
                Err(MapError::BadVirtualAddress)
            );
        }
        assert_eq!(
            map_device_pages(
                &mut mem,
                &mut frames,
                ROOT,
                &request(0xffff_ffff_f000, virt, 0x2000),
                0
            ),
            Err(MapError::BadPhysicalAddress)
        );
        assert_eq!(mem.writes, 0);
        // The very last page of the address space is fine.
        map_device_pages(
            &mut mem,
            &mut frames,
            ROOT,
            &request(0x0900_0000, 0xffff_ffff_ffff_f000, 0x1000),
            0,
        )
        .unwrap();
    }

    #[test]
    fn running_out_of_frames_is_reported() {
        let (mut mem, mut frames) = (FakeMemory::new(), FakeFrames::new());
        frames.limit = 3;
        let err = map_device_pages(
            &mut mem,
            &mut frames,
            ROOT,
            &request(0x0900_0000, 0xffff_4000_0000_0000, 0x1000),
            0,
        );
        assert_eq!(err, Err(MapError::OutOfFrames));
    }

    #[test]
    fn used_indices_cover_blocks_and_pages() {
        let (mut mem, mut frames) = (FakeMemory::new(), FakeFrames::new());
        assert_eq!(used_attr_indices(&mem, ROOT), 0);
        map_device_pages(
            &mut mem,
            &mut frames,
            ROOT,
            &request(0x0900_0000, 0xffff_4000_0000_0000, 0x1000),
            3,
        )
        .unwrap();
        let l1 = BASE + 10 * PAGE_SIZE;
        mem.write_entry(ROOT, 0, descriptor::table_descriptor(l1));
        mem.write_entry(l1, 7, 0x1c0_0000_0000 | 1 << 10 | 5 << 2 | 0b01);
        assert_eq!(used_attr_indices(&mem, ROOT), 1 << 3 | 1 << 5);
    }

    #[test]
    fn mair_index_choice() {
        // Limine 8.x: Normal WB at 0, the framebuffer type at 1, zero above.
        assert_eq!(device_attr_index(0x0000_0000_0000_0cff), Some(2));
        assert_eq!(device_attr_index(0x0000_0000_0000_00ff), Some(1));
        assert_eq!(device_attr_index(0x0404_4444_0c0c_44ff), None);
        assert_eq!(free_attr_index(0b0000_0011), Some(2));
        assert_eq!(free_attr_index(0xff), None);
        assert_eq!(
            with_attr(0x0404_4444_0c0c_44ff, 6, 0),
            0x0400_4444_0c0c_44ff
        );
        assert_eq!(
            device_attr_index(with_attr(0x0404_4444_0c0c_44ff, 6, 0)),
            Some(6)
        );
    }
}
