//! The kernel's side of the driver API ([`stratus_driver_api`]): register
//! mapping, DMA memory, MSI vectors and waits, for drivers on any CPU.
//!
//! Installed once at the end of boot ([`install`]): from then on the frame
//! allocator and the device window live behind interrupt-safe locks, shared
//! by every CPU, and [`services`] hands drivers a `&'static dyn
//! DriverServices`.

use crate::frames::{self, FRAME_SIZE, FrameAllocator};
use crate::irq_lock::IrqSafeSpinlock;
use crate::mmio::{DeviceMemory, ZeroedFrames};
use crate::{cpu_local, irq, smp, timer};
use core::ptr::NonNull;
use core::time::Duration;
use stratus_arch::{Arch, CpuHardwareId, DeviceMapping, FrameSource, MapError, MsiDevice};
use stratus_driver_api::{
    CachePolicy, DmaAllocator, DmaBuffer, DriverServices, IoMem, MsiRequest, MsiSource, MsiVector,
    PortIo, ServiceError,
};

/// The architecture's register mapper.
type MapDevice = fn(DeviceMapping, u64, &mut dyn FrameSource) -> Result<(), MapError>;

/// Turns a PCI requester into the device id the interrupt controller sees
/// (IORT on arm; the identity elsewhere); `None` when the firmware routes
/// the device's MSIs nowhere.
pub type MsiDeviceId = alloc::boxed::Box<dyn Fn(MsiSource) -> Option<u32> + Send + Sync>;

/// The kernel's [`DriverServices`].
pub struct KernelServices {
    hhdm_offset: u64,
    frames: &'static IrqSafeSpinlock<FrameAllocator>,
    device_memory: IrqSafeSpinlock<DeviceMemory>,
    map_device: MapDevice,
    port_io: Option<PortIo>,
    msi_device_id: MsiDeviceId,
}

impl core::fmt::Debug for KernelServices {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KernelServices").finish_non_exhaustive()
    }
}

static SERVICES: spin::Once<KernelServices> = spin::Once::new();

/// Shares `frames` and `device_memory` with every CPU and builds the
/// services on them (the first call wins). `msi_device_id` names MSI
/// sources for the interrupt controller.
pub fn install<A: Arch>(
    hhdm_offset: u64,
    frames: FrameAllocator,
    device_memory: DeviceMemory,
    msi_device_id: MsiDeviceId,
) -> &'static KernelServices {
    SERVICES.call_once(|| KernelServices {
        hhdm_offset,
        frames: frames::install(frames),
        device_memory: IrqSafeSpinlock::new(device_memory),
        map_device: A::map_device,
        port_io: A::port_io(),
        msi_device_id,
    })
}

/// The services, once [`install`]ed.
pub fn services() -> Option<&'static KernelServices> {
    SERVICES.get()
}

impl KernelServices {
    /// The shared frame allocator.
    pub fn frames(&self) -> &'static IrqSafeSpinlock<FrameAllocator> {
        self.frames
    }

    /// Maps registers like [`DriverServices::map_mmio`], returning the
    /// kernel's view of the mapping.
    pub fn map_registers(
        &self,
        phys: u64,
        len: u64,
    ) -> Result<crate::mmio::MmioRegion, ServiceError> {
        let mut window = self.device_memory.lock();
        let mut frames = self.frames.lock();
        let (map, hhdm_offset) = (self.map_device, self.hhdm_offset);
        window
            .map_with(phys, len, &mut |request| {
                map(
                    request,
                    hhdm_offset,
                    &mut ZeroedFrames::new(&mut frames, hhdm_offset),
                )
            })
            .map_err(|e| {
                log::warn!("driver: registers at {phys:#x}+{len:#x} not mapped: {e}");
                match e {
                    crate::mmio::DeviceMapError::Map(MapError::OutOfFrames) => {
                        ServiceError::NoMemory
                    }
                    _ => ServiceError::BadRange,
                }
            })
    }
}

impl DmaAllocator for KernelServices {
    fn allocate_pages(&self, pages: usize) -> Option<(NonNull<u8>, u64)> {
        let phys = self.frames.lock().allocate_contiguous(pages as u64)?;
        let virt = phys + self.hhdm_offset;
        // SAFETY: the frames were just taken from the allocator, so nothing
        // else uses them; the direct map covers all RAM at `hhdm_offset`.
        unsafe { core::ptr::write_bytes(virt as *mut u8, 0, pages * FRAME_SIZE as usize) };
        NonNull::new(virt as *mut u8).map(|virt| (virt, phys))
    }

    unsafe fn free_pages(&self, _virt: NonNull<u8>, bus: u64, pages: usize) {
        self.frames.lock().free_contiguous(bus, pages as u64);
    }
}

impl DriverServices for KernelServices {
    fn map_mmio(&self, phys: u64, len: u64, policy: CachePolicy) -> Result<IoMem, ServiceError> {
        let region = self.map_registers(phys, len)?;
        let len = usize::try_from(len).map_err(|_| ServiceError::BadRange)?;
        // SAFETY: the range was checked against the memory map and mapped
        // with device attributes (write-combining falls back to uncached,
        // as documented on `CachePolicy`); the window is never unmapped.
        Ok(unsafe { IoMem::new(region.virt as usize, phys, len, policy) })
    }

    fn allocate_dma(&self, len: usize) -> Result<DmaBuffer, ServiceError> {
        let services = services().ok_or(ServiceError::NoMemory)?;
        DmaBuffer::new(services, len).ok_or(ServiceError::NoMemory)
    }

    fn allocate_msi(&self, request: MsiRequest) -> Result<MsiVector, ServiceError> {
        let interrupts = irq::interrupts().ok_or(ServiceError::MsiUnavailable)?;
        if !interrupts.msi_available() {
            return Err(ServiceError::MsiUnavailable);
        }
        let target =
            cpu_local::hardware_id_of(request.cpu).ok_or(ServiceError::NoSuchCpu(request.cpu))?;
        let device = self
            .msi_device(request.source)
            .ok_or(ServiceError::MsiUnavailable)?;
        let (id, message) = interrupts
            .allocate_msi(
                device,
                CpuHardwareId(target),
                request.handler,
                request.context,
            )
            .map_err(|e| {
                log::warn!("driver: no MSI for {:?}: {e}", request.source);
                match e {
                    irq::IrqError::Vector(_) => ServiceError::NoVector,
                    _ => ServiceError::MsiUnavailable,
                }
            })?;
        Ok(MsiVector {
            id: id.0,
            message: stratus_driver_api::MsiMessage {
                address: message.address,
                data: message.data,
            },
            cpu: request.cpu,
            source: request.source,
        })
    }

    fn free_msi(&self, vector: MsiVector) {
        if let (Some(interrupts), Some(device)) =
            (irq::interrupts(), self.msi_device(vector.source))
        {
            interrupts.free_msi(device, stratus_arch::InterruptId(vector.id));
        }
    }

    fn port_io(&self) -> Option<PortIo> {
        self.port_io
    }

    fn add_console(
        &self,
        console: &'static dyn stratus_driver_api::console::ConsoleSink,
        descriptor: stratus_driver_api::console::ConsoleDescriptor,
    ) -> bool {
        match crate::logger::add_console(console, descriptor) {
            Ok(count) => {
                log::info!(
                    target: "log",
                    "console {descriptor} added: the log goes to {count} consoles from here on"
                );
                true
            }
            Err(e) => {
                log::warn!(target: "log", "console {descriptor} not added: {e}");
                false
            }
        }
    }

    fn cpu_count(&self) -> usize {
        smp::online_cpus()
    }

    fn this_cpu(&self) -> usize {
        cpu_local::index()
    }

    fn wait_for_interrupt(&self, timeout: Duration) {
        let mut first = true;
        // Returns after the first wake-up: `done` says no once, then yes.
        timer::wait_until(timeout, &mut || !core::mem::replace(&mut first, false));
    }

    fn wait_until(&self, timeout: Duration, done: &mut dyn FnMut() -> bool) -> bool {
        timer::wait_until(timeout, done)
    }
}

impl KernelServices {
    fn msi_device(&self, source: MsiSource) -> Option<MsiDevice> {
        Some(MsiDevice {
            segment: source.segment,
            requester_id: source.requester_id,
            its_device_id: (self.msi_device_id)(source)?,
        })
    }
}
