//! Arm PrimeCell UART (PL011), as on QEMU virt and Azure arm64; also drives
//! the SBSA generic UART, which is a 32-bit-access subset.
//!
//! Register offsets from the PL011 Technical Reference Manual (DDI 0183),
//! section 3.2 "Summary of registers".

use stratus_driver_api::console::{ConsoleTimeout, wait_ready};
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    /// Flag register (3.3.3).
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    /// Control register (3.3.8).
    CR [
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) []
    ]
];

register_structs! {
    /// The PL011 register block.
    Pl011Registers {
        /// Data register (3.3.1).
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        /// Flag register (3.3.3).
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        /// Control register (3.3.8).
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        /// Interrupt mask set/clear (3.3.10).
        (0x38 => imsc: ReadWrite<u32>),
        (0x3c => _reserved3),
        /// Interrupt clear (3.3.13).
        (0x44 => icr: WriteOnly<u32>),
        (0x48 => @END),
    }
}

/// A PL011 driven by polling.
pub struct Pl011 {
    regs: &'static Pl011Registers,
}

// SAFETY: all access goes through tock-registers volatile cells on device
// memory; the logger serialises use.
unsafe impl Sync for Pl011 {}
// SAFETY: as for Sync.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// Takes over the PL011 at virtual address `base`, keeping the
    /// firmware's line settings (its reference clock is not discoverable
    /// from SPCR), masking its interrupts and enabling the transmitter.
    ///
    /// # Safety
    /// `base` must map the PL011's 4 KiB register block with device
    /// attributes for the rest of the kernel's life.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: the caller guarantees a mapped PL011 register block.
        let regs = unsafe { &*(base as *const Pl011Registers) };
        regs.imsc.set(0);
        regs.icr.set(0x7ff);
        regs.cr
            .modify(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
        Self { regs }
    }

    /// Sends one byte, waiting (bounded, see [`wait_ready`]) for FIFO room.
    pub fn write_byte(&self, byte: u8) -> Result<(), ConsoleTimeout> {
        if !wait_ready(|| !self.regs.fr.is_set(FR::TXFF)) {
            return Err(ConsoleTimeout);
        }
        self.regs.dr.set(u32::from(byte));
        Ok(())
    }
}
