//! An example kernel outside the Stratus workspace. Stratus boots the machine
//! (Limine protocol, memory, heap, ACPI, console, exceptions); `main` gets a
//! booted `Kernel` and decides what happens next.
//!
//! Command line: `greet=NAME` changes the greeting, `exit=qemu` powers off after
//! the ready line (QEMU's exit devices carry the status).
#![no_std]
#![no_main]

extern crate alloc;

#[cfg(target_arch = "aarch64")]
use platform_aarch64 as platform;
#[cfg(target_arch = "x86_64")]
use platform_x86_64 as platform;

use alloc::collections::BTreeMap;
use platform::Kernel;
use platform::kernel_core::__arch::ExitStatus;
use platform::kernel_core::boot_info::MemoryKind;

platform::kernel_main!(main);

fn main(kernel: Kernel) -> ! {
    let cmdline = kernel.cmdline();
    let name = cmdline.get("greet").unwrap_or("world");

    // The heap is ready: tally memory by kind.
    let mut kib_by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    for region in kernel.boot.memory_map.regions() {
        let kind = match region.kind {
            MemoryKind::Usable => "usable",
            _ => "other",
        };
        *kib_by_kind.entry(kind).or_default() += region.len / 1024;
    }
    log::info!(
        "my-kernel: hello, {name}, from {} at {:#x}; usable {} KiB",
        kernel.arch,
        kernel.boot.kernel_virt_base,
        kib_by_kind.get("usable").copied().unwrap_or(0)
    );

    kernel.print_ready_line();
    if cmdline.is("exit", "qemu") {
        kernel.shutdown(ExitStatus::Success);
    }
    kernel.idle()
}
