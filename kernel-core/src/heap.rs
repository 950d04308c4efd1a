//! The kernel heap: `alloc` works once [`init`] has run.
//!
//! A linked-list allocator (`linked_list_allocator`, well kept and `no_std`)
//! over one physically contiguous block reached through the direct map. On
//! the host the standard allocator serves the unit tests instead.

/// Heap size taken at boot: 1/16 of usable memory, between 1 and 64 MiB.
pub fn initial_heap_bytes(free_bytes: u64) -> u64 {
    (free_bytes / 16).clamp(1 << 20, 64 << 20) & !0xfff
}

#[cfg(target_os = "none")]
mod global {
    use linked_list_allocator::LockedHeap;

    #[global_allocator]
    static HEAP: LockedHeap = LockedHeap::empty();

    /// Hands `size` bytes at `start` to the allocator.
    ///
    /// # Safety
    /// The memory must be unused, writable and stay reserved for the heap
    /// for the kernel's lifetime; call once.
    pub unsafe fn init(start: *mut u8, size: usize) {
        // SAFETY: the caller guarantees the block is exclusively the heap's.
        unsafe { HEAP.lock().init(start, size) };
    }

    /// Bytes in use and free.
    pub fn usage() -> (usize, usize) {
        let heap = HEAP.lock();
        (heap.used(), heap.free())
    }
}

#[cfg(target_os = "none")]
pub use global::{init, usage};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_size_is_bounded() {
        assert_eq!(initial_heap_bytes(0), 1 << 20);
        assert_eq!(initial_heap_bytes(512 << 20), 32 << 20);
        assert_eq!(initial_heap_bytes(64 << 30), 64 << 20);
    }
}
