//! Console UART drivers, architecture-neutral.
//!
//! * [`Ns16550`]: the PC serial port and its descendants, with registers in
//!   I/O port space (x86 COM1) or memory-mapped with a 1-, 2- or 4-byte stride
//!   (AWS Graviton, SPCR interface types 0/1/0x12).
//! * [`Pl011`]: the Arm PrimeCell UART (QEMU virt, Azure arm64) and the SBSA
//!   generic UART subset of it.
//!
//! [`open_console`] builds the driver a [`ConsoleDescriptor`] asks for and is
//! what platforms hand to `kernel_core::start`.
//! * [`Ns16550PciDriver`]: a PCI serial card's 16550 as a further console.
#![no_std]

extern crate alloc;

mod ns16550;
mod pci;
mod pl011;

pub use ns16550::{Ns16550, Ns16550Registers, pc_divisor};
pub use pci::Ns16550PciDriver;
pub use pl011::Pl011;

use core::sync::atomic::{AtomicBool, Ordering};
use spin_once::Once;
use stratus_driver_api::console::ConsoleAccess;
use stratus_driver_api::console::{ConsoleDescriptor, ConsoleSink, ConsoleTimeout, UartKind};

/// A console UART of either kind.
pub enum Uart {
    /// An NS16550.
    Ns16550(Ns16550),
    /// A PL011.
    Pl011(Pl011),
}

impl Uart {
    fn write_byte(&self, byte: u8) -> Result<(), ConsoleTimeout> {
        match self {
            Uart::Ns16550(u) => u.write_byte(byte),
            Uart::Pl011(u) => u.write_byte(byte),
        }
    }
}

/// A UART used as console. Once it has failed to become ready it is dead:
/// every later write fails at once, without touching the device.
pub struct UartConsole {
    uart: Uart,
    dead: AtomicBool,
}

impl UartConsole {
    /// A console on `uart`.
    pub fn new(uart: Uart) -> Self {
        Self {
            uart,
            dead: AtomicBool::new(false),
        }
    }
}

impl ConsoleSink for UartConsole {
    fn write_bytes(&self, bytes: &[u8]) -> Result<(), ConsoleTimeout> {
        if self.dead.load(Ordering::Relaxed) {
            return Err(ConsoleTimeout);
        }
        let result = bytes.iter().try_for_each(|&b| {
            if b == b'\n' {
                self.uart.write_byte(b'\r')?;
            }
            self.uart.write_byte(b)
        });
        if result.is_err() {
            self.dead.store(true, Ordering::Relaxed);
        }
        result
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
        /// Whether a value was stored (or is being stored).
        pub fn is_taken(&self) -> bool {
            self.state.load(Ordering::Acquire) != EMPTY
        }

        /// An empty cell.
        pub const fn new() -> Self {
            Self {
                state: AtomicU8::new(EMPTY),
                value: UnsafeCell::new(None),
            }
        }

        /// Stores `value` if the cell is empty and returns it; `None` (and
        /// `value` dropped) when the cell was taken.
        pub fn set(&self, value: T) -> Option<&T> {
            if self
                .state
                .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return None;
            }
            // SAFETY: winning the exchange makes this the only writer, and no
            // reader looks before READY.
            unsafe { *self.value.get() = Some(value) };
            self.state.store(READY, Ordering::Release);
            // SAFETY: the value was just written and never changes again.
            unsafe { (*self.value.get()).as_ref() }
        }
    }
}

/// Room for the console, one fallback (the x86 legacy port taking over
/// from an SPCR console that stopped working) and three PCI serial cards.
static CONSOLES: [Once<UartConsole>; 5] = [
    Once::new(),
    Once::new(),
    Once::new(),
    Once::new(),
    Once::new(),
];

/// Keeps `console` in a free static slot; `None` when all are taken.
fn keep_console(console: UartConsole) -> Option<&'static UartConsole> {
    CONSOLES.iter().find(|slot| !slot.is_taken())?.set(console)
}

/// Builds the console driver for `descriptor` with registers at `access`,
/// programs the line (when the descriptor names a baud rate the driver can
/// set) and keeps it in a static. There is room for five consoles (PCI
/// cards' included); a further call returns `None`.
///
/// # Safety
/// `access` must describe the registers of the UART `descriptor` names:
/// mapped with device attributes for MMIO, or that UART's I/O ports.
pub unsafe fn open_console(
    descriptor: &ConsoleDescriptor,
    access: ConsoleAccess,
) -> Option<&'static dyn ConsoleSink> {
    let slot = CONSOLES.iter().find(|slot| !slot.is_taken())?;
    let uart = match (descriptor.kind, access) {
        (UartKind::Ns16550, ConsoleAccess::Port { base, io }) => Uart::Ns16550(Ns16550::new(
            Ns16550Registers::Port { base, io },
            descriptor.baud,
        )),
        (UartKind::Ns16550, ConsoleAccess::Mmio { virt, width }) => {
            // SAFETY: the caller guarantees `virt` maps this UART's registers.
            let regs = unsafe { Ns16550Registers::mmio(virt as usize, width) };
            Uart::Ns16550(Ns16550::new(regs, descriptor.baud))
        }
        (UartKind::Pl011, ConsoleAccess::Mmio { virt, .. }) => {
            // SAFETY: the caller guarantees `virt` maps this PL011's registers.
            Uart::Pl011(unsafe { Pl011::new(virt as usize) })
        }
        (UartKind::Pl011, ConsoleAccess::Port { .. }) => return None,
    };
    slot.set(UartConsole::new(uart))
        .map(|c| c as &dyn ConsoleSink)
}

#[cfg(test)]
mod tests {
    //! A console whose UART never becomes ready: nothing at its address.
    use super::*;
    use core::sync::atomic::AtomicU32;
    use stratus_arch::PortIo;
    use stratus_driver_api::console::READY_READ_BUDGET;

    static READS: AtomicU32 = AtomicU32::new(0);
    static WRITES: AtomicU32 = AtomicU32::new(0);

    /// A port space with no device: every read is 0, so the line status
    /// never says "transmitter empty".
    fn absent_read(_port: u16) -> u8 {
        READS.fetch_add(1, Ordering::Relaxed);
        0
    }

    fn absent_write(_port: u16, _value: u8) {
        WRITES.fetch_add(1, Ordering::Relaxed);
    }

    fn absent_read_u32(_port: u16) -> u32 {
        0
    }

    #[test]
    fn a_uart_that_never_gets_ready_is_given_up_after_a_bounded_wait() {
        let io = PortIo {
            read_u8: absent_read,
            write_u8: absent_write,
            read_u32: absent_read_u32,
            write_u32: |_, _| {},
        };
        let uart = Ns16550::new(Ns16550Registers::Port { base: 0x2f8, io }, None);
        let console = UartConsole::new(Uart::Ns16550(uart));
        let writes_before = WRITES.load(Ordering::Relaxed);
        assert_eq!(console.write_bytes(b"hello\n"), Err(ConsoleTimeout));
        // One bounded wait (the host test has no clock: the read budget),
        // and the byte was not written.
        assert_eq!(READS.load(Ordering::Relaxed), READY_READ_BUDGET);
        assert_eq!(WRITES.load(Ordering::Relaxed), writes_before);
        // Dead for good: later writes fail without touching the device.
        assert_eq!(console.write_bytes(b"more\n"), Err(ConsoleTimeout));
        assert_eq!(READS.load(Ordering::Relaxed), READY_READ_BUDGET);
    }

    /// `open_console` builds a PL011 over its (here: fake) register page:
    /// interrupts masked and cleared, UART and transmitter enabled, bytes
    /// through the data register; a PL011 in port space is refused.
    #[test]
    fn open_console_drives_a_pl011_and_refuses_one_in_port_space() {
        extern crate std;
        let page: &'static mut [u32; 1024] = std::boxed::Box::leak(std::boxed::Box::new([0; 1024]));
        page[0x38 / 4] = 0x7ff; // IMSC: everything unmasked by the "firmware"
        let virt = page.as_mut_ptr() as u64;
        let descriptor = ConsoleDescriptor {
            kind: UartKind::Pl011,
            registers: stratus_driver_api::console::UartRegisters::Mmio {
                phys: 0x0900_0000,
                width: 4,
            },
            baud: None,
        };
        let port = ConsoleAccess::Port {
            base: 0x3f8,
            io: PortIo {
                read_u8: absent_read,
                write_u8: absent_write,
                read_u32: absent_read_u32,
                write_u32: |_, _| {},
            },
        };
        // SAFETY: a PL011 descriptor with port access is refused before any
        // register is touched.
        assert!(unsafe { open_console(&descriptor, port) }.is_none());
        // SAFETY: `page` stands in for the PL011's 4 KiB register block and
        // lives for the rest of the test process.
        let console = unsafe { open_console(&descriptor, ConsoleAccess::Mmio { virt, width: 4 }) }
            .expect("a PL011 console");
        // SAFETY: reads of the leaked page, which the driver writes with
        // volatile stores only.
        let reg = |offset: usize| unsafe {
            core::ptr::read_volatile((virt as usize + offset) as *const u32)
        };
        assert_eq!(reg(0x38), 0, "interrupts masked");
        assert_eq!(reg(0x30) & 0x301, 0x301, "UARTEN, TXE and RXE set");
        assert_eq!(console.write_bytes(b"ok"), Ok(()));
        assert_eq!(reg(0x00), u32::from(b'k'));
    }
}
