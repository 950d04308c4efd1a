//! Stopping an x86_64 machine.

use stratus_arch::{ExitStatus, PowerMethods};

/// Port of QEMU's `isa-debug-exit` device as the test harness configures it.
const QEMU_DEBUG_EXIT_PORT: u16 = 0xf4;

/// Stops the machine. Under the QEMU test harness (`exit=qemu`) the status
/// leaves through `isa-debug-exit`: QEMU exits with `(value << 1) | 1`, so
/// 0x10 gives 33 (success) and 0x11 gives 35 (failure). Otherwise the CPU
/// halts: ACPI S5 needs the `\_S5` object from the DSDT's AML, which Stratus
/// does not interpret yet.
pub fn power_off(status: ExitStatus, methods: &PowerMethods) -> ! {
    x86_64::instructions::interrupts::disable();
    if methods.qemu_exit {
        let value = match status {
            ExitStatus::Success => 0x10,
            ExitStatus::Failure => 0x11,
        };
        crate::ports::write_u32(QEMU_DEBUG_EXIT_PORT, value);
    } else {
        log::warn!("halted ({status:?}): no power-off method without AML");
    }
    loop {
        x86_64::instructions::hlt();
    }
}

/// The PCI reset control register (Intel chipsets, QEMU q35 and i440FX):
/// writing 0x06 requests a hard reset.
const RESET_CONTROL_PORT: u16 = 0xcf9;
const RESET_CONTROL_HARD_RESET: u8 = 0x06;

/// Resets the machine: the FADT reset register if ACPI described one, then
/// the reset control register, then a triple fault (an empty IDT and a
/// breakpoint), which resets every x86 CPU.
pub fn reset(methods: &PowerMethods) -> ! {
    x86_64::instructions::interrupts::disable();
    if let Some((port, value)) = methods.acpi_reset_port {
        log::info!("reset: FADT reset register, port {port:#x} <- {value:#x}");
        crate::ports::write_u8(port, value);
    }
    log::info!("reset: reset control register {RESET_CONTROL_PORT:#x}");
    crate::ports::write_u8(RESET_CONTROL_PORT, RESET_CONTROL_HARD_RESET);
    log::warn!("reset: no reset register worked; triple fault");
    let empty = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: x86_64::VirtAddr::zero(),
    };
    // SAFETY: loading an empty IDT and raising an exception is meant to
    // triple-fault; nothing runs afterwards, so no state can be corrupted.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3", options(nomem, nostack));
    }
    loop {
        x86_64::instructions::hlt();
    }
}
