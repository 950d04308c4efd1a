//! What the kernel provides to drivers.

use crate::console::{ConsoleDescriptor, ConsoleSink};
use crate::dma::DmaBuffer;
use crate::io_mem::{CachePolicy, IoMem};
use crate::msi::{MsiRequest, MsiVector};
use core::fmt;
use core::time::Duration;
use stratus_arch::PortIo;

/// Why the kernel could not provide something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// The physical range is memory the kernel owns, or cannot be mapped.
    BadRange,
    /// Memory (frames or virtual space) is exhausted.
    NoMemory,
    /// No interrupt id is left.
    NoVector,
    /// The platform cannot deliver message-signalled interrupts (no ITS,
    /// GICv2, interrupts not set up): poll instead.
    MsiUnavailable,
    /// The CPU index names no online CPU.
    NoSuchCpu(usize),
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRange => f.write_str("the range is not device memory"),
            Self::NoMemory => f.write_str("out of memory"),
            Self::NoVector => f.write_str("no interrupt vector left"),
            Self::MsiUnavailable => f.write_str("the platform cannot deliver MSIs"),
            Self::NoSuchCpu(cpu) => write!(f, "no CPU {cpu}"),
        }
    }
}

/// The kernel as drivers see it. kernel-core implements it; host tests use
/// fakes.
pub trait DriverServices: Sync {
    /// Maps `len` bytes of device registers at physical `phys` with
    /// `policy`, after checking the range against the memory map.
    fn map_mmio(&self, phys: u64, len: u64, policy: CachePolicy) -> Result<IoMem, ServiceError>;

    /// A zero-filled DMA buffer of at least `len` bytes.
    fn allocate_dma(&self, len: usize) -> Result<DmaBuffer, ServiceError>;

    /// An MSI or MSI-X vector for `request.source`, reaching CPU
    /// `request.cpu`, with the handler registered.
    fn allocate_msi(&self, request: MsiRequest) -> Result<MsiVector, ServiceError>;

    /// Gives back a vector; its handler is removed. The device must no
    /// longer send it.
    fn free_msi(&self, vector: MsiVector);

    /// The I/O port space, where the architecture has one.
    fn port_io(&self) -> Option<PortIo>;

    /// Makes `console` (a UART a driver brought up, `descriptor` saying
    /// which) a further console: the kernel's log from now on goes to it as
    /// well. False when the kernel keeps no further consoles (the default),
    /// has no room left, or uses that UART already.
    fn add_console(
        &self,
        console: &'static dyn ConsoleSink,
        descriptor: ConsoleDescriptor,
    ) -> bool {
        let _ = (console, descriptor);
        false
    }

    /// CPUs online.
    fn cpu_count(&self) -> usize;

    /// The executing CPU's index (0 is the boot CPU).
    fn this_cpu(&self) -> usize;

    /// Waits on this CPU until an interrupt arrived or `timeout` passed,
    /// whichever comes first (a driver waiting for a completion whose
    /// interrupt it registered). May return early; callers re-check. An
    /// interrupt that arrived just before the call does not end the wait:
    /// prefer [`DriverServices::wait_until`].
    fn wait_for_interrupt(&self, timeout: Duration);

    /// Waits on this CPU until `done()` says true or `timeout` passed,
    /// halting between interrupts; returns `done`'s last answer. `done` is
    /// asked with interrupts masked and the CPU unmasks and halts as one
    /// step, so a completion interrupt cannot be missed between the check
    /// and the halt. `done` must be quick and must not block.
    ///
    /// The default (for fakes) polls `done`, waiting up to 100 µs for an
    /// interrupt between polls.
    fn wait_until(&self, timeout: Duration, done: &mut dyn FnMut() -> bool) -> bool {
        let mut deadline = crate::clock::Deadline::after(timeout, 100_000);
        loop {
            if done() {
                return true;
            }
            if deadline.expired() {
                return false;
            }
            self.wait_for_interrupt(Duration::from_micros(100));
        }
    }
}

/// [`DriverServices`] for host tests of drivers: DMA from the heap, one
/// register block in host memory standing in for a device, a CPU count.
#[cfg(any(test, feature = "host-fakes"))]
pub mod host {
    extern crate std;
    use super::*;
    use crate::dma::host::HostDma;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// A register block in host memory at a pretend physical address.
    #[derive(Clone, Copy, Debug)]
    pub struct HostRegisters {
        /// The physical address drivers ask for.
        pub phys: u64,
        /// Where the block really is (leaked host memory).
        pub virt: usize,
        /// Its length in bytes.
        pub len: usize,
    }

    /// A console a driver added.
    #[derive(Clone, Copy)]
    pub struct AddedConsole(pub &'static dyn ConsoleSink, pub ConsoleDescriptor);

    impl fmt::Debug for AddedConsole {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "AddedConsole({})", self.1)
        }
    }

    /// The fake kernel.
    #[derive(Debug)]
    pub struct HostServices {
        /// DMA pages (counts what is outstanding).
        pub dma: &'static HostDma,
        /// The one register block `map_mmio` reaches, if any.
        pub registers: Option<HostRegisters>,
        /// CPUs online.
        pub cpus: usize,
        /// The CPU `this_cpu` reports.
        pub cpu: AtomicUsize,
        /// The port space `port_io` reports.
        pub ports: Option<PortIo>,
        /// Consoles drivers added.
        pub consoles: std::sync::Mutex<std::vec::Vec<AddedConsole>>,
    }

    impl HostServices {
        /// One CPU, no registers, DMA from `dma`.
        pub const fn new(dma: &'static HostDma) -> Self {
            Self {
                dma,
                registers: None,
                cpus: 1,
                cpu: AtomicUsize::new(0),
                ports: None,
                consoles: std::sync::Mutex::new(std::vec::Vec::new()),
            }
        }

        /// Registers at `phys`, backed by `block` (leaked: it stays valid).
        pub fn with_registers(mut self, phys: u64, block: &'static mut [u8]) -> Self {
            self.registers = Some(HostRegisters {
                phys,
                virt: block.as_mut_ptr() as usize,
                len: block.len(),
            });
            self
        }
    }

    impl DriverServices for HostServices {
        fn map_mmio(
            &self,
            phys: u64,
            len: u64,
            policy: CachePolicy,
        ) -> Result<IoMem, ServiceError> {
            let r = self.registers.ok_or(ServiceError::BadRange)?;
            let offset = phys.checked_sub(r.phys).ok_or(ServiceError::BadRange)?;
            if offset.saturating_add(len) > r.len as u64 {
                return Err(ServiceError::BadRange);
            }
            // SAFETY: the block is leaked host memory of `r.len` bytes and
            // the range lies inside it.
            Ok(unsafe { IoMem::new(r.virt + offset as usize, phys, len as usize, policy) })
        }

        fn allocate_dma(&self, len: usize) -> Result<DmaBuffer, ServiceError> {
            DmaBuffer::new(self.dma, len).ok_or(ServiceError::NoMemory)
        }

        fn allocate_msi(&self, _request: MsiRequest) -> Result<MsiVector, ServiceError> {
            Err(ServiceError::MsiUnavailable)
        }

        fn free_msi(&self, _vector: MsiVector) {}

        fn port_io(&self) -> Option<PortIo> {
            self.ports
        }

        fn add_console(
            &self,
            console: &'static dyn ConsoleSink,
            descriptor: ConsoleDescriptor,
        ) -> bool {
            self.consoles
                .lock()
                .unwrap()
                .push(AddedConsole(console, descriptor));
            true
        }

        fn cpu_count(&self) -> usize {
            self.cpus
        }

        fn this_cpu(&self) -> usize {
            self.cpu.load(Ordering::SeqCst)
        }

        fn wait_for_interrupt(&self, timeout: Duration) {
            std::thread::sleep(timeout.min(Duration::from_micros(50)));
        }
    }
}
