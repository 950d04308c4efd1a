//! CPU exception entry and reporting.
//!
//! Stable Rust has no `extern "x86-interrupt"`, so each of the 32 exception
//! vectors gets a small assembly stub: it pushes a zero error code where the
//! CPU pushes none, then the vector number, then all general registers, and
//! calls [`report_exception`] with a pointer to the resulting
//! [`ExceptionFrame`]. Every exception is fatal for now: the report names the
//! exception, the faulting address and the registers, then the kernel
//! panics, and the panic path stops the machine.

use crate::gdt::DOUBLE_FAULT_IST_INDEX;
use core::arch::global_asm;
use spin::Once;
use x86_64::VirtAddr;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::InterruptDescriptorTable;

/// The CPU state saved by the stubs, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    rax: u64,
    rbx: u64,
    rcx: u64,
    rdx: u64,
    rsi: u64,
    rdi: u64,
    rbp: u64,
    r8: u64,
    r9: u64,
    r10: u64,
    r11: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

// Vectors whose exceptions push an error code (Intel SDM vol. 3A, table 6-1).
global_asm!(
    r#"
    .macro STRATUS_EXCEPTION_STUB vector, has_error_code
    .p2align 4
    stratus_exception_stub_\vector:
    .if \has_error_code == 0
        push 0
    .endif
        push \vector
        jmp stratus_exception_common
    .endm

    .section .text.stratus_exceptions, "ax"
    .irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
        STRATUS_EXCEPTION_STUB \v, 0
    .endr
    .irp v, 8,10,11,12,13,14,17,21,29,30
        STRATUS_EXCEPTION_STUB \v, 1
    .endr

    stratus_exception_common:
        push r15
        push r14
        push r13
        push r12
        push r11
        push r10
        push r9
        push r8
        push rbp
        push rdi
        push rsi
        push rdx
        push rcx
        push rbx
        push rax
        mov rdi, rsp
        cld
        call {report}
        ud2

    // Absolute addresses, so the table is relocated when the kernel is placed
    // (PIE): it lives with the other relocated constants, not in read-only data.
    .section .data.rel.ro.stratus_exceptions, "aw"
    .p2align 3
    .global stratus_exception_stubs
    stratus_exception_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad stratus_exception_stub_\v
    .endr
    .text
    "#,
    report = sym report_exception,
);

unsafe extern "C" {
    /// Addresses of the 32 stubs, indexed by vector.
    static stratus_exception_stubs: [u64; 32];
}

/// Exception names by vector (Intel SDM vol. 3A, table 6-1).
const NAMES: [&str; 32] = [
    "divide error (#DE)",
    "debug (#DB)",
    "non-maskable interrupt",
    "breakpoint (#BP)",
    "overflow (#OF)",
    "bound range exceeded (#BR)",
    "invalid opcode (#UD)",
    "device not available (#NM)",
    "double fault (#DF)",
    "coprocessor segment overrun",
    "invalid TSS (#TS)",
    "segment not present (#NP)",
    "stack-segment fault (#SS)",
    "general protection fault (#GP)",
    "page fault (#PF)",
    "reserved (15)",
    "x87 floating-point error (#MF)",
    "alignment check (#AC)",
    "machine check (#MC)",
    "SIMD floating-point exception (#XM)",
    "virtualization exception (#VE)",
    "control protection exception (#CP)",
    "reserved (22)",
    "reserved (23)",
    "reserved (24)",
    "reserved (25)",
    "reserved (26)",
    "reserved (27)",
    "hypervisor injection exception (#HV)",
    "VMM communication exception (#VC)",
    "security exception (#SX)",
    "reserved (31)",
];

static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Builds and loads the IDT with a stub for every exception vector.
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: `stratus_exception_stubs` is the constant table emitted by
        // the assembly above: 32 valid code addresses.
        let stubs = unsafe { &stratus_exception_stubs };
        let addr = |vector: usize| VirtAddr::new(stubs[vector]);
        // SAFETY: each address is the stub for that very vector, which saves
        // the CPU state and never returns, matching every entry's handler
        // contract; the double-fault IST slot holds a dedicated stack set up
        // by `gdt::init`.
        unsafe {
            idt.divide_error.set_handler_addr(addr(0));
            idt.debug.set_handler_addr(addr(1));
            idt.non_maskable_interrupt.set_handler_addr(addr(2));
            idt.breakpoint.set_handler_addr(addr(3));
            idt.overflow.set_handler_addr(addr(4));
            idt.bound_range_exceeded.set_handler_addr(addr(5));
            idt.invalid_opcode.set_handler_addr(addr(6));
            idt.device_not_available.set_handler_addr(addr(7));
            idt.double_fault
                .set_handler_addr(addr(8))
                .set_stack_index(DOUBLE_FAULT_IST_INDEX);
            idt.invalid_tss.set_handler_addr(addr(10));
            idt.segment_not_present.set_handler_addr(addr(11));
            idt.stack_segment_fault.set_handler_addr(addr(12));
            idt.general_protection_fault.set_handler_addr(addr(13));
            idt.page_fault.set_handler_addr(addr(14));
            idt.x87_floating_point.set_handler_addr(addr(16));
            idt.alignment_check.set_handler_addr(addr(17));
            idt.machine_check.set_handler_addr(addr(18));
            idt.simd_floating_point.set_handler_addr(addr(19));
            idt.virtualization.set_handler_addr(addr(20));
            idt.cp_protection_exception.set_handler_addr(addr(21));
            idt.hv_injection_exception.set_handler_addr(addr(28));
            idt.vmm_communication_exception.set_handler_addr(addr(29));
            idt.security_exception.set_handler_addr(addr(30));
        }
        crate::interrupts::install(&mut idt);
        idt
    });
    idt.load();
}

/// Called by the stubs; reports the exception and panics.
extern "C" fn report_exception(frame: &ExceptionFrame) -> ! {
    let vector = frame.vector as usize;
    let name = NAMES.get(vector).copied().unwrap_or("unknown");
    if vector == 14 {
        let address = Cr2::read_raw();
        log::error!(
            "CPU exception: {name}, vector {vector}, error code {:#x} ({}, {}, {}) at rip={:#x} addr={address:#x}",
            frame.error_code,
            if frame.error_code & 1 != 0 {
                "protection violation"
            } else {
                "page not present"
            },
            if frame.error_code & 2 != 0 {
                "write"
            } else {
                "read"
            },
            if frame.error_code & 16 != 0 {
                "instruction fetch"
            } else {
                "data"
            },
            frame.rip,
        );
    } else {
        log::error!(
            "CPU exception: {name}, vector {vector}, error code {:#x} at rip={:#x}",
            frame.error_code,
            frame.rip
        );
    }
    let f = frame;
    log::error!(
        "rax={:016x} rbx={:016x} rcx={:016x} rdx={:016x}",
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx
    );
    log::error!(
        "rsi={:016x} rdi={:016x} rbp={:016x} rsp={:016x}",
        f.rsi,
        f.rdi,
        f.rbp,
        f.rsp
    );
    log::error!(
        "r8 ={:016x} r9 ={:016x} r10={:016x} r11={:016x}",
        f.r8,
        f.r9,
        f.r10,
        f.r11
    );
    log::error!(
        "r12={:016x} r13={:016x} r14={:016x} r15={:016x}",
        f.r12,
        f.r13,
        f.r14,
        f.r15
    );
    log::error!(
        "rip={:016x} rflags={:016x} cs={:#x} ss={:#x}",
        f.rip,
        f.rflags,
        f.cs,
        f.ss
    );
    panic!("fatal CPU exception: {name}");
}
