//! The architecture-neutral kernel of Stratus.
//!
//! Everything here is written against the [`stratus_arch::Arch`] trait and
//! builds and tests on the host. The boot sequence ([`boot::start`]) turns the
//! Limine responses into a [`BootInfo`], brings up the physical frame
//! allocator, the heap, ACPI discovery and the console, then hands a
//! [`Kernel`] to the target's `main`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod acpi;
pub mod boot;
pub mod boot_info;
pub mod cmdline;
pub use stratus_driver_api::console;
pub mod cpu_local;
pub mod devicetree;
pub mod driver_services;
pub mod fixed_string;
pub mod frames;
pub mod heap;
pub mod hpet;
pub mod irq;
pub mod irq_lock;
pub mod limine_boot;
pub mod logger;
pub mod mmio;
pub mod panic;
pub mod pci;
pub mod ready;
pub mod smp;
pub mod stacks;
pub mod time;
pub mod timer;

pub use boot::{Kernel, start};
pub use boot_info::BootInfo;

#[doc(hidden)]
pub use stratus_arch as __arch;

/// Defines the kernel entry point `_start` for architecture `$arch`: reads
/// the counter, and runs [`boot::start`] with the console opener, the PCI
/// drivers `$drivers` and `$main(kernel) -> !`, which it calls on a kernel
/// stack once booted. Platform crates wrap this in their own
/// `kernel_main!`, so a target names only its `main`.
#[macro_export]
macro_rules! kernel_entry {
    ($arch:ty, $open_console:path, $drivers:expr, $main:path) => {
        /// Kernel entry point, jumped to by the Limine-protocol loader.
        #[unsafe(no_mangle)]
        pub extern "C" fn _start() -> ! {
            let entry_ticks = <$arch as $crate::__arch::Clock>::ticks();
            $crate::boot::start::<$arch>(entry_ticks, $open_console, $drivers, $main)
        }
    };
}
