//! The `Hal` against heap-backed DMA.

extern crate std;
use crate::hal::{self, StratusHal};
use core::ptr::NonNull;
use stratus_driver_api::dma::host::HostDma;
use stratus_driver_api::services::host::HostServices;
use virtio_drivers::{BufferDirection, Hal};

static DMA: HostDma = HostDma {
    outstanding: core::sync::atomic::AtomicUsize::new(0),
};

static SERVICES: HostServices = HostServices::new(&DMA);

/// The Hal's tables are global: its tests run one at a time.
static HAL_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn shared_buffers_are_bounced_in_the_direction_asked_and_given_back() {
    let _one_at_a_time = HAL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    hal::install(&SERVICES);
    let mut data = [7u8; 100];
    let slice = NonNull::from(&mut data[..]);
    // SAFETY: `data` is valid and untouched during the calls.
    let to_device = unsafe { StratusHal::share(slice, BufferDirection::DriverToDevice) };
    // The device sees a copy; changing it does not reach the caller's buffer.
    // SAFETY: the bounce buffer is host memory here (bus = virtual).
    unsafe { *(to_device as *mut u8) = 1 };
    // SAFETY: as above.
    assert_eq!(unsafe { *(to_device as *const u8).add(99) }, 7);
    // SAFETY: the paddr `share` returned, the same buffer.
    unsafe { StratusHal::unshare(to_device, slice, BufferDirection::DriverToDevice) };
    assert_eq!(data[0], 7);
    // Device to driver: what the device wrote comes back.
    let slice = NonNull::from(&mut data[..]);
    // SAFETY: as above.
    let from_device = unsafe { StratusHal::share(slice, BufferDirection::DeviceToDriver) };
    // SAFETY: as above.
    unsafe { core::ptr::write_bytes(from_device as *mut u8, 9, 100) };
    // SAFETY: as above.
    unsafe { StratusHal::unshare(from_device, slice, BufferDirection::DeviceToDriver) };
    assert_eq!(data, [9u8; 100]);
    // Allocations come back zeroed and are freed; unknown ones are refused.
    let (paddr, vaddr) = StratusHal::dma_alloc(2, BufferDirection::Both);
    // SAFETY: two pages just allocated.
    let pages = unsafe { core::slice::from_raw_parts(vaddr.as_ptr(), 8192) };
    assert!(pages.iter().all(|&b| b == 0));
    // SAFETY: the allocation above.
    assert_eq!(unsafe { StratusHal::dma_dealloc(paddr, vaddr, 2) }, 0);
    // SAFETY: an address never allocated is only looked up.
    assert_eq!(unsafe { StratusHal::dma_dealloc(0x1234, vaddr, 1) }, -1);
    assert_eq!(hal::outstanding(), 0);
    // Bounce buffers given back are kept for reuse until released.
    assert!(hal::spare() > 0);
    hal::release_spare();
    assert_eq!(
        DMA.outstanding.load(core::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn spare_bounce_buffers_are_reused_zeroed_and_bounded() {
    let _one_at_a_time = HAL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    hal::install(&SERVICES);
    let mut data = [5u8; 4096];
    let slice = NonNull::from(&mut data[..]);
    // SAFETY: `data` is valid and untouched during the calls.
    let first = unsafe { StratusHal::share(slice, BufferDirection::DriverToDevice) };
    // SAFETY: the paddr `share` returned, the same buffer.
    unsafe { StratusHal::unshare(first, slice, BufferDirection::DriverToDevice) };
    // The same length again, device to driver: the same buffer, but what
    // the device leaves alone reads as zeros, not as the 5s shared before.
    let mut back = [9u8; 4096];
    let slice = NonNull::from(&mut back[..]);
    // SAFETY: as above.
    let second = unsafe { StratusHal::share(slice, BufferDirection::DeviceToDriver) };
    assert_eq!(second, first);
    // SAFETY: the bounce buffer is host memory here (bus = virtual).
    unsafe { *(second as *mut u8) = 1 };
    // SAFETY: as above.
    unsafe { StratusHal::unshare(second, slice, BufferDirection::DeviceToDriver) };
    assert_eq!(back[0], 1);
    assert!(back[1..].iter().all(|&b| b == 0));
    // Many buffers at once: the pool keeps a bounded number of them.
    let mut many = std::vec![[0u8; 16]; 200];
    let shared: std::vec::Vec<(u64, NonNull<[u8]>)> = many
        .iter_mut()
        .map(|b| {
            let slice = NonNull::from(&mut b[..]);
            // SAFETY: as above.
            (
                unsafe { StratusHal::share(slice, BufferDirection::DriverToDevice) },
                slice,
            )
        })
        .collect();
    for (paddr, slice) in shared {
        // SAFETY: as above.
        unsafe { StratusHal::unshare(paddr, slice, BufferDirection::DriverToDevice) };
    }
    assert!(hal::spare() <= 96, "{}", hal::spare());
    hal::release_spare();
    assert_eq!(hal::spare(), 0);
}

#[test]
fn device_ids_name_their_virtio_type() {
    use crate::transport::device_type;
    use virtio_drivers::transport::DeviceType;
    assert_eq!(device_type(0x1000), Some(DeviceType::Network));
    assert_eq!(device_type(0x1001), Some(DeviceType::Block));
    assert_eq!(device_type(0x1041), Some(DeviceType::Network));
    assert_eq!(device_type(0x1042), Some(DeviceType::Block));
    // Not virtio, or a type id no device has.
    assert_eq!(device_type(0x1040), None);
    assert_eq!(device_type(0x1002 + 0x100), None);
    assert_eq!(device_type(0x10ff), None);
}
