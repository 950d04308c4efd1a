//! Page tables for the kernel handoff.
//!
//! Two layers:
//!
//! - [`AddressSpace`]: a 4-level page-table builder writing into frames from a
//!   caller-provided [`FramePool`], with the x86_64 and the AArch64 (4 KiB granule,
//!   48-bit) descriptor formats. Large pages (2 MiB, 1 GiB) are used wherever
//!   addresses and length allow; mapping a small page inside a large one splits it.
//! - [`Plan`]: the mappings Limine 8.x's `build_pagemap` sets up for a base
//!   revision (executable segments, identity map, HHDM, framebuffer), replayed in
//!   the same order, with the additions this loader makes (device memory types on
//!   AArch64, an identity mapping of the handoff trampoline).
//!
//! Memory types: x86_64 uses PAT entry 0 (write-back) everywhere except the
//! framebuffer (PAT entry 5, write-combining, with Limine's PAT layout). AArch64
//! uses `MAIR_EL1` index 0 (Normal WB), 1 (framebuffer) and 2 (Device-nGnRnE).

use core::fmt;

use crate::memory_map::{Entry, kind};
use crate::{Arch, PAGE_SIZE, align_down, align_up};

/// 2 MiB.
pub const SIZE_2M: u64 = 0x20_0000;
/// 1 GiB.
pub const SIZE_1G: u64 = 0x4000_0000;
const SIZE_512G: u64 = 0x80_0000_0000;
const FOUR_GIB: u64 = 0x1_0000_0000;
const ENTRIES: usize = 512;
const PHYS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// A page (or block) size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PageSize {
    /// 4 KiB, mapped by a level-1 table.
    Size4K,
    /// 2 MiB, mapped by a level-2 table.
    Size2M,
    /// 1 GiB, mapped by a level-3 table.
    Size1G,
}

impl PageSize {
    /// Size in bytes.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => PAGE_SIZE,
            Self::Size2M => SIZE_2M,
            Self::Size1G => SIZE_1G,
        }
    }

    const fn level(self) -> usize {
        match self {
            Self::Size4K => 1,
            Self::Size2M => 2,
            Self::Size1G => 3,
        }
    }

    const fn at_level(level: usize) -> Self {
        match level {
            1 => Self::Size4K,
            2 => Self::Size2M,
            _ => Self::Size1G,
        }
    }
}

/// The memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    /// Normal memory, write-back cacheable.
    Normal,
    /// Framebuffer: write-combining (x86 PAT 5) or Normal non-cacheable (AArch64).
    Framebuffer,
    /// Device memory: Device-nGnRnE on AArch64, uncacheable (PAT 3) on x86_64.
    Device,
}

/// Permissions and memory type of a mapping (always supervisor-only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    /// Writes allowed.
    pub writable: bool,
    /// Instruction fetches allowed.
    pub executable: bool,
    /// Memory type.
    pub kind: MemKind,
}

impl Attrs {
    /// Read, write, execute, write-back: the HHDM and identity maps.
    pub const RWX: Self = Self {
        writable: true,
        executable: true,
        kind: MemKind::Normal,
    };
    /// The framebuffer mapping (read, write, execute like Limine's).
    pub const FRAMEBUFFER: Self = Self {
        writable: true,
        executable: true,
        kind: MemKind::Framebuffer,
    };
    /// Device registers: read, write, never executable.
    pub const DEVICE: Self = Self {
        writable: true,
        executable: false,
        kind: MemKind::Device,
    };
}

/// Descriptor format and the CPU features it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// x86_64 4-level paging.
    X86_64 {
        /// `EFER.NXE` will be set: non-executable mappings get bit 63.
        nx: bool,
        /// The PAT exists and will be programmed: the framebuffer gets PAT entry 5.
        pat: bool,
    },
    /// AArch64 VMSAv8-64, 4 KiB granule, 48-bit input addresses, two roots.
    Aarch64,
}

/// Constants of the x86_64 format.
pub mod x86 {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User accessible (set on tables only, as Limine does).
    pub const US: u64 = 1 << 2;
    /// Page-level write-through (PAT index bit 0).
    pub const PWT: u64 = 1 << 3;
    /// Page-level cache disable (PAT index bit 1).
    pub const PCD: u64 = 1 << 4;
    /// Large page in a level-2 or level-3 entry.
    pub const PS: u64 = 1 << 7;
    /// PAT index bit 2 in a 4 KiB entry.
    pub const PAT_4K: u64 = 1 << 7;
    /// PAT index bit 2 in a 2 MiB / 1 GiB entry.
    pub const PAT_LARGE: u64 = 1 << 12;
    /// No-execute.
    pub const NX: u64 = 1 << 63;
    /// `IA32_PAT` value Limine programs: WB, WT, UC-, UC, WP, WC, UC-, UC.
    pub const PAT_VALUE: u64 = 0x0007_0105_0007_0406;
}

/// Constants of the AArch64 format and the translation registers.
pub mod aarch64 {
    /// Valid.
    pub const VALID: u64 = 1 << 0;
    /// Table (levels 2-4) or page (level 1) descriptor.
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// AP[2]: read-only.
    pub const AP_RO: u64 = 1 << 7;
    /// SH = inner shareable.
    pub const SH_INNER: u64 = 3 << 8;
    /// Access flag.
    pub const AF: u64 = 1 << 10;
    /// Privileged execute-never.
    pub const PXN: u64 = 1 << 53;
    /// Unprivileged execute-never.
    pub const UXN: u64 = 1 << 54;
    /// `MAIR_EL1` index of Normal write-back memory.
    pub const ATTR_NORMAL: u64 = 0;
    /// `MAIR_EL1` index of the framebuffer type.
    pub const ATTR_FRAMEBUFFER: u64 = 1;
    /// `MAIR_EL1` index of Device-nGnRnE.
    pub const ATTR_DEVICE: u64 = 2;
    /// Normal, inner/outer write-back non-transient, read/write-allocate.
    pub const MAIR_NORMAL_WB: u64 = 0xff;
    /// Normal, inner/outer non-cacheable (the framebuffer type when there is one).
    pub const MAIR_NORMAL_NC: u64 = 0x44;
    /// Device-nGnRnE.
    pub const MAIR_DEVICE_NGNRNE: u64 = 0x00;

    /// `MAIR_EL1`: Attr0 Normal WB, Attr1 the framebuffer type (Device-nGnRnE when
    /// there is no framebuffer, as Limine does), Attr2 Device-nGnRnE.
    #[must_use]
    pub const fn mair(has_framebuffer: bool) -> u64 {
        let fb = if has_framebuffer {
            MAIR_NORMAL_NC
        } else {
            MAIR_DEVICE_NGNRNE
        };
        MAIR_NORMAL_WB | (fb << 8) | (MAIR_DEVICE_NGNRNE << 16)
    }

    /// `TCR_EL1` as Limine 8.x sets it: T0SZ = T1SZ = 16 (48-bit), 4 KiB granules,
    /// outer shareable, inner/outer write-back read/write-allocate walks, IPS =
    /// `ID_AA64MMFR0_EL1.PARange` (a 52-bit value acts as 48-bit without
    /// `TCR_EL1.DS`).
    #[must_use]
    pub const fn tcr(pa_range: u64) -> u64 {
        ((pa_range & 7) << 32)
            | (2 << 30) // TG1 = 4 KiB
            | (2 << 28) // SH1 = outer shareable
            | (1 << 26) // ORGN1 = WB RW-allocate
            | (1 << 24) // IRGN1 = WB RW-allocate
            | (16 << 16) // T1SZ
            | (2 << 12) // SH0 (TG0 = 0: 4 KiB)
            | (1 << 10) // ORGN0
            | (1 << 8) // IRGN0
            | 16 // T0SZ
    }

    /// `SCTLR_EL1` at entry (Limine's `LIMINE_SCTLR`): MMU, D- and I-cache, SP
    /// alignment checks, RES1 bits.
    pub const SCTLR: u64 = (1 << 29)
        | (1 << 28)
        | (1 << 23)
        | (1 << 22)
        | (1 << 20)
        | (1 << 12)
        | (1 << 11)
        | (1 << 8)
        | (1 << 7)
        | (1 << 4)
        | (1 << 3)
        | (1 << 2)
        | 1;
}

/// Why tables could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// The frame pool is exhausted.
    OutOfFrames {
        /// Frames in the pool.
        capacity: usize,
    },
    /// An address or length is not 4 KiB aligned, or a range wraps.
    BadRange {
        /// Virtual address.
        va: u64,
        /// Physical address.
        pa: u64,
        /// Length.
        len: u64,
    },
    /// A table entry points outside the pool (never happens with tables this
    /// builder made).
    ForeignTable {
        /// The physical address found.
        phys: u64,
    },
    /// The direct map would reach into the kernel's part of the address space
    /// (Limine: "Unable to allocate higher half direct map (too much memory?)").
    HhdmTooLarge {
        /// Top of the physical range to map.
        top: u64,
        /// First address that cannot be mapped.
        limit: u64,
    },
}

impl fmt::Display for PagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfFrames { capacity } => {
                write!(f, "page-table frame pool ({capacity} frames) exhausted")
            }
            Self::BadRange { va, pa, len } => write!(
                f,
                "cannot map {len:#x} bytes at {va:#x} -> {pa:#x}: unaligned or wrapping"
            ),
            Self::ForeignTable { phys } => {
                write!(
                    f,
                    "page-table entry points outside the frame pool ({phys:#x})"
                )
            }
            Self::HhdmTooLarge { top, limit } => write!(
                f,
                "physical memory up to {top:#x} does not fit in the direct map (limit {limit:#x})"
            ),
        }
    }
}

/// Frames for page tables: `mem` (a multiple of 512 words) at physical `phys_base`.
pub struct FramePool<'a> {
    mem: &'a mut [u64],
    phys_base: u64,
    used: usize,
}

impl<'a> FramePool<'a> {
    /// A pool over `mem`, which lives at physical address `phys_base` (4 KiB
    /// aligned). Only whole frames are used.
    pub fn new(mem: &'a mut [u64], phys_base: u64) -> Self {
        Self {
            mem,
            phys_base,
            used: 0,
        }
    }

    /// Frames in the pool.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.mem.len() / ENTRIES
    }

    /// Frames handed out.
    #[must_use]
    pub fn used(&self) -> usize {
        self.used
    }

    fn alloc(&mut self) -> Result<u64, PagingError> {
        if self.used == self.capacity() {
            return Err(PagingError::OutOfFrames {
                capacity: self.capacity(),
            });
        }
        let i = self.used;
        self.mem[i * ENTRIES..(i + 1) * ENTRIES].fill(0);
        self.used += 1;
        Ok(self.phys_base + i as u64 * PAGE_SIZE)
    }

    fn slot(&self, table: u64, index: usize) -> Result<usize, PagingError> {
        let frame = table.wrapping_sub(self.phys_base) / PAGE_SIZE;
        if table < self.phys_base || frame >= self.used as u64 {
            return Err(PagingError::ForeignTable { phys: table });
        }
        Ok(frame as usize * ENTRIES + index)
    }

    fn read(&self, table: u64, index: usize) -> Result<u64, PagingError> {
        Ok(self.mem[self.slot(table, index)?])
    }

    fn write(&mut self, table: u64, index: usize, value: u64) -> Result<(), PagingError> {
        let slot = self.slot(table, index)?;
        self.mem[slot] = value;
        Ok(())
    }
}

/// A decoded descriptor.
enum Desc {
    Invalid,
    Table(u64),
    Leaf(u64, Attrs),
}

impl Format {
    fn table(self, phys: u64) -> u64 {
        match self {
            Self::X86_64 { .. } => phys | x86::P | x86::RW | x86::US,
            Self::Aarch64 => phys | aarch64::VALID | aarch64::TABLE_OR_PAGE,
        }
    }

    fn leaf(self, phys: u64, attrs: Attrs, size: PageSize) -> u64 {
        match self {
            Self::X86_64 { nx, pat } => {
                let mut e = phys | x86::P;
                if attrs.writable {
                    e |= x86::RW;
                }
                if size != PageSize::Size4K {
                    e |= x86::PS;
                }
                let pat_bit = if size == PageSize::Size4K {
                    x86::PAT_4K
                } else {
                    x86::PAT_LARGE
                };
                match attrs.kind {
                    MemKind::Normal => {}
                    // PAT 5 = WC with Limine's layout; plain WB without a PAT.
                    MemKind::Framebuffer if pat => e |= x86::PWT | pat_bit,
                    MemKind::Framebuffer => {}
                    MemKind::Device => e |= x86::PCD | x86::PWT,
                }
                if nx && !attrs.executable {
                    e |= x86::NX;
                }
                e
            }
            Self::Aarch64 => {
                let mut e = phys | aarch64::VALID | aarch64::AF | aarch64::SH_INNER;
                if size == PageSize::Size4K {
                    e |= aarch64::TABLE_OR_PAGE;
                }
                if !attrs.writable {
                    e |= aarch64::AP_RO;
                }
                let index = match attrs.kind {
                    MemKind::Normal => aarch64::ATTR_NORMAL,
                    MemKind::Framebuffer => aarch64::ATTR_FRAMEBUFFER,
                    MemKind::Device => aarch64::ATTR_DEVICE,
                };
                e |= index << 2;
                if !attrs.executable || attrs.kind == MemKind::Device {
                    e |= aarch64::PXN | aarch64::UXN;
                }
                e
            }
        }
    }

    fn decode(self, entry: u64, level: usize) -> Desc {
        match self {
            Self::X86_64 { .. } => {
                if entry & x86::P == 0 {
                    return Desc::Invalid;
                }
                let large = level > 1 && entry & x86::PS != 0;
                if level > 1 && !large {
                    return Desc::Table(entry & PHYS_MASK);
                }
                let size = PageSize::at_level(level).bytes();
                let pat_bit = if large { x86::PAT_LARGE } else { x86::PAT_4K };
                let kind = if entry & x86::PWT != 0 && entry & pat_bit != 0 {
                    MemKind::Framebuffer
                } else if entry & x86::PCD != 0 {
                    MemKind::Device
                } else {
                    MemKind::Normal
                };
                Desc::Leaf(
                    entry & PHYS_MASK & !(size - 1),
                    Attrs {
                        writable: entry & x86::RW != 0,
                        executable: entry & x86::NX == 0,
                        kind,
                    },
                )
            }
            Self::Aarch64 => {
                if entry & aarch64::VALID == 0 {
                    return Desc::Invalid;
                }
                let bit1 = entry & aarch64::TABLE_OR_PAGE != 0;
                if level > 1 && bit1 {
                    return Desc::Table(entry & PHYS_MASK);
                }
                if level == 1 && !bit1 {
                    return Desc::Invalid;
                }
                let kind = match (entry >> 2) & 7 {
                    aarch64::ATTR_NORMAL => MemKind::Normal,
                    aarch64::ATTR_FRAMEBUFFER => MemKind::Framebuffer,
                    _ => MemKind::Device,
                };
                let size = PageSize::at_level(level).bytes();
                Desc::Leaf(
                    entry & PHYS_MASK & !(size - 1),
                    Attrs {
                        writable: entry & aarch64::AP_RO == 0,
                        executable: entry & aarch64::PXN == 0,
                        kind,
                    },
                )
            }
        }
    }
}

fn index(va: u64, level: usize) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// A translation found by [`AddressSpace::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Physical address of the byte at the virtual address asked about.
    pub pa: u64,
    /// Size of the page or block that maps it.
    pub size: PageSize,
    /// Its permissions and type.
    pub attrs: Attrs,
}

/// A set of page tables under construction.
pub struct AddressSpace<'a> {
    pool: FramePool<'a>,
    format: Format,
    lower_root: u64,
    upper_root: u64,
}

impl<'a> AddressSpace<'a> {
    /// Allocates the root table(s): one on x86_64, two on AArch64 (`TTBR0_EL1` for
    /// the lower half, `TTBR1_EL1` for the higher half).
    ///
    /// # Errors
    ///
    /// [`PagingError::OutOfFrames`].
    pub fn new(mut pool: FramePool<'a>, format: Format) -> Result<Self, PagingError> {
        let lower_root = pool.alloc()?;
        let upper_root = match format {
            Format::X86_64 { .. } => lower_root,
            Format::Aarch64 => pool.alloc()?,
        };
        Ok(Self {
            pool,
            format,
            lower_root,
            upper_root,
        })
    }

    /// Root of the lower half (CR3 on x86_64, `TTBR0_EL1` on AArch64).
    #[must_use]
    pub fn lower_root(&self) -> u64 {
        self.lower_root
    }

    /// Root of the higher half (the same as the lower root on x86_64).
    #[must_use]
    pub fn upper_root(&self) -> u64 {
        self.upper_root
    }

    /// Frames used so far.
    #[must_use]
    pub fn frames_used(&self) -> usize {
        self.pool.used()
    }

    /// Allocates one zeroed frame (an empty table).
    ///
    /// # Errors
    ///
    /// [`PagingError::OutOfFrames`].
    pub fn empty_table(&mut self) -> Result<u64, PagingError> {
        self.pool.alloc()
    }

    fn root_for(&self, va: u64) -> u64 {
        if va >> 63 == 1 {
            self.upper_root
        } else {
            self.lower_root
        }
    }

    /// Maps `len` bytes at `va` to `pa` with the largest pages (up to `max`) that
    /// alignment allows. All three must be 4 KiB aligned.
    ///
    /// # Errors
    ///
    /// [`PagingError::BadRange`], [`PagingError::OutOfFrames`].
    pub fn map(
        &mut self,
        va: u64,
        pa: u64,
        len: u64,
        attrs: Attrs,
        max: PageSize,
    ) -> Result<(), PagingError> {
        let bad = PagingError::BadRange { va, pa, len };
        if (va | pa | len) & (PAGE_SIZE - 1) != 0
            || len > 0 && (va.checked_add(len - 1).is_none() || pa.checked_add(len - 1).is_none())
        {
            return Err(bad);
        }
        let mut off = 0;
        while off < len {
            let (v, p, left) = (va + off, pa + off, len - off);
            let size = [PageSize::Size1G, PageSize::Size2M, PageSize::Size4K]
                .into_iter()
                .find(|s| *s <= max && (v | p) & (s.bytes() - 1) == 0 && left >= s.bytes())
                .unwrap_or(PageSize::Size4K);
            self.map_page(v, p, size, attrs)?;
            off += size.bytes();
        }
        Ok(())
    }

    /// Maps one page of `size` (addresses aligned to it), splitting any larger page
    /// on the way and replacing whatever was mapped there.
    ///
    /// # Errors
    ///
    /// [`PagingError::OutOfFrames`], [`PagingError::ForeignTable`].
    pub fn map_page(
        &mut self,
        va: u64,
        pa: u64,
        size: PageSize,
        attrs: Attrs,
    ) -> Result<(), PagingError> {
        let fmt = self.format;
        let target = size.level();
        let mut table = self.root_for(va);
        for level in (target + 1..=4).rev() {
            let idx = index(va, level);
            let entry = self.pool.read(table, idx)?;
            table = match fmt.decode(entry, level) {
                Desc::Table(next) => next,
                Desc::Invalid => {
                    let next = self.pool.alloc()?;
                    self.pool.write(table, idx, fmt.table(next))?;
                    next
                }
                Desc::Leaf(phys, old) => {
                    // Split the large page into pages one level down.
                    let next = self.pool.alloc()?;
                    let child = PageSize::at_level(level - 1);
                    for k in 0..ENTRIES {
                        let e = fmt.leaf(phys + k as u64 * child.bytes(), old, child);
                        self.pool.write(next, k, e)?;
                    }
                    self.pool.write(table, idx, fmt.table(next))?;
                    next
                }
            };
        }
        self.pool
            .write(table, index(va, target), fmt.leaf(pa, attrs, size))
    }

    /// The raw descriptor that maps `va` at `level` (4 = root, 1 = 4 KiB pages), if
    /// the walk gets that far.
    #[must_use]
    pub fn descriptor(&self, va: u64, level: usize) -> Option<u64> {
        let mut table = self.root_for(va);
        for l in (1..=4).rev() {
            let entry = self.pool.read(table, index(va, l)).ok()?;
            if l == level {
                return Some(entry);
            }
            match self.format.decode(entry, l) {
                Desc::Table(next) => table = next,
                Desc::Invalid | Desc::Leaf(..) => return None,
            }
        }
        None
    }

    /// Whether the table at physical address `table` (from this pool) is empty.
    #[must_use]
    pub fn table_is_empty(&self, table: u64) -> bool {
        (0..ENTRIES).all(|i| self.pool.read(table, i) == Ok(0))
    }

    /// Walks the tables for `va`.
    #[must_use]
    pub fn translate(&self, va: u64) -> Option<Translation> {
        let mut table = self.root_for(va);
        for level in (1..=4).rev() {
            let entry = self.pool.read(table, index(va, level)).ok()?;
            match self.format.decode(entry, level) {
                Desc::Invalid => return None,
                Desc::Table(next) => table = next,
                Desc::Leaf(phys, attrs) => {
                    let size = PageSize::at_level(level);
                    return Some(Translation {
                        pa: phys + (va & (size.bytes() - 1)),
                        size,
                        attrs,
                    });
                }
            }
        }
        None
    }
}

/// One range to map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Virtual start (4 KiB aligned).
    pub va: u64,
    /// Physical start (4 KiB aligned).
    pub pa: u64,
    /// Length (4 KiB multiple).
    pub len: u64,
    /// Permissions and type.
    pub attrs: Attrs,
    /// Largest page size to use.
    pub max: PageSize,
}

impl Mapping {
    /// Upper bound of the tables mapping this range can create (including splits
    /// of larger pages it lands in), given the page sizes alignment permits.
    #[must_use]
    pub fn frames_bound(&self) -> usize {
        let congruent = |s: u64| (self.va ^ self.pa) & (s - 1) == 0;
        let best = [PageSize::Size1G, PageSize::Size2M]
            .into_iter()
            .find(|s| *s <= self.max && congruent(s.bytes()))
            .unwrap_or(PageSize::Size4K);
        let spans = |unit: u64| (self.len / unit) as usize + 2;
        let l3 = spans(SIZE_512G);
        let l2 = if best == PageSize::Size1G {
            2
        } else {
            spans(SIZE_1G)
        };
        let l1 = if best == PageSize::Size4K {
            spans(SIZE_2M)
        } else {
            2
        };
        l3 + l2 + l1
    }
}

/// How the kernel image is placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSegment {
    /// First virtual page of the segment.
    pub va: u64,
    /// Length, page-rounded.
    pub len: u64,
    /// `PF_W`.
    pub writable: bool,
    /// `PF_X`.
    pub executable: bool,
}

/// Everything the handoff tables depend on.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    /// CPU architecture.
    pub arch: Arch,
    /// Base revision the kernel is loaded with.
    pub base_revision: u64,
    /// The HHDM offset.
    pub hhdm_offset: u64,
    /// The (final) Limine memory map.
    pub memmap: &'a [Entry],
    /// Memory-mapped I/O ranges from the UEFI map `(base, length)`: Device memory
    /// in the direct map on AArch64 (base revisions 0 to 2; ignored on x86_64).
    pub device_ranges: &'a [(u64, u64)],
    /// Physical address the kernel image is loaded at.
    pub kernel_phys: u64,
    /// Virtual address of the image's first page.
    pub kernel_virt: u64,
    /// The kernel's loadable segments.
    pub segments: &'a [KernelSegment],
    /// Page-aligned physical range `(base, length)` of the handoff trampoline,
    /// identity-mapped so it survives the switch.
    pub trampoline: (u64, u64),
    /// Whether 1 GiB pages may be used (always on AArch64; `pdpe1gb` on x86_64).
    pub gib_pages: bool,
}

/// Result of [`build`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Built {
    /// Lower-half root used during the switch (CR3 / `TTBR0_EL1`).
    pub lower_root: u64,
    /// Higher-half root (`TTBR1_EL1`; same as `lower_root` on x86_64).
    pub upper_root: u64,
    /// AArch64: `TTBR0_EL1` at entry (the identity tables for base revision 0, an
    /// empty table otherwise). x86_64: unused (the trampoline clears the lower half
    /// of the PML4 for base revisions 1 and up, as Limine does).
    pub final_lower_root: u64,
    /// Frames used.
    pub frames_used: usize,
}

fn is_hhdm_type_rev3(k: u64) -> bool {
    matches!(
        k,
        kind::USABLE
            | kind::BOOTLOADER_RECLAIMABLE
            | kind::EXECUTABLE_AND_MODULES
            | kind::FRAMEBUFFER
    )
}

fn page_range(base: u64, len: u64) -> (u64, u64) {
    let start = align_down(base, PAGE_SIZE);
    let end = align_up(base.saturating_add(len), PAGE_SIZE).unwrap_or(!(PAGE_SIZE - 1));
    (start, end - start)
}

/// Feeds mappings to a callback, with identity / direct-map helpers.
struct Emitter<'f> {
    f: &'f mut dyn FnMut(Mapping) -> Result<(), PagingError>,
    hhdm: u64,
}

impl Emitter<'_> {
    fn map(
        &mut self,
        va: u64,
        pa: u64,
        len: u64,
        attrs: Attrs,
        max: PageSize,
    ) -> Result<(), PagingError> {
        if len == 0 {
            return Ok(());
        }
        (self.f)(Mapping {
            va,
            pa,
            len,
            attrs,
            max,
        })
    }

    /// The direct-map copy of a physical range, and its identity copy if asked.
    fn phys(
        &mut self,
        pa: u64,
        len: u64,
        attrs: Attrs,
        max: PageSize,
        identity: bool,
    ) -> Result<(), PagingError> {
        if identity {
            self.map(pa, pa, len, attrs, max)?;
        }
        self.map(pa + self.hhdm, pa, len, attrs, max)
    }
}

impl Plan<'_> {
    fn big(&self) -> PageSize {
        if self.gib_pages {
            PageSize::Size1G
        } else {
            PageSize::Size2M
        }
    }

    /// Top of the physical range the HHDM covers (Limine's `get_hhdm_span_top`
    /// for base revisions 0 to 2; the highest mapped entry's end for 3).
    #[must_use]
    pub fn hhdm_top(&self) -> u64 {
        if self.base_revision >= 3 {
            return self
                .memmap
                .iter()
                .filter(|e| is_hhdm_type_rev3(e.kind))
                .map(|e| page_range(e.base, e.length))
                .map(|(b, l)| b + l)
                .max()
                .unwrap_or(0);
        }
        let mut top = FOUR_GIB;
        for e in self.memmap {
            if self.base_revision >= 1 && matches!(e.kind, kind::RESERVED | kind::BAD_MEMORY) {
                continue;
            }
            if e.base.max(FOUR_GIB) >= e.top() {
                continue;
            }
            top = top.max(align_up(e.top(), SIZE_1G).unwrap_or(u64::MAX));
        }
        top
    }

    /// Checks that the direct map fits: Limine refuses to boot when its top
    /// reaches `1 << (va_bits - 2)`; on x86_64 it must also stay below
    /// `1 << max_phys_bits` (MAXPHYADDR), or entries would set reserved bits.
    ///
    /// # Errors
    ///
    /// [`PagingError::HhdmTooLarge`].
    pub fn check_hhdm(&self, max_phys_bits: Option<u32>) -> Result<(), PagingError> {
        let top = self.hhdm_top();
        let va_limit = 1u64 << (self.arch.va_bits() - 2);
        if top >= va_limit {
            return Err(PagingError::HhdmTooLarge {
                top,
                limit: va_limit,
            });
        }
        if let Some(bits) = max_phys_bits.filter(|&b| b < 64)
            && top > 1u64 << bits
        {
            return Err(PagingError::HhdmTooLarge {
                top,
                limit: 1u64 << bits,
            });
        }
        Ok(())
    }

    /// Calls `f` with every mapping, in Limine's order (later ones win).
    ///
    /// # Errors
    ///
    /// Whatever `f` returns.
    pub fn for_each(
        &self,
        f: &mut dyn FnMut(Mapping) -> Result<(), PagingError>,
    ) -> Result<(), PagingError> {
        let rev = self.base_revision;
        let big = self.big();
        let device_aware = self.arch == Arch::Aarch64 && rev <= 2;
        let mut out = Emitter {
            f,
            hhdm: self.hhdm_offset,
        };

        // 1. The kernel's segments, with their ELF permissions.
        for s in self.segments {
            let attrs = Attrs {
                writable: s.writable,
                executable: s.executable,
                kind: MemKind::Normal,
            };
            let pa = self.kernel_phys + (s.va - self.kernel_virt);
            out.map(s.va, pa, s.len, attrs, PageSize::Size2M)?;
        }

        if rev <= 2 {
            // 2. Identity map of 0x1000..4 GiB (revision 0), direct map of 0..4 GiB.
            //    On AArch64 that range starts out as Device memory and the memory
            //    map's entries are overlaid as Normal (Limine maps it all Normal).
            let low = if device_aware {
                Attrs::DEVICE
            } else {
                Attrs::RWX
            };
            if rev == 0 {
                out.map(PAGE_SIZE, PAGE_SIZE, FOUR_GIB - PAGE_SIZE, low, big)?;
            }
            out.phys(0, FOUR_GIB, low, big, false)?;
            if device_aware {
                for e in self.memmap.iter().filter(|e| e.base < FOUR_GIB) {
                    let (b, l) = page_range(e.base, e.top().min(FOUR_GIB) - e.base);
                    out.phys(b, l, Attrs::RWX, big, false)?;
                    if rev == 0 {
                        // The identity map never covers page 0.
                        let skip = if b == 0 { PAGE_SIZE.min(l) } else { 0 };
                        out.map(b + skip, b + skip, l - skip, Attrs::RWX, big)?;
                    }
                }
            }
            // 3. Memory map entries above 4 GiB, in 1 GiB units (revisions 1 and 2
            //    leave out reserved and bad memory).
            for e in self.memmap {
                if rev >= 1 && matches!(e.kind, kind::RESERVED | kind::BAD_MEMORY) {
                    continue;
                }
                let base = e.base.max(FOUR_GIB);
                if base >= e.top() {
                    continue;
                }
                let start = align_down(base, SIZE_1G);
                let end = align_up(e.top(), SIZE_1G).unwrap_or(!(SIZE_1G - 1));
                out.phys(start, end - start, Attrs::RWX, big, rev == 0)?;
            }
        } else {
            // 3'. Base revision 3: only usable, bootloader-reclaimable, executable
            //     and framebuffer entries, rounded out to 4 KiB.
            for e in self.memmap.iter().filter(|e| is_hhdm_type_rev3(e.kind)) {
                let (b, l) = page_range(e.base, e.length);
                out.phys(b, l, Attrs::RWX, big, false)?;
            }
        }

        // 4. Framebuffers with their own memory type, 4 KiB pages.
        for e in self.memmap.iter().filter(|e| e.kind == kind::FRAMEBUFFER) {
            let (b, l) = page_range(e.base, e.length);
            out.phys(b, l, Attrs::FRAMEBUFFER, PageSize::Size4K, rev == 0)?;
        }

        // 5. AArch64: what the firmware calls MMIO is Device memory.
        if device_aware {
            for &(base, len) in self.device_ranges {
                let (b, l) = page_range(base, len);
                out.phys(b, l, Attrs::DEVICE, big, rev == 0)?;
            }
        }

        // 6. x86_64, revision 1 and up: Limine's temporary identity map of
        //    0..4 GiB for the switch (the trampoline removes the lower half).
        if self.arch == Arch::X86_64 && rev >= 1 {
            out.map(0, 0, FOUR_GIB, Attrs::RWX, big)?;
        }
        Ok(())
    }

    /// Frames [`build`] needs at most.
    #[must_use]
    pub fn frames_bound(&self) -> usize {
        let mut total = 3; // roots, and the empty TTBR0 on AArch64
        let _ = self.for_each(&mut |m| {
            total += m.frames_bound();
            Ok(())
        });
        let (b, l) = self.trampoline;
        total
            + Mapping {
                va: b,
                pa: b,
                len: l,
                attrs: Attrs::RWX,
                max: PageSize::Size4K,
            }
            .frames_bound()
    }
}

/// Builds the handoff tables for `plan` into `space`.
///
/// # Errors
///
/// [`PagingError`] from the checks and the builder.
pub fn build(plan: &Plan<'_>, space: &mut AddressSpace<'_>) -> Result<Built, PagingError> {
    plan.for_each(&mut |m| space.map(m.va, m.pa, m.len, m.attrs, m.max))?;
    // The trampoline keeps running at its physical address right after the
    // switch: make sure it is identity mapped and executable.
    let (base, len) = plan.trampoline;
    let mut page = base;
    while page < base + len {
        let ok = space
            .translate(page)
            .is_some_and(|t| t.pa == page && t.attrs.executable && t.attrs.kind == MemKind::Normal);
        if !ok {
            space.map_page(page, page, PageSize::Size4K, Attrs::RWX)?;
        }
        page += PAGE_SIZE;
    }
    let final_lower_root = match (plan.arch, plan.base_revision) {
        (Arch::Aarch64, 1..) => space.empty_table()?,
        _ => space.lower_root(),
    };
    Ok(Built {
        lower_root: space.lower_root(),
        upper_root: space.upper_root(),
        final_lower_root,
        frames_used: space.frames_used(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = SIZE_1G;
    const X86_HHDM: u64 = 0xffff_8000_0000_0000;
    const A64_HHDM: u64 = 0xffff_0000_0000_0000;
    const KVIRT: u64 = 0xffff_ffff_8000_0000;
    const KPHYS: u64 = 0x40_0000;

    fn e(base: u64, length: u64, kind: u64) -> Entry {
        Entry { base, length, kind }
    }

    fn memmap() -> Vec<Entry> {
        vec![
            e(0x1000, 0x9_f000, kind::USABLE),
            e(0xa_0000, 0x6_0000, kind::RESERVED),
            e(0x10_0000, 0x30_0000, kind::USABLE),
            e(KPHYS, 0x8000, kind::EXECUTABLE_AND_MODULES),
            e(0x40_8000, 0xf7_8000, kind::USABLE),
            e(0x138_0000, 0x80_0000, kind::BOOTLOADER_RECLAIMABLE),
            e(0x1b80_0000, 0x10_0000, kind::ACPI_RECLAIMABLE),
            e(0x8000_0000, 0x30_0000, kind::FRAMEBUFFER),
            e(0xfee0_0000, 0x1000, kind::RESERVED),
            e(4 * GIB, GIB / 2, kind::USABLE),
            e(8 * GIB, 0x1000, kind::RESERVED),
        ]
    }

    const SEGMENTS: [KernelSegment; 2] = [
        KernelSegment {
            va: KVIRT,
            len: 0x2000,
            writable: false,
            executable: true,
        },
        KernelSegment {
            va: KVIRT + 0x2000,
            len: 0x6000,
            writable: true,
            executable: false,
        },
    ];

    fn plan<'a>(
        arch: Arch,
        rev: u64,
        map: &'a [Entry],
        devices: &'static [(u64, u64)],
        gib: bool,
    ) -> Plan<'a> {
        Plan {
            arch,
            base_revision: rev,
            hhdm_offset: arch.hhdm_offset(),
            memmap: map,
            device_ranges: devices,
            kernel_phys: KPHYS,
            kernel_virt: KVIRT,
            segments: &SEGMENTS,
            trampoline: (0x1_2000_0000, 0x2000),
            gib_pages: gib,
        }
    }

    fn format(arch: Arch) -> Format {
        match arch {
            Arch::X86_64 => Format::X86_64 {
                nx: true,
                pat: true,
            },
            Arch::Aarch64 => Format::Aarch64,
        }
    }

    /// Builds `p` into a fresh pool; returns the pool memory and the result.
    fn with_built(p: &Plan<'_>, check: impl FnOnce(&AddressSpace<'_>, Built)) {
        let bound = p.frames_bound();
        let mut mem = vec![0u64; bound * ENTRIES];
        let pool = FramePool::new(&mut mem, 0x7000_0000);
        let mut space = AddressSpace::new(pool, format(p.arch)).unwrap();
        let built = build(p, &mut space).unwrap();
        assert!(
            built.frames_used <= bound,
            "{} > {}",
            built.frames_used,
            bound
        );
        check(&space, built);
    }

    fn tt(space: &AddressSpace<'_>, va: u64) -> Option<(u64, PageSize, Attrs)> {
        space.translate(va).map(|t| (t.pa, t.size, t.attrs))
    }

    fn t(space: &AddressSpace<'_>, va: u64) -> Option<Translation> {
        space.translate(va)
    }

    const RX: Attrs = Attrs {
        writable: false,
        executable: true,
        kind: MemKind::Normal,
    };
    const RW: Attrs = Attrs {
        writable: true,
        executable: false,
        kind: MemKind::Normal,
    };

    #[test]
    fn builder_uses_large_pages_and_splits_them() {
        let mut mem = vec![0u64; 16 * ENTRIES];
        let pool = FramePool::new(&mut mem, 0x10_0000);
        let fmt = Format::X86_64 {
            nx: true,
            pat: true,
        };
        let mut s = AddressSpace::new(pool, fmt).unwrap();
        s.map(GIB, GIB, 2 * GIB, Attrs::RWX, PageSize::Size1G)
            .unwrap();
        assert_eq!(
            tt(&s, GIB + 5),
            Some((GIB + 5, PageSize::Size1G, Attrs::RWX))
        );
        assert_eq!(s.frames_used(), 2);
        // Raw 1 GiB descriptor: P | RW | PS.
        assert_eq!(s.descriptor(GIB, 3), Some(GIB | x86::P | x86::RW | x86::PS));
        // A read-only 4 KiB page inside splits 1G -> 2M -> 4K.
        s.map_page(GIB + 0x20_3000, 0x5000, PageSize::Size4K, RX)
            .unwrap();
        assert_eq!(s.frames_used(), 4);
        assert_eq!(
            tt(&s, GIB + 0x20_3000),
            Some((0x5000, PageSize::Size4K, RX))
        );
        assert_eq!(
            tt(&s, GIB + 0x20_4000),
            Some((GIB + 0x20_4000, PageSize::Size4K, Attrs::RWX))
        );
        assert_eq!(
            tt(&s, GIB + 0x40_0000),
            Some((GIB + 0x40_0000, PageSize::Size2M, Attrs::RWX))
        );
        assert_eq!(tt(&s, 3 * GIB), None);
        // Tables carry P | RW | US, like Limine's.
        assert_eq!(
            s.descriptor(GIB, 4).unwrap() & 0xfff,
            x86::P | x86::RW | x86::US
        );
        // Misaligned or wrapping ranges are refused.
        assert!(matches!(
            s.map(0x1234, 0, 0x1000, Attrs::RWX, PageSize::Size4K),
            Err(PagingError::BadRange { .. })
        ));
        assert!(matches!(
            s.map(u64::MAX - 0xfff, 0, 0x2000, Attrs::RWX, PageSize::Size4K),
            Err(PagingError::BadRange { .. })
        ));
    }

    #[test]
    fn builder_reports_exhaustion() {
        let mut mem = vec![0u64; 2 * ENTRIES];
        let pool = FramePool::new(&mut mem, 0x10_0000);
        let mut s = AddressSpace::new(pool, Format::Aarch64).unwrap();
        assert_eq!(
            s.map_page(0x1000, 0x1000, PageSize::Size4K, Attrs::RWX),
            Err(PagingError::OutOfFrames { capacity: 2 })
        );
    }

    #[test]
    fn x86_revision_2() {
        let map = memmap();
        for gib in [true, false] {
            let p = plan(Arch::X86_64, 2, &map, &[], gib);
            p.check_hhdm(Some(40)).unwrap();
            with_built(&p, |s, built| {
                assert_eq!(built.lower_root, built.upper_root);
                // Kernel: text RX, data RW + NX, at KPHYS.
                assert_eq!(
                    tt(s, KVIRT + 0x10),
                    Some((KPHYS + 0x10, PageSize::Size4K, RX))
                );
                assert_eq!(
                    tt(s, KVIRT + 0x7ff8),
                    Some((KPHYS + 0x7ff8, PageSize::Size4K, RW))
                );
                let data = s.descriptor(KVIRT + 0x2000, 1).unwrap();
                assert_eq!(data, (KPHYS + 0x2000) | x86::P | x86::RW | x86::NX);
                let text = s.descriptor(KVIRT, 1).unwrap();
                assert_eq!(text, KPHYS | x86::P);
                assert_eq!(tt(s, KVIRT + 0x8000), None);
                // HHDM: all of 0..4 GiB, write-back.
                let big = if gib {
                    PageSize::Size1G
                } else {
                    PageSize::Size2M
                };
                assert_eq!(tt(s, X86_HHDM), Some((0, big, Attrs::RWX)));
                assert_eq!(t(s, X86_HHDM + 0xfee0_0000).unwrap().pa, 0xfee0_0000);
                // Above 4 GiB: the usable entry, rounded to 1 GiB; not reserved.
                assert_eq!(
                    t(s, X86_HHDM + 4 * GIB + 0x123).unwrap().pa,
                    4 * GIB + 0x123
                );
                assert!(t(s, X86_HHDM + 5 * GIB - 1).is_some());
                assert_eq!(tt(s, X86_HHDM + 5 * GIB), None);
                assert_eq!(tt(s, X86_HHDM + 8 * GIB), None);
                // Framebuffer: 4 KiB pages, PAT 5 (PWT + PAT).
                let fb = tt(s, X86_HHDM + 0x8000_0000).unwrap();
                assert_eq!(fb, (0x8000_0000, PageSize::Size4K, Attrs::FRAMEBUFFER));
                let raw = s.descriptor(X86_HHDM + 0x8000_0000, 1).unwrap();
                assert_eq!(
                    raw & (x86::PWT | x86::PCD | x86::PAT_4K),
                    x86::PWT | x86::PAT_4K
                );
                // Past the framebuffer the split 2 MiB pages are write-back again.
                assert_eq!(t(s, X86_HHDM + 0x8040_0000).unwrap().attrs, Attrs::RWX);
                // Temporary identity map of 0..4 GiB, and the trampoline above 4 GiB.
                assert_eq!(t(s, 0x1234).unwrap().pa, 0x1234);
                assert_eq!(t(s, 0).unwrap().pa, 0);
                assert_eq!(
                    tt(s, 0x1_2000_1000),
                    Some((0x1_2000_1000, PageSize::Size4K, Attrs::RWX))
                );
                assert_eq!(tt(s, 0x1_2000_2000), None);
            });
        }
    }

    #[test]
    fn x86_revision_0_and_3() {
        let map = memmap();
        let p = plan(Arch::X86_64, 0, &map, &[], true);
        with_built(&p, |s, _| {
            assert_eq!(tt(s, 0), None, "page 0 is never identity mapped");
            assert_eq!(t(s, 0x1000).unwrap().pa, 0x1000);
            assert_eq!(t(s, 0x1000).unwrap().size, PageSize::Size4K);
            assert_eq!(t(s, 0x4000_0000).unwrap().size, PageSize::Size1G);
            // Revision 0 maps every entry above 4 GiB, reserved ones too.
            assert_eq!(t(s, X86_HHDM + 8 * GIB).unwrap().pa, 8 * GIB);
            assert_eq!(t(s, 8 * GIB).unwrap().pa, 8 * GIB);
            assert_eq!(t(s, 0x8000_0000).unwrap().attrs, Attrs::FRAMEBUFFER);
        });
        let p = plan(Arch::X86_64, 3, &map, &[], true);
        assert_eq!(p.hhdm_top(), 4 * GIB + GIB / 2);
        with_built(&p, |s, _| {
            // Only usable, reclaimable, executable and framebuffer entries.
            assert_eq!(t(s, X86_HHDM + 0x1000).unwrap().pa, 0x1000);
            assert_eq!(tt(s, X86_HHDM), None);
            assert_eq!(tt(s, X86_HHDM + 0xa_0000), None);
            assert_eq!(
                tt(s, X86_HHDM + 0x1b80_0000),
                None,
                "ACPI tables are not mapped"
            );
            assert_eq!(tt(s, X86_HHDM + 0xfee0_0000), None);
            assert_eq!(t(s, X86_HHDM + KPHYS).unwrap().pa, KPHYS);
            assert_eq!(t(s, X86_HHDM + 0x138_0000).unwrap().pa, 0x138_0000);
            assert_eq!(
                t(s, X86_HHDM + 4 * GIB + GIB / 2 - 1).unwrap().pa,
                4 * GIB + GIB / 2 - 1
            );
            assert_eq!(tt(s, X86_HHDM + 4 * GIB + GIB / 2), None);
            assert_eq!(
                t(s, X86_HHDM + 0x8000_0000).unwrap().attrs,
                Attrs::FRAMEBUFFER
            );
            // The switch still needs the identity map (removed by the trampoline).
            assert_eq!(t(s, 0x5000).unwrap().pa, 0x5000);
        });
    }

    static DEVICES: [(u64, u64); 2] = [(0x0400_0000, 0x400_0000), (4 * GIB + 3 * GIB / 4, 0x1000)];

    fn a64_map() -> Vec<Entry> {
        vec![
            e(0x0400_0000, 0x400_0000, kind::RESERVED),
            e(0x4000_0000, 0x20_0000, kind::USABLE),
            e(0x4020_0000, 0x8000, kind::EXECUTABLE_AND_MODULES),
            e(0x4020_8000, 0x1000_0000 - 0x20_8000, kind::USABLE),
            e(0x5000_0000, 0x100_0000, kind::BOOTLOADER_RECLAIMABLE),
            e(0x5f00_0000, 0x100_0000, kind::RUNTIME_RESERVED_FOR_TEST),
            e(4 * GIB, GIB / 2, kind::USABLE),
        ]
    }

    mod kind {
        pub use crate::memory_map::kind::*;
        pub const RUNTIME_RESERVED_FOR_TEST: u64 = RESERVED;
    }

    #[test]
    fn aarch64_revision_2() {
        let map = a64_map();
        let mut p = plan(Arch::Aarch64, 2, &map, &DEVICES, true);
        p.kernel_phys = 0x4020_0000;
        p.trampoline = (0x5000_0000, 0x1000);
        p.check_hhdm(None).unwrap();
        with_built(&p, |s, built| {
            assert_ne!(built.lower_root, built.upper_root);
            // Kernel in TTBR1 with ELF permissions.
            let text = s.descriptor(KVIRT, 1).unwrap();
            use aarch64::*;
            assert_eq!(
                text,
                0x4020_0000 | VALID | TABLE_OR_PAGE | AF | SH_INNER | AP_RO | (ATTR_NORMAL << 2)
            );
            let data = s.descriptor(KVIRT + 0x2000, 1).unwrap();
            assert_eq!(
                data,
                0x4020_2000 | VALID | TABLE_OR_PAGE | AF | SH_INNER | PXN | UXN
            );
            // Holes in the first 4 GiB are Device (PL011 at 0x0900_0000), RAM Normal.
            let uart = t(s, A64_HHDM + 0x0900_0000).unwrap();
            assert_eq!((uart.pa, uart.attrs), (0x0900_0000, Attrs::DEVICE));
            let uart_raw = s
                .descriptor(A64_HHDM + 0x0900_0000, uart.size.level())
                .unwrap();
            assert_eq!((uart_raw >> 2) & 7, ATTR_DEVICE);
            assert_ne!(uart_raw & PXN, 0);
            assert_eq!(t(s, A64_HHDM + 0x4000_1000).unwrap().attrs, Attrs::RWX);
            assert_eq!(t(s, A64_HHDM + 0x5f00_0000).unwrap().attrs, Attrs::RWX);
            assert_eq!(t(s, A64_HHDM + 0x6000_0000).unwrap().attrs, Attrs::DEVICE);
            assert_eq!(t(s, A64_HHDM + 0x0400_0000).unwrap().attrs, Attrs::DEVICE);
            // Above 4 GiB: 1 GiB of RAM, with a firmware MMIO page inside.
            assert_eq!(t(s, A64_HHDM + 4 * GIB).unwrap().attrs, Attrs::RWX);
            assert_eq!(
                t(s, A64_HHDM + 4 * GIB + 3 * GIB / 4).unwrap().attrs,
                Attrs::DEVICE
            );
            assert_eq!(tt(s, A64_HHDM + 5 * GIB), None);
            // TTBR0 during the switch: only the trampoline.
            assert_eq!(t(s, 0x5000_0000).unwrap().pa, 0x5000_0000);
            assert_eq!(tt(s, 0x4000_0000), None);
            // TTBR0 at entry: an empty table.
            assert_ne!(built.final_lower_root, built.lower_root);
            assert!(s.table_is_empty(built.final_lower_root));
        });
    }

    #[test]
    fn aarch64_revisions_0_and_3() {
        let map = a64_map();
        let mut p = plan(Arch::Aarch64, 0, &map, &DEVICES, true);
        p.kernel_phys = 0x4020_0000;
        with_built(&p, |s, built| {
            assert_eq!(built.final_lower_root, built.lower_root);
            assert_eq!(tt(s, 0), None);
            assert_eq!(t(s, 0x4000_0000).unwrap().attrs, Attrs::RWX);
            assert_eq!(t(s, 0x0900_0000).unwrap().attrs, Attrs::DEVICE);
            assert_eq!(tt(s, 8 * GIB), None);
            assert_eq!(t(s, 4 * GIB).unwrap().pa, 4 * GIB);
        });
        let mut p = plan(Arch::Aarch64, 3, &map, &DEVICES, true);
        p.kernel_phys = 0x4020_0000;
        with_built(&p, |s, _| {
            assert_eq!(tt(s, A64_HHDM + 0x0900_0000), None);
            assert_eq!(tt(s, A64_HHDM + 0x5f00_0000), None);
            assert_eq!(t(s, A64_HHDM + 0x4000_0000).unwrap().attrs, Attrs::RWX);
            assert_eq!(t(s, A64_HHDM + 0x5000_0000).unwrap().attrs, Attrs::RWX);
            assert_eq!(tt(s, A64_HHDM + 4 * GIB + 3 * GIB / 4), None);
        });
    }

    #[test]
    fn aarch64_registers() {
        assert_eq!(aarch64::mair(false), 0xff);
        assert_eq!(aarch64::mair(true), 0x44ff);
        assert_eq!(aarch64::tcr(5), 0x5_a510_2510);
        assert_eq!(aarch64::tcr(6), 0x6_a510_2510);
        assert_eq!(aarch64::tcr(2), 0x2_a510_2510);
        assert_eq!(aarch64::SCTLR, 0x30d0_199d);
    }

    #[test]
    fn hhdm_limits() {
        let map = vec![
            e(0x1000, 0x1000, kind::USABLE),
            e(1 << 46, 0x1000, kind::USABLE),
        ];
        let p = plan(Arch::X86_64, 2, &map, &[], true);
        assert!(matches!(
            p.check_hhdm(None),
            Err(PagingError::HhdmTooLarge { .. })
        ));
        let p = plan(Arch::Aarch64, 2, &map, &[], true);
        assert!(p.check_hhdm(None).is_ok());
        let map = vec![
            e(0x1000, 0x1000, kind::USABLE),
            e(1 << 40, 0x1000, kind::USABLE),
        ];
        let p = plan(Arch::X86_64, 2, &map, &[], true);
        assert_eq!(
            p.check_hhdm(Some(40)),
            Err(PagingError::HhdmTooLarge {
                top: (1 << 40) + GIB,
                limit: 1 << 40
            })
        );
        assert!(p.check_hhdm(Some(41)).is_ok());
        // Reserved memory far up does not count from revision 1 on.
        let map = vec![e(1 << 46, 0x1000, kind::RESERVED)];
        assert!(
            plan(Arch::X86_64, 2, &map, &[], true)
                .check_hhdm(None)
                .is_ok()
        );
        assert!(
            plan(Arch::X86_64, 0, &map, &[], true)
                .check_hhdm(None)
                .is_err()
        );
    }

    #[test]
    fn bound_covers_misaligned_kernels_without_gib_pages() {
        let map = memmap();
        let mut p = plan(Arch::X86_64, 2, &map, &[], false);
        // Physical base congruent to nothing larger than 4 KiB.
        p.kernel_phys = 0x40_3000;
        with_built(&p, |s, _| {
            assert_eq!(t(s, KVIRT).unwrap().pa, 0x40_3000);
        });
    }
}
