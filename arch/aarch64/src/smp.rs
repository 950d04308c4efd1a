//! Starting secondary CPUs with PSCI `CPU_ON` (Arm DEN 0022, 5.1.4).
//!
//! The firmware starts the CPU at the physical address of
//! `stratus_secondary_entry` with the MMU and caches off and x0 = the
//! physical address of a [`StartBlock`]. That code, position-independent
//! and run at its physical address:
//! 1. masks interrupts, and drops from EL2 to EL1 when the firmware started
//!    it at EL2 (timer access for EL1, virtual MIDR/MPIDR set to the real
//!    ones, no FP/SIMD traps);
//! 2. loads MAIR, TCR, TTBR0 (an identity map of the 1 GiB around itself,
//!    see [`crate::secondary_tables`]), TTBR1 (the boot CPU's kernel
//!    tables) and CPACR from the block, invalidates the TLB, and writes the
//!    boot CPU's SCTLR_EL1, which turns the MMU and caches on;
//! 3. selects SP_EL0 (the kernel runs on it, as on the boot CPU), sets the
//!    stack and branches to the kernel entry with its argument.
//!
//! The block and the identity tables are written through cacheable
//! mappings and read by a CPU whose caches are off, so they, and the
//! start-up code itself, are cleaned to the point of coherency first.

use crate::cache::clean_to_poc;
use crate::paging::{DirectMappedTables, table_base};
use crate::power::psci_call;
use crate::secondary_tables::{self, IdentityTables};
use aarch64_cpu::registers::{
    CPACR_EL1, MAIR_EL1, MPIDR_EL1, Readable, SCTLR_EL1, TCR_EL1, TTBR1_EL1,
};
use core::arch::global_asm;
use core::mem::{offset_of, size_of};
use stratus_arch::{CpuStart, FrameSource, MapError, StartError};

/// PSCI `CPU_ON`, SMC64 calling convention.
const PSCI_CPU_ON_64: u64 = 0xc400_0003;

/// MPIDR_EL1 affinity fields: Aff3 (bits 39:32) and Aff2..Aff0 (23:0), the
/// form PSCI and the MADT's GICC entries use.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// What the start-up code reads, at a physical address, with caches off.
#[repr(C, align(64))]
struct StartBlock {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    ttbr1: u64,
    sctlr: u64,
    cpacr: u64,
    stack_top: u64,
    entry: u64,
    arg: u64,
}

global_asm!(
    r#"
    .section .text.stratus_secondary_entry, "ax"
    .balign 64
    .global stratus_secondary_entry
    stratus_secondary_entry:
        msr daifset, #0xf
        mov x19, x0
        mrs x1, CurrentEL
        cmp x1, #(2 << 2)
        b.ne 1f
        // EL2: make EL1 AArch64, give it the counters, no FP/SIMD traps,
        // the real MIDR/MPIDR, then return to EL1h with everything masked.
        mov x1, #(1 << 31)
        msr hcr_el2, x1
        mrs x1, cnthctl_el2
        orr x1, x1, #3
        msr cnthctl_el2, x1
        msr cntvoff_el2, xzr
        mov x1, #0x33ff
        msr cptr_el2, x1
        mrs x1, midr_el1
        msr vpidr_el2, x1
        mrs x1, mpidr_el1
        msr vmpidr_el2, x1
        mov x1, #0x3c5
        msr spsr_el2, x1
        adr x1, 1f
        msr elr_el2, x1
        isb
        eret
    1:  ldp x1, x2, [x19, #{off_mair}]
        msr mair_el1, x1
        msr tcr_el1, x2
        ldp x1, x2, [x19, #{off_ttbr0}]
        msr ttbr0_el1, x1
        msr ttbr1_el1, x2
        ldr x1, [x19, #{off_cpacr}]
        msr cpacr_el1, x1
        isb
        tlbi vmalle1
        dsb nsh
        isb
        ldr x1, [x19, #{off_sctlr}]
        ldp x20, x21, [x19, #{off_stack_top}]
        ldr x0, [x19, #{off_arg}]
        msr sctlr_el1, x1
        isb
        msr spsel, #0
        mov sp, x20
        mov x29, #0
        mov x30, #0
        br x21
    .global stratus_secondary_entry_end
    stratus_secondary_entry_end:
    .text
    "#,
    off_mair = const offset_of!(StartBlock, mair),
    off_ttbr0 = const offset_of!(StartBlock, ttbr0),
    off_cpacr = const offset_of!(StartBlock, cpacr),
    off_sctlr = const offset_of!(StartBlock, sctlr),
    off_stack_top = const offset_of!(StartBlock, stack_top),
    off_arg = const offset_of!(StartBlock, arg),
);

const _: () = {
    assert!(offset_of!(StartBlock, tcr) == offset_of!(StartBlock, mair) + 8);
    assert!(offset_of!(StartBlock, ttbr1) == offset_of!(StartBlock, ttbr0) + 8);
    assert!(offset_of!(StartBlock, entry) == offset_of!(StartBlock, stack_top) + 8);
    assert!(size_of::<StartBlock>() <= 4096);
};

unsafe extern "C" {
    /// The start-up code above (its address only is used).
    static stratus_secondary_entry: [u8; 0];
    /// Its end.
    static stratus_secondary_entry_end: [u8; 0];
}

/// The identity tables, built once for every secondary CPU; `None` when
/// building them failed.
static IDENTITY: spin::Once<Result<IdentityTables, MapError>> = spin::Once::new();

/// The executing CPU's MPIDR affinity fields.
pub fn hardware_id() -> u64 {
    MPIDR_EL1.get() & MPIDR_AFFINITY_MASK
}

/// Starts the CPU `start.hardware_id` with PSCI `CPU_ON`.
pub fn start_cpu(
    start: &CpuStart,
    hhdm_offset: u64,
    frames: &mut dyn FrameSource,
) -> Result<(), StartError> {
    let conduit = start.psci.ok_or(StartError::NoMethod)?;
    // SAFETY: the Limine protocol maps all memory-map entries (the loader's
    // tables and every frame the allocator hands out) in the direct map.
    // Only the boot CPU edits translation tables while CPUs are started.
    let mut tables = unsafe { DirectMappedTables::new(hhdm_offset) };
    let code_start = (&raw const stratus_secondary_entry) as u64;
    let code_end = (&raw const stratus_secondary_entry_end) as u64;
    let code = secondary_tables::translate(&tables, table_base(TTBR1_EL1.get()), code_start)
        .ok_or(StartError::Translation(MapError::BadVirtualAddress))?;
    let identity = *IDENTITY.call_once(|| {
        let built = secondary_tables::identity_tables(&mut tables, frames, code.phys, code.leaf)?;
        for table in [built.level0, built.level1] {
            clean_to_poc(table + hhdm_offset, 4096);
        }
        clean_to_poc(code_start, code_end - code_start);
        Ok(built)
    });
    let identity = identity.map_err(StartError::Translation)?;

    let block_phys = frames
        .allocate_zeroed_frame()
        .ok_or(StartError::Translation(MapError::OutOfFrames))?;
    let block_virt = block_phys + hhdm_offset;
    // SAFETY: a fresh frame from the allocator, mapped writable in the
    // direct map, used by nothing else; `StartBlock` fits in it.
    unsafe {
        (block_virt as *mut StartBlock).write(StartBlock {
            mair: MAIR_EL1.get(),
            tcr: secondary_tables::secondary_tcr(TCR_EL1.get()),
            ttbr0: identity.level0,
            ttbr1: TTBR1_EL1.get(),
            sctlr: SCTLR_EL1.get(),
            cpacr: CPACR_EL1.get(),
            stack_top: start.stack_top,
            entry: start.entry as usize as u64,
            arg: start.arg,
        });
    }
    clean_to_poc(block_virt, size_of::<StartBlock>() as u64);
    match psci_call(
        conduit,
        PSCI_CPU_ON_64,
        [start.hardware_id, code.phys, block_phys],
    ) {
        0 => Ok(()),
        code => Err(StartError::Firmware(code)),
    }
}
