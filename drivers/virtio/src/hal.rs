//! virtio-drivers' `Hal` on the driver API.
//!
//! The crate's `Hal` is static (no `self`), so the services live in one
//! global set by the first probe. DMA allocations are kept in a table
//! keyed by bus address and freed when the crate gives them back. Memory
//! the crate shares with the device (request headers, callers' buffers) is
//! ordinary heap memory whose physical address the driver API deliberately
//! does not expose: it is bounced through a DMA buffer, copied in on
//! `share` and out on `unshare` as the direction asks — unless it lies in
//! a DMA buffer a driver registered as device-visible
//! ([`register_device_visible`], virtio-net's frame pools): that memory is
//! shared as it is, without a copy. Bounce buffers given back are kept (a
//! bounded pool, by length) for the next `share`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ptr::NonNull;
use stratus_driver_api::{CachePolicy, DmaBuffer, DriverServices};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

static SERVICES: spin::Once<&'static dyn DriverServices> = spin::Once::new();
/// DMA buffers handed to the crate (allocations and bounces), by bus address.
static BUFFERS: spin::Mutex<BTreeMap<u64, DmaBuffer>> = spin::Mutex::new(BTreeMap::new());
/// Bounce buffers `unshare` gave back, kept for the next `share` of the same
/// length: a request shares three buffers (header, data, status), and
/// taking each from the frame allocator (which zero-fills whole pages) and
/// giving it back again cost more than the request's copy itself.
static SPARE: spin::Mutex<Spare> = spin::Mutex::new(Spare {
    buffers: Vec::new(),
    bytes: 0,
});
/// At most this many spare buffers...
const SPARE_BUFFERS: usize = 96;
/// ...holding at most this many bytes.
const SPARE_BYTES: usize = 4 << 20;

struct Spare {
    buffers: Vec<DmaBuffer>,
    bytes: usize,
}

/// A spare bounce buffer of exactly `len` bytes, if one is kept.
fn take_spare(len: usize) -> Option<DmaBuffer> {
    let mut spare = SPARE.lock();
    let at = spare.buffers.iter().rposition(|b| b.len() == len)?;
    let buffer = spare.buffers.swap_remove(at);
    spare.bytes -= len;
    Some(buffer)
}

/// Keeps `buffer` for reuse, or frees it when the pool is full.
fn give_back(buffer: DmaBuffer) {
    let mut spare = SPARE.lock();
    if spare.buffers.len() < SPARE_BUFFERS && spare.bytes + buffer.len() <= SPARE_BYTES {
        spare.bytes += buffer.len();
        spare.buffers.push(buffer);
    }
}

/// Frees every spare bounce buffer (for tests and leak checks).
pub fn release_spare() {
    let mut spare = SPARE.lock();
    spare.buffers.clear();
    spare.bytes = 0;
}

/// Spare bounce buffers kept (for tests).
pub fn spare() -> usize {
    SPARE.lock().buffers.len()
}

/// Device-visible regions (DMA buffers a driver owns), by virtual start:
/// (length, bus address).
static DEVICE_VISIBLE: spin::Mutex<BTreeMap<usize, (usize, u64)>> =
    spin::Mutex::new(BTreeMap::new());

/// Lets the device reach `buffer` in place: buffers inside it are shared
/// without a bounce. The caller keeps `buffer` alive (and registered) for
/// as long as the device may use it, and calls
/// [`unregister_device_visible`] before dropping it.
pub fn register_device_visible(buffer: &DmaBuffer) {
    DEVICE_VISIBLE.lock().insert(
        buffer.as_ptr() as usize,
        (buffer.len(), buffer.bus_address()),
    );
}

/// Ends [`register_device_visible`] for `buffer`.
pub fn unregister_device_visible(buffer: &DmaBuffer) {
    DEVICE_VISIBLE.lock().remove(&(buffer.as_ptr() as usize));
}

/// The bus address of `[virt, virt + len)` if it lies wholly inside a
/// device-visible region.
fn device_visible_bus(virt: usize, len: usize) -> Option<u64> {
    let regions = DEVICE_VISIBLE.lock();
    let (&start, &(region_len, bus)) = regions.range(..=virt).next_back()?;
    let offset = virt - start;
    (offset.checked_add(len)? <= region_len).then(|| bus + offset as u64)
}

/// Whether bus address `bus` lies in a device-visible region.
fn is_device_visible_bus(bus: u64) -> bool {
    DEVICE_VISIBLE
        .lock()
        .values()
        .any(|&(len, start)| bus >= start && bus - start < len as u64)
}

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
        if let Some(bus) = device_visible_bus(buffer.as_ptr() as *mut u8 as usize, len) {
            return bus;
        }
        let bounce = match take_spare(len) {
            Some(spare) => {
                // What the device does not write must read as zeros, as
                // in a fresh buffer, never as an earlier request's data.
                if direction == BufferDirection::DeviceToDriver {
                    spare.zero();
                }
                spare
            }
            None => services()
                .allocate_dma(len)
                .expect("virtio: out of DMA memory for a bounce buffer"),
        };
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
            if is_device_visible_bus(paddr) {
                return;
            }
            log::error!(target: "virtio", "unshare of {paddr:#x}, which was never shared");
            return;
        };
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: as in `share`.
            let out = unsafe { buffer.as_mut() };
            bounce.copy_to(0, out);
        }
        // The device is done with it (the crate unshares only used buffers).
        give_back(bounce);
    }
}
