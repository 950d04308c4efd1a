//! Interrupt controllers and per-CPU deadline timers, as instances.
//!
//! Which controller a machine has, and where, is found at run time (ACPI
//! MADT and GTDT): kernel-core fills an [`InterruptHardware`] description,
//! maps the registers it names, and asks the architecture
//! ([`InterruptSetup::init_interrupts`]) to build its
//! [`InterruptController`] and [`Timer`] from it. The architecture's
//! interrupt entry acknowledges an interrupt, calls the dispatcher
//! kernel-core installed with the interrupt's [`InterruptId`], and signals
//! end-of-interrupt when the dispatcher returns.

use crate::mapping::MapError;
use core::ops::Range;

/// How an interrupt arrives at the CPU: an x86 IDT vector (32..=255) or a
/// GIC INTID (SGI 0..16, PPI 16..32, SPI 32..1020, LPI from 8192).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterruptId(pub u32);

/// Edge or level triggered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Edge triggered.
    Edge,
    /// Level triggered.
    Level,
}

/// Active-high or active-low.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Active high.
    High,
    /// Active low.
    Low,
}

/// An interrupt source as firmware names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptLine {
    /// An ACPI global system interrupt: an I/O APIC input on x86 (after
    /// interrupt source overrides), an SPI on arm.
    Gsi {
        /// The GSI number.
        gsi: u32,
        /// Trigger mode.
        trigger: Trigger,
        /// Polarity.
        polarity: Polarity,
    },
    /// A legacy ISA IRQ (x86), which the MADT may override to another GSI,
    /// trigger and polarity.
    Isa(u8),
    /// A source private to each CPU: a GIC PPI (INTID 16..32), or on x86
    /// the local APIC's own timer ([`LOCAL_APIC_TIMER`]).
    PerCpu(u32),
}

/// The x86 local APIC timer as an [`InterruptLine::PerCpu`] source.
pub const LOCAL_APIC_TIMER: u32 = 0;

/// A CPU as the interrupt hardware names it: the APIC id (x2APIC id) on x86,
/// the MPIDR affinity fields (Aff3..Aff0) on arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuHardwareId(pub u64);

/// An I/O APIC from the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicDescription {
    /// Its APIC id.
    pub id: u8,
    /// Physical address of its registers.
    pub phys: u64,
    /// The first GSI it serves.
    pub gsi_base: u32,
}

/// An ISA IRQ that the MADT routes to another GSI (interrupt source override).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceOverride {
    /// The ISA IRQ.
    pub isa_irq: u8,
    /// The GSI it arrives at.
    pub gsi: u32,
    /// Trigger mode (ISA default: edge).
    pub trigger: Trigger,
    /// Polarity (ISA default: active high).
    pub polarity: Polarity,
}

/// The GSI, trigger and polarity a line arrives with after the MADT's
/// interrupt source overrides (ACPI 6.5, 5.2.12.5). An ISA IRQ without an
/// override is the GSI of the same number, edge triggered, active high.
/// `None` for per-CPU sources, which no I/O APIC carries.
pub fn resolve_gsi(
    line: InterruptLine,
    overrides: &[SourceOverride],
) -> Option<(u32, Trigger, Polarity)> {
    match line {
        InterruptLine::Gsi {
            gsi,
            trigger,
            polarity,
        } => Some((gsi, trigger, polarity)),
        InterruptLine::Isa(irq) => Some(
            overrides
                .iter()
                .find(|o| o.isa_irq == irq)
                .map_or((u32::from(irq), Trigger::Edge, Polarity::High), |o| {
                    (o.gsi, o.trigger, o.polarity)
                }),
        ),
        InterruptLine::PerCpu(_) => None,
    }
}

/// How redistributors are found (ACPI MADT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedistributorSource {
    /// From GICR entries: contiguous ranges of frames, one per CPU, ending
    /// with the frame whose `GICR_TYPER.Last` is set.
    Ranges,
    /// From GICC entries: each CPU's own redistributor address (bare metal
    /// and Azure: no GICR entry).
    PerCpu,
}

/// What the interrupt hardware is, from firmware tables.
#[derive(Clone, Copy, Debug)]
pub enum InterruptHardware<'a> {
    /// x86 local APIC and I/O APICs.
    Apic {
        /// Physical address of the xAPIC registers (MADT, or its override).
        local_apic_phys: u64,
        /// The I/O APICs.
        io_apics: &'a [IoApicDescription],
        /// Interrupt source overrides.
        overrides: &'a [SourceOverride],
    },
    /// Arm GIC.
    Gic {
        /// GIC version from the GICD entry (0: ask the hardware).
        version: u8,
        /// Physical address of the distributor.
        distributor_phys: u64,
        /// Redistributor regions (base, length) from GICR entries, or each
        /// CPU's redistributor (base, one frame) from GICC entries.
        redistributors: &'a [(u64, u64)],
        /// Which of the two `redistributors` holds.
        source: RedistributorSource,
    },
}

/// Maps device registers: physical address and length in, virtual address
/// of the physical address out (kernel-core's device window).
pub type MapRegisters<'a> = &'a mut dyn FnMut(u64, u64) -> Result<u64, MapError>;

/// The per-CPU timer as firmware describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerDescription {
    /// The timer's interrupt: on arm the virtual timer PPI from the GTDT;
    /// on x86 [`LOCAL_APIC_TIMER`].
    pub line: InterruptLine,
    /// The clock counter's frequency in Hz (TSC, CNTVCT).
    pub counter_hz: u64,
}

/// Why interrupts could not be set up or a line not enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptError {
    /// The firmware description does not fit this architecture.
    WrongHardware,
    /// GICv2 (or older): not supported.
    UnsupportedGicVersion(u8),
    /// Registers could not be mapped.
    Map(MapError),
    /// No redistributor belongs to this CPU.
    NoRedistributor,
    /// No I/O APIC serves this GSI.
    NoIoApicForGsi(u32),
    /// The id is outside what this controller can deliver.
    BadId(u32),
    /// The line is not one this controller has.
    BadLine,
    /// The timer cannot be calibrated (x86: the TSC frequency is unknown).
    TimerUncalibrated,
    /// The hardware did not answer within its bound.
    Timeout,
    /// Message-signalled interrupts cannot be delivered (no ITS, GICv2).
    MsiUnsupported,
    /// The target CPU cannot be addressed by an MSI (x86: APIC id above
    /// 255 without interrupt remapping).
    MsiUnreachableCpu(u64),
}

impl core::fmt::Display for InterruptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::WrongHardware => {
                f.write_str("firmware describes another architecture's controller")
            }
            Self::UnsupportedGicVersion(v) => {
                write!(f, "GICv{v} is not supported (GICv3 or later needed)")
            }
            Self::Map(e) => write!(f, "cannot map registers: {e}"),
            Self::NoRedistributor => f.write_str("no GIC redistributor for this CPU"),
            Self::NoIoApicForGsi(g) => write!(f, "no I/O APIC serves GSI {g}"),
            Self::BadId(id) => write!(f, "interrupt id {id} out of range"),
            Self::BadLine => f.write_str("no such interrupt line"),
            Self::TimerUncalibrated => {
                f.write_str("local APIC timer cannot be calibrated (the TSC frequency is unknown)")
            }
            Self::Timeout => f.write_str("interrupt hardware did not answer in time"),
            Self::MsiUnsupported => f.write_str("message-signalled interrupts cannot be delivered"),
            Self::MsiUnreachableCpu(cpu) => write!(
                f,
                "CPU {cpu} cannot be reached by an MSI (APIC id above 255, no interrupt remapping)"
            ),
        }
    }
}

/// An interrupt controller instance (local APIC + I/O APICs, GICv3).
pub trait InterruptController: Send {
    /// A short name: `x2apic`, `xapic`, `gicv3`.
    fn kind(&self) -> &'static str;

    /// Ids kernel-core may hand out for lines without a fixed id, IPIs and
    /// (later) MSIs: x86 vectors; on the GIC, SGIs for IPIs.
    fn allocatable(&self) -> Range<u32>;

    /// The id a line arrives with when the hardware fixes it (GIC: SPI =
    /// GSI + 0, PPI), or `None` when one must be allocated (x86).
    fn fixed_id(&self, line: InterruptLine) -> Option<InterruptId>;

    /// Routes `line` to this CPU as `id` and unmasks it.
    fn enable(&mut self, line: InterruptLine, id: InterruptId) -> Result<(), InterruptError>;

    /// Masks `line`.
    fn disable(&mut self, line: InterruptLine) -> Result<(), InterruptError>;

    /// The executing CPU's hardware id.
    fn this_cpu(&self) -> CpuHardwareId;

    /// Sends interrupt `id` to CPU `target` (an inter-processor interrupt).
    fn send_ipi(&mut self, target: CpuHardwareId, id: InterruptId) -> Result<(), InterruptError>;

    /// Ids for message-signalled interrupts, disjoint from
    /// [`InterruptController::allocatable`]: x86 vectors; GIC LPIs when an
    /// ITS is present. Empty where MSIs cannot be delivered (the default).
    fn msi_ids(&self) -> Range<u32> {
        0..0
    }

    /// Prepares delivery of MSI `id` from device `device` to CPU `target`
    /// and returns the message the device must write. On the GIC this maps
    /// the device's event to the LPI in the ITS; `device.its_device_id`
    /// says which device id the ITS sees (from IORT).
    fn compose_msi(
        &mut self,
        device: MsiDevice,
        id: InterruptId,
        target: CpuHardwareId,
    ) -> Result<MsiAddressData, InterruptError> {
        let _ = (device, id, target);
        Err(InterruptError::MsiUnsupported)
    }

    /// Undoes [`InterruptController::compose_msi`]: the device no longer
    /// sends `id`.
    fn release_msi(&mut self, device: MsiDevice, id: InterruptId) {
        let _ = (device, id);
    }
}

/// A device that raises message-signalled interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiDevice {
    /// PCI segment group.
    pub segment: u16,
    /// PCI requester id (bus << 8 | device << 3 | function).
    pub requester_id: u16,
    /// The device id the GIC ITS sees, from IORT's root-complex id mapping
    /// (the requester id where IORT maps it one to one); unused on x86.
    pub its_device_id: u32,
}

/// The write that raises an MSI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiAddressData {
    /// Address the device writes.
    pub address: u64,
    /// Data it writes.
    pub data: u32,
}

/// A per-CPU one-shot deadline timer counting in clock ticks
/// ([`crate::Clock::ticks`]).
pub trait Timer: Send {
    /// A short name: `tsc-deadline`, `lapic-oneshot`, `cntv`.
    fn kind(&self) -> &'static str;

    /// Makes the timer raise `id` when it fires (x86: the LVT vector; arm:
    /// nothing to do, the PPI is fixed).
    fn bind(&mut self, id: InterruptId);

    /// Fires once when the clock reaches `deadline` (at once if it passed).
    fn set_deadline(&mut self, deadline: u64);

    /// Stops the timer; no interrupt follows.
    fn cancel(&mut self);
}

/// Building the interrupt hardware and entering interrupts.
pub trait InterruptSetup {
    /// This architecture's interrupt controller.
    type Controller: InterruptController;
    /// This architecture's per-CPU timer.
    type Timer: Timer;

    /// Builds the controller for the boot CPU from `hardware` (mapping
    /// registers through `map`) and masks every line; on x86 also masks the
    /// legacy PIC.
    fn init_interrupts(
        hardware: &InterruptHardware<'_>,
        map: MapRegisters<'_>,
    ) -> Result<Self::Controller, InterruptError>;

    /// Builds the boot CPU's timer.
    fn init_timer(timer: &TimerDescription) -> Result<Self::Timer, InterruptError>;

    /// Prepares the executing secondary CPU's part of the controller that
    /// [`InterruptSetup::init_interrupts`] built on the boot CPU (x86: its
    /// local APIC; GIC: its redistributor, found by affinity among the
    /// frames the boot CPU mapped, and its CPU interface), with SGIs and the
    /// per-CPU interrupts `per_cpu` unmasked. Interrupts stay masked.
    fn init_secondary_interrupts(per_cpu: &[InterruptId]) -> Result<(), InterruptError>;

    /// Builds the executing secondary CPU's timer, like the boot CPU's
    /// (reusing its calibration).
    fn init_secondary_timer(timer: &TimerDescription) -> Result<Self::Timer, InterruptError>;

    /// Installs the function the interrupt entry calls with each
    /// acknowledged interrupt's id; end-of-interrupt follows its return.
    fn set_interrupt_dispatcher(dispatch: fn(InterruptId));

    /// Whether interrupts are unmasked on this CPU.
    fn interrupts_enabled() -> bool;

    /// Unmasks interrupts and waits for one as a single step, so that an
    /// interrupt arriving in between cannot be missed (x86 `sti; hlt`;
    /// aarch64 `wfi` with IRQs masked, which wakes on a pending interrupt,
    /// then unmask). Returns with interrupts unmasked.
    fn enable_interrupts_and_wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isa_irqs_follow_overrides() {
        let overrides = [
            SourceOverride {
                isa_irq: 0,
                gsi: 2,
                trigger: Trigger::Edge,
                polarity: Polarity::High,
            },
            SourceOverride {
                isa_irq: 9,
                gsi: 9,
                trigger: Trigger::Level,
                polarity: Polarity::Low,
            },
        ];
        assert_eq!(
            resolve_gsi(InterruptLine::Isa(0), &overrides),
            Some((2, Trigger::Edge, Polarity::High))
        );
        assert_eq!(
            resolve_gsi(InterruptLine::Isa(9), &overrides),
            Some((9, Trigger::Level, Polarity::Low))
        );
        assert_eq!(
            resolve_gsi(InterruptLine::Isa(4), &overrides),
            Some((4, Trigger::Edge, Polarity::High))
        );
        let pci = InterruptLine::Gsi {
            gsi: 16,
            trigger: Trigger::Level,
            polarity: Polarity::Low,
        };
        assert_eq!(
            resolve_gsi(pci, &overrides),
            Some((16, Trigger::Level, Polarity::Low))
        );
        assert_eq!(resolve_gsi(InterruptLine::PerCpu(0), &overrides), None);
    }
}
