//! The Limine boot protocol: the requests the kernel makes and their
//! translation into a protocol-independent [`BootInfo`].
//!
//! The requests sit in the `.requests` section between the start and end
//! markers, which the platform linker scripts keep. Both genuine Limine and
//! the Stratus loader answer them; nothing here depends on which one did
//! (the loader's name is only reported).

use crate::boot_info::{BootInfo, Framebuffer, MemoryKind, MemoryMap, MemoryRegion};
use core::fmt;
use limine::BaseRevision;
use limine::memory_map::EntryType;
use limine::request::{
    BootloaderInfoRequest, DeviceTreeBlobRequest, EfiSystemTableRequest, ExecutableAddressRequest,
    ExecutableFileRequest, FramebufferRequest, HhdmRequest, MemoryMapRequest, RequestsEndMarker,
    RequestsStartMarker, RsdpRequest, StackSizeRequest,
};

/// The base revision of the protocol the kernel is written for.
pub const BASE_REVISION_NUMBER: u64 = 2;

/// Stack the kernel asks the loader for: 256 KiB.
pub const BOOT_STACK_BYTES: u64 = 256 * 1024;

#[used]
#[unsafe(link_section = ".requests_start_marker")]
static REQUESTS_START: RequestsStartMarker = RequestsStartMarker::new();

#[used]
#[unsafe(link_section = ".requests")]
static BASE_REVISION: BaseRevision = BaseRevision::with_revision(BASE_REVISION_NUMBER);

#[used]
#[unsafe(link_section = ".requests")]
static BOOTLOADER_INFO: BootloaderInfoRequest = BootloaderInfoRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static HHDM: HhdmRequest = HhdmRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static MEMORY_MAP: MemoryMapRequest = MemoryMapRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static RSDP: RsdpRequest = RsdpRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static EXECUTABLE_ADDRESS: ExecutableAddressRequest = ExecutableAddressRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static EXECUTABLE_FILE: ExecutableFileRequest = ExecutableFileRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static FRAMEBUFFER: FramebufferRequest = FramebufferRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static DEVICE_TREE: DeviceTreeBlobRequest = DeviceTreeBlobRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static EFI_SYSTEM_TABLE: EfiSystemTableRequest = EfiSystemTableRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static STACK_SIZE: StackSizeRequest = StackSizeRequest::new().with_size(BOOT_STACK_BYTES);

#[used]
#[unsafe(link_section = ".requests_end_marker")]
static REQUESTS_END: RequestsEndMarker = RequestsEndMarker::new();

/// Why the loader's answers are not enough to boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The loader does not support base revision [`BASE_REVISION_NUMBER`].
    BaseRevisionUnsupported,
    /// No answer to a request the kernel cannot do without.
    MissingResponse(&'static str),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::BaseRevisionUnsupported => {
                write!(
                    f,
                    "the loader does not support Limine base revision {BASE_REVISION_NUMBER}"
                )
            }
            BootError::MissingResponse(what) => write!(f, "the loader gave no {what} response"),
        }
    }
}

/// Maps a Limine memory-map entry type to a [`MemoryKind`].
pub fn memory_kind(entry_type: EntryType) -> MemoryKind {
    match entry_type {
        EntryType::USABLE => MemoryKind::Usable,
        EntryType::ACPI_RECLAIMABLE => MemoryKind::AcpiReclaimable,
        EntryType::ACPI_NVS => MemoryKind::AcpiNvs,
        EntryType::BAD_MEMORY => MemoryKind::BadMemory,
        EntryType::BOOTLOADER_RECLAIMABLE => MemoryKind::LoaderReclaimable,
        EntryType::EXECUTABLE_AND_MODULES => MemoryKind::KernelAndModules,
        EntryType::FRAMEBUFFER => MemoryKind::Framebuffer,
        _ => MemoryKind::Reserved,
    }
}

/// Turns an address a response gave into a physical one. Base revisions
/// before 3 hand some tables over as direct-map addresses, later ones as
/// physical addresses; RAM is never at or above the direct map, so the two
/// cannot be confused.
pub fn to_physical(address: u64, hhdm_offset: u64) -> u64 {
    if address >= hhdm_offset {
        address - hhdm_offset
    } else {
        address
    }
}

fn nonzero_physical(address: usize, hhdm_offset: u64) -> Option<u64> {
    (address != 0).then(|| to_physical(address as u64, hhdm_offset))
}

/// Whether the loader supports the base revision the kernel asked for.
pub fn check_base_revision() -> Result<(), BootError> {
    if BASE_REVISION.is_supported() {
        Ok(())
    } else {
        Err(BootError::BaseRevisionUnsupported)
    }
}

/// The base revision the loader used, when it says (loaders supporting
/// revision 3 and later do).
pub fn loaded_base_revision() -> Option<u64> {
    BASE_REVISION.loaded_revision()
}

/// The command line, read on its own so that even a kernel that cannot boot
/// knows how it is meant to stop (empty when the loader gave none).
pub fn cmdline() -> &'static [u8] {
    EXECUTABLE_FILE
        .get_response()
        .map_or(&[][..], |r| r.file().string().to_bytes())
}

/// Reads the loader's responses (whatever base revision it used: check
/// [`check_base_revision`] too). `entry_ticks` is the counter at kernel entry.
pub fn boot_info(entry_ticks: u64) -> Result<BootInfo, BootError> {
    let hhdm_offset = HHDM
        .get_response()
        .ok_or(BootError::MissingResponse("HHDM"))?
        .offset();
    let entries = MEMORY_MAP
        .get_response()
        .ok_or(BootError::MissingResponse("memory map"))?
        .entries();
    let mut memory_map = MemoryMap::new();
    for entry in entries {
        memory_map.push(MemoryRegion {
            base: entry.base,
            len: entry.length,
            kind: memory_kind(entry.entry_type),
        });
    }
    let (loader_name, loader_version) = BOOTLOADER_INFO
        .get_response()
        .map_or(("unknown", ""), |r| (r.name(), r.version()));
    let address = EXECUTABLE_ADDRESS
        .get_response()
        .ok_or(BootError::MissingResponse("executable address"))?;
    let kernel_path = EXECUTABLE_FILE
        .get_response()
        .map_or("", |r| r.file().path().to_str().unwrap_or(""));
    let framebuffer = FRAMEBUFFER
        .get_response()
        .and_then(|r| r.framebuffers().next())
        .map(|fb| Framebuffer {
            address: fb.addr() as u64,
            width: fb.width(),
            height: fb.height(),
            pitch: fb.pitch(),
            bpp: fb.bpp(),
        });
    Ok(BootInfo {
        loader_name,
        loader_version,
        hhdm_offset,
        memory_map,
        rsdp: RSDP
            .get_response()
            .and_then(|r| nonzero_physical(r.address(), hhdm_offset)),
        kernel_phys_base: address.physical_base(),
        kernel_virt_base: address.virtual_base(),
        cmdline: cmdline(),
        kernel_path,
        framebuffer,
        dtb: DEVICE_TREE
            .get_response()
            .and_then(|r| nonzero_physical(r.dtb_ptr() as usize, hhdm_offset)),
        efi_system_table: EFI_SYSTEM_TABLE
            .get_response()
            .and_then(|r| nonzero_physical(r.address(), hhdm_offset)),
        entry_ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_types_map_to_kinds() {
        assert_eq!(memory_kind(EntryType::USABLE), MemoryKind::Usable);
        assert_eq!(
            memory_kind(EntryType::BOOTLOADER_RECLAIMABLE),
            MemoryKind::LoaderReclaimable
        );
        assert_eq!(
            memory_kind(EntryType::EXECUTABLE_AND_MODULES),
            MemoryKind::KernelAndModules
        );
        assert_eq!(memory_kind(EntryType::FRAMEBUFFER), MemoryKind::Framebuffer);
    }

    #[test]
    fn addresses_become_physical() {
        let hhdm = 0xffff_8000_0000_0000;
        assert_eq!(to_physical(0xffff_8000_7fe1_4000, hhdm), 0x7fe1_4000);
        assert_eq!(to_physical(0x7fe1_4000, hhdm), 0x7fe1_4000);
        assert_eq!(nonzero_physical(0, hhdm), None);
    }

    #[test]
    fn without_a_loader_boot_info_says_what_is_missing() {
        // On the host nothing answered the requests, so the base revision tag
        // still holds the revision: unsupported; and there is no HHDM.
        assert_eq!(
            check_base_revision(),
            Err(BootError::BaseRevisionUnsupported)
        );
        assert_eq!(boot_info(0).err(), Some(BootError::MissingResponse("HHDM")));
        assert_eq!(cmdline(), b"");
    }
}
