//! Types shared by [`crate::DeviceMapper`] implementations and their callers.

/// A request to map physical pages (device registers, or RAM for kernel
/// stacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceMapping {
    /// Physical address, 4 KiB aligned.
    pub phys: u64,
    /// Virtual address, 4 KiB aligned, in the kernel's higher half.
    pub virt: u64,
    /// Length in bytes, a multiple of 4 KiB.
    pub len: u64,
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// An address or length is not 4 KiB aligned.
    Unaligned,
    /// The virtual range is already mapped to something else.
    AlreadyMapped {
        /// The first virtual address found mapped.
        virt: u64,
    },
    /// No frame was left for a page table.
    OutOfFrames,
    /// The virtual address is not in a range this architecture can map
    /// (non-canonical, or the wrong half).
    BadVirtualAddress,
    /// The physical address is beyond what the translation regime reaches.
    BadPhysicalAddress,
    /// The translation setup the loader left is not one this code handles
    /// (aarch64: granule or VA size in TCR_EL1, no usable MAIR index).
    UnsupportedTranslation,
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::Unaligned => f.write_str("address or length not 4 KiB aligned"),
            MapError::AlreadyMapped { virt } => write!(f, "{virt:#x} is already mapped"),
            MapError::OutOfFrames => f.write_str("out of physical frames for page tables"),
            MapError::BadVirtualAddress => f.write_str("virtual address outside the kernel half"),
            MapError::BadPhysicalAddress => f.write_str("physical address out of reach"),
            MapError::UnsupportedTranslation => f.write_str("unsupported translation setup"),
        }
    }
}

/// A source of zeroed 4 KiB physical frames for page tables.
pub trait FrameSource {
    /// Returns the physical address of a fresh frame, zero-filled, or `None`
    /// when memory is exhausted.
    fn allocate_zeroed_frame(&mut self) -> Option<u64>;
}
