//! Boot step: the clock's frequency.
//!
//! Where the architecture states the counter frequency (aarch64
//! `CNTFRQ_EL0`, x86 CPUID leaf 0x15) it is taken as is. Otherwise the
//! counter is measured against a reference clock ACPI describes: the ACPI
//! PM timer (FADT), else the HPET's main counter (HPET table). `clock=hpet`
//! on the command line measures against the HPET even when there is a PM
//! timer, and then also against the PM timer, printing both figures so the
//! two references can be compared.

use crate::acpi::{AcpiPlatform, PmTimer};
use crate::cmdline::CommandLine;
use crate::frames::FrameAllocator;
use crate::hpet::{self, HpetCounter};
use crate::mmio::DeviceMemory;
use crate::time;
use stratus_arch::Arch;
use stratus_driver_api::{CachePolicy, IoMem};

/// A clock of known frequency to measure the counter against.
struct Reference<'a> {
    name: &'static str,
    hz: u64,
    bits: u32,
    read: &'a dyn Fn() -> u64,
}

/// Measures the counter against `reference` over ~10 ms windows.
fn measure<A: Arch>(reference: &Reference<'_>) -> Option<u64> {
    time::calibrate(
        A::ticks,
        reference.read,
        reference.hz,
        reference.bits,
        reference.hz / 100,
    )
}

/// Finds the counter frequency and starts the clock (see the module
/// documentation); says so, or why not.
pub(super) fn init_clock<A: Arch>(
    acpi: &AcpiPlatform,
    cmdline: &CommandLine<'_>,
    entry_ticks: u64,
    device_memory: &mut DeviceMemory,
    frames: &mut FrameAllocator,
) {
    if let Some(hz) = A::ticks_per_second() {
        time::set_clock(hz, entry_ticks);
        log::info!("counter at {} kHz (architectural)", hz / 1000);
        return;
    }
    let port_io = A::port_io();
    let pm_timer = match (acpi.pm_timer(), port_io) {
        (Some(PmTimer::Port { port, bits }), Some(io)) => Some((port, bits, io)),
        _ => None,
    };
    // SAFETY: `port` is the ACPI PM timer block the FADT names; reading the
    // free-running counter has no side effects.
    let read_pm =
        |(port, _, io): (u16, u32, stratus_arch::PortIo)| u64::from(unsafe { (io.read_u32)(port) });
    let read_pm_timer = || pm_timer.map_or(0, read_pm);
    let pm_reference = pm_timer.map(|(_, bits, _)| Reference {
        name: "the ACPI PM timer",
        hz: time::ACPI_PM_TIMER_HZ,
        bits,
        read: &read_pm_timer,
    });
    let want_hpet = cmdline.is("clock", "hpet");
    let hpet = if want_hpet || pm_reference.is_none() {
        open_hpet::<A>(acpi, device_memory, frames)
    } else {
        None
    };
    let read_hpet = || hpet.as_ref().map_or(0, HpetCounter::read);
    let hpet_reference = hpet.as_ref().map(|h| Reference {
        name: "the HPET",
        hz: h.spec().hz,
        bits: h.spec().bits,
        read: &read_hpet,
    });
    let chosen = match (want_hpet, &hpet_reference, &pm_reference) {
        (true, Some(hpet), _) | (false, Some(hpet), None) => hpet,
        (_, _, Some(pm)) => pm,
        (_, None, None) => {
            log::warn!(
                "counter frequency unknown (no architectural value, no ACPI PM timer, no usable HPET)"
            );
            return;
        }
    };
    let Some(hz) = measure::<A>(chosen) else {
        log::warn!("{} does not run; frequency unknown", chosen.name);
        return;
    };
    time::set_clock(hz, entry_ticks);
    log::info!(
        "counter at {} kHz (calibrated against {})",
        hz / 1000,
        chosen.name
    );
    if let (true, Some(_), Some(pm)) = (want_hpet, &hpet_reference, &pm_reference) {
        cross_check::<A>(hz, pm);
    }
}

/// Measures again against the PM timer and prints both figures.
fn cross_check<A: Arch>(hpet_hz: u64, pm: &Reference<'_>) {
    let Some(pm_hz) = measure::<A>(pm) else {
        log::warn!("the ACPI PM timer does not run; no cross-check");
        return;
    };
    let differ = hpet_hz.abs_diff(pm_hz) * 1000 / pm_hz.max(1);
    crate::logger::write_raw(format_args!(
        "stratus: clock-check hpet_khz={} pm_timer_khz={} differ_permille={differ}\n",
        hpet_hz / 1000,
        pm_hz / 1000
    ));
}

/// Maps and starts the HPET the ACPI table names; `None` (with the
/// reason logged) when there is none or it is unusable.
fn open_hpet<A: Arch>(
    acpi: &AcpiPlatform,
    device_memory: &mut DeviceMemory,
    frames: &mut FrameAllocator,
) -> Option<HpetCounter> {
    let table = acpi.hpet?;
    let region = device_memory
        .map::<A>(table.base, hpet::REGISTER_BLOCK_BYTES, frames)
        .map_err(|e| log::warn!("HPET registers at {:#x}: {e}", table.base))
        .ok()?;
    // SAFETY: the block was just mapped with device attributes, is never
    // unmapped, and only the clock uses it.
    let regs = unsafe {
        IoMem::new(
            region.virt as usize,
            region.phys,
            hpet::REGISTER_BLOCK_BYTES as usize,
            CachePolicy::Uncached,
        )
    };
    HpetCounter::open(regs)
        .map_err(|e| log::warn!("HPET at {:#x}: {e}", table.base))
        .ok()
}
