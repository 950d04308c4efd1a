//! The Stratus demo kernel.
//!
//! Boots through the platform, logs what was discovered and prints the
//! `stratus: ready` line. Command-line switches used by the test suite:
//! `test=page-fault` reads an unmapped address after boot, `test=stack-guard`
//! reads the guard page below a freshly allocated kernel stack, `test=panic`
//! panics on purpose, `test=reset` resets the machine, `test=power-off`
//! powers the machine off after the ready line through the firmware (ACPI S5
//! on x86, PSCI on aarch64), and `exit=qemu` powers off right after the
//! ready line (with QEMU's exit devices carrying the status). Interrupt
//! checks (see `interrupt_tests`): `test=timer`, `test=sleep`,
//! `test=irq-storm`, `test=ipi`, `test=isa-irq` (x86), and
//! `bench=irq-latency`. Every-CPU checks (see `all_cpus`): `test=ipi-all`,
//! `test=timer-all`, `test=irq-storm-all`, `test=power-off-cpu1`, and
//! `bench=ipi-latency`. MSIs (see `msi_test`): `test=msi`. Disks (see
//! `block_test`): `test=block`; `bench=block` (see `block_bench`) times
//! reads on every data disk (`bench_seconds=N` per workload). Networking
//! (see `net_http`): `net=http` (with `ip=` and `gateway=` for a static
//! address).
#![no_std]
#![no_main]

#[cfg(target_arch = "aarch64")]
use platform_aarch64 as platform;
#[cfg(target_arch = "x86_64")]
use platform_x86_64 as platform;

extern crate alloc;

mod all_cpus;
mod block_bench;
mod block_test;
mod interrupt_tests;
mod msi_test;
mod net_http;

use platform::Kernel;
use platform::kernel_core::__arch::{Arch, ExitStatus};

platform::kernel_main!(main);

/// An address no page table maps: in the kernel half, below the kernel
/// image and far from the direct map and the device window.
const UNMAPPED_ADDRESS: u64 = 0xffff_fff0_dead_0000;

/// Where `platforms/*/kernel.ld` links the kernel; the loader may place it
/// higher (KASLR), and the Limine executable address response says where.
const LINK_BASE: u64 = 0xffff_ffff_8000_0000;

fn main(mut kernel: Kernel) -> ! {
    let cmdline = kernel.cmdline();
    let virt = kernel.boot.kernel_virt_base;
    log::info!(
        "demo: kernel image at virt {virt:#x} phys {:#x} (slide {:#x})",
        kernel.boot.kernel_phys_base,
        virt.wrapping_sub(LINK_BASE)
    );
    match cmdline.get("test") {
        Some("page-fault") => {
            log::info!("test: reading unmapped address {UNMAPPED_ADDRESS:#x}");
            // SAFETY: deliberately unsound: the read faults, and the
            // exception handler stops the kernel before any value is used.
            let value = unsafe { core::ptr::read_volatile(UNMAPPED_ADDRESS as *const u64) };
            panic!("reading {UNMAPPED_ADDRESS:#x} did not fault (read {value:#x})");
        }
        Some("panic") => panic!("test=panic on the command line"),
        Some("reset") => kernel.reset(),
        Some("stack-guard") => {
            let stack = kernel
                .stacks
                .allocate::<platform::Arch>(16 * 1024, &mut kernel.frames())
                .expect("a stack");
            log::info!("test: reading guard page {:#x}", stack.guard);
            // SAFETY: deliberately unsound, as for test=page-fault: the
            // guard page is unmapped, the read faults and the kernel stops.
            let value = unsafe { core::ptr::read_volatile(stack.guard as *const u64) };
            panic!("guard page {:#x} is mapped (read {value:#x})", stack.guard);
        }
        Some("stack-overflow") => {
            log::info!("test: overflowing the boot CPU's stack");
            let depth = recurse(0);
            panic!("the stack did not overflow ({depth} frames)");
        }
        Some("power-off-cpu1") => {
            kernel.print_ready_line();
            all_cpus::power_off_from_cpu1();
        }
        Some("power-off") => {
            kernel.print_ready_line();
            kernel.shutdown(ExitStatus::Success);
        }
        Some("timer") => interrupt_tests::timer_rate(),
        Some("sleep") => interrupt_tests::sleep_100ms(),
        Some("irq-storm") => interrupt_tests::storm(),
        Some("ipi") => interrupt_tests::self_ipi(),
        Some("ipi-all") => all_cpus::ipi_all(),
        Some("timer-all") => all_cpus::timer_all(),
        Some("irq-storm-all") => all_cpus::storm_all(),
        Some("msi") => msi_test::msi(&kernel),
        Some("block") => {
            let passed = block_test::run(kernel.block_devices());
            let stop = !passed && cmdline.is("exit", "qemu");
            if stop {
                kernel.shutdown(ExitStatus::Failure);
            }
        }
        Some("isa-irq") => interrupt_tests::isa_irq(<platform::Arch as Arch>::port_io()),
        Some(other) => log::warn!("unknown test '{other}' ignored"),
        None => {}
    }
    match cmdline.get("net") {
        Some("http") => net_http::serve(&kernel),
        Some(other) => log::warn!("unknown net mode '{other}' ignored"),
        None => {}
    }
    kernel.print_ready_line();
    // After the ready line, so that boot_ms is not counted with it.
    let bench = cmdline.get("bench").unwrap_or("");
    if bench.split(',').any(|b| b == "ipi-latency") {
        all_cpus::ipi_latency_bench();
    }
    if bench.split(',').any(|b| b == "irq-latency") {
        interrupt_tests::latency_bench();
    }
    if bench.split(',').any(|b| b == "block") {
        let seconds = cmdline
            .get("bench_seconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        block_bench::run(kernel.block_devices(), seconds);
    }
    if cmdline.is("exit", "qemu") {
        kernel.shutdown(ExitStatus::Success);
    }
    log::info!("idle: nothing more to do; waiting for interrupts");
    kernel.idle()
}

/// Recurses with 1 KiB of locals per frame until the stack runs into its
/// guard page (`test=stack-overflow`); the bound, a million frames, is far
/// beyond any kernel stack.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut locals = [0u8; 1024];
    core::hint::black_box(&mut locals);
    if depth > 1_000_000 {
        return depth;
    }
    recurse(depth + 1) + u64::from(locals[0])
}
