//! Reading a device register that may not be there. Firmware tables can
//! name register blocks that do not exist: QEMU's `virt` machine with
//! `its=off` still lists its GIC ITS in the MADT, and a read of the absent
//! frame is a synchronous external abort. [`read32`] makes that read with
//! one load instruction whose abort the exception entry turns into a
//! return to a fixup (see `exceptions.rs`), so the caller learns "no
//! answer" instead of the kernel stopping. An implementation that reports
//! such aborts asynchronously (SError) is not covered.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.stratus_probe, "ax"
    .global stratus_probe_read32
    stratus_probe_read32:
        mov x1, x0
    .global stratus_probe_load
    stratus_probe_load:
        ldr w0, [x1]
        orr x0, x0, #0x100000000
        ret
    .global stratus_probe_fixup
    stratus_probe_fixup:
        mov x0, #0
        ret
    .text
    "#
);

unsafe extern "C" {
    /// Bit 32 set and the value in bits 31:0, or 0 when the load aborted.
    fn stratus_probe_read32(virt: u64) -> u64;
}

/// The 32-bit register at `virt`, or `None` when reading it aborts.
///
/// # Safety
/// `virt` must be mapped (device attributes) and 4-byte aligned, and a read
/// of the register must have no side effect the caller does not want.
pub unsafe fn read32(virt: u64) -> Option<u32> {
    // SAFETY: the caller's contract; the routine touches x0-x1 only, as
    // the C calling convention allows, and returns normally either way.
    let raw = unsafe { stratus_probe_read32(virt) };
    (raw >> 32 == 1).then_some(raw as u32)
}
