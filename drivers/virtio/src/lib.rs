//! virtio-blk over the modern virtio-pci transport, with the
//! `virtio-drivers` crate (its `PciTransport` and `VirtIOBlk`).
//!
//! * [`hal`]: the crate's `Hal` on the driver API (DMA buffers, register
//!   mapping, bounce buffers for shared memory).
//! * [`config`]: the crate's `ConfigurationAccess` on a function's
//!   configuration space from `stratus-pci`.
//! * [`blk`]: [`VirtioBlkDriver`] (a `PciDriver`) and the `BlockDevice`.
//!
//! Why the crate: it carries the virtqueue and feature negotiation that
//! virtio-net (next) will share. Where it falls short, this driver says so:
//! its blocking calls spin without a bound, so reads and writes use its
//! non-blocking calls and poll with a deadline here; its flush has no
//! non-blocking form, so a flush waits as long as the crate does.
//! Completions are polled: the crate's PCI transport gives no way to set a
//! queue's MSI-X vector (`queue_msix_vector`), so MSI-X is not used yet.
#![no_std]

extern crate alloc;

mod blk;
pub mod hal;
mod interrupts;
mod net;
pub mod transport;

pub use blk::{BLOCK_INTERRUPTS, VirtioBlk, VirtioBlkDriver};
pub use net::{Counters, NET_INTERRUPTS, VirtioNet, VirtioNetDriver};

#[cfg(test)]
mod tests;
