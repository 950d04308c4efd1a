//! CPU exception entry and reporting.
//!
//! `VBAR_EL1` points at a table of 16 entries of 0x80 bytes (ARM DDI 0487
//! D1.3.1): four groups — current EL on SP_EL0, current EL on SP_EL1, lower
//! EL AArch64, lower EL AArch32 — of four kinds each (synchronous, IRQ, FIQ,
//! SError). Every entry saves x0..x30, the interrupted SP, `ELR_EL1`,
//! `SPSR_EL1`, `ESR_EL1` and `FAR_EL1` in an [`ExceptionFrame`] and calls
//! [`report_exception`] with the frame and the entry's index. Every
//! exception is fatal for now: the report names it, decodes the syndrome
//! and dumps the registers, then the kernel panics and the panic path stops
//! the machine.
//!
//! # Stacks
//!
//! The Limine protocol enters the kernel at EL1 with `SPSel` = 0, so the
//! kernel runs on SP_EL0. [`init`] keeps it so (switching a loader that
//! entered with `SPSel` = 1 over to SP_EL0 with the same stack pointer) and
//! points SP_EL1 at a dedicated exception stack. An exception from the
//! kernel selects SP_EL1, so the frame is saved on that stack: a kernel
//! stack overflow, or any corrupt SP_EL0, is still reported — the role of
//! the double-fault stack on x86.
//!
//! An exception while reporting one arrives through the "current EL on
//! SP_EL1" group and is saved below the first frame on the exception stack.
//! The reporter counts nesting: the second report is printed, a third
//! exception parks the CPU without printing, so a fault in the reporting
//! path (console, logger) cannot loop forever or run down the stack.
//!
//! Each secondary CPU gets its own exception stack from kernel-core
//! ([`init_secondary`]), and nesting is counted per CPU (by MPIDR
//! affinity), so exceptions reported on several CPUs at once are each
//! printed.
//!
//! Limitations: the exception stacks have no guard page (their depth is
//! bounded by the nesting limit instead). Code that
//! switches to `SPSel` = 1 itself gives up the separate stack: its faults are
//! saved on its own stack, which must then be valid.

use crate::syndrome::{self, AbortSyndrome, Vector, VectorKind};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{VBAR_EL1, Writeable};
use core::arch::{asm, global_asm};
use core::fmt;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The CPU state saved by the vector entries, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    /// x0..x30 (x29 is the frame pointer, x30 the link register).
    x: [u64; 31],
    /// The stack pointer when the exception was taken.
    sp: u64,
    /// Exception link register: the faulting or interrupted instruction.
    elr: u64,
    /// Saved program status.
    spsr: u64,
    /// Exception syndrome.
    esr: u64,
    /// Fault address (meaningful for aborts and alignment faults).
    far: u64,
    /// Index of the vector table entry (0..16).
    vector: u64,
    /// Keeps the frame a multiple of 16 bytes (SP alignment).
    _padding: u64,
}

const FRAME_SIZE: usize = size_of::<ExceptionFrame>();
const _: () = assert!(
    FRAME_SIZE.is_multiple_of(16),
    "SP must stay 16-byte aligned"
);

const EXCEPTION_STACK_BYTES: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; EXCEPTION_STACK_BYTES]);

/// SP_EL1 of the boot CPU: where exception frames and reports live.
static mut EXCEPTION_STACK: Stack = Stack([0; EXCEPTION_STACK_BYTES]);

/// Reports that may run at once on the exception stack; one more exception
/// parks the CPU.
const MAX_REPORTS: usize = 2;

/// CPUs whose nesting is counted on their own; more share one count.
const NESTING_SLOTS: usize = 256;

/// Per-CPU nesting counts: the MPIDR affinity (plus one; 0 = free slot)
/// owning each slot, and its count of reports started.
static NESTING_OWNERS: [AtomicU64; NESTING_SLOTS] = [const { AtomicU64::new(0) }; NESTING_SLOTS];
static NESTING_COUNTS: [AtomicUsize; NESTING_SLOTS] =
    [const { AtomicUsize::new(0) }; NESTING_SLOTS];
/// The count of CPUs beyond [`NESTING_SLOTS`].
static NESTING_OVERFLOW: AtomicUsize = AtomicUsize::new(0);

/// The executing CPU's count of reports started: its own slot, found or
/// claimed by its MPIDR affinity without locks (a fault handler may not
/// wait).
fn nesting_count() -> &'static AtomicUsize {
    let owner = crate::smp::hardware_id() + 1;
    for (slot, count) in NESTING_OWNERS.iter().zip(&NESTING_COUNTS) {
        match slot.compare_exchange(0, owner, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return count,
            Err(current) if current == owner => return count,
            Err(_) => {}
        }
    }
    &NESTING_OVERFLOW
}

global_asm!(
    r#"
    .section .text.stratus_exception_vectors, "ax"
    .balign 2048
    .global stratus_exception_vectors
    stratus_exception_vectors:
    .irp index, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .balign 0x80
    // IRQs from the kernel (SP_EL0 and SP_EL1 groups) are interrupts to
    // dispatch, not faults (see interrupt_entry.rs).
    .if \index == 1
        b stratus_irq_entry
    .elseif \index == 5
        b stratus_irq_entry
    .else
        sub sp, sp, #{frame_size}
        stp x0, x1, [sp, #0]
        mov x0, #\index
        b stratus_exception_common
    .endif
    .endr

    stratus_exception_common:
        stp x2, x3, [sp, #16]
        stp x4, x5, [sp, #32]
        stp x6, x7, [sp, #48]
        stp x8, x9, [sp, #64]
        stp x10, x11, [sp, #80]
        stp x12, x13, [sp, #96]
        stp x14, x15, [sp, #112]
        stp x16, x17, [sp, #128]
        stp x18, x19, [sp, #144]
        stp x20, x21, [sp, #160]
        stp x22, x23, [sp, #176]
        stp x24, x25, [sp, #192]
        stp x26, x27, [sp, #208]
        stp x28, x29, [sp, #224]
        // The interrupted SP: this very stack for the "current EL on SP_EL1"
        // entries (4..7), SP_EL0 for all others.
        sub x1, x0, #4
        cmp x1, #4
        b.lo 2f
        mrs x1, sp_el0
        b 3f
    2:  add x1, sp, #{frame_size}
    3:  stp x30, x1, [sp, #{off_x30}]
        mrs x2, elr_el1
        mrs x3, spsr_el1
        stp x2, x3, [sp, #{off_elr}]
        mrs x2, esr_el1
        mrs x3, far_el1
        stp x2, x3, [sp, #{off_esr}]
        str x0, [sp, #{off_vector}]
        mov x1, x0
        mov x0, sp
        // A zero frame pointer ends frame-record chains here.
        mov x29, #0
        bl {report}
    4:  wfi
        b 4b
    .text
    "#,
    frame_size = const FRAME_SIZE,
    off_x30 = const offset_of!(ExceptionFrame, x) + 30 * 8,
    off_elr = const offset_of!(ExceptionFrame, elr),
    off_esr = const offset_of!(ExceptionFrame, esr),
    off_vector = const offset_of!(ExceptionFrame, vector),
    report = sym report_exception,
);

const _: () = {
    assert!(offset_of!(ExceptionFrame, sp) == offset_of!(ExceptionFrame, x) + 31 * 8);
    assert!(offset_of!(ExceptionFrame, spsr) == offset_of!(ExceptionFrame, elr) + 8);
    assert!(offset_of!(ExceptionFrame, far) == offset_of!(ExceptionFrame, esr) + 8);
};

unsafe extern "C" {
    /// The vector table emitted by the assembly above (2 KiB aligned).
    static stratus_exception_vectors: [u8; 2048];
}

/// Moves the kernel onto SP_EL0 if it is not there yet, points SP_EL1 at the
/// boot CPU's exception stack, installs the vector table and unmasks SError,
/// so that asynchronous aborts are reported too.
pub fn init() {
    install((&raw const EXCEPTION_STACK) as u64 + EXCEPTION_STACK_BYTES as u64);
}

/// The same for a secondary CPU, with its own exception stack ending at
/// `stack_top`.
pub fn init_secondary(stack_top: u64) {
    install(stack_top);
}

fn install(stack_top: u64) {
    // SAFETY: the stack pointer keeps its value throughout: whichever of
    // SP_EL0 / SP_EL1 it was read from, it is copied into SP_EL0 and SP_EL0
    // is selected again at the end. SP_EL1 gets the top of a stack used by
    // nothing else (the caller's contract); `msr sp_el0` is legal at EL1
    // while SPSel = 1. Interrupts are masked (boot, or CPU start-up), and
    // nothing here can fault.
    unsafe {
        asm!(
            "mov {kernel_sp}, sp",
            "msr spsel, #1",
            "mov sp, {stack_top}",
            "msr sp_el0, {kernel_sp}",
            "msr spsel, #0",
            kernel_sp = out(reg) _,
            stack_top = in(reg) stack_top,
            options(nomem, nostack, preserves_flags),
        );
    }
    let vectors = (&raw const stratus_exception_vectors) as u64;
    debug_assert!(vectors.is_multiple_of(2048));
    VBAR_EL1.set(vectors);
    barrier::isb(barrier::SY);
    // SAFETY: clearing PSTATE.A lets SErrors be taken; the vectors are in
    // place to report them. No memory is touched.
    unsafe { asm!("msr daifclr, #4", options(nomem, nostack, preserves_flags)) };
}

/// Masks all exceptions that can be masked and waits forever.
fn park() -> ! {
    // SAFETY: masking D, A, I and F touches no memory.
    unsafe {
        asm!(
            "msr daifset, #0xf",
            options(nomem, nostack, preserves_flags)
        )
    };
    loop {
        aarch64_cpu::asm::wfi();
    }
}

/// The fault address and decoded fault status, where the syndrome has them:
/// ` addr=0x... (translation fault at level 1, read)`.
struct FaultDetail {
    synchronous: bool,
    esr: u64,
    far: u64,
}

impl fmt::Display for FaultDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.synchronous {
            return Ok(());
        }
        if syndrome::fault_address_valid(self.esr) {
            write!(f, " addr={:#x}", self.far)?;
        } else if syndrome::is_abort(self.esr) {
            f.write_str(" addr=unknown")?;
        }
        if let Some(abort) = AbortSyndrome::new(self.esr) {
            write!(f, " ({abort})")?;
        }
        Ok(())
    }
}

/// One register of the dump: `x7 =0000000000000000`.
struct Register<'a>(&'a ExceptionFrame, usize);

impl fmt::Display for Register<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Register(frame, i) = *self;
        match i {
            0..=9 => write!(f, "x{i} ={:016x}", frame.x[i]),
            10..=30 => write!(f, "x{i}={:016x}", frame.x[i]),
            _ => write!(f, "sp ={:016x}", frame.sp),
        }
    }
}

/// Called by the vector entries with the saved state and the entry's index;
/// reports the exception and panics.
extern "C" fn report_exception(frame: &ExceptionFrame, index: u64) -> ! {
    let depth = nesting_count().fetch_add(1, Ordering::SeqCst);
    if depth >= MAX_REPORTS {
        park();
    }
    let vector = Vector::from_index(index);
    let name = syndrome::exception_name(vector, frame.esr);
    let nested = if depth > 0 {
        " while reporting another"
    } else {
        ""
    };
    let detail = FaultDetail {
        synchronous: vector.kind == VectorKind::Synchronous,
        esr: frame.esr,
        far: frame.far,
    };
    log::error!(
        "CPU exception: {name}{nested}, vector {index} ({vector}) at elr={:#x} esr={:#x}{detail}",
        frame.elr,
        frame.esr
    );
    for row in 0..8 {
        let r = |column: usize| Register(frame, row * 4 + column);
        log::error!("{} {} {} {}", r(0), r(1), r(2), r(3));
    }
    log::error!(
        "elr={:016x} spsr={:016x} esr={:016x} far={:016x}",
        frame.elr,
        frame.spsr,
        frame.esr,
        frame.far
    );
    panic!("fatal CPU exception: {name}");
}
