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

/// Elapsed ticks of a wrapping counter `bits` wide between two readings.
pub fn wrapping_delta(earlier: u64, later: u64, bits: u32) -> u64 {
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    later.wrapping_sub(earlier) & mask
}

/// Measures the frequency of `counter` against a reference counter of known
/// frequency `reference_hz` and width `reference_bits` (wrapping), over about
/// `window_ref_ticks` reference ticks.
pub fn calibrate(
    counter: impl Fn() -> u64,
    reference: impl Fn() -> u64,
    reference_hz: u64,
    reference_bits: u32,
    window_ref_ticks: u64,
) -> u64 {
    let ref_start = reference();
    let start = counter();
    let mut elapsed_ref;
    loop {
        elapsed_ref = wrapping_delta(ref_start, reference(), reference_bits);
        if elapsed_ref >= window_ref_ticks {
            break;
        }
    }
    let elapsed = counter().wrapping_sub(start);
    ((elapsed as u128 * reference_hz as u128) / elapsed_ref.max(1) as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    #[test]
    fn converts_ticks_to_micros() {
        assert_eq!(ticks_to_micros(62_500_000, 62_500_000), 1_000_000);
        assert_eq!(ticks_to_micros(u64::MAX, 1_000_000_000), u64::MAX / 1000);
    }

    #[test]
    fn delta_wraps_at_counter_width() {
        assert_eq!(wrapping_delta(0xff_fff0, 0x10, 24), 0x20);
        assert_eq!(wrapping_delta(5, 3, 64), u64::MAX - 1);
    }

    #[test]
    fn calibrates_a_fake_counter_against_a_24_bit_pm_timer() {
        // Fake time in nanoseconds; every read advances it by 100 ns.
        let now_ns = Cell::new(1_000_000_000u64);
        let read = |scale_hz: u64| {
            let t = now_ns.get() + 100;
            now_ns.set(t);
            ((t as u128 * scale_hz as u128) / 1_000_000_000) as u64
        };
        let tsc = || read(2_400_000_000);
        let pm = || read(ACPI_PM_TIMER_HZ) & 0xff_ffff;
        let hz = calibrate(tsc, pm, ACPI_PM_TIMER_HZ, 24, ACPI_PM_TIMER_HZ / 100);
        let error = hz.abs_diff(2_400_000_000);
        assert!(error < 2_400_000, "calibrated {hz} Hz");
    }
}
