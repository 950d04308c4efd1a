//! A frame of 32- and 64-bit device registers at a mapped virtual address:
//! the GIC ITS and redistributor registers that the `arm-gic` crate does not
//! model (ITS, LPI base registers). The one unsafe step is the constructor.

/// Registers at a virtual address mapped with device attributes.
#[derive(Clone, Copy, Debug)]
pub struct RegisterFrame {
    virt: u64,
    len: u64,
}

impl RegisterFrame {
    /// The registers at `virt`, `len` bytes.
    ///
    /// # Safety
    /// `[virt, virt + len)` must stay mapped with device attributes for the
    /// kernel's lifetime, and hold registers for which reads and writes at
    /// the offsets used have no effect but the device's.
    pub unsafe fn new(virt: u64, len: u64) -> Self {
        Self { virt, len }
    }

    fn at(&self, offset: u64, width: u64) -> u64 {
        assert!(
            offset.is_multiple_of(width) && offset + width <= self.len,
            "register offset {offset:#x} outside its frame"
        );
        self.virt + offset
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read32(&self, offset: u64) -> u32 {
        let at = self.at(offset, 4);
        // SAFETY: inside the frame (checked), aligned; `new`'s contract.
        unsafe { core::ptr::read_volatile(at as *const u32) }
    }

    /// Writes the 32-bit register at `offset`.
    pub fn write32(&self, offset: u64, value: u32) {
        let at = self.at(offset, 4);
        // SAFETY: as for `read32`.
        unsafe { core::ptr::write_volatile(at as *mut u32, value) }
    }

    /// Reads the 64-bit register at `offset`.
    pub fn read64(&self, offset: u64) -> u64 {
        let at = self.at(offset, 8);
        // SAFETY: as for `read32`.
        unsafe { core::ptr::read_volatile(at as *const u64) }
    }

    /// Writes the 64-bit register at `offset`.
    pub fn write64(&self, offset: u64, value: u64) {
        let at = self.at(offset, 8);
        // SAFETY: as for `read32`.
        unsafe { core::ptr::write_volatile(at as *mut u64, value) }
    }
}
