//! The translation state a secondary CPU starts with (pure, host-tested).
//!
//! PSCI `CPU_ON` starts a CPU at a physical address with the MMU off. To
//! reach the kernel it must turn the MMU on with the boot CPU's TTBR1_EL1
//! tables, and the instruction after the one that turns it on is still
//! fetched at a physical address: TTBR0_EL1 must map the start-up code
//! there. [`identity_tables`] builds a two-table identity map of the 1 GiB
//! around that code, using the same memory attributes as the kernel's own
//! mapping of it (found with [`translate`]); [`secondary_tcr`] turns the
//! boot CPU's TCR_EL1 into one that walks that TTBR0 table.

use crate::descriptor::{self, ENTRIES_PER_TABLE, Entry, LAST_LEVEL, OUTPUT_ADDRESS_MASK};
use crate::table_walk::TableMemory;
use stratus_arch::{FrameSource, MapError};

/// Size of a level 1 block with the 4 KiB granule.
pub const LEVEL1_BLOCK: u64 = 1 << 30;

/// A leaf found by [`translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address `virt` maps to.
    pub phys: u64,
    /// The leaf descriptor (block or page).
    pub leaf: u64,
    /// The level it was found at (1, 2 or 3).
    pub level: usize,
}

/// Walks the 4-level tables rooted at physical `root` for `virt`.
pub fn translate<M: TableMemory + ?Sized>(mem: &M, root: u64, virt: u64) -> Option<Translation> {
    let mut table = root;
    for level in 0..=LAST_LEVEL {
        let value = mem.read_entry(table, descriptor::table_index(virt, level));
        match descriptor::classify(value, level) {
            Entry::Invalid => return None,
            Entry::Table { next } => table = next,
            // A level 0 "block" is a reserved encoding.
            Entry::Leaf if level == 0 => return None,
            Entry::Leaf => {
                let span = 1u64 << (12 + 9 * (LAST_LEVEL - level));
                let base = value & OUTPUT_ADDRESS_MASK & !(span - 1);
                return Some(Translation {
                    phys: base | (virt & (span - 1)),
                    leaf: value,
                    level,
                });
            }
        }
    }
    None
}

/// Lower attributes of a block or page descriptor: AttrIndx, NS, AP, SH,
/// AF, nG (bits 2 to 11).
const LOWER_ATTRIBUTES: u64 = 0xffc;
/// PXN (bit 53) and UXN (bit 54).
const EXECUTE_NEVER: u64 = (1 << 53) | (1 << 54);

/// A level 1 block descriptor mapping the 1 GiB at `base` with the memory
/// attributes of `template` (a leaf of the kernel's tables), executable at
/// EL1 and not at EL0.
pub fn identity_block_descriptor(base: u64, template: u64) -> u64 {
    debug_assert!(base.is_multiple_of(LEVEL1_BLOCK));
    let uxn = 1 << 54;
    (template & LOWER_ATTRIBUTES & !EXECUTE_NEVER) | (base & OUTPUT_ADDRESS_MASK) | uxn | 0b01
}

/// The two tables of an identity map made by [`identity_tables`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityTables {
    /// The level 0 table: what TTBR0_EL1 points at.
    pub level0: u64,
    /// The level 1 table holding the block.
    pub level1: u64,
}

/// Builds TTBR0 tables that identity-map the 1 GiB containing `phys` with
/// `template`'s attributes. Frames come zeroed from `frames`.
pub fn identity_tables<M: TableMemory + ?Sized>(
    mem: &mut M,
    frames: &mut dyn FrameSource,
    phys: u64,
    template: u64,
) -> Result<IdentityTables, MapError> {
    if phys >= descriptor::MAX_PHYS_ADDRESS {
        return Err(MapError::BadPhysicalAddress);
    }
    let level0 = frames
        .allocate_zeroed_frame()
        .ok_or(MapError::OutOfFrames)?;
    let level1 = frames
        .allocate_zeroed_frame()
        .ok_or(MapError::OutOfFrames)?;
    debug_assert!(descriptor::table_index(phys, 0) < ENTRIES_PER_TABLE);
    mem.write_entry(
        level0,
        descriptor::table_index(phys, 0),
        descriptor::table_descriptor(level1),
    );
    let base = phys & !(LEVEL1_BLOCK - 1);
    mem.write_entry(
        level1,
        descriptor::table_index(phys, 1),
        identity_block_descriptor(base, template),
    );
    Ok(IdentityTables { level0, level1 })
}

/// TCR_EL1 fields of the lower half (ARM DDI 0487, D19.2.139).
const T0SZ_MASK: u64 = 0x3f;
const EPD0: u64 = 1 << 7;
const IRGN0_SHIFT: u64 = 8;
const ORGN0_SHIFT: u64 = 10;
const SH0_SHIFT: u64 = 12;
const TG0_SHIFT: u64 = 14;
const LOWER_HALF_FIELDS: u64 = T0SZ_MASK | EPD0 | (0xff << IRGN0_SHIFT);
/// Write-back read/write-allocate cacheable walks.
const WALK_WRITE_BACK: u64 = 0b01;
const INNER_SHAREABLE: u64 = 0b11;
const TG0_4K: u64 = 0b00;

/// The boot CPU's TCR_EL1 with the lower half set to 48-bit, 4 KiB
/// granule, cacheable inner-shareable walks, enabled: what the identity
/// tables of [`identity_tables`] need. The kernel half is untouched.
pub fn secondary_tcr(boot_tcr: u64) -> u64 {
    (boot_tcr & !LOWER_HALF_FIELDS)
        | 16
        | (WALK_WRITE_BACK << IRGN0_SHIFT)
        | (WALK_WRITE_BACK << ORGN0_SHIFT)
        | (INNER_SHAREABLE << SH0_SHIFT)
        | (TG0_4K << TG0_SHIFT)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::descriptor::PAGE_SIZE;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Memory(HashMap<(u64, usize), u64>);

    impl TableMemory for Memory {
        fn read_entry(&self, table: u64, index: usize) -> u64 {
            self.0.get(&(table, index)).copied().unwrap_or(0)
        }
        fn write_entry(&mut self, table: u64, index: usize, value: u64) {
            self.0.insert((table, index), value);
        }
    }

    struct Frames(u64);

    impl FrameSource for Frames {
        fn allocate_zeroed_frame(&mut self) -> Option<u64> {
            self.0 += PAGE_SIZE;
            Some(self.0)
        }
    }

    /// A kernel text page: AttrIndx 1, inner shareable, read-only, AF,
    /// UXN set, PXN clear.
    const TEXT_PAGE: u64 = (1 << 54) | (1 << 10) | (0b11 << 8) | (0b10 << 6) | (1 << 2) | 0b11;

    #[test]
    fn translates_pages_and_blocks() {
        let mut mem = Memory::default();
        let mut frames = Frames(0x10_0000);
        let root = frames.allocate_zeroed_frame().unwrap();
        let l1 = frames.allocate_zeroed_frame().unwrap();
        let l2 = frames.allocate_zeroed_frame().unwrap();
        let l3 = frames.allocate_zeroed_frame().unwrap();
        let virt: u64 = 0xffff_ffff_8000_1234;
        mem.write_entry(
            root,
            descriptor::table_index(virt, 0),
            descriptor::table_descriptor(l1),
        );
        mem.write_entry(
            l1,
            descriptor::table_index(virt, 1),
            descriptor::table_descriptor(l2),
        );
        mem.write_entry(
            l2,
            descriptor::table_index(virt, 2),
            descriptor::table_descriptor(l3),
        );
        mem.write_entry(
            l3,
            descriptor::table_index(virt, 3),
            TEXT_PAGE | 0x4123_4000,
        );
        let t = translate(&mem, root, virt).unwrap();
        assert_eq!(t.phys, 0x4123_4234);
        assert_eq!(t.level, 3);
        assert_eq!(t.leaf & 0xfff, TEXT_PAGE & 0xfff);

        // A 2 MiB block at level 2 elsewhere.
        let other: u64 = 0xffff_ffff_8040_0000 + 0x1_2345;
        mem.write_entry(
            l2,
            descriptor::table_index(other, 2),
            0x8020_0000 | (1 << 10) | 0b01,
        );
        let t = translate(&mem, root, other).unwrap();
        assert_eq!((t.phys, t.level), (0x8020_0000 + 0x1_2345, 2));

        assert_eq!(translate(&mem, root, 0xffff_0000_0000_0000), None);
    }

    #[test]
    fn identity_map_covers_the_code_with_its_attributes() {
        let mut mem = Memory::default();
        let mut frames = Frames(0x10_0000);
        let code = 0x4_5678_9abc;
        let root = identity_tables(&mut mem, &mut frames, code, TEXT_PAGE)
            .unwrap()
            .level0;
        let t = translate(&mem, root, code).unwrap();
        assert_eq!(t.phys, code);
        assert_eq!(t.level, 1);
        // Same AttrIndx, shareability, access permissions; EL1-executable.
        assert_eq!(descriptor::attr_index(t.leaf), 1);
        assert_eq!(t.leaf & 0xffc, TEXT_PAGE & 0xffc);
        assert_eq!(t.leaf & (1 << 53), 0, "PXN must be clear");
        assert_ne!(t.leaf & (1 << 54), 0, "UXN must be set");
        // The rest of the lower half stays unmapped.
        assert_eq!(translate(&mem, root, code + LEVEL1_BLOCK), None);
    }

    #[test]
    fn identity_map_refuses_addresses_beyond_48_bits() {
        let mut mem = Memory::default();
        let mut frames = Frames(0);
        assert_eq!(
            identity_tables(&mut mem, &mut frames, 1 << 48, TEXT_PAGE),
            Err(MapError::BadPhysicalAddress)
        );
    }

    #[test]
    fn secondary_tcr_enables_a_48_bit_lower_half_and_keeps_the_kernel_half() {
        // Limine-like: T1SZ 16, TG1 4K, EPD0 set, T0SZ 25, IPS 48-bit.
        let kernel_half = (16 << 16) | (0b10 << 30) | (0b11 << 28) | (0b101 << 32);
        let boot = kernel_half | EPD0 | 25;
        let tcr = secondary_tcr(boot);
        assert_eq!(tcr & T0SZ_MASK, 16);
        assert_eq!(tcr & EPD0, 0);
        assert_eq!((tcr >> TG0_SHIFT) & 0b11, TG0_4K);
        assert_eq!((tcr >> SH0_SHIFT) & 0b11, INNER_SHAREABLE);
        assert_eq!(tcr & !0xffff, kernel_half & !0xffff);
        assert!(descriptor::check_kernel_translation(tcr).is_ok());
    }
}
