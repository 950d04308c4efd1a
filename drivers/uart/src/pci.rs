//! PCI serial cards with a 16550 (class 07.00.02, and QEMU's `pci-serial`,
//! 1b36:0002) as further consoles.
//!
//! The UART's eight registers are BAR 0: an I/O BAR on QEMU's card and on
//! most others, sometimes a memory BAR. An I/O BAR is CPU ports on x86 and,
//! on Arm, memory in the host bridge's I/O window, which the kernel found
//! in the DSDT ([`PciFunction::io_bar`]) — so on QEMU `virt` this card is
//! driven exactly like AWS Graviton's console, a 16550 in MMIO with byte
//! registers. The UART is programmed 8N1 (115200 baud where the clock is
//! known: QEMU's card has the PC's 1.8432 MHz) and handed to the kernel as
//! a further console ([`DriverServices::add_console`]).

use crate::ns16550::{Ns16550, Ns16550Registers, pc_divisor};
use crate::{Uart, UartConsole, keep_console};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use stratus_driver_api::console::{ConsoleDescriptor, UartKind, UartRegisters};
use stratus_driver_api::{CachePolicy, DriverServices};
use stratus_pci::{Bar, IoRegion, PciDriver, PciFunction, Probed, regs};

/// QEMU's PCI serial card (`-device pci-serial`).
const QEMU_PCI_SERIAL: (u16, u16) = (0x1b36, 0x0002);
/// Class code: simple communication controller, serial, 16550-compatible.
const CLASS_16550: (u8, u8, u8) = (0x07, 0x00, 0x02);
/// Register bytes of a 16550 with byte registers.
const REGISTER_BYTES: u64 = 8;
/// The line speed set on a card whose clock is known.
const BAUD: u32 = 115_200;

/// The driver (see the module documentation).
pub struct Ns16550PciDriver;

impl PciDriver for Ns16550PciDriver {
    fn name(&self) -> &'static str {
        "16550"
    }

    fn claims(&self, function: &PciFunction) -> bool {
        (function.vendor_id, function.device_id) == QEMU_PCI_SERIAL || function.class == CLASS_16550
    }

    fn probe(
        &self,
        function: PciFunction,
        services: &'static dyn DriverServices,
    ) -> Result<Probed, String> {
        let address = function.address;
        let too_small = |size: u64| format!("BAR 0 has {size} bytes, fewer than the 8 registers");
        let (registers, at, via) = match function.bars[0] {
            Some(Bar::Io { port, .. }) => match function.io_bar(0).map_err(|e| format!("{e}"))? {
                IoRegion::Port { base, size } => {
                    if u64::from(size) < REGISTER_BYTES {
                        return Err(too_small(u64::from(size)));
                    }
                    let io = services
                        .port_io()
                        .ok_or_else(|| String::from("I/O ports named, but no port access"))?;
                    function.enable_io_decoding();
                    (
                        Ns16550Registers::Port { base, io },
                        UartRegisters::Port { base },
                        format!("I/O BAR 0, port {port:#x}"),
                    )
                }
                IoRegion::Mmio { phys, size } => {
                    if size < REGISTER_BYTES {
                        return Err(too_small(size));
                    }
                    let registers = map(services, phys)?;
                    function.enable_io_decoding();
                    (
                        registers,
                        UartRegisters::Mmio { phys, width: 1 },
                        format!("I/O BAR 0, PCI port {port:#x} in the host bridge's I/O window"),
                    )
                }
            },
            Some(Bar::Memory { address, size, .. }) => {
                if size < REGISTER_BYTES {
                    return Err(too_small(size));
                }
                let registers = map(services, address)?;
                let command = function.config.read_u16(regs::COMMAND);
                function
                    .config
                    .write_command(command | regs::COMMAND_MEMORY);
                (
                    registers,
                    UartRegisters::Mmio {
                        phys: address,
                        width: 1,
                    },
                    String::from("memory BAR 0"),
                )
            }
            None => return Err(String::from("BAR 0 is not implemented")),
        };
        let descriptor = ConsoleDescriptor {
            kind: UartKind::Ns16550,
            registers: at,
            baud: known_clock(&function).then_some(BAUD),
        };
        let divisor = known_clock(&function).then(|| pc_divisor(BAUD));
        let uart = Ns16550::new_card(registers, divisor);
        let console = keep_console(UartConsole::new(Uart::Ns16550(uart)))
            .ok_or_else(|| String::from("no room for another console"))?;
        log::info!(target: "uart", "{address}: {descriptor} ({via})");
        if !services.add_console(console, descriptor) {
            return Err(format!("{descriptor}: the kernel took no further console"));
        }
        Ok(Probed::Other)
    }
}

/// Whether the card's UART clock is known (QEMU's: 1.8432 MHz).
fn known_clock(function: &PciFunction) -> bool {
    (function.vendor_id, function.device_id) == QEMU_PCI_SERIAL
}

/// Maps the 8 registers at `phys` uncached; the mapping lives as long as
/// the kernel (the console does).
fn map(services: &dyn DriverServices, phys: u64) -> Result<Ns16550Registers, String> {
    let io = services
        .map_mmio(phys, REGISTER_BYTES, CachePolicy::Uncached)
        .map_err(|e| format!("registers at {phys:#x}: {e}"))?;
    let io: &'static _ = Box::leak(Box::new(io));
    // SAFETY: `io` maps the UART's 8 byte registers with device attributes
    // and is never unmapped (leaked above).
    Ok(unsafe { Ns16550Registers::mmio(io.as_ptr() as usize, 1) })
}

#[cfg(test)]
mod tests {
    //! The driver against a fake configuration space and a register block
    //! in host memory standing in for the UART.
    use super::*;
    extern crate std;
    use stratus_driver_api::dma::host::HostDma;
    use stratus_driver_api::services::host::HostServices;
    use stratus_pci::fake::{FakeConfigSpace, FakeFunction};
    use stratus_pci::{IoSpace, IoWindow, PciAddress, enumerate};

    /// QEMU's pci-serial as AAVMF leaves it: I/O BAR 0 at PCI port 0x1000.
    fn pci_serial(class: (u8, u8, u8), ids: (u16, u16)) -> PciFunction {
        let space = FakeConfigSpace::default();
        let mut f = FakeFunction::new(ids.0, ids.1, class);
        f.bar(0, 0x1001, 8);
        space.insert(PciAddress::new(0, 0, 1, 0), f);
        enumerate(space.leak(), 0, 0..=0).remove(0)
    }

    /// QEMU virt's I/O window (DSDT: PCI ports 0-0xffff at 0x3eff0000).
    fn virt_window() -> IoSpace {
        IoSpace::memory([IoWindow {
            pci_start: 0,
            pci_end: 0xffff,
            translation: 0x3eff_0000,
        }])
        .unwrap()
    }

    #[test]
    fn claims_qemus_card_and_16550_class_functions_only() {
        let driver = Ns16550PciDriver;
        assert!(driver.claims(&pci_serial((7, 0, 2), (0x1b36, 0x0002))));
        assert!(driver.claims(&pci_serial((7, 0, 2), (0x1415, 0xc158))));
        assert!(!driver.claims(&pci_serial((7, 0, 0), (0x1415, 0xc158))));
        assert!(!driver.claims(&pci_serial((1, 8, 2), (0x1b36, 0x0010))));
    }

    /// On Arm the I/O BAR is reached as memory in the host bridge's window:
    /// PCI port 0x1000 is 0x3eff1000, mapped and driven as a byte-register
    /// 16550 (Graviton's console shape), added as a console.
    #[test]
    fn an_io_bar_through_the_host_bridges_window_becomes_an_mmio_console() {
        let block: &'static mut [u8] =
            std::boxed::Box::leak(std::vec![0u8; 4096].into_boxed_slice());
        block[5] = 0x20; // LSR: transmitter empty
        let base = block.as_ptr() as usize;
        let dma: &'static HostDma = std::boxed::Box::leak(std::boxed::Box::default());
        let services: &'static HostServices = std::boxed::Box::leak(std::boxed::Box::new(
            HostServices::new(dma).with_registers(0x3eff_1000, block),
        ));
        let mut function = pci_serial((7, 0, 2), (0x1b36, 0x0002));
        let config = function.config;
        function.io_space = virt_window();
        assert!(matches!(
            Ns16550PciDriver.probe(function, services),
            Ok(Probed::Other)
        ));
        assert_ne!(config.read_u16(regs::COMMAND) & regs::COMMAND_IO, 0);
        let added = services.consoles.lock().unwrap().clone();
        assert_eq!(added.len(), 1);
        assert_eq!(std::format!("{}", added[0].1), "16550@mmio:0x3eff1000/1");
        assert_eq!(added[0].1.baud, Some(115_200));
        assert_eq!(added[0].0.write_bytes(b"ok"), Ok(()));
        // SAFETY: reads of the leaked block the driver writes with volatile
        // stores.
        let reg = |i: usize| unsafe { core::ptr::read_volatile((base + i) as *const u8) };
        assert_eq!(reg(0), b'k', "THR");
        assert_eq!(reg(1), 0, "IER: interrupts off");
        assert_eq!(reg(3), 0x03, "LCR: 8N1, divisor latch off");
    }

    static PORT_WRITES: std::sync::Mutex<std::vec::Vec<(u16, u8)>> =
        std::sync::Mutex::new(std::vec::Vec::new());

    /// x86: the I/O BAR is a CPU port (OVMF gives QEMU's card 0x6100 or so).
    #[test]
    fn an_io_bar_on_x86_is_a_port_console() {
        let io = stratus_arch::PortIo {
            // LSR (base + 5) says "transmitter empty"; the rest reads 0.
            read_u8: |port| if port == 0x1005 { 0x20 } else { 0 },
            write_u8: |port, value| PORT_WRITES.lock().unwrap().push((port, value)),
            read_u32: |_| 0,
            write_u32: |_, _| {},
        };
        let dma: &'static HostDma = std::boxed::Box::leak(std::boxed::Box::default());
        let services: &'static HostServices =
            std::boxed::Box::leak(std::boxed::Box::new(HostServices {
                ports: Some(io),
                ..HostServices::new(dma)
            }));
        let mut function = pci_serial((7, 0, 2), (0x1b36, 0x0002));
        function.io_space = IoSpace::Ports;
        assert!(Ns16550PciDriver.probe(function, services).is_ok());
        let added = services.consoles.lock().unwrap()[0];
        assert_eq!(std::format!("{}", added.1), "16550@port:0x1000");
        added.0.write_bytes(b"x").unwrap();
        let writes = PORT_WRITES.lock().unwrap().clone();
        // IER off, divisor 1 (115200 from 1.8432 MHz), 8N1, FIFOs, DTR/RTS, then the byte.
        assert_eq!(
            writes,
            [
                (0x1001, 0),
                (0x1003, 0x80),
                (0x1000, 1),
                (0x1001, 0),
                (0x1003, 0x03),
                (0x1002, 0x07),
                (0x1004, 0x0b),
                (0x1000, b'x')
            ]
        );
    }

    /// Without a known I/O window the BAR is refused with the reason; a
    /// window that does not hold the BAR likewise.
    #[test]
    fn an_io_bar_nowhere_known_is_refused() {
        let dma: &'static HostDma = std::boxed::Box::leak(std::boxed::Box::default());
        let services: &'static HostServices =
            std::boxed::Box::leak(std::boxed::Box::new(HostServices::new(dma)));
        let function = pci_serial((7, 0, 2), (0x1b36, 0x0002));
        let Err(e) = Ns16550PciDriver.probe(function, services) else {
            panic!("probed without an I/O window");
        };
        assert!(e.contains("no I/O window known"), "{e}");
        let mut function = pci_serial((7, 0, 2), (0x1b36, 0x0002));
        function.io_space = IoSpace::memory([IoWindow {
            pci_start: 0x2000,
            pci_end: 0x2fff,
            translation: 0x3eff_0000,
        }])
        .unwrap();
        let Err(e) = Ns16550PciDriver.probe(function, services) else {
            panic!("probed outside the window");
        };
        assert!(e.contains("outside the host bridge's I/O windows"), "{e}");
        assert!(services.consoles.lock().unwrap().is_empty());
    }
}
