//! [`BootInfo`]: what the boot loader told the kernel, independent of the
//! boot protocol that carried it.

/// The kind of a physical memory region, as reported by the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Free RAM the kernel may use.
    Usable,
    /// Firmware-reserved; never touch.
    Reserved,
    /// ACPI tables; usable once the tables have been read.
    AcpiReclaimable,
    /// ACPI non-volatile storage; never touch.
    AcpiNvs,
    /// Defective RAM.
    BadMemory,
    /// Loader data (page tables, responses, the boot stack): usable once the
    /// kernel no longer needs what the loader handed over.
    LoaderReclaimable,
    /// The kernel image and its modules.
    KernelAndModules,
    /// A linear framebuffer.
    Framebuffer,
}

/// One physical memory region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First physical byte.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// What the region holds.
    pub kind: MemoryKind,
}

impl MemoryRegion {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.len)
    }
}

/// The most memory-map entries kept; firmware maps on cloud VMs hold well
/// under a hundred once the loader has merged neighbours.
pub const MAX_MEMORY_REGIONS: usize = 256;

/// The physical memory map, kept in a fixed array because it is needed before
/// there is a heap.
#[derive(Clone, Debug)]
pub struct MemoryMap {
    regions: [MemoryRegion; MAX_MEMORY_REGIONS],
    len: usize,
    /// Entries that did not fit and were dropped.
    pub dropped: usize,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> Self {
        const EMPTY: MemoryRegion = MemoryRegion {
            base: 0,
            len: 0,
            kind: MemoryKind::Reserved,
        };
        Self {
            regions: [EMPTY; MAX_MEMORY_REGIONS],
            len: 0,
            dropped: 0,
        }
    }

    /// Appends a region; counts it in `dropped` when the map is full.
    pub fn push(&mut self, region: MemoryRegion) {
        if self.len < MAX_MEMORY_REGIONS {
            self.regions[self.len] = region;
            self.len += 1;
        } else {
            self.dropped += 1;
        }
    }

    /// The regions, in the loader's order.
    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions[..self.len]
    }

    /// Bytes of RAM the kernel owns or may reclaim: usable, loader and ACPI
    /// reclaimable memory and the kernel image. What `memory_mib=` reports.
    pub fn ram_bytes(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| {
                matches!(
                    r.kind,
                    MemoryKind::Usable
                        | MemoryKind::LoaderReclaimable
                        | MemoryKind::AcpiReclaimable
                        | MemoryKind::KernelAndModules
                )
            })
            .map(|r| r.len)
            .sum()
    }
}

/// A linear framebuffer handed over by the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framebuffer {
    /// Virtual address of the first pixel.
    pub address: u64,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Bytes per line.
    pub pitch: u64,
    /// Bits per pixel.
    pub bpp: u16,
}

/// What the loader told the kernel.
#[derive(Clone)]
pub struct BootInfo {
    /// Loader name and version as it reported them (`Stratus 0.1.0`,
    /// `Limine 8.7.0`).
    pub loader_name: &'static str,
    /// Loader version string.
    pub loader_version: &'static str,
    /// Offset of the higher-half direct map: physical `p` is at virtual
    /// `p + hhdm_offset`.
    pub hhdm_offset: u64,
    /// The physical memory map.
    pub memory_map: MemoryMap,
    /// Physical address of the ACPI RSDP.
    pub rsdp: Option<u64>,
    /// Physical address the kernel image was loaded at.
    pub kernel_phys_base: u64,
    /// Virtual address the kernel image is linked at.
    pub kernel_virt_base: u64,
    /// The kernel command line as the loader gave it (any bytes; see
    /// [`crate::cmdline::CommandLine`]).
    pub cmdline: &'static [u8],
    /// Path of the kernel file on the boot volume.
    pub kernel_path: &'static str,
    /// The first framebuffer, if the firmware offered one.
    pub framebuffer: Option<Framebuffer>,
    /// Physical address of a flattened device tree, if the firmware passed one.
    pub dtb: Option<u64>,
    /// Physical address of the UEFI system table.
    pub efi_system_table: Option<u64>,
    /// Counter value read first thing at kernel entry.
    pub entry_ticks: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_counts_reclaimable_but_not_reserved() {
        let mut map = MemoryMap::new();
        map.push(MemoryRegion {
            base: 0,
            len: 0x9f000,
            kind: MemoryKind::Usable,
        });
        map.push(MemoryRegion {
            base: 0x9f000,
            len: 0x1000,
            kind: MemoryKind::Reserved,
        });
        map.push(MemoryRegion {
            base: 0x100000,
            len: 0x100000,
            kind: MemoryKind::KernelAndModules,
        });
        map.push(MemoryRegion {
            base: 0x200000,
            len: 0x200000,
            kind: MemoryKind::LoaderReclaimable,
        });
        map.push(MemoryRegion {
            base: 0xfd000000,
            len: 0x400000,
            kind: MemoryKind::Framebuffer,
        });
        assert_eq!(map.ram_bytes(), 0x9f000 + 0x100000 + 0x200000);
    }

    #[test]
    fn full_map_counts_dropped_entries() {
        let mut map = MemoryMap::new();
        for i in 0..(MAX_MEMORY_REGIONS as u64 + 3) {
            map.push(MemoryRegion {
                base: i << 12,
                len: 0x1000,
                kind: MemoryKind::Usable,
            });
        }
        assert_eq!(map.regions().len(), MAX_MEMORY_REGIONS);
        assert_eq!(map.dropped, 3);
    }
}
