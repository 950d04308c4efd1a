//! What a PCI driver implements so that the kernel can offer it functions.

use crate::PciFunction;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use stratus_driver_api::{BlockDevice, DriverServices, NetDevice};

/// What a driver made of a function it claimed.
pub enum Probed {
    /// Disks (an NVMe controller gives one per namespace).
    Block(Vec<Arc<dyn BlockDevice>>),
    /// Network interfaces.
    Net(Vec<Arc<dyn NetDevice>>),
    /// Something else, running (a console, a device not used yet).
    Other,
}

/// A driver for some PCI functions.
pub trait PciDriver: Sync {
    /// The driver's name, printed beside each function it claims.
    fn name(&self) -> &'static str;

    /// Whether it drives `function` (by ids or class). Must not touch the
    /// device.
    fn claims(&self, function: &PciFunction) -> bool;

    /// Brings the function up. The driver enables bus mastering itself
    /// ([`PciFunction::enable_bus_master`]) once it is ready for DMA. An
    /// error is one line saying what failed; the kernel logs it and goes
    /// on without the device.
    fn probe(
        &self,
        function: PciFunction,
        services: &'static dyn DriverServices,
    ) -> Result<Probed, String>;
}
