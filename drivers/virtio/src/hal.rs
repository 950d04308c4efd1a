//! virtio-drivers' `Hal` on the driver API.
//!
//! The crate's `Hal` is static (no `self`), so the services live in one
//! global set by the first probe. DMA allocations are kept in a table
//! keyed by bus address and freed when the crate gives them back. Memory
//! the crate shares with the device (request headers, callers' buffers) is
//! ordinary heap memory whose physical address the driver API deliberately
//! does not expose: it is bounced through a DMA buffer, copied in on
//! `share` and out on `unshare` as the direction asks.

use alloc::collections::BTreeMap;
use core::ptr::NonNull;
use stratus_driver_api::{CachePolicy, DmaBuffer, DriverServices};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

static SERVICES: spin::Once<&'static dyn DriverServices> = spin::Once::new();
/// DMA buffers handed to the crate (allocations and bounces), by bus address.
static BUFFERS: spin::Mutex<BTreeMap<u64, DmaBuffer>> = spin::Mutex::new(BTreeMap::new());

/// Sets the services the `Hal` uses (the first call wins).
pub fn install(services: &'static dyn DriverServices) {
    SERVICES.call_once(|| services);
}

fn services() -> &'static dyn DriverServices {
    *SERVICES
        .get()
        .expect("virtio: Hal used before a probe installed the services")
}

/// Buffers outstanding (for tests and leak checks).
pub fn outstanding() -> usize {
    BUFFERS.lock().len()
}

/// The `Hal`.
pub struct StratusHal;

fn keep(buffer: DmaBuffer) -> (u64, NonNull<u8>) {
    let bus = buffer.bus_address();
    let virt = NonNull::new(buffer.as_ptr()).expect("DMA buffers are never null");
    BUFFERS.lock().insert(bus, buffer);
    (bus, virt)
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory owned by the
// table until `dma_dealloc`; `mmio_phys_to_virt` returns a fresh device
// mapping of the range; `share` returns a bounce buffer of the same length
// that nothing else uses until `unshare`.
unsafe impl Hal for StratusHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let buffer = services()
            .allocate_dma(pages * 4096)
            .expect("virtio: out of DMA memory");
        let (bus, virt) = keep(buffer);
        (bus, virt)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        match BUFFERS.lock().remove(&paddr) {
            Some(_) => 0,
            None => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let regs = services()
            .map_mmio(paddr, size as u64, CachePolicy::Uncached)
            .expect("virtio: BAR registers could not be mapped");
        // The mapping stays for the device's lifetime (the window never
        // unmaps); the crate keeps the pointer.
        NonNull::new(regs.as_ptr()).expect("mappings are never null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let len = buffer.len();
        let bounce = services()
            .allocate_dma(len)
            .expect("virtio: out of DMA memory for a bounce buffer");
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the crate passes a valid buffer nothing else touches
            // during the call.
            let data = unsafe { buffer.as_ref() };
            bounce.copy_from(0, data);
        }
        keep(bounce).0
    }

    unsafe fn unshare(paddr: PhysAddr, mut buffer: NonNull<[u8]>, direction: BufferDirection) {
        let Some(bounce) = BUFFERS.lock().remove(&paddr) else {
            log::error!(target: "virtio", "unshare of {paddr:#x}, which was never shared");
            return;
        };
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: as in `share`.
            let out = unsafe { buffer.as_mut() };
            bounce.copy_to(0, out);
        }
    }
}
