//! What the firmware says about the machine, for the boot sequence (logged
//! as `boot`): ACPI
//! when the loader gave an RSDP the direct map reaches, else the device tree.

use crate::acpi::{self, AcpiPlatform};
use crate::boot_info::BootInfo;
use crate::devicetree::{self, DtSummary};
use crate::limine_boot;

/// ACPI discovery, when the loader gave an RSDP whose tables the direct map
/// reaches.
pub(super) fn read_acpi(boot: &BootInfo) -> AcpiPlatform {
    let Some(rsdp) = boot.rsdp else {
        match boot.dtb {
            Some(_) => {
                log::warn!(target: "boot", "no ACPI (the loader gave no RSDP); using the device tree")
            }
            None => {
                log::warn!(target: "boot", "no ACPI (the loader gave no RSDP) and no device tree")
            }
        }
        return AcpiPlatform::empty();
    };
    // From base revision 3 on, the direct map leaves ACPI memory out; a
    // kernel that got there (a loader ignoring the revision it asked for)
    // must not read the tables.
    if let Some(revision) = limine_boot::loaded_base_revision()
        && revision >= 3
    {
        log::warn!(target: "boot",
            "ACPI tables are not in the direct map under base revision {revision}; not read"
        );
        return AcpiPlatform::empty();
    }
    // SAFETY: the address is the loader's RSDP, and under base revisions 0
    // to 2 the direct map covers the ACPI tables.
    unsafe { acpi::discover(rsdp, boot.hhdm_offset, boot.memory_map.regions()) }.unwrap_or_else(
        |e| {
            log::error!(target: "boot", "{e}; continuing without ACPI");
            AcpiPlatform::empty()
        },
    )
}

/// The device tree's console and PSCI conduit, when the loader handed over
/// a tree in memory the direct map covers.
pub(super) fn read_device_tree(boot: &BootInfo) -> Option<DtSummary> {
    let phys = boot.dtb?;
    // SAFETY: `direct_map_blob` reads only through the direct map, after
    // checking the blob lies in RAM the loader maps there.
    let blob = unsafe { devicetree::direct_map_blob(phys, boot.hhdm_offset, &boot.memory_map) };
    match blob.and_then(devicetree::summarize) {
        Ok(summary) => Some(summary),
        Err(e) => {
            log::error!(target: "boot", "device tree at {phys:#x} unusable: {e}");
            None
        }
    }
}
