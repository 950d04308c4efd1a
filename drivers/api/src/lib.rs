//! The driver-facing interface of Stratus.
//!
//! Drivers (UARTs, PCI functions, NVMe, virtio) see the kernel only through
//! this crate, never through kernel-core's internals; kernel-core implements
//! it ([`DriverServices`]) and hands it to the drivers it probes. Host tests
//! implement it with fakes. The shapes follow Asterinas OSTD (`IoMem`,
//! `IrqLine`, `DmaCoherent`) and virtio-drivers' `Hal`:
//!
//! * [`IoMem`]: a mapped register block with its cache policy, read and
//!   written with bounds-checked volatile accesses;
//! * [`DmaBuffer`]: physically contiguous, zeroed memory with its bus
//!   address, given back when dropped;
//! * [`MsiVector`]: an interrupt id with the message a device writes to
//!   raise it, steered to one CPU;
//! * [`clock`]: the monotonic clock every bounded wait uses;
//! * [`console`], [`block`] and [`net`]: the traits console, disk and
//!   network drivers implement.
#![no_std]

pub mod block;
pub mod clock;
pub mod console;
pub mod dma;
pub mod io_mem;
pub mod msi;
pub mod net;
pub mod services;

pub use block::{BlockDevice, BlockError, BlockRequest, RequestEvent};
pub use dma::{DmaAllocator, DmaBuffer};
pub use io_mem::{CachePolicy, IoMem, IoMemError};
pub use msi::{InterruptHandler, MsiMessage, MsiRequest, MsiSource, MsiVector};
pub use net::{NetDevice, NetError};
pub use services::{DriverServices, ServiceError};
pub use stratus_arch::PortIo;
