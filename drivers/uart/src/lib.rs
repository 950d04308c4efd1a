//! Console UART drivers, architecture-neutral.
//!
//! * [`Ns16550`]: the PC serial port and its descendants, with registers in
//!   I/O port space (x86 COM1) or memory-mapped with a 1- or 4-byte stride
//!   (AWS Graviton, SPCR interface types 0/1/0x12).
//! * [`Pl011`]: the Arm PrimeCell UART (QEMU virt, Azure arm64) and the SBSA
//!   generic UART subset of it.
//!
//! [`open_console`] builds the driver a [`ConsoleDescriptor`] asks for and is
//! what platforms hand to `kernel_core::start`.
#![no_std]

mod ns16550;
mod pl011;

pub use ns16550::{Ns16550, Ns16550Registers};
pub use pl011::Pl011;

use kernel_core::boot::ConsoleAccess;
use kernel_core::console::{ConsoleDescriptor, ConsoleSink, UartKind};
use spin_once::Once;

/// A console UART of either kind.
pub enum UartConsole {
    /// An NS16550.
    Ns16550(Ns16550),
    /// A PL011.
    Pl011(Pl011),
}

impl ConsoleSink for UartConsole {
    fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
    }
}

impl UartConsole {
    fn write_byte(&self, byte: u8) {
        match self {
            UartConsole::Ns16550(u) => u.write_byte(byte),
            UartConsole::Pl011(u) => u.write_byte(byte),
        }
    }
}

mod spin_once {
    //! A set-once cell for the console, usable before the heap exists.
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicU8, Ordering};

    const EMPTY: u8 = 0;
    const WRITING: u8 = 1;
    const READY: u8 = 2;

    /// A value written at most once, then shared.
    pub struct Once<T> {
        state: AtomicU8,
        value: UnsafeCell<Option<T>>,
    }

    // SAFETY: the value is written once, by the single caller that wins the
    // EMPTY -> WRITING exchange, and only read after READY is published.
    unsafe impl<T: Sync + Send> Sync for Once<T> {}

    impl<T> Once<T> {
        /// An empty cell.
        pub const fn new() -> Self {
            Self {
                state: AtomicU8::new(EMPTY),
                value: UnsafeCell::new(None),
            }
        }

        /// Stores `value` if the cell is empty; returns the stored value.
        pub fn set(&self, value: T) -> Option<&T> {
            if self
                .state
                .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: winning the exchange makes this the only writer,
                // and no reader looks before READY.
                unsafe { *self.value.get() = Some(value) };
                self.state.store(READY, Ordering::Release);
            }
            if self.state.load(Ordering::Acquire) == READY {
                // SAFETY: READY means the value is written and never changes.
                unsafe { (*self.value.get()).as_ref() }
            } else {
                None
            }
        }
    }
}

static CONSOLE: Once<UartConsole> = Once::new();

/// Builds the console driver for `descriptor` with registers at `access`,
/// programs the line (when the descriptor names a baud rate the driver can
/// set) and keeps it in a static. Only the first call creates a console.
///
/// # Safety
/// `access` must describe the registers of the UART `descriptor` names:
/// mapped with device attributes for MMIO, or that UART's I/O ports.
pub unsafe fn open_console(
    descriptor: &ConsoleDescriptor,
    access: ConsoleAccess,
) -> Option<&'static dyn ConsoleSink> {
    let console = match (descriptor.kind, access) {
        (UartKind::Ns16550, ConsoleAccess::Port { base, io }) => UartConsole::Ns16550(
            Ns16550::new(Ns16550Registers::Port { base, io }, descriptor.baud),
        ),
        (UartKind::Ns16550, ConsoleAccess::Mmio { virt, width }) => {
            // SAFETY: the caller guarantees `virt` maps this UART's registers.
            let regs = unsafe { Ns16550Registers::mmio(virt as usize, width) };
            UartConsole::Ns16550(Ns16550::new(regs, descriptor.baud))
        }
        (UartKind::Pl011, ConsoleAccess::Mmio { virt, .. }) => {
            // SAFETY: the caller guarantees `virt` maps this PL011's registers.
            UartConsole::Pl011(unsafe { Pl011::new(virt as usize) })
        }
        (UartKind::Pl011, ConsoleAccess::Port { .. }) => return None,
    };
    CONSOLE.set(console).map(|c| c as &dyn ConsoleSink)
}
