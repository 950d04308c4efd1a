//! Boot step: interrupt controller and timer of the boot CPU, from ACPI.

use super::init;
use crate::acpi::interrupt_tables::InterruptTables;
use crate::frames::FrameAllocator;
use crate::mmio::DeviceMemory;
use crate::{time, timer};
use stratus_arch::interrupts::LOCAL_APIC_TIMER;
use stratus_arch::{Arch, InterruptLine, TimerDescription};

/// What came up, for the boot log and the ready line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterruptSummary {
    /// The controller's name (`x2apic`, `xapic`, `gicv3`), if one runs.
    pub controller: Option<&'static str>,
    /// The timer's name (`tsc-deadline`, `lapic-oneshot`, `cntv`), if one runs.
    pub timer: Option<&'static str>,
}

/// Sets up interrupts on the boot CPU from what the MADT and GTDT say and
/// unmasks them. Any failure is logged with its reason and boot goes on
/// without interrupts (or without the timer).
pub fn bring_up<A: Arch>(
    tables: &InterruptTables,
    device_memory: &mut DeviceMemory,
    frames: &mut FrameAllocator,
) -> InterruptSummary {
    let mut summary = InterruptSummary::default();
    timer::init_clock::<A>();
    let Some(hardware) = tables.hardware() else {
        log::warn!(target: "irq", "no interrupt controller in the MADT; running without interrupts");
        return summary;
    };
    let mut map = |phys: u64, len: u64| {
        device_memory
            .map::<A>(phys, len, frames)
            .map(|region| region.virt)
            .map_err(|e| {
                log::error!(target: "irq", "registers at {phys:#x}: {e}");
                e.as_map_error()
            })
    };
    let interrupts = match init::<A>(&hardware, &mut map) {
        Ok(i) => i,
        Err(e) => {
            log::error!(target: "irq", "{e}; running without interrupts");
            return summary;
        }
    };
    summary.controller = Some(interrupts.kind());
    let Some(counter_hz) = time::ticks_per_second() else {
        log::error!(target: "timer", "clock frequency unknown: no timer");
        return summary;
    };
    let line = match hardware {
        stratus_arch::InterruptHardware::Apic { .. } => InterruptLine::PerCpu(LOCAL_APIC_TIMER),
        stratus_arch::InterruptHardware::Gic { .. } => match tables.virtual_timer {
            Some(line) => line,
            None => {
                log::error!(target: "timer", "no GTDT virtual timer interrupt: no timer");
                return summary;
            }
        },
    };
    let description = TimerDescription { line, counter_hz };
    match timer::init::<A>(interrupts, &description) {
        Ok(t) => summary.timer = Some(t.kind()),
        Err(e) => log::error!(target: "timer", "{e}; running without a timer"),
    }
    A::enable_interrupts();
    log::info!(target: "irq",
        "{} on cpu {:#x}, timer {} ({line:?}), {} kHz clock",
        interrupts.kind(),
        interrupts.this_cpu().0,
        summary.timer.unwrap_or("none"),
        counter_hz / 1000
    );
    summary
}
