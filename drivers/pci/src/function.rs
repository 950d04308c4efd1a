//! One PCI function as a driver receives it.

use crate::io_space::{IoBarError, IoRegion, IoSpace};
use crate::{FunctionConfig, PciAddress, regs};
use stratus_driver_api::{CachePolicy, DriverServices, IoMem, MsiSource, ServiceError};

/// A decoded, sized base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// Memory space.
    Memory {
        /// Physical (CPU) address.
        address: u64,
        /// Size in bytes (a power of two).
        size: u64,
        /// Prefetchable: may be mapped write-combining.
        prefetchable: bool,
        /// A 64-bit BAR (it takes this slot and the next).
        is_64bit: bool,
    },
    /// I/O space.
    Io {
        /// Port (x86) or offset in the I/O window (elsewhere).
        port: u32,
        /// Size in bytes.
        size: u32,
    },
}

/// A function found by enumeration.
#[derive(Clone, Debug)]
pub struct PciFunction {
    /// Where it is.
    pub address: PciAddress,
    /// Vendor id.
    pub vendor_id: u16,
    /// Device id.
    pub device_id: u16,
    /// Class, subclass and programming interface.
    pub class: (u8, u8, u8),
    /// Revision id.
    pub revision: u8,
    /// Subsystem vendor and device ids (type 0 header), else zero.
    pub subsystem: (u16, u16),
    /// Whether it is a bridge (type 1 header).
    pub is_bridge: bool,
    /// BARs by slot; the slot after a 64-bit BAR is `None`.
    pub bars: [Option<Bar>; 6],
    /// Its configuration space.
    pub config: FunctionConfig,
    /// How its I/O BARs reach the CPU (set by the kernel from the host
    /// bridge the firmware describes; [`IoSpace::Unknown`] until then).
    pub io_space: IoSpace,
}

impl PciFunction {
    /// The identity MSIs of this function carry.
    pub fn msi_source(&self) -> MsiSource {
        MsiSource {
            segment: self.address.segment,
            requester_id: self.address.requester_id(),
        }
    }

    /// Enables memory decoding and bus mastering (DMA), and disables
    /// legacy INTx. Only for a function a driver has claimed.
    pub fn enable_bus_master(&self) {
        let command = self.config.read_u16(regs::COMMAND);
        self.config.write_command(
            command | regs::COMMAND_MEMORY | regs::COMMAND_BUS_MASTER | regs::COMMAND_INTX_DISABLE,
        );
    }

    /// Enables memory decoding only (no DMA yet), so that the function's
    /// registers and MSI-X table answer: firmware may leave it off (AAVMF
    /// does for functions it did not use), and then every BAR reads as all
    /// ones and writes are dropped.
    pub fn enable_memory_space(&self) {
        let command = self.config.read_u16(regs::COMMAND);
        self.config.write_command(command | regs::COMMAND_MEMORY);
    }

    /// Enables I/O space decoding (for a driver that uses an I/O BAR).
    pub fn enable_io_decoding(&self) {
        let command = self.config.read_u16(regs::COMMAND);
        self.config.write_command(command | regs::COMMAND_IO);
    }

    /// Where I/O BAR `index` is for the CPU: CPU ports, or physical memory
    /// in the host bridge's I/O window ([`IoSpace`]).
    pub fn io_bar(&self, index: usize) -> Result<IoRegion, IoBarError> {
        match self.bars.get(index).copied().flatten() {
            Some(Bar::Io { port, size }) => self.io_space.locate(port, size),
            _ => Err(IoBarError::NotIo(index)),
        }
    }

    /// Maps memory BAR `index` with the cache policy its prefetchable bit
    /// allows. `None` when the slot holds no memory BAR.
    pub fn map_bar(
        &self,
        index: usize,
        services: &dyn DriverServices,
    ) -> Option<Result<IoMem, ServiceError>> {
        match self.bars.get(index).copied().flatten()? {
            Bar::Memory {
                address,
                size,
                prefetchable,
                ..
            } => {
                let policy = if prefetchable {
                    CachePolicy::WriteCombining
                } else {
                    CachePolicy::Uncached
                };
                Some(services.map_mmio(address, size, policy))
            }
            Bar::Io { .. } => None,
        }
    }

    /// Offsets of the capabilities with id `id`, in list order. The walk
    /// is bounded (at most 48 entries, offsets inside the header's
    /// capability area, dword aligned), so a looping or corrupt list ends.
    pub fn capabilities(&self, id: u8) -> impl Iterator<Item = u16> + '_ {
        crate::msix::capability_offsets(&self.config, id)
    }
}
