//! Stopping an aarch64 machine: semihosting `SYS_EXIT` under the QEMU test
//! harness, PSCI `SYSTEM_OFF` otherwise; PSCI `SYSTEM_RESET` to reset.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};
use stratus_arch::{ExitStatus, PowerMethods, PsciConduit};

/// Semihosting operation number of `SYS_EXIT` ("Semihosting for AArch32
/// and AArch64", Arm, section 6.5).
const SYS_EXIT: u64 = 0x18;

/// `ADP_Stopped_ApplicationExit`: the reason code for a normal exit, whose
/// subcode is the exit status.
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// PSCI `SYSTEM_OFF` function ID (Arm DEN 0022, 5.1.9).
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

/// PSCI `SYSTEM_RESET` function ID (Arm DEN 0022, 5.1.10).
const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;

/// Set once semihosting was tried: if `hlt #0xf000` faults (QEMU without
/// `-semihosting`, or real hardware with no debugger), the fault report ends
/// in a panic that comes back here, and must not try again.
static SEMIHOSTING_TRIED: AtomicBool = AtomicBool::new(false);

/// Stops the machine. With `methods.qemu_exit`, QEMU (started with
/// `-semihosting`) exits with status 0 for `Success` and 1 for `Failure`.
/// Otherwise, or if that returns, PSCI `SYSTEM_OFF` through the conduit
/// ACPI named. When nothing works the CPU halts with interrupts masked.
pub fn power_off(status: ExitStatus, methods: &PowerMethods) -> ! {
    mask_all_interrupts();
    if methods.qemu_exit && !SEMIHOSTING_TRIED.swap(true, Ordering::Relaxed) {
        semihosting_exit(match status {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
        });
    }
    if let Some(conduit) = methods.psci {
        psci_call(conduit, PSCI_SYSTEM_OFF, [0; 3]);
    }
    log::warn!("stratus: halted ({status:?}); no power-off method worked");
    loop {
        aarch64_cpu::asm::wfi();
    }
}

fn mask_all_interrupts() {
    // SAFETY: masking D, A, I and F only delays exceptions; it touches no
    // memory.
    unsafe {
        asm!(
            "msr daifset, #0xf",
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Semihosting `SYS_EXIT` with the AArch64 parameter block {reason, code}.
fn semihosting_exit(code: u64) {
    let block: [u64; 2] = [ADP_STOPPED_APPLICATION_EXIT, code];
    // SAFETY: `hlt #0xf000` is the AArch64 semihosting trap. The debugger
    // or emulator reads the block (valid for the call's duration) and, for
    // SYS_EXIT, does not return; if it does, only x0 may have changed.
    // Without semihosting the instruction is undefined and raises an
    // exception, which the exception vectors report.
    unsafe {
        asm!(
            "hlt #0xf000",
            inout("x0") SYS_EXIT => _,
            in("x1") block.as_ptr(),
            options(nostack, readonly),
        );
    }
}

/// Calls PSCI function `function` with up to three arguments through
/// `conduit` and returns the firmware's answer (x0). For `SYSTEM_OFF` and
/// `SYSTEM_RESET` it returns only if the firmware refuses.
pub(crate) fn psci_call(conduit: PsciConduit, function: u64, args: [u64; 3]) -> i64 {
    let result: u64;
    // SAFETY: an SMC Calling Convention call (Arm DEN 0028): x0 holds the
    // function ID, x1..x3 its arguments, and x0..x17 may be clobbered. ACPI's
    // FADT said PSCI is implemented through this conduit. The call touches
    // no kernel memory (CPU_ON's entry point and context are physical
    // addresses the new CPU uses, not this one).
    unsafe {
        match conduit {
            PsciConduit::Hvc => asm!(
                "hvc #0",
                inout("x0") function => result,
                inout("x1") args[0] => _, inout("x2") args[1] => _, inout("x3") args[2] => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                out("x15") _, out("x16") _, out("x17") _,
                options(nomem, nostack),
            ),
            PsciConduit::Smc => asm!(
                "smc #0",
                inout("x0") function => result,
                inout("x1") args[0] => _, inout("x2") args[1] => _, inout("x3") args[2] => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                out("x15") _, out("x16") _, out("x17") _,
                options(nomem, nostack),
            ),
        }
    }
    result as i64
}

/// Resets the machine with PSCI `SYSTEM_RESET`; halts when there is no PSCI
/// or it refuses.
pub fn reset(methods: &PowerMethods) -> ! {
    mask_all_interrupts();
    if let Some(conduit) = methods.psci {
        log::info!("reset: PSCI SYSTEM_RESET over {conduit:?}");
        psci_call(conduit, PSCI_SYSTEM_RESET, [0; 3]);
    }
    log::warn!("halted: no reset method worked");
    loop {
        aarch64_cpu::asm::wfi();
    }
}
