//! The platform as ACPI describes it, decoded once at boot and kept for the
//! kernel's lifetime: CPUs, interrupt controllers, PCI ECAM regions, timers,
//! power registers, the console and the IORT. Built by [`describe`], a pure
//! function over the tables found by [`read_tables`](super::tables::read_tables),
//! so it runs the same on the host (tests, fuzzing) as in the kernel.

use super::fadt::{self, Fadt, FadtError, PmTimer};
use super::gtdt::{self, Gtdt, GtdtError};
use super::hpet::{self, Hpet, HpetError};
use super::iort::{self, Iort, IortError};
use super::madt::{self, Cpu, Madt, MadtError};
use super::mcfg::{self, EcamRegion, McfgError};
use super::pci_host::{self, PciHosts};
use super::soft_off::{self, SoftOffError};
use super::spcr::{self, SpcrOutcome};
use super::tables::{PhysicalMemory, Signature, TableFault, TableSet, read_table};
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// Whether [`AcpiPlatform::its_device_id`] said that there is no IORT.
static NO_IORT_WARNED: AtomicBool = AtomicBool::new(false);
use stratus_arch::{AcpiSoftOff, PsciConduit};

/// One table the root table lists, as found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Its signature.
    pub signature: Signature,
    /// Its physical address.
    pub phys: u64,
    /// Its length (0 when unreadable).
    pub length: u32,
    /// What is wrong with it, if anything.
    pub fault: Option<TableFault>,
}

/// Where a table lies (the DSDT, which the FADT points at).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLocation {
    /// Physical address.
    pub phys: u64,
    /// Length in bytes.
    pub length: u32,
}

/// Why a table was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableProblem {
    /// It failed validation.
    Fault(TableFault),
    /// A pointer led to a table with another signature.
    WrongSignature(Signature),
    /// MADT contents.
    Madt(MadtError),
    /// MCFG contents.
    Mcfg(McfgError),
    /// HPET contents.
    Hpet(HpetError),
    /// FADT contents.
    Fadt(FadtError),
    /// GTDT contents.
    Gtdt(GtdtError),
    /// IORT contents.
    Iort(IortError),
}

impl fmt::Display for TableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fault(e) => e.fmt(f),
            Self::WrongSignature(s) => write!(f, "signature is {s}"),
            Self::Madt(e) => e.fmt(f),
            Self::Mcfg(e) => e.fmt(f),
            Self::Hpet(e) => e.fmt(f),
            Self::Fadt(e) => e.fmt(f),
            Self::Gtdt(e) => e.fmt(f),
            Self::Iort(e) => e.fmt(f),
        }
    }
}

/// Everything ACPI described, kept for the kernel's lifetime
/// ([`Kernel::acpi`](crate::Kernel::acpi)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiPlatform {
    /// The RSDP's OEM id (`BOCHS `, `AMAZON`...).
    pub oem_id: [u8; 6],
    /// The RSDP revision (0: RSDT; 2: XSDT).
    pub revision: u8,
    /// Every table the root table lists, valid or not.
    pub tables: Vec<TableInfo>,
    /// Tables skipped because they are broken, with the reason.
    pub skipped: Vec<(Signature, TableProblem)>,
    /// MADT: CPUs and interrupt controllers.
    pub madt: Option<Madt>,
    /// MCFG: every ECAM region (empty without an MCFG).
    pub pci_ecam: Vec<EcamRegion>,
    /// HPET.
    pub hpet: Option<Hpet>,
    /// FADT.
    pub fadt: Option<Fadt>,
    /// The DSDT, when the FADT names a readable one.
    pub dsdt: Option<TableLocation>,
    /// GTDT: Arm generic timer interrupts.
    pub gtdt: Option<Gtdt>,
    /// IORT: MSI routing on Arm.
    pub iort: Option<Iort>,
    /// SPCR: the console.
    pub spcr: SpcrOutcome,
    /// SPCR: the UART's GSI.
    pub spcr_interrupt: Option<u32>,
    /// PCI host bridges the DSDT and SSDTs declare, with their I/O windows;
    /// `None` without a readable DSDT.
    pub pci_hosts: Option<PciHosts>,
    /// x86 soft-off through the PM1 control registers and `\_S5`, or why
    /// there is none; `None` where it was not looked for (no FADT, or PSCI
    /// stops the machine).
    pub soft_off: Option<Result<AcpiSoftOff, SoftOffError>>,
}

impl AcpiPlatform {
    /// The description of a machine without ACPI.
    pub const fn empty() -> Self {
        Self {
            oem_id: *b"      ",
            revision: 0,
            tables: Vec::new(),
            skipped: Vec::new(),
            madt: None,
            pci_ecam: Vec::new(),
            hpet: None,
            fadt: None,
            dsdt: None,
            gtdt: None,
            iort: None,
            spcr: SpcrOutcome::Absent,
            spcr_interrupt: None,
            pci_hosts: None,
            soft_off: None,
        }
    }

    /// Every CPU the MADT lists (none without a MADT).
    pub fn cpus(&self) -> &[Cpu] {
        self.madt.as_ref().map_or(&[], |m| &m.cpus)
    }

    /// Hardware ids of the enabled CPUs (see [`Madt::enabled_cpu_ids`];
    /// empty without a usable MADT).
    pub fn enabled_cpu_ids(&self) -> Vec<u64> {
        self.madt
            .as_ref()
            .map_or_else(Vec::new, Madt::enabled_cpu_ids)
    }

    /// The PSCI conduit (FADT).
    pub fn psci(&self) -> Option<PsciConduit> {
        self.fadt.and_then(|f| f.psci)
    }

    /// ACPI soft-off, when it can be used.
    pub fn soft_off(&self) -> Option<AcpiSoftOff> {
        self.soft_off.and_then(Result::ok)
    }

    /// The FADT reset register when it is an I/O port, with its value.
    pub fn reset_port(&self) -> Option<(u16, u8)> {
        self.fadt.and_then(|f| f.reset_port())
    }

    /// The ACPI PM timer.
    pub fn pm_timer(&self) -> Option<PmTimer> {
        self.fadt.and_then(|f| f.pm_timer)
    }

    /// The device id the GIC ITS sees for MSIs of PCI requester id `rid`
    /// (bus << 8 | device << 3 | function) on segment `segment`: through
    /// the IORT root complex of that segment, its id mapping holding `rid`
    /// (output base + offset), and at most one SMMU, to an ITS group whose
    /// ITSs the MADT lists. `None` when the IORT maps the requester to no
    /// ITS (the device then cannot use MSIs). Without an IORT the device id
    /// is taken to be the requester id, with a warning the first time.
    pub fn its_device_id(&self, segment: u16, rid: u16) -> Option<u32> {
        let Some(iort) = &self.iort else {
            if !NO_IORT_WARNED.swap(true, Ordering::Relaxed) {
                log::warn!(target: "acpi", "no IORT: GIC ITS device ids are taken to be PCI requester ids");
            }
            return Some(u32::from(rid));
        };
        let (group, device) = iort.msi_target(u32::from(segment), u32::from(rid))?;
        let its_ids = &iort.its_groups.get(group)?.its_ids;
        let madt_its = self.madt.as_ref().map_or(&[][..], |m| &m.its[..]);
        madt_its
            .iter()
            .any(|its| its_ids.contains(&its.id))
            .then_some(device)
    }

    /// True when a table with `signature` is listed (valid or not).
    pub fn lists(&self, signature: &[u8; 4]) -> bool {
        self.tables.iter().any(|t| &t.signature.0 == signature)
    }
}

/// Decodes every table Stratus uses from `set`. `memory` reaches the DSDT
/// (which the FADT, not the root table, points at). Never fails: a broken
/// table is recorded in [`AcpiPlatform::skipped`] and left out.
pub fn describe<M: PhysicalMemory + ?Sized>(set: &TableSet<'_>, memory: &M) -> AcpiPlatform {
    let mut platform = AcpiPlatform {
        oem_id: set.oem_id,
        revision: set.revision,
        tables: set
            .tables
            .iter()
            .map(|t| TableInfo {
                signature: t.signature,
                phys: t.phys,
                length: t.bytes.map_or(0, |b| b.len() as u32),
                fault: t.bytes.err(),
            })
            .collect(),
        ..AcpiPlatform::empty()
    };
    let p = &mut platform;
    p.madt = decode(set, p, b"APIC", |t| {
        madt::parse(t).map_err(TableProblem::Madt)
    });
    p.pci_ecam = decode(set, p, b"MCFG", |t| {
        mcfg::parse(t).map_err(TableProblem::Mcfg)
    })
    .unwrap_or_default();
    p.hpet = decode(set, p, b"HPET", |t| {
        hpet::parse(t).map_err(TableProblem::Hpet)
    });
    p.fadt = decode(set, p, b"FACP", |t| {
        fadt::parse(t).map_err(TableProblem::Fadt)
    });
    p.gtdt = decode(set, p, b"GTDT", |t| {
        gtdt::parse(t).map_err(TableProblem::Gtdt)
    });
    p.iort = decode(set, p, b"IORT", |t| {
        iort::parse(t).map_err(TableProblem::Iort)
    });
    match set.find(b"SPCR") {
        None => {}
        Some(Ok(table)) => {
            p.spcr = spcr::outcome(table);
            p.spcr_interrupt = spcr::interrupt(table);
        }
        Some(Err(fault)) => p.spcr = SpcrOutcome::Invalid(fault),
    }
    let mut dsdt_bytes = None;
    if let Some(dsdt) = p.fadt.and_then(|f| f.dsdt) {
        let found = match read_table(memory, dsdt) {
            Ok((signature, bytes)) if &signature.0 == b"DSDT" => Ok(bytes),
            Ok((signature, _)) => Err(TableProblem::WrongSignature(signature)),
            Err((_, fault)) => Err(TableProblem::Fault(fault)),
        };
        match found {
            Ok(bytes) => {
                p.dsdt = Some(TableLocation {
                    phys: dsdt,
                    length: bytes.len() as u32,
                });
                dsdt_bytes = Some(bytes);
            }
            Err(problem) => p.skipped.push((Signature(*b"DSDT"), problem)),
        }
    }
    let ssdts = || {
        set.tables
            .iter()
            .filter(|t| &t.signature.0 == b"SSDT")
            .filter_map(|t| t.bytes.ok())
    };
    if let Some(dsdt) = dsdt_bytes {
        p.pci_hosts = Some(pci_host::find(core::iter::once(dsdt).chain(ssdts())));
    }
    if let Some(fadt) = p.fadt.filter(|f| f.psci.is_none()) {
        let ssdts = ssdts();
        p.soft_off = Some(soft_off::soft_off(&fadt, dsdt_bytes, ssdts));
    }
    platform
}

/// Decodes the first valid table with `signature`; a broken one is recorded
/// as skipped.
fn decode<T>(
    set: &TableSet<'_>,
    platform: &mut AcpiPlatform,
    signature: &[u8; 4],
    parse: impl FnOnce(&[u8]) -> Result<T, TableProblem>,
) -> Option<T> {
    let problem = match set.find(signature)? {
        Ok(table) => match parse(table) {
            Ok(value) => return Some(value),
            Err(problem) => problem,
        },
        Err(fault) => TableProblem::Fault(fault),
    };
    platform.skipped.push((Signature(*signature), problem));
    None
}
