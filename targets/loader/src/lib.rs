//! Pure parts of the Stratus UEFI loader.
//!
//! The loader (`src/main.rs`, a UEFI application) implements the part of the
//! [Limine boot protocol] our kernels use. Everything that can be computed without
//! touching firmware or hardware lives here, in safe `no_std` code that is tested on
//! the host:
//!
//! - [`elf`]: ELF64 executable validation and loading into a buffer.
//! - [`reloc`]: the slide of a position-independent kernel and its relocations.
//! - [`requests`]: request/base-revision scanning exactly as Limine 8.x does it.
//! - [`responses`]: byte-exact layouts of the responses, written into a bump arena.
//! - [`memory_map`]: UEFI memory descriptors to Limine memory map entries.
//! - [`paging`]: x86_64 and aarch64 page-table building into caller-provided frames,
//!   and the plan of mappings Limine sets up for each base revision.
//! - [`fdt`]: removal of `memory@` nodes from a device tree blob.
//! - [`date`]: UEFI calendar time to a UNIX timestamp.
//! - [`pages`]: page counts of aligned allocation requests.
//! - [`acpi`]: the I/O APICs listed in the MADT (to mask them on x86_64).
//!
//! [Limine boot protocol]: https://github.com/limine-bootloader/limine/blob/v8.x/PROTOCOL.md
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod acpi;
pub mod date;
pub mod elf;
pub mod fdt;
pub mod memory_map;
pub mod pages;
pub mod paging;
pub mod reloc;
pub mod requests;
pub mod responses;

/// Size of a small page and of the unit UEFI allocates in.
pub const PAGE_SIZE: u64 = 0x1000;

/// Highest base revision this loader implements (Limine 9.x's base revision 3).
///
/// A kernel asking for more is loaded with this revision, the 3rd word of its tag is
/// left unchanged and the 2nd word says which revision was used, as the protocol asks
/// of any loader supporting base revision 3.
pub const MAX_BASE_REVISION: u64 = 3;

/// Rounds `value` down to a multiple of `align` (a power of two).
#[must_use]
pub const fn align_down(value: u64, align: u64) -> u64 {
    value & !(align - 1)
}

/// Rounds `value` up to a multiple of `align` (a power of two); `None` on overflow.
#[must_use]
pub const fn align_up(value: u64, align: u64) -> Option<u64> {
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// The CPU architecture a kernel is built for and the loader runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86_64 with 4-level paging.
    X86_64,
    /// AArch64 with a 4 KiB granule and 48-bit virtual addresses.
    Aarch64,
}

impl Arch {
    /// The architecture this code was compiled for (x86_64 on anything that is not
    /// aarch64, so host tests have a value).
    #[must_use]
    pub const fn native() -> Self {
        if cfg!(target_arch = "aarch64") {
            Self::Aarch64
        } else {
            Self::X86_64
        }
    }

    /// Name used in the kernel's file name: `\boot\kernel-<name>`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }

    /// Start of the higher half direct map under 4-level paging, as Limine 8.x
    /// chooses it when it does not randomise it (it randomises it only for a
    /// relocatable kernel that makes a paging-mode request, which ours do not).
    #[must_use]
    pub const fn hhdm_offset(self) -> u64 {
        match self {
            Self::X86_64 => 0xffff_8000_0000_0000,
            Self::Aarch64 => 0xffff_0000_0000_0000,
        }
    }

    /// Virtual address bits Limine counts for the paging mode (`paging_mode_va_bits`).
    ///
    /// Limine refuses to boot when the top of the HHDM reaches `1 << (bits - 2)`.
    #[must_use]
    pub const fn va_bits(self) -> u32 {
        match self {
            Self::X86_64 => 48,
            Self::Aarch64 => 49,
        }
    }
}

/// Largest command-line file (`\boot\stratus.cmdline`) the loader reads; a larger
/// one stops the boot with a message. Below this there is no limit: the first line
/// is handed over whole (Limine has none either), never cut.
pub const MAX_CMDLINE_FILE: usize = 1 << 20;

/// The kernel command line from the contents of the command-line file: its first
/// line, without the line ending, cut at the first NUL (it is handed over as a C
/// string); empty when the file is empty. Any length is kept.
#[must_use]
pub fn command_line(raw: &[u8]) -> &[u8] {
    let end = raw
        .iter()
        .position(|&b| b == b'\n' || b == b'\r' || b == 0)
        .unwrap_or(raw.len());
    &raw[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_the_first_line() {
        assert_eq!(command_line(b""), b"");
        assert_eq!(command_line(b"fault=pagefault\n"), b"fault=pagefault");
        assert_eq!(command_line(b"a b\r\nsecond line\n"), b"a b");
        assert_eq!(command_line(b"x\0y"), b"x");
        // A switch after byte 4096 is kept (it used to be cut there).
        let mut long = vec![b'z'; 5000];
        long.extend_from_slice(b" exit=qemu\n");
        assert_eq!(command_line(&long), &long[..long.len() - 1]);
        assert!(command_line(&long).ends_with(b" exit=qemu"));
    }

    #[test]
    fn alignment_helpers() {
        assert_eq!(align_down(0x1fff, PAGE_SIZE), 0x1000);
        assert_eq!(align_up(0x1001, PAGE_SIZE), Some(0x2000));
        assert_eq!(align_up(u64::MAX, PAGE_SIZE), None);
        assert_eq!(Arch::X86_64.name(), "x86_64");
        assert_eq!(Arch::Aarch64.hhdm_offset(), 0xffff_0000_0000_0000);
    }
}
