//! LPIs at the redistributors (ARM IHI 0069, 5.1): one LPI configuration
//! table shared by every redistributor (`GICR_PROPBASER`: a priority and
//! enable byte per LPI) and one pending table per redistributor
//! (`GICR_PENDBASER`), then `GICR_CTLR.EnableLPIs`. The boot CPU allocates
//! every table up front, for the redistributors of CPUs not started yet
//! too, so that a secondary CPU only programs its own redistributor and
//! needs no allocator.

use crate::cache::clean_to_poc;
use crate::its_tables::{
    FIRST_LPI, LPI_ID_BITS, lpi_config_byte, lpi_config_bytes, lpi_pending_bytes, pendbaser_value,
    propbaser_value,
};
use crate::redistributor_walk;
use crate::register_frame::RegisterFrame;
use aarch64_cpu::asm::barrier;
use alloc::vec::Vec;
use stratus_arch::{AllocateMemory, InterruptError};

/// `GICD_TYPER` offset: LPIS is bit 17, IDbits bits 23:19.
const GICD_TYPER: u64 = 0x4;
/// `GICR_CTLR` offset: EnableLPIs is bit 0.
const GICR_CTLR: u64 = 0x0;
const ENABLE_LPIS: u32 = 1;
/// `GICR_TYPER` offset: PLPIS is bit 0, Processor_Number bits 23:8.
const GICR_TYPER: u64 = 0x8;
const GICR_PROPBASER: u64 = 0x70;
const GICR_PENDBASER: u64 = 0x78;
/// The RD_base frame of a redistributor.
const RD_FRAME_LEN: u64 = 0x10000;
/// Pending tables are 64 KiB aligned.
const PENDING_ALIGN: u64 = 0x10000;
/// Priority of every LPI (as for SPIs and PPIs).
pub const LPI_PRIORITY: u8 = 0x80;

/// One redistributor able to take LPIs.
pub struct LpiRedistributor {
    /// The CPU it serves, as Aff3.Aff2.Aff1.Aff0.
    pub affinity: u32,
    /// Physical address of its RD_base frame (MAPC with `PTA == 1`).
    pub phys: u64,
    /// `GICR_TYPER.Processor_Number` (MAPC with `PTA == 0`).
    pub processor_number: u16,
    frame: RegisterFrame,
    pendbaser: u64,
}

/// The LPI tables of every redistributor.
pub struct LpiTables {
    config_virt: u64,
    propbaser: u64,
    redistributors: Vec<LpiRedistributor>,
}

static LPI_TABLES: spin::Once<LpiTables> = spin::Once::new();

/// The tables, once [`prepare`] made them.
pub fn tables() -> Option<&'static LpiTables> {
    LPI_TABLES.get()
}

fn memory_for(
    memory: &mut AllocateMemory<'_>,
    bytes: u64,
    align: u64,
) -> Result<stratus_arch::ControllerMemory, InterruptError> {
    memory(bytes, align).ok_or(InterruptError::OutOfMemory)
}

/// Checks that the distributor supports LPIs of [`LPI_ID_BITS`] and
/// allocates the configuration table (every LPI disabled) and a pending
/// table for each redistributor of `regions` ((physical, virtual, length),
/// mapped) that supports physical LPIs.
pub fn prepare(
    distributor: &RegisterFrame,
    regions: &[(u64, u64, u64)],
    mut memory: AllocateMemory<'_>,
) -> Result<&'static LpiTables, InterruptError> {
    let typer = distributor.read32(GICD_TYPER);
    let id_bits = ((typer >> 19) & 0x1f) + 1;
    if typer & (1 << 17) == 0 || id_bits < LPI_ID_BITS {
        return Err(InterruptError::MsiUnsupported);
    }
    let config_bytes = lpi_config_bytes(LPI_ID_BITS);
    let config = memory_for(&mut memory, config_bytes, 0x1000)?;
    for offset in 0..config_bytes {
        // SAFETY: inside the configuration table just allocated for the
        // kernel's lifetime; nothing else uses it yet.
        unsafe {
            core::ptr::write_volatile(
                (config.virt + offset) as *mut u8,
                lpi_config_byte(LPI_PRIORITY, false),
            )
        };
    }
    clean_to_poc(config.virt, config_bytes);
    let mut redistributors = Vec::new();
    for &(phys, virt, len) in regions {
        let typer_at = |offset: u64| {
            // SAFETY: RD_base frames of the mapped region, which the boot
            // CPU mapped for the kernel's lifetime; GICR_TYPER reads have
            // no side effects.
            unsafe { RegisterFrame::new(virt + offset, RD_FRAME_LEN) }.read64(GICR_TYPER)
        };
        for (offset, typer) in redistributor_walk::frames(len, typer_at) {
            if typer & 1 == 0 {
                continue;
            }
            let pending = memory_for(&mut memory, lpi_pending_bytes(LPI_ID_BITS), PENDING_ALIGN)?;
            clean_to_poc(pending.virt, lpi_pending_bytes(LPI_ID_BITS));
            redistributors.push(LpiRedistributor {
                affinity: (typer >> 32) as u32,
                phys: phys + offset,
                processor_number: ((typer >> 8) & 0xffff) as u16,
                // SAFETY: as above: a mapped RD_base frame.
                frame: unsafe { RegisterFrame::new(virt + offset, RD_FRAME_LEN) },
                pendbaser: pendbaser_value(pending.phys),
            });
        }
    }
    Ok(LPI_TABLES.call_once(|| LpiTables {
        config_virt: config.virt,
        propbaser: propbaser_value(config.phys, LPI_ID_BITS),
        redistributors,
    }))
}

impl LpiTables {
    /// The redistributor of the CPU with `affinity`, and its index.
    pub fn find(&self, affinity: u32) -> Option<(usize, &LpiRedistributor)> {
        self.redistributors
            .iter()
            .enumerate()
            .find(|(_, r)| r.affinity == affinity)
    }

    /// How many redistributors take LPIs.
    pub fn len(&self) -> usize {
        self.redistributors.len()
    }

    /// Whether `redistributor` has LPIs enabled.
    pub fn enabled(&self, redistributor: &LpiRedistributor) -> bool {
        redistributor.frame.read32(GICR_CTLR) & ENABLE_LPIS != 0
    }

    /// Hands the tables to the redistributor of the CPU with `affinity`
    /// and enables its LPIs (run by that CPU). LPIs that firmware or an
    /// earlier kernel left enabled cannot be moved to these tables
    /// (`EnableLPIs` may not be cleared again): then an error, unless the
    /// redistributor already uses them.
    pub fn enable(&self, affinity: u32) -> Result<(), InterruptError> {
        let (_, r) = self.find(affinity).ok_or(InterruptError::NoRedistributor)?;
        if self.enabled(r) {
            return if r.frame.read64(GICR_PROPBASER) & !0xfff == self.propbaser & !0xfff {
                Ok(())
            } else {
                Err(InterruptError::LpisAlreadyEnabled)
            };
        }
        r.frame.write64(GICR_PROPBASER, self.propbaser);
        r.frame.write64(GICR_PENDBASER, r.pendbaser);
        barrier::dsb(barrier::SY);
        let ctlr = r.frame.read32(GICR_CTLR);
        r.frame.write32(GICR_CTLR, ctlr | ENABLE_LPIS);
        barrier::dsb(barrier::SY);
        if self.enabled(r) {
            Ok(())
        } else {
            Err(InterruptError::MsiUnsupported)
        }
    }

    /// Enables or disables `lpi` in the configuration table. The ITS must
    /// then be told (INV) for the change to reach the redistributor.
    pub fn configure(&self, lpi: u32, enabled: bool) {
        let Some(index) = lpi.checked_sub(FIRST_LPI) else {
            return;
        };
        if u64::from(index) >= lpi_config_bytes(LPI_ID_BITS) {
            return;
        }
        let at = self.config_virt + u64::from(index);
        // SAFETY: inside the configuration table (checked above), memory
        // allocated for it alone; its writers hold the controller's lock.
        unsafe { core::ptr::write_volatile(at as *mut u8, lpi_config_byte(LPI_PRIORITY, enabled)) };
        clean_to_poc(at, 1);
    }
}
