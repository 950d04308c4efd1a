//! Stopping an x86_64 machine.

use stratus_arch::{AcpiSoftOff, ExitStatus, PowerMethods};

/// Port of QEMU's `isa-debug-exit` device as the test harness configures it.
const QEMU_DEBUG_EXIT_PORT: u16 = 0xf4;

/// Stops the machine. Under the QEMU test harness (`exit=qemu`) the status
/// leaves through `isa-debug-exit`: QEMU exits with `(value << 1) | 1`, so
/// 0x10 gives 33 (success) and 0x11 gives 35 (failure). Otherwise ACPI S5
/// through the PM1 control registers, when ACPI described them; the CPU halts
/// when nothing worked.
pub fn power_off(status: ExitStatus, methods: &PowerMethods) -> ! {
    x86_64::instructions::interrupts::disable();
    if methods.qemu_exit {
        let value = match status {
            ExitStatus::Success => 0x10,
            ExitStatus::Failure => 0x11,
        };
        // SAFETY: `exit=qemu` says the test harness put QEMU's
        // isa-debug-exit device at this port; writing it ends the machine.
        unsafe { crate::ports::write_u32(QEMU_DEBUG_EXIT_PORT, value) };
    }
    match &methods.acpi_soft_off {
        Some(soft_off) => {
            log::info!("off ({status:?}) through ACPI S5");
            enter_s5(soft_off);
            log::warn!("ACPI S5 did not stop the machine; halted ({status:?})");
        }
        None => log::warn!("no ACPI S5 (see the acpi lines above); halted ({status:?})"),
    }
    loop {
        x86_64::instructions::hlt();
    }
}

/// `SCI_EN`: the OS owns the ACPI fixed hardware (ACPI 6.5, table 4.13).
const SCI_EN: u16 = 1;
/// Reads of PM1a control while waiting for the firmware to set `SCI_EN`
/// after `ACPI_ENABLE`: each port read traps to the hypervisor or takes
/// about a microsecond on hardware, so this bounds the wait to well under a
/// second while giving an SMI handler far more than the few milliseconds it
/// needs.
const SCI_EN_POLLS: u32 = 200_000;
/// Reads of PM1a control after the sleep request, giving the platform time
/// to remove power before the caller reports failure: a hypervisor acts on
/// the request from its main loop, which a busy host delays (100,000 reads,
/// about 0.1 s under QEMU's TCG, were seen to be too short there). Each read
/// is a port access of at least a microsecond, so this waits a few seconds
/// at most, and only where S5 did not work.
const SLEEP_SETTLE_POLLS: u32 = 5_000_000;

/// Writes `SLP_TYPx | SLP_EN` to the PM1 control registers, taking the ACPI
/// hardware from the firmware first where it still owns it.
fn enter_s5(soft_off: &AcpiSoftOff) {
    use crate::ports;
    // The ports are the PM1 control blocks and the SMI command port the FADT
    // names; the accesses are the ACPI-defined ones for handing over ACPI
    // and entering S5, made while the machine is being stopped.
    // SAFETY: as just said.
    let read_u16 = |port| unsafe { ports::read_u16(port) };
    // SAFETY: as just said.
    let write_u16 = |port, value| unsafe { ports::write_u16(port, value) };
    // SAFETY: as just said.
    let write_u8 = |port, value| unsafe { ports::write_u8(port, value) };
    if read_u16(soft_off.pm1a_control) & SCI_EN == 0
        && let Some((smi_port, enable)) = soft_off.acpi_enable
    {
        write_u8(smi_port, enable);
        let owned = (0..SCI_EN_POLLS).any(|_| read_u16(soft_off.pm1a_control) & SCI_EN != 0);
        if !owned {
            log::warn!("firmware did not hand over ACPI (SCI_EN still clear); trying S5 anyway");
        }
    }
    // Preserve the other control bits (SCI_EN among them); SLP_TYP is
    // replaced, as ACPICA does.
    const SLP_EN: u16 = 1 << 13;
    const SLP_BITS: u16 = (0x7 << 10) | SLP_EN;
    // Like ACPICA: SLP_TYP first, then SLP_TYP with SLP_EN.
    let request = |port: u16, value: u16| {
        let kept = read_u16(port) & !SLP_BITS;
        write_u16(port, kept | (value & !SLP_EN));
        write_u16(port, kept | value);
    };
    request(soft_off.pm1a_control, soft_off.pm1a_value);
    if let Some(port) = soft_off.pm1b_control {
        request(port, soft_off.pm1b_value);
    }
    for _ in 0..SLEEP_SETTLE_POLLS {
        let _ = read_u16(soft_off.pm1a_control);
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
        // SAFETY: the FADT names this port as the reset register and this
        // value as the one that resets; the machine is being reset.
        unsafe { crate::ports::write_u8(port, value) };
    }
    log::info!("reset: reset control register {RESET_CONTROL_PORT:#x}");
    // SAFETY: 0xcf9 is the reset control register of Intel chipsets (and
    // QEMU's); the machine is being reset.
    unsafe { crate::ports::write_u8(RESET_CONTROL_PORT, RESET_CONTROL_HARD_RESET) };
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
