//! What happens when the kernel cannot go on: the panic handler prints the
//! message and location on the console, then stops the machine with a
//! failure status through the architecture's [`stratus_arch::Power`].

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use stratus_arch::ExitStatus;

/// Stops the machine; installed by [`crate::boot::start`].
pub type StopFn = fn(ExitStatus) -> !;

static STOP: AtomicUsize = AtomicUsize::new(0);
static PANICKING: AtomicBool = AtomicBool::new(false);

/// Installs the function that stops the machine.
pub fn set_stop(stop: StopFn) {
    STOP.store(stop as usize, Ordering::Release);
}

/// Stops the machine with `status`, or spins when no stop function is
/// installed yet.
pub fn stop(status: ExitStatus) -> ! {
    let raw = STOP.load(Ordering::Acquire);
    if raw != 0 {
        // SAFETY: the only non-zero value ever stored is a `StopFn` cast to
        // usize in `set_stop`; function pointers round-trip through usize.
        let stop: StopFn = unsafe { core::mem::transmute::<usize, StopFn>(raw) };
        stop(status);
    }
    loop {
        core::hint::spin_loop();
    }
}

/// Prints a panic's message and location on the console (once; a nested
/// panic prints only its message).
pub fn report(info: &core::panic::PanicInfo<'_>) {
    if PANICKING.swap(true, Ordering::AcqRel) {
        crate::logger::write_emergency(format_args!("panic: (nested) {}\n", info.message()));
        return;
    }
    match info.location() {
        Some(at) => crate::logger::write_emergency(format_args!(
            "panic: {} at {}:{}:{}\n",
            info.message(),
            at.file(),
            at.line(),
            at.column()
        )),
        None => crate::logger::write_emergency(format_args!("panic: {}\n", info.message())),
    }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    report(info);
    stop(ExitStatus::Failure)
}
