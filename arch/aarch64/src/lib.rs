//! aarch64 implementation of [`stratus_arch::Arch`].
//!
//! A `VBAR_EL1` vector table whose entries report the CPU state, run on a
//! dedicated exception stack (SP_EL1) while the kernel runs on SP_EL0; the
//! generic timer's virtual counter as clock; device mappings in the TTBR1_EL1
//! translation tables (4 KiB granule, Device-nGnRnE); power-off through
//! semihosting under the QEMU test harness and through PSCI otherwise;
//! interrupts through GICv3 (`arm-gic`) with the IRQ vector dispatching to
//! kernel-core, and the virtual generic timer as deadline timer.
//!
//! The table walker ([`table_walk`]), the descriptor layout
//! ([`descriptor`]), the redistributor search ([`redistributor_walk`]), the
//! syndrome decoding ([`syndrome`]) and the CPU naming
//! ([`cpu_info`]) are pure and build and test on any host; the modules that
//! execute aarch64 instructions, and the [`stratus_arch::Arch`]
//! implementation itself, exist only when compiling for aarch64.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod cpu_info;
pub mod descriptor;
pub mod redistributor_walk;
pub mod secondary_tables;
pub mod sgi;
pub mod syndrome;
pub mod table_walk;

#[cfg(target_arch = "aarch64")]
mod clock;
#[cfg(target_arch = "aarch64")]
mod exceptions;
#[cfg(target_arch = "aarch64")]
mod generic_timer;
#[cfg(target_arch = "aarch64")]
mod gic;
#[cfg(target_arch = "aarch64")]
mod interrupt_entry;
#[cfg(target_arch = "aarch64")]
mod paging;
#[cfg(target_arch = "aarch64")]
mod power;
#[cfg(target_arch = "aarch64")]
mod smp;

/// The aarch64 architecture (ARMv8-A and later, EL1, 4 KiB granule).
pub struct Aarch64;

#[cfg(target_arch = "aarch64")]
mod arch_impl {
    use super::{
        Aarch64, clock, cpu_info, exceptions, generic_timer, gic, interrupt_entry, paging, power,
        smp,
    };
    use aarch64_cpu::registers::{DAIF, Readable, TPIDR_EL1, Writeable};
    use core::arch::asm;
    use stratus_arch::interrupts::MapRegisters;
    use stratus_arch::{
        Arch, Clock, Cpu, CpuStart, DeviceMapper, DeviceMapping, ExitStatus, FrameSource,
        InterruptError, InterruptHardware, InterruptId, InterruptSetup, MapError, Multiprocessor,
        PortIo, Power, PowerMethods, StartError, TimerDescription,
    };

    impl InterruptSetup for Aarch64 {
        type Controller = gic::Gicv3;
        type Timer = generic_timer::VirtualTimer;

        fn init_interrupts(
            hardware: &InterruptHardware<'_>,
            map: MapRegisters<'_>,
        ) -> Result<Self::Controller, InterruptError> {
            match *hardware {
                InterruptHardware::Gic {
                    version,
                    distributor_phys,
                    redistributors,
                    source,
                } => gic::Gicv3::new(version, distributor_phys, redistributors, source, map),
                InterruptHardware::Apic { .. } => Err(InterruptError::WrongHardware),
            }
        }

        fn init_timer(timer: &TimerDescription) -> Result<Self::Timer, InterruptError> {
            generic_timer::VirtualTimer::new(timer)
        }

        fn init_secondary_interrupts(per_cpu: &[InterruptId]) -> Result<(), InterruptError> {
            gic::init_secondary(per_cpu)
        }

        fn init_secondary_timer(timer: &TimerDescription) -> Result<Self::Timer, InterruptError> {
            generic_timer::VirtualTimer::new(timer)
        }

        fn set_interrupt_dispatcher(dispatch: fn(InterruptId)) {
            interrupt_entry::set_dispatcher(dispatch);
        }

        fn interrupts_enabled() -> bool {
            !DAIF.is_set(DAIF::I)
        }

        fn enable_interrupts_and_wait() {
            // SAFETY: `wfi` with IRQs masked still wakes on a pending IRQ
            // (D1.6.2), which the unmask then takes: none is lost between
            // the caller's check and the wait. No memory is touched.
            unsafe { asm!("wfi", "msr daifclr, #2", options(nostack, preserves_flags)) };
        }
    }

    impl Arch for Aarch64 {
        const NAME: &'static str = "aarch64";
        const LEGACY_CONSOLE_PORT: Option<u16> = None;

        fn port_io() -> Option<PortIo> {
            None
        }
    }

    impl Cpu for Aarch64 {
        fn init_exceptions() {
            exceptions::init();
        }

        fn enable_interrupts() {
            // SAFETY: unmasking IRQs (PSTATE.I) touches no memory; the
            // vectors are installed. No `nomem`: this orders memory
            // accesses around it like a compiler barrier.
            unsafe { asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
        }

        fn disable_interrupts() {
            // SAFETY: masking IRQs (PSTATE.I) touches no memory. FIQs stay
            // masked as the loader left them.
            unsafe { asm!("msr daifset, #2", options(nostack, preserves_flags)) };
        }

        fn wait_for_interrupt() {
            aarch64_cpu::asm::wfi();
        }

        fn describe(out: &mut dyn core::fmt::Write) -> core::fmt::Result {
            cpu_info::describe(out)
        }
    }

    impl Clock for Aarch64 {
        fn ticks() -> u64 {
            clock::read_counter()
        }

        fn ticks_per_second() -> Option<u64> {
            clock::counter_frequency()
        }
    }

    impl DeviceMapper for Aarch64 {
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

    impl Multiprocessor for Aarch64 {
        fn hardware_id() -> u64 {
            smp::hardware_id()
        }

        fn start_cpu(
            start: &CpuStart,
            hhdm_offset: u64,
            frames: &mut dyn FrameSource,
        ) -> Result<(), StartError> {
            smp::start_cpu(start, hhdm_offset, frames)
        }

        fn init_secondary_exceptions(exception_stack_top: u64) {
            exceptions::init_secondary(exception_stack_top);
        }

        fn run_on_stack(stack_top: u64, entry: stratus_arch::SecondaryEntry, arg: u64) -> ! {
            // SAFETY: the caller hands over a mapped, 16-byte aligned stack
            // that nothing else uses; `entry` never returns, so nothing on
            // the old stack is used again. The frame pointer and link
            // register are cleared so that unwinding ends here.
            unsafe {
                core::arch::asm!(
                    "mov sp, {top}",
                    "mov x29, xzr",
                    "mov x30, xzr",
                    "br {entry}",
                    top = in(reg) stack_top,
                    entry = in(reg) entry,
                    in("x0") arg,
                    options(noreturn)
                )
            }
        }

        fn set_cpu_local(value: u64) {
            TPIDR_EL1.set(value);
        }

        fn cpu_local() -> u64 {
            TPIDR_EL1.get()
        }
    }

    impl Power for Aarch64 {
        fn power_off(status: ExitStatus, methods: &PowerMethods) -> ! {
            power::power_off(status, methods)
        }

        fn reset(methods: &PowerMethods) -> ! {
            power::reset(methods)
        }
    }
}
