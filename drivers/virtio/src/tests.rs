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

#[test]
fn shared_buffers_are_bounced_in_the_direction_asked_and_given_back() {
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
    assert_eq!(
        DMA.outstanding.load(core::sync::atomic::Ordering::Relaxed),
        0
    );
}
