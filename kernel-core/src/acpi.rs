//! ACPI discovery through the `acpi` crate: which tables there are, the
//! console (SPCR), and the power and timer facilities (FADT).
//!
//! A missing or malformed table is reported by name and discovery goes on
//! with what is left; no pointer is followed that the crate has not checked
//! (signature, length and checksum).

use crate::console::{ConsoleDescriptor, SpcrError, SpcrFields, spcr_baud};
use crate::fixed_string::FixedString;
use ::acpi::address::AddressSpace;
use ::acpi::fadt::Fadt;
use ::acpi::madt::Madt;
use ::acpi::spcr::Spcr;
use ::acpi::{AcpiError, AcpiHandler, AcpiTable, AcpiTables, PhysicalMapping};
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::ptr::NonNull;
use stratus_arch::{AcpiSoftOff, PsciConduit};

/// Reaches ACPI tables through the higher-half direct map, where the loader
/// mapped all of RAM including the ACPI regions.
#[derive(Clone, Copy, Debug)]
pub struct DirectMapAcpiHandler {
    hhdm_offset: u64,
}

impl DirectMapAcpiHandler {
    /// A handler for a direct map at `hhdm_offset`.
    pub fn new(hhdm_offset: u64) -> Self {
        Self { hhdm_offset }
    }
}

impl AcpiHandler for DirectMapAcpiHandler {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt = (physical_address as u64).wrapping_add(self.hhdm_offset) as *mut T;
        // SAFETY: the direct map covers all memory the firmware reported,
        // ACPI tables included, so `virt` is mapped for `size` bytes; the
        // caller (the acpi crate) guarantees a `T` lives there. A null
        // pointer cannot result from adding the higher-half offset.
        unsafe {
            PhysicalMapping::new(
                physical_address,
                NonNull::new_unchecked(virt),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Where the ACPI power-management timer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmTimer {
    /// An I/O port (x86).
    Port {
        /// The port.
        port: u16,
        /// Counter width: 24 or 32 bits.
        bits: u32,
    },
}

/// What ACPI said about the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpcrOutcome {
    /// There is no SPCR table.
    Absent,
    /// The table names a console Stratus can drive.
    Console(ConsoleDescriptor),
    /// The table exists but cannot be used.
    Unusable(SpcrError),
    /// The table failed validation (checksum, length).
    Invalid,
}

/// What discovery found.
#[derive(Clone, Debug)]
pub struct AcpiSummary {
    /// Hardware ids of the enabled CPUs in the MADT (APIC id or MPIDR).
    pub cpus: Vec<u64>,
    /// OEM id of the first table (`BOCHS `, `AMAZON`...).
    pub oem_id: [u8; 6],
    /// Number of tables the XSDT/RSDT lists.
    pub table_count: usize,
    /// The console.
    pub spcr: SpcrOutcome,
    /// PSCI conduit (FADT ARM boot architecture flags).
    pub psci: Option<PsciConduit>,
    /// FADT reset register when it is an I/O port, with the value to write.
    pub reset_port: Option<(u16, u8)>,
    /// The ACPI PM timer.
    pub pm_timer: Option<PmTimer>,
    /// x86 soft-off through the PM1 control registers and `\_S5`.
    pub soft_off: Option<AcpiSoftOff>,
}

impl AcpiSummary {
    /// A summary for a machine without ACPI.
    pub const fn empty() -> Self {
        Self {
            cpus: Vec::new(),
            oem_id: *b"      ",
            table_count: 0,
            spcr: SpcrOutcome::Absent,
            psci: None,
            reset_port: None,
            pm_timer: None,
            soft_off: None,
        }
    }
}

/// Why ACPI could not be read at all.
#[derive(Debug)]
pub struct AcpiUnavailable(pub AcpiError);

impl core::fmt::Display for AcpiUnavailable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RSDP/XSDT unusable: {:?}", self.0)
    }
}

/// Reads the tables reachable from the RSDP at physical `rsdp`.
///
/// # Safety
/// `rsdp` must be the physical address the loader reported for the RSDP and
/// the direct map at `hhdm_offset` must cover the ACPI tables.
pub unsafe fn discover(rsdp: u64, hhdm_offset: u64) -> Result<AcpiSummary, AcpiUnavailable> {
    let handler = DirectMapAcpiHandler::new(hhdm_offset);
    // SAFETY: the caller guarantees the address is the loader's RSDP; the
    // crate checks the signature and checksum before following it.
    let tables =
        unsafe { AcpiTables::from_rsdp(handler, rsdp as usize) }.map_err(AcpiUnavailable)?;
    let mut summary = AcpiSummary::empty();
    log_table_list(&tables, &mut summary);
    summary.spcr = match tables.find_table::<Spcr>() {
        Ok(spcr) => match spcr_fields_from_bytes(table_bytes(&*spcr)) {
            Some(fields) => match ConsoleDescriptor::from_spcr(&fields) {
                Ok(console) => SpcrOutcome::Console(console),
                Err(e) => SpcrOutcome::Unusable(e),
            },
            None => SpcrOutcome::Invalid,
        },
        Err(AcpiError::TableMissing(_)) => SpcrOutcome::Absent,
        Err(e) => {
            log::error!("SPCR table is malformed ({e:?}); ignoring it");
            SpcrOutcome::Invalid
        }
    };
    match tables.find_table::<Madt>() {
        Ok(madt) => summary.cpus = cpus::enabled_cpu_ids(table_bytes(madt.get().get_ref())),
        Err(e) => log::warn!("no usable MADT ({e:?}): only the boot CPU runs"),
    }
    match tables.find_table::<Fadt>() {
        Ok(fadt) => {
            read_fadt(&fadt, &mut summary);
            if summary.psci.is_none() {
                // SAFETY: the tables come from the loader's RSDP and the direct
                // map covers them (the caller's guarantee).
                match unsafe { soft_off::discover(&tables, &fadt, hhdm_offset) } {
                    Ok(off) => {
                        log::info!(
                            "S5 power-off through PM1a control {:#x} (value {:#x})",
                            off.pm1a_control,
                            off.pm1a_value
                        );
                        summary.soft_off = Some(off);
                    }
                    Err(e) => log::warn!("no S5 power-off: {e}"),
                }
            }
        }
        Err(AcpiError::TableMissing(_)) => {
            log::warn!("no FADT: no PSCI, reset register or PM timer")
        }
        Err(e) => log::error!("FADT table is malformed ({e:?}); ignoring it"),
    }
    Ok(summary)
}

fn log_table_list<H: AcpiHandler>(tables: &AcpiTables<H>, summary: &mut AcpiSummary) {
    let mut names: FixedString<256> = FixedString::new();
    for header in tables.headers() {
        summary.table_count += 1;
        let _ = write!(names, " {}", header.signature.as_str());
    }
    if let Some(first) = tables.headers().next() {
        summary.oem_id = first.oem_id;
    }
    log::info!("{} tables:{}", summary.table_count, names.as_str());
}

/// The bytes of a validated table, bounded by its header's length.
fn table_bytes<T: ::acpi::AcpiTable>(table: &T) -> &[u8] {
    let length = table.header().length as usize;
    // SAFETY: the acpi crate validated the table (signature, checksum over
    // `length` bytes), so `length` bytes from its start are mapped.
    unsafe { core::slice::from_raw_parts(core::ptr::from_ref(table).cast::<u8>(), length) }
}

/// Decodes the SPCR fields Stratus uses from the table's bytes (ACPI SPCR
/// spec, table 3). Fields past the table's length are treated as absent:
/// revision 2 tables (QEMU, many clouds) end at byte 80, before the precise
/// baud rate field of revision 3. `None` when the table is shorter than the
/// base address.
pub fn spcr_fields_from_bytes(table: &[u8]) -> Option<SpcrFields> {
    let byte = |at: usize| table.get(at).copied();
    let u32_at = |at: usize| {
        table
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let address = table
        .get(44..52)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))?;
    let precise_baud = u32_at(80).filter(|&b| b != 0 && table.len() >= 88);
    Some(SpcrFields {
        interface_type: byte(36)?,
        address_space: byte(40)?,
        bit_width: byte(41)?,
        access_size: byte(43)?,
        address,
        baud: precise_baud.or_else(|| byte(58).and_then(spcr_baud)),
    })
}

/// FADT offsets past which older revisions end (ACPI 6.5, table 5.9): a
/// revision 1 FADT (QEMU's i440FX PC) is 116 bytes long, and the `acpi`
/// crate reads these fields without looking at the length.
const FADT_RESET_VALUE_END: usize = 129;
const FADT_ARM_BOOT_ARCH_END: usize = 131;

fn read_fadt(fadt: &Fadt, summary: &mut AcpiSummary) {
    let length = fadt.header().length as usize;
    let arm = fadt.arm_boot_arch;
    let flags = fadt.flags;
    if length >= FADT_ARM_BOOT_ARCH_END && arm.implements_psci() {
        summary.psci = Some(if arm.use_hvc_as_psci_conduit() {
            PsciConduit::Hvc
        } else {
            PsciConduit::Smc
        });
    }
    if length >= FADT_RESET_VALUE_END
        && flags.supports_system_reset_via_fadt()
        && let Ok(reset) = fadt.reset_register()
        && reset.address_space == AddressSpace::SystemIo
        && let Ok(port) = u16::try_from(reset.address)
    {
        summary.reset_port = Some((port, fadt.reset_value));
    }
    if let Ok(Some(pm)) = fadt.pm_timer_block()
        && pm.address_space == AddressSpace::SystemIo
        && let Ok(port) = u16::try_from(pm.address)
    {
        summary.pm_timer = Some(PmTimer::Port {
            port,
            bits: if flags.pm_timer_is_32_bit() { 32 } else { 24 },
        });
    }
}

pub mod cpus;
pub mod sleep;
pub mod soft_off;

#[cfg(test)]
mod tests;
