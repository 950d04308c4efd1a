//! Starting application processors: INIT and startup IPIs (Intel SDM vol.
//! 3, 9.4.4) and a real-mode start-up routine.
//!
//! A startup IPI starts a CPU in real mode at `vector << 12`, so the routine
//! runs from a page below 1 MiB that kernel-core found in the memory map
//! ([`CpuStart::low_memory`]). It is copied there with a data block, and
//! three more pages hold temporary page tables: the kernel half of the boot
//! CPU's PML4, plus an identity map of the first 2 MiB (the routine itself).
//! The routine:
//! 1. loads its own GDT and enters protected mode;
//! 2. sets CR4 (the boot CPU's, less PCIDE), CR3 (the temporary tables),
//!    EFER (the boot CPU's: long mode, no-execute) and CR0 (paging on);
//! 3. in 64-bit mode sets the boot CPU's full CR4, the stack, and jumps to
//!    `stratus_ap_kernel_stub` in the kernel half, which loads the kernel's
//!    own CR3 and calls the kernel entry.
//!
//! Kernel code then loads this CPU's GDT, TSS and the IDT
//! ([`crate::gdt::init_secondary`]).
//!
//! IPIs are sent through the boot CPU's local APIC as interrupt setup left
//! it ([`crate::local_apic`]): x2APIC mode when the CPU offers it, the xAPIC
//! registers otherwise (8-bit APIC ids only).

use crate::local_apic::{self, ICR_ASSERT};
use core::arch::global_asm;
use core::mem::offset_of;
use stratus_arch::{CpuStart, STARTUP_LOW_MEMORY_BYTES, StartError};
use x86_64::registers::control::{Cr0, Cr3, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Efer;

/// Where the data block sits in the routine's page.
const DATA_OFFSET: usize = 0x800;
const PAGE: u64 = 4096;

/// What the routine reads, at `low_memory + DATA_OFFSET`.
#[repr(C, packed)]
struct StartupData {
    gdt: [u64; 4],
    cr0: u64,
    cr4_32: u64,
    cr4_64: u64,
    efer: u64,
    temporary_cr3: u64,
    kernel_cr3: u64,
    stack_top: u64,
    entry: u64,
    arg: u64,
    stub: u64,
    gdtr_limit: u16,
    gdtr_base: u32,
    protected_far_offset: u32,
    protected_far_selector: u16,
    long_far_offset: u32,
    long_far_selector: u16,
}

/// Flat 32-bit code, flat data, 64-bit code.
const STARTUP_GDT: [u64; 4] = [
    0,
    0x00cf_9a00_0000_ffff,
    0x00cf_9200_0000_ffff,
    0x00af_9a00_0000_ffff,
];
const CODE32: u16 = 0x08;
const CODE64: u16 = 0x18;

global_asm!(
    r#"
    .section .rodata.stratus_ap_startup, "a"
    .balign 16
    .global stratus_ap_startup
    stratus_ap_startup:
    .code16
        cli
        cld
        movw %cs, %ax
        movw %ax, %ds
        xorl %ebx, %ebx
        movw %ax, %bx
        shll $4, %ebx
        lgdtl {gdtr}
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        ljmpl *{protected_far}
    .code32
    .global stratus_ap_startup_protected
    stratus_ap_startup_protected:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl {cr4_32}(%ebx), %eax
        movl %eax, %cr4
        movl {temporary_cr3}(%ebx), %eax
        movl %eax, %cr3
        movl $0xc0000080, %ecx
        movl {efer}(%ebx), %eax
        movl {efer_high}(%ebx), %edx
        wrmsr
        movl {cr0}(%ebx), %eax
        movl %eax, %cr0
        ljmpl *{long_far}(%ebx)
    .code64
    .global stratus_ap_startup_long
    stratus_ap_startup_long:
        movl %ebx, %ebx
        movq {cr4_64}(%rbx), %rax
        movq %rax, %cr4
        movq {stack_top}(%rbx), %rsp
        movq {arg}(%rbx), %rdi
        movq {kernel_cr3}(%rbx), %rsi
        movq {entry}(%rbx), %rdx
        movq {stub}(%rbx), %rax
        jmpq *%rax
    .global stratus_ap_startup_end
    stratus_ap_startup_end:

    .text
    .global stratus_ap_kernel_stub
    stratus_ap_kernel_stub:
        movq %rsi, %cr3
        xorl %ebp, %ebp
        callq *%rdx
        ud2
    "#,
    gdtr = const DATA_OFFSET + offset_of!(StartupData, gdtr_limit),
    protected_far = const DATA_OFFSET + offset_of!(StartupData, protected_far_offset),
    cr4_32 = const DATA_OFFSET + offset_of!(StartupData, cr4_32),
    temporary_cr3 = const DATA_OFFSET + offset_of!(StartupData, temporary_cr3),
    efer = const DATA_OFFSET + offset_of!(StartupData, efer),
    efer_high = const DATA_OFFSET + offset_of!(StartupData, efer) + 4,
    cr0 = const DATA_OFFSET + offset_of!(StartupData, cr0),
    long_far = const DATA_OFFSET + offset_of!(StartupData, long_far_offset),
    cr4_64 = const DATA_OFFSET + offset_of!(StartupData, cr4_64),
    stack_top = const DATA_OFFSET + offset_of!(StartupData, stack_top),
    arg = const DATA_OFFSET + offset_of!(StartupData, arg),
    kernel_cr3 = const DATA_OFFSET + offset_of!(StartupData, kernel_cr3),
    entry = const DATA_OFFSET + offset_of!(StartupData, entry),
    stub = const DATA_OFFSET + offset_of!(StartupData, stub),
    options(att_syntax),
);

const _: () = {
    assert!(offset_of!(StartupData, gdtr_base) == offset_of!(StartupData, gdtr_limit) + 2);
    assert!(
        offset_of!(StartupData, protected_far_selector)
            == offset_of!(StartupData, protected_far_offset) + 4
    );
    assert!(
        offset_of!(StartupData, long_far_selector) == offset_of!(StartupData, long_far_offset) + 4
    );
    assert!(DATA_OFFSET + core::mem::size_of::<StartupData>() <= PAGE as usize);
};

unsafe extern "C" {
    static stratus_ap_startup: [u8; 0];
    static stratus_ap_startup_protected: [u8; 0];
    static stratus_ap_startup_long: [u8; 0];
    static stratus_ap_startup_end: [u8; 0];
    static stratus_ap_kernel_stub: [u8; 0];
}

/// ICR delivery modes (SDM vol. 3, 11.6.1).
const ICR_INIT: u32 = 0b101 << 8;
const ICR_STARTUP: u32 = 0b110 << 8;

/// Copies the routine and its data to `low` and builds the temporary
/// tables; returns the startup IPI vector.
fn prepare(start: &CpuStart, low: u64, hhdm_offset: u64) -> Result<u8, StartError> {
    if Cr4::read().contains(Cr4Flags::L5_PAGING) {
        log::warn!("5-level paging: CPUs are not started");
        return Err(StartError::NoMethod);
    }
    let vector = u8::try_from(low / PAGE)
        .ok()
        .filter(|_| low.is_multiple_of(PAGE) && low + STARTUP_LOW_MEMORY_BYTES <= 0x10_0000)
        .ok_or(StartError::NoMethod)?;
    let code_start = (&raw const stratus_ap_startup) as u64;
    let code_len = (&raw const stratus_ap_startup_end) as u64 - code_start;
    let offset_of_symbol = |symbol: u64| (symbol - code_start) as u32;
    let (kernel_pml4, _) = Cr3::read_raw();
    let kernel_cr3 = kernel_pml4.start_address().as_u64();
    let (pml4, pdpt, pd) = (low + PAGE, low + 2 * PAGE, low + 3 * PAGE);
    let virt = |phys: u64| (phys + hhdm_offset) as *mut u64;
    let low32 = low as u32;
    let data = StartupData {
        gdt: STARTUP_GDT,
        cr0: Cr0::read_raw(),
        cr4_32: Cr4::read_raw() & !Cr4Flags::PCID.bits(),
        cr4_64: Cr4::read_raw(),
        efer: Efer::read_raw(),
        temporary_cr3: pml4,
        kernel_cr3,
        stack_top: start.stack_top,
        entry: start.entry as usize as u64,
        arg: start.arg,
        stub: (&raw const stratus_ap_kernel_stub) as u64,
        gdtr_limit: (core::mem::size_of_val(&STARTUP_GDT) - 1) as u16,
        gdtr_base: low32 + (DATA_OFFSET + offset_of!(StartupData, gdt)) as u32,
        protected_far_offset: low32
            + offset_of_symbol((&raw const stratus_ap_startup_protected) as u64),
        protected_far_selector: CODE32,
        long_far_offset: low32 + offset_of_symbol((&raw const stratus_ap_startup_long) as u64),
        long_far_selector: CODE64,
    };
    // SAFETY: the four pages at `low` are usable RAM below 1 MiB reserved
    // for this routine by kernel-core (the frame allocator never hands out
    // memory below 1 MiB), mapped in the direct map; the routine is shorter
    // than DATA_OFFSET (checked below) and the data block fits the page.
    // The kernel PML4 is read through the direct map.
    unsafe {
        if code_len as usize > DATA_OFFSET {
            return Err(StartError::NoMethod);
        }
        core::ptr::copy_nonoverlapping(
            code_start as *const u8,
            virt(low).cast::<u8>(),
            code_len as usize,
        );
        virt(low)
            .cast::<u8>()
            .add(DATA_OFFSET)
            .cast::<StartupData>()
            .write_unaligned(data);
        for table in [pml4, pdpt, pd] {
            core::ptr::write_bytes(virt(table), 0, 512);
        }
        const PRESENT_WRITABLE: u64 = 0b11;
        const HUGE: u64 = 1 << 7;
        let kernel = virt(kernel_cr3);
        for i in 256..512 {
            virt(pml4).add(i).write(kernel.add(i).read());
        }
        virt(pml4).write(pdpt | PRESENT_WRITABLE);
        virt(pdpt).write(pd | PRESENT_WRITABLE);
        // The first 2 MiB, identity-mapped: the routine and these tables.
        virt(pd).write(PRESENT_WRITABLE | HUGE);
    }
    Ok(vector)
}

/// Starts the CPU with local APIC id `start.hardware_id`.
pub fn start_cpu(start: &CpuStart, hhdm_offset: u64) -> Result<(), StartError> {
    let low = start.low_memory.ok_or(StartError::NoMethod)?;
    let Some(lapic) = local_apic::get() else {
        log::warn!("the local APIC is not set up (no MADT?): CPUs are not started");
        return Err(StartError::NoMethod);
    };
    let target = u32::try_from(start.hardware_id).map_err(|_| StartError::NoMethod)?;
    let vector = prepare(start, low, hhdm_offset)?;
    let send = |command: u32| {
        lapic.send_command(target, command).map_err(|e| {
            log::warn!("IPI to APIC {target:#x}: {e}");
            StartError::NoMethod
        })
    };
    send(ICR_INIT | ICR_ASSERT)?;
    (start.delay_us)(10_000);
    for _ in 0..2 {
        send(ICR_STARTUP | ICR_ASSERT | u32::from(vector))?;
        (start.delay_us)(200);
    }
    Ok(())
}
