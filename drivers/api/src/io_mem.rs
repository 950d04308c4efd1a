//! Mapped device registers.
//!
//! An [`IoMem`] is a block of registers mapped by the kernel with the
//! attributes its [`CachePolicy`] names. Every access is volatile,
//! naturally aligned and checked against the block's length, so an offset
//! computed from device input (a doorbell stride, an MSI-X table offset)
//! that points outside the block is an error, not a stray write.

use core::fmt;

/// How the memory behind a mapping may be cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachePolicy {
    /// Device registers: uncached, no reordering, no write combining (x86
    /// UC, aarch64 Device-nGnRnE).
    Uncached,
    /// Prefetchable memory (a framebuffer, a prefetchable BAR) that may
    /// take combined writes. Mapped as [`CachePolicy::Uncached`] today, which
    /// is always correct and only slower.
    WriteCombining,
}

/// Why a register access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMemError {
    /// `offset + size` runs past the block.
    OutOfBounds {
        /// Offset asked for.
        offset: usize,
        /// Access size in bytes.
        size: usize,
        /// Length of the block.
        len: usize,
    },
    /// The offset is not a multiple of the access size.
    Misaligned {
        /// Offset asked for.
        offset: usize,
        /// Access size in bytes.
        size: usize,
    },
}

impl fmt::Display for IoMemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfBounds { offset, size, len } => write!(
                f,
                "register access of {size} bytes at {offset:#x} is outside the {len:#x}-byte block"
            ),
            Self::Misaligned { offset, size } => {
                write!(
                    f,
                    "register access of {size} bytes at {offset:#x} is misaligned"
                )
            }
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
}

/// A register width: `u8`, `u16`, `u32` or `u64`.
pub trait RegisterValue: Copy + sealed::Sealed {}
impl RegisterValue for u8 {}
impl RegisterValue for u16 {}
impl RegisterValue for u32 {}
impl RegisterValue for u64 {}

/// A mapped register block.
#[derive(Debug)]
pub struct IoMem {
    virt: usize,
    phys: u64,
    len: usize,
    policy: CachePolicy,
}

impl IoMem {
    /// A register block at virtual `virt` (physical `phys`), `len` bytes.
    ///
    /// # Safety
    /// `virt..virt + len` must stay mapped with the attributes `policy`
    /// names for as long as the value (and any [`IoMem::window`] of it)
    /// lives, and belong to the one device whose driver owns the value.
    /// (Host tests may pass ordinary memory standing in for a device.)
    pub unsafe fn new(virt: usize, phys: u64, len: usize, policy: CachePolicy) -> Self {
        Self {
            virt,
            phys,
            len,
            policy,
        }
    }

    /// Physical address of the first byte.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The cache policy it was mapped with.
    pub fn policy(&self) -> CachePolicy {
        self.policy
    }

    fn check<T>(&self, offset: usize) -> Result<usize, IoMemError> {
        let size = core::mem::size_of::<T>();
        if !offset.is_multiple_of(size) {
            return Err(IoMemError::Misaligned { offset, size });
        }
        match offset.checked_add(size) {
            Some(end) if end <= self.len => Ok(self.virt + offset),
            _ => Err(IoMemError::OutOfBounds {
                offset,
                size,
                len: self.len,
            }),
        }
    }

    /// Reads the register of width `T` at `offset`.
    pub fn read<T: RegisterValue>(&self, offset: usize) -> Result<T, IoMemError> {
        let addr = self.check::<T>(offset)?;
        // SAFETY: `addr..addr + size_of::<T>()` lies inside the block, which
        // the constructor's contract keeps mapped; the address is aligned
        // for `T` (the block starts page- or register-aligned and the
        // offset is a multiple of the size).
        Ok(unsafe { core::ptr::read_volatile(addr as *const T) })
    }

    /// Writes the register of width `T` at `offset`.
    pub fn write<T: RegisterValue>(&self, offset: usize, value: T) -> Result<(), IoMemError> {
        let addr = self.check::<T>(offset)?;
        // SAFETY: as in `read`; the block belongs to this driver's device.
        unsafe { core::ptr::write_volatile(addr as *mut T, value) };
        Ok(())
    }

    /// The part of the block from `offset`, `len` bytes long, as a block of
    /// its own (a register set inside a BAR: the MSI-X table, a virtio
    /// capability's structure).
    pub fn window(&self, offset: usize, len: usize) -> Result<IoMem, IoMemError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(IoMem {
                virt: self.virt + offset,
                phys: self.phys + offset as u64,
                len,
                policy: self.policy,
            }),
            _ => Err(IoMemError::OutOfBounds {
                offset,
                size: len,
                len: self.len,
            }),
        }
    }

    /// Virtual address of the first byte, for crates that take a raw
    /// pointer to registers (`virtio-drivers`' transports). The bounds
    /// checks of this type do not follow the pointer.
    pub fn as_ptr(&self) -> *mut u8 {
        self.virt as *mut u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_checked_against_the_block() {
        let mut backing = [0u64; 4];
        // SAFETY: `backing` stands in for 32 bytes of registers and outlives
        // `regs`.
        let regs = unsafe {
            IoMem::new(
                backing.as_mut_ptr() as usize,
                0x1000,
                32,
                CachePolicy::Uncached,
            )
        };
        regs.write::<u32>(4, 0xdead_beef).unwrap();
        assert_eq!(regs.read::<u32>(4), Ok(0xdead_beef));
        assert_eq!(regs.read::<u8>(7), Ok(0xde));
        assert_eq!(
            regs.read::<u64>(32),
            Err(IoMemError::OutOfBounds {
                offset: 32,
                size: 8,
                len: 32
            })
        );
        assert_eq!(
            regs.write::<u32>(2, 1),
            Err(IoMemError::Misaligned { offset: 2, size: 4 })
        );
        assert!(regs.read::<u64>(usize::MAX - 7).is_err());
        let window = regs.window(8, 8).unwrap();
        assert_eq!(window.phys(), 0x1008);
        window.write::<u64>(0, 7).unwrap();
        assert!(window.read::<u8>(8).is_err());
        assert_eq!(regs.read::<u64>(8), Ok(7));
        assert!(regs.window(16, 17).is_err());
    }
}
