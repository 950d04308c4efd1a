//! ELF64 executable validation and loading.
//!
//! The checks follow what Limine's `elf64_load` enforces (type, machine, program
//! headers in bounds, `p_filesz <= p_memsz`, higher-half `PT_LOAD`s at or above
//! `0xffffffff80000000`, no overlapping segments, no page shared by segments with
//! different permissions), plus a few more a loader that never panics needs
//! (every offset and size is bounds- and overflow-checked, the entry point must lie
//! in a loaded segment, executable, and not in its bss). An `ET_DYN` file
//! (our kernels are static PIEs) is relocatable: its `PT_DYNAMIC` segment is
//! recorded for [`crate::reloc`].
//!
//! Virtual layout: the image spans `virtual_base..virtual_base + image_size`
//! (page-aligned), is loaded physically contiguous, and every segment lands at
//! `physical_base + (vaddr - virtual_base)`, as with Limine.

use core::fmt;

use crate::{Arch, PAGE_SIZE, align_down, align_up};

/// `e_machine` of x86_64 executables.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of AArch64 executables.
pub const EM_AARCH64: u16 = 183;
/// `e_type` of a fixed-address executable.
pub const ET_EXEC: u16 = 2;
/// `e_type` of a position-independent executable or shared object.
pub const ET_DYN: u16 = 3;
/// Program header type of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// Program header type of the dynamic linking table.
pub const PT_DYNAMIC: u32 = 2;
/// Segment flag: executable.
pub const PF_X: u32 = 1;
/// Segment flag: writable.
pub const PF_W: u32 = 2;
/// Segment flag: readable.
pub const PF_R: u32 = 4;
/// Lowest virtual address the Limine protocol lets a kernel be loaded at.
pub const HIGHER_HALF_BASE: u64 = 0xffff_ffff_8000_0000;
/// Most loadable segments this loader accepts.
pub const MAX_SEGMENTS: usize = 16;
/// Largest `p_align` accepted (the image is allocated physically aligned to it).
pub const MAX_ALIGN: u64 = 1 << 30;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// Why a file is not a kernel this loader can boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The file is shorter than an ELF64 header.
    Truncated {
        /// File length in bytes.
        len: usize,
    },
    /// The first four bytes are not `\x7fELF`.
    BadMagic,
    /// `EI_CLASS` is not `ELFCLASS64`.
    NotElf64 {
        /// The `EI_CLASS` byte found.
        class: u8,
    },
    /// `EI_DATA` is not `ELFDATA2LSB`.
    NotLittleEndian {
        /// The `EI_DATA` byte found.
        data: u8,
    },
    /// `EI_VERSION` is not `EV_CURRENT`.
    BadVersion {
        /// The `EI_VERSION` byte found.
        version: u8,
    },
    /// The executable is for another CPU.
    WrongMachine {
        /// `e_machine` found.
        found: u16,
        /// `e_machine` this loader needs.
        expected: u16,
    },
    /// `e_type` is neither `ET_EXEC` nor `ET_DYN`.
    BadType {
        /// `e_type` found.
        found: u16,
    },
    /// More than one `PT_DYNAMIC` segment.
    SeveralDynamicSegments,
    /// `e_phentsize` is not the size of an ELF64 program header (56).
    BadPhentsize {
        /// `e_phentsize` found.
        found: u16,
    },
    /// The program header table does not fit in the file.
    ProgramHeadersOutOfFile {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum`.
        count: u16,
        /// `e_phentsize`.
        entry_size: u16,
        /// File length in bytes.
        file_len: usize,
    },
    /// No `PT_LOAD` segment with a non-zero size.
    NoLoadableSegments,
    /// More loadable segments than [`MAX_SEGMENTS`].
    TooManySegments,
    /// A segment's file size exceeds its memory size.
    FileszExceedsMemsz {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// A segment's file bytes lie (partly) outside the file.
    SegmentOutOfFile {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        filesz: u64,
        /// File length in bytes.
        file_len: usize,
    },
    /// A segment starts below [`HIGHER_HALF_BASE`].
    LowerHalfSegment {
        /// Program header index.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
    },
    /// A segment's end wraps around the address space.
    AddressOverflow {
        /// Program header index.
        index: usize,
    },
    /// `p_align` is not a power of two or exceeds [`MAX_ALIGN`].
    BadAlignment {
        /// Program header index.
        index: usize,
        /// `p_align`.
        align: u64,
    },
    /// Two segments overlap in virtual memory.
    Overlap {
        /// Program header index of the first segment.
        first: usize,
        /// Program header index of the second segment.
        second: usize,
    },
    /// Two segments with different permissions share a page.
    PermissionConflict {
        /// Program header index of the first segment.
        first: usize,
        /// Program header index of the second segment.
        second: usize,
    },
    /// The entry point is not inside any loadable segment.
    EntryOutsideSegments {
        /// `e_entry`.
        entry: u64,
    },
    /// The entry point lies in a segment that is not executable.
    EntryNotExecutable {
        /// `e_entry`.
        entry: u64,
        /// Program header index of the segment holding it.
        index: usize,
    },
    /// The entry point lies in a segment's zero-filled tail (bss), past its file bytes.
    EntryInBss {
        /// `e_entry`.
        entry: u64,
        /// Program header index of the segment holding it.
        index: usize,
    },
    /// A segment's file offset and address differ modulo the page size, so its
    /// pages cannot be mapped from the file as they are laid out.
    OffsetAddressMismatch {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_vaddr`.
        vaddr: u64,
    },
    /// The buffer given to [`Executable::load_into`] is smaller than the image.
    BufferTooSmall {
        /// Bytes needed.
        needed: u64,
        /// Bytes given.
        given: usize,
    },
}

fn machine_name(machine: u16) -> &'static str {
    match machine {
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        3 => "i386",
        40 => "arm",
        243 => "riscv",
        _ => "unknown",
    }
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { len } => write!(
                f,
                "file is {len} bytes, shorter than an ELF64 header ({EHDR_SIZE} bytes)"
            ),
            Self::BadMagic => f.write_str("bad magic: the file does not start with \\x7fELF"),
            Self::NotElf64 { class } => {
                write!(
                    f,
                    "EI_CLASS is {class}, not 2 (ELFCLASS64): not a 64-bit ELF"
                )
            }
            Self::NotLittleEndian { data } => {
                write!(
                    f,
                    "EI_DATA is {data}, not 1 (ELFDATA2LSB): not little-endian"
                )
            }
            Self::BadVersion { version } => {
                write!(f, "EI_VERSION is {version}, not 1 (EV_CURRENT)")
            }
            Self::WrongMachine { found, expected } => write!(
                f,
                "e_machine is {found} ({}), this loader needs {expected} ({})",
                machine_name(found),
                machine_name(expected)
            ),
            Self::BadType { found } => {
                write!(f, "e_type is {found}, neither ET_EXEC (2) nor ET_DYN (3)")
            }
            Self::SeveralDynamicSegments => f.write_str("more than one PT_DYNAMIC segment"),
            Self::BadPhentsize { found } => write!(
                f,
                "e_phentsize is {found}, not the size of an ELF64 program header ({PHDR_SIZE})"
            ),
            Self::ProgramHeadersOutOfFile {
                offset,
                count,
                entry_size,
                file_len,
            } => write!(
                f,
                "program headers ({count} x {entry_size} bytes at offset {offset:#x}) \
                 extend past the end of the file ({file_len} bytes)"
            ),
            Self::NoLoadableSegments => f.write_str("no PT_LOAD segment with a non-zero size"),
            Self::TooManySegments => {
                write!(f, "more than {MAX_SEGMENTS} PT_LOAD segments")
            }
            Self::FileszExceedsMemsz {
                index,
                filesz,
                memsz,
            } => write!(
                f,
                "program header {index}: p_filesz {filesz:#x} exceeds p_memsz {memsz:#x}"
            ),
            Self::SegmentOutOfFile {
                index,
                offset,
                filesz,
                file_len,
            } => write!(
                f,
                "program header {index}: {filesz:#x} bytes at offset {offset:#x} extend past \
                 the end of the file ({file_len} bytes)"
            ),
            Self::LowerHalfSegment { index, vaddr } => write!(
                f,
                "program header {index}: p_vaddr {vaddr:#x} is below {HIGHER_HALF_BASE:#x} \
                 (kernels must be linked in the higher half)"
            ),
            Self::AddressOverflow { index } => write!(
                f,
                "program header {index}: p_vaddr + p_memsz wraps around the address space"
            ),
            Self::BadAlignment { index, align } => write!(
                f,
                "program header {index}: p_align {align:#x} is not a power of two up to \
                 {MAX_ALIGN:#x}"
            ),
            Self::Overlap { first, second } => {
                write!(f, "program headers {first} and {second} overlap")
            }
            Self::PermissionConflict { first, second } => write!(
                f,
                "program headers {first} and {second} share a page but have different \
                 permissions"
            ),
            Self::EntryOutsideSegments { entry } => {
                write!(
                    f,
                    "entry point {entry:#x} is not inside any PT_LOAD segment"
                )
            }
            Self::EntryNotExecutable { entry, index } => write!(
                f,
                "entry point {entry:#x} is in program header {index}, which is not executable"
            ),
            Self::EntryInBss { entry, index } => write!(
                f,
                "entry point {entry:#x} is in the zero-filled part (bss) of program header \
                 {index}, past its file bytes"
            ),
            Self::OffsetAddressMismatch {
                index,
                offset,
                vaddr,
            } => write!(
                f,
                "program header {index}: p_offset {offset:#x} and p_vaddr {vaddr:#x} differ \
                 modulo the page size ({PAGE_SIZE:#x})"
            ),
            Self::BufferTooSmall { needed, given } => {
                write!(f, "load buffer is {given} bytes, the image needs {needed}")
            }
        }
    }
}

/// One loadable (`PT_LOAD`, non-empty) segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Index of the program header it came from.
    pub index: usize,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_offset`.
    pub offset: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_flags` (`PF_R`, `PF_W`, `PF_X`).
    pub flags: u32,
    /// `p_align`.
    pub align: u64,
}

impl Segment {
    /// Whether the segment is mapped writable.
    #[must_use]
    pub const fn writable(&self) -> bool {
        self.flags & PF_W != 0
    }

    /// Whether the segment is mapped executable.
    #[must_use]
    pub const fn executable(&self) -> bool {
        self.flags & PF_X != 0
    }

    /// First virtual page address the segment touches.
    #[must_use]
    pub const fn page_start(&self) -> u64 {
        align_down(self.vaddr, PAGE_SIZE)
    }

    /// End (exclusive) of the last page the segment touches. Validation guarantees
    /// this does not overflow.
    #[must_use]
    pub const fn page_end(&self) -> u64 {
        match align_up(self.vaddr + self.memsz, PAGE_SIZE) {
            Some(end) => end,
            None => u64::MAX,
        }
    }

    const fn end(&self) -> u64 {
        self.vaddr + self.memsz
    }
}

/// A validated ELF64 executable, ready to be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Executable {
    /// `e_entry`.
    pub entry: u64,
    /// Lowest segment address, rounded down to a page: the image's virtual base.
    pub virtual_base: u64,
    /// Size of the image in bytes (a multiple of the page size).
    pub image_size: u64,
    /// Largest `p_align` of the loadable segments, at least the page size: the
    /// physical alignment the image needs.
    pub max_align: u64,
    /// Byte range of the image, relative to `virtual_base`, that Limine scans for
    /// requests: from the lowest segment address over everything but the last
    /// segment's zero-filled tail (Limine's `image_size_before_bss`).
    pub scan_start: u64,
    /// End (exclusive) of the scan range, relative to `virtual_base`.
    pub scan_end: u64,
    /// Whether the file is `ET_DYN` (position independent): the loader may place
    /// it at another address than it was linked at and then applies its
    /// relocations (see [`crate::reloc`]).
    pub relocatable: bool,
    /// `(p_vaddr, p_memsz)` of the `PT_DYNAMIC` segment of an `ET_DYN` file.
    pub dynamic: Option<(u64, u64)>,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
}

fn read_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn read_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn read_u64(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

/// `e_machine` value for an architecture.
#[must_use]
pub const fn machine_for(arch: Arch) -> u16 {
    match arch {
        Arch::X86_64 => EM_X86_64,
        Arch::Aarch64 => EM_AARCH64,
    }
}

/// Validates `file` as a kernel for `arch`.
///
/// # Errors
///
/// Returns the first problem found; see [`ElfError`].
pub fn parse(file: &[u8], arch: Arch) -> Result<Executable, ElfError> {
    if file.len() < EHDR_SIZE {
        return Err(ElfError::Truncated { len: file.len() });
    }
    if file[0..4] != [0x7f, b'E', b'L', b'F'] {
        return Err(ElfError::BadMagic);
    }
    if file[4] != 2 {
        return Err(ElfError::NotElf64 { class: file[4] });
    }
    if file[5] != 1 {
        return Err(ElfError::NotLittleEndian { data: file[5] });
    }
    if file[6] != 1 {
        return Err(ElfError::BadVersion { version: file[6] });
    }
    let e_type = read_u16(file, 16);
    let machine = read_u16(file, 18);
    let expected = machine_for(arch);
    if machine != expected {
        return Err(ElfError::WrongMachine {
            found: machine,
            expected,
        });
    }
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::BadType { found: e_type });
    }
    let entry = read_u64(file, 24);
    let phoff = read_u64(file, 32);
    let phentsize = read_u16(file, 54);
    let phnum = read_u16(file, 56);
    if usize::from(phentsize) != PHDR_SIZE {
        return Err(ElfError::BadPhentsize { found: phentsize });
    }
    let table_end = u64::from(phnum)
        .checked_mul(u64::from(phentsize))
        .and_then(|size| size.checked_add(phoff));
    if table_end.is_none_or(|end| end > file.len() as u64) {
        return Err(ElfError::ProgramHeadersOutOfFile {
            offset: phoff,
            count: phnum,
            entry_size: phentsize,
            file_len: file.len(),
        });
    }

    let mut segments = [Segment::default(); MAX_SEGMENTS];
    let mut count = 0;
    let mut max_align = PAGE_SIZE;
    let mut last_bss = 0;
    let mut dynamic = None;
    for index in 0..usize::from(phnum) {
        // In bounds: checked against table_end above.
        let ph = phoff as usize + index * usize::from(phentsize);
        let p_type = read_u32(file, ph);
        if p_type == PT_DYNAMIC && e_type == ET_DYN {
            if dynamic.is_some() {
                return Err(ElfError::SeveralDynamicSegments);
            }
            dynamic = Some((read_u64(file, ph + 16), read_u64(file, ph + 40)));
        }
        let seg = Segment {
            index,
            flags: read_u32(file, ph + 4),
            offset: read_u64(file, ph + 8),
            vaddr: read_u64(file, ph + 16),
            filesz: read_u64(file, ph + 32),
            memsz: read_u64(file, ph + 40),
            align: read_u64(file, ph + 48),
        };
        if p_type != PT_LOAD || seg.memsz == 0 {
            continue;
        }
        if seg.filesz > seg.memsz {
            return Err(ElfError::FileszExceedsMemsz {
                index,
                filesz: seg.filesz,
                memsz: seg.memsz,
            });
        }
        if seg
            .offset
            .checked_add(seg.filesz)
            .is_none_or(|end| end > file.len() as u64)
        {
            return Err(ElfError::SegmentOutOfFile {
                index,
                offset: seg.offset,
                filesz: seg.filesz,
                file_len: file.len(),
            });
        }
        if seg.vaddr < HIGHER_HALF_BASE {
            return Err(ElfError::LowerHalfSegment {
                index,
                vaddr: seg.vaddr,
            });
        }
        if seg
            .vaddr
            .checked_add(seg.memsz)
            .and_then(|end| align_up(end, PAGE_SIZE))
            .is_none()
        {
            return Err(ElfError::AddressOverflow { index });
        }
        if seg.offset % PAGE_SIZE != seg.vaddr % PAGE_SIZE {
            return Err(ElfError::OffsetAddressMismatch {
                index,
                offset: seg.offset,
                vaddr: seg.vaddr,
            });
        }
        if seg.align > 1 && (!seg.align.is_power_of_two() || seg.align > MAX_ALIGN) {
            return Err(ElfError::BadAlignment {
                index,
                align: seg.align,
            });
        }
        if count == MAX_SEGMENTS {
            return Err(ElfError::TooManySegments);
        }
        max_align = max_align.max(seg.align);
        last_bss = seg.memsz - seg.filesz;
        segments[count] = seg;
        count += 1;
    }
    if count == 0 {
        return Err(ElfError::NoLoadableSegments);
    }
    let loaded = &segments[..count];

    for (i, a) in loaded.iter().enumerate() {
        for b in &loaded[i + 1..] {
            if a.vaddr < b.end() && b.vaddr < a.end() {
                return Err(ElfError::Overlap {
                    first: a.index,
                    second: b.index,
                });
            }
            let share_page = a.page_start() < b.page_end() && b.page_start() < a.page_end();
            if share_page && (a.flags & 7) != (b.flags & 7) {
                return Err(ElfError::PermissionConflict {
                    first: a.index,
                    second: b.index,
                });
            }
        }
    }
    check_entry(loaded, entry)?;

    let min_vaddr = loaded.iter().map(|s| s.vaddr).min().unwrap_or(0);
    let max_end = loaded.iter().map(Segment::end).max().unwrap_or(0);
    let virtual_base = align_down(min_vaddr, PAGE_SIZE);
    // Checked per segment above: the page-rounded end of every segment fits.
    let image_end = align_up(max_end, PAGE_SIZE).unwrap_or(u64::MAX);
    let scan_start = min_vaddr - virtual_base;
    let before_bss = (max_end - min_vaddr).saturating_sub(last_bss);
    Ok(Executable {
        entry,
        virtual_base,
        image_size: image_end - virtual_base,
        max_align,
        scan_start,
        scan_end: scan_start + align_down(before_bss, 8),
        relocatable: e_type == ET_DYN,
        dynamic,
        segments,
        count,
    })
}

/// Checks that `entry` can start the kernel: inside a loaded segment, which is
/// executable, and within that segment's file bytes (not its bss, which is zero).
fn check_entry(segments: &[Segment], entry: u64) -> Result<(), ElfError> {
    let Some(seg) = segments
        .iter()
        .find(|s| entry >= s.vaddr && entry - s.vaddr < s.memsz)
    else {
        return Err(ElfError::EntryOutsideSegments { entry });
    };
    if !seg.executable() {
        return Err(ElfError::EntryNotExecutable {
            entry,
            index: seg.index,
        });
    }
    if entry - seg.vaddr >= seg.filesz {
        return Err(ElfError::EntryInBss {
            entry,
            index: seg.index,
        });
    }
    Ok(())
}

impl Executable {
    /// Checks an entry point other than `e_entry` (the Limine entry point
    /// request) the same way [`parse`] checks `e_entry`.
    ///
    /// # Errors
    ///
    /// [`ElfError::EntryOutsideSegments`], [`ElfError::EntryNotExecutable`] or
    /// [`ElfError::EntryInBss`].
    pub fn check_entry(&self, entry: u64) -> Result<(), ElfError> {
        check_entry(self.segments(), entry)
    }

    /// The same executable placed `slide` bytes above its link address: entry
    /// point, base and segments moved (the image bytes are relocated separately
    /// with [`crate::reloc::apply`]). The caller keeps the image in the top
    /// 2 GiB (see [`crate::reloc::choose_slide`]), so nothing wraps.
    #[must_use]
    pub fn slid(&self, slide: u64) -> Self {
        let mut moved = *self;
        moved.entry = self.entry.wrapping_add(slide);
        moved.virtual_base = self.virtual_base.wrapping_add(slide);
        moved.dynamic = self.dynamic.map(|(va, len)| (va.wrapping_add(slide), len));
        for seg in &mut moved.segments[..moved.count] {
            seg.vaddr = seg.vaddr.wrapping_add(slide);
        }
        moved
    }

    /// The loadable segments, in program header order.
    #[must_use]
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }

    /// Number of pages the image occupies.
    #[must_use]
    pub const fn image_pages(&self) -> u64 {
        self.image_size / PAGE_SIZE
    }

    /// Copies every segment from `file` (the file given to [`parse`]) into `image`,
    /// which stands for `virtual_base..virtual_base + image_size`, and zero-fills
    /// the rest (bss and gaps).
    ///
    /// # Errors
    ///
    /// [`ElfError::BufferTooSmall`] if `image` is shorter than `image_size`.
    pub fn load_into(&self, file: &[u8], image: &mut [u8]) -> Result<(), ElfError> {
        if (image.len() as u64) < self.image_size {
            return Err(ElfError::BufferTooSmall {
                needed: self.image_size,
                given: image.len(),
            });
        }
        image[..self.image_size as usize].fill(0);
        for seg in self.segments() {
            let dst = (seg.vaddr - self.virtual_base) as usize;
            let src = seg.offset as usize;
            let len = seg.filesz as usize;
            image[dst..dst + len].copy_from_slice(&file[src..src + len]);
        }
        Ok(())
    }
}

/// Writes an ELF64 header and program headers (at offset 64) into the start of
/// `out`, for host tests and fuzz corpora. Each program header is `[p_type,
/// p_flags, p_offset, p_vaddr (also p_paddr), p_filesz, p_memsz, p_align]`.
///
/// # Panics
///
/// If `out` is shorter than the headers.
#[doc(hidden)]
pub fn write_headers(out: &mut [u8], machine: u16, e_type: u16, entry: u64, phdrs: &[[u64; 7]]) {
    out[0..4].copy_from_slice(b"\x7fELF");
    out[4..7].copy_from_slice(&[2, 1, 1]);
    out[16..18].copy_from_slice(&e_type.to_le_bytes());
    out[18..20].copy_from_slice(&machine.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
    out[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    out[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for (i, p) in phdrs.iter().enumerate() {
        let o = EHDR_SIZE + i * PHDR_SIZE;
        out[o..o + 4].copy_from_slice(&(p[0] as u32).to_le_bytes());
        out[o + 4..o + 8].copy_from_slice(&(p[1] as u32).to_le_bytes());
        for (k, v) in [p[2], p[3], p[3], p[4], p[5], p[6]].iter().enumerate() {
            out[o + 8 + 8 * k..o + 16 + 8 * k].copy_from_slice(&v.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a minimal ELF64 file: headers, then numbered bytes from 0x1000 to 0x3000.
    pub(crate) fn build(machine: u16, e_type: u16, entry: u64, phdrs: &[[u64; 7]]) -> Vec<u8> {
        let mut f = vec![0u8; 0x3000];
        write_headers(&mut f, machine, e_type, entry, phdrs);
        for (i, b) in f[0x1000..0x3000].iter_mut().enumerate() {
            *b = (i % 251) as u8 + 1;
        }
        f
    }

    const BASE: u64 = HIGHER_HALF_BASE;
    const RX: u64 = (PF_R | PF_X) as u64;
    const RW: u64 = (PF_R | PF_W) as u64;
    const LOAD: u64 = PT_LOAD as u64;

    fn kernel_phdrs() -> [[u64; 7]; 2] {
        [
            [LOAD, RX, 0x1000, BASE, 0x1000, 0x1000, 0x1000],
            [LOAD, RW, 0x2000, BASE + 0x1000, 0x800, 0x3000, 0x1000],
        ]
    }

    fn kernel() -> Vec<u8> {
        build(EM_X86_64, ET_EXEC, BASE + 0x10, &kernel_phdrs())
    }

    #[test]
    fn parses_a_valid_kernel() {
        let exe = parse(&kernel(), Arch::X86_64).unwrap();
        assert_eq!(exe.entry, BASE + 0x10);
        assert_eq!(exe.virtual_base, BASE);
        assert_eq!(exe.image_size, 0x4000);
        assert_eq!(exe.image_pages(), 4);
        assert_eq!(exe.max_align, 0x1000);
        assert_eq!(exe.segments().len(), 2);
        assert!(exe.segments()[0].executable() && !exe.segments()[0].writable());
        assert!(exe.segments()[1].writable() && !exe.segments()[1].executable());
        // Limine's image_size_before_bss: image minus the last segment's bss.
        assert_eq!(exe.scan_start, 0);
        assert_eq!(exe.scan_end, 0x4000 - 0x2800);
    }

    #[test]
    fn loads_segments_and_zeroes_bss() {
        let file = kernel();
        let exe = parse(&file, Arch::X86_64).unwrap();
        let mut image = vec![0xAAu8; 0x4000];
        exe.load_into(&file, &mut image).unwrap();
        assert_eq!(&image[..0x1000], &file[0x1000..0x2000]);
        assert_eq!(&image[0x1000..0x1800], &file[0x2000..0x2800]);
        assert!(image[0x1800..].iter().all(|&b| b == 0));
        let mut small = vec![0u8; 0x3000];
        assert_eq!(
            exe.load_into(&file, &mut small),
            Err(ElfError::BufferTooSmall {
                needed: 0x4000,
                given: 0x3000
            })
        );
    }

    #[test]
    fn aarch64_machine_is_checked() {
        let mut file = kernel();
        file[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        assert!(parse(&file, Arch::Aarch64).is_ok());
        let err = parse(&file, Arch::X86_64).unwrap_err();
        assert_eq!(
            err,
            ElfError::WrongMachine {
                found: EM_AARCH64,
                expected: EM_X86_64
            }
        );
        assert_eq!(
            err.to_string(),
            "e_machine is 183 (aarch64), this loader needs 62 (x86_64)"
        );
    }

    #[test]
    fn rejects_truncated_and_bad_headers() {
        let file = kernel();
        assert_eq!(
            parse(&file[..10], Arch::X86_64),
            Err(ElfError::Truncated { len: 10 })
        );
        assert_eq!(
            parse(&[], Arch::X86_64),
            Err(ElfError::Truncated { len: 0 })
        );
        let mut bad = file.clone();
        bad[1] = b'X';
        assert_eq!(parse(&bad, Arch::X86_64), Err(ElfError::BadMagic));
        let mut bad = file.clone();
        bad[4] = 1;
        assert_eq!(
            parse(&bad, Arch::X86_64),
            Err(ElfError::NotElf64 { class: 1 })
        );
        let mut bad = file.clone();
        bad[5] = 2;
        assert_eq!(
            parse(&bad, Arch::X86_64),
            Err(ElfError::NotLittleEndian { data: 2 })
        );
        let mut bad = file.clone();
        bad[16] = 1;
        assert_eq!(
            parse(&bad, Arch::X86_64),
            Err(ElfError::BadType { found: 1 })
        );
        for size in [32u16, 55, 57, 64] {
            let mut bad = file.clone();
            bad[54..56].copy_from_slice(&size.to_le_bytes());
            assert_eq!(
                parse(&bad, Arch::X86_64),
                Err(ElfError::BadPhentsize { found: size })
            );
        }
        let mut bad = file.clone();
        bad[54] = 64;
        assert_eq!(
            parse(&bad, Arch::X86_64).unwrap_err().to_string(),
            "e_phentsize is 64, not the size of an ELF64 program header (56)"
        );
        // Program headers cut off by truncation.
        let err = parse(&file[..100], Arch::X86_64).unwrap_err();
        assert!(matches!(err, ElfError::ProgramHeadersOutOfFile { .. }));
        assert!(
            err.to_string()
                .contains("extend past the end of the file (100 bytes)")
        );
        // Huge e_phoff must not overflow.
        let mut bad = file.clone();
        bad[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            parse(&bad, Arch::X86_64),
            Err(ElfError::ProgramHeadersOutOfFile { .. })
        ));
    }

    #[test]
    fn rejects_bad_segments() {
        let one =
            |p: [u64; 7], entry: u64| parse(&build(EM_X86_64, ET_EXEC, entry, &[p]), Arch::X86_64);
        assert_eq!(
            one([LOAD, RX, 0x1000, BASE, 0x2000, 0x1000, 0x1000], BASE),
            Err(ElfError::FileszExceedsMemsz {
                index: 0,
                filesz: 0x2000,
                memsz: 0x1000
            })
        );
        assert_eq!(
            one([LOAD, RX, 0x2800, BASE, 0x1000, 0x1000, 0x1000], BASE),
            Err(ElfError::SegmentOutOfFile {
                index: 0,
                offset: 0x2800,
                filesz: 0x1000,
                file_len: 0x3000
            })
        );
        assert!(matches!(
            one([LOAD, RX, u64::MAX, BASE, 2, 2, 0x1000], BASE),
            Err(ElfError::SegmentOutOfFile { .. })
        ));
        assert_eq!(
            one(
                [LOAD, RX, 0x1000, 0x40_0000, 0x1000, 0x1000, 0x1000],
                0x40_0000
            ),
            Err(ElfError::LowerHalfSegment {
                index: 0,
                vaddr: 0x40_0000
            })
        );
        assert_eq!(
            one(
                [LOAD, RX, 0x1000, u64::MAX - 0x10, 0x0, 0x100, 0x1000],
                u64::MAX - 0x10
            ),
            Err(ElfError::AddressOverflow { index: 0 })
        );
        assert_eq!(
            one([LOAD, RX, 0x1000, BASE, 0x10, 0x10, 0x3000], BASE),
            Err(ElfError::BadAlignment {
                index: 0,
                align: 0x3000
            })
        );
        assert_eq!(
            one([LOAD, RX, 0x1000, BASE, 0x10, 0x10, 0x1000], BASE + 0x10),
            Err(ElfError::EntryOutsideSegments { entry: BASE + 0x10 })
        );
        // Only empty or non-load segments.
        assert_eq!(
            one([LOAD, RX, 0x1000, BASE, 0, 0, 0x1000], BASE),
            Err(ElfError::NoLoadableSegments)
        );
        assert_eq!(
            one([6, RX, 0x1000, BASE, 0x10, 0x10, 0x1000], BASE),
            Err(ElfError::NoLoadableSegments)
        );
    }

    #[test]
    fn rejects_overlap_and_shared_pages() {
        let two = |a: [u64; 7], b: [u64; 7]| {
            parse(&build(EM_X86_64, ET_EXEC, BASE, &[a, b]), Arch::X86_64)
        };
        assert_eq!(
            two(
                [LOAD, RX, 0x1000, BASE, 0x1000, 0x1000, 0x1000],
                [LOAD, RX, 0x1800, BASE + 0x800, 0x100, 0x100, 0x1000]
            ),
            Err(ElfError::Overlap {
                first: 0,
                second: 1
            })
        );
        assert_eq!(
            two(
                [LOAD, RX, 0x1000, BASE, 0x800, 0x800, 0x1000],
                [LOAD, RW, 0x1800, BASE + 0x800, 0x100, 0x100, 0x1000]
            ),
            Err(ElfError::PermissionConflict {
                first: 0,
                second: 1
            })
        );
        // Same permissions may share a page.
        assert!(
            two(
                [LOAD, RX, 0x1000, BASE, 0x800, 0x800, 0x1000],
                [LOAD, RX, 0x1800, BASE + 0x800, 0x100, 0x100, 0x1000]
            )
            .is_ok()
        );
    }

    #[test]
    fn et_dyn_is_relocatable_and_records_its_dynamic_segment() {
        let p = [LOAD, RX, 0x1000, BASE, 0x100, 0x100, 0x20_0000];
        let exe = parse(&build(EM_X86_64, ET_DYN, BASE, &[p]), Arch::X86_64).unwrap();
        assert_eq!(exe.max_align, 0x20_0000);
        assert!(exe.relocatable && exe.dynamic.is_none());
        let dynamic = [PT_DYNAMIC as u64, RW, 0x1000, BASE + 0x40, 0x20, 0x20, 8];
        let exe = parse(&build(EM_X86_64, ET_DYN, BASE, &[p, dynamic]), Arch::X86_64).unwrap();
        assert_eq!(exe.dynamic, Some((BASE + 0x40, 0x20)));
        let moved = exe.slid(0x20_0000);
        assert_eq!(moved.entry, BASE + 0x20_0000);
        assert_eq!(moved.virtual_base, BASE + 0x20_0000);
        assert_eq!(moved.segments()[0].vaddr, BASE + 0x20_0000);
        assert_eq!(moved.dynamic, Some((BASE + 0x20_0040, 0x20)));
        assert_eq!(moved.image_size, exe.image_size);
        let err = parse(
            &build(EM_X86_64, ET_DYN, BASE, &[p, dynamic, dynamic]),
            Arch::X86_64,
        );
        assert_eq!(err, Err(ElfError::SeveralDynamicSegments));
        // A fixed-address executable is not relocatable, PT_DYNAMIC or not.
        let exe = parse(
            &build(EM_X86_64, ET_EXEC, BASE, &[p, dynamic]),
            Arch::X86_64,
        )
        .unwrap();
        assert!(!exe.relocatable && exe.dynamic.is_none());
    }

    #[test]
    fn entry_must_be_in_executable_file_bytes() {
        let file = |entry| build(EM_X86_64, ET_EXEC, entry, &kernel_phdrs());
        assert!(parse(&file(BASE + 0xfff), Arch::X86_64).is_ok());
        // In the writable data segment's file bytes, then in its bss.
        let err = parse(&file(BASE + 0x1000), Arch::X86_64).unwrap_err();
        assert_eq!(
            err,
            ElfError::EntryNotExecutable {
                entry: BASE + 0x1000,
                index: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "entry point 0xffffffff80001000 is in program header 1, which is not executable"
        );
        assert_eq!(
            parse(&file(BASE + 0x2000), Arch::X86_64),
            Err(ElfError::EntryNotExecutable {
                entry: BASE + 0x2000,
                index: 1
            })
        );
        // An executable segment whose tail is bss.
        let rwx_bss = [LOAD, RX, 0x1000, BASE, 0x800, 0x2000, 0x1000];
        let exe = build(EM_X86_64, ET_EXEC, BASE + 0x900, &[rwx_bss]);
        let err = parse(&exe, Arch::X86_64).unwrap_err();
        assert_eq!(
            err,
            ElfError::EntryInBss {
                entry: BASE + 0x900,
                index: 0
            }
        );
        assert!(err.to_string().contains("zero-filled part (bss)"));
        // The Limine entry point request goes through the same check.
        let exe = parse(&file(BASE), Arch::X86_64).unwrap();
        assert!(exe.check_entry(BASE + 0x20).is_ok());
        assert!(matches!(
            exe.check_entry(BASE + 0x1800),
            Err(ElfError::EntryNotExecutable { .. })
        ));
        assert!(matches!(
            exe.check_entry(BASE + 0x9000),
            Err(ElfError::EntryOutsideSegments { .. })
        ));
    }

    #[test]
    fn offset_and_address_must_agree_modulo_the_page_size() {
        let seg = [LOAD, RX, 0x1010, BASE, 0x100, 0x100, 0x1000];
        let err = parse(&build(EM_X86_64, ET_EXEC, BASE, &[seg]), Arch::X86_64).unwrap_err();
        assert_eq!(
            err,
            ElfError::OffsetAddressMismatch {
                index: 0,
                offset: 0x1010,
                vaddr: BASE
            }
        );
        assert!(err.to_string().contains("differ modulo the page size"));
        // Same remainder, different pages: fine.
        let seg = [LOAD, RX, 0x1010, BASE + 0x5010, 0x100, 0x100, 0x1000];
        assert!(
            parse(
                &build(EM_X86_64, ET_EXEC, BASE + 0x5010, &[seg]),
                Arch::X86_64
            )
            .is_ok()
        );
    }

    #[test]
    fn too_many_segments() {
        let phdrs: Vec<[u64; 7]> = (0..17)
            .map(|i| [LOAD, RX, 0x1000, BASE + i * 0x1000, 0x10, 0x10, 0x1000])
            .collect();
        assert_eq!(
            parse(&build(EM_X86_64, ET_EXEC, BASE, &phdrs), Arch::X86_64),
            Err(ElfError::TooManySegments)
        );
    }
}
