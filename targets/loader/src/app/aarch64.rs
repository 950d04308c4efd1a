//! AArch64: generic timer, exception level, cache maintenance, and the handoff.

use core::arch::{asm, global_asm};

use stratus_loader::paging::Format;

use super::error::LoaderError;

/// Reads the virtual counter (`CNTVCT_EL0`).
pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading CNTVCT_EL0 is allowed at EL1/EL2 and has no side effects;
    // the ISB orders it after earlier instructions.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// Microseconds between two [`counter`] readings (`CNTFRQ_EL0` ticks per second).
pub fn elapsed_us(start: u64, end: u64) -> u64 {
    let freq: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) freq, options(nomem, nostack)) };
    (u128::from(end.wrapping_sub(start)) * 1_000_000 / u128::from(freq.max(1))) as u64
}

/// CPU features the page tables depend on.
pub struct Cpu {
    /// Descriptor format.
    pub format: Format,
    /// 1 GiB blocks (always, with a 4 KiB granule).
    pub gib_pages: bool,
    /// Not checked on AArch64 (`TCR_EL1.IPS` comes from `PARange`).
    pub max_phys_bits: Option<u32>,
}

/// Detects the features.
pub fn cpu() -> Cpu {
    Cpu {
        format: Format::Aarch64,
        gib_pages: true,
        max_phys_bits: None,
    }
}

/// `ID_AA64MMFR0_EL1.PARange`.
pub fn pa_range() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) v, options(nomem, nostack)) };
    v & 0xf
}

fn current_el() -> u64 {
    let v: u64;
    // SAFETY: reading CurrentEL has no side effects.
    unsafe { asm!("mrs {}, CurrentEL", out(reg) v, options(nomem, nostack)) };
    (v >> 2) & 3
}

/// The kernel is entered at EL1; the loader can start from EL1 or drop from EL2.
/// Checked while errors can still be printed.
pub fn check_cpu() -> Result<(), LoaderError> {
    match current_el() {
        1 | 2 => Ok(()),
        el => Err(LoaderError::ExceptionLevel(el)),
    }
}

/// Cleans the data cache to the point of coherency over freshly written code or
/// data that will be read with the MMU briefly off (the I-cache is invalidated in
/// the trampoline).
pub fn sync_code(phys: u64, len: usize) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    let line = 4u64 << ((ctr >> 16) & 0xf);
    let mut addr = phys & !(line - 1);
    while addr < phys + len as u64 {
        // SAFETY: DC CVAC on an address the loader owns (identity-mapped) only
        // writes dirty lines back; it changes no data.
        unsafe { asm!("dc cvac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// No I/O APICs on AArch64.
pub struct IoApics;

/// No I/O APICs on AArch64.
pub fn find_ioapics(_rsdp: Option<u64>) -> IoApics {
    IoApics
}

/// No known console after `ExitBootServices`.
pub fn emergency_print(_msg: &str) {}

/// Everything the trampoline needs, read into registers before anything changes.
#[repr(C)]
pub struct Handoff {
    /// Kernel entry point.
    pub entry: u64,
    /// Top of the kernel stack (HHDM address, 16-byte aligned).
    pub stack_top: u64,
    /// `SCTLR_EL1` at entry.
    pub sctlr: u64,
    /// `MAIR_EL1`.
    pub mair: u64,
    /// `TCR_EL1`.
    pub tcr: u64,
    /// `TTBR0_EL1` during the switch (maps the trampoline at its address).
    pub ttbr0_switch: u64,
    /// `TTBR1_EL1` (higher half).
    pub ttbr1: u64,
    /// HHDM offset.
    pub hhdm: u64,
    /// `TTBR0_EL1` at entry.
    pub ttbr0_final: u64,
}

// The trampoline. Fields of `Handoff` go to x19..x27 first.
//
// EL1 (the usual case under UEFI): with interrupts masked, turn the MMU off
// (the code runs at its physical = identity address, and touches no memory
// until the MMU is on again), load MAIR/TCR/TTBR0/TTBR1, invalidate TLBs and the
// I-cache, turn the MMU on with Limine's SCTLR value, continue at the HHDM alias,
// load the final TTBR0, invalidate TLBs, and ERET to the kernel in EL1t with DAIF
// masked and SP_EL0 = the new stack.
//
// EL2: like Limine's `enter_in_el1`, configure the EL1 translation registers
// (through the *_EL12 encodings if HCR_EL2.E2H is set), give EL1 the counters
// and FP/SIMD, set HCR_EL2 = RW | SWIO, and ERET to EL1t.
global_asm!(
    ".section .text",
    ".balign 16",
    ".global stratus_trampoline_start",
    ".global stratus_trampoline_end",
    ".global stratus_handoff",
    "stratus_trampoline_start:",
    "stratus_handoff:",
    "msr daifset, #0xf",
    "ldp x19, x20, [x0, #0]",
    "ldp x21, x22, [x0, #16]",
    "ldp x23, x24, [x0, #32]",
    "ldp x25, x26, [x0, #48]",
    "ldr x27, [x0, #64]",
    "dsb sy",
    "isb",
    "mrs x9, CurrentEL",
    "and x9, x9, #0xc",
    "cmp x9, #0x8",
    "b.eq 20f",
    "cmp x9, #0x4",
    "b.ne 90f",
    // EL1
    "mrs x9, sctlr_el1",
    "bic x9, x9, #1",
    "msr sctlr_el1, x9",
    "isb",
    "msr mair_el1, x22",
    "msr tcr_el1, x23",
    "msr ttbr0_el1, x24",
    "msr ttbr1_el1, x25",
    "isb",
    "tlbi vmalle1",
    "dsb nsh",
    "ic iallu",
    "dsb nsh",
    "isb",
    "msr sctlr_el1, x21",
    "isb",
    "adr x9, 10f",
    "add x9, x9, x26",
    "br x9",
    "10:",
    "msr ttbr0_el1, x27",
    "isb",
    "tlbi vmalle1",
    "dsb nsh",
    "isb",
    "mrs x9, cpacr_el1",
    "orr x9, x9, #(3 << 20)",
    "msr cpacr_el1, x9",
    "msr spsel, #0",
    "mov sp, x20",
    "mov x9, #0x3c4",
    "msr spsr_el1, x9",
    "msr elr_el1, x19",
    "b 30f",
    // EL2
    "20:",
    "mrs x9, hcr_el2",
    "tbnz x9, #34, 21f",
    "msr mair_el1, x22",
    "msr tcr_el1, x23",
    "msr ttbr0_el1, x27",
    "msr ttbr1_el1, x25",
    "msr sctlr_el1, x21",
    "mov x9, #(3 << 20)",
    "msr cpacr_el1, x9",
    "b 22f",
    "21:",
    "msr S3_5_C10_C2_0, x22", // MAIR_EL12
    "msr S3_5_C2_C0_2, x23",  // TCR_EL12
    "msr S3_5_C2_C0_0, x27",  // TTBR0_EL12
    "msr S3_5_C2_C0_1, x25",  // TTBR1_EL12
    "msr S3_5_C1_C0_0, x21",  // SCTLR_EL12
    "mov x9, #(3 << 20)",
    "msr S3_5_C1_C0_2, x9", // CPACR_EL12
    "22:",
    "mrs x9, cnthctl_el2",
    "orr x9, x9, #3",
    "msr cnthctl_el2, x9",
    "msr cntvoff_el2, xzr",
    "movz x9, #0x8000, lsl #16",
    "orr x9, x9, #2",
    "msr hcr_el2, x9",
    "mov x9, #0x33ff",
    "msr cptr_el2, x9",
    "msr hstr_el2, xzr",
    "isb",
    "tlbi vmalle1",
    "dsb nsh",
    "ic iallu",
    "dsb nsh",
    "isb",
    "msr sp_el0, x20",
    "mov x9, #0x3c4",
    "msr spsr_el2, x9",
    "msr elr_el2, x19",
    // Common exit: zero the general purpose registers, enter the kernel.
    "30:",
    "mov x0, xzr",
    "mov x1, xzr",
    "mov x2, xzr",
    "mov x3, xzr",
    "mov x4, xzr",
    "mov x5, xzr",
    "mov x6, xzr",
    "mov x7, xzr",
    "mov x8, xzr",
    "mov x9, xzr",
    "mov x10, xzr",
    "mov x11, xzr",
    "mov x12, xzr",
    "mov x13, xzr",
    "mov x14, xzr",
    "mov x15, xzr",
    "mov x16, xzr",
    "mov x17, xzr",
    "mov x18, xzr",
    "mov x19, xzr",
    "mov x20, xzr",
    "mov x21, xzr",
    "mov x22, xzr",
    "mov x23, xzr",
    "mov x24, xzr",
    "mov x25, xzr",
    "mov x26, xzr",
    "mov x27, xzr",
    "mov x28, xzr",
    "mov x29, xzr",
    "mov x30, xzr",
    "eret",
    // Neither EL1 nor EL2 (checked before): stop.
    "90:",
    "wfi",
    "b 90b",
    "stratus_trampoline_end:",
);

unsafe extern "C" {
    fn stratus_handoff(args: *const Handoff) -> !;
}

/// Switches to the kernel's page tables and enters it.
///
/// # Safety
///
/// Boot services must have ended; `args` must describe page tables that map the
/// trampoline at its physical address (TTBR0 during the switch) and at its HHDM
/// alias, the stack and the kernel, all in memory nothing else uses, and the
/// trampoline and kernel code must have been cleaned to the point of coherency.
pub unsafe fn enter(args: &Handoff, _ioapics: &IoApics) -> ! {
    let (start, len) = super::trampoline();
    sync_code(start, len as usize);
    // SAFETY: the caller's contract is the trampoline's contract.
    unsafe { stratus_handoff(args) }
}
