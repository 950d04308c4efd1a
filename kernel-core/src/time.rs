//! Time keeping from the CPU's free-running counter.
//!
//! The counter frequency comes from the architecture when it can state it
//! (aarch64 `CNTFRQ_EL0`) or is measured against a reference clock that ACPI
//! describes (the ACPI PM timer at 3.579545 MHz on x86). This module holds the
//! arithmetic; the platform supplies the counters.

use core::sync::atomic::{AtomicU64, Ordering};

/// Frequency of the ACPI power-management timer (ACPI spec 4.8.3.3).
pub const ACPI_PM_TIMER_HZ: u64 = 3_579_545;

static TICKS_PER_SECOND: AtomicU64 = AtomicU64::new(0);
static ENTRY_TICKS: AtomicU64 = AtomicU64::new(0);
static COUNTER: spin::Once<fn() -> u64> = spin::Once::new();

/// Records how to read the CPU counter (the architecture's `Clock::ticks`).
pub fn set_counter(ticks: fn() -> u64) {
    COUNTER.call_once(|| ticks);
    // Drivers bound their waits with the same clock.
    stratus_driver_api::clock::install(now_micros);
}

/// Microseconds since kernel entry now, once the counter and its frequency
/// are known.
pub fn now_micros() -> Option<u64> {
    micros_since_entry((COUNTER.get()?)())
}

/// Records the counter frequency and the counter value at kernel entry.
pub fn set_clock(ticks_per_second: u64, entry_ticks: u64) {
    ENTRY_TICKS.store(entry_ticks, Ordering::Relaxed);
    TICKS_PER_SECOND.store(ticks_per_second, Ordering::Relaxed);
}

/// The counter frequency, once known.
pub fn ticks_per_second() -> Option<u64> {
    match TICKS_PER_SECOND.load(Ordering::Relaxed) {
        0 => None,
        hz => Some(hz),
    }
}

/// Microseconds between kernel entry and counter value `now`, once the
/// frequency is known.
pub fn micros_since_entry(now: u64) -> Option<u64> {
    let hz = ticks_per_second()?;
    Some(ticks_to_micros(
        now.wrapping_sub(ENTRY_TICKS.load(Ordering::Relaxed)),
        hz,
    ))
}

/// Converts a tick count to microseconds without overflow.
pub fn ticks_to_micros(ticks: u64, hz: u64) -> u64 {
    ((ticks as u128 * 1_000_000) / hz.max(1) as u128) as u64
}

pub use stratus_arch::calibration::{calibrate, wrapping_delta};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_ticks_to_micros() {
        assert_eq!(ticks_to_micros(62_500_000, 62_500_000), 1_000_000);
        assert_eq!(ticks_to_micros(u64::MAX, 1_000_000_000), u64::MAX / 1000);
    }
}
