//! The VMSAv8-64 translation table formats Stratus relies on: 4 KiB granule,
//! 48-bit virtual addresses, four levels (0..=3), stage 1 at EL1.
//!
//! Bit positions follow the Arm Architecture Reference Manual (ARM DDI 0487),
//! D8.3 "Translation table descriptor formats" (table, block and page
//! descriptors) and D19.2 "TCR_EL1" / "MAIR_EL1". Pure data: nothing here
//! touches a register, so it is tested on the host.

use aarch64_cpu::registers::TCR_EL1;
use tock_registers::LocalRegisterCopy;

/// The generated field and value items carry the docs written on the fields
/// below, but not the items `register_bitfields!` adds around them.
#[allow(missing_docs)]
mod fields {
    use tock_registers::register_bitfields;

    register_bitfields! [u64,
        /// A stage 1 descriptor at any level with the 4 KiB granule (ARM DDI 0487
        /// D8.3). Table descriptors use `VALID`, `TYPE`, `OUTPUT_ADDR` and the
        /// `*_TABLE` bits; block and page descriptors use the rest.
        pub DESCRIPTOR [
            /// The descriptor is valid; an invalid one makes the walk fault.
            VALID OFFSET(0) NUMBITS(1) [],
            /// At levels 0..=2: 1 for a table, 0 for a block (levels 1 and 2
            /// only). At level 3: must be 1 (page); 0 is reserved.
            TYPE OFFSET(1) NUMBITS(1) [
                Block = 0,
                TableOrPage = 1
            ],
            /// Index into MAIR_EL1 of the memory attributes.
            ATTR_INDX OFFSET(2) NUMBITS(3) [],
            /// Non-secure output address (ignored in Non-secure state).
            NS OFFSET(5) NUMBITS(1) [],
            /// Access permissions AP\[2:1\] (ARM DDI 0487 D8.4.1).
            AP OFFSET(6) NUMBITS(2) [
                /// EL1 read/write, no EL0 access.
                KernelReadWrite = 0b00,
                /// EL1 and EL0 read/write.
                ReadWrite = 0b01,
                /// EL1 read-only, no EL0 access.
                KernelReadOnly = 0b10,
                /// EL1 and EL0 read-only.
                ReadOnly = 0b11
            ],
            /// Shareability. Ignored for Device memory, which is always treated
            /// as Outer Shareable (ARM DDI 0487 B2.7.2).
            SH OFFSET(8) NUMBITS(2) [
                NonShareable = 0b00,
                OuterShareable = 0b10,
                InnerShareable = 0b11
            ],
            /// Access flag: 0 makes the first access fault (unless the hardware
            /// manages it).
            AF OFFSET(10) NUMBITS(1) [],
            /// Not global: the translation is tied to the current ASID.
            NG OFFSET(11) NUMBITS(1) [],
            /// Output address bits \[47:12\]: the next table, or the page / block.
            OUTPUT_ADDR OFFSET(12) NUMBITS(36) [],
            /// Dirty bit modifier (hardware dirty state management).
            DBM OFFSET(51) NUMBITS(1) [],
            /// Hint: one of 16 adjacent entries with the same attributes.
            CONTIGUOUS OFFSET(52) NUMBITS(1) [],
            /// Privileged (EL1) execute-never.
            PXN OFFSET(53) NUMBITS(1) [],
            /// Unprivileged (EL0) execute-never.
            UXN OFFSET(54) NUMBITS(1) [],
            /// Table descriptors: PXN for everything below.
            PXN_TABLE OFFSET(59) NUMBITS(1) [],
            /// Table descriptors: UXN for everything below.
            UXN_TABLE OFFSET(60) NUMBITS(1) [],
            /// Table descriptors: access permission limits for everything below.
            AP_TABLE OFFSET(61) NUMBITS(2) [],
            /// Table descriptors: Non-secure table.
            NS_TABLE OFFSET(63) NUMBITS(1) []
        ]
    ];
}

pub use fields::DESCRIPTOR;

/// A descriptor value with named fields.
pub type Descriptor = LocalRegisterCopy<u64, DESCRIPTOR::Register>;

/// Size of a page and of a translation table (4 KiB granule).
pub const PAGE_SIZE: u64 = 4096;

/// Entries in one translation table.
pub const ENTRIES_PER_TABLE: usize = 512;

/// The last level: level 3 holds page descriptors.
pub const LAST_LEVEL: usize = 3;

/// Bits \[47:12\] of a descriptor: the output address.
pub const OUTPUT_ADDRESS_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Physical addresses the descriptors above can hold (48-bit output address;
/// 52-bit addresses need FEAT_LPA2 and `TCR_EL1.DS`, which Stratus refuses).
pub const MAX_PHYS_ADDRESS: u64 = 1 << 48;

/// First address of the TTBR1_EL1 half with `T1SZ` = 16.
pub const KERNEL_HALF_START: u64 = 0xffff_0000_0000_0000;

/// The MAIR_EL1 attribute encoding of Device-nGnRnE memory (ARM DDI 0487
/// D19.2 MAIR_EL1: `0b0000dd00` with dd = 00).
pub const MAIR_DEVICE_NGNRNE: u8 = 0x00;

/// The index into a table at `level` (0..=3) for virtual address `virt`.
pub const fn table_index(virt: u64, level: usize) -> usize {
    ((virt >> (39 - 9 * level)) & 0x1ff) as usize
}

/// What a descriptor found during a walk means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Invalid: nothing is mapped here.
    Invalid,
    /// A table descriptor pointing at the next level's table.
    Table {
        /// Physical address of the next-level table.
        next: u64,
    },
    /// A block (levels 1, 2) or page (level 3) descriptor, or a reserved
    /// encoding (block at level 0): something is mapped here.
    Leaf,
}

/// Classifies the descriptor `value` found at `level`.
pub fn classify(value: u64, level: usize) -> Entry {
    let d = Descriptor::new(value);
    if !d.is_set(DESCRIPTOR::VALID) {
        Entry::Invalid
    } else if level < LAST_LEVEL && d.matches_all(DESCRIPTOR::TYPE::TableOrPage) {
        Entry::Table {
            next: value & OUTPUT_ADDRESS_MASK,
        }
    } else {
        Entry::Leaf
    }
}

/// A table descriptor for the next-level table at physical `next`, with no
/// hierarchical restrictions (the leaves decide).
pub fn table_descriptor(next: u64) -> u64 {
    let mut d = Descriptor::new(0);
    d.write(
        DESCRIPTOR::VALID::SET
            + DESCRIPTOR::TYPE::TableOrPage
            + DESCRIPTOR::OUTPUT_ADDR.val(next >> 12),
    );
    d.get()
}

/// A level 3 page descriptor for device registers at physical `phys`: the
/// MAIR index `attr_index` (which must hold Device-nGnRnE), access flag set,
/// EL1 read/write, no EL0 access, never executable, global.
pub fn device_page_descriptor(phys: u64, attr_index: u8) -> u64 {
    let mut d = Descriptor::new(0);
    d.write(
        DESCRIPTOR::VALID::SET
            + DESCRIPTOR::TYPE::TableOrPage
            + DESCRIPTOR::ATTR_INDX.val(u64::from(attr_index))
            + DESCRIPTOR::AP::KernelReadWrite
            + DESCRIPTOR::SH::NonShareable
            + DESCRIPTOR::AF::SET
            + DESCRIPTOR::OUTPUT_ADDR.val(phys >> 12)
            + DESCRIPTOR::PXN::SET
            + DESCRIPTOR::UXN::SET,
    );
    d.get()
}

/// A level 3 page descriptor for RAM at physical `phys` with the memory
/// type and shareability of `template` (a leaf of the kernel's own data),
/// access flag set, EL1 read/write, no EL0 access, never executable, global.
pub fn memory_page_descriptor(phys: u64, template: u64) -> u64 {
    let t = Descriptor::new(template);
    let mut d = Descriptor::new(0);
    d.write(
        DESCRIPTOR::VALID::SET
            + DESCRIPTOR::TYPE::TableOrPage
            + DESCRIPTOR::ATTR_INDX.val(t.read(DESCRIPTOR::ATTR_INDX))
            + DESCRIPTOR::AP::KernelReadWrite
            + DESCRIPTOR::SH.val(t.read(DESCRIPTOR::SH))
            + DESCRIPTOR::AF::SET
            + DESCRIPTOR::OUTPUT_ADDR.val(phys >> 12)
            + DESCRIPTOR::PXN::SET
            + DESCRIPTOR::UXN::SET,
    );
    d.get()
}

/// The `AttrIndx` of a block or page descriptor.
pub fn attr_index(value: u64) -> u8 {
    Descriptor::new(value).read(DESCRIPTOR::ATTR_INDX) as u8
}

/// `TCR_EL1.DS` (bit 59): 52-bit addresses with FEAT_LPA2, which changes the
/// descriptor format. Not among the fields `aarch64-cpu` names.
const TCR_DS: u64 = 1 << 59;

/// Why the translation regime set up by the loader cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslationProblem {
    /// `TCR_EL1.T1SZ` is not 16 (48-bit kernel half); 12 means 5-level
    /// paging.
    KernelHalfSize {
        /// The value found.
        t1sz: u8,
    },
    /// `TCR_EL1.TG1` does not select the 4 KiB granule.
    KernelGranule {
        /// The raw field value found.
        tg1: u8,
    },
    /// `TCR_EL1.DS` is set: 52-bit descriptor format.
    LargeAddresses,
}

impl core::fmt::Display for TranslationProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TranslationProblem::KernelHalfSize { t1sz } => {
                write!(
                    f,
                    "TCR_EL1.T1SZ is {t1sz}, expected 16 (48-bit, 4-level kernel half)"
                )
            }
            TranslationProblem::KernelGranule { tg1 } => {
                write!(f, "TCR_EL1.TG1 is {tg1:#b}, expected 0b10 (4 KiB granule)")
            }
            TranslationProblem::LargeAddresses => {
                f.write_str("TCR_EL1.DS is set (52-bit descriptors)")
            }
        }
    }
}

/// Checks that the TTBR1_EL1 half uses the layout this crate's walker
/// implements: 4 KiB granule, `T1SZ` = 16, 48-bit descriptors.
pub fn check_kernel_translation(tcr: u64) -> Result<(), TranslationProblem> {
    let reg = LocalRegisterCopy::<u64, TCR_EL1::Register>::new(tcr);
    let t1sz = reg.read(TCR_EL1::T1SZ) as u8;
    let tg1 = reg.read(TCR_EL1::TG1) as u8;
    if u64::from(tg1) != TCR_EL1::TG1::Value::KiB_4 as u64 {
        return Err(TranslationProblem::KernelGranule { tg1 });
    }
    if t1sz != 16 {
        return Err(TranslationProblem::KernelHalfSize { t1sz });
    }
    if tcr & TCR_DS != 0 {
        return Err(TranslationProblem::LargeAddresses);
    }
    Ok(())
}

/// How the TTBR0_EL1 (lower) half is translated, as far as
/// [`crate::table_walk::used_attr_indices`] is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowerHalf {
    /// Walks are disabled (`TCR_EL1.EPD0`): no descriptor is in use.
    Disabled,
    /// 4 KiB granule, 4 levels: the walker can read its tables.
    Walkable,
    /// Another layout: its descriptors cannot be read by this crate.
    Unreadable,
}

/// Classifies the lower half's translation regime.
pub fn lower_half(tcr: u64) -> LowerHalf {
    let reg = LocalRegisterCopy::<u64, TCR_EL1::Register>::new(tcr);
    if reg.is_set(TCR_EL1::EPD0) {
        LowerHalf::Disabled
    } else if reg.read(TCR_EL1::TG0) == TCR_EL1::TG0::Value::KiB_4 as u64
        && reg.read(TCR_EL1::T0SZ) == 16
    {
        LowerHalf::Walkable
    } else {
        LowerHalf::Unreadable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_page_has_the_expected_bits() {
        let d = device_page_descriptor(0x0900_0000, 2);
        // valid | page | AttrIndx=2 | AF | PXN | UXN, output address 0x09000000.
        assert_eq!(d, 0x0060_0000_0900_0000 | 1 << 10 | 2 << 2 | 0b11);
        assert_eq!(attr_index(d), 2);
        assert_eq!(classify(d, 3), Entry::Leaf);
    }

    #[test]
    fn memory_page_takes_type_and_shareability_from_the_template() {
        // Template: a read-only, executable kernel data block with AttrIndx 1,
        // inner shareable, some output address.
        let template = 0x4000_0000 | 1 << 10 | 0b11 << 8 | 0b10 << 6 | 1 << 2 | 0b01;
        let d = memory_page_descriptor(0x8765_4000, template);
        // valid | page | AttrIndx=1 | AP=RW EL1 | SH=inner | AF | PXN | UXN.
        assert_eq!(
            d,
            0x0060_0000_8765_4000 | 1 << 10 | 0b11 << 8 | 1 << 2 | 0b11
        );
        assert_eq!(classify(d, 3), Entry::Leaf);
    }

    #[test]
    fn table_descriptor_round_trips() {
        let d = table_descriptor(0x4123_4000);
        assert_eq!(d, 0x4123_4003);
        assert_eq!(classify(d, 0), Entry::Table { next: 0x4123_4000 });
        assert_eq!(
            classify(d, 3),
            Entry::Leaf,
            "at level 3 the same bits are a page"
        );
        assert_eq!(classify(0x4000_0001, 1), Entry::Leaf, "block");
        assert_eq!(classify(0x4000_0002, 1), Entry::Invalid);
    }

    #[test]
    fn indices_per_level() {
        let v = 0xffff_fff0_dead_0000u64;
        assert_eq!(table_index(v, 0), 511);
        assert_eq!(table_index(v, 1), 0x1c3);
        assert_eq!(table_index(v, 2), (0xdead_0000u64 >> 21 & 0x1ff) as usize);
        assert_eq!(table_index(v, 3), (0xdead_0000u64 >> 12 & 0x1ff) as usize);
    }

    #[test]
    fn limine_tcr_is_accepted_and_others_refused() {
        // As Limine 8.x builds it: 48-bit PA, TG1 4K, SH/cacheability, T1SZ=T0SZ=16.
        let limine = (5u64 << 32)
            | (2 << 30)
            | (2 << 28)
            | (1 << 26)
            | (1 << 24)
            | (16 << 16)
            | (2 << 12)
            | (1 << 10)
            | (1 << 8)
            | 16;
        assert_eq!(check_kernel_translation(limine), Ok(()));
        assert_eq!(lower_half(limine), LowerHalf::Walkable);
        let five_level = (limine & !(0x3f << 16)) | (12 << 16) | TCR_DS;
        assert_eq!(
            check_kernel_translation(five_level),
            Err(TranslationProblem::KernelHalfSize { t1sz: 12 })
        );
        let granule_64k = (limine & !(3 << 30)) | (3 << 30);
        assert_eq!(
            check_kernel_translation(granule_64k),
            Err(TranslationProblem::KernelGranule { tg1: 3 })
        );
        assert_eq!(
            check_kernel_translation(limine | TCR_DS),
            Err(TranslationProblem::LargeAddresses)
        );
        assert_eq!(lower_half(limine | 1 << 7), LowerHalf::Disabled);
        assert_eq!(lower_half(limine | 12), LowerHalf::Unreadable, "T0SZ 28");
    }
}
