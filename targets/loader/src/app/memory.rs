//! Physical page allocations and safe views of them.
//!
//! UEFI identity-maps memory while boot services run (UEFI 2.10, 2.3.2 / 2.3.6),
//! so a physical address is also a usable pointer. Everything allocated here is
//! handed to the kernel and never freed (it shows up in the memory map with the
//! loader's types), except the unused ends of an aligned allocation.

use core::ptr::NonNull;

use stratus_loader::PAGE_SIZE;
use stratus_loader::memory_map::Entry;
use stratus_loader::pages::PageRequest;
use uefi::boot::{self, AllocateType, MemoryType};

use super::error::LoaderError;

/// A run of pages owned by the loader (and then by the kernel).
pub struct Pages {
    ptr: NonNull<u8>,
    pages: u64,
}

impl Pages {
    /// Allocates `pages` zeroed pages of UEFI memory type `ty`.
    pub fn alloc(pages: u64, ty: u32, what: &'static str) -> Result<Self, LoaderError> {
        Self::alloc_aligned(pages, PAGE_SIZE, ty, what)
    }

    /// Allocates `pages` zeroed pages at a physical address aligned to `align`
    /// (a power of two, at least a page).
    pub fn alloc_aligned(
        pages: u64,
        align: u64,
        ty: u32,
        what: &'static str,
    ) -> Result<Self, LoaderError> {
        let request = PageRequest::new(pages, align);
        let oom = |status| LoaderError::OutOfMemory {
            what,
            request,
            status,
        };
        let (pages, extra) = (request.pages, request.slack_pages());
        let count = request
            .firmware_pages()
            .and_then(|total| usize::try_from(total).ok())
            .ok_or(oom(uefi::Status::OUT_OF_RESOURCES))?;
        let raw = boot::allocate_pages(AllocateType::AnyPages, MemoryType::custom(ty), count)
            .map_err(|e| oom(e.status()))?;
        let base = raw.as_ptr() as u64;
        let aligned = base.next_multiple_of(align);
        let head = (aligned - base) / PAGE_SIZE;
        let tail = extra - head;
        // Give back what alignment did not need; failure only wastes memory.
        if head > 0 {
            // SAFETY: the first `head` pages of the allocation just made, unused.
            let _ = unsafe { boot::free_pages(raw, head as usize) };
        }
        if tail > 0 {
            let tail_ptr = (aligned + pages * PAGE_SIZE) as *mut u8;
            if let Some(p) = NonNull::new(tail_ptr) {
                // SAFETY: the last `tail` pages of the allocation just made, unused.
                let _ = unsafe { boot::free_pages(p, tail as usize) };
            }
        }
        let ptr = NonNull::new(aligned as *mut u8).ok_or(oom(uefi::Status::OUT_OF_RESOURCES))?;
        // SAFETY: `pages` pages at `ptr` were just allocated for us and are
        // identity-mapped; nothing else refers to them.
        unsafe { ptr.as_ptr().write_bytes(0, (pages * PAGE_SIZE) as usize) };
        Ok(Self { ptr, pages })
    }

    /// Physical address.
    pub fn phys(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        (self.pages * PAGE_SIZE) as usize
    }

    /// The pages as bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is ours, initialised (zeroed) and `len` bytes
        // long; the borrow of `self` keeps this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }

    /// The pages as 64-bit words (page tables).
    pub fn words(&mut self) -> &mut [u64] {
        // SAFETY: page-aligned (so 8-byte aligned), initialised, `len / 8` words;
        // any bit pattern is a valid `u64`; exclusive through `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), self.len() / 8) }
    }

    /// The pages as memory map entries (scratch space).
    pub fn entries(&mut self) -> &mut [Entry] {
        let n = self.len() / size_of::<Entry>();
        // SAFETY: `Entry` is `repr(C)` of three `u64`s (8-byte aligned, every bit
        // pattern valid); the pages are aligned, initialised and exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), n) }
    }
}

/// Reads `len` bytes of firmware-owned memory at physical address `phys`.
///
/// # Safety
///
/// The firmware must describe `phys..phys + len` as readable memory (a
/// configuration table it published), and nothing may write it meanwhile.
pub unsafe fn firmware_bytes(phys: u64, len: usize) -> &'static [u8] {
    // SAFETY: the caller guarantees the range is readable memory the firmware
    // published; identity-mapped while boot services run.
    unsafe { core::slice::from_raw_parts(phys as *const u8, len) }
}
