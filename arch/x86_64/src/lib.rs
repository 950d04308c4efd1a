//! x86_64 implementation of [`stratus_arch::Arch`].
//!
//! GDT with a TSS whose first interrupt stack serves double faults, an IDT
//! whose exception stubs report the CPU state, the TSC as clock, 4-level
//! paging through the `x86_64` crate for device mappings, port I/O,
//! power-off through QEMU's debug-exit device when under the test harness,
//! and interrupts: the legacy PIC masked, the local APIC (x2APIC or xAPIC),
//! I/O APICs routed after the MADT's overrides, and the local APIC timer
//! (TSC-deadline, or one-shot calibrated against the ACPI PM timer).
#![no_std]

extern crate alloc;

mod clock;
mod cpu_info;
mod exceptions;
mod gdt;
mod interrupts;
mod io_apic;
mod lapic_timer;
mod local_apic;
mod paging;
mod pic;
mod ports;
mod power;
mod smp;

use stratus_arch::interrupts::MapRegisters;
use stratus_arch::{
    Arch, Clock, Cpu, CpuStart, DeviceMapper, DeviceMapping, ExitStatus, FrameSource,
    InterruptError, InterruptHardware, InterruptId, InterruptSetup, MapError, Multiprocessor,
    PortIo, Power, PowerMethods, StartError, TimerDescription,
};

/// The GS segment base MSR: the per-CPU register.
const IA32_GS_BASE: u32 = 0xc000_0101;

/// The x86_64 architecture.
pub struct X86_64;

impl Arch for X86_64 {
    const NAME: &'static str = "x86_64";
    const LEGACY_CONSOLE_PORT: Option<u16> = Some(0x3f8);

    fn port_io() -> Option<PortIo> {
        Some(ports::PORT_IO)
    }
}

impl Cpu for X86_64 {
    fn init_exceptions() {
        gdt::init();
        exceptions::init();
    }

    fn enable_interrupts() {
        x86_64::instructions::interrupts::enable();
    }

    fn disable_interrupts() {
        x86_64::instructions::interrupts::disable();
    }

    fn wait_for_interrupt() {
        x86_64::instructions::hlt();
    }

    fn describe(out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        cpu_info::describe(out)
    }
}

impl Clock for X86_64 {
    fn ticks() -> u64 {
        clock::read_tsc()
    }

    fn ticks_per_second() -> Option<u64> {
        clock::tsc_frequency_from_cpuid()
    }
}

impl DeviceMapper for X86_64 {
    fn map_device(
        mapping: DeviceMapping,
        hhdm_offset: u64,
        frames: &mut dyn FrameSource,
    ) -> Result<(), MapError> {
        paging::map_device(mapping, hhdm_offset, frames)
    }

    fn map_memory(
        mapping: DeviceMapping,
        hhdm_offset: u64,
        frames: &mut dyn FrameSource,
    ) -> Result<(), MapError> {
        paging::map_memory(mapping, hhdm_offset, frames)
    }
}

impl Multiprocessor for X86_64 {
    fn hardware_id() -> u64 {
        cpu_info::apic_id()
    }

    fn start_cpu(
        start: &CpuStart,
        hhdm_offset: u64,
        _frames: &mut dyn FrameSource,
    ) -> Result<(), StartError> {
        smp::start_cpu(start, hhdm_offset)
    }

    fn init_secondary_exceptions(exception_stack_top: u64) {
        gdt::init_secondary(exception_stack_top);
        exceptions::init();
    }

    fn run_on_stack(stack_top: u64, entry: stratus_arch::SecondaryEntry, arg: u64) -> ! {
        // SAFETY: the caller hands over a mapped, 16-byte aligned stack that
        // nothing else uses; `entry` never returns, so nothing on the old
        // stack is used again. `call` leaves the stack aligned as the
        // System V ABI expects at function entry.
        unsafe {
            core::arch::asm!(
                "mov rsp, {top}",
                "xor ebp, ebp",
                "call {entry}",
                "ud2",
                top = in(reg) stack_top,
                entry = in(reg) entry,
                in("rdi") arg,
                options(noreturn)
            )
        }
    }

    fn set_cpu_local(value: u64) {
        // SAFETY: IA32_GS_BASE only sets the GS segment base, which kernel
        // code reaches solely through this trait; no memory is touched.
        unsafe { x86_64::registers::model_specific::Msr::new(IA32_GS_BASE).write(value) }
    }

    fn cpu_local() -> u64 {
        // SAFETY: reading IA32_GS_BASE has no side effects.
        unsafe { x86_64::registers::model_specific::Msr::new(IA32_GS_BASE).read() }
    }
}

impl Power for X86_64 {
    fn power_off(status: ExitStatus, methods: &PowerMethods) -> ! {
        power::power_off(status, methods)
    }

    fn reset(methods: &PowerMethods) -> ! {
        power::reset(methods)
    }
}

impl InterruptSetup for X86_64 {
    type Controller = interrupts::ApicController;
    type Timer = lapic_timer::LapicTimer;

    fn init_interrupts(
        hardware: &InterruptHardware<'_>,
        map: MapRegisters<'_>,
    ) -> Result<Self::Controller, InterruptError> {
        match *hardware {
            InterruptHardware::Apic {
                local_apic_phys,
                io_apics,
                overrides,
            } => interrupts::ApicController::new(local_apic_phys, io_apics, overrides, map),
            InterruptHardware::Gic { .. } => Err(InterruptError::WrongHardware),
        }
    }

    fn init_timer(timer: &TimerDescription) -> Result<Self::Timer, InterruptError> {
        lapic_timer::LapicTimer::new(timer)
    }

    fn init_secondary_interrupts(_per_cpu: &[InterruptId]) -> Result<(), InterruptError> {
        // The IDT is shared and local vectors need no per-line unmasking.
        local_apic::init_secondary().map(|_| ())
    }

    fn init_secondary_timer(timer: &TimerDescription) -> Result<Self::Timer, InterruptError> {
        lapic_timer::LapicTimer::new(timer)
    }

    fn set_interrupt_dispatcher(dispatch: fn(InterruptId)) {
        interrupts::set_dispatcher(dispatch);
    }

    fn interrupts_enabled() -> bool {
        x86_64::instructions::interrupts::are_enabled()
    }

    fn enable_interrupts_and_wait() {
        // `sti` takes effect after the next instruction, so no interrupt
        // can arrive between it and `hlt`.
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}
