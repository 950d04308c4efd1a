//! How a function's I/O BARs reach the CPU.
//!
//! An I/O BAR holds a PCI I/O port. On x86 the CPU has the same port
//! space, so the BAR's port is the CPU port. An Arm CPU has no port space:
//! its host bridge decodes a window of physical memory as PCI I/O, where
//! PCI port `p` lies at `p + translation`. Only the firmware knows the
//! window (ACPI: the host bridge's `_CRS`), so the kernel finds it and
//! hands it to every function of that bridge ([`PciFunction::io_space`]);
//! drivers then ask [`PciFunction::io_bar`] where a BAR is.
//!
//! [`PciFunction::io_space`]: crate::PciFunction::io_space
//! [`PciFunction::io_bar`]: crate::PciFunction::io_bar

use core::fmt;

/// On a PC, ports below 0x100 belong to the motherboard's legacy devices
/// (DMA controller, interrupt controller, timer, keyboard); no PCI BAR is
/// placed there, and a BAR that reads as port 0 was never assigned.
const PC_LEGACY_PORTS_END: u32 = 0x100;

/// Windows kept per host bridge.
pub const MAX_IO_WINDOWS: usize = 4;

/// A range of PCI I/O ports that the CPU reaches as memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoWindow {
    /// First PCI port.
    pub pci_start: u64,
    /// Last PCI port.
    pub pci_end: u64,
    /// Added to a PCI port to give its physical address.
    pub translation: u64,
}

impl IoWindow {
    /// The physical address of ports `port..port + len`, when the window
    /// holds all of them.
    pub fn cpu_address(&self, port: u64, len: u64) -> Option<u64> {
        let last = port.checked_add(len.checked_sub(1)?)?;
        if port < self.pci_start || last > self.pci_end {
            return None;
        }
        port.checked_add(self.translation)
    }
}

/// How a segment's (or host bridge's) I/O BARs reach the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoSpace {
    /// Not known (no firmware description): I/O BARs cannot be used.
    #[default]
    Unknown,
    /// CPU I/O ports (x86): a BAR's port is the CPU's.
    Ports,
    /// Memory windows (Arm).
    Memory {
        /// The windows, the first `count` of them used.
        windows: [IoWindow; MAX_IO_WINDOWS],
        /// How many windows there are (at least one).
        count: usize,
    },
}

impl IoSpace {
    /// Memory windows; `None` when `windows` is empty. Windows beyond
    /// [`MAX_IO_WINDOWS`] are dropped.
    pub fn memory(windows: impl IntoIterator<Item = IoWindow>) -> Option<IoSpace> {
        let empty = IoWindow {
            pci_start: 0,
            pci_end: 0,
            translation: 0,
        };
        let mut out = [empty; MAX_IO_WINDOWS];
        let mut count = 0;
        for (slot, window) in out.iter_mut().zip(windows) {
            *slot = window;
            count += 1;
        }
        (count > 0).then_some(IoSpace::Memory {
            windows: out,
            count,
        })
    }

    /// Where ports `port..port + size` are.
    pub fn locate(&self, port: u32, size: u32) -> Result<IoRegion, IoBarError> {
        let outside = IoBarError::OutsideWindows { port, size };
        match self {
            IoSpace::Unknown => Err(IoBarError::NoIoSpace),
            IoSpace::Ports => {
                if port < PC_LEGACY_PORTS_END {
                    return Err(IoBarError::Unassigned { port });
                }
                let end = port.checked_add(size).ok_or(outside)?;
                if size == 0 || end > 0x1_0000 {
                    return Err(outside);
                }
                Ok(IoRegion::Port {
                    base: port as u16,
                    size,
                })
            }
            IoSpace::Memory { windows, count } => windows[..(*count).min(MAX_IO_WINDOWS)]
                .iter()
                .find_map(|w| w.cpu_address(u64::from(port), u64::from(size)))
                .map(|phys| IoRegion::Mmio {
                    phys,
                    size: u64::from(size),
                })
                .ok_or(outside),
        }
    }
}

impl fmt::Display for IoSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoSpace::Unknown => f.write_str("unknown"),
            IoSpace::Ports => f.write_str("CPU ports"),
            IoSpace::Memory { windows, count } => {
                for (i, w) in windows[..(*count).min(MAX_IO_WINDOWS)].iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(
                        f,
                        "ports {:#x}-{:#x} at {:#x}",
                        w.pci_start,
                        w.pci_end,
                        w.pci_start.wrapping_add(w.translation)
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// Where an I/O BAR's registers are for the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoRegion {
    /// CPU I/O ports `base..base + size` (within the 64 Ki port space).
    Port {
        /// First port.
        base: u16,
        /// Ports.
        size: u32,
    },
    /// Physical memory (to be mapped with `DriverServices::map_mmio`).
    Mmio {
        /// Physical address of the BAR's first port.
        phys: u64,
        /// Bytes.
        size: u64,
    },
}

/// Why an I/O BAR cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBarError {
    /// The slot holds no I/O BAR.
    NotIo(usize),
    /// How I/O space reaches the CPU is not known here (no host bridge
    /// with an I/O window in the firmware's tables).
    NoIoSpace,
    /// A CPU-port BAR below port 0x100, where the PC's motherboard devices
    /// are: never assigned by firmware.
    Unassigned {
        /// The BAR's port.
        port: u32,
    },
    /// The BAR's ports are not all inside the host bridge's windows (or
    /// the port space).
    OutsideWindows {
        /// The BAR's first port.
        port: u32,
        /// Its size.
        size: u32,
    },
}

impl fmt::Display for IoBarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoBarError::NotIo(index) => write!(f, "BAR {index} is not an I/O BAR"),
            IoBarError::NoIoSpace => {
                f.write_str("no I/O window known for its host bridge (I/O BARs unusable)")
            }
            IoBarError::Unassigned { port } => write!(
                f,
                "I/O BAR at port {port:#x}, among the PC's legacy ports: not assigned"
            ),
            IoBarError::OutsideWindows { port, size } => write!(
                f,
                "I/O BAR ports {port:#x}+{size:#x} lie outside the host bridge's I/O windows"
            ),
        }
    }
}
