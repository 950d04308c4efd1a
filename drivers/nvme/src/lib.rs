//! NVMe driver, architecture-neutral (NVMe Base Specification 2.0, NVM
//! Command Set Specification 1.0).
//!
//! [`NvmeDriver`] claims PCI functions of class 01h/08h/02h (mass storage,
//! non-volatile memory, NVM Express I/O controller) whatever their vendor:
//! QEMU's `nvme` device (1b36:0010), AWS EBS volumes (1d0f:8061), local
//! NVMe disks. For each it
//!
//! 1. maps BAR0, reads CAP, disables the controller and waits for it
//!    (every wait bounded by CAP.TO, a fatal status named);
//! 2. sets up the admin queues and enables the controller with the NVM
//!    command set, 4 KiB pages, 64-byte and 16-byte entries;
//! 3. identifies the controller (model, serial, firmware, transfer limit),
//!    its active namespaces and each namespace (size, block size);
//! 4. asks for one I/O queue pair per CPU, steers one MSI-X vector per
//!    queue to its CPU (or polls when MSI-X is not available), and creates
//!    the queues;
//! 5. returns one [`NvmeNamespace`] block device per usable namespace,
//!    named `nvme<controller>n<nsid>`.
//!
//! A submitter uses its own CPU's queue under that queue's lock. Data goes
//! through bounce buffers the driver owns (one per command slot, allocated
//! on the slot's first use), described to the controller with PRP entries
//! and lists. Modules: [`regs`] (registers), [`command`] (queue entries),
//! [`status`] (completion status names), [`ring`] (ring arithmetic),
//! [`prp`] (PRP construction), [`identify`] (Identify data), [`queue`]
//! (a queue pair in memory), [`controller`] (bring-up and the command
//! loop), [`namespace`] (the block device).
#![no_std]
#![cfg_attr(not(test), forbid(unsafe_code))]

extern crate alloc;

pub mod command;
pub mod controller;
pub mod error;
pub mod identify;
pub mod namespace;
pub mod prp;
pub mod queue;
pub mod regs;
pub mod ring;
pub mod status;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use controller::Controller;
pub use error::NvmeError;
pub use namespace::NvmeNamespace;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use identify::NamespaceError;
use stratus_driver_api::{BlockDevice, DriverServices};
use stratus_pci::{PciDriver, PciFunction, Probed};

/// PCI class, subclass and programming interface of an NVMe controller.
pub const NVME_CLASS: (u8, u8, u8) = (0x01, 0x08, 0x02);

/// The NVMe PCI driver. Controllers are named `nvme0`, `nvme1`... in the
/// order they are probed.
#[derive(Debug)]
pub struct NvmeDriver {
    next_index: AtomicUsize,
    command_timeout: Duration,
}

impl Default for NvmeDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl NvmeDriver {
    /// The driver, before any controller was probed; commands time out
    /// after [`controller::COMMAND_TIMEOUT`].
    pub const fn new() -> Self {
        Self::with_command_timeout(controller::COMMAND_TIMEOUT)
    }

    /// The driver with another bound on each command (a slow device, or a
    /// test that wants timeouts quickly).
    pub const fn with_command_timeout(command_timeout: Duration) -> Self {
        Self {
            next_index: AtomicUsize::new(0),
            command_timeout,
        }
    }

    /// The bound on each command.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Brings up the controller of `function` and lists its namespaces.
    pub fn bring_up(
        &self,
        function: &PciFunction,
        services: &'static dyn DriverServices,
    ) -> Result<Vec<Arc<NvmeNamespace>>, NvmeError> {
        let regs = match function.map_bar(0, services) {
            Some(mapped) => mapped?,
            None => return Err(NvmeError::NoRegisterBar),
        };
        let caps = Controller::reset(&regs)?;
        // The controller is disabled: it may now be let onto the bus.
        function.enable_bus_master();
        let name = format!("nvme{}", self.next_index.fetch_add(1, Ordering::Relaxed));
        let mut controller = Controller::enable(name, regs, caps, services, self.command_timeout)?;
        let (major, minor, tertiary) = controller.version();
        log::info!(
            target: "nvme",
            "{} at {} NVMe {major}.{minor}.{tertiary}, queues of up to {} entries, doorbell stride {}, ready timeout {} ms",
            controller.name(),
            function.address,
            caps.max_queue_entries,
            caps.doorbell_stride,
            caps.ready_timeout.as_millis()
        );
        let identity = controller.identify_controller()?;
        log::info!(
            target: "nvme",
            "{} model \"{}\" serial \"{}\" fw \"{}\"",
            controller.name(),
            identity.model,
            identity.serial,
            identity.firmware
        );
        let mut namespaces = Vec::new();
        for nsid in controller.active_namespaces(identity.namespace_count) {
            match controller.identify_namespace(nsid) {
                Ok(Ok(ns)) => namespaces.push((nsid, ns)),
                // Inactive ids read as zeros (tried one by one when the
                // controller has no active namespace list): not worth a
                // warning each.
                Ok(Err(NamespaceError::Empty)) => {
                    log::debug!(target: "nvme", "{}n{nsid} has no blocks", controller.name())
                }
                Ok(Err(e)) => {
                    log::warn!(target: "nvme", "{}n{nsid} skipped: {e}", controller.name())
                }
                Err(e) => log::warn!(target: "nvme", "{}n{nsid} skipped: {e}", controller.name()),
            }
        }
        controller.create_io_queues(function)?;
        log::info!(
            target: "nvme",
            "{} {} I/O queue(s) of depth {}, {}, transfers up to {} KiB",
            controller.name(),
            controller.io_queue_count(),
            controller.io_queue_depth(),
            if controller.uses_interrupts() {
                "MSI-X"
            } else {
                "polled"
            },
            controller.max_transfer() / 1024
        );
        let controller = Arc::new(controller);
        Ok(namespaces
            .into_iter()
            .map(|(nsid, ns)| {
                let namespace = NvmeNamespace::new(controller.clone(), nsid, ns);
                log::info!(
                    target: "nvme",
                    "{} {} blocks of {} bytes ({} MiB)",
                    namespace.name(),
                    ns.blocks,
                    ns.block_size,
                    ns.bytes() >> 20
                );
                Arc::new(namespace)
            })
            .collect())
    }
}

impl PciDriver for NvmeDriver {
    fn name(&self) -> &'static str {
        "nvme"
    }

    fn claims(&self, function: &PciFunction) -> bool {
        !function.is_bridge && function.class == NVME_CLASS
    }

    fn probe(
        &self,
        function: PciFunction,
        services: &'static dyn DriverServices,
    ) -> Result<Probed, String> {
        let namespaces = self
            .bring_up(&function, services)
            .map_err(|e| format!("nvme at {}: {e}", function.address))?;
        Ok(Probed::Block(
            namespaces
                .into_iter()
                .map(|ns| ns as Arc<dyn BlockDevice>)
                .collect(),
        ))
    }
}
