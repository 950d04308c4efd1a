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
