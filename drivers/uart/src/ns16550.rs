//! NS16550 UART (the PC serial port).
//!
//! Registers (National Semiconductor PC16550D data sheet, table "Register
//! summary"), by index: 0 RBR/THR (DLL when DLAB=1), 1 IER (DLM when DLAB=1),
//! 2 IIR/FCR, 3 LCR, 4 MCR, 5 LSR, 6 MSR, 7 SCR. The register stride is not
//! fixed — 1 byte on the PC and Graviton, 4 bytes on many SoCs — so registers
//! are addressed by index through [`Ns16550Registers`] rather than a fixed
//! `tock-registers` layout.

use stratus_arch::PortIo;
use stratus_driver_api::console::{ConsoleTimeout, wait_ready};

const THR: u16 = 0;
const DLL: u16 = 0;
const IER: u16 = 1;
const DLM: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;

/// LCR: divisor latch access bit.
const LCR_DLAB: u8 = 0x80;
/// LCR: 8 data bits, no parity, one stop bit.
const LCR_8N1: u8 = 0x03;
/// FCR: enable and clear both FIFOs.
const FCR_ENABLE_CLEAR: u8 = 0x07;
/// MCR: DTR, RTS and OUT2 (OUT2 gates the interrupt line on PCs).
const MCR_DTR_RTS_OUT2: u8 = 0x0b;
/// LSR: transmit holding register empty.
const LSR_THR_EMPTY: u8 = 0x20;

/// The 1.8432 MHz clock of PC-compatible UARTs, divided by 16.
const PC_UART_BASE_BAUD: u32 = 115_200;

/// Where a 16550's registers are.
#[derive(Clone, Copy, Debug)]
pub enum Ns16550Registers {
    /// I/O ports `base..base+8`.
    Port {
        /// First port.
        base: u16,
        /// Port accessors of the architecture.
        io: PortIo,
    },
    /// Memory-mapped registers.
    Mmio {
        /// Virtual address of register 0 (device memory).
        base: usize,
        /// Stride and access width in bytes (1, 2 or 4).
        width: u8,
    },
}

impl Ns16550Registers {
    /// Memory-mapped registers at `base` with a stride of `width` bytes.
    ///
    /// # Safety
    /// `base` must map the UART's registers with device attributes, for
    /// `8 * width` bytes, for as long as the value is used.
    pub unsafe fn mmio(base: usize, width: u8) -> Self {
        Ns16550Registers::Mmio {
            base,
            width: match width {
                0 | 1 => 1,
                2 | 3 => 2,
                _ => 4,
            },
        }
    }

    fn read(&self, reg: u16) -> u8 {
        match *self {
            // SAFETY: the ports are this UART's (checked not to wrap when
            // the descriptor was made), whose registers the driver owns.
            Ns16550Registers::Port { base, io } => unsafe { (io.read_u8)(base + reg) },
            Ns16550Registers::Mmio { base, width: 4 } => {
                // SAFETY: `mmio`'s contract: mapped device registers, 4-byte stride.
                unsafe { core::ptr::read_volatile((base + 4 * reg as usize) as *const u32) as u8 }
            }
            Ns16550Registers::Mmio { base, width: 2 } => {
                // SAFETY: `mmio`'s contract: mapped device registers, 2-byte stride.
                unsafe { core::ptr::read_volatile((base + 2 * reg as usize) as *const u16) as u8 }
            }
            Ns16550Registers::Mmio { base, .. } => {
                // SAFETY: `mmio`'s contract: mapped device registers, 1-byte stride.
                unsafe { core::ptr::read_volatile((base + reg as usize) as *const u8) }
            }
        }
    }

    fn write(&self, reg: u16, value: u8) {
        match *self {
            // SAFETY: as in `read`.
            Ns16550Registers::Port { base, io } => unsafe { (io.write_u8)(base + reg, value) },
            Ns16550Registers::Mmio { base, width: 4 } => {
                // SAFETY: `mmio`'s contract: mapped device registers, 4-byte stride.
                unsafe {
                    core::ptr::write_volatile(
                        (base + 4 * reg as usize) as *mut u32,
                        u32::from(value),
                    )
                }
            }
            Ns16550Registers::Mmio { base, width: 2 } => {
                // SAFETY: `mmio`'s contract: mapped device registers, 2-byte stride.
                unsafe {
                    core::ptr::write_volatile(
                        (base + 2 * reg as usize) as *mut u16,
                        u16::from(value),
                    )
                }
            }
            Ns16550Registers::Mmio { base, .. } => {
                // SAFETY: `mmio`'s contract: mapped device registers, 1-byte stride.
                unsafe { core::ptr::write_volatile((base + reg as usize) as *mut u8, value) }
            }
        }
    }
}

/// The divisor for `baud` from the PC's 1.8432 MHz UART clock.
pub fn pc_divisor(baud: u32) -> u16 {
    (PC_UART_BASE_BAUD / baud.max(1)).clamp(1, 0xffff) as u16
}

/// An NS16550 driven by polling.
pub struct Ns16550 {
    regs: Ns16550Registers,
}

// SAFETY: the registers are plain device addresses or port numbers; every
// access is a single volatile read or write, and the logger serialises use.
unsafe impl Sync for Ns16550 {}
// SAFETY: as for Sync; nothing is tied to the creating CPU.
unsafe impl Send for Ns16550 {}

impl Ns16550 {
    /// Takes over the UART. With `baud` set, programs 8N1 at that rate
    /// (PC clock assumed, as on every x86 cloud); otherwise keeps the
    /// firmware's line settings, as the clock of an MMIO UART is unknown.
    pub fn new(regs: Ns16550Registers, baud: Option<u32>) -> Self {
        let uart = Self { regs };
        uart.regs.write(IER, 0);
        if let (Ns16550Registers::Port { .. }, Some(baud)) = (regs, baud) {
            uart.program_line(Some(pc_divisor(baud)));
        }
        uart
    }

    /// Takes over a UART no firmware set up (a PCI serial card): interrupts
    /// off, 8N1, FIFOs on, DTR/RTS; the divisor only when `divisor` is
    /// given (the card's clock known), else left as it is.
    pub fn new_card(regs: Ns16550Registers, divisor: Option<u16>) -> Self {
        let uart = Self { regs };
        uart.regs.write(IER, 0);
        uart.program_line(divisor);
        uart
    }

    fn program_line(&self, divisor: Option<u16>) {
        if let Some(divisor) = divisor {
            self.regs.write(LCR, LCR_DLAB);
            self.regs.write(DLL, divisor as u8);
            self.regs.write(DLM, (divisor >> 8) as u8);
        }
        self.regs.write(LCR, LCR_8N1);
        self.regs.write(FCR, FCR_ENABLE_CLEAR);
        self.regs.write(MCR, MCR_DTR_RTS_OUT2);
    }

    /// Sends one byte, waiting for room in the transmitter. The wait is
    /// bounded ([`wait_ready`]): a UART that never drains (nothing at the
    /// address, a broken SPCR) fails instead of hanging the kernel.
    pub fn write_byte(&self, byte: u8) -> Result<(), ConsoleTimeout> {
        if !wait_ready(|| self.regs.read(LSR) & LSR_THR_EMPTY != 0) {
            return Err(ConsoleTimeout);
        }
        self.regs.write(THR, byte);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The driver against a fake port space that records every access.
    use super::*;
    extern crate std;
    use std::sync::Mutex;
    use std::vec::Vec;

    /// (port, value written) in order; reads of LSR report "THR empty" only
    /// after `BUSY_READS` reads, to exercise the wait.
    static WRITES: Mutex<Vec<(u16, u8)>> = Mutex::new(Vec::new());
    static LSR_READS: Mutex<u32> = Mutex::new(0);
    const BUSY_READS: u32 = 3;

    fn fake_read(port: u16) -> u8 {
        if port == 0x3f8 + LSR {
            let mut reads = LSR_READS.lock().unwrap();
            *reads += 1;
            if *reads > BUSY_READS {
                LSR_THR_EMPTY
            } else {
                0
            }
        } else {
            0
        }
    }

    fn fake_write(port: u16, value: u8) {
        WRITES.lock().unwrap().push((port, value));
    }

    fn fake_read_u32(_port: u16) -> u32 {
        0
    }

    #[test]
    fn programs_115200_8n1_and_waits_for_the_transmitter() {
        let io = PortIo {
            read_u8: fake_read,
            write_u8: fake_write,
            read_u32: fake_read_u32,
            write_u32: |_, _| {},
        };
        let uart = Ns16550::new(Ns16550Registers::Port { base: 0x3f8, io }, Some(115_200));
        uart.write_byte(b'S').unwrap();
        let writes = WRITES.lock().unwrap().clone();
        assert_eq!(
            writes,
            [
                (0x3f9, 0),        // IER: no interrupts
                (0x3fb, LCR_DLAB), // divisor latch on
                (0x3f8, 1),        // DLL: 115200 / 115200
                (0x3f9, 0),        // DLM
                (0x3fb, LCR_8N1),  // 8N1, latch off
                (0x3fa, FCR_ENABLE_CLEAR),
                (0x3fc, MCR_DTR_RTS_OUT2),
                (0x3f8, b'S'), // THR, after the LSR wait
            ]
        );
        assert_eq!(*LSR_READS.lock().unwrap(), BUSY_READS + 1);
    }

    /// Graviton's SPCR 16550: MMIO with byte registers; and the 4-byte-stride
    /// variant (SPCR type 0x12 with dword access). Registers live in a host
    /// buffer standing in for the device page.
    #[test]
    fn mmio_registers_at_byte_word_and_dword_stride() {
        // SPCR access sizes 1, 2 and 3/4 (byte, 16-bit, 32-bit).
        for width in [1u8, 2, 4] {
            let stride = width as usize;
            let mut page = [0u32; 16];
            let base = page.as_mut_ptr() as usize;
            // LSR says "transmitter empty" so the write goes straight out.
            // SAFETY: LSR's offset is inside `page`.
            unsafe { *((base + 5 * stride) as *mut u8) = LSR_THR_EMPTY };
            // SAFETY: `page` stands in for the registers: 8 * width bytes,
            // alive for the whole use of `regs`.
            let regs = unsafe { Ns16550Registers::mmio(base, width) };
            let uart = Ns16550::new(regs, Some(115_200));
            uart.write_byte(b'G').unwrap();
            // SAFETY: offsets inside `page`.
            let (thr, ier) = unsafe { (*(base as *const u8), *((base + stride) as *const u8)) };
            assert_eq!(thr, b'G', "width {width}");
            assert_eq!(ier, 0, "width {width}: interrupts off");
            // The MMIO line settings are the firmware's: LCR untouched.
            // SAFETY: offset inside `page`.
            let lcr = unsafe { *((base + 3 * stride) as *const u8) };
            assert_eq!(lcr, 0, "width {width}");
        }
    }
}
