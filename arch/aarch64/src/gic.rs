//! GICv3 (and v4) through the `arm-gic` crate: the distributor, the boot
//! CPU's redistributor found by affinity in the MADT's GICR ranges or GICC
//! entries, and the CPU interface's system registers (ARM IHI 0069).
//!
//! The crate's `GicV3` type assumes one contiguous block of redistributors
//! indexed by CPU number; clouds give per-CPU addresses (GICC entries) and
//! the order of frames in a range is not the CPU order, so this module finds
//! the boot CPU's frame itself (`GICR_TYPER.Affinity_Value`) and drives the
//! crate's distributor and redistributor types directly.

use crate::gic_its::Its;
use crate::gic_lpi;
use crate::register_frame::RegisterFrame;
use aarch64_cpu::registers::{MPIDR_EL1, Readable};
use alloc::vec::Vec;
use arm_gic::gicv3::registers::{Gicd, GicrSgi};
use arm_gic::gicv3::{GicCpuInterface, GicDistributor, GicRedistributor, Group};
use arm_gic::{IntId, InterruptGroup, Trigger as GicTrigger, UniqueMmioPointer};
use core::ops::Range;
use core::ptr::NonNull;
use stratus_arch::interrupts::{MapRegisters, RedistributorSource, Trigger};
use stratus_arch::{
    AllocateMemory, CpuHardwareId, InterruptController, InterruptError, InterruptId, InterruptLine,
    MsiAddressData, MsiDevice,
};

/// Size of the distributor's register frame.
const GICD_LEN: u64 = 0x10000;
/// `GICD_PIDR2`: architecture revision in bits 7:4.
const GICD_PIDR2: u64 = 0xffe8;
use crate::redistributor_walk::{self, GICR_V3_STRIDE};
use crate::sgi;
/// `GICR_TYPER` (64-bit) offset.
const GICR_TYPER: u64 = 0x8;
/// Priority given to every enabled interrupt (the crate's default).
const PRIORITY: u8 = 0x80;

/// The boot CPU's affinity as `GICR_TYPER` and SGI targets spell it:
/// Aff3.Aff2.Aff1.Aff0 in 32 bits.
fn this_affinity() -> u32 {
    let mpidr = MPIDR_EL1.get();
    ((((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff)) as u32
}

fn read_u32(virt: u64) -> u32 {
    // SAFETY: callers pass addresses inside GIC frames mapped with device
    // attributes by `Gicv3::new`; reads of ID and type registers have no
    // side effects.
    unsafe { core::ptr::read_volatile(virt as *const u32) }
}

fn read_u64(virt: u64) -> u64 {
    // SAFETY: as for `read_u32`; GICR_TYPER is a 64-bit register.
    unsafe { core::ptr::read_volatile(virt as *const u64) }
}

/// Every redistributor region of the MADT, mapped by the boot CPU, as
/// (virtual address, length): secondary CPUs find their frame here.
static REDISTRIBUTOR_REGIONS: spin::Once<Vec<(u64, u64)>> = spin::Once::new();

/// Maps every redistributor region `(base, len)`.
fn map_redistributors(
    regions: &[(u64, u64)],
    map: &mut MapRegisters<'_>,
) -> Result<Vec<(u64, u64)>, InterruptError> {
    regions
        .iter()
        .map(|&(phys, len)| {
            let len = len.max(GICR_V3_STRIDE);
            Ok((map(phys, len).map_err(InterruptError::Map)?, len))
        })
        .collect()
}

/// Finds the redistributor whose affinity is `affinity` among the mapped
/// regions; returns its virtual address.
fn find_redistributor(mapped: &[(u64, u64)], affinity: u32) -> Result<u64, InterruptError> {
    mapped
        .iter()
        .find_map(|&(virt, len)| {
            let typer_at = |offset: u64| read_u64(virt + offset + GICR_TYPER);
            redistributor_walk::find(len, affinity, typer_at).map(|offset| virt + offset)
        })
        .ok_or(InterruptError::NoRedistributor)
}

/// The redistributor frame at `virt` as the crate's type.
///
/// # Safety
/// `virt` must be a redistributor frame mapped with device attributes that
/// no other live pointer reaches.
unsafe fn redistributor_at(virt: u64) -> GicRedistributor<'static> {
    // SAFETY: the caller's contract; the address is not null.
    unsafe {
        GicRedistributor::new(UniqueMmioPointer::new(NonNull::new_unchecked(
            virt as *mut GicrSgi,
        )))
    }
}

/// Wakes the executing CPU's redistributor, configures its SGIs and PPIs
/// (group 1, masked), unmasks the SGIs and the PPIs `per_cpu`, and enables
/// this CPU's interface through its system registers.
fn init_this_cpu(
    redistributor: &mut GicRedistributor<'static>,
    per_cpu: &[InterruptId],
) -> Result<(), InterruptError> {
    GicCpuInterface::enable_system_register_el1();
    // Already awake (the firmware woke it) is fine.
    let _ = redistributor.mark_core_awake();
    redistributor.configure_default_settings();
    for sgi in 0..16 {
        let _ = redistributor.enable_interrupt(IntId::sgi(sgi), true);
    }
    for &id in per_cpu {
        enable_ppi(redistributor, intid(id)?)?;
    }
    GicCpuInterface::set_priority_mask(0xff);
    GicCpuInterface::enable_group1(true);
    Ok(())
}

fn enable_ppi(r: &mut GicRedistributor<'static>, int: IntId) -> Result<(), InterruptError> {
    r.set_group(int, Group::Group1NS)
        .map_err(controller_error)?;
    r.set_interrupt_priority(int, PRIORITY)
        .map_err(controller_error)?;
    r.enable_interrupt(int, true).map_err(controller_error)
}

/// Prepares the executing secondary CPU's redistributor and CPU interface
/// (the boot CPU mapped every redistributor region in [`Gicv3::new`]). The
/// redistributor is this CPU's alone, so the crate's exclusive pointer is
/// made here and dropped at the end.
pub fn init_secondary(per_cpu: &[InterruptId]) -> Result<(), InterruptError> {
    let mapped = REDISTRIBUTOR_REGIONS
        .get()
        .ok_or(InterruptError::WrongHardware)?;
    let gicr = find_redistributor(mapped, this_affinity())?;
    // SAFETY: the frame is this CPU's redistributor, mapped by the boot CPU
    // with device attributes; only this CPU touches it.
    let mut redistributor = unsafe { redistributor_at(gicr) };
    init_this_cpu(&mut redistributor, per_cpu)?;
    if let Some(lpis) = gic_lpi::tables()
        && let Err(e) = lpis.enable(this_affinity())
    {
        log::warn!(target: "gic", "LPIs on the CPU of affinity {:#x}: {e}; no MSIs reach it", this_affinity());
    }
    Ok(())
}

/// The GIC as seen from the boot CPU.
pub struct Gicv3 {
    distributor: GicDistributor<'static>,
    redistributor: GicRedistributor<'static>,
    /// The ITS MSIs go through, when there is one and it came up.
    its: Option<Its>,
}

// SAFETY: the distributor and redistributor pointers are the only ones to
// their register frames (mapped once for this instance); moving the
// instance to another CPU moves that exclusive access with it.
unsafe impl Send for Gicv3 {}

impl Gicv3 {
    /// Maps the distributor and the boot CPU's redistributor, checks the
    /// version, and configures both: every SPI and PPI masked, group 1
    /// non-secure, level-triggered, SGIs enabled (for IPIs), the CPU
    /// interface accepting every priority.
    pub fn new(
        version: u8,
        distributor_phys: u64,
        redistributors: &[(u64, u64)],
        source: RedistributorSource,
        its: &[u64],
        mut map: MapRegisters<'_>,
        memory: AllocateMemory<'_>,
    ) -> Result<Self, InterruptError> {
        if (1..3).contains(&version) {
            return Err(InterruptError::UnsupportedGicVersion(version));
        }
        let gicd = map(distributor_phys, GICD_LEN).map_err(InterruptError::Map)?;
        let revision = ((read_u32(gicd + GICD_PIDR2) >> 4) & 0xf) as u8;
        if revision < 3 {
            return Err(InterruptError::UnsupportedGicVersion(revision));
        }
        let affinity = this_affinity();
        let mapped = map_redistributors(redistributors, &mut map)?;
        let gicr = find_redistributor(&mapped, affinity)?;
        let regions: Vec<(u64, u64, u64)> = redistributors
            .iter()
            .zip(&mapped)
            .map(|(&(phys, _), &(virt, len))| (phys, virt, len))
            .collect();
        REDISTRIBUTOR_REGIONS.call_once(|| mapped);
        log::info!(target: "irq", "GICv{revision} distributor at {distributor_phys:#x}, redistributor of affinity {affinity:#x} found in {} {:?} region(s)",
            redistributors.len(),
            source
        );
        // SAFETY: `gicd` and `gicr` are the distributor and this CPU's
        // redistributor frames, just mapped with device attributes and
        // reachable through no other pointer (secondary CPUs use only their
        // own frames).
        let (distributor, redistributor) = unsafe {
            (
                GicDistributor::new(UniqueMmioPointer::new(NonNull::new_unchecked(
                    gicd as *mut Gicd,
                ))),
                redistributor_at(gicr),
            )
        };
        let mut gic = Self {
            distributor,
            redistributor,
            its: None,
        };
        init_this_cpu(&mut gic.redistributor, &[])?;
        gic.distributor.configure_default_settings();
        gic.its = match its {
            [] => {
                log::info!(target: "gic", "no ITS; MSIs unavailable, drivers will poll");
                None
            }
            [first, ..] => {
                if its.len() > 1 {
                    log::info!(target: "gic", "{} ITSs; MSIs go through the first", its.len());
                }
                // SAFETY: the distributor frame mapped above; GICD_TYPER
                // reads have no side effects.
                let gicd_frame = unsafe { RegisterFrame::new(gicd, GICD_LEN) };
                match init_msis(&gicd_frame, &regions, *first, &mut map, memory, affinity) {
                    Ok(its) => Some(its),
                    Err(InterruptError::NoDevice) => {
                        log::warn!(target: "gic", "the MADT lists an ITS at {first:#x}, but nothing answers there");
                        log::info!(target: "gic", "no ITS; MSIs unavailable, drivers will poll");
                        None
                    }
                    Err(e) => {
                        log::error!(target: "gic", "ITS at {first:#x}: {e}; MSIs unavailable, drivers will poll");
                        None
                    }
                }
            }
        };
        Ok(gic)
    }
}

/// LPI tables for every redistributor, LPIs on the boot CPU, and the ITS
/// at `its_phys`.
fn init_msis(
    distributor: &RegisterFrame,
    regions: &[(u64, u64, u64)],
    its_phys: u64,
    map: &mut MapRegisters<'_>,
    memory: AllocateMemory<'_>,
    affinity: u32,
) -> Result<Its, InterruptError> {
    let frame = Its::probe(its_phys, map)?;
    let lpis = gic_lpi::prepare(distributor, regions, &mut *memory)?;
    lpis.enable(affinity)?;
    Its::new(its_phys, frame, memory, lpis)
}

fn intid(id: InterruptId) -> Result<IntId, InterruptError> {
    IntId::try_from(id.0).map_err(|_| InterruptError::BadId(id.0))
}

fn gic_trigger(trigger: Trigger) -> GicTrigger {
    match trigger {
        Trigger::Edge => GicTrigger::Edge,
        Trigger::Level => GicTrigger::Level,
    }
}

fn controller_error(_e: arm_gic::gicv3::GicError) -> InterruptError {
    InterruptError::BadLine
}

impl InterruptController for Gicv3 {
    fn kind(&self) -> &'static str {
        "gicv3"
    }

    /// SGIs, for inter-processor interrupts.
    fn allocatable(&self) -> Range<u32> {
        0..16
    }

    fn fixed_id(&self, line: InterruptLine) -> Option<InterruptId> {
        match line {
            InterruptLine::PerCpu(ppi) => Some(InterruptId(ppi)),
            InterruptLine::Gsi { gsi, .. } => Some(InterruptId(gsi)),
            InterruptLine::Isa(_) => None,
        }
    }

    fn enable(&mut self, line: InterruptLine, id: InterruptId) -> Result<(), InterruptError> {
        let int = intid(id)?;
        match line {
            InterruptLine::PerCpu(ppi) if ppi == id.0 && int.is_ppi() => {
                enable_ppi(&mut self.redistributor, int)
            }
            InterruptLine::Gsi { gsi, trigger, .. } if gsi == id.0 && int.is_spi() => {
                let mpidr = self.this_cpu().0;
                let d = &mut self.distributor;
                d.set_group(int, Group::Group1NS)
                    .map_err(controller_error)?;
                d.set_trigger(int, gic_trigger(trigger))
                    .map_err(controller_error)?;
                d.set_interrupt_priority(int, PRIORITY)
                    .map_err(controller_error)?;
                d.set_routing(int, Some(mpidr)).map_err(controller_error)?;
                d.enable_interrupt(int, true).map_err(controller_error)
            }
            _ => Err(InterruptError::BadLine),
        }
    }

    fn disable(&mut self, line: InterruptLine) -> Result<(), InterruptError> {
        match line {
            InterruptLine::PerCpu(ppi) => self
                .redistributor
                .enable_interrupt(intid(InterruptId(ppi))?, false)
                .map_err(controller_error),
            InterruptLine::Gsi { gsi, .. } => self
                .distributor
                .enable_interrupt(intid(InterruptId(gsi))?, false)
                .map_err(controller_error),
            InterruptLine::Isa(_) => Err(InterruptError::BadLine),
        }
    }

    fn this_cpu(&self) -> CpuHardwareId {
        // The executing CPU, not the one that built the controller.
        CpuHardwareId(crate::smp::hardware_id())
    }

    fn send_ipi(&mut self, target: CpuHardwareId, id: InterruptId) -> Result<(), InterruptError> {
        let value =
            sgi::sgi1r_value(id.0, target.0, range_selector_supported()).map_err(|e| match e {
                sgi::SgiError::NotAnSgi(id) => InterruptError::BadId(id),
                sgi::SgiError::NoRangeSelector(aff0) => InterruptError::BadId(u32::from(aff0)),
            })?;
        // SAFETY: writing ICC_SGI1R_EL1 (system register interface enabled
        // by the CPU interface's init) only sends the SGI it encodes; the
        // barrier orders earlier memory writes before the interrupt.
        unsafe {
            core::arch::asm!(
                "dsb ishst",
                "msr icc_sgi1r_el1, {value}",
                "isb",
                value = in(reg) value,
                options(nostack, preserves_flags)
            )
        };
        Ok(())
    }

    /// LPIs, when the ITS came up.
    fn msi_ids(&self) -> Range<u32> {
        self.its.as_ref().map_or(0..0, Its::msi_ids)
    }

    fn compose_msi(
        &mut self,
        device: MsiDevice,
        id: InterruptId,
        target: CpuHardwareId,
    ) -> Result<MsiAddressData, InterruptError> {
        self.its
            .as_mut()
            .ok_or(InterruptError::MsiUnsupported)?
            .compose(device, id, target)
    }

    fn release_msi(&mut self, device: MsiDevice, id: InterruptId) {
        if let Some(its) = self.its.as_mut() {
            its.release(device, id);
        }
    }
}

/// Whether this CPU interface takes SGI targets with Aff0 of 16 and more
/// (ICC_CTLR_EL1.RSS).
fn range_selector_supported() -> bool {
    let ctlr: u64;
    // SAFETY: reading ICC_CTLR_EL1 has no side effects.
    unsafe {
        core::arch::asm!("mrs {}, icc_ctlr_el1", out(reg) ctlr, options(nomem, nostack, preserves_flags))
    };
    ctlr & sgi::ICC_CTLR_RSS != 0
}

/// Acknowledges the highest-priority pending group 1 interrupt, has
/// `dispatch` handle it and ends it: SGIs, PPIs, SPIs and LPIs (INTID 8192
/// and up, which `ICC_IAR1_EL1` returns like the others and which take an
/// end-of-interrupt too). Special INTIDs (1020..1023) are not dispatched
/// and need no end-of-interrupt.
pub fn handle_pending(dispatch: fn(InterruptId)) {
    if let Some(int) = GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1) {
        let raw = u32::from(int);
        if raw < IntId::SPECIAL_SECURE.raw_value() || raw >= crate::its_tables::FIRST_LPI {
            dispatch(InterruptId(raw));
            GicCpuInterface::end_interrupt(int, InterruptGroup::Group1);
        }
    }
}
