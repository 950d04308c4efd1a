//! Placing a position-independent (`ET_DYN`) kernel: the choice of its slide and
//! the application of its relocations.
//!
//! Our kernels are static PIEs linked at `0xffffffff80000000` (see
//! `platforms/*/kernel.ld`); Limine 8.x loads such a kernel anywhere in the top
//! 2 GiB, at a slide that is a multiple of its largest segment alignment, and
//! applies its `RELA` relocations before entry. This module does the same into
//! the image buffer (the bytes of `virtual_base..virtual_base + image_size` at
//! their link address), so the kernel cannot tell which loader placed it.
//!
//! Only what a static PIE has is supported: one `DT_RELA` table of
//! `R_X86_64_RELATIVE` / `R_AARCH64_RELATIVE` entries (and `*_NONE`). Anything
//! else — `DT_REL`, `DT_RELR`, PLT relocations, symbol relocations — is refused
//! with the table, index and type named, before anything runs.
//!
//! References: System V ABI (ELF) "Dynamic Section"; x86-64 psABI 4.4
//! (`R_X86_64_RELATIVE` = 8: B + A); ELF for the Arm 64-bit Architecture 5.7.11
//! (`R_AARCH64_RELATIVE` = 1027: Delta(S) + A).

use core::fmt;

use crate::elf::{Executable, HIGHER_HALF_BASE};
use crate::{Arch, PAGE_SIZE};

/// Dynamic tag: end of the table.
pub const DT_NULL: u64 = 0;
/// Dynamic tag: size of the PLT relocations.
pub const DT_PLTRELSZ: u64 = 2;
/// Dynamic tag: address of the `RELA` table.
pub const DT_RELA: u64 = 7;
/// Dynamic tag: size of the `RELA` table in bytes.
pub const DT_RELASZ: u64 = 8;
/// Dynamic tag: size of one `RELA` entry.
pub const DT_RELAENT: u64 = 9;
/// Dynamic tag: address of a `REL` table (no addends).
pub const DT_REL: u64 = 17;
/// Dynamic tag: address of the PLT relocations.
pub const DT_JMPREL: u64 = 23;
/// Dynamic tag: address of a packed relative relocation table.
pub const DT_RELR: u64 = 36;
/// Size of an `Elf64_Rela`.
pub const RELA_SIZE: u64 = 24;
/// Size of an `Elf64_Dyn`.
const DYN_SIZE: u64 = 16;

/// `R_X86_64_RELATIVE`.
pub const R_X86_64_RELATIVE: u32 = 8;
/// `R_AARCH64_RELATIVE`.
pub const R_AARCH64_RELATIVE: u32 = 1027;
/// `R_*_NONE` (0 on both architectures): nothing to do.
pub const R_NONE: u32 = 0;

/// Why a kernel's relocations cannot be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocError {
    /// The `PT_DYNAMIC` segment is not inside the loaded image.
    DynamicOutsideImage {
        /// `p_vaddr` of `PT_DYNAMIC`.
        vaddr: u64,
        /// `p_memsz` of `PT_DYNAMIC`.
        size: u64,
    },
    /// The kernel has a kind of relocation table this loader does not apply.
    UnsupportedTable {
        /// The dynamic tag naming it.
        tag: u64,
    },
    /// `DT_RELAENT` is not 24 or `DT_RELASZ` not a multiple of it.
    BadEntrySize {
        /// `DT_RELAENT`.
        entry_size: u64,
        /// `DT_RELASZ`.
        table_size: u64,
    },
    /// The `RELA` table is not inside the loaded image.
    TableOutsideImage {
        /// `DT_RELA`.
        vaddr: u64,
        /// `DT_RELASZ`.
        size: u64,
    },
    /// A relocation of a type this loader does not apply.
    UnsupportedType {
        /// Index in the `RELA` table.
        index: u64,
        /// Its type (low 32 bits of `r_info`).
        kind: u32,
        /// The architecture, for the type's name.
        arch: Arch,
    },
    /// A relocation would write outside the loaded image.
    OffsetOutsideImage {
        /// Index in the `RELA` table.
        index: u64,
        /// `r_offset`.
        offset: u64,
    },
}

fn tag_name(tag: u64) -> &'static str {
    match tag {
        DT_REL => "DT_REL",
        DT_RELR => "DT_RELR",
        DT_JMPREL | DT_PLTRELSZ => "DT_JMPREL (PLT relocations)",
        _ => "unknown",
    }
}

/// Name of a relocation type, for messages.
#[must_use]
pub const fn type_name(arch: Arch, kind: u32) -> &'static str {
    match (arch, kind) {
        (_, R_NONE) => "NONE",
        (Arch::X86_64, 1) => "R_X86_64_64",
        (Arch::X86_64, 2) => "R_X86_64_PC32",
        (Arch::X86_64, 6) => "R_X86_64_GLOB_DAT",
        (Arch::X86_64, 7) => "R_X86_64_JUMP_SLOT",
        (Arch::X86_64, R_X86_64_RELATIVE) => "R_X86_64_RELATIVE",
        (Arch::X86_64, 37) => "R_X86_64_IRELATIVE",
        (Arch::Aarch64, 257) => "R_AARCH64_ABS64",
        (Arch::Aarch64, 1025) => "R_AARCH64_GLOB_DAT",
        (Arch::Aarch64, 1026) => "R_AARCH64_JUMP_SLOT",
        (Arch::Aarch64, R_AARCH64_RELATIVE) => "R_AARCH64_RELATIVE",
        (Arch::Aarch64, 1032) => "R_AARCH64_IRELATIVE",
        _ => "unknown",
    }
}

const fn relative_type(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => R_X86_64_RELATIVE,
        Arch::Aarch64 => R_AARCH64_RELATIVE,
    }
}

impl fmt::Display for RelocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::DynamicOutsideImage { vaddr, size } => write!(
                f,
                "PT_DYNAMIC ({size:#x} bytes at {vaddr:#x}) is not inside the loaded segments"
            ),
            Self::UnsupportedTable { tag } => write!(
                f,
                "dynamic tag {tag} ({}) names relocations this loader does not apply; \
                 link a static PIE with RELA relocations only",
                tag_name(tag)
            ),
            Self::BadEntrySize {
                entry_size,
                table_size,
            } => write!(
                f,
                "DT_RELAENT is {entry_size} and DT_RELASZ {table_size}: entries must be \
                 {RELA_SIZE} bytes and the table a whole number of them"
            ),
            Self::TableOutsideImage { vaddr, size } => write!(
                f,
                "the RELA table ({size:#x} bytes at {vaddr:#x}) is not inside the loaded \
                 segments"
            ),
            Self::UnsupportedType { index, kind, arch } => write!(
                f,
                "relocation {index} has type {kind} ({}); only {} is supported",
                type_name(arch, kind),
                type_name(arch, relative_type(arch))
            ),
            Self::OffsetOutsideImage { index, offset } => write!(
                f,
                "relocation {index} writes at {offset:#x}, outside the loaded segments"
            ),
        }
    }
}

fn u64_at(image: &[u8], at: u64) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    let bytes = image.get(at..at.checked_add(8)?)?;
    let mut v = [0u8; 8];
    v.copy_from_slice(bytes);
    Some(u64::from_le_bytes(v))
}

/// Offset in the image of `len` bytes at link-time address `vaddr`, if they
/// lie inside it.
fn image_offset(image: &[u8], link_base: u64, vaddr: u64, len: u64) -> Option<u64> {
    let offset = vaddr.checked_sub(link_base)?;
    (offset.checked_add(len)? <= image.len() as u64).then_some(offset)
}

/// The `RELA` table of the kernel: `(image offset, entries)`.
fn rela_table(image: &[u8], link_base: u64, dynamic: (u64, u64)) -> Result<(u64, u64), RelocError> {
    let (vaddr, size) = dynamic;
    let outside = RelocError::DynamicOutsideImage { vaddr, size };
    let start = image_offset(image, link_base, vaddr, size).ok_or(outside)?;
    let (mut rela, mut rela_size, mut entry_size) = (None, 0, RELA_SIZE);
    for i in 0..size / DYN_SIZE {
        let at = start + i * DYN_SIZE;
        let (Some(tag), Some(value)) = (u64_at(image, at), u64_at(image, at + 8)) else {
            return Err(outside);
        };
        match tag {
            DT_NULL => break,
            DT_RELA => rela = Some(value),
            DT_RELASZ => rela_size = value,
            DT_RELAENT => entry_size = value,
            DT_REL | DT_RELR | DT_JMPREL => return Err(RelocError::UnsupportedTable { tag }),
            DT_PLTRELSZ if value != 0 => return Err(RelocError::UnsupportedTable { tag }),
            _ => {}
        }
    }
    if entry_size != RELA_SIZE || rela_size % RELA_SIZE != 0 {
        return Err(RelocError::BadEntrySize {
            entry_size,
            table_size: rela_size,
        });
    }
    let Some(rela) = rela else {
        return Ok((0, 0));
    };
    let offset =
        image_offset(image, link_base, rela, rela_size).ok_or(RelocError::TableOutsideImage {
            vaddr: rela,
            size: rela_size,
        })?;
    Ok((offset, rela_size / RELA_SIZE))
}

/// Applies the relocations of `exe` (as parsed, at its link address) to
/// `image` (loaded with [`Executable::load_into`]) for a kernel placed `slide`
/// bytes above its link address; returns how many were applied.
///
/// Every entry is checked before the first is applied, so a refused kernel
/// leaves the image unchanged. Nothing is done for a file that is not `ET_DYN`
/// or has no `PT_DYNAMIC`.
///
/// # Errors
///
/// See [`RelocError`].
pub fn apply(
    exe: &Executable,
    image: &mut [u8],
    arch: Arch,
    slide: u64,
) -> Result<u64, RelocError> {
    let (Some(dynamic), true) = (exe.dynamic, exe.relocatable) else {
        return Ok(0);
    };
    let image_len = image
        .len()
        .min(usize::try_from(exe.image_size).unwrap_or(usize::MAX));
    let image = &mut image[..image_len];
    let link_base = exe.virtual_base;
    let (table, count) = rela_table(image, link_base, dynamic)?;
    let entry = |image: &[u8], index: u64| {
        let at = table + index * RELA_SIZE;
        // In bounds: the table was checked to lie inside the image.
        let word = |k: u64| u64_at(image, at + 8 * k).unwrap_or(0);
        (word(0), word(1) as u32, word(2))
    };
    for index in 0..count {
        let (offset, kind, _) = entry(image, index);
        if kind == R_NONE {
            continue;
        }
        if kind != relative_type(arch) {
            return Err(RelocError::UnsupportedType { index, kind, arch });
        }
        if image_offset(image, link_base, offset, 8).is_none() {
            return Err(RelocError::OffsetOutsideImage { index, offset });
        }
    }
    let mut applied = 0;
    for index in 0..count {
        let (offset, kind, addend) = entry(image, index);
        if kind == R_NONE {
            continue;
        }
        // Checked above; a relocation that rewrote a later entry of the table
        // (a hostile file) is caught here instead of writing out of bounds.
        let Some(at) = image_offset(image, link_base, offset, 8) else {
            return Err(RelocError::OffsetOutsideImage { index, offset });
        };
        let at = at as usize;
        image[at..at + 8].copy_from_slice(&addend.wrapping_add(slide).to_le_bytes());
        applied += 1;
    }
    Ok(applied)
}

/// Highest slide that keeps `exe` inside the top 2 GiB, where the Limine
/// protocol loads kernels (0 for a kernel that is not relocatable).
#[must_use]
pub fn max_slide(exe: &Executable) -> u64 {
    if !exe.relocatable || exe.virtual_base < HIGHER_HALF_BASE {
        return 0;
    }
    // The last byte of the image: validation keeps it below 2^64.
    let last = exe
        .virtual_base
        .saturating_add(exe.image_size.saturating_sub(1));
    u64::MAX - last
}

/// The slide for `exe` from 64 random bits: a multiple of its largest segment
/// alignment (so large pages and the physical alignment still line up), at
/// most [`max_slide`], uniformly over the possible values (up to the
/// generator's modulo bias). 0 when the kernel is not relocatable.
#[must_use]
pub fn choose_slide(exe: &Executable, random: u64) -> u64 {
    let align = exe.max_align.max(PAGE_SIZE);
    let slots = max_slide(exe) / align + 1;
    (random % slots) * align
}

/// Spreads the bits of a counter reading over all 64 bits (SplitMix64's
/// finaliser), so its fast-changing low bits pick the slide.
#[must_use]
pub const fn scramble(counter: u64) -> u64 {
    let mut z = counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether the kernel command line asks for a fixed kernel address: the word
/// `nokaslr` (as Linux spells it; Limine's `limine.conf` says `kaslr: no`).
#[must_use]
pub fn kaslr_disabled(cmdline: &[u8]) -> bool {
    cmdline
        .split(|b| b.is_ascii_whitespace())
        .any(|word| word == b"nokaslr")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{self, ET_DYN, ET_EXEC, PF_R, PF_W, PF_X, PT_DYNAMIC, PT_LOAD};

    const BASE: u64 = HIGHER_HALF_BASE;

    /// A PIE: text at BASE (file 0x1000), data at BASE + 0x1000 (file 0x2000)
    /// holding the dynamic table at +0x0 and the RELA table at +0x100.
    fn pie(machine: u16, dynamic: &[(u64, u64)], relas: &[(u64, u64, u64)]) -> Vec<u8> {
        let rx = u64::from(PF_R | PF_X);
        let rw = u64::from(PF_R | PF_W);
        let phdrs = [
            [u64::from(PT_LOAD), rx, 0x1000, BASE, 0x1000, 0x1000, 0x1000],
            [
                u64::from(PT_LOAD),
                rw,
                0x2000,
                BASE + 0x1000,
                0x1000,
                0x2000,
                0x1000,
            ],
            [
                u64::from(PT_DYNAMIC),
                rw,
                0x2000,
                BASE + 0x1000,
                0x100,
                0x100,
                8,
            ],
        ];
        let mut f = vec![0u8; 0x3000];
        elf::write_headers(&mut f, machine, ET_DYN, BASE + 0x10, &phdrs);
        for (i, (tag, value)) in dynamic.iter().enumerate() {
            let o = 0x2000 + 16 * i;
            f[o..o + 8].copy_from_slice(&tag.to_le_bytes());
            f[o + 8..o + 16].copy_from_slice(&value.to_le_bytes());
        }
        for (i, (offset, kind, addend)) in relas.iter().enumerate() {
            let o = 0x2100 + 24 * i;
            f[o..o + 8].copy_from_slice(&offset.to_le_bytes());
            f[o + 8..o + 16].copy_from_slice(&kind.to_le_bytes());
            f[o + 16..o + 24].copy_from_slice(&addend.to_le_bytes());
        }
        f
    }

    fn table(n: u64) -> [(u64, u64); 4] {
        [
            (DT_RELA, BASE + 0x1100),
            (DT_RELASZ, n * RELA_SIZE),
            (DT_RELAENT, RELA_SIZE),
            (DT_NULL, 0),
        ]
    }

    fn load(file: &[u8], arch: Arch, slide: u64) -> (Result<u64, RelocError>, Vec<u8>) {
        let exe = elf::parse(file, arch).unwrap();
        let mut image = vec![0u8; exe.image_size as usize];
        exe.load_into(file, &mut image).unwrap();
        (apply(&exe, &mut image, arch, slide), image)
    }

    fn word(image: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn relative_relocations_add_the_slide_on_both_architectures() {
        for (arch, machine, kind) in [
            (Arch::X86_64, elf::EM_X86_64, R_X86_64_RELATIVE),
            (Arch::Aarch64, elf::EM_AARCH64, R_AARCH64_RELATIVE),
        ] {
            let relas = [
                (BASE + 0x1800, u64::from(kind), BASE + 0x10),
                (BASE + 0x1808, 0, 0),                           // NONE
                (BASE + 0x1811, u64::from(kind), BASE + 0x1800), // unaligned
            ];
            let file = pie(machine, &table(3), &relas);
            for slide in [0, 0x20_0000, 0x7fe0_0000] {
                let (applied, image) = load(&file, arch, slide);
                assert_eq!(applied, Ok(2));
                assert_eq!(word(&image, 0x1800), BASE + 0x10 + slide);
                assert_eq!(word(&image, 0x1808), 0);
                assert_eq!(word(&image, 0x1811), BASE + 0x1800 + slide);
            }
        }
    }

    #[test]
    fn nothing_to_do_without_dynamic_or_for_et_exec() {
        let mut file = pie(elf::EM_X86_64, &table(1), &[(BASE + 0x1800, 8, 5)]);
        file[16] = ET_EXEC as u8;
        let (applied, image) = load(&file, Arch::X86_64, 0x1000);
        assert_eq!(applied, Ok(0));
        assert_eq!(word(&image, 0x1800), 0);
        // No RELA entry in the dynamic table: nothing to apply.
        let file = pie(elf::EM_X86_64, &[(DT_NULL, 0)], &[]);
        assert_eq!(load(&file, Arch::X86_64, 0x1000).0, Ok(0));
    }

    #[test]
    fn unsupported_types_and_tables_are_named() {
        let file = pie(
            elf::EM_X86_64,
            &table(2),
            &[(BASE + 0x1800, 8, 1), (BASE + 0x1808, (5 << 32) | 1, 0)],
        );
        let (err, image) = load(&file, Arch::X86_64, 0x1000);
        let err = err.unwrap_err();
        assert_eq!(
            err,
            RelocError::UnsupportedType {
                index: 1,
                kind: 1,
                arch: Arch::X86_64
            }
        );
        assert_eq!(
            err.to_string(),
            "relocation 1 has type 1 (R_X86_64_64); only R_X86_64_RELATIVE is supported"
        );
        // Checked before anything is written.
        assert_eq!(word(&image, 0x1800), 0);
        let file = pie(elf::EM_AARCH64, &table(1), &[(BASE + 0x1800, 257, 0)]);
        assert!(
            load(&file, Arch::Aarch64, 0)
                .0
                .unwrap_err()
                .to_string()
                .contains("type 257 (R_AARCH64_ABS64); only R_AARCH64_RELATIVE")
        );
        for tag in [DT_REL, DT_RELR, DT_JMPREL] {
            let file = pie(elf::EM_X86_64, &[(tag, BASE), (DT_NULL, 0)], &[]);
            let err = load(&file, Arch::X86_64, 0).0.unwrap_err();
            assert_eq!(err, RelocError::UnsupportedTable { tag });
            assert!(err.to_string().contains(tag_name(tag)));
        }
    }

    #[test]
    fn sizes_and_addresses_are_checked() {
        let mut dynamic = table(1);
        dynamic[2].1 = 16;
        let file = pie(elf::EM_X86_64, &dynamic, &[(BASE + 0x1800, 8, 0)]);
        assert_eq!(
            load(&file, Arch::X86_64, 0).0,
            Err(RelocError::BadEntrySize {
                entry_size: 16,
                table_size: 24
            })
        );
        let mut dynamic = table(1);
        dynamic[1].1 = 25;
        let file = pie(elf::EM_X86_64, &dynamic, &[]);
        assert!(matches!(
            load(&file, Arch::X86_64, 0).0,
            Err(RelocError::BadEntrySize { .. })
        ));
        let mut dynamic = table(1);
        dynamic[0].1 = BASE + 0x2ff0;
        let file = pie(elf::EM_X86_64, &dynamic, &[]);
        assert!(matches!(
            load(&file, Arch::X86_64, 0).0,
            Err(RelocError::TableOutsideImage { .. })
        ));
        for offset in [BASE + 0x2ff9, BASE - 8, u64::MAX - 3, 0] {
            let file = pie(elf::EM_X86_64, &table(1), &[(offset, 8, 0)]);
            assert_eq!(
                load(&file, Arch::X86_64, 0).0,
                Err(RelocError::OffsetOutsideImage { index: 0, offset })
            );
        }
        // PT_DYNAMIC pointing outside the image.
        let mut file = pie(elf::EM_X86_64, &table(0), &[]);
        let ph = 64 + 2 * 56;
        file[ph + 16..ph + 24].copy_from_slice(&(BASE + 0x5000).to_le_bytes());
        assert!(matches!(
            load(&file, Arch::X86_64, 0).0,
            Err(RelocError::DynamicOutsideImage { .. })
        ));
    }

    #[test]
    fn nokaslr_is_a_whole_word() {
        assert!(kaslr_disabled(b"nokaslr"));
        assert!(kaslr_disabled(b"exit=qemu nokaslr test=panic"));
        assert!(!kaslr_disabled(b""));
        assert!(!kaslr_disabled(b"nokaslrx kaslr=nokaslr"));
        assert_ne!(scramble(1) & 0xffff_0000, scramble(2) & 0xffff_0000);
    }

    #[test]
    fn slides_stay_in_the_top_2_gib_and_keep_the_alignment() {
        let file = pie(elf::EM_X86_64, &table(0), &[]);
        let exe = elf::parse(&file, Arch::X86_64).unwrap();
        assert_eq!(exe.image_size, 0x3000);
        assert_eq!(max_slide(&exe), 0x8000_0000 - 0x3000);
        for random in [0, 1, 0x1234_5678_9abc, u64::MAX, u64::MAX / 3] {
            let slide = choose_slide(&exe, random);
            assert_eq!(slide % exe.max_align, 0);
            assert!(slide <= max_slide(&exe));
            let moved = exe.slid(slide);
            assert!(moved.virtual_base >= HIGHER_HALF_BASE);
            assert!(
                moved
                    .virtual_base
                    .checked_add(moved.image_size - 1)
                    .is_some()
            );
        }
        assert_eq!(choose_slide(&exe, 0), 0);
        assert_eq!(
            choose_slide(&exe, (0x8000_0000 - 0x3000) / 0x1000),
            0x7fff_d000
        );
        // Different random inputs give different slides.
        assert_ne!(choose_slide(&exe, 5), choose_slide(&exe, 6));
        let mut fixed = file.clone();
        fixed[16] = ET_EXEC as u8;
        let exe = elf::parse(&fixed, Arch::X86_64).unwrap();
        assert_eq!(choose_slide(&exe, 12345), 0);
    }
}
