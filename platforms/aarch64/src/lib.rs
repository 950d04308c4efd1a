//! The aarch64 UEFI+ACPI platform: QEMU virt (GICv3) and the Arm clouds
//! (AWS Graviton, Azure Cobalt), booted through the Limine protocol.
//!
//! Chooses [`arch_aarch64::Aarch64`] and wires the portable kernel to the UART
//! drivers. Kernels link with `kernel.ld` in this directory through
//! `stratus_kernel_link::link_kernel()` in their build scripts.
#![no_std]

pub use kernel_core::{self, Kernel};

#[doc(hidden)]
pub use stratus_uart::open_console as __open_console;

/// The drivers PCI functions are offered to, in this order.
pub static PCI_DRIVERS: kernel_core::pci::PciDrivers = &[&NVME, &VIRTIO_BLK, &VIRTIO_NET, &SERIAL];

static NVME: stratus_nvme::NvmeDriver = stratus_nvme::NvmeDriver::new();
static VIRTIO_BLK: stratus_virtio::VirtioBlkDriver = stratus_virtio::VirtioBlkDriver;
static VIRTIO_NET: stratus_virtio::VirtioNetDriver = stratus_virtio::VirtioNetDriver;
/// PCI serial cards (16550): further consoles.
static SERIAL: stratus_uart::Ns16550PciDriver = stratus_uart::Ns16550PciDriver;

/// The architecture of this platform.
pub type Arch = arch_aarch64::Aarch64;

/// Defines the kernel entry point and calls `$main(kernel: Kernel) -> !`
/// once the kernel has booted.
#[macro_export]
macro_rules! kernel_main {
    ($main:path) => {
        $crate::kernel_core::kernel_entry!(
            $crate::Arch,
            $crate::__open_console,
            $crate::PCI_DRIVERS,
            $main
        );
    };
}
