//! The IRQ entry: the vector table's IRQ slots (current EL, SP_EL0 and
//! SP_EL1) branch here. It saves the caller-saved registers and the
//! exception return state, lets the GIC CPU interface acknowledge the
//! interrupt, has kernel-core dispatch it, signals end-of-interrupt, and
//! returns with `eret`. Runs on the exception stack (SP_EL1) with IRQs
//! masked.

use crate::gic;
use core::arch::global_asm;
use stratus_arch::InterruptId;

global_asm!(
    r#"
    .section .text.stratus_irq_entry, "ax"
    .global stratus_irq_entry
    stratus_irq_entry:
        sub sp, sp, #192
        stp x0, x1, [sp, #0]
        stp x2, x3, [sp, #16]
        stp x4, x5, [sp, #32]
        stp x6, x7, [sp, #48]
        stp x8, x9, [sp, #64]
        stp x10, x11, [sp, #80]
        stp x12, x13, [sp, #96]
        stp x14, x15, [sp, #112]
        stp x16, x17, [sp, #128]
        stp x18, x29, [sp, #144]
        mrs x0, elr_el1
        mrs x1, spsr_el1
        stp x0, x1, [sp, #160]
        str x30, [sp, #176]
        bl {entry}
        ldp x0, x1, [sp, #160]
        msr elr_el1, x0
        msr spsr_el1, x1
        ldr x30, [sp, #176]
        ldp x18, x29, [sp, #144]
        ldp x16, x17, [sp, #128]
        ldp x14, x15, [sp, #112]
        ldp x12, x13, [sp, #96]
        ldp x10, x11, [sp, #80]
        ldp x8, x9, [sp, #64]
        ldp x6, x7, [sp, #48]
        ldp x4, x5, [sp, #32]
        ldp x2, x3, [sp, #16]
        ldp x0, x1, [sp, #0]
        add sp, sp, #192
        eret
    .text
    "#,
    entry = sym interrupt_entry,
);

static DISPATCH: spin::Once<fn(InterruptId)> = spin::Once::new();

/// Installs kernel-core's dispatcher.
pub fn set_dispatcher(dispatch: fn(InterruptId)) {
    DISPATCH.call_once(|| dispatch);
}

/// Until a dispatcher is installed: acknowledged and ended, so that a level
/// interrupt cannot fire forever.
fn ignore(_id: InterruptId) {}

extern "C" fn interrupt_entry() {
    gic::handle_pending(DISPATCH.get().copied().unwrap_or(ignore));
}
