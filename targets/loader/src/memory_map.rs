//! UEFI memory map to Limine memory map.
//!
//! Mirrors what Limine 8.x does on UEFI (`init_memmap`, `pmm_reclaim_uefi_mem`,
//! `sanitise_entries` in `common/mm/pmm.s2.c`):
//!
//! | UEFI type                                   | Limine type            |
//! |---------------------------------------------|------------------------|
//! | Conventional, BootServicesCode/Data         | usable                 |
//! | LoaderCode/Data, our reclaimable type       | bootloader reclaimable |
//! | our executable type                         | executable and modules |
//! | ACPIReclaimMemory                           | ACPI reclaimable       |
//! | ACPIMemoryNVS                               | ACPI NVS               |
//! | anything else (runtime, MMIO, unusable, …)  | reserved               |
//!
//! (Limine's own image and allocations are bootloader reclaimable, everything it
//! had borrowed from boot services memory is given back as usable.) The GOP
//! framebuffer is carved out of whatever it overlaps and added as a framebuffer
//! entry. Then: usable entries lose any part another entry covers, are shrunk to
//! 4 KiB boundaries and (base revisions 0 to 2) never include the first page;
//! entries are sorted by base; adjacent usable and adjacent bootloader-reclaimable
//! entries are merged. Other types are neither aligned nor merged, as in Limine.

use core::fmt;

use crate::PAGE_SIZE;

/// Limine memory map entry types (`LIMINE_MEMMAP_*`).
pub mod kind {
    /// Free RAM.
    pub const USABLE: u64 = 0;
    /// Not to be touched.
    pub const RESERVED: u64 = 1;
    /// ACPI tables, reclaimable once parsed.
    pub const ACPI_RECLAIMABLE: u64 = 2;
    /// ACPI non-volatile storage.
    pub const ACPI_NVS: u64 = 3;
    /// Defective RAM.
    pub const BAD_MEMORY: u64 = 4;
    /// Bootloader data the kernel receives (responses, page tables, stack).
    pub const BOOTLOADER_RECLAIMABLE: u64 = 5;
    /// The loaded kernel and its file.
    pub const EXECUTABLE_AND_MODULES: u64 = 6;
    /// A framebuffer.
    pub const FRAMEBUFFER: u64 = 7;
}

/// UEFI memory types (UEFI 2.10, 7.2.1, `EFI_MEMORY_TYPE`).
pub mod efi {
    /// `EfiReservedMemoryType`.
    pub const RESERVED: u32 = 0;
    /// `EfiLoaderCode`.
    pub const LOADER_CODE: u32 = 1;
    /// `EfiLoaderData`.
    pub const LOADER_DATA: u32 = 2;
    /// `EfiBootServicesCode`.
    pub const BOOT_SERVICES_CODE: u32 = 3;
    /// `EfiBootServicesData`.
    pub const BOOT_SERVICES_DATA: u32 = 4;
    /// `EfiRuntimeServicesCode`.
    pub const RUNTIME_SERVICES_CODE: u32 = 5;
    /// `EfiRuntimeServicesData`.
    pub const RUNTIME_SERVICES_DATA: u32 = 6;
    /// `EfiConventionalMemory`.
    pub const CONVENTIONAL: u32 = 7;
    /// `EfiUnusableMemory`.
    pub const UNUSABLE: u32 = 8;
    /// `EfiACPIReclaimMemory`.
    pub const ACPI_RECLAIM: u32 = 9;
    /// `EfiACPIMemoryNVS`.
    pub const ACPI_NVS: u32 = 10;
    /// `EfiMemoryMappedIO`.
    pub const MMIO: u32 = 11;
    /// `EfiMemoryMappedIOPortSpace`.
    pub const MMIO_PORT_SPACE: u32 = 12;
}

/// Memory type (OS-loader range) of the loader's own allocations that the kernel
/// receives: responses, page tables, stack, GDT.
pub const LOADER_RECLAIMABLE_TYPE: u32 = 0x8000_5301;
/// Memory type (OS-loader range) of the loaded kernel image and kernel file.
pub const LOADER_EXECUTABLE_TYPE: u32 = 0x8000_5302;

/// One UEFI memory descriptor, reduced to what the translation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EfiRegion {
    /// `Type`.
    pub ty: u32,
    /// `PhysicalStart`.
    pub base: u64,
    /// `NumberOfPages` (4 KiB each).
    pub pages: u64,
}

/// One Limine memory map entry (`struct limine_memmap_entry`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Entry {
    /// Physical base.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// One of [`kind`].
    pub kind: u64,
}

impl Entry {
    /// End (exclusive); saturates instead of wrapping.
    #[must_use]
    pub const fn top(&self) -> u64 {
        self.base.saturating_add(self.length)
    }
}

/// The output buffer is too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapFull {
    /// Capacity of the buffer.
    pub capacity: usize,
}

impl fmt::Display for MapFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory map has more than {} entries", self.capacity)
    }
}

/// Limine type for a UEFI memory type.
#[must_use]
pub const fn classify(ty: u32) -> u64 {
    match ty {
        efi::CONVENTIONAL | efi::BOOT_SERVICES_CODE | efi::BOOT_SERVICES_DATA => kind::USABLE,
        efi::LOADER_CODE | efi::LOADER_DATA | LOADER_RECLAIMABLE_TYPE => {
            kind::BOOTLOADER_RECLAIMABLE
        }
        LOADER_EXECUTABLE_TYPE => kind::EXECUTABLE_AND_MODULES,
        efi::ACPI_RECLAIM => kind::ACPI_RECLAIMABLE,
        efi::ACPI_NVS => kind::ACPI_NVS,
        _ => kind::RESERVED,
    }
}

/// Whether a UEFI region is memory-mapped I/O (mapped as device memory on aarch64).
#[must_use]
pub const fn is_mmio(ty: u32) -> bool {
    matches!(ty, efi::MMIO | efi::MMIO_PORT_SPACE)
}

/// Options of the translation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Physical base and size of the framebuffer, if there is one.
    pub framebuffer: Option<(u64, u64)>,
    /// Whether page 0 may be reported usable (base revision 3 and later).
    pub keep_first_page: bool,
}

struct List<'a> {
    e: &'a mut [Entry],
    n: usize,
}

impl List<'_> {
    fn push(&mut self, entry: Entry) -> Result<(), MapFull> {
        let capacity = self.e.len();
        let slot = self.e.get_mut(self.n).ok_or(MapFull { capacity })?;
        *slot = entry;
        self.n += 1;
        Ok(())
    }

    fn remove(&mut self, i: usize) {
        self.e.copy_within(i + 1..self.n, i);
        self.n -= 1;
    }
}

/// Translates `regions` into `out`; returns how many entries were written.
///
/// # Errors
///
/// [`MapFull`] if `out` cannot hold the result (the framebuffer and splits can add
/// a few entries over the number of regions).
pub fn translate(
    regions: impl IntoIterator<Item = EfiRegion>,
    options: Options,
    out: &mut [Entry],
) -> Result<usize, MapFull> {
    let mut list = List { e: out, n: 0 };
    for r in regions {
        if r.pages == 0 {
            continue;
        }
        let length = r.pages.saturating_mul(PAGE_SIZE).min(u64::MAX - r.base);
        list.push(Entry {
            base: r.base,
            length,
            kind: classify(r.ty),
        })?;
    }

    if let Some((base, size)) = options.framebuffer
        && size > 0
    {
        carve(&mut list, base, base.saturating_add(size))?;
        list.push(Entry {
            base,
            length: size,
            kind: kind::FRAMEBUFFER,
        })?;
    }

    sanitise_usable(&mut list, options.keep_first_page)?;

    // Stable insertion sort by base.
    for i in 1..list.n {
        let mut j = i;
        while j > 0 && list.e[j - 1].base > list.e[j].base {
            list.e.swap(j - 1, j);
            j -= 1;
        }
    }

    // Merge contiguous usable and bootloader-reclaimable entries.
    let mut i = 0;
    while i + 1 < list.n {
        let (a, b) = (list.e[i], list.e[i + 1]);
        let mergeable = a.kind == kind::USABLE || a.kind == kind::BOOTLOADER_RECLAIMABLE;
        if mergeable && b.kind == a.kind && b.base == a.top() {
            list.e[i].length += b.length;
            list.remove(i + 1);
        } else {
            i += 1;
        }
    }
    Ok(list.n)
}

/// Removes `[base, top)` from every entry (Limine's `pmm_new_entry`).
fn carve(list: &mut List<'_>, base: u64, top: u64) -> Result<(), MapFull> {
    let mut i = 0;
    while i < list.n {
        let e = list.e[i];
        let (eb, et) = (e.base, e.top());
        if base <= eb && top >= et {
            list.remove(i);
            continue;
        }
        if base <= eb && top > eb && top < et {
            list.e[i].base = top;
            list.e[i].length = et - top;
        } else if base > eb && base < et && top >= et {
            list.e[i].length = base - eb;
        } else if base > eb && top < et {
            list.e[i].length = base - eb;
            list.push(Entry {
                base: top,
                length: et - top,
                kind: e.kind,
            })?;
        }
        i += 1;
    }
    Ok(())
}

/// Makes usable entries disjoint from all others, page aligned, and (unless
/// `keep_first_page`) free of page 0.
fn sanitise_usable(list: &mut List<'_>, keep_first_page: bool) -> Result<(), MapFull> {
    let mut i = 0;
    'entries: while i < list.n {
        if list.e[i].kind != kind::USABLE {
            i += 1;
            continue;
        }
        let mut j = 0;
        while j < list.n {
            if j != i {
                let (base, top) = (list.e[i].base, list.e[i].top());
                let (rb, rt) = (list.e[j].base, list.e[j].top());
                if rb < top && rt > base {
                    if rb > base && rt < top {
                        // Nested: keep the head here, the tail as a new entry
                        // (which is checked in turn).
                        list.e[i].length = rb - base;
                        list.push(Entry {
                            base: rt,
                            length: top - rt,
                            kind: kind::USABLE,
                        })?;
                    } else if rb <= base && rt >= top {
                        list.remove(i);
                        continue 'entries;
                    } else if rb <= base {
                        list.e[i].base = rt;
                        list.e[i].length = top - rt;
                    } else {
                        list.e[i].length = rb - base;
                    }
                }
            }
            j += 1;
        }
        let e = &mut list.e[i];
        let mut base = crate::align_up(e.base, PAGE_SIZE).unwrap_or(u64::MAX);
        let top = crate::align_down(e.top(), PAGE_SIZE);
        if !keep_first_page && base < PAGE_SIZE {
            base = PAGE_SIZE;
        }
        if top <= base {
            list.remove(i);
            continue;
        }
        e.base = base;
        e.length = top - base;
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ty: u32, base: u64, pages: u64) -> EfiRegion {
        EfiRegion { ty, base, pages }
    }

    fn e(base: u64, length: u64, kind: u64) -> Entry {
        Entry { base, length, kind }
    }

    fn run(regions: &[EfiRegion], options: Options) -> Vec<Entry> {
        let mut out = vec![Entry::default(); 64];
        let n = translate(regions.iter().copied(), options, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn classifies_like_limine() {
        assert_eq!(classify(efi::CONVENTIONAL), kind::USABLE);
        assert_eq!(classify(efi::BOOT_SERVICES_CODE), kind::USABLE);
        assert_eq!(classify(efi::BOOT_SERVICES_DATA), kind::USABLE);
        assert_eq!(classify(efi::LOADER_CODE), kind::BOOTLOADER_RECLAIMABLE);
        assert_eq!(classify(efi::LOADER_DATA), kind::BOOTLOADER_RECLAIMABLE);
        assert_eq!(
            classify(LOADER_RECLAIMABLE_TYPE),
            kind::BOOTLOADER_RECLAIMABLE
        );
        assert_eq!(
            classify(LOADER_EXECUTABLE_TYPE),
            kind::EXECUTABLE_AND_MODULES
        );
        assert_eq!(classify(efi::ACPI_RECLAIM), kind::ACPI_RECLAIMABLE);
        assert_eq!(classify(efi::ACPI_NVS), kind::ACPI_NVS);
        for ty in [
            efi::RESERVED,
            efi::RUNTIME_SERVICES_CODE,
            efi::RUNTIME_SERVICES_DATA,
            efi::UNUSABLE,
            efi::MMIO,
            efi::MMIO_PORT_SPACE,
            13,
            14,
            0x7000_0000,
        ] {
            assert_eq!(classify(ty), kind::RESERVED, "type {ty}");
        }
        assert!(is_mmio(efi::MMIO) && is_mmio(efi::MMIO_PORT_SPACE));
        assert!(!is_mmio(efi::RESERVED));
    }

    #[test]
    fn merges_sorts_and_drops_page_zero() {
        let map = [
            r(efi::BOOT_SERVICES_DATA, 0x10_0000, 0x10),
            r(efi::CONVENTIONAL, 0, 0xa0),
            r(efi::CONVENTIONAL, 0x11_0000, 0x20),
            r(efi::LOADER_CODE, 0x13_0000, 0x10),
            r(LOADER_RECLAIMABLE_TYPE, 0x14_0000, 0x10),
            r(efi::RUNTIME_SERVICES_DATA, 0x15_0000, 1),
            r(efi::RUNTIME_SERVICES_CODE, 0x15_1000, 1),
            r(efi::ACPI_RECLAIM, 0x15_2000, 2),
            r(LOADER_EXECUTABLE_TYPE, 0x20_0000, 4),
            r(efi::CONVENTIONAL, 0x20_4000, 0),
        ];
        let out = run(&map, Options::default());
        assert_eq!(
            out,
            vec![
                e(0x1000, 0x9f000, kind::USABLE),
                e(0x10_0000, 0x30000, kind::USABLE),
                e(0x13_0000, 0x20000, kind::BOOTLOADER_RECLAIMABLE),
                // Reserved entries are not merged (as in Limine).
                e(0x15_0000, 0x1000, kind::RESERVED),
                e(0x15_1000, 0x1000, kind::RESERVED),
                e(0x15_2000, 0x2000, kind::ACPI_RECLAIMABLE),
                e(0x20_0000, 0x4000, kind::EXECUTABLE_AND_MODULES),
            ]
        );
        // Base revision 3 may report page 0 as usable.
        let out = run(
            &map,
            Options {
                keep_first_page: true,
                ..Options::default()
            },
        );
        assert_eq!(out[0], e(0, 0xa0000, kind::USABLE));
    }

    #[test]
    fn framebuffer_is_carved_out() {
        // Framebuffer in the middle of usable RAM, not page-sized.
        let map = [r(efi::CONVENTIONAL, 0x10_0000, 0x100)];
        let out = run(
            &map,
            Options {
                framebuffer: Some((0x10_8000, 0x1800)),
                keep_first_page: false,
            },
        );
        assert_eq!(
            out,
            vec![
                e(0x10_0000, 0x8000, kind::USABLE),
                e(0x10_8000, 0x1800, kind::FRAMEBUFFER),
                // Usable restarts at the next page boundary.
                e(0x10_a000, 0xf6000, kind::USABLE),
            ]
        );
        // Framebuffer outside RAM (a PCI BAR): just added.
        let out = run(
            &map,
            Options {
                framebuffer: Some((0x8000_0000, 0x30_0000)),
                keep_first_page: false,
            },
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], e(0x8000_0000, 0x30_0000, kind::FRAMEBUFFER));
        // Framebuffer covering a whole entry and part of the next.
        let map = [
            r(efi::MMIO, 0x8000_0000, 0x10),
            r(efi::CONVENTIONAL, 0x8001_0000, 0x10),
        ];
        let out = run(
            &map,
            Options {
                framebuffer: Some((0x8000_0000, 0x1_8000)),
                keep_first_page: false,
            },
        );
        assert_eq!(
            out,
            vec![
                e(0x8000_0000, 0x1_8000, kind::FRAMEBUFFER),
                e(0x8001_8000, 0x8000, kind::USABLE),
            ]
        );
    }

    #[test]
    fn usable_never_overlaps_other_entries() {
        // A reserved range inside and one straddling the end of a usable one.
        let map = [
            r(efi::CONVENTIONAL, 0x10_0000, 0x100),
            r(efi::RESERVED, 0x14_0000, 0x10),
            r(efi::ACPI_NVS, 0x1f_f000, 2),
        ];
        let out = run(&map, Options::default());
        assert_eq!(
            out,
            vec![
                e(0x10_0000, 0x4_0000, kind::USABLE),
                e(0x14_0000, 0x1_0000, kind::RESERVED),
                e(0x15_0000, 0xa_f000, kind::USABLE),
                e(0x1f_f000, 0x2000, kind::ACPI_NVS),
            ]
        );
        for w in out.windows(2) {
            assert!(w[0].top() <= w[1].base);
        }
    }

    #[test]
    fn reports_a_full_buffer() {
        let map = [
            r(efi::CONVENTIONAL, 0x10_0000, 0x100),
            r(efi::RESERVED, 0x30_0000, 1),
        ];
        let mut out = [Entry::default(); 1];
        assert_eq!(
            translate(map, Options::default(), &mut out),
            Err(MapFull { capacity: 1 })
        );
        // The framebuffer split needs room too.
        let mut out = [Entry::default(); 2];
        let opts = Options {
            framebuffer: Some((0x10_8000, 0x1000)),
            keep_first_page: false,
        };
        assert_eq!(
            translate([map[0]], opts, &mut out),
            Err(MapFull { capacity: 2 })
        );
    }

    #[test]
    fn huge_regions_do_not_overflow() {
        let map = [r(efi::CONVENTIONAL, 0xffff_ffff_ffff_0000, u64::MAX)];
        let out = run(&map, Options::default());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].base, 0xffff_ffff_ffff_0000);
        assert_eq!(out[0].length, 0xf000);
    }
}
