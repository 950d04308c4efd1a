//! The console: which UART the firmware says to use, and the sink the logger
//! writes to.
//!
//! The console is discovered, never assumed: ACPI SPCR names the UART (a
//! PL011 on QEMU virt and Azure arm64, a 16550 in MMIO on AWS Graviton, a
//! 16550 at an I/O port on x86 clouds), or on a machine without ACPI the
//! device tree's `/chosen/stdout-path`. Only when neither gives a usable UART
//! does an x86 kernel fall back to the legacy COM1 port
//! ([`stratus_arch::Arch::LEGACY_CONSOLE_PORT`]), which is also where the
//! logger goes when the console stops working ([`wait_ready`] bounds every
//! wait for the device).

use crate::clock as time;
use core::fmt;
use stratus_arch::PortIo;

/// Something that accepts console output. Implemented by UART drivers.
///
/// Takes `&self` so drivers can live in plain statics (the console exists
/// before the heap); the logger serialises all calls.
pub trait ConsoleSink: Sync {
    /// Writes bytes, translating `\n` to `\r\n` as a terminal expects.
    ///
    /// Fails when the device did not become ready within [`READY_TIMEOUT_MICROS`]
    /// (see [`wait_ready`]); from then on the sink is dead and fails at once,
    /// without waiting again.
    fn write_bytes(&self, bytes: &[u8]) -> Result<(), ConsoleTimeout>;
}

/// A console device did not become ready in time and was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleTimeout;

/// How long a console may take to accept one byte: one character at 9600
/// baud takes about 1 ms, so 10 ms is far beyond what a working UART needs,
/// and short enough that a dead one costs no more than a moment.
pub const READY_TIMEOUT_MICROS: u64 = 10_000;

/// Status reads allowed while the counter frequency is not known yet (x86
/// before calibration, or a machine with neither an architectural frequency
/// nor an ACPI PM timer). A working UART at 115200 baud frees its transmitter
/// within one character time (87 microseconds), which 2,000 reads outlast as
/// long as one register read takes more than about 45 ns; a dead UART costs
/// one such wait, since it is then dropped.
pub const READY_READ_BUDGET: u32 = 2_000;

/// Polls `ready` until it says yes, for at most [`READY_TIMEOUT_MICROS`] once
/// the clock is known, else for at most [`READY_READ_BUDGET`] reads. Returns
/// whether the device became ready.
pub fn wait_ready(mut ready: impl FnMut() -> bool) -> bool {
    let start = time::now_micros();
    let mut reads: u32 = 0;
    loop {
        if ready() {
            return true;
        }
        reads = reads.saturating_add(1);
        let expired = match (start, time::now_micros()) {
            (Some(start), Some(now)) => now.saturating_sub(start) >= READY_TIMEOUT_MICROS,
            _ => reads >= READY_READ_BUDGET,
        };
        if expired {
            return false;
        }
        core::hint::spin_loop();
    }
}

/// How the platform reaches a console's registers once the kernel has
/// mapped them.
#[derive(Clone, Copy, Debug)]
pub enum ConsoleAccess {
    /// Registers mapped with device attributes at `virt`.
    Mmio {
        /// Virtual address of register 0.
        virt: u64,
        /// Access width and register stride in bytes.
        width: u8,
    },
    /// Registers in I/O port space.
    Port {
        /// First port.
        base: u16,
        /// The architecture's port accessors.
        io: PortIo,
    },
}

/// Builds a console driver for a descriptor (the platform wires this to the
/// UART drivers). `None` when the kind is not supported.
///
/// Safety contract: the access must describe that UART's registers, mapped
/// with device attributes when in memory.
pub type OpenConsole =
    unsafe fn(&ConsoleDescriptor, ConsoleAccess) -> Option<&'static dyn ConsoleSink>;

/// The UART register interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// NS16550-compatible (SPCR interface types 0, 1 and 0x12).
    Ns16550,
    /// Arm PL011 or the SBSA generic UART subset of it (types 3, 0x0d, 0x0e).
    Pl011,
}

/// Where a UART's registers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartRegisters {
    /// I/O ports, registers at consecutive ports from `base`.
    Port {
        /// First port.
        base: u16,
    },
    /// Memory-mapped registers.
    Mmio {
        /// Physical address of register 0.
        phys: u64,
        /// Bytes per register access and between registers (1 or 4).
        width: u8,
    },
}

/// A console UART: type, registers and line speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleDescriptor {
    /// Register interface.
    pub kind: UartKind,
    /// Where the registers are.
    pub registers: UartRegisters,
    /// Baud rate the firmware configured, when stated. `None` means "keep
    /// what the firmware set".
    pub baud: Option<u32>,
}

impl fmt::Display for ConsoleDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            UartKind::Ns16550 => "16550",
            UartKind::Pl011 => "pl011",
        };
        match self.registers {
            UartRegisters::Port { base } => write!(f, "{kind}@port:{base:#x}")?,
            UartRegisters::Mmio { phys, width } => write!(f, "{kind}@mmio:{phys:#x}/{width}")?,
        }
        Ok(())
    }
}

/// The fields of an SPCR table that pick the console (ACPI SPCR spec,
/// Table 3 "Serial Port Console Redirection Table").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpcrFields {
    /// Interface type (offset 36).
    pub interface_type: u8,
    /// Base address: generic address structure address space id.
    pub address_space: u8,
    /// GAS register bit width.
    pub bit_width: u8,
    /// GAS access size (0 undefined, 1 byte, 2 word, 3 dword, 4 qword).
    pub access_size: u8,
    /// GAS address.
    pub address: u64,
    /// Configured baud rate, decoded (`None` = "as is").
    pub baud: Option<u32>,
}

/// Why an SPCR table could not give a console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpcrError {
    /// The interface type is not one Stratus drives.
    UnsupportedInterface(u8),
    /// The base address is in an address space other than memory or I/O.
    UnsupportedAddressSpace(u8),
    /// The base address is zero.
    NoAddress,
    /// An I/O-space register block does not fit in the 16-bit port space
    /// (`base + 8` past 0x10000 would wrap around to other devices' ports).
    BadPort(u64),
}

impl fmt::Display for SpcrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpcrError::UnsupportedInterface(t) => {
                write!(f, "SPCR interface type {t:#x} is not supported")
            }
            SpcrError::UnsupportedAddressSpace(s) => {
                write!(f, "SPCR address space {s} is not memory or I/O")
            }
            SpcrError::NoAddress => f.write_str("SPCR has no base address"),
            SpcrError::BadPort(p) => write!(
                f,
                "SPCR I/O port {p:#x} out of range (registers past port 0xffff)"
            ),
        }
    }
}

/// I/O ports a 16550 occupies: registers 0 to 7.
pub const UART_PORT_COUNT: u64 = 8;

/// Decodes the SPCR "configured baud rate" byte (0 = as is).
pub fn spcr_baud(code: u8) -> Option<u32> {
    match code {
        3 => Some(9600),
        4 => Some(19200),
        6 => Some(57600),
        7 => Some(115200),
        _ => None,
    }
}

impl ConsoleDescriptor {
    /// The console an SPCR table describes.
    pub fn from_spcr(spcr: &SpcrFields) -> Result<Self, SpcrError> {
        let kind = match spcr.interface_type {
            0x00 | 0x01 | 0x12 => UartKind::Ns16550,
            0x03 | 0x0d | 0x0e => UartKind::Pl011,
            other => return Err(SpcrError::UnsupportedInterface(other)),
        };
        if spcr.address == 0 {
            return Err(SpcrError::NoAddress);
        }
        let registers = match spcr.address_space {
            0 => {
                let width = match (spcr.access_size, spcr.bit_width) {
                    (1, _) => 1,
                    (2, _) => 2,
                    (3, _) | (4, _) => 4,
                    (_, 8) => 1,
                    (_, 16) => 2,
                    _ => 4,
                };
                // The SBSA UARTs are 32-bit only; PL011 data is fine with 32 too.
                let width = if kind == UartKind::Pl011 { 4 } else { width };
                UartRegisters::Mmio {
                    phys: spcr.address,
                    width,
                }
            }
            1 => {
                if spcr.address.saturating_add(UART_PORT_COUNT) > 0x1_0000 {
                    return Err(SpcrError::BadPort(spcr.address));
                }
                UartRegisters::Port {
                    base: spcr.address as u16,
                }
            }
            other => return Err(SpcrError::UnsupportedAddressSpace(other)),
        };
        Ok(Self {
            kind,
            registers,
            baud: spcr.baud,
        })
    }

    /// The legacy PC serial port at `port`, 115200 baud.
    pub fn legacy_port(port: u16) -> Self {
        Self {
            kind: UartKind::Ns16550,
            registers: UartRegisters::Port { base: port },
            baud: Some(115_200),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    fn spcr(
        interface_type: u8,
        address_space: u8,
        bit_width: u8,
        access_size: u8,
        address: u64,
    ) -> SpcrFields {
        SpcrFields {
            interface_type,
            address_space,
            bit_width,
            access_size,
            address,
            baud: spcr_baud(7),
        }
    }

    #[test]
    fn qemu_virt_pl011() {
        let d = ConsoleDescriptor::from_spcr(&spcr(3, 0, 32, 3, 0x0900_0000)).unwrap();
        assert_eq!(d.kind, UartKind::Pl011);
        assert_eq!(
            d.registers,
            UartRegisters::Mmio {
                phys: 0x0900_0000,
                width: 4
            }
        );
        assert_eq!(d.baud, Some(115_200));
        assert_eq!(d.to_string(), "pl011@mmio:0x9000000/4");
    }

    #[test]
    fn graviton_16550_mmio_byte_access() {
        let d = ConsoleDescriptor::from_spcr(&spcr(0, 0, 8, 1, 0x090a_0000)).unwrap();
        assert_eq!(d.kind, UartKind::Ns16550);
        assert_eq!(
            d.registers,
            UartRegisters::Mmio {
                phys: 0x090a_0000,
                width: 1
            }
        );
    }

    #[test]
    fn generic_16550_with_dword_registers() {
        let d = ConsoleDescriptor::from_spcr(&spcr(0x12, 0, 32, 3, 0xfe00_0000)).unwrap();
        assert_eq!(
            d.registers,
            UartRegisters::Mmio {
                phys: 0xfe00_0000,
                width: 4
            }
        );
    }

    #[test]
    fn x86_com1_in_io_space() {
        let d = ConsoleDescriptor::from_spcr(&spcr(0, 1, 8, 1, 0x3f8)).unwrap();
        assert_eq!(d.registers, UartRegisters::Port { base: 0x3f8 });
        assert_eq!(d.to_string(), "16550@port:0x3f8");
    }

    #[test]
    fn rejects_what_it_cannot_drive() {
        assert_eq!(
            ConsoleDescriptor::from_spcr(&spcr(0x0f, 0, 8, 1, 1)),
            Err(SpcrError::UnsupportedInterface(0x0f))
        );
        assert_eq!(
            ConsoleDescriptor::from_spcr(&spcr(0, 2, 8, 1, 1)),
            Err(SpcrError::UnsupportedAddressSpace(2))
        );
        assert_eq!(
            ConsoleDescriptor::from_spcr(&spcr(3, 0, 32, 3, 0)),
            Err(SpcrError::NoAddress)
        );
        assert_eq!(
            ConsoleDescriptor::from_spcr(&spcr(0, 1, 8, 1, 0x1_0000)),
            Err(SpcrError::BadPort(0x1_0000))
        );
        // Registers 0..7 would wrap to ports 0..4 (the DMA controller).
        assert_eq!(
            ConsoleDescriptor::from_spcr(&spcr(0, 1, 8, 1, 0xfffd)),
            Err(SpcrError::BadPort(0xfffd))
        );
        assert!(ConsoleDescriptor::from_spcr(&spcr(0, 1, 8, 1, 0xfff8)).is_ok());
    }

    #[test]
    fn baud_codes() {
        assert_eq!(spcr_baud(0), None);
        assert_eq!(spcr_baud(3), Some(9600));
        assert_eq!(spcr_baud(7), Some(115_200));
    }
}
