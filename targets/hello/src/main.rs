//! The smallest useful Stratus kernel: everything below `main` — boot
//! protocol, memory, heap, ACPI, console, exceptions — comes from the
//! library; the kernel only says what to do once the machine is up.
#![no_std]
#![no_main]

extern crate alloc;

#[cfg(target_arch = "aarch64")]
use platform_aarch64 as platform;
#[cfg(target_arch = "x86_64")]
use platform_x86_64 as platform;

use alloc::vec::Vec;
use platform::Kernel;
use platform::kernel_core::__arch::ExitStatus;

platform::kernel_main!(main);

fn main(kernel: Kernel) -> ! {
    // The heap works: collect the usable memory regions.
    let usable: Vec<_> = kernel
        .boot
        .memory_map
        .regions()
        .iter()
        .filter(|r| r.kind == platform::kernel_core::boot_info::MemoryKind::Usable)
        .collect();
    log::info!(
        "hello from {}: {} usable memory regions",
        kernel.arch,
        usable.len()
    );
    kernel.print_ready_line();
    if kernel.cmdline().is("exit", "qemu") {
        kernel.shutdown(ExitStatus::Success);
    }
    kernel.idle()
}
