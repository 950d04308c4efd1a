//! The modern virtio-pci transport (virtio 1.2, 4.1) on `stratus-pci`,
//! implementing virtio-drivers' `Transport`.
//!
//! Why our own rather than the crate's `PciTransport`: the crate's gives no
//! way to set a queue's MSI-X vector (`queue_msix_vector`, 4.1.4.3), so a
//! device driven through it can only be polled. This one is built with one
//! vector per queue ([`ModernPciTransport::set_queue_vector`]) and writes it
//! while the queue is selected, before the queue is enabled, as the
//! specification orders (4.1.5.1.3). It also maps the structures through
//! the driver API (checked against the memory map) and reaches every
//! register with bounds-checked volatile accesses, so it has no unsafe
//! code.
//!
//! The structures are found through the vendor-specific capabilities
//! (`virtio_pci_cap`, 4.1.4): common configuration, notifications, ISR
//! status and device configuration. A capability pointing outside its BAR,
//! at an I/O BAR, or a missing structure refuses the device with a
//! message.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use stratus_driver_api::{DriverServices, IoMem};
use stratus_pci::{Bar, PciFunction, regs};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// `cfg_type` of `virtio_pci_cap` (4.1.4).
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;

/// Offsets in `virtio_pci_common_cfg` (4.1.4.3).
mod common {
    pub const DEVICE_FEATURE_SELECT: usize = 0x00;
    pub const DEVICE_FEATURE: usize = 0x04;
    pub const DRIVER_FEATURE_SELECT: usize = 0x08;
    pub const DRIVER_FEATURE: usize = 0x0c;
    pub const NUM_QUEUES: usize = 0x12;
    pub const DEVICE_STATUS: usize = 0x14;
    pub const CONFIG_GENERATION: usize = 0x15;
    pub const QUEUE_SELECT: usize = 0x16;
    pub const QUEUE_SIZE: usize = 0x18;
    pub const QUEUE_MSIX_VECTOR: usize = 0x1a;
    pub const QUEUE_ENABLE: usize = 0x1c;
    pub const QUEUE_NOTIFY_OFF: usize = 0x1e;
    pub const QUEUE_DESC: usize = 0x20;
    pub const QUEUE_DRIVER: usize = 0x28;
    pub const QUEUE_DEVICE: usize = 0x30;
    /// Bytes of the structure this transport uses.
    pub const LEN: usize = 0x38;
}

/// "No vector" for `config_msix_vector` and `queue_msix_vector` (4.1.5.1.2).
pub const NO_VECTOR: u16 = 0xffff;

/// Status reads a reset may take before the device is called stuck.
const RESET_POLLS: u32 = 1_000_000;

/// The most queues this transport keeps vectors for.
const MAX_QUEUES: usize = 16;

/// One structure a capability describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Structure {
    bar: u8,
    offset: u32,
    length: u32,
}

/// The capabilities of a virtio function, read from configuration space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioCapabilities {
    common: Option<Structure>,
    notify: Option<(Structure, u32)>,
    isr: Option<Structure>,
    device: Option<Structure>,
}

impl VirtioCapabilities {
    /// Reads the vendor capabilities of `function`; the first of each type
    /// wins (4.1.4: "the driver SHOULD use the first one").
    pub fn read(function: &PciFunction) -> Self {
        let config = function.config;
        let mut caps = Self::default();
        for at in function.capabilities(regs::CAP_VENDOR) {
            let cfg_type = config.read_u8(at + 3);
            let structure = Structure {
                bar: config.read_u8(at + 4),
                offset: config.read_u32(at + 8),
                length: config.read_u32(at + 12),
            };
            match cfg_type {
                CAP_COMMON if caps.common.is_none() => caps.common = Some(structure),
                CAP_NOTIFY if caps.notify.is_none() => {
                    caps.notify = Some((structure, config.read_u32(at + 16)))
                }
                CAP_ISR if caps.isr.is_none() => caps.isr = Some(structure),
                CAP_DEVICE if caps.device.is_none() => caps.device = Some(structure),
                _ => {}
            }
        }
        caps
    }
}

/// The device type a virtio PCI device id stands for (4.1.2.1): modern ids
/// are 0x1040 + type, transitional ones 0x1000 (net) and 0x1001 (block).
pub fn device_type(device_id: u16) -> Option<DeviceType> {
    match device_id {
        0x1000 => Some(DeviceType::Network),
        0x1001 => Some(DeviceType::Block),
        0x1041..=0x107f => DeviceType::try_from(device_id - 0x1040).ok(),
        _ => None,
    }
}

/// Whether `function` is a virtio device of type `wanted` (vendor 0x1af4,
/// a modern or transitional device id, see [`device_type`]).
pub fn claims(function: &PciFunction, wanted: DeviceType) -> bool {
    function.vendor_id == 0x1af4 && device_type(function.device_id) == Some(wanted)
}

/// The modern virtio-pci transport of one function.
#[derive(Debug)]
pub struct ModernPciTransport {
    device_type: DeviceType,
    common: IoMem,
    notify: IoMem,
    notify_multiplier: u32,
    isr: IoMem,
    device: Option<IoMem>,
    queue_vectors: [u16; MAX_QUEUES],
    notify_offsets: [u16; MAX_QUEUES],
    vector_refused: bool,
}

fn map_structure(
    function: &PciFunction,
    services: &dyn DriverServices,
    what: &str,
    structure: Structure,
    at_least: usize,
) -> Result<IoMem, String> {
    let index = usize::from(structure.bar);
    match function.bars.get(index).copied().flatten() {
        Some(Bar::Memory { size, .. }) => {
            let end = u64::from(structure.offset) + u64::from(structure.length);
            if end > size || (structure.length as usize) < at_least {
                return Err(format!(
                    "{what} structure {:#x}+{:#x} does not fit BAR {index} ({size:#x} bytes) or is under {at_least} bytes",
                    structure.offset, structure.length
                ));
            }
        }
        Some(Bar::Io { .. }) => return Err(format!("{what} structure in I/O BAR {index}")),
        None => return Err(format!("{what} structure in BAR {index}, which is absent")),
    }
    let bar = function
        .map_bar(index, services)
        .ok_or_else(|| format!("BAR {index} is not memory"))?
        .map_err(|e| format!("BAR {index}: {e}"))?;
    bar.window(structure.offset as usize, structure.length as usize)
        .map_err(|e| format!("{what} structure: {e}"))
}

impl ModernPciTransport {
    /// Finds and maps the structures of `function` (a virtio function).
    /// Every queue starts with no MSI-X vector.
    pub fn new(function: &PciFunction, services: &dyn DriverServices) -> Result<Self, String> {
        let device_type = device_type(function.device_id)
            .ok_or_else(|| format!("device id {:#06x} is not virtio", function.device_id))?;
        let caps = VirtioCapabilities::read(function);
        let common = caps
            .common
            .ok_or("no common configuration capability (a legacy-only device)")?;
        let (notify, notify_multiplier) = caps.notify.ok_or("no notification capability")?;
        let isr = caps.isr.ok_or("no ISR status capability")?;
        Ok(Self {
            device_type,
            common: map_structure(function, services, "common", common, common::LEN)?,
            notify: map_structure(function, services, "notify", notify, 2)?,
            notify_multiplier,
            isr: map_structure(function, services, "ISR", isr, 1)?,
            device: caps
                .device
                .map(|d| map_structure(function, services, "device", d, 0))
                .transpose()?,
            queue_vectors: [NO_VECTOR; MAX_QUEUES],
            notify_offsets: [0; MAX_QUEUES],
            vector_refused: false,
        })
    }

    /// The number of virtqueues the device offers.
    pub fn queue_count(&self) -> u16 {
        self.common.read::<u16>(common::NUM_QUEUES).unwrap_or(0)
    }

    /// The MSI-X table entry queue `queue` signals through, written when
    /// the queue is set up ([`NO_VECTOR`]: none, the driver polls).
    pub fn set_queue_vector(&mut self, queue: u16, entry: u16) {
        if let Some(slot) = self.queue_vectors.get_mut(usize::from(queue)) {
            *slot = entry;
        }
    }

    /// Whether the device refused a vector (it reads back [`NO_VECTOR`]
    /// when it could not allocate one, 4.1.5.1.2): that queue then raises
    /// no interrupt and must be polled.
    pub fn vector_refused(&self) -> bool {
        self.vector_refused
    }

    /// A window on the device configuration structure (for fields the
    /// crate's drivers do not read, such as virtio-net's link status).
    pub fn device_config(&self) -> Option<IoMem> {
        let device = self.device.as_ref()?;
        device.window(0, device.len()).ok()
    }

    fn select(&self, queue: u16) {
        let _ = self.common.write::<u16>(common::QUEUE_SELECT, queue);
    }
}

/// Reads `size_of::<T>()` bytes at `offset` of the device configuration
/// with accesses of the field's width (4.1.3.1: naturally aligned
/// accesses; a 64-bit field as two 32-bit ones).
fn read_device<T: FromBytes + IntoBytes>(device: &IoMem, offset: usize) -> Result<T, Error> {
    let size = size_of::<T>();
    if offset
        .checked_add(size)
        .is_none_or(|end| end > device.len())
    {
        return Err(Error::ConfigSpaceTooSmall);
    }
    let mut bytes = Vec::with_capacity(size);
    let bad = |_| Error::ConfigSpaceTooSmall;
    match size {
        2 if offset.is_multiple_of(2) => {
            bytes.extend(device.read::<u16>(offset).map_err(bad)?.to_le_bytes())
        }
        4 if offset.is_multiple_of(4) => {
            bytes.extend(device.read::<u32>(offset).map_err(bad)?.to_le_bytes())
        }
        8 if offset.is_multiple_of(4) => {
            bytes.extend(device.read::<u32>(offset).map_err(bad)?.to_le_bytes());
            bytes.extend(device.read::<u32>(offset + 4).map_err(bad)?.to_le_bytes());
        }
        _ => {
            for i in 0..size {
                bytes.push(device.read::<u8>(offset + i).map_err(bad)?);
            }
        }
    }
    T::read_from_bytes(&bytes).map_err(|_| Error::ConfigSpaceTooSmall)
}

impl Transport for ModernPciTransport {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        let mut features = 0u64;
        for half in 0..2u32 {
            let _ = self
                .common
                .write::<u32>(common::DEVICE_FEATURE_SELECT, half);
            let bits = self.common.read::<u32>(common::DEVICE_FEATURE).unwrap_or(0);
            features |= u64::from(bits) << (32 * half);
        }
        features
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        for half in 0..2u32 {
            let _ = self
                .common
                .write::<u32>(common::DRIVER_FEATURE_SELECT, half);
            let _ = self.common.write::<u32>(
                common::DRIVER_FEATURE,
                (driver_features >> (32 * half)) as u32,
            );
        }
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.select(queue);
        u32::from(self.common.read::<u16>(common::QUEUE_SIZE).unwrap_or(0))
    }

    fn notify(&mut self, queue: u16) {
        // The offset was read when the queue was set up (it does not
        // change), so a notification is one register write.
        let offset = self
            .notify_offsets
            .get(usize::from(queue))
            .copied()
            .unwrap_or(0);
        let at = usize::from(offset).saturating_mul(self.notify_multiplier as usize);
        if self.notify.write::<u16>(at, queue).is_err() {
            log::error!(target: "virtio", "queue {queue}: notify offset {at:#x} is past the notify structure");
        }
    }

    fn get_status(&self) -> DeviceStatus {
        let status = self.common.read::<u8>(common::DEVICE_STATUS).unwrap_or(0);
        DeviceStatus::from_bits_truncate(u32::from(status))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        let _ = self
            .common
            .write::<u8>(common::DEVICE_STATUS, status.bits() as u8);
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {
        // Legacy devices only.
    }

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.select(queue);
        let c = &self.common;
        let _ = c.write::<u16>(common::QUEUE_SIZE, size as u16);
        // 64-bit fields as two 32-bit writes, low half first (4.1.3.1).
        for (field, address) in [
            (common::QUEUE_DESC, descriptors),
            (common::QUEUE_DRIVER, driver_area),
            (common::QUEUE_DEVICE, device_area),
        ] {
            let _ = c.write::<u32>(field, address as u32);
            let _ = c.write::<u32>(field + 4, (address >> 32) as u32);
        }
        let notify_off = c.read::<u16>(common::QUEUE_NOTIFY_OFF).unwrap_or(0);
        if let Some(slot) = self.notify_offsets.get_mut(usize::from(queue)) {
            *slot = notify_off;
        }
        let vector = self
            .queue_vectors
            .get(usize::from(queue))
            .copied()
            .unwrap_or(NO_VECTOR);
        if vector != NO_VECTOR {
            let _ = c.write::<u16>(common::QUEUE_MSIX_VECTOR, vector);
            if c.read::<u16>(common::QUEUE_MSIX_VECTOR) != Ok(vector) {
                log::warn!(target: "virtio", "queue {queue}: the device refused MSI-X entry {vector}; polled");
                self.vector_refused = true;
            }
        }
        let _ = c.write::<u16>(common::QUEUE_ENABLE, 1);
    }

    fn queue_unset(&mut self, _queue: u16) {
        // A modern queue is only taken back by a device reset (done on
        // drop), or by VIRTIO_F_RING_RESET, which is not negotiated.
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.select(queue);
        self.common.read::<u16>(common::QUEUE_ENABLE) == Ok(1)
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        // Reading the ISR status clears it (4.1.4.5).
        let isr = self.isr.read::<u8>(0).unwrap_or(0);
        InterruptStatus::from_bits_truncate(u32::from(isr))
    }

    fn read_config_generation(&self) -> u32 {
        u32::from(
            self.common
                .read::<u8>(common::CONFIG_GENERATION)
                .unwrap_or(0),
        )
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let device = self.device.as_ref().ok_or(Error::ConfigSpaceMissing)?;
        read_device(device, offset)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<(), Error> {
        let device = self.device.as_ref().ok_or(Error::ConfigSpaceMissing)?;
        let bytes = value.as_bytes();
        if offset
            .checked_add(bytes.len())
            .is_none_or(|end| end > device.len())
        {
            return Err(Error::ConfigSpaceTooSmall);
        }
        for (i, byte) in bytes.iter().enumerate() {
            device
                .write::<u8>(offset + i, *byte)
                .map_err(|_| Error::ConfigSpaceTooSmall)?;
        }
        Ok(())
    }
}

impl Drop for ModernPciTransport {
    fn drop(&mut self) {
        // Reset: the device stops using the queues' memory (4.1.4.3.2),
        // which the driver is about to free.
        let _ = self.common.write::<u8>(common::DEVICE_STATUS, 0);
        // The reset is done when the status reads back 0 (bounded).
        for _ in 0..RESET_POLLS {
            if self.common.read::<u8>(common::DEVICE_STATUS) != Ok(0) {
                core::hint::spin_loop();
            } else {
                return;
            }
        }
        log::warn!(target: "virtio", "the device did not finish its reset");
    }
}
