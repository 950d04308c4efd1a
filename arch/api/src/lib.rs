//! The architecture interface of Stratus.
//!
//! `kernel-core` and the drivers are written against the [`Arch`] trait and never
//! name an architecture crate; a platform crate picks the implementation
//! (`arch-x86_64` or `arch-aarch64`). The compiler thereby keeps the portable
//! code portable, and host tests run it against a fake implementation.
//!
//! [`Arch`] is a composition of small traits, one per concern (after axplat):
//! [`Cpu`] for control of the executing processor, [`Clock`] for the free-running
//! counter, [`DeviceMapper`] for mapping device registers, and [`Power`] for
//! stopping the machine, and [`InterruptSetup`] for building the interrupt
//! controller and timer instances ([`interrupts`]). This crate holds no
//! hardware code.
#![no_std]
#![forbid(unsafe_code)]

pub mod calibration;
pub mod interrupts;
pub mod mapping;

pub use interrupts::{
    AllocateMemory, ControllerMemory, CpuHardwareId, InterruptController, InterruptError,
    InterruptHardware, InterruptId, InterruptLine, InterruptSetup, MsiAddressData, MsiDevice,
    Timer, TimerDescription,
};
pub use mapping::{DeviceMapping, FrameSource, MapError};

/// A CPU architecture as seen by the portable kernel.
pub trait Arch:
    Cpu + Clock + DeviceMapper + Power + InterruptSetup + Multiprocessor + 'static
{
    /// The name used in logs and in the ready line (`x86_64`, `aarch64`).
    const NAME: &'static str;

    /// The I/O port of a legacy PC serial port to use as console when ACPI has
    /// no SPCR table (x86: COM1 at 0x3f8). `None` where there is no such thing.
    const LEGACY_CONSOLE_PORT: Option<u16>;

    /// Access to the I/O port space, where the architecture has one (x86).
    fn port_io() -> Option<PortIo>;
}

/// Byte access to an I/O port space (x86 `in`/`out`). Plain function
/// pointers, so that drivers stay free of architecture code.
///
/// Every accessor is `unsafe`: a port can be a device that changes memory
/// or the machine's state (PCI configuration at 0xcf8/0xcfc, the reset
/// control register at 0xcf9, a DMA controller). The caller vouches that
/// the port belongs to the device it drives and that the device expects
/// the access.
#[derive(Clone, Copy, Debug)]
pub struct PortIo {
    /// Reads the byte at a port.
    pub read_u8: unsafe fn(u16) -> u8,
    /// Writes a byte to a port.
    pub write_u8: unsafe fn(u16, u8),
    /// Reads 32 bits at a port.
    pub read_u32: unsafe fn(u16) -> u32,
    /// Writes 32 bits to a port.
    pub write_u32: unsafe fn(u16, u32),
}

/// Control of the processor that executes the caller.
pub trait Cpu {
    /// Installs exception vectors (and on x86 the GDT, TSS and IDT) so that a CPU
    /// exception is reported with its name, faulting address and registers
    /// instead of resetting the machine. Called once, first thing at kernel entry.
    fn init_exceptions();

    /// Unmasks interrupts on this CPU.
    fn enable_interrupts();

    /// Masks interrupts on this CPU.
    fn disable_interrupts();

    /// Waits for the next interrupt (x86 `hlt`, aarch64 `wfi`).
    fn wait_for_interrupt();

    /// Masks interrupts and stops this CPU for good.
    fn halt() -> ! {
        Self::disable_interrupts();
        loop {
            Self::wait_for_interrupt();
        }
    }

    /// Architecture-specific identification of the boot CPU for the boot log
    /// (vendor and model string, or MIDR).
    fn describe(out: &mut dyn core::fmt::Write) -> core::fmt::Result;
}

/// The CPU's free-running, monotonic counter (x86 TSC, aarch64 CNTVCT_EL0).
pub trait Clock {
    /// The counter's current value.
    fn ticks() -> u64;

    /// Counter frequency in Hz when the architecture can state it without
    /// measuring (aarch64 `CNTFRQ_EL0`, x86 CPUID leaf 0x15). `None` means the
    /// counter must be calibrated against a reference clock found in ACPI.
    fn ticks_per_second() -> Option<u64>;
}

/// Mapping device registers (MMIO) with device memory attributes: uncached on
/// x86, Device-nGnRnE on aarch64. Cacheable accesses to registers — for
/// instance through the higher-half direct map — are never correct.
pub trait DeviceMapper {
    /// Maps `mapping.len` bytes at physical `mapping.phys` to virtual
    /// `mapping.virt` in the current address space. Page-table frames come from
    /// `frames`; table memory is reached through the direct map at `hhdm_offset`.
    fn map_device(
        mapping: DeviceMapping,
        hhdm_offset: u64,
        frames: &mut dyn FrameSource,
    ) -> Result<(), MapError>;

    /// Maps `mapping.len` bytes of RAM at physical `mapping.phys` to virtual
    /// `mapping.virt` as normal write-back memory, read/write for the kernel,
    /// never executable: for kernel stacks with guard pages around them,
    /// which the direct map (one contiguous range) cannot provide.
    fn map_memory(
        mapping: DeviceMapping,
        hhdm_offset: u64,
        frames: &mut dyn FrameSource,
    ) -> Result<(), MapError>;
}

/// What a secondary CPU runs once it is in the kernel's address space:
/// called with [`CpuStart::arg`], on [`CpuStart::stack_top`], with
/// interrupts masked. It never returns.
pub type SecondaryEntry = extern "C" fn(arg: u64) -> !;

/// A request to start one secondary CPU.
#[derive(Clone, Copy, Debug)]
pub struct CpuStart {
    /// The CPU's hardware id as the firmware tables name it: the MPIDR
    /// affinity fields on aarch64 (GICC entry), the local APIC id on x86.
    pub hardware_id: u64,
    /// The top of the stack the entry runs on (16-byte aligned, mapped).
    pub stack_top: u64,
    /// The kernel function the CPU calls.
    pub entry: SecondaryEntry,
    /// Its argument.
    pub arg: u64,
    /// aarch64: the PSCI conduit (`CPU_ON`), from the FADT.
    pub psci: Option<PsciConduit>,
    /// x86: [`STARTUP_LOW_MEMORY_BYTES`] of usable RAM below 1 MiB, 4 KiB
    /// aligned, for the real-mode start-up routine (a startup IPI names its
    /// page). `None` where the memory map has none.
    pub low_memory: Option<u64>,
    /// Busy-waits about this many microseconds (the INIT / startup IPI
    /// protocol has waits between its steps).
    pub delay_us: fn(u64),
}

/// Low memory [`CpuStart::low_memory`] must provide on x86: the start-up
/// routine's page and three pages of temporary page tables.
pub const STARTUP_LOW_MEMORY_BYTES: u64 = 4 * 4096;

/// Why a secondary CPU could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The architecture's start method is not available (no PSCI, or not
    /// implemented on this architecture yet).
    NoMethod,
    /// The firmware refused (PSCI error code).
    Firmware(i64),
    /// The start-up code's address could not be translated or mapped.
    Translation(MapError),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::NoMethod => f.write_str("no method to start CPUs"),
            StartError::Firmware(code) => {
                write!(f, "firmware refused (PSCI {})", psci_error_name(*code))
            }
            StartError::Translation(e) => write!(f, "start-up code: {e}"),
        }
    }
}

/// The name of a PSCI return code (Arm DEN 0022, 5.2.2).
pub fn psci_error_name(code: i64) -> &'static str {
    match code {
        0 => "SUCCESS",
        -1 => "NOT_SUPPORTED",
        -2 => "INVALID_PARAMETERS",
        -3 => "DENIED",
        -4 => "ALREADY_ON",
        -5 => "ON_PENDING",
        -6 => "INTERNAL_FAILURE",
        -7 => "NOT_PRESENT",
        -8 => "DISABLED",
        -9 => "INVALID_ADDRESS",
        _ => "unknown error",
    }
}

/// Starting the other CPUs and telling CPUs apart.
pub trait Multiprocessor {
    /// The hardware id of the executing CPU, in the form of
    /// [`CpuStart::hardware_id`].
    fn hardware_id() -> u64;

    /// Starts a secondary CPU: it enters the kernel's address space and
    /// calls `start.entry(start.arg)` on `start.stack_top`. Returns once
    /// the firmware or hardware accepted the request; the caller waits (with
    /// a bound) for the CPU to say it arrived. Page-table frames for the
    /// start-up code come from `frames`, reached at `hhdm_offset`.
    fn start_cpu(
        start: &CpuStart,
        hhdm_offset: u64,
        frames: &mut dyn FrameSource,
    ) -> Result<(), StartError>;

    /// Gives the executing CPU its own exception stack ending at
    /// `exception_stack_top` (x86: the TSS's double-fault stack, in a GDT
    /// and TSS of its own; aarch64: SP_EL1) and installs the vectors: first
    /// thing in a secondary CPU's entry, and on the boot CPU to move off the
    /// static exception stack onto one with a guard page.
    fn init_secondary_exceptions(exception_stack_top: u64);

    /// Switches the executing CPU to the stack ending at `stack_top`
    /// (16-byte aligned, mapped) and calls `entry(arg)` there. The old stack
    /// is abandoned. The boot CPU uses it to leave the loader's stack for a
    /// kernel stack with a guard page.
    fn run_on_stack(stack_top: u64, entry: SecondaryEntry, arg: u64) -> !;

    /// Stores `value` in this CPU's per-CPU register (x86 GS base, aarch64
    /// TPIDR_EL1): kernel-core keeps the address of the CPU's own data there.
    fn set_cpu_local(value: u64);

    /// The value [`Multiprocessor::set_cpu_local`] stored on this CPU (0
    /// before it did).
    fn cpu_local() -> u64;
}

/// How the kernel asks to stop the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything went as intended.
    Success,
    /// The kernel stops because of an error (panic, fatal exception).
    Failure,
}

/// The means the firmware offers to stop the machine, as discovered in ACPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PowerMethods {
    /// aarch64: PSCI is implemented (FADT ARM boot flags); `psci_hvc` says
    /// whether the conduit is HVC (virtual machines) or SMC (bare metal).
    pub psci: Option<PsciConduit>,
    /// x86: the FADT reset register, when it is an I/O port, and the value
    /// to write to it.
    pub acpi_reset_port: Option<(u16, u8)>,
    /// x86: ACPI soft-off (S5) through the PM1 control registers, when the
    /// FADT names them in I/O space and the DSDT's `\_S5` could be read.
    pub acpi_soft_off: Option<AcpiSoftOff>,
    /// The kernel runs under a QEMU test harness (command line `exit=qemu`):
    /// report the exit status through QEMU's exit devices (x86
    /// `isa-debug-exit` at port 0xf4, aarch64 semihosting `SYS_EXIT`).
    pub qemu_exit: bool,
}

/// Entering the ACPI S5 (soft-off) state by writing the PM1 control
/// registers (ACPI 6.5, 7.4.2 and 16.1.7). The values are computed by
/// kernel-core from the DSDT's `\_S5` object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiSoftOff {
    /// The PM1a control register's I/O port.
    pub pm1a_control: u16,
    /// The PM1b control register's I/O port, where the FADT has one.
    pub pm1b_control: Option<u16>,
    /// `SLP_TYPa | SLP_EN`, written to PM1a.
    pub pm1a_value: u16,
    /// `SLP_TYPb | SLP_EN`, written to PM1b.
    pub pm1b_value: u16,
    /// The FADT's SMI command port and `ACPI_ENABLE` value: written first
    /// when `SCI_EN` is clear (the firmware still owns the ACPI hardware).
    pub acpi_enable: Option<(u16, u8)>,
}

/// The instruction that reaches PSCI firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    /// Hypervisor call: virtual machines.
    Hvc,
    /// Secure monitor call: bare metal.
    Smc,
}

/// Stopping the machine.
pub trait Power {
    /// Stops the machine with `status`, using `methods` in order of
    /// preference; halts the CPU when none works.
    fn power_off(status: ExitStatus, methods: &PowerMethods) -> !;

    /// Resets the machine (x86: the FADT reset register, then the PCI reset
    /// control register and a triple fault; aarch64: PSCI `SYSTEM_RESET`).
    fn reset(methods: &PowerMethods) -> !;
}
