//! Memory a device reads and writes by itself (DMA).
//!
//! A [`DmaBuffer`] is physically contiguous, zero-filled when handed out,
//! and knows its bus address (the address the device uses). It is given
//! back to its allocator when dropped.
//!
//! Assumptions, stated once: there is no IOMMU in the path, so the bus
//! address is the physical address; and DMA is cache-coherent (x86, and
//! Arm servers and virtual machines whose PCIe root complex snoops the
//! caches, as ACPI's IORT and `_CCA` describe for QEMU virt and Graviton),
//! so buffers are ordinary write-back memory and need no cache
//! maintenance. Drivers order their own writes against doorbell writes with
//! the fences in [`DmaBuffer::write`] and device-register accesses.

use core::ptr::NonNull;
use core::sync::atomic::{Ordering, fence};

/// Frames of DMA memory, handed out and taken back.
pub trait DmaAllocator: Sync {
    /// `pages` zero-filled, physically contiguous 4 KiB pages: their
    /// virtual address in the kernel and their bus address; `None` when
    /// memory is exhausted.
    fn allocate_pages(&self, pages: usize) -> Option<(NonNull<u8>, u64)>;

    /// Gives back pages from [`DmaAllocator::allocate_pages`].
    ///
    /// # Safety
    /// `virt`, `bus` and `pages` must be one earlier allocation, no longer
    /// used by anything, the device included.
    unsafe fn free_pages(&self, virt: NonNull<u8>, bus: u64, pages: usize);
}

/// The DMA page size.
pub const DMA_PAGE_SIZE: usize = 4096;

/// A physically contiguous buffer a device may access.
pub struct DmaBuffer {
    virt: NonNull<u8>,
    bus: u64,
    len: usize,
    pages: usize,
    owner: &'static dyn DmaAllocator,
}

// SAFETY: the buffer is plain memory owned by this value; access goes
// through `&self` with volatile operations or `&mut self`.
unsafe impl Send for DmaBuffer {}
// SAFETY: shared access only reads or writes bytes with volatile
// operations, as the device does concurrently anyway.
unsafe impl Sync for DmaBuffer {}

impl core::fmt::Debug for DmaBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DmaBuffer")
            .field("bus", &self.bus)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl DmaBuffer {
    /// At least `len` bytes (rounded up to whole pages) from `owner`.
    pub fn new(owner: &'static dyn DmaAllocator, len: usize) -> Option<Self> {
        let pages = len.max(1).div_ceil(DMA_PAGE_SIZE);
        let (virt, bus) = owner.allocate_pages(pages)?;
        Some(Self {
            virt,
            bus,
            len: pages * DMA_PAGE_SIZE,
            pages,
            owner,
        })
    }

    /// The address the device uses for byte 0.
    pub fn bus_address(&self) -> u64 {
        self.bus
    }

    /// Length in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a buffer holds at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The kernel's address of byte 0.
    pub fn as_ptr(&self) -> *mut u8 {
        self.virt.as_ptr()
    }

    fn check(&self, offset: usize, size: usize) -> Option<*mut u8> {
        let end = offset.checked_add(size)?;
        // SAFETY (of the pointer arithmetic): `offset <= len`, inside the
        // allocation.
        (end <= self.len).then(|| self.virt.as_ptr().wrapping_add(offset))
    }

    /// Reads a `T` at `offset` (volatile: the device may have written it).
    /// `None` when it does not fit or is misaligned.
    pub fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let ptr = self.check(offset, core::mem::size_of::<T>())?;
        if !(ptr as usize).is_multiple_of(core::mem::align_of::<T>()) {
            return None;
        }
        fence(Ordering::Acquire);
        // SAFETY: in bounds and aligned (checked); the memory is ours.
        Some(unsafe { core::ptr::read_volatile(ptr as *const T) })
    }

    /// Writes a `T` at `offset` (volatile, ordered before later accesses
    /// to device registers). Returns false when it does not fit or is
    /// misaligned.
    pub fn write<T: Copy>(&self, offset: usize, value: T) -> bool {
        let Some(ptr) = self.check(offset, core::mem::size_of::<T>()) else {
            return false;
        };
        if !(ptr as usize).is_multiple_of(core::mem::align_of::<T>()) {
            return false;
        }
        // SAFETY: in bounds and aligned (checked); the memory is ours.
        unsafe { core::ptr::write_volatile(ptr as *mut T, value) };
        fence(Ordering::Release);
        true
    }

    /// Copies `data` in at `offset`; false when it does not fit.
    pub fn copy_from(&self, offset: usize, data: &[u8]) -> bool {
        let Some(ptr) = self.check(offset, data.len()) else {
            return false;
        };
        // SAFETY: `ptr..ptr + data.len()` is inside the buffer (checked),
        // which cannot overlap `data` (a borrowed slice elsewhere).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), ptr, data.len()) };
        fence(Ordering::Release);
        true
    }

    /// Copies bytes out from `offset` into `out`; false when they do not fit.
    pub fn copy_to(&self, offset: usize, out: &mut [u8]) -> bool {
        let Some(ptr) = self.check(offset, out.len()) else {
            return false;
        };
        fence(Ordering::Acquire);
        // SAFETY: as in `copy_from`.
        unsafe { core::ptr::copy_nonoverlapping(ptr, out.as_mut_ptr(), out.len()) };
        true
    }

    /// Zero-fills the buffer.
    pub fn zero(&self) {
        // SAFETY: the whole buffer is ours.
        unsafe { core::ptr::write_bytes(self.virt.as_ptr(), 0, self.len) };
        fence(Ordering::Release);
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // SAFETY: the value owned exactly this allocation; a driver drops a
        // buffer only once the device is done with it.
        unsafe { self.owner.free_pages(self.virt, self.bus, self.pages) };
    }
}

/// A [`DmaAllocator`] over the host's heap, for tests of drivers: the "bus
/// address" is the virtual address.
#[cfg(any(test, feature = "host-fakes"))]
pub mod host {
    extern crate std;
    use super::*;
    use std::alloc::{Layout, alloc_zeroed, dealloc};
    use std::sync::atomic::AtomicUsize;

    /// Heap-backed DMA pages; counts what is outstanding.
    #[derive(Debug, Default)]
    pub struct HostDma {
        /// Pages handed out and not yet freed.
        pub outstanding: AtomicUsize,
    }

    fn layout(pages: usize) -> Layout {
        Layout::from_size_align(pages * DMA_PAGE_SIZE, DMA_PAGE_SIZE).expect("layout")
    }

    impl DmaAllocator for HostDma {
        fn allocate_pages(&self, pages: usize) -> Option<(NonNull<u8>, u64)> {
            // SAFETY: a non-zero size (pages >= 1 by DmaBuffer::new).
            let ptr = NonNull::new(unsafe { alloc_zeroed(layout(pages)) })?;
            self.outstanding.fetch_add(pages, Ordering::Relaxed);
            Some((ptr, ptr.as_ptr() as u64))
        }

        unsafe fn free_pages(&self, virt: NonNull<u8>, _bus: u64, pages: usize) {
            self.outstanding.fetch_sub(pages, Ordering::Relaxed);
            // SAFETY: the caller passes back one allocation of `pages`.
            unsafe { dealloc(virt.as_ptr(), layout(pages)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host::HostDma;
    use super::*;

    #[test]
    fn buffers_are_whole_zeroed_pages_given_back_on_drop() {
        static DMA: HostDma = HostDma {
            outstanding: core::sync::atomic::AtomicUsize::new(0),
        };
        let buffer = DmaBuffer::new(&DMA, 5000).unwrap();
        assert_eq!(buffer.len(), 8192);
        assert_eq!(DMA.outstanding.load(Ordering::Relaxed), 2);
        assert_eq!(buffer.read::<u64>(8184), Some(0));
        assert!(buffer.write::<u32>(4, 0x1234_5678));
        assert_eq!(buffer.read::<u32>(4), Some(0x1234_5678));
        assert_eq!(buffer.read::<u32>(8190), None);
        assert_eq!(buffer.read::<u32>(2), None);
        assert!(!buffer.copy_from(8190, &[1, 2, 3]));
        assert!(buffer.copy_from(100, &[1, 2, 3]));
        let mut out = [0u8; 3];
        assert!(buffer.copy_to(100, &mut out));
        assert_eq!(out, [1, 2, 3]);
        drop(buffer);
        assert_eq!(DMA.outstanding.load(Ordering::Relaxed), 0);
    }
}
